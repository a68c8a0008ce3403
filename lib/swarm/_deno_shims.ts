/**
 * Deno shims libp2p needs (docs/architecture.md, "libp2p under Deno"): a dependency of the peer
 * store calls `BroadcastChannel.prototype.unref()`, which Deno lacks; without it the channel
 * keeps the event loop alive and a stopped node never lets the process end.
 * @module
 */

let installed = false;

/** Installs the shims once (idempotent). */
export function installDenoShims(): void {
  if (installed) return;
  installed = true;
  const BC =
    (globalThis as unknown as { BroadcastChannel?: { prototype: Record<string, unknown> } }).BroadcastChannel;
  if (BC && typeof BC.prototype.unref !== "function") {
    // Deno has no unref for BroadcastChannel and an open channel keeps the event loop alive.
    // The only caller (mortice, the peer store's lock) uses the channel to serve lock requests
    // from worker threads; plumise's libp2p lives in one thread, so closing it is safe.
    BC.prototype.unref = function (this: { close(): void }) {
      this.close();
    };
  }
}
