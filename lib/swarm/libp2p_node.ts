/**
 * Builds the libp2p node of a plumise peer: TCP, noise, yamux (buffers raised to the frame
 * cap), identify, ping, kad-dht in the private `/plumise/kad/1.0.0` namespace, bootstrap from
 * the initial peers, the persisted Ed25519 key, and the NAT parts (nat_services.ts): the circuit
 * relay v2 transport (every node can dial `/p2p-circuit` addresses and listen through relays),
 * the relay (hop) service with plumise's limits, UPnP when asked for. libp2p is only ever
 * imported in lib/swarm/.
 * @module
 */
import { bootstrap } from "@libp2p/bootstrap";
import { identify } from "@libp2p/identify";
import type { Libp2p, PrivateKey } from "@libp2p/interface";
import { kadDHT, passthroughMapper } from "@libp2p/kad-dht";
import { noise } from "@libp2p/noise";
import { ping } from "@libp2p/ping";
import { tcp } from "@libp2p/tcp";
import { yamux } from "@libp2p/yamux";
import { type Multiaddr, multiaddr } from "@multiformats/multiaddr";
import { createLibp2p } from "libp2p";
import { causeChain, ConfigError, SwarmError } from "../errors.ts";
import { DEFAULT_MAX_FRAME_BYTES, varintLength } from "../wire/mod.ts";
import { installDenoShims } from "./_deno_shims.ts";
import { KAD_PROTOCOL } from "./protocol_ids.ts";
import { natParts, type RelayServerOptions } from "./nat_services.ts";

export interface Libp2pNodeOptions {
  privateKey: PrivateKey;
  /** Listen host (default 0.0.0.0). */
  host?: string;
  /** Listen port (default 31330; 0 = any free port). */
  port?: number;
  /** Public IP to announce instead of the listen addresses' IPs. */
  announceIp?: string;
  /** Bootstrap multiaddrs (with /p2p/<peer id>). */
  initialPeers?: readonly string[];
  /** Frame cap; yamux and the length-prefix buffers are raised to it. */
  maxFrameBytes?: number;
  /** Yamux stream inactivity timeout (must exceed the session idle timeout). Default 6 min. */
  streamInactivityMs?: number;
  /** Run the kad-dht (default true). */
  dht?: boolean;
  /** Do not listen at all (a pure client, e.g. the `swarm` command). */
  noListen?: boolean;
  /**
   * How long an inbound stream may take to agree on a protocol (libp2p's default 10 s). libp2p
   * holds an `AbortSignal.timeout` per inbound stream for this long (under Deno a pending timer
   * keeps the signal alive), so memory held by stream churn is rate × this time.
   */
  negotiationTimeoutMs?: number;
  /**
   * Offer circuit relay v2 (hop) to peers behind NAT, within these limits; `active()` is asked at
   * every reservation and circuit (a relay in `auto` mode relays only while it is reachable).
   */
  relayServer?: RelayServerOptions;
  /** Ask the router to forward the listen port (UPnP / NAT-PMP). */
  upnp?: boolean;
}

/**
 * New inbound connections a node takes per second from one host (libp2p's default is 5). Clients
 * behind one address (a gateway, a NAT, several `plumise generate` on one machine) each connect
 * to every server of their route; past the limit libp2p closes a connection as soon as it has
 * accepted it (the client sees its noise handshake fail, EPIPE), and the client bans a live server
 * for 15 s (docs/benchmarks.md, "Connection limit"). A handshake costs the server one X25519
 * exchange, so this many per host and second costs little; `maxConnections` (libp2p's 300) still
 * bounds the total, which one host can now fill in seconds instead of a minute (past it, every new
 * inbound connection is refused).
 */
export const INBOUND_CONNECTIONS_PER_HOST_PER_SECOND = 100;
/**
 * Ping streams one connection may have open at once, each way (libp2p's defaults: 1 outbound, 2
 * inbound). libp2p's connection monitor pings every connection every 10 s on the ping protocol and
 * aborts the connection when its ping fails — also when it cannot open the stream because another
 * ping is open on that connection. The swarm client pings servers for RTTs on the same protocol, so
 * with the default limit the two collided now and then, and the monitor aborted every connection of a
 * client at once: all its sessions failed together (docs/benchmarks.md, "Soak").
 */
export const PING_STREAMS = 8;

/** Inbound connections a node lets be in their handshake at once (libp2p's default is 10). */
export const MAX_INBOUND_PENDING_CONNECTIONS = 64;

/** The services every plumise node has. */
export type PlumiseLibp2p = Libp2p<Record<string, unknown>>;

/** Validates bootstrap addresses: each must parse and name a peer id. */
export function parsePeerAddrs(addrs: readonly string[]): Multiaddr[] {
  return addrs.map((a) => {
    let ma: Multiaddr;
    try {
      ma = multiaddr(a);
    } catch (err) {
      throw new ConfigError("CONFIG_INVALID", `initial peer ${JSON.stringify(a)} is not a multiaddr`, {
        hint: "use the form /ip4/1.2.3.4/tcp/31330/p2p/12D3KooW…",
        cause: err,
      });
    }
    if (!ma.getComponents().some((c) => c.name === "p2p")) {
      throw new ConfigError(
        "CONFIG_INVALID",
        `initial peer ${JSON.stringify(a)} has no /p2p/<peer id> part`,
        {
          hint: "append /p2p/<peer id> of the bootstrap node (shown in its log and `plumise swarm`)",
        },
      );
    }
    return ma;
  });
}

/** Creates (but does not start) the libp2p node. */
export async function createLibp2pNode(options: Libp2pNodeOptions): Promise<PlumiseLibp2p> {
  installDenoShims();
  const host = options.host ?? "0.0.0.0";
  const port = options.port ?? 31330;
  const maxFrame = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  const buffer = maxFrame + varintLength(maxFrame) + 64 * 1024;
  const peers = parsePeerAddrs(options.initialPeers ?? []);
  const family = host.includes(":") ? "ip6" : "ip4";
  const announceIp = options.announceIp;
  const nat = natParts({
    relayServer: options.noListen ? undefined : options.relayServer,
    upnp: options.upnp,
  });
  const services: Record<string, unknown> = {
    identify: identify(),
    ping: ping({ maxInboundStreams: PING_STREAMS, maxOutboundStreams: PING_STREAMS }),
    ...nat.services,
  };
  if (options.dht !== false) {
    services.dht = kadDHT({
      protocol: KAD_PROTOCOL,
      clientMode: options.noListen === true,
      peerInfoMapper: passthroughMapper,
      allowQueryWithZeroPeers: true,
    });
  }
  try {
    return await createLibp2p({
      privateKey: options.privateKey,
      addresses: {
        listen: options.noListen ? [] : [`/${family}/${host}/tcp/${port}`],
        announceFilter: announceIp
          ? (addrs: Multiaddr[]) =>
            addrs.map((a) => {
              // a relayed address names the relay's IP, not ours
              if (a.toString().includes("/p2p-circuit")) return a;
              const parts = a.toString().split("/");
              parts[1] = announceIp.includes(":") ? "ip6" : "ip4";
              parts[2] = announceIp;
              return multiaddr(parts.join("/"));
            })
          : undefined,
      },
      connectionManager: {
        inboundConnectionThreshold: INBOUND_CONNECTIONS_PER_HOST_PER_SECOND,
        maxIncomingPendingConnections: MAX_INBOUND_PENDING_CONNECTIONS,
        ...(options.negotiationTimeoutMs === undefined ? {} : {
          inboundStreamProtocolNegotiationTimeout: options.negotiationTimeoutMs,
          outboundStreamProtocolNegotiationTimeout: options.negotiationTimeoutMs,
        }),
      },
      transports: [tcp(), ...nat.transports],
      connectionGater: nat.connectionGater,
      connectionEncrypters: [noise()],
      streamMuxers: [yamux({
        streamOptions: {
          maxReadBufferLength: buffer,
          inactivityTimeout: options.streamInactivityMs ?? 360_000,
        },
      })],
      peerDiscovery: peers.length ? [bootstrap({ list: peers.map((p) => p.toString()) })] : [],
      // deno-lint-ignore no-explicit-any
      services: services as any,
    }) as PlumiseLibp2p;
  } catch (err) {
    throw createFailure(err, host, port);
  }
}

/**
 * Why the node could not be created, in a line: a port in use is `SWARM_PORT_IN_USE` (as the
 * API's and the direct path's are), anything else `LIBP2P_CREATE_FAILED` with the error's first
 * line only (libp2p's messages carry a stack and advice for its own configuration).
 */
function createFailure(err: unknown, host: string, port: number): SwarmError {
  const text = causeChain(err).join(" ");
  if (/EADDRINUSE|address already in use|os error 98\b/i.test(text)) {
    return new SwarmError("SWARM_PORT_IN_USE", `the swarm port ${host}:${port} is taken by another process`, {
      hint: "stop that process, or choose another PETALS_PORT (--port; 0 takes any free one)",
      cause: err,
    });
  }
  const first = (err instanceof Error ? err.message : String(err)).split("\n")[0].slice(0, 300);
  return new SwarmError(
    "LIBP2P_CREATE_FAILED",
    `cannot create the libp2p node on ${host}:${port}: ${first}`,
    {
      hint: "check PETALS_HOST / PETALS_PORT and the initial peers",
      cause: err,
    },
  );
}
