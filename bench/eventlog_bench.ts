// The cost of the per-task event log in the task core: a burst of artifact chunks through a
// TaskManager, with no network and no subscriber but the one sendMessage itself reads, on each
// TaskStore; the heap an event takes in the in-memory log; and, apart, what appending many
// chunks to one artifact costs.
//
//   deno bench -A --unstable-kv --v8-flags=--expose-gc bench/eventlog_bench.ts
//
// (--unstable-kv for KvTaskStore, write permission for its file, --expose-gc for the memory
// figure, which is left out without it.)

import { type AgentExecutor, InMemoryTaskStore, TaskManager, textOf } from "../mod.ts";
import { KvTaskStore } from "../src/tasks/kv_store.ts";
import type { TaskStore } from "../src/tasks/store.ts";
import { formatMs, printSummary, Samples, userMessage } from "./_util.ts";

/** Artifact chunks per task in the store benches. */
const CHUNKS = 1000;
/** Chunks in the memory probe. */
const MEMORY_EVENTS = 20_000;
/** Chunks per task in the one-artifact-or-many comparison. */
const MERGE_CHUNKS = [1000, 4000];

type Mode = "distinct" | "replace" | "append";

/**
 * For a message "MODE N": N artifact chunks, each awaited, then COMPLETED. "distinct": each
 * chunk is an artifact of its own; "replace": every chunk replaces artifact "a" (the task stays
 * the same size, only the log grows); "append": every chunk is appended to artifact "a".
 */
const burstAgent: AgentExecutor = {
  async execute(ctx, events) {
    const [mode, count] = textOf(ctx.message).split(" ") as [Mode, string];
    const n = Number(count);
    for (let i = 0; i < n; i++) {
      await events.artifact(
        { artifactId: mode === "distinct" ? `a${i}` : "a", parts: [{ text: `chunk ${i} ` }] },
        mode === "append" ? { append: i > 0 } : {},
      );
    }
    await events.status("TASK_STATE_COMPLETED");
  },
};

async function burst(manager: TaskManager, mode: Mode, n: number): Promise<string> {
  const { task } = await manager.sendMessage("alice", { message: userMessage(`${mode} ${n}`) });
  if (task?.status.state !== "TASK_STATE_COMPLETED") {
    throw new Error(`The burst ended in ${task?.status.state}`);
  }
  return task.id;
}

// `deno bench -A bench/` and `deno task bench` run this file too, without --unstable-kv or
// without write permission: the KvTaskStore benches that cannot run are left out, and said so.
const skipped: string[] = [];
const kvEnabled = typeof Deno.openKv === "function";
const canWrite = Deno.permissions.querySync({ name: "write" }).state === "granted";
if (!kvEnabled) skipped.push("KvTaskStore benches left out: run with --unstable-kv");
else if (!canWrite) skipped.push("KvTaskStore on a file left out: needs --allow-write");
const kvMemory = kvEnabled ? await KvTaskStore.open(":memory:") : undefined;
const kvPath = kvEnabled && canWrite
  ? await Deno.makeTempFile({ prefix: "eventlog_bench_", suffix: ".sqlite" })
  : undefined;
const kvFile = kvPath === undefined ? undefined : await KvTaskStore.open(kvPath);
const stores: [string, TaskStore, number][] = [["InMemoryTaskStore", new InMemoryTaskStore(), 100]];
if (kvMemory) stores.push(['KvTaskStore, Deno.openKv(":memory:")', kvMemory, 10]);
if (kvFile) stores.push(["KvTaskStore, temp file", kvFile, 5]);
const managers: TaskManager[] = [];
const allSamples: [Samples, number][] = [];

for (const mode of ["replace", "distinct"] as const) {
  const group = `${CHUNKS} chunks, ${
    mode === "replace" ? "each replacing one artifact" : "each its own artifact"
  }`;
  for (const [name, store, n] of stores) {
    const manager = new TaskManager({ executor: burstAgent, store });
    managers.push(manager);
    const samples = new Samples(`${name}; ${group}`);
    allSamples.push([samples, CHUNKS + 2]);
    Deno.bench({
      name,
      group,
      baseline: store instanceof InMemoryTaskStore,
      n,
      warmup: Math.max(1, n / 10),
      async fn() {
        const t0 = performance.now();
        await burst(manager, mode, CHUNKS);
        samples.add(performance.now() - t0);
      },
    });
  }
}

// One artifact appended to again and again, against as many artifacts, in memory, at two sizes:
// both grow faster than the number of chunks, the replaced artifact does not.
const mergeManager = new TaskManager({ executor: burstAgent });
managers.push(mergeManager);
for (const chunks of MERGE_CHUNKS) {
  for (const mode of ["replace", "distinct", "append"] as const) {
    const name = {
      replace: "each chunk replaces one artifact",
      distinct: "each chunk its own artifact",
      append: "every chunk appended to one artifact",
    }[mode];
    const samples = new Samples(`${name}, ${chunks} chunks (InMemoryTaskStore)`);
    allSamples.push([samples, chunks + 2]);
    Deno.bench({
      name,
      group: `${chunks} chunks, InMemoryTaskStore`,
      baseline: mode === "replace",
      n: 20,
      warmup: 2,
      async fn() {
        const t0 = performance.now();
        await burst(mergeManager, mode, chunks);
        samples.add(performance.now() - t0);
      },
    });
  }
}

// The heap an event takes in the in-memory log, measured before the benches run: a task whose
// chunks all replace one artifact, so that what stays on the heap is the log.
const gc = (globalThis as { gc?: () => void }).gc;
const memoryLines: string[] = [];
if (gc) {
  const store = new InMemoryTaskStore();
  const manager = new TaskManager({ executor: burstAgent, store });
  await burst(manager, "replace", 100); // warm up the code paths and their allocations
  gc();
  const before = Deno.memoryUsage().heapUsed;
  const id = await burst(manager, "replace", MEMORY_EVENTS);
  gc();
  const after = Deno.memoryUsage().heapUsed;
  const logged = (await store.events(id, 0)).length;
  memoryLines.push(
    `in-memory log: ${logged} events (${MEMORY_EVENTS} chunks of about 10 characters) ` +
      `took ${((after - before) / 2 ** 20).toFixed(2)} MiB of heap, ${
        Math.round((after - before) / logged)
      } bytes per event`,
  );
  await manager.close();
} else {
  memoryLines.push("memory per event: not measured (run with --v8-flags=--expose-gc)");
}

globalThis.addEventListener("unload", () => {
  const lines = [...skipped, ...memoryLines];
  for (const [s, events] of allSamples) {
    if (s.values.length === 0) continue;
    const { n, median, p90 } = s.stats();
    lines.push(
      `${s.name}: median ${formatMs(median)}, p90 ${formatMs(p90)} (n=${n}); ${
        Math.round(events / (median / 1000)).toLocaleString("en-US")
      } events/s, ${(median * 1000 / events).toFixed(2)} µs per event (${events} events)`,
    );
  }
  printSummary("eventlog_bench: own timer, first 10% of iterations dropped", lines);
  // deno bench ends the worker right after this event, so teardown can only be started here.
  for (const m of managers) void m.close();
  kvMemory?.close();
  kvFile?.close();
  for (const suffix of kvPath === undefined ? [] : ["", "-wal", "-shm"]) {
    try {
      Deno.removeSync(kvPath + suffix);
    } catch {
      // not there
    }
  }
});
