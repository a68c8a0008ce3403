/**
 * IP address literals: a strict parser for every IPv4 and IPv6 text form, normalisation of the
 * IPv6 forms that carry an IPv4 address (mapped `::ffff:a.b.c.d` in any spelling, compatible
 * `::a.b.c.d`, translated `::ffff:0:a.b.c.d`, NAT64 `64:ff9b::/96`) to that IPv4 address, and
 * the scope of an address (this machine, an internal network, the internet, or no unicast
 * target at all) after the IANA special-purpose registries. Used to decide where a server may
 * connect for a stranger (`link_target.ts`) and which connections are loopback
 * (`direct_channel.ts`); see docs/security.md.
 *
 * IPv4 is dotted decimal only, four parts, no leading zeros: the shorthand forms `inet_aton`
 * accepts (`127.1`, `2130706433`, `0x7f.0.0.1`, octal `0177.0.0.1`) are not addresses here, and
 * `link_target.ts` refuses them as names too, so that no resolver can read them its own way.
 * @module
 */

/** A parsed address: 4 or 16 bytes in network order, an IPv6 zone (`%eth0`) when given. */
export interface IpAddress {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
  readonly zone?: string;
}

/**
 * How internal an address is: this machine (`loopback`; also `0.0.0.0/8` and `::`, which
 * connect to this machine on Linux), an internal network (`private`: RFC 1918, link-local,
 * CGNAT, unique-local, documentation and benchmarking ranges, everything not globally
 * reachable), the internet (`public`), or no unicast host (`none`: multicast, broadcast,
 * reserved and unallocated space).
 */
export type IpScope = "loopback" | "private" | "public" | "none";

const DEC_OCTET = /^(?:0|[1-9]\d{0,2})$/;

function parseIpv4(text: string): Uint8Array | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!DEC_OCTET.test(parts[i])) return undefined;
    const v = Number(parts[i]);
    if (v > 255) return undefined;
    out[i] = v;
  }
  return out;
}

const HEXTET = /^[0-9a-fA-F]{1,4}$/;

function parseIpv6(text: string): Uint8Array | undefined {
  if (text.length > 45 || text.length < 2) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string): string[] | undefined => (s === "" ? [] : s.split(":"));
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (!head || !tail) return undefined;
  const words: number[] = [];
  // an embedded IPv4 address may only be the last part (not before a trailing "::")
  let v4: Uint8Array | undefined;
  const lastOf = halves.length === 2 ? tail : head;
  const last = lastOf[lastOf.length - 1];
  if (last !== undefined && last.includes(".")) {
    v4 = parseIpv4(last);
    if (!v4) return undefined;
    lastOf.pop();
  }
  const toWords = (gs: string[]): number[] | undefined => {
    const ws: number[] = [];
    for (const g of gs) {
      if (!HEXTET.test(g)) return undefined;
      ws.push(parseInt(g, 16));
    }
    return ws;
  };
  const hw = toWords(head), tw = toWords(tail);
  if (!hw || !tw) return undefined;
  const given = hw.length + tw.length + (v4 ? 2 : 0);
  if (halves.length === 2) {
    if (given > 7) return undefined; // "::" stands for at least one group
    words.push(...hw, ...new Array<number>(8 - given).fill(0), ...tw);
  } else {
    if (given !== 8) return undefined;
    words.push(...hw);
  }
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  });
  if (v4) out.set(v4, 12);
  return out;
}

/**
 * Parses an IPv4 or IPv6 address literal (IPv6 optionally in brackets and with a `%zone`);
 * undefined for anything else (a DNS name, a shorthand IPv4 form, garbage).
 */
export function parseIp(text: string): IpAddress | undefined {
  let t = text;
  if (t.startsWith("[") && t.endsWith("]")) t = t.slice(1, -1);
  if (!t.includes(":")) {
    const b = parseIpv4(t);
    return b ? { family: 4, bytes: b } : undefined;
  }
  let zone: string | undefined;
  const pct = t.indexOf("%");
  if (pct >= 0) {
    zone = t.slice(pct + 1);
    t = t.slice(0, pct);
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(zone)) return undefined;
  }
  const b = parseIpv6(t);
  if (!b) return undefined;
  return zone === undefined ? { family: 6, bytes: b } : { family: 6, bytes: b, zone };
}

function startsWith(bytes: Uint8Array, prefix: readonly number[], bits = prefix.length * 8): boolean {
  for (let i = 0; i < bits; i += 8) {
    const left = Math.min(8, bits - i);
    const mask = (0xff << (8 - left)) & 0xff;
    if ((bytes[i / 8] & mask) !== (prefix[i / 8] & mask)) return false;
  }
  return true;
}

const zeros = (n: number) => new Array<number>(n).fill(0);

/**
 * The IPv4 address an IPv6 address stands for, where it stands for one: IPv4-mapped
 * (`::ffff:0:0/96`), IPv4-compatible (`::/96` except `::` and `::1`), IPv4-translated
 * (`::ffff:0:0:0/96`) and the NAT64 well-known prefix (`64:ff9b::/96`).
 */
export function embeddedIpv4(ip: IpAddress): Uint8Array | undefined {
  if (ip.family !== 6) return undefined;
  const b = ip.bytes;
  const v4 = b.slice(12);
  if (startsWith(b, [...zeros(10), 0xff, 0xff])) return v4; // mapped
  if (startsWith(b, [...zeros(8), 0xff, 0xff, 0, 0])) return v4; // translated
  if (startsWith(b, [0, 0x64, 0xff, 0x9b, ...zeros(8)])) return v4; // NAT64
  if (startsWith(b, zeros(12))) {
    // compatible; `::` and `::1` are the IPv6 unspecified and loopback addresses
    const n = (v4[0] << 24 | v4[1] << 16 | v4[2] << 8 | v4[3]) >>> 0;
    if (n > 1) return v4;
  }
  return undefined;
}

/** The address as it is connected to: IPv6 forms of an IPv4 address become that IPv4 address. */
export function normalizeIp(ip: IpAddress): IpAddress {
  const v4 = embeddedIpv4(ip);
  return v4 ? { family: 4, bytes: v4 } : ip;
}

/** Canonical text: dotted decimal, or RFC 5952 IPv6 (lower case, longest zero run as `::`). */
export function formatIp(ip: IpAddress): string {
  const b = ip.bytes;
  if (ip.family === 4) return Array.from(b).join(".");
  const w: number[] = [];
  for (let i = 0; i < 16; i += 2) w.push(b[i] << 8 | b[i + 1]);
  let bestAt = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) [bestAt, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (ws: number[]) => ws.map((x) => x.toString(16)).join(":");
  const text = bestAt < 0 ? hex(w) : `${hex(w.slice(0, bestAt))}::${hex(w.slice(bestAt + bestLen))}`;
  return ip.zone === undefined ? text : `${text}%${ip.zone}`;
}

type Range = readonly [prefix: readonly number[], bits: number, scope: IpScope];

/** IPv4 special-purpose ranges (IANA registry), first match wins; the rest is public. */
const V4: readonly Range[] = [
  [[0], 8, "loopback"], // "this network": 0.0.0.0 connects to this machine
  [[127], 8, "loopback"],
  [[10], 8, "private"],
  [[100, 64], 10, "private"], // shared address space (CGNAT)
  [[169, 254], 16, "private"], // link-local (cloud metadata services live here)
  [[172, 16], 12, "private"],
  [[192, 0, 0], 24, "private"], // IETF protocol assignments
  [[192, 0, 2], 24, "private"], // documentation
  [[192, 88, 99], 24, "private"], // 6to4 relay anycast (deprecated)
  [[192, 168], 16, "private"],
  [[198, 18], 15, "private"], // benchmarking
  [[198, 51, 100], 24, "private"], // documentation
  [[203, 0, 113], 24, "private"], // documentation
  [[224], 4, "none"], // multicast
  [[240], 4, "none"], // reserved, and 255.255.255.255 (broadcast)
];

/** IPv6 special-purpose ranges (IANA registry), first match wins. */
const V6: readonly Range[] = [
  [[0, 0x64, 0xff, 0x9b, 0, 1], 48, "private"], // local-use NAT64 (RFC 8215)
  [[1, 0, 0, 0, 0, 0, 0, 0], 64, "none"], // discard-only
  [[0x20, 0x01, 0x0d, 0xb8], 32, "private"], // documentation
  [[0x20, 0x01, 0, 0], 23, "private"], // IETF protocol assignments (Teredo, ORCHID, benchmarking…)
  [[0x3f, 0xff], 20, "private"], // documentation (RFC 9637)
  [[0x5f, 0], 16, "private"], // SRv6 SIDs
  [[0xfc], 7, "private"], // unique local
  [[0xfe, 0x80], 10, "private"], // link-local
  [[0xfe, 0xc0], 10, "private"], // site-local (deprecated)
  [[0xff], 8, "none"], // multicast
];

function scopeIn(bytes: Uint8Array, ranges: readonly Range[]): IpScope | undefined {
  for (const [prefix, bits, scope] of ranges) if (startsWith(bytes, prefix, bits)) return scope;
  return undefined;
}

/** The scope of an address (IPv6 forms of an IPv4 address take that address's scope). */
export function ipScope(ip: IpAddress): IpScope {
  const n = normalizeIp(ip);
  const b = n.bytes;
  if (n.family === 4) return scopeIn(b, V4) ?? "public";
  // `::` connects to this machine like 0.0.0.0; `::1` is the loopback address
  if (startsWith(b, zeros(15)) && b[15] <= 1) return "loopback";
  const special = scopeIn(b, V6);
  if (special) return ip.zone !== undefined && special === "public" ? "private" : special;
  if (ip.zone !== undefined) return "private";
  // 6to4 (2002::/16) reaches the IPv4 address it embeds: no more public than that address
  if (b[0] === 0x20 && b[1] === 0x02) {
    const v4 = scopeIn(b.subarray(2, 6), V4) ?? "public";
    return v4;
  }
  // only 2000::/3 is global unicast; the rest is unallocated
  return (b[0] & 0xe0) === 0x20 ? "public" : "none";
}

/**
 * The key under which per-source limits count an address: the IPv4 address (also when written
 * in an IPv6 form), or the /64 prefix of an IPv6 address (one subscriber usually holds a whole
 * /64, so counting single IPv6 addresses would count nothing). Text that is no address is its
 * own key.
 */
export function addressGroup(host: string): string {
  const ip = parseIp(host);
  if (!ip) return host;
  const n = normalizeIp(ip);
  if (n.family === 4) return formatIp(n);
  const prefix = new Uint8Array(16);
  prefix.set(n.bytes.subarray(0, 8));
  return `${formatIp({ family: 6, bytes: prefix })}/64`;
}

/**
 * Whether `host` is an address of this machine's loopback interface in the strict sense a
 * socket's address can be: 127.0.0.0/8, `::1`, or 127.0.0.0/8 written IPv4-mapped (a dual-stack
 * socket). Unlike `ipScope`, which answers where a connection could end up (and so counts
 * `0.0.0.0`, `::` and NAT64 forms of 127.0.0.1 as loopback, to refuse them), this answers
 * whether bytes to or from it stay on the machine (NAT64 and IPv4-compatible forms leave it).
 */
export function isLoopbackAddress(host: string): boolean {
  const ip = parseIp(host);
  if (!ip || ip.zone !== undefined) return false;
  const b = ip.bytes;
  if (ip.family === 4) return b[0] === 127;
  if (startsWith(b, zeros(15)) && b[15] === 1) return true;
  return startsWith(b, [...zeros(10), 0xff, 0xff, 127]);
}
