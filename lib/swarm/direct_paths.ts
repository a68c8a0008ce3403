/**
 * The client's side of direct paths (lib/wire/direct_channel.ts): where to reach a server's
 * direct port, which servers not to try again for a while, and the session channel that pairs
 * a direct connection with the libp2p stream that controls it.
 * @module
 */
import type { FrameChannel } from "./frame_channel.ts";

/** The host to reach a peer's direct port at: the IP or DNS name it was dialed at; none when relayed. */
export function directHost(components: readonly { name: string; value?: string }[]): string | undefined {
  if (components.some((c) => c.name === "p2p-circuit")) return undefined;
  const first = components[0];
  if (!first?.value || !["ip4", "ip6", "dns", "dns4", "dns6"].includes(first.name)) return undefined;
  return first.value;
}

export interface DirectPathsOptions {
  /** Try offered direct paths at all (default true). */
  enabled?: boolean;
  /**
   * Let the frames of this client's sessions, and of the links between their servers, go unsealed
   * where a connection's two ends are loopback addresses (default true; lib/wire/direct_channel.ts).
   */
  plainLoopback?: boolean;
  /** After a failed attempt, use the libp2p stream to that host:port for this long (default 60 s). */
  backoffMs?: number;
  now?: () => number;
}

/**
 * A client's memory of direct paths: whether to try one to `host:port` (not while a recent
 * attempt failed, so an unreachable port costs one connect timeout per minute, not one per
 * session).
 */
export class DirectPaths {
  readonly enabled: boolean;
  readonly plainLoopback: boolean;
  readonly #backoffMs: number;
  readonly #now: () => number;
  readonly #failedAt = new Map<string, number>();

  constructor(options: DirectPathsOptions = {}) {
    this.enabled = options.enabled ?? true;
    this.plainLoopback = options.plainLoopback ?? true;
    this.#backoffMs = options.backoffMs ?? 60_000;
    this.#now = options.now ?? Date.now;
  }

  shouldTry(host: string, port: number): boolean {
    if (!this.enabled) return false;
    const at = this.#failedAt.get(`${host}:${port}`);
    if (at === undefined) return true;
    if (this.#now() - at >= this.#backoffMs) {
      this.#failedAt.delete(`${host}:${port}`);
      return true;
    }
    return false;
  }

  failed(host: string, port: number): void {
    this.#failedAt.set(`${host}:${port}`, this.#now());
    if (this.#failedAt.size > 4096) this.#failedAt.delete(this.#failedAt.keys().next().value!);
  }
}

/**
 * The client's view of a session on a direct path: frames go over `direct`; closing or aborting
 * also ends the libp2p stream that controls the session.
 */
export function withControl(direct: FrameChannel, control: FrameChannel): FrameChannel {
  return {
    read: (options) => direct.read(options),
    write: (message, options) => direct.write(message, options),
    async close() {
      try {
        await direct.close();
      } finally {
        await control.close();
      }
    },
    abort(err) {
      direct.abort(err);
      control.abort(err);
    },
    get writable() {
      return direct.writable;
    },
  };
}
