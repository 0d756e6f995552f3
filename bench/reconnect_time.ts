// Reconnection time: how long a streaming client goes without events when its connection is
// cut, from the cut to the first event after it resumes. A TCP proxy sits between the client and
// an in-process server; the agent publishes one artifact chunk every 20 ms, and the bench cuts
// every connection through the proxy, over and over, while the client streams.
//
//   deno run --allow-net --allow-env --allow-read bench/reconnect_time.ts [cuts]

import { A2AClient } from "../client.ts";
import { type AgentExecutor, demoAgentCard, StaticTokenVerifier } from "../mod.ts";
import { serve } from "../server.ts";
import { sleep } from "../src/util/sleep.ts";
import { TcpProxy } from "../tests/tcp_proxy.ts";
import { formatMs, quantile, userMessage } from "./_util.ts";

/** Cuts per configuration. */
const CUTS = Number(Deno.args[0] ?? 30);
/** Milliseconds between two chunks of the agent. */
const PERIOD_MS = 20;
/**
 * Events to receive after a resumed event before the next cut, and at least as many agent
 * periods: the replay after a reconnection delivers a burst, which must be over by then.
 */
const GAP_EVENTS = 5;

/** Chunks the agent has published (resolved by the task core), per task. */
const published = new Map<string, number>();

/**
 * Publishes WORKING, then one artifact chunk every PERIOD_MS until its task is canceled. Each
 * chunk has its own artifactId (so the task core does no artifact merging) and carries the time
 * it was published, in this process's `performance.now()`.
 */
const tickAgent: AgentExecutor = {
  async execute(ctx, events) {
    await events.status("TASK_STATE_WORKING");
    for (let i = 0; !ctx.signal.aborted; i++) {
      try {
        await events.artifact({
          artifactId: `tick-${i}`,
          parts: [{ text: String(performance.now()) }],
        });
      } catch (err) {
        if (ctx.signal.aborted) return;
        throw err;
      }
      published.set(ctx.taskId, i + 1);
      await sleep(PERIOD_MS, ctx.signal);
    }
  },
};

/** What one cut measured, in milliseconds from the cut. */
interface CutSample {
  /** From the cut to the first event the for-await loop received after the reconnection. */
  resumed: number;
  /** From the cut to the client's state changing to "open" again. */
  open: number;
  /** How long after its publication (or after the cut, if later) that event arrived. */
  late: number;
}

interface Run {
  samples: CutSample[];
  /**
   * Milliseconds from the cut to each event received after it but before the reconnection:
   * events already on their way to the for-await loop.
   */
  inTransit: number[];
  events: number;
  chunks: number;
  published: number;
  exactlyOnce: string | undefined;
  connections: number;
}

const token = "token-alice";
const server = serve({
  port: 0,
  hostname: "127.0.0.1",
  agentCard: demoAgentCard,
  executor: tickAgent,
  verifier: StaticTokenVerifier.fromList("alice=token-alice"),
});

async function measure(reconnect: { initialDelayMs?: number }): Promise<Run> {
  await using proxy = new TcpProxy(server.addr);
  let openedAt = -Infinity;
  const client = await A2AClient.connect(proxy.url, {
    token,
    reconnect,
    onStateChange: (state) => {
      if (state === "open") openedAt = performance.now();
    },
  });
  const samples: CutSample[] = [];
  const seqs: number[] = [];
  const inTransit: number[] = [];
  let chunks = 0;
  let taskId: string | undefined;
  /** Set when a cut is scheduled; `at` once it happened. */
  let cut: { at?: number } | undefined;
  let sinceResume = 0;
  let resumedAt = -Infinity;
  let canceling = false;
  for await (const event of client.sendStreamingMessage({ message: userMessage("go") })) {
    const now = performance.now();
    seqs.push(event.seq);
    taskId ??= event.task?.id ?? event.statusUpdate?.taskId;
    if (event.artifactUpdate) chunks++;
    if (cut?.at !== undefined && now > cut.at) {
      if (openedAt < cut.at) {
        inTransit.push(now - cut.at);
      } else {
        const text = event.artifactUpdate?.artifact.parts[0]?.text;
        const emitted = text === undefined ? cut.at : Number(text);
        samples.push({
          resumed: now - cut.at,
          open: openedAt - cut.at,
          late: now - Math.max(cut.at, emitted),
        });
        cut = undefined;
        sinceResume = 0;
        resumedAt = now;
      }
    } else if (
      cut === undefined && ++sinceResume >= GAP_EVENTS && now - resumedAt >= GAP_EVENTS * PERIOD_MS
    ) {
      if (samples.length < CUTS) {
        // At a random point of the agent's period, so that the cut falls anywhere between two
        // chunks.
        const scheduled: { at?: number } = {};
        cut = scheduled;
        setTimeout(() => {
          scheduled.at = performance.now();
          void proxy.cut();
        }, Math.random() * PERIOD_MS);
      } else if (!canceling && taskId !== undefined) {
        canceling = true;
        // Ends the stream with the CANCELED status update.
        void client.cancelTask({ id: taskId });
      }
    }
  }
  const connections = proxy.accepted;
  await client.close();
  let exactlyOnce: string | undefined;
  for (let i = 0; i < seqs.length; i++) {
    if (seqs[i] !== i + 1) {
      exactlyOnce = `event ${i} has seq ${seqs[i]}, expected ${i + 1}`;
      break;
    }
  }
  return {
    samples,
    inTransit,
    events: seqs.length,
    chunks,
    published: published.get(taskId ?? "") ?? -1,
    exactlyOnce,
    connections,
  };
}

const configs: [string, { initialDelayMs?: number }][] = [
  ["default (initialDelayMs 250, first wait 125-250 ms)", {}],
  ["initialDelayMs 0 (pure reconnect cost)", { initialDelayMs: 0 }],
];
const stat = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `${formatMs(quantile(s, 0.5))} / ${formatMs(quantile(s, 0.9))} / ${formatMs(s.at(-1)!)}`;
};
const lines = [
  `${CUTS} cuts per configuration; agent publishes a chunk every ${PERIOD_MS} ms; ` +
  `times are median / p90 / max from the cut`,
  "configuration | cut to first resumed event | cut to connection open | " +
  "resumed event's delay after publication or cut | events in transit at a cut | exactly once",
];
let failed = false;
for (const [name, reconnect] of configs) {
  const r = await measure(reconnect);
  const ok = r.exactlyOnce === undefined && r.chunks === r.published &&
    r.samples.length === CUTS;
  failed ||= !ok;
  lines.push(
    `${name} | ${stat(r.samples.map((s) => s.resumed))} | ${stat(r.samples.map((s) => s.open))} | ${
      stat(r.samples.map((s) => s.late))
    } | ${r.inTransit.length}${
      r.inTransit.length ? ` (${stat(r.inTransit)} after the cut)` : ""
    } | ${ok ? "yes" : "NO"}: ${r.events} events, seq 1..${r.events} ${
      r.exactlyOnce ?? "each +1"
    }, ${r.chunks} of ${r.published} chunks published, ${r.connections} connections`,
  );
}
// deno-lint-ignore no-console
console.log(lines.join("\n"));
await server.shutdown();
// Something of the cut connections keeps the event loop alive for about 15 s more (as in
// _server.ts); nothing is left to measure, so leave now.
Deno.exit(failed ? 1 : 0);
