/**
 * URLs that carry credentials (an RPC provider's `https://user:pass@host/?apikey=…`): the form to
 * show (`redactUrl`), and the registration of every spelling of the URL and of its secret parts with
 * the redaction of lib/errors.ts, so that errors and log lines never carry them (docs/security.md).
 * @module
 */
import { registerSecret } from "../errors.ts";

const HIDDEN = "[redacted]";
/** A path segment that looks like an API key (Infura's `/v3/<32 hex>`, Alchemy's `/v2/<key>`). */
const KEY_SEGMENT = /^(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{20,}$/;
/** Query values shorter than this are hidden inside the URL only (`?chain=1` must not hide every "1"). */
const QUERY_VALUE_MIN = 6;

function parse(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

function hasSecrets(u: URL): boolean {
  return u.username !== "" || u.password !== "" || u.search.length > 1 ||
    u.pathname.split("/").some((s) => KEY_SEGMENT.test(s));
}

/**
 * The URL as it may be shown: userinfo, every query value and key-like path segments replaced by
 * `[redacted]` (parameter names stay). Text that is not a URL, or a URL without any of them, comes
 * back unchanged.
 */
export function redactUrl(text: string): string {
  const u = parse(text);
  if (!u) return redactUnparsed(text);
  if (!hasSecrets(u)) return text;
  const user = u.username !== "" || u.password !== "" ? `${HIDDEN}@` : "";
  const path = u.pathname.split("/").map((s) => (KEY_SEGMENT.test(s) ? HIDDEN : s)).join("/");
  const names = [...u.searchParams.keys()];
  const query = names.length ? "?" + names.map((k) => `${encodeURIComponent(k)}=${HIDDEN}`).join("&") : "";
  const host = u.host;
  return `${u.protocol}//${user}${host}${path}${query}${u.hash ? "#" + HIDDEN : ""}`;
}

/**
 * A URL the parser refuses (a port out of range, a `/` or `#` in an unencoded password) may still
 * hold credentials: everything between `://` and the last `@` goes, and so do the query and
 * fragment and key-like path segments. Text without `://` comes back unchanged.
 */
function redactUnparsed(text: string): string {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)(.*)$/s.exec(text);
  if (!m) return text;
  // the last @ anywhere: a password may hold `/`, `?` or `#` (hiding too much is the safe side)
  let rest = m[2];
  const at = rest.lastIndexOf("@");
  const user = at >= 0 ? `${HIDDEN}@` : "";
  if (at >= 0) rest = rest.slice(at + 1);
  const cut = rest.search(/[?#]/);
  const tail = cut >= 0 ? rest.slice(cut) : "";
  rest = cut >= 0 ? rest.slice(0, cut) : rest;
  const path = rest.split("/").map((seg) => (KEY_SEGMENT.test(seg) ? HIDDEN : seg)).join("/");
  return `${m[1]}${user}${path}${tail ? `${tail[0]}${HIDDEN}` : ""}`;
}

/** `s`'s UTF-8 bytes in base64 (HTTP Basic credentials). */
function base64(s: string): string {
  return btoa(Array.from(new TextEncoder().encode(s), (b) => String.fromCharCode(b)).join(""));
}

function decoded(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * Registers `url`'s secrets for redaction: the URL as given, normalised, and without its userinfo
 * (the spellings that ethers and fetch errors print) are replaced by `redactUrl(url)`; the user
 * name and password on their own at any length; query values of 6 characters or more and key-like
 * path segments on their own. A URL without credentials registers nothing.
 */
export function registerUrlSecrets(url: string | undefined): void {
  if (!url) return;
  const u = parse(url.trim());
  if (!u) {
    // unparsable: the whole text goes wherever it is printed, when it could hold anything secret
    const shown = redactUnparsed(url.trim());
    if (shown !== url.trim()) registerSecret(url.trim(), { replacement: shown });
    return;
  }
  if (!hasSecrets(u)) return;
  const shown = redactUrl(url.trim());
  const spellings = new Set<string>([url, url.trim(), u.href, u.href.replace(/\/+$/, "")]);
  const bare = new URL(u.href);
  bare.username = "";
  bare.password = "";
  spellings.add(bare.href);
  spellings.add(bare.href.replace(/\/+$/, ""));
  // Longest first, so that a spelling is replaced before a shorter one that is its prefix.
  for (const s of [...spellings].sort((a, b) => b.length - a.length)) {
    registerSecret(s, { replacement: shown });
  }
  for (const part of [u.username, u.password]) {
    if (part) {
      registerSecret(part);
      registerSecret(decoded(part));
    }
  }
  if (u.username && u.password) {
    registerSecret(`${u.username}:${u.password}`);
    // the Authorization header made of them, which an RPC or proxy may echo in an error body
    for (
      const pair of new Set([`${u.username}:${u.password}`, `${decoded(u.username)}:${decoded(u.password)}`])
    ) {
      registerSecret(base64(pair));
    }
  }
  for (const value of u.searchParams.values()) {
    if (value.length >= QUERY_VALUE_MIN) registerSecret(value);
  }
  for (const raw of u.search.slice(1).split("&")) {
    const value = raw.slice(raw.indexOf("=") + 1);
    if (raw.includes("=") && value.length >= QUERY_VALUE_MIN) registerSecret(value);
  }
  for (const segment of u.pathname.split("/")) if (KEY_SEGMENT.test(segment)) registerSecret(segment);
}
