/**
 * TCP hole punching by simultaneous open (docs/protocol.md, "Hole punching"). Both sides know the
 * other's public address and the local port the other connects from; each connects from its own
 * port to the other's. The first SYN to leave a NAT makes that NAT expect the other side's
 * packets, so once both have left, the SYNs cross and TCP joins them into one connection. It works
 * where a NAT keeps a connection's source port (Linux's MASQUERADE does unless told to randomize,
 * most home routers do); a NAT that picks a new port per connection (randomizing, "symmetric")
 * breaks it, and the session stays on its relay.
 *
 * Deno's own `Deno.connect` cannot choose the local port, `node:net` can: the socket is wrapped
 * into the shape of a Deno connection (`ByteConn`) for the direct path's framing.
 * @module
 */
import net from "node:net";
import { SwarmError } from "../errors.ts";
import type { ByteConn } from "../wire/mod.ts";

/** Where the other side connects from: its public host and local port. */
export interface PunchTarget {
  readonly host: string;
  readonly port: number;
}

export interface PunchOptions {
  /** Give up after this long (default 4 s: a SYN dropped by the other NAT is resent after 1 s). */
  readonly timeoutMs?: number;
  /**
   * Pause before the second attempt after the other side refused (its socket was not open yet;
   * default 25 ms), doubling with each attempt up to `MAX_PUNCH_RETRY_MS`: a target that keeps
   * refusing (not a punching peer at all) sees a dozen connections, not one every 25 ms.
   */
  readonly retryMs?: number;
  readonly signal?: AbortSignal;
  /** Hears each connection attempt (for tests and logs). */
  readonly onAttempt?: () => void;
}

/** The longest pause between two attempts of a punch. */
export const MAX_PUNCH_RETRY_MS = 400;

/**
 * A local TCP port for a punch: random in 20000–60999 and free right now (bound and released
 * once; nothing else is likely to take it before the punch).
 */
export function punchPort(random: () => number = Math.random): number {
  for (let i = 0; i < 20; i++) {
    const port = 20_000 + Math.floor(random() * 41_000);
    try {
      Deno.listen({ hostname: "0.0.0.0", port }).close();
      return port;
    } catch {
      // in use: another
    }
  }
  throw new SwarmError("PUNCH_FAILED", "no free local port for a hole punch", {
    hint: "too many ports in use on this machine",
  });
}

/**
 * Connects from `localPort` to `target` until the connection opens (the other side connecting
 * back at the same time), retrying where the other side refused; rejects with `PUNCH_FAILED`
 * after `timeoutMs`.
 */
export function punchTcp(
  localPort: number,
  target: PunchTarget,
  options: PunchOptions = {},
): Promise<ByteConn> {
  const timeoutMs = options.timeoutMs ?? 4_000;
  const deadline = Date.now() + timeoutMs;
  const family = target.host.includes(":") ? 6 : 4;
  return new Promise<ByteConn>((resolve, reject) => {
    let socket: net.Socket | undefined;
    let done = false;
    let retry: ReturnType<typeof setTimeout> | undefined;
    let pause = options.retryMs ?? 25;
    const finish = (err?: Error, conn?: ByteConn) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (retry) clearTimeout(retry);
      options.signal?.removeEventListener("abort", onAbort);
      if (err) {
        socket?.destroy();
        reject(err);
      } else resolve(conn!);
    };
    const failed = (why: string) =>
      new SwarmError("PUNCH_FAILED", `hole punch to ${target.host}:${target.port} failed: ${why}`, {
        hint: "a NAT that changes ports (symmetric) or drops the packets; the session stays relayed",
      });
    const timer = setTimeout(() => finish(failed(`no connection within ${timeoutMs} ms`)), timeoutMs);
    const onAbort = () =>
      finish(options.signal!.reason instanceof Error ? options.signal!.reason : failed("aborted"));
    options.signal?.addEventListener("abort", onAbort, { once: true });
    const attempt = () => {
      if (done) return;
      options.onAttempt?.();
      const s = net.connect({
        host: target.host,
        port: target.port,
        localPort,
        localAddress: family === 6 ? "::" : "0.0.0.0",
        family,
      });
      socket = s;
      s.once("connect", () => {
        s.removeAllListeners("error");
        s.setNoDelay(true);
        finish(undefined, socketConn(s));
      });
      // `on`, not `once`: a second error from the same socket, with no listener, would be thrown
      // as an uncaught exception and end the process
      let failedOnce = false;
      s.on("error", (err: NodeJS.ErrnoException) => {
        if (failedOnce) return;
        failedOnce = true;
        s.destroy();
        // refused or reset: the other side's socket was not there yet; anything else is final
        const again = err.code === "ECONNREFUSED" || err.code === "ECONNRESET" || err.code === "EADDRINUSE";
        if (!again) return finish(failed(`${err.code ?? ""} ${err.message}`.trim()));
        if (Date.now() + pause >= deadline) return finish(failed(err.message));
        retry = setTimeout(attempt, pause);
        pause = Math.min(2 * pause, MAX_PUNCH_RETRY_MS);
      });
    };
    if (options.signal?.aborted) return onAbort();
    attempt();
  });
}

/** A connected `node:net` socket in the shape of a Deno connection (read/write/close/addresses). */
export function socketConn(socket: net.Socket): ByteConn {
  const chunks: Uint8Array[] = [];
  let ended = false;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  socket.on("data", (d: Uint8Array) => {
    chunks.push(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    if (chunks.length > 64) socket.pause();
    notify();
  });
  socket.on("end", () => {
    ended = true;
    notify();
  });
  socket.on("close", () => {
    ended = true;
    notify();
  });
  socket.on("error", (err: Error) => {
    failure = err;
    notify();
  });
  const addr = (host: string | undefined, port: number | undefined): Deno.NetAddr => ({
    transport: "tcp",
    hostname: (host ?? "").replace(/^::ffff:/, ""),
    port: port ?? 0,
  });
  return {
    localAddr: addr(socket.localAddress, socket.localPort),
    remoteAddr: addr(socket.remoteAddress, socket.remotePort),
    async read(buf: Uint8Array): Promise<number | null> {
      for (;;) {
        const c = chunks[0];
        if (c) {
          const n = Math.min(buf.byteLength, c.byteLength);
          buf.set(c.subarray(0, n));
          if (n === c.byteLength) chunks.shift();
          else chunks[0] = c.subarray(n);
          if (chunks.length <= 16 && socket.isPaused()) socket.resume();
          return n;
        }
        if (failure) throw failure;
        if (ended) return null;
        await new Promise<void>((r) => (wake = r));
      }
    },
    write(bytes: Uint8Array): Promise<number> {
      return new Promise<number>((resolve, reject) => {
        if (socket.destroyed) return reject(new Error("the connection is closed"));
        socket.write(bytes, (err?: Error | null) => err ? reject(err) : resolve(bytes.byteLength));
      });
    },
    close(): void {
      socket.destroy();
      ended = true;
      notify();
    },
  };
}
