/**
 * Where a server may connect when a client asks it to push to the next server (`link_to`): only
 * to addresses no more internal than the client's own. A client on the server's machine may name
 * any host (it could connect there itself); a client on a private network, private or public
 * hosts; a client on the internet, public hosts only. So `link_to` cannot make a server reach its
 * own loopback services or its private network for a stranger. Names are resolved here, and the
 * address checked is the one connected to.
 * @module
 */
import { WireError } from "../errors.ts";

/** How internal an address is: this machine, a private or link-local network, the internet. */
export type AddressScope = "loopback" | "private" | "public";

const RANK: Record<AddressScope, number> = { loopback: 0, private: 1, public: 2 };

function ipv4(host: string): number[] | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (!m) return undefined;
  const b = m.slice(1).map(Number);
  return b.every((x) => x <= 255) ? b : undefined;
}

/** The scope of an IP address literal; undefined for anything else (a DNS name). */
export function addressScope(host: string): AddressScope | undefined {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  const v4 = ipv4(h.startsWith("::ffff:") ? h.slice(7) : h);
  if (v4) {
    const [a, b] = v4;
    if (a === 127) return "loopback";
    if (
      a === 10 || a === 0 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) ||
      (a === 169 && b === 254) || (a === 100 && b >= 64 && b <= 127) || a >= 224
    ) return "private";
    return "public";
  }
  if (!h.includes(":") || !/^[0-9a-f:.]+$/.test(h)) return undefined;
  if (h === "::1") return "loopback";
  if (h === "::" || /^f[cd]/.test(h) || /^fe[89ab]/.test(h) || h.startsWith("ff")) return "private";
  return "public";
}

/** Resolves a DNS name to its addresses (`Deno.resolveDns`, A then AAAA). */
export type ResolveHost = (name: string) => Promise<string[]>;

async function resolveWithDeno(name: string): Promise<string[]> {
  const a = await Deno.resolveDns(name, "A").catch(() => [] as string[]);
  return a.length ? a : await Deno.resolveDns(name, "AAAA").catch(() => [] as string[]);
}

/**
 * The address to connect to for `link_to {host}` asked by a client connected from `clientHost`;
 * throws `LINK_REFUSED` (the same message for every reason, so that it tells a client nothing
 * about the server's network) when the host does not resolve or is more internal than the client.
 */
export async function linkTarget(
  host: string,
  clientHost: string | undefined,
  resolve: ResolveHost = resolveWithDeno,
): Promise<string> {
  const refused = () =>
    new WireError("LINK_REFUSED", `this server does not connect to ${host} for this client`, {
      hint: "name the next server by the public address the client reached it at",
    });
  const ip = addressScope(host) ? host : (await resolve(host))[0];
  const scope = ip === undefined ? undefined : addressScope(ip);
  const from: AddressScope = (clientHost ? addressScope(clientHost) : undefined) ?? "public";
  if (!ip || !scope || RANK[scope] < RANK[from]) throw refused();
  return ip;
}
