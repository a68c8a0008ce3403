/**
 * `GatewayRelay`: for a node the gateway cannot reach over HTTP (behind NAT, no public URL), one
 * outbound WebSocket to the gateway's agent relay (GATEWAY_RELAY_URL; protocol in
 * gateway_relay_messages.ts and docs/protocol.md, "Gateway relay"). It signs in with the agent's
 * wallet, answers pings, and serves each request through this node's own HTTP API handler as a
 * streamed `/v1/chat/completions` call — so relayed generations go through the swarm like any
 * other, under the same concurrency limit (a request past it gets the API's 429 as its error),
 * and count in the Oracle metrics. Requests run concurrently, each bounded by 120 s and, when
 * streamed, 60 s to its first token; a closing socket cancels them all. The socket is reopened
 * with back-off (1 s doubling to 60 s; the longest wait after a refused sign-in or after another
 * connection of this address replaced this one).
 * @module
 */
import { errorMessage } from "../errors.ts";
import { raceAbort, sleep } from "../util/abort.ts";
import { Backoff, type BackoffOptions } from "../util/backoff.ts";
import { type Logger, silentLogger } from "../util/logger.ts";
import {
  parseRelayMessage,
  RELAY_CLOSE_CODES,
  relayAuthMessage,
  RelayMessageError,
  type RelayRequest,
} from "./gateway_relay_messages.ts";

export interface GatewayRelayOptions {
  /** `ws(s)://<gateway>/ws/agent-relay`. */
  readonly url: string;
  /** The agent's address (EIP-55) and the model it serves. */
  readonly address: string;
  readonly model: string;
  /** EIP-191 `personal_sign` with the agent's key. */
  readonly sign: (message: string) => Promise<string>;
  /** This node's HTTP API (`ApiHandler.handle`). */
  readonly handle: (request: Request) => Promise<Response>;
  /** API_SECRET, sent to the API handler as a bearer token. */
  readonly apiSecret?: string;
  readonly logger?: Logger;
  /** Unix ms clock (the auth timestamp). */
  readonly now?: () => number;
  /** Reconnect back-off (default 1 s doubling to 60 s). */
  readonly reconnect?: BackoffOptions;
  /** Per request (default 120 s, the gateway's). */
  readonly requestTimeoutMs?: number;
  /** To the first streamed token (default 60 s, the gateway's). */
  readonly firstTokenMs?: number;
  /** Between our pings; a socket silent for 2.5 of them is dropped (default 30 s). */
  readonly pingMs?: number;
  /** How long to wait for auth_ok (default 10 s). */
  readonly authMs?: number;
}

export type GatewayRelayState = "connecting" | "connected" | "waiting" | "stopped";

export interface GatewayRelayStatus {
  readonly state: GatewayRelayState;
  readonly url: string;
  /** Unix ms of the current connection's sign-in. */
  readonly connectedAt?: number;
  readonly reconnects: number;
  readonly served: number;
  readonly failed: number;
  readonly inFlight: number;
  readonly lastError?: string;
}

interface Outcome {
  readonly authed: boolean;
  readonly code: number;
  readonly reason: string;
  readonly upMs: number;
  readonly authError?: string;
}

export class GatewayRelay {
  readonly #o: GatewayRelayOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #inflight = new Map<string, AbortController>();
  readonly #stop = new AbortController();
  readonly #listeners = new Set<(s: GatewayRelayStatus) => void>();
  #state: GatewayRelayState = "waiting";
  #running: Promise<void> | undefined;
  #ws: WebSocket | undefined;
  #connectedAt: number | undefined;
  #reconnects = 0;
  #served = 0;
  #failed = 0;
  #lastError: string | undefined;

  constructor(options: GatewayRelayOptions) {
    this.#o = options;
    this.#log = (options.logger ?? silentLogger).child({ part: "gateway-relay" });
    this.#now = options.now ?? Date.now;
  }

  status(): GatewayRelayStatus {
    return {
      state: this.#state,
      url: this.#o.url,
      ...(this.#connectedAt ? { connectedAt: this.#connectedAt } : {}),
      reconnects: this.#reconnects,
      served: this.#served,
      failed: this.#failed,
      inFlight: this.#inflight.size,
      ...(this.#lastError ? { lastError: this.#lastError } : {}),
    };
  }

  /** Calls `fn` on every change of state; returns a function that removes it. */
  onStatus(fn: (s: GatewayRelayStatus) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Connects in the background and keeps the connection (idempotent). */
  start(): void {
    this.#running ??= this.#run();
  }

  /** Closes the socket, cancels the requests in flight, stops reconnecting (idempotent). */
  async stop(): Promise<void> {
    this.#stop.abort();
    try {
      this.#ws?.close(1000, "node stopping");
    } catch { /* closed */ }
    await this.#running;
    this.#set("stopped");
  }

  #set(state: GatewayRelayState, error?: string): void {
    if (error) this.#lastError = error;
    if (state === this.#state && !error) return;
    this.#state = state;
    for (const fn of this.#listeners) fn(this.status());
  }

  async #run(): Promise<void> {
    const backoff = new Backoff({ initialMs: 1_000, maxMs: 60_000, ...this.#o.reconnect });
    const longest = this.#o.reconnect?.maxMs ?? 60_000;
    while (!this.#stop.signal.aborted) {
      const out = await this.#connection();
      if (this.#stop.signal.aborted) break;
      if (out.authed && out.upMs >= 60_000) backoff.reset();
      const refused = out.authError !== undefined || (out.code >= 4001 && out.code <= 4005);
      const wait = refused || out.code === 4010 ? longest : backoff.next();
      const why = out.authError ?? RELAY_CLOSE_CODES[out.code] ??
        (out.reason || `closed with code ${out.code}`);
      if (refused) {
        this.#log.error("the gateway refused this node's sign-in", {
          why,
          code: out.code,
          hint: out.code === 4004
            ? "this machine's clock is off by more than 5 minutes: sync it (NTP)"
            : "check the agent wallet (PLUMISE_KEYSTORE / PLUMISE_PRIVATE_KEY) and GATEWAY_RELAY_URL",
        });
      } else if (out.code === 4010) {
        this.#log.warn("another connection of this agent replaced this one; is the node running twice?", {
          why,
        });
      } else this.#log.warn("gateway relay connection lost; reconnecting", { why, inMs: wait });
      this.#set("waiting", why);
      this.#reconnects++;
      await sleep(wait, { signal: this.#stop.signal }).catch(() => {});
    }
  }

  /** One connection: connect, sign in, serve until it closes. */
  #connection(): Promise<Outcome> {
    this.#set("connecting");
    return new Promise<Outcome>((resolve) => {
      let authed = false, authError: string | undefined, authedAt = 0, lastHeard = this.#now();
      let ws: WebSocket;
      try {
        ws = new WebSocket(this.#o.url);
      } catch (err) {
        return resolve({ authed, code: 0, reason: errorMessage(err), upMs: 0 });
      }
      this.#ws = ws;
      const pingMs = this.#o.pingMs ?? 30_000;
      const authTimer = setTimeout(() => {
        if (!authed) ws.close(4000, "no auth_ok in time");
      }, this.#o.authMs ?? 10_000);
      const pinger = setInterval(() => {
        if (this.#now() - lastHeard > pingMs * 2.5) return ws.close(4000, "the gateway went silent");
        this.#send(ws, { type: "ping" });
      }, pingMs);
      ws.onopen = async () => {
        const timestamp = Math.floor(this.#now() / 1000);
        try {
          const signature = await this.#o.sign(relayAuthMessage(this.#o.address, this.#o.model, timestamp));
          this.#send(ws, {
            type: "auth",
            address: this.#o.address,
            model: this.#o.model,
            timestamp,
            signature,
          });
        } catch (err) {
          authError = `cannot sign the auth message: ${errorMessage(err)}`;
          ws.close(1000, "cannot sign");
        }
      };
      ws.onmessage = (event) => {
        lastHeard = this.#now();
        let msg;
        try {
          msg = parseRelayMessage(typeof event.data === "string" ? event.data : "");
        } catch (err) {
          const id = err instanceof RelayMessageError ? err.id : undefined;
          this.#log.debug("unusable message from the gateway", { err: errorMessage(err) });
          if (id !== undefined && authed) this.#send(ws, { type: "error", id, message: errorMessage(err) });
          return;
        }
        switch (msg.type) {
          case "auth_ok":
            authed = true;
            authedAt = this.#now();
            this.#connectedAt = authedAt;
            clearTimeout(authTimer);
            this.#log.info("signed in to the gateway relay", { url: this.#o.url });
            this.#set("connected");
            return;
          case "auth_error":
            authError = msg.message || "refused";
            return;
          case "ping":
            return this.#send(ws, { type: "pong" });
          case "pong":
            return;
          case "request":
            if (!authed) return;
            void this.#serve(ws, msg);
        }
      };
      ws.onerror = () => {}; // the close event follows with the code
      ws.onclose = (event) => {
        clearTimeout(authTimer);
        clearInterval(pinger);
        this.#connectedAt = undefined;
        for (const ac of this.#inflight.values()) ac.abort(new Error("the gateway connection closed"));
        resolve({
          authed,
          code: event.code,
          reason: event.reason,
          upMs: authed ? this.#now() - authedAt : 0,
          authError,
        });
      };
    });
  }

  #send(ws: WebSocket, msg: unknown): void {
    if (ws.readyState !== WebSocket.OPEN) return;
    try {
      ws.send(JSON.stringify(msg));
    } catch (err) {
      this.#log.debug("send to the gateway failed", { err: errorMessage(err) });
    }
  }

  /** Serves one request through the HTTP API as a streamed chat completion. */
  async #serve(ws: WebSocket, req: RelayRequest): Promise<void> {
    if (this.#inflight.has(req.id)) {
      return this.#send(ws, { type: "error", id: req.id, message: `request ${req.id} is already running` });
    }
    const ac = new AbortController();
    this.#inflight.set(req.id, ac);
    const t0 = this.#now();
    const total = setTimeout(
      () =>
        ac.abort(new Error(`no complete answer within ${(this.#o.requestTimeoutMs ?? 120_000) / 1000} s`)),
      this.#o.requestTimeoutMs ?? 120_000,
    );
    const first = req.stream
      ? setTimeout(
        () => ac.abort(new Error(`no first token within ${(this.#o.firstTokenMs ?? 60_000) / 1000} s`)),
        this.#o.firstTokenMs ?? 60_000,
      )
      : undefined;
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    const cancel = () => void reader?.cancel().catch(() => {});
    ac.signal.addEventListener("abort", cancel, { once: true });
    try {
      const body = {
        messages: req.messages,
        stream: true,
        stream_options: { include_usage: true },
        ...(req.maxTokens !== undefined ? { max_tokens: req.maxTokens } : {}),
        ...(req.temperature !== undefined ? { temperature: req.temperature } : {}),
        ...(req.topP !== undefined ? { top_p: req.topP } : {}),
      };
      const pending = this.#o.handle(
        new Request("http://gateway-relay.invalid/v1/chat/completions", {
          method: "POST",
          headers: {
            "content-type": "application/json",
            ...(this.#o.apiSecret ? { authorization: `Bearer ${this.#o.apiSecret}` } : {}),
          },
          body: JSON.stringify(body),
          // an abort (closed socket, first-token or total limit) stops the generation and frees its slot
          signal: ac.signal,
        }),
      );
      // the API answers once the first token is there; an abort before that cancels the body later
      const res = await raceAbort(pending, { signal: ac.signal }).catch((err) => {
        if (ac.signal.aborted) pending.then((r) => r.body?.cancel(), () => {}); // a late response's body
        throw err;
      });
      if (!res.ok) throw new Error(await apiErrorText(res));
      reader = res.body!.getReader();
      let text = "";
      let usage: unknown;
      for await (const event of sseEvents(reader)) {
        if (event === "[DONE]") break;
        const data = JSON.parse(event) as {
          error?: { message?: string } | string;
          choices?: Array<{ delta?: { content?: string } }>;
          usage?: unknown;
        };
        if (data.error) {
          throw new Error(typeof data.error === "string" ? data.error : data.error.message ?? "error");
        }
        if (data.usage) usage = data.usage;
        const piece = data.choices?.[0]?.delta?.content;
        if (!piece) continue;
        if (first) clearTimeout(first);
        if (req.stream) this.#send(ws, { type: "chunk", id: req.id, content: piece });
        else text += piece;
      }
      ac.signal.throwIfAborted();
      if (req.stream) this.#send(ws, { type: "done", id: req.id, ...(usage ? { usage } : {}) });
      else this.#send(ws, { type: "response", id: req.id, choices: [{ message: { content: text } }], usage });
      this.#served++;
      this.#log.debug("relayed request served", { id: req.id, stream: req.stream, ms: this.#now() - t0 });
    } catch (err) {
      this.#failed++;
      const message = ac.signal.aborted ? errorMessage(ac.signal.reason) : errorMessage(err);
      this.#log.info("relayed request failed", { id: req.id, error: message });
      this.#send(ws, { type: "error", id: req.id, message });
    } finally {
      clearTimeout(total);
      if (first) clearTimeout(first);
      ac.signal.removeEventListener("abort", cancel);
      this.#inflight.delete(req.id);
    }
  }
}

/** The API's error body as one line. */
async function apiErrorText(res: Response): Promise<string> {
  try {
    const b = await res.json() as { error?: string | { message?: string }; hint?: string };
    const msg = typeof b.error === "string" ? b.error : b.error?.message;
    return `${res.status}: ${msg ?? res.statusText}${b.hint ? ` (${b.hint})` : ""}`;
  } catch {
    return `HTTP ${res.status}`;
  }
}

/** The `data:` payloads of a Server-Sent Events body. */
async function* sseEvents(reader: ReadableStreamDefaultReader<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let i: number;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart())
        .join("\n");
      if (data) yield data;
    }
  }
}
