/**
 * Where a server may connect when a client asks it to push to the next server (`link_to`): only
 * to addresses no more internal than the client's own. A client on the server's machine may name
 * any host (it could connect there itself); a client on a private network, private or public
 * hosts; a client on the internet, public hosts only; nobody multicast, broadcast or reserved
 * addresses. So `link_to` cannot make a server reach its own loopback services or its private
 * network for a stranger. Addresses are read by a real parser (`ip_address.ts`: every IPv6
 * spelling, IPv4 inside IPv6 normalised to IPv4); names are resolved here, every answer is
 * checked, and the address connected to is the one checked (so a name that resolves differently
 * the next time changes nothing). Shorthand IPv4 forms (`127.1`, `2130706433`) are refused
 * without being resolved.
 *
 * `linkDirect` makes a refused link and a failed one look the same to the client: one message,
 * and every failure is answered at the same moment after the request (`failAtMs`), so neither the
 * reply nor its timing tells whether a port is open, closed or filtered. See docs/security.md.
 * @module
 */
import { WireError } from "../errors.ts";
import { type AbortOptions, sleep, timeoutSignal } from "../util/abort.ts";
import { connectDirect, type ConnectDirectOptions, type DirectFrameChannel } from "./direct_channel.ts";
import { formatIp, type IpScope, ipScope, normalizeIp, parseIp } from "./ip_address.ts";
import type { DirectOffer } from "./protocol_messages.ts";
import type { WireLimits } from "./wire_limits.ts";

/** How internal an address is (see `IpScope`). */
export type AddressScope = IpScope;

const RANK: Record<AddressScope, number> = { none: -1, loopback: 0, private: 1, public: 2 };

/** The scope of an IP address literal in any spelling; undefined for anything else (a DNS name). */
export function addressScope(host: string): AddressScope | undefined {
  const ip = parseIp(host);
  return ip ? ipScope(ip) : undefined;
}

/** Resolves a DNS name to its addresses (`Deno.resolveDns`, A then AAAA). */
export type ResolveHost = (name: string) => Promise<string[]>;

async function resolveWithDeno(name: string): Promise<string[]> {
  const a = await Deno.resolveDns(name, "A").catch(() => [] as string[]);
  return a.length ? a : await Deno.resolveDns(name, "AAAA").catch(() => [] as string[]);
}

/**
 * A DNS host name (RFC 1123 labels) whose last label is not numeric: `127.1`, `2130706433`,
 * `0x7f.1` and the like are what `inet_aton` reads as addresses, so they are no names here.
 */
function isHostName(host: string): boolean {
  if (host.length > 253) return false;
  const labels = host.replace(/\.$/, "").split(".");
  if (!labels.every((l) => /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l))) return false;
  const last = labels[labels.length - 1];
  return !/^(?:\d+|0x[0-9a-f]*)$/i.test(last);
}

/**
 * The address to connect to for `link_to {host}` asked by a client connected from `clientHost`
 * (in canonical form, IPv4 inside IPv6 as IPv4); throws `LINK_REFUSED` when the host is no
 * address or name, does not resolve, or is more internal than the client.
 */
export async function linkTarget(
  host: string,
  clientHost: string | undefined,
  resolve: ResolveHost = resolveWithDeno,
): Promise<string> {
  const refused = (why: string) =>
    new WireError("LINK_REFUSED", `this server does not connect to ${host} for this client: ${why}`, {
      hint: "name the next server by the public address the client reached it at",
    });
  const client = clientHost === undefined ? undefined : parseIp(clientHost);
  const from = client ? ipScope(client) : "public";
  const allowed = (scope: AddressScope) => scope !== "none" && RANK[scope] >= RANK[from];
  const literal = parseIp(host);
  if (literal) {
    if (!allowed(ipScope(literal))) throw refused(`a ${ipScope(literal)} address`);
    return formatIp(normalizeIp(literal));
  }
  if (!isHostName(host)) throw refused("not an address or a host name");
  const answers = (await resolve(host)).map(parseIp).filter((ip) => ip !== undefined);
  const ok = answers.find((ip) => allowed(ipScope(ip)));
  if (!ok) throw refused(answers.length ? "it resolves to internal addresses" : "it does not resolve");
  return formatIp(normalizeIp(ok));
}

/** Time as `linkDirect` sees it (tests replace it). */
export interface LinkClock {
  now(): number;
  sleep(ms: number, options?: AbortOptions): Promise<void>;
}

const REAL_CLOCK: LinkClock = { now: () => performance.now(), sleep };

/** Default moment every failed `link_to` is answered at, after it arrived. */
export const LINK_FAIL_MS = 2_000;

export interface LinkDirectOptions {
  /** The address of the client that asked (its socket's remote address). */
  clientHost?: string;
  /** Aborts the attempt (the session ended); rejects with its reason at once. */
  signal?: AbortSignal;
  /** Every failure is answered this long after the attempt began (default `LINK_FAIL_MS`). */
  failAtMs?: number;
  /** Plain frames where both ends are loopback (see `ConnectDirectOptions.plain`). */
  plain?: boolean;
  limits?: WireLimits;
  resolve?: ResolveHost;
  /** Tests: the clock and the connector. */
  clock?: LinkClock;
  connect?: (host: string, offer: DirectOffer, options: ConnectDirectOptions) => Promise<DirectFrameChannel>;
}

/**
 * Connects a server's output link for `link_to {host, port, ticket, key}`: checks the target
 * (`linkTarget`), connects and verifies the next server's proof, all within `failAtMs`. Any
 * failure (refused target, no answer from DNS, closed, filtered or foreign port, wrong proof)
 * rejects with the same `LINK_REFUSED` error, `could not link to <host>:<port>`, no sooner
 * than `failAtMs` after the call (the cause is kept for the log).
 */
export async function linkDirect(
  target: DirectOffer & { host: string },
  options: LinkDirectOptions = {},
): Promise<DirectFrameChannel> {
  const clock = options.clock ?? REAL_CLOCK;
  const failAt = options.failAtMs ?? LINK_FAIL_MS;
  const t0 = clock.now();
  const connect = options.connect ?? connectDirect;
  // the attempt ends a little before the answer is due (the slowest failure, a silent port, then
  // still has time to be cleaned up) and every failure is answered at the same moment
  const attemptMs = Math.max(1, failAt - Math.min(200, failAt / 10));
  const budget = timeoutSignal(attemptMs, options.signal);
  try {
    // direct ports are not well-known ones (punches take the same rule): no link to a mail or web server
    if (target.port < 1024) throw new Error(`port ${target.port} is below 1024`);
    const ip = await Promise.race([
      linkTarget(target.host, options.clientHost, options.resolve),
      new Promise<never>((_, reject) => {
        if (budget.signal.aborted) reject(budget.signal.reason);
        budget.signal.addEventListener("abort", () => reject(budget.signal.reason), { once: true });
      }),
    ]);
    const left = Math.max(1, attemptMs - (clock.now() - t0));
    return await connect(ip, target, {
      connectMs: left,
      ackMs: left,
      signal: budget.signal,
      plain: options.plain,
      limits: options.limits,
      // the ticket is the client's choice: what this server sends must not be (docs/security.md)
      hashTicket: true,
    });
  } catch (err) {
    if (options.signal?.aborted) throw options.signal.reason;
    await clock.sleep(Math.max(0, t0 + failAt - clock.now()), { signal: options.signal });
    throw new WireError("LINK_REFUSED", `could not link to ${target.host}:${target.port}`, {
      hint:
        "name the next server by the public address the client reached it at; the client relays meanwhile",
      cause: err,
    });
  } finally {
    budget.clear();
  }
}
