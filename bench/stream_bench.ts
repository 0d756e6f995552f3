// Streaming throughput: how fast the events of one task reach 1 and 100 capnweb subscribers
// when the agent publishes as fast as the task core lets it.
//
//   deno task bench bench/stream_bench.ts      (or: deno bench -A bench/)

import { A2AClient, type StreamEvent } from "../client.ts";
import {
  type AgentExecutor,
  demoAgentCard,
  StaticTokenVerifier,
  TaskManager,
  textOf,
} from "../mod.ts";
import { serve } from "../server.ts";
import { formatMs, printSummary, Samples, userMessage } from "./_util.ts";

/** Artifact chunks the agent publishes per task. */
const CHUNKS = 2000;
/** Subscribers of the fan-out bench (one connection each). */
const SUBSCRIBERS = 100;
/**
 * Per-subscriber buffer for the benches. The agent publishes without yielding to I/O, so a
 * subscriber may have nearly every event of the task waiting; the default (1024) ends such a
 * stream with StreamOverflowError, which the probe below shows.
 */
const BUFFER_LIMIT = 4096;

/** Resolves when the fan-out bench has every subscriber in place. */
let gate: Promise<void> = Promise.resolve();

/**
 * For a message "N": WORKING, then waits on the gate, then N chunks of one artifact, each
 * awaited, then COMPLETED.
 */
const burstAgent: AgentExecutor = {
  async execute(ctx, events) {
    const n = Number(textOf(ctx.message));
    await events.status("TASK_STATE_WORKING");
    await gate;
    for (let i = 0; i < n; i++) {
      await events.artifact(
        { artifactId: "burst", parts: [{ text: `chunk ${i} ` }] },
        { append: i > 0, lastChunk: i === n - 1 },
      );
    }
    await events.status("TASK_STATE_COMPLETED");
  },
};

function startServer(limits: { subscriberBufferLimit?: number }) {
  return serve({
    port: 0,
    hostname: "127.0.0.1",
    agentCard: demoAgentCard,
    executor: burstAgent,
    verifier: StaticTokenVerifier.fromList("alice=token-alice"),
    limits,
  });
}

/** Reads a stream to its end; counts events, and remembers how it ended. */
async function drain(
  stream: AsyncIterable<StreamEvent>,
  onFirst?: () => void,
): Promise<{ events: number; chunks: number; lastSeq: number; error?: unknown }> {
  let events = 0;
  let chunks = 0;
  let lastSeq = 0;
  try {
    for await (const event of stream) {
      if (events++ === 0) onFirst?.();
      if (event.artifactUpdate) chunks++;
      lastSeq = event.seq;
    }
    return { events, chunks, lastSeq };
  } catch (error) {
    return { events, chunks, lastSeq, error };
  }
}

function describeError(error: unknown): string {
  const e = error as { code?: unknown; message?: unknown; constructor?: { name?: string } };
  return `${e.constructor?.name} code ${e.code}: ${e.message}`;
}

const token = "token-alice";
const server = startServer({ subscriberBufferLimit: BUFFER_LIMIT });
const publisher = await A2AClient.connect(server.url, { token });
const subscribers = await Promise.all(
  Array.from({ length: SUBSCRIBERS }, () => A2AClient.connect(server.url, { token })),
);

// The probe: one streamed task of CHUNKS events against a server with the default limits.
const probeLines: string[] = [];
{
  const probeServer = startServer({});
  const client = await A2AClient.connect(probeServer.url, { token });
  for (const n of [1000, CHUNKS]) {
    const r = await drain(client.sendStreamingMessage({ message: userMessage(String(n)) }));
    probeLines.push(
      `default subscriberBufferLimit, ${n} chunks, 1 subscriber: ` +
        (r.error === undefined
          ? `complete (${r.chunks} chunks received)`
          : `ended after ${r.chunks} chunks (last seq ${r.lastSeq}) with ${
            describeError(r.error)
          }`),
    );
  }
  await client.close();
  await probeServer.shutdown();
}

function check(r: Awaited<ReturnType<typeof drain>>, what: string): void {
  if (r.error !== undefined || r.chunks !== CHUNKS) {
    throw new Error(
      `${what}: got ${r.chunks} of ${CHUNKS} chunks` +
        (r.error === undefined ? "" : `, then ${describeError(r.error)}`),
    );
  }
}

async function idle(): Promise<void> {
  // Lets the server finish releasing the last task's streams before the next iteration.
  for (let i = 0; i < 500 && server.handler.stats().subscribers > 0; i++) {
    await new Promise((r) => setTimeout(r, 2));
  }
}

const GROUP = `${CHUNKS} events of one task`;
const coreSamples = new Samples(`task core only, 1 subscriber`);
const oneSamples = new Samples(`capnweb, 1 subscriber (sendStreamingMessage)`);
const fanSamples = new Samples(`capnweb, ${SUBSCRIBERS} subscribers (subscribeToTask)`);
let eventsPerTask = 0;

// The core alone, no network: the ceiling that the binding adds its cost to.
const core = new TaskManager({ executor: burstAgent, subscriberBufferLimit: BUFFER_LIMIT });
Deno.bench({
  name: coreSamples.name,
  group: GROUP,
  baseline: true,
  n: 50,
  warmup: 5,
  async fn() {
    const t0 = performance.now();
    const sub = await core.sendStreamingMessage("alice", {
      message: userMessage(String(CHUNKS)),
    });
    const r = await drain(sub);
    coreSamples.add(performance.now() - t0);
    check(r, "core");
  },
});

Deno.bench({
  name: oneSamples.name,
  group: GROUP,
  n: 20,
  warmup: 3,
  async fn(b) {
    await idle();
    b.start();
    const t0 = performance.now();
    const r = await drain(publisher.sendStreamingMessage({ message: userMessage(String(CHUNKS)) }));
    oneSamples.add(performance.now() - t0);
    b.end();
    check(r, "1 subscriber");
    eventsPerTask = r.events;
  },
});

Deno.bench({
  name: fanSamples.name,
  group: GROUP,
  n: 5,
  warmup: 1,
  async fn(b) {
    await idle();
    const opened = Promise.withResolvers<void>();
    gate = opened.promise;
    try {
      const { task } = await publisher.sendMessage({
        message: userMessage(String(CHUNKS)),
        configuration: { returnImmediately: true },
      });
      if (!task) throw new Error("The agent made no task");
      let ready = 0;
      const allReady = Promise.withResolvers<void>();
      const done = subscribers.map((c) =>
        drain(c.subscribeToTask({ id: task.id }), () => {
          if (++ready === SUBSCRIBERS) allReady.resolve();
        })
      );
      await allReady.promise;
      // Timed from the moment the agent may publish until every iterator has ended.
      b.start();
      const t0 = performance.now();
      opened.resolve();
      const results = await Promise.all(done);
      fanSamples.add(performance.now() - t0);
      b.end();
      results.forEach((r, i) => check(r, `subscriber ${i}`));
    } finally {
      opened.resolve();
      gate = Promise.resolve();
    }
  },
});

globalThis.addEventListener("unload", () => {
  const lines = [...probeLines, `per-subscriber buffer limit in the benches: ${BUFFER_LIMIT}`];
  const rate = (events: number, ms: number) =>
    Math.round(events / (ms / 1000)).toLocaleString("en-US");
  for (
    const [s, subs, events] of [
      [coreSamples, 1, CHUNKS + 3],
      [oneSamples, 1, eventsPerTask],
      [fanSamples, SUBSCRIBERS, CHUNKS + 1],
    ] as const
  ) {
    if (s.values.length === 0) continue;
    const { n, median, p90 } = s.stats();
    lines.push(
      `${s.name}: median ${formatMs(median)}, p90 ${formatMs(p90)} (n=${n}); ` +
        `${rate(events, median)} events/s per subscriber, ${
          rate(events * subs, median)
        } events/s in all (${events} events per subscriber)`,
    );
  }
  const stats = server.handler.stats();
  if (stats.subscribers !== 0 || stats.activeTasks !== 0) {
    lines.push(`server not idle at the end: ${JSON.stringify(stats)}`);
  }
  printSummary("stream_bench: own timer, first 10% of iterations dropped", lines);
  // deno bench ends the worker right after this event, so teardown can only be started here.
  for (const c of [publisher, ...subscribers]) void c.close();
  void core.close();
  void server.shutdown();
});
