/**
 * A swarm of plumise nodes (nat_node_process.ts) in a NAT test bed (netns_bed.ts), for the NAT
 * tests and the NAT benchmark: start nodes in bed hosts, wait for their events, generate through a
 * client, compare with the single-process output.
 * @module
 */
import { FakeBackend, FakeHead, FakeTokenizer } from "../../lib/testing/mod.ts";
import { generateText } from "../../lib/swarm/client/generate_text.ts";
import type { NatNodeConfig } from "./nat_node_process.ts";
import type { NetnsBed } from "./netns_bed.ts";
import { type SwarmEvent, SwarmProcess } from "./swarm_process.ts";

export const MODEL = "fake/model";
export const NB = 9, H = 16;
const SCRIPT = new URL("./nat_node_process.ts", import.meta.url).pathname;

/** The tokens a single process generates for `prompt` (all blocks local, greedy). */
export async function localReference(prompt: string, maxNewTokens: number): Promise<number[]> {
  const b = new FakeBackend({ modelId: MODEL, hiddenSize: H, numBlocks: NB });
  await b.start();
  const session = await b.openSession({ start: 0, end: NB, maxLength: 128, batch: 1 });
  const r = await generateText({ head: new FakeHead(H), tokenizer: new FakeTokenizer(), session }, prompt, {
    maxNewTokens,
    eosTokenIds: [],
  }).complete();
  await b.stop();
  return [...r.tokenIds];
}

/** A node process in a bed host. */
export class BedNode {
  constructor(readonly host: string, readonly config: NatNodeConfig, readonly proc: SwarmProcess) {}

  get peerId(): string {
    return this.proc.peerId;
  }

  /** Its dialable address on the bed's internet: `/ip4/<ip>/tcp/4001/p2p/<id>`. */
  addr(bed: NetnsBed): string {
    return `/ip4/${bed.host(this.host).ip}/tcp/${this.config.port ?? 4001}/p2p/${this.peerId}`;
  }

  /** The latest event of a kind. */
  last(kind: string): SwarmEvent | undefined {
    for (let i = this.proc.events.length - 1; i >= 0; i--) {
      if (this.proc.events[i].event === kind) return this.proc.events[i];
    }
    return undefined;
  }

  /** Waits for an event of `kind` (past ones included) matching `pred`, newest first. */
  async waitFor(
    kind: string,
    pred: (e: SwarmEvent) => boolean,
    ms: number,
    what: string,
  ): Promise<SwarmEvent> {
    return await this.proc.waitFor((e) => e.event === kind && pred(e), ms, `${what} (${this.host})`);
  }
}

export class BedSwarm {
  readonly nodes: BedNode[] = [];
  constructor(readonly bed: NetnsBed) {}

  /** Starts a node in bed host `host`; resolves once it printed `ready`. */
  async start(host: string, given: NatNodeConfig, readyMs = 30_000): Promise<BedNode> {
    // the bed's "internet" is the benchmarking range 198.18.0.0/15, a special-purpose (private)
    // range: its nodes count private addresses as the internet (NAT_SCOPE=private)
    const config: NatNodeConfig = { ...given, nat: { scope: "private", ...given.nat } };
    const proc = new SwarmProcess(config as unknown as Record<string, unknown>, [], {
      script: SCRIPT,
      prefix: ["ip", "netns", "exec", this.bed.host(host).ns],
    });
    const node = new BedNode(host, config, proc);
    this.nodes.push(node);
    const ready = await Promise.race([
      proc.waitFor(
        (e) => e.event === "ready" || e.event === "probe",
        readyMs,
        `${config.role} in ${host} ready`,
      ),
      proc.done.then((s) => {
        throw new Error(`${config.role} in ${host} exited with ${s.code} before it was ready`);
      }),
    ]);
    if (ready.event === "ready") proc.peerId = ready.peerId as string;
    return node;
  }

  /** Runs one generation on a client node; resolves with its `done` event (throws on `error`). */
  async generate(
    client: BedNode,
    o: { prompt: string; maxNewTokens: number; pauseAt?: number; servers?: number; avoid?: string[] },
    onPaused?: () => Promise<void>,
    ms = 60_000,
  ): Promise<SwarmEvent> {
    const from = client.proc.events.length;
    await client.proc.send(`generate ${JSON.stringify(o)}`);
    const fresh = (e: SwarmEvent) => client.proc.events.indexOf(e) >= from;
    if (o.pauseAt !== undefined && onPaused) {
      await client.proc.waitFor(
        (e) => fresh(e) && (e.event === "paused" || e.event === "error"),
        ms,
        "the pause",
      );
      await onPaused();
      await client.proc.send("resume");
    }
    const end = await client.proc.waitFor(
      (e) => fresh(e) && (e.event === "done" || e.event === "error"),
      ms,
      "the generation",
    );
    if (end.event === "error") throw new Error(`generation failed: ${end.message}`);
    return end;
  }

  /** Stops a node gracefully (a server announces itself offline first) and waits for it. */
  async stopGracefully(node: BedNode): Promise<void> {
    await node.proc.send("stop").catch(() => {});
    await node.proc.done;
    await node.proc.close();
    this.nodes.splice(this.nodes.indexOf(node), 1);
  }

  /** Stops a node the hard way (SIGKILL) and waits for it. */
  async kill(node: BedNode): Promise<void> {
    await node.proc.close();
    this.nodes.splice(this.nodes.indexOf(node), 1);
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.splice(0).map((n) => n.proc.close()));
  }
}
