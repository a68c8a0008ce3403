/**
 * Server-Sent Events on hono's `streamSSE`: `send(json)` writes `data: <json>\n\n`,
 * `sendRaw("[DONE]")` the terminator. Writes never wait for the client (a generation is bounded by
 * its token cap, so what a slow reader leaves queued is too), so a client that stops reading cannot
 * keep a generation slot. When the client goes away the producer's signal aborts.
 * @module
 */
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";

export interface SseWriter {
  /** Writes one `data:` event with `value` as JSON. Returns false once the client is gone. */
  send(value: unknown): boolean;
  /** Writes one `data:` event with a raw payload (e.g. `[DONE]`). */
  sendRaw(payload: string): boolean;
  /** Aborts when the client disconnects. */
  readonly signal: AbortSignal;
}

export const SSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  "x-accel-buffering": "no",
});

/**
 * The streamed response; `produce` must not throw (it writes its own error event). `onEnd` runs
 * exactly once, when `produce` settles (also after the client went away and it unwound).
 */
export function sseStream(
  c: Context,
  produce: (writer: SseWriter) => Promise<void>,
  onEnd: () => void,
): Response {
  const response = streamSSE(c, async (stream) => {
    const gone = new AbortController();
    stream.onAbort(() => gone.abort(new DOMException("client disconnected", "AbortError")));
    const write = (payload: string): boolean => {
      if (gone.signal.aborted) return false;
      void stream.write(`data: ${payload}\n\n`);
      return true;
    };
    try {
      await produce({
        send: (value) => write(JSON.stringify(value)),
        sendRaw: write,
        signal: gone.signal,
      });
    } finally {
      onEnd();
    }
  });
  // streamSSE adds hop-by-hop headers the server sets itself; the charset and the proxy hint are ours.
  response.headers.delete("transfer-encoding");
  response.headers.delete("connection");
  for (const [k, v] of Object.entries(SSE_HEADERS)) response.headers.set(k, v);
  return response;
}
