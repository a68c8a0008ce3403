/**
 * A test bed of real networking on this machine (docs/operations.md, "Testing NAT"): Linux network
 * namespaces joined by veth pairs. Public hosts sit on one bridged "internet" (198.18.0.0/24);
 * each router is a namespace with a public side on that bridge and a private network behind it
 * (198.19.N.0/24), forwarding with iptables MASQUERADE and dropping unsolicited inbound traffic
 * (conntrack: only ESTABLISHED,RELATED passes in), like a home router. A router's NAT keeps source
 * ports (`port-preserving`, Linux's default, like most home routers) or picks random ones
 * (`random`: MASQUERADE --random-fully, like symmetric and carrier-grade NATs).
 *
 * Only the benchmarking range 198.18.0.0/15 is used, and no namespace has a default route: traffic
 * to any other address fails inside its namespace. Every namespace's name starts with the bed's
 * prefix (`plmnat<pid>x<n><random>-`); `destroy()` kills what runs in them and removes them, and creating
 * a bed first removes the namespaces of beds whose process is gone (a test killed mid-way).
 * Needs root, `ip` (iproute2) and `iptables`.
 * @module
 */

const PREFIX = "plmnat";
let beds = 0;

async function sh(args: string[], ns?: string): Promise<{ ok: boolean; out: string; err: string }> {
  const cmd = ns ? ["ip", "netns", "exec", ns, ...args] : args;
  try {
    const r = await new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "piped", stderr: "piped" })
      .output();
    const d = new TextDecoder();
    return { ok: r.success, out: d.decode(r.stdout), err: d.decode(r.stderr) };
  } catch (err) {
    return { ok: false, out: "", err: String(err) };
  }
}

async function must(args: string[], ns?: string): Promise<string> {
  const r = await sh(args, ns);
  if (!r.ok) throw new Error(`${ns ? `[${ns}] ` : ""}${args.join(" ")} failed: ${r.err.trim()}`);
  return r.out;
}

/**
 * Whether this machine can host a bed (root, ip netns, iptables with NAT and conntrack), and why
 * not. Checked once by creating and removing a probe namespace.
 */
export async function netnsAvailable(): Promise<{ ok: true } | { ok: false; reason: string }> {
  if (Deno.build.os !== "linux") {
    return { ok: false, reason: `network namespaces need Linux (this is ${Deno.build.os})` };
  }
  if (Deno.uid?.() !== 0) {
    return { ok: false, reason: "network namespaces need root (run the tests as root)" };
  }
  const probe = `${PREFIX}${Deno.pid}probe${randomTag()}`;
  const add = await sh(["ip", "netns", "add", probe]);
  if (!add.ok) {
    return { ok: false, reason: `cannot create a network namespace: ${add.err.trim() || add.out.trim()}` };
  }
  try {
    const nat = await sh(
      ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "lo", "-j", "MASQUERADE"],
      probe,
    );
    if (!nat.ok) {
      return {
        ok: false,
        reason: `iptables NAT does not work: ${nat.err.trim()} (apt-get install iptables)`,
      };
    }
    const ct = await sh(
      ["iptables", "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
      probe,
    );
    if (!ct.ok) return { ok: false, reason: `iptables conntrack does not work: ${ct.err.trim()}` };
    return { ok: true };
  } finally {
    await sh(["ip", "netns", "del", probe]);
  }
}

export type NatKind = "port-preserving" | "random";

export interface BedSpec {
  /** Hosts on the internet side, by name. */
  readonly publics: readonly string[];
  /** Routers, by name, with the NAT they do (default port-preserving). */
  readonly routers?: ReadonlyArray<{ readonly name: string; readonly nat?: NatKind }>;
  /** Hosts behind a router, by name. */
  readonly privates?: ReadonlyArray<{ readonly name: string; readonly router: string }>;
}

export interface BedHost {
  /** The namespace. */
  readonly ns: string;
  /** Its address: public (198.18.0.x) or on its router's private network (198.19.n.x). */
  readonly ip: string;
  /** For a private host: its router's public address (what the internet sees it as). */
  readonly publicIp: string;
}

export class NetnsBed {
  readonly prefix: string;
  readonly hosts = new Map<string, BedHost>();
  readonly #namespaces: string[] = [];
  #vethId = 0;
  /** Veth pairs are made in the root namespace, where other beds make theirs: a random tag each. */
  readonly #tag = randomTag();

  private constructor(prefix: string) {
    this.prefix = prefix;
  }

  /** Builds the bed (removing stale beds first); on any failure removes what it built and throws. */
  static async create(spec: BedSpec): Promise<NetnsBed> {
    await removeStaleBeds();
    // test files run in parallel in one process: the pid alone does not tell beds apart
    const bed = new NetnsBed(`${PREFIX}${Deno.pid}x${beds++}${randomTag()}-`);
    try {
      await bed.#build(spec);
      return bed;
    } catch (err) {
      await bed.destroy();
      throw err;
    }
  }

  host(name: string): BedHost {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no host ${name} in the bed`);
    return h;
  }

  /** The command line that runs `args` inside host `name`'s namespace. */
  exec(name: string, args: string[]): string[] {
    return ["ip", "netns", "exec", this.host(name).ns, ...args];
  }

  /** Runs a command in host `name` (or a router) and returns its stdout; throws on failure. */
  run(name: string, args: string[]): Promise<string> {
    return must(args, this.host(name).ns);
  }

  /** Bytes received + sent on a host's network interface (what its traffic costs it). */
  async interfaceBytes(name: string): Promise<number> {
    const out = await this.run(name, [
      "cat",
      "/sys/class/net/wan0/statistics/rx_bytes",
      "/sys/class/net/wan0/statistics/tx_bytes",
    ]);
    return out.trim().split(/\s+/).map(Number).reduce((a, b) => a + b, 0);
  }

  async #ns(name: string): Promise<string> {
    const ns = this.prefix + name;
    await must(["ip", "netns", "add", ns]);
    this.#namespaces.push(ns);
    await must(["ip", "link", "set", "lo", "up"], ns);
    // IPv4 only: no IPv6 autoconfiguration chatter on the bed's links
    await must(
      ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"],
      ns,
    );
    return ns;
  }

  /** A veth pair between two namespaces, named `a` and `b` inside them. */
  async #veth(nsA: string, a: string, nsB: string, b: string): Promise<void> {
    const id = `${this.#tag}${(this.#vethId++).toString(36)}`;
    const x = `pa${id}`, y = `pb${id}`;
    await must(["ip", "link", "add", x, "type", "veth", "peer", "name", y]);
    await must(["ip", "link", "set", x, "netns", nsA]);
    await must(["ip", "link", "set", y, "netns", nsB]);
    await must(["ip", "link", "set", x, "name", a], nsA);
    await must(["ip", "link", "set", y, "name", b], nsB);
  }

  async #build(spec: BedSpec): Promise<void> {
    const net = await this.#ns("net");
    await must(["ip", "link", "add", "br0", "type", "bridge"], net);
    await must(["ip", "link", "set", "br0", "up"], net);
    let n = 0;
    const onInternet = async (name: string, ip: string) => {
      const ns = await this.#ns(name);
      const port = `p${n++}`;
      await this.#veth(ns, "wan0", net, port);
      await must(["ip", "link", "set", port, "master", "br0", "up"], net);
      await must(["ip", "addr", "add", `${ip}/24`, "dev", "wan0"], ns);
      await must(["ip", "link", "set", "wan0", "up"], ns);
      return ns;
    };
    spec.publics.forEach((name, i) =>
      this.hosts.set(name, {
        ns: this.prefix + name,
        ip: `198.18.0.${11 + i}`,
        publicIp: `198.18.0.${11 + i}`,
      })
    );
    for (const name of spec.publics) await onInternet(name, this.host(name).ip);
    const routers = spec.routers ?? [];
    for (const [i, r] of routers.entries()) {
      const wan = `198.18.0.${1 + i}`;
      const ns = await onInternet(r.name, wan);
      const lan = `198.19.${1 + i}`;
      this.hosts.set(r.name, { ns, ip: wan, publicIp: wan });
      await must(["sysctl", "-qw", "net.ipv4.ip_forward=1"], ns);
      const masq = ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan0", "-j", "MASQUERADE"];
      await must(r.nat === "random" ? [...masq, "--random-fully"] : masq, ns);
      for (const chain of [["FORWARD", "-i", "wan0"], ["INPUT", "-i", "wan0"]]) {
        await must([
          "iptables",
          "-A",
          ...chain,
          "-m",
          "conntrack",
          "--ctstate",
          "ESTABLISHED,RELATED",
          "-j",
          "ACCEPT",
        ], ns);
        await must(["iptables", "-A", ...chain, "-j", "DROP"], ns);
      }
      await must(["ip", "link", "add", "lan0", "type", "bridge"], ns);
      await must(["ip", "addr", "add", `${lan}.1/24`, "dev", "lan0"], ns);
      await must(["ip", "link", "set", "lan0", "up"], ns);
      let k = 2;
      for (const p of (spec.privates ?? []).filter((x) => x.router === r.name)) {
        const pns = await this.#ns(p.name);
        const port = `l${k}`;
        await this.#veth(ns, port, pns, "wan0");
        await must(["ip", "link", "set", port, "master", "lan0", "up"], ns);
        const ip = `${lan}.${k}`;
        await must(["ip", "addr", "add", `${ip}/24`, "dev", "wan0"], pns);
        await must(["ip", "link", "set", "wan0", "up"], pns);
        await must(["ip", "route", "add", "198.18.0.0/24", "via", `${lan}.1`], pns);
        this.hosts.set(p.name, { ns: pns, ip, publicIp: wan });
        k++;
      }
    }
    for (const p of spec.privates ?? []) {
      if (!this.hosts.has(p.name)) throw new Error(`host ${p.name}: no router ${p.router}`);
    }
  }

  /** A namespace with nothing but its loopback: nothing sent from it can leave it. */
  async isolatedHost(name: string): Promise<BedHost> {
    const ns = await this.#ns(name);
    const h = { ns, ip: "127.0.0.1", publicIp: "127.0.0.1" };
    this.hosts.set(name, h);
    return h;
  }

  /** Kills every process in the bed's namespaces and removes them; idempotent, never throws. */
  async destroy(): Promise<void> {
    const all = this.#namespaces.splice(0);
    await Promise.all(all.map(killAndRemove));
  }
}

/** Six random base-36 characters. */
function randomTag(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => (b % 36).toString(36)).join("");
}

async function killAndRemove(ns: string): Promise<void> {
  const pids = (await sh(["ip", "netns", "pids", ns])).out.trim().split(/\s+/).filter(Boolean);
  for (const pid of pids) {
    try {
      Deno.kill(Number(pid), "SIGKILL");
    } catch { /* gone */ }
  }
  await sh(["ip", "netns", "del", ns]);
}

/** Removes namespaces of beds whose creating process is gone. */
async function removeStaleBeds(): Promise<void> {
  const list = (await sh(["ip", "netns", "list"])).out.split("\n").map((l) => l.split(" ")[0]).filter((n) =>
    n.startsWith(PREFIX)
  );
  for (const ns of list) {
    const m = /^plmnat(\d+)/.exec(ns);
    if (!m || Number(m[1]) === Deno.pid) continue;
    let alive = true;
    try {
      await Deno.stat(`/proc/${m[1]}`);
    } catch {
      alive = false;
    }
    if (!alive) await killAndRemove(ns);
  }
}
