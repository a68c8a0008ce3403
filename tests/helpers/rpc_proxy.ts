/**
 * Test helper: a JSON-RPC proxy shaped like the Plumise RPC. It answers the custom `agent_*`
 * methods (docs/protocol.md, "Chain") from the emulated registry (the 0x21/0x22 stand-ins on anvil) and
 * forwards everything else to anvil. Faults can be switched on to test bad RPCs.
 * @module
 */
import { getAddress, Interface, isAddress, toUtf8String } from "ethers";

const registerIface = new Interface([
  "function isAgent(address) view returns (bool)",
  "function getAgent(address) view returns (bytes32 name, bytes32 modelHash, bytes32[] capabilities, uint256 registeredAt)",
]);
const heartbeatIface = new Interface(["function lastHeartbeat(address) view returns (uint256)"]);
const REGISTER = "0x0000000000000000000000000000000000000021";
const HEARTBEAT = "0x0000000000000000000000000000000000000022";

/** `none`: normal; `garbage`: 200 with non-JSON; `wrongShape`: valid JSON, not JSON-RPC; `http500`; `hang`: never answers. */
export type RpcFault = "none" | "garbage" | "wrongShape" | "http500" | "hang";

/**
 * Answers one JSON-RPC request in place of the upstream: `forward()` sends it on and returns the
 * upstream reply. Return a JSON-RPC reply object, or a `Response` to answer at the HTTP level.
 */
export type RpcInterceptor = (
  request: { id: unknown; method: string; params: unknown[] },
  forward: () => Promise<unknown>,
) => Promise<unknown>;

export interface RpcProxyOptions {
  upstream: string;
  /** Answer `agent_*` methods (default true). False: "method not found", like a plain EVM. */
  agentMethods?: boolean;
}

export interface RpcProxy extends AsyncDisposable {
  readonly url: string;
  /** Every method name received, in order. */
  readonly calls: string[];
  setFault(fault: RpcFault): void;
  setAgentMethods(on: boolean): void;
  /** Routes `method` through `fn` (undefined: forward it again). */
  intercept(method: string, fn: RpcInterceptor | undefined): void;
  stop(): Promise<void>;
}

interface JsonRpcRequest {
  jsonrpc?: string;
  id?: unknown;
  method?: unknown;
  params?: unknown;
}

function nameString(bytes32: string): string {
  const hex = bytes32.replace(/^0x/, "").replace(/(00)+$/, "");
  try {
    return toUtf8String("0x" + hex);
  } catch {
    return bytes32;
  }
}

/** Starts the proxy on a free 127.0.0.1 port. */
export function startRpcProxy(options: RpcProxyOptions): Promise<RpcProxy> {
  let agentMethods = options.agentMethods ?? true;
  let fault: RpcFault = "none";
  const calls: string[] = [];
  const hanging = new Set<() => void>();
  const interceptors = new Map<string, RpcInterceptor>();

  const upstream = async (body: unknown): Promise<unknown> => {
    const res = await fetch(options.upstream, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    return await res.json();
  };
  const ethCall = async (to: string, data: string): Promise<string> => {
    const r = await upstream({
      jsonrpc: "2.0",
      id: 1,
      method: "eth_call",
      params: [{ to, data }, "latest"],
    }) as {
      result?: string;
      error?: { message: string };
    };
    if (r.error || !r.result) throw new Error(r.error?.message ?? "eth_call failed");
    return r.result;
  };

  const agentMethod = async (method: string, params: unknown[]): Promise<unknown> => {
    const addr = params[0];
    if (typeof addr !== "string" || !isAddress(addr)) {
      throw { code: -32602, message: `invalid argument 0: hex string has wrong length or is not an address` };
    }
    if (method !== "agent_getStatus" && typeof params[1] !== "string") {
      throw { code: -32602, message: "missing value for required argument 1" };
    }
    const registered = registerIface.decodeFunctionResult(
      "isAgent",
      await ethCall(REGISTER, registerIface.encodeFunctionData("isAgent", [addr])),
    )[0] as boolean;
    if (method === "agent_isAgentAccount") return registered;
    const info = registerIface.decodeFunctionResult(
      "getAgent",
      await ethCall(REGISTER, registerIface.encodeFunctionData("getAgent", [addr])),
    );
    const hb = heartbeatIface.decodeFunctionResult(
      "lastHeartbeat",
      await ethCall(HEARTBEAT, heartbeatIface.encodeFunctionData("lastHeartbeat", [addr])),
    )[0] as bigint;
    const now = BigInt(Math.floor(Date.now() / 1000));
    const active = registered && hb > 0n && now - hb <= 300n;
    if (method === "agent_getAgentMeta") {
      if (!registered) return null;
      return {
        name: nameString(info[0]),
        modelHash: info[1],
        capabilities: [...info[2]],
        registeredAt: "0x" + (info[3] as bigint).toString(16),
        lastHeartbeat: "0x" + hb.toString(16),
        totalInferences: "0x0",
        totalTokensProcessed: "0x0",
        status: active ? "active" : "inactive",
      };
    }
    return {
      address: getAddress(addr),
      registered,
      active,
      nodeId: "",
      lastHeartbeat: "0x" + hb.toString(16),
      registeredAt: "0x" + (info[3] as bigint).toString(16),
      totalRewards: "0x0",
      metadata: registered ? nameString(info[0]) : "",
    };
  };

  const handleOne = async (req: JsonRpcRequest): Promise<unknown> => {
    const method = typeof req.method === "string" ? req.method : "";
    calls.push(method);
    const intercept = interceptors.get(method);
    if (intercept) {
      const params = Array.isArray(req.params) ? req.params : [];
      return await intercept({ id: req.id ?? null, method, params }, () => upstream(req));
    }
    if (method.startsWith("agent_")) {
      const known = ["agent_isAgentAccount", "agent_getAgentMeta", "agent_getStatus"].includes(method);
      if (!agentMethods || !known) {
        return {
          jsonrpc: "2.0",
          id: req.id ?? null,
          error: { code: -32601, message: `the method ${method} does not exist/is not available` },
        };
      }
      try {
        const result = await agentMethod(method, Array.isArray(req.params) ? req.params : []);
        return { jsonrpc: "2.0", id: req.id ?? null, result };
      } catch (err) {
        const e = err as { code?: number; message?: string };
        return {
          jsonrpc: "2.0",
          id: req.id ?? null,
          error: { code: e.code ?? -32000, message: e.message ?? String(err) },
        };
      }
    }
    return await upstream(req);
  };

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    if (fault === "hang") {
      await new Promise<void>((resolve) => {
        hanging.add(resolve);
      });
      return new Response("gone", { status: 503 });
    }
    if (fault === "http500") return new Response("internal error", { status: 500 });
    if (fault === "garbage") return new Response("<html>definitely not json", { status: 200 });
    if (fault === "wrongShape") return Response.json({ hello: "world" });
    if (request.method !== "POST") return new Response("POST only", { status: 405 });
    let body: unknown;
    try {
      body = await request.json();
    } catch {
      return Response.json({ jsonrpc: "2.0", id: null, error: { code: -32700, message: "parse error" } });
    }
    try {
      const out = Array.isArray(body)
        ? await Promise.all(body.map((r) => handleOne(r as JsonRpcRequest)))
        : await handleOne(body as JsonRpcRequest);
      return out instanceof Response ? out : Response.json(out);
    } catch (err) {
      return Response.json({ jsonrpc: "2.0", id: null, error: { code: -32603, message: String(err) } });
    }
  });

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const r of hanging) r();
    hanging.clear();
    await server.shutdown();
  };
  return Promise.resolve({
    url: `http://127.0.0.1:${server.addr.port}`,
    calls,
    setFault(f) {
      fault = f;
      if (f !== "hang") {
        for (const r of hanging) r();
        hanging.clear();
      }
    },
    setAgentMethods(on) {
      agentMethods = on;
    },
    intercept(method, fn) {
      if (fn) interceptors.set(method, fn);
      else interceptors.delete(method);
    },
    stop,
    [Symbol.asyncDispose]: stop,
  });
}
