/**
 * A local imitation of the Plumise gateway's agent relay endpoint (`/ws/agent-relay`, as the
 * gateway's code does it; lib/api/gateway_relay_messages.ts): agents sign in within the auth
 * timeout with an EIP-191 signature over {address, model, timestamp} (drift ≤ 300 s), get
 * auth_ok or auth_error and the gateway's close codes (4001–4005), a second connection of one
 * address closes the first (4010); the test sends requests and collects the answers by id.
 * Listens on 127.0.0.1, a free port.
 * @module
 */
import { verifyMessage } from "ethers";

export interface RelayAnswer {
  chunks: string[];
  /** `response` (non-streamed), `done` (streamed) or `error`. */
  end?: { type: "response" | "done" | "error"; [k: string]: unknown };
}

interface Agent {
  ws: WebSocket;
  address: string;
  model: string;
}

export class GatewayRelayStub {
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly agents = new Map<string, Agent>();
  /** Every close the stub made: code and reason. */
  readonly closes: Array<{ code: number; reason: string }> = [];
  /** Connections accepted so far. */
  connections = 0;
  readonly #answers = new Map<string, RelayAnswer & { wake?: () => void }>();
  readonly #waiters = new Set<() => void>();
  #seq = 0;
  /** The gateway's clock (unix ms). */
  now: () => number = Date.now;
  authMs = 10_000;
  /** Pongs the agents sent; pings they sent. */
  pongs = 0;
  pings = 0;
  /** Stop answering the agents' pings (a gateway gone silent behind a half-open connection). */
  silent = false;

  constructor() {
    this.#server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
      if (new URL(req.url).pathname !== "/ws/agent-relay" || req.headers.get("upgrade") !== "websocket") {
        return new Response("not found", { status: 404 });
      }
      const { socket, response } = Deno.upgradeWebSocket(req);
      this.connections++;
      this.#accept(socket);
      return response;
    });
  }

  get url(): string {
    return `ws://127.0.0.1:${this.#server.addr.port}/ws/agent-relay`;
  }

  #close(ws: WebSocket, code: number, reason: string): void {
    this.closes.push({ code, reason });
    this.#wake();
    try {
      ws.close(code, reason);
    } catch { /* closed */ }
  }

  #accept(ws: WebSocket): void {
    let authed = false;
    let address = "";
    const timer = setTimeout(() => this.#close(ws, 4001, "Auth timeout"), this.authMs);
    ws.onmessage = (event) => {
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(String(event.data));
      } catch {
        return;
      }
      if (!authed) {
        if (msg.type !== "auth") return this.#close(ws, 4002, "Expected auth message");
        clearTimeout(timer);
        const { address: a, model, timestamp, signature } = msg as {
          address?: string;
          model?: string;
          timestamp?: number;
          signature?: string;
        };
        if (!a || !model || !timestamp || !signature) {
          ws.send(JSON.stringify({ type: "auth_error", message: "Missing auth fields" }));
          return this.#close(ws, 4003, "Missing auth fields");
        }
        if (Math.abs(Math.floor(this.now() / 1000) - timestamp) > 300) {
          ws.send(JSON.stringify({ type: "auth_error", message: "Timestamp too old or too far in future" }));
          return this.#close(ws, 4004, "Timestamp drift");
        }
        let ok = false;
        try {
          ok = verifyMessage(JSON.stringify({ address: a, model, timestamp }), signature).toLowerCase() ===
            a.toLowerCase();
        } catch { /* bad signature */ }
        if (!ok) {
          ws.send(JSON.stringify({ type: "auth_error", message: "Invalid signature" }));
          return this.#close(ws, 4005, "Invalid signature");
        }
        const key = a.toLowerCase();
        const old = this.agents.get(key);
        if (old) this.#close(old.ws, 4010, "Replaced by new connection");
        this.agents.set(key, { ws, address: key, model });
        authed = true;
        address = key;
        ws.send(JSON.stringify({ type: "auth_ok" }));
        this.#wake();
        return;
      }
      if (msg.type === "ping") {
        this.pings++;
        this.#wake();
        return this.silent ? undefined : ws.send(JSON.stringify({ type: "pong" }));
      }
      if (msg.type === "pong") {
        this.pongs++;
        return this.#wake();
      }
      const answer = typeof msg.id === "string" ? this.#answers.get(msg.id) : undefined;
      if (!answer) return;
      if (msg.type === "chunk") answer.chunks.push(String(msg.content));
      else if (msg.type === "response" || msg.type === "done" || msg.type === "error") {
        answer.end = msg as RelayAnswer["end"];
      }
      this.#wake();
    };
    ws.onclose = () => {
      clearTimeout(timer);
      if (address && this.agents.get(address)?.ws === ws) this.agents.delete(address);
      this.#wake();
    };
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** Resolves once `pred` holds (checked on every event), or rejects after `ms`. */
  until(pred: () => boolean, ms = 10_000, what = "the relay"): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!pred()) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}`));
      }, ms);
      this.#waiters.add(check);
      check();
    });
  }

  /** Sends a request to the agent of `address`; returns its id and the answer being collected. */
  send(address: string, request: Record<string, unknown>): { id: string; answer: RelayAnswer } {
    const agent = this.agents.get(address.toLowerCase());
    if (!agent) throw new Error(`agent ${address} is not connected`);
    const id = `req-${++this.#seq}`;
    const answer: RelayAnswer = { chunks: [] };
    this.#answers.set(id, answer);
    agent.ws.send(JSON.stringify({ type: "request", id, stream: false, ...request }));
    return { id, answer };
  }

  /** Sends raw text to the agent (malformed messages). */
  sendRaw(address: string, text: string): void {
    this.agents.get(address.toLowerCase())?.ws.send(text);
  }

  /** Sends a request and waits for its end. */
  async ask(address: string, request: Record<string, unknown>, ms = 10_000): Promise<RelayAnswer> {
    const { answer } = this.send(address, request);
    await this.until(() => answer.end !== undefined, ms, "an answer");
    return answer;
  }

  /** Closes the agent's socket from the gateway's side. */
  drop(address: string, code = 1001, reason = "going away"): void {
    const a = this.agents.get(address.toLowerCase());
    if (a) this.#close(a.ws, code, reason);
  }

  async stop(): Promise<void> {
    for (const a of this.agents.values()) {
      try {
        a.ws.close(1001, "stub stopping");
      } catch { /* closed */ }
    }
    await this.#server.shutdown();
  }
}
