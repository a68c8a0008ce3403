/**
 * The HTTP server of the node: `ApiHandler` on `Deno.serve`, with `start()` (resolves once listening,
 * port 0 picks a free port) and an idempotent `stop(graceMs)` that refuses new generations, lets
 * running ones finish within the grace period, aborts the rest and closes the socket.
 * @module
 */
import { errorMessage, UnavailableError } from "../errors.ts";
import { type Logger, silentLogger } from "../util/logger.ts";
import { ApiHandler, type ApiHandlerOptions } from "./api_handler.ts";

export interface ApiServerOptions extends ApiHandlerOptions {
  /** Listen address (default 127.0.0.1). */
  readonly host?: string;
  /** Listen port (0 = any free port; default 31331). */
  readonly port?: number;
}

export class ApiServer {
  readonly #options: ApiServerOptions;
  readonly #log: Logger;
  readonly handler: ApiHandler;
  #server?: Deno.HttpServer<Deno.NetAddr>;
  #port = 0;
  #stopping?: Promise<void>;

  constructor(options: ApiServerOptions) {
    this.#options = options;
    this.#log = (options.logger ?? silentLogger).child({ part: "api" });
    this.handler = new ApiHandler(options);
  }

  /** The port listened on (after `start()`). */
  get port(): number {
    return this.#port;
  }

  /** `http://host:port` for clients on this machine (after `start()`). */
  get url(): string {
    const host = this.#options.host ?? "127.0.0.1";
    const shown = host === "0.0.0.0"
      ? "127.0.0.1"
      : host === "::"
      ? "[::1]"
      : host.includes(":")
      ? `[${host}]`
      : host;
    return `http://${shown}:${this.#port}`;
  }

  /** Binds and starts serving; throws `UnavailableError` when the port cannot be bound. */
  start(): Promise<void> {
    if (this.#server) return Promise.resolve();
    const hostname = this.#options.host ?? "127.0.0.1";
    const port = this.#options.port ?? 31331;
    return new Promise<void>((resolve, reject) => {
      try {
        this.#server = Deno.serve({
          hostname,
          port,
          onListen: (addr) => {
            this.#port = addr.port;
            this.#log.info("HTTP API listening", {
              url: this.url,
              auth: this.#options.apiSecret ? "bearer" : "none",
            });
            const exposure = openExposure(hostname, this.#options.apiSecret);
            if (exposure) this.#log.warn(exposure.message, { host: hostname, hint: exposure.hint });
            resolve();
          },
          onError: (err) => {
            this.#log.error("HTTP handler crashed", { error: errorMessage(err) });
            return new Response(JSON.stringify({ error: "internal error", code: "INTERNAL" }), {
              status: 500,
              headers: { "content-type": "application/json" },
            });
          },
        }, (request) => this.handler.handle(request));
      } catch (cause) {
        const inUse = cause instanceof Deno.errors.AddrInUse;
        reject(
          new UnavailableError(
            inUse ? "API_PORT_IN_USE" : "API_LISTEN_FAILED",
            `cannot listen on ${hostname}:${port} for the HTTP API: ${errorMessage(cause)}`,
            {
              hint: inUse
                ? "another process uses this port: stop it or choose another with --api-port / API_PORT"
                : "check --api-host / API_PORT",
              cause,
            },
          ),
        );
      }
    });
  }

  /** Stops serving (idempotent). Running generations get up to `graceMs` to finish. */
  stop(graceMs = 5000): Promise<void> {
    if (!this.#server) return Promise.resolve();
    this.#stopping ??= (async () => {
      await this.handler.drain(graceMs);
      await this.#server!.shutdown();
      this.#log.debug("HTTP API stopped"); // the node says it at info, as one of its stop steps
    })();
    return this.#stopping;
  }
}

/**
 * The warning for an API reachable beyond this machine without a bearer token, or undefined (a
 * loopback address, or `API_SECRET` set). Anyone who reaches the port can then generate and read
 * /metrics; that is how the gateway expects a node, so it is a warning, not an error.
 */
export function openExposure(
  host: string,
  apiSecret: string | undefined,
): { message: string; hint: string } | undefined {
  if (apiSecret || isLoopback(host)) return undefined;
  return {
    message:
      `the HTTP API listens on ${host}, reachable beyond this machine, and has no API_SECRET: anyone who reaches the port can generate`,
    hint:
      "set API_SECRET (then the gateway must send it), firewall the port to the gateway, or listen on 127.0.0.1 with --api-host",
  };
}

function isLoopback(host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, "");
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  const v4 = h.startsWith("::ffff:") ? h.slice("::ffff:".length) : h;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}
