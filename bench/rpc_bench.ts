// Round-trip cost of the capnweb binding, measured against a raw WebSocket echo served by the
// same Deno.serve listener, with Nagle's algorithm off on both client sockets (npm:ws).
//
//   deno task bench bench/rpc_bench.ts      (or: deno bench -A bench/)

import { startBenchServer } from "./_server.ts";
import { formatMs, printSummary, Samples, userMessage } from "./_util.ts";

/** How many calls the "in flight" benches start at once. */
const CONCURRENCY = 100;
/** Iterations of the one-call benches, and of the many-calls-at-once benches. */
const SEQUENTIAL = { n: 3000, warmup: 300 };
const PARALLEL = { n: 200, warmup: 20 };

const samples: Samples[] = [];

/** Registers a bench whose iterations are also timed here, for the medians in the summary. */
function bench(
  group: string,
  name: string,
  counts: { n: number; warmup: number },
  fn: () => Promise<unknown>,
  baseline = false,
): Samples {
  const s = new Samples(name);
  samples.push(s);
  Deno.bench({
    name,
    group,
    baseline,
    ...counts,
    async fn() {
      const t0 = performance.now();
      await fn();
      s.add(performance.now() - t0);
    },
  });
  return s;
}

// One server for every bench in this file, with raw WebSocket routes beside the A2A ones.
const { handler, wsClient, batchClient, taskId, taskJson, echo, mimicCall, close } =
  await startBenchServer();

// Warm every path up before the first bench: deno bench runs the benches one after another, so
// without this the first one (the baseline) also pays for JIT compilation of the shared code.
for (let i = 0; i < 2000; i++) {
  await echo.roundTrip(taskJson);
  await mimicCall();
  await wsClient.ping();
  await wsClient.getTask({ id: taskId });
}

const SEQ = "sequential round trip";
const echoOne = bench(
  SEQ,
  "raw WebSocket echo",
  SEQUENTIAL,
  () => echo.roundTrip(taskJson),
  true,
);
bench(SEQ, "raw WebSocket, frames of one capnweb call", SEQUENTIAL, mimicCall);
bench(SEQ, "ping (capnweb root object, no task core)", SEQUENTIAL, () => wsClient.ping());
const getTaskWs = bench(
  SEQ,
  "getTask (capnweb, WebSocket)",
  SEQUENTIAL,
  () => wsClient.getTask({ id: taskId }),
);
bench(SEQ, "getTask (capnweb, HTTP batch)", SEQUENTIAL, () => batchClient.getTask({ id: taskId }));
bench(
  SEQ,
  "sendMessage, demo agent to COMPLETED (WebSocket)",
  SEQUENTIAL,
  () => wsClient.sendMessage({ message: userMessage("hello world") }),
);

const PAR = `${CONCURRENCY} in flight`;
function many(call: () => Promise<unknown>): () => Promise<unknown> {
  return () => Promise.all(Array.from({ length: CONCURRENCY }, call));
}
const echoMany = bench(
  PAR,
  `raw WebSocket echo x${CONCURRENCY} in flight`,
  PARALLEL,
  many(() => echo.roundTrip(taskJson)),
  true,
);
const getTaskMany = bench(
  PAR,
  `getTask x${CONCURRENCY} in flight (WebSocket)`,
  PARALLEL,
  many(() => wsClient.getTask({ id: taskId })),
);
bench(
  PAR,
  `sendMessage x${CONCURRENCY} in flight (WebSocket)`,
  PARALLEL,
  many(() => wsClient.sendMessage({ message: userMessage("hello world") })),
);

globalThis.addEventListener("unload", () => {
  const lines = samples.filter((s) => s.values.length > 0).map((s) => {
    const { n, median, p90 } = s.stats();
    const per = s.name.includes("in flight")
      ? `, ${Math.round(CONCURRENCY / (median / 1000)).toLocaleString("en-US")} calls/s`
      : "";
    return `${s.name}: median ${formatMs(median)}, p90 ${formatMs(p90)} (n=${n})${per}`;
  });
  const ratio = (a: Samples, b: Samples) =>
    a.values.length && b.values.length ? (a.stats().median / b.stats().median).toFixed(2) : "n/a";
  lines.push(`getTask / raw echo, medians, sequential: ${ratio(getTaskWs, echoOne)}x`);
  lines.push(`getTask / raw echo, medians, ${PAR}: ${ratio(getTaskMany, echoMany)}x`);
  lines.push(`echo payload: ${taskJson.length} bytes`);
  const stats = handler.stats();
  if (stats.subscribers !== 0 || stats.activeTasks !== 0) {
    lines.push(`server not idle at the end: ${JSON.stringify(stats)}`);
  }
  printSummary("rpc_bench: own timer, first 10% of iterations dropped", lines);
  // deno bench ends the worker right after this event, so teardown can only be started here.
  void close();
});
