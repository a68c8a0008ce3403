/**
 * The configuration keys of nodes behind NAT and of relays (docs/operations.md, "Behind NAT"):
 * part of the one schema table (schema.ts, through swarm_runtime_keys.ts).
 * @module
 */
import type { KeySpec } from "./key_spec.ts";

export const NAT_KEYS: readonly KeySpec[] = [
  {
    key: "relayService",
    env: "RELAY_SERVICE",
    flag: "relay-service",
    arg: "<mode>",
    type: "enum",
    choices: ["auto", "on", "off"],
    default: "auto",
    description:
      "relay circuits for peers behind NAT: auto (while this node is reachable from the internet), on, off",
  },
  {
    key: "relayMaxReservations",
    env: "RELAY_MAX_RESERVATIONS",
    flag: "relay-max-reservations",
    arg: "<n>",
    type: "int",
    min: 1,
    max: 4096,
    unit: "peers",
    default: 32,
    description: "as a relay: peers behind NAT that may hold a slot here at once",
  },
  {
    key: "relayMaxCircuits",
    env: "RELAY_MAX_CIRCUITS",
    flag: "relay-max-circuits",
    arg: "<n>",
    type: "int",
    min: 1,
    max: 4096,
    unit: "circuits",
    default: 64,
    description: "as a relay: connections relayed at once",
  },
  {
    key: "relayCircuitMib",
    env: "RELAY_CIRCUIT_MIB",
    flag: "relay-circuit-mib",
    arg: "<MiB>",
    type: "int",
    min: 1,
    max: 1_048_576,
    unit: "MiB",
    default: 1024,
    description: "as a relay: data one relayed connection may carry (both ways) before it is ended",
  },
  {
    key: "relayCircuitSeconds",
    env: "RELAY_CIRCUIT_SECONDS",
    flag: "relay-circuit-seconds",
    arg: "<seconds>",
    type: "int",
    min: 10,
    max: 86_400,
    unit: "seconds",
    default: 1800,
    description: "as a relay: how long one relayed connection may last before it is ended",
  },
  {
    key: "relayReservations",
    env: "RELAY_RESERVATIONS",
    flag: "relay-reservations",
    arg: "<n>",
    type: "int",
    min: 0,
    max: 8,
    unit: "relays",
    default: 2,
    description: "behind NAT: relays to hold a slot on, whose addresses the record announces (0: none)",
  },
  {
    key: "holePunch",
    env: "HOLE_PUNCH",
    type: "bool",
    default: true,
    description:
      "move sessions that run through a relay onto a connection punched through the NATs (env only; false: stay relayed)",
  },
  {
    key: "upnp",
    env: "UPNP",
    flag: "upnp",
    type: "bool",
    default: false,
    description: "ask the router to forward the swarm port (UPnP IGD / NAT-PMP)",
  },
  {
    key: "gatewayRelayUrl",
    env: "GATEWAY_RELAY_URL",
    flag: "gateway-relay-url",
    arg: "<url>",
    type: "wsUrl",
    description:
      "keep a WebSocket to the gateway's agent relay (ws(s)://<gateway>/ws/agent-relay) and serve its requests through it",
  },
  {
    key: "natScope",
    env: "NAT_SCOPE",
    flag: "nat-scope",
    arg: "<scope>",
    type: "enum",
    choices: ["public", "private"],
    default: "public",
    description:
      "addresses that count as the internet for reachability and hole punching: public, or private too (a private network with NATs inside)",
  },
];
