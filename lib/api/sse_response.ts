/**
 * A Server-Sent Events response fed by an async producer: `send(json)` writes `data: <json>\n\n`,
 * `sendRaw("[DONE]")` writes the terminator. When the client goes away the producer's signal aborts.
 * @module
 */

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

const encoder = new TextEncoder();

/**
 * Builds the response; `produce` runs once the body is being read and must not throw (it writes its
 * own error event). `onEnd` runs exactly once, after `produce` settles or the client cancels.
 */
export function sseResponse(
  produce: (writer: SseWriter) => Promise<void>,
  options: { headers?: Record<string, string>; onEnd?: () => void } = {},
): Response {
  const gone = new AbortController();
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    options.onEnd?.();
  };
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const write = (payload: string): boolean => {
    if (gone.signal.aborted) return false;
    try {
      controller.enqueue(encoder.encode(`data: ${payload}\n\n`));
      return true;
    } catch {
      gone.abort();
      return false;
    }
  };
  const writer: SseWriter = {
    send: (value) => write(JSON.stringify(value)),
    sendRaw: (payload) => write(payload),
    signal: gone.signal,
  };
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      // Run the producer after start() returns so the Response can be handed to the server first.
      queueMicrotask(() => {
        produce(writer)
          .catch(() => {})
          .finally(() => {
            if (!gone.signal.aborted) {
              try {
                controller.close();
              } catch {
                // already closed or errored
              }
            }
            end();
          });
      });
    },
    cancel() {
      gone.abort(new DOMException("client disconnected", "AbortError"));
    },
  });
  return new Response(body, { status: 200, headers: { ...SSE_HEADERS, ...options.headers } });
}
