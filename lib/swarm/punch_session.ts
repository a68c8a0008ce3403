/**
 * Hole punching for one inference session whose stream runs through a relay (docs/protocol.md,
 * "Hole punching"): the two sides trade public addresses and ports over the relayed stream
 * (`punch` → `punch_reply`), connect at once (hole_punch.ts), and run the direct path's handshake
 * on the new connection (the client presents the ticket, the server proves the key). The session's
 * steps then travel over that connection, sealed as on any direct path; the relayed stream stays
 * open beside it, but the session lives as long as the punched connection does (it survives the
 * relay). Whatever fails before, the session goes on over the relayed stream; nothing here is
 * needed for correctness.
 * @module
 */
import type { AbortOptions } from "../util/abort.ts";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../util/logger.ts";
import {
  acceptDirect,
  type DirectFrameChannel,
  encodeSecret,
  helloDirect,
  type PunchMessage,
  randomSecret,
  type WireLimits,
  type WireMessage,
} from "../wire/mod.ts";
import type { FrameChannel } from "./frame_channel.ts";
import { punchPort, punchTcp } from "./hole_punch.ts";
import { RateBudget } from "./rate_budget.ts";
import { withControl } from "./direct_paths.ts";
import { type NatScope, onInternet } from "./reachability.ts";
import { DEFAULT_WRITE_MS, writeWithin } from "./stream_replies.ts";

/**
 * How long the two sides try to connect, and then to say hello on the new connection: together
 * well inside a session's open timeout (10 s), so a failed punch only costs time, never the open.
 */
const PUNCH_MS = 3_000, HELLO_MS = 2_000;

/**
 * How many punches this process makes toward one address, and in all (a stranger's `punch` names
 * the address: it must not make a swarm of servers hammer a third party). Enough for a gateway
 * that opens a session per request through a relayed server.
 */
export const PUNCHES_PER_TARGET: RateBudget = new RateBudget({ burst: 16, perMinute: 60 });
export const PUNCHES_IN_ALL: RateBudget = new RateBudget({ burst: 64, perMinute: 240 });

/** Where a punch may connect: an address on the internet (`scope`), not a well-known port. */
export function punchable(host: string, port: number, scope?: NatScope): boolean {
  return onInternet(host, scope) && port >= 1024;
}

/** How a side of a punch learns its public address (from its peers' view, peer_nat.ts). */
export interface PunchDeps {
  publicHost(options?: AbortOptions): Promise<string | undefined>;
  /** Punch time limit (default 3 s: a SYN dropped by the other NAT is resent after 1 s). */
  readonly timeoutMs?: number;
  /** Frame limits of the punched channel. */
  readonly limits?: WireLimits;
  /** What counts as the internet (NAT_SCOPE; default public). */
  readonly scope?: NatScope;
  /** The simultaneous open (default `punchTcp`; tests replace it). */
  readonly connect?: typeof punchTcp;
  /** Client side: whether to try this server now (a recent punch to it failed: not yet). */
  readonly shouldTry?: () => boolean;
  /** Client side: a punch to this server failed after the server agreed (back off from it). */
  readonly failed?: () => void;
  /** Server side: punches per target address and in all (default the process's). */
  readonly budgets?: { perTarget: RateBudget; inAll: RateBudget };
}

/**
 * Server side, after the client's `punch`: answers with this side's address, port and the
 * session's secrets, then punches and accepts the client's hello — unless a frame arrives on the
 * relayed stream first (the client gave up and sent its step there). Resolves with the punched
 * channel, or with the frame that came instead (`first`, null at the stream's end).
 */
export async function servePunch(
  channel: FrameChannel,
  msg: PunchMessage,
  deps: PunchDeps,
  options: { limits?: WireLimits; signal: AbortSignal; logger: Logger },
): Promise<{ punched: DirectFrameChannel } | { first: WireMessage | null }> {
  const refuse = async (reason: string) => {
    await writeWithin(channel, { type: "punch_reply", ok: false, reason }, DEFAULT_WRITE_MS, options.signal);
    return { first: await channel.read({ signal: options.signal }) };
  };
  // a stranger must not make this server connect into its own network or to well-known services
  if (!punchable(msg.host, msg.port, deps.scope)) {
    return await refuse("the punch target must be a public address, port ≥ 1024");
  }
  const budgets = deps.budgets ?? { perTarget: PUNCHES_PER_TARGET, inAll: PUNCHES_IN_ALL };
  if (budgets.perTarget.available(msg.host) < 1 || !budgets.inAll.take("")) {
    return await refuse(
      "this server punches toward that address or in all as often as it does; stay relayed",
    );
  }
  budgets.perTarget.take(msg.host);
  const host = await deps.publicHost({ signal: options.signal }).catch(() => undefined);
  if (!host) return await refuse("this server does not know its public address");
  const port = punchPort();
  const ticket = randomSecret();
  const keyBytes = crypto.getRandomValues(new Uint8Array(32));
  await writeWithin(
    channel,
    { type: "punch_reply", ok: true, host, port, ticket, key: encodeSecret(keyBytes) },
    DEFAULT_WRITE_MS,
    options.signal,
  );
  const stop = new AbortController();
  const onAbort = () => stop.abort(options.signal.reason);
  options.signal.addEventListener("abort", onAbort, { once: true });
  const punching = (async () => {
    const conn = await (deps.connect ?? punchTcp)(port, { host: msg.host, port: msg.port }, {
      timeoutMs: deps.timeoutMs ?? PUNCH_MS,
      signal: stop.signal,
    });
    // the connection is there: the hello follows within a round trip
    return await acceptDirect(conn, { ticket, key: encodeSecret(keyBytes) }, {
      limits: options.limits ?? deps.limits,
      signal: stop.signal,
      helloMs: HELLO_MS,
    });
  })();
  const control = channel.read({ signal: options.signal });
  try {
    const won = await Promise.race([
      punching.then((punched) => ({ punched }), (err: unknown) => ({ err })),
      control.then((first) => ({ first }), (err: unknown) => ({ readErr: err })),
    ]);
    if ("punched" in won) {
      // the control stream's next read belongs to the session: re-raced by the caller
      return { punched: keepControl(won.punched, control) };
    }
    if ("err" in won) {
      options.logger.debug("hole punch failed; the session stays relayed", { err: errorMessage(won.err) });
      const r = await control.then((first) => ({ first }), (err: unknown) => ({ readErr: err }));
      if ("readErr" in r) throw r.readErr;
      return { first: r.first };
    }
    stop.abort();
    punching.then((p) => p.abort(), () => {});
    if ("readErr" in won) throw won.readErr;
    return { first: won.first };
  } finally {
    options.signal.removeEventListener("abort", onAbort);
  }
}

/**
 * The punched channel, ended when a frame arrives on the control stream (the client broke the
 * protocol). The control stream ending (the client closes it after the punched connection, or the
 * relay went away) leaves the session to the punched connection, whose own end ends it: a punched
 * session outlives its relay.
 */
function keepControl(punched: DirectFrameChannel, control: Promise<WireMessage | null>): DirectFrameChannel {
  control.then((msg) => msg !== null && punched.abort(), () => {});
  return punched;
}

/**
 * Client side, right after `opened {punch}`: tells the server this side's public address and
 * port, punches to the address in its reply and says hello with the session's ticket. Resolves with
 * the session's channel (the punched connection for steps, the relayed stream as control), or
 * undefined when anything failed (nothing more was sent on the stream then but `punch`).
 */
export async function clientPunch(
  channel: FrameChannel,
  deps: PunchDeps,
  options: { limits?: WireLimits; signal?: AbortSignal; replyMs?: number },
): Promise<FrameChannel | undefined> {
  if (deps.shouldTry && !deps.shouldTry()) return undefined;
  const host = await deps.publicHost({ signal: options.signal }).catch(() => undefined);
  if (!host) return undefined;
  const port = punchPort();
  const t = AbortSignal.timeout(options.replyMs ?? 10_000);
  const signal = options.signal ? AbortSignal.any([options.signal, t]) : t;
  await channel.write({ type: "punch", host, port }, { signal });
  const reply = await channel.read({ signal });
  if (reply?.type !== "punch_reply") {
    throw new Error(`punch answered ${reply === null ? "nothing" : reply.type}`);
  }
  if (!reply.ok || !punchable(reply.host!, reply.port!, deps.scope)) return undefined;
  try {
    const conn = await (deps.connect ?? punchTcp)(port, { host: reply.host!, port: reply.port! }, {
      timeoutMs: deps.timeoutMs ?? PUNCH_MS,
      signal: options.signal,
    });
    const direct = await helloDirect(conn, reply.host!, {
      port: reply.port!,
      ticket: reply.ticket!,
      key: reply.key!,
    }, { limits: options.limits ?? deps.limits, plain: false, signal: options.signal, ackMs: HELLO_MS });
    return withControl(direct, channel);
  } catch (err) {
    if (options.signal?.aborted) throw err;
    deps.failed?.();
    return undefined;
  }
}
