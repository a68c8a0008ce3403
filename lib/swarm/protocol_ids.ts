/** Protocol ids of the swarm (versioned `/plumise/<name>/<semver>`). @module */
export const INFO_PROTOCOL = "/plumise/info/1.0.0";
export const INFERENCE_PROTOCOL = "/plumise/inference/1.0.0";
export const FORWARD_PROTOCOL = "/plumise/forward/1.0.0";
/** Pull the swarm table (request/response). */
export const TABLE_PROTOCOL = "/plumise/table/1.0.0";
/** Push one signed record (dissemination, flooded with de-duplication by peer/seq). */
export const RECORD_PROTOCOL = "/plumise/record/1.0.0";
/** Private kad-dht namespace (never the public IPFS DHT). */
export const KAD_PROTOCOL = "/plumise/kad/1.0.0";
/** Reachability: how a peer sees this node, and whether it can dial it back (dial_back.ts). */
export const REACH_PROTOCOL = "/plumise/reach/1.0.0";
