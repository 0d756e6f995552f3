// PostgresTaskStore from one process to another: how many events per second of one streaming
// task get from commits on store A to a watch on store B (two store instances, two pools, two
// listening connections, in one process so both ends share a clock), and how long each event
// takes from its commit to B's onEvents: with doorbells (NOTIFY), by polling alone, and from an
// agent run by a TaskManager on A.
//
//   deno run -A bench/pg_store_bench.ts [events=10000] [postgres://url]
//
// Without a URL it starts a throwaway cluster from the machine's PostgreSQL binaries, as the
// tests do (tests/pg_cluster.ts: fsync and synchronous_commit off, so commits do not wait for a
// disk; with them on, a commit costs at least one WAL flush).

import postgres from "postgres";
import { type AgentExecutor, type Task, TaskManager } from "../mod.ts";
import { PostgresTaskStore, type PostgresTaskStoreOptions } from "../src/tasks/pg_store.ts";
import type { StreamEvent } from "../src/tasks/store.ts";
import { freshDatabase } from "../tests/pg_cluster.ts";
import { formatMs, printSummary, quantile, userMessage } from "./_util.ts";

const EVENTS = Number(Deno.args[0] ?? 10_000);
const URL_ARG = Deno.args[1];

const lines: string[] = [];
const say = (line: string) => {
  lines.push(line);
  // deno-lint-ignore no-console
  console.log(line);
};

async function database(): Promise<string> {
  if (URL_ARG) return URL_ARG;
  const url = await freshDatabase();
  if (!url) throw new Error("No PostgreSQL binaries found: pass a database URL");
  return url;
}

/** Commit → onEvents latencies and the overall rate of one run. */
function report(label: string, ms: number, latencies: number[], commits: number[]): void {
  const lat = [...latencies].sort((a, b) => a - b);
  const com = [...commits].sort((a, b) => a - b);
  say(
    `${label}: ${Math.round(latencies.length / (ms / 1000))} events/s; commit→onEvents ` +
      `p50 ${formatMs(quantile(lat, 0.5))}, p99 ${formatMs(quantile(lat, 0.99))}, ` +
      `max ${formatMs(lat.at(-1) ?? NaN)}` +
      (com.length
        ? `; commit p50 ${formatMs(quantile(com, 0.5))}, p99 ${formatMs(quantile(com, 0.99))}`
        : ""),
  );
}

/**
 * Store A commits `n` artifact chunks of one task, one after another as the task core does;
 * store B watches. Latency runs from the call of A's `commit()` to B's onEvents.
 */
async function storeToStore(
  url: string,
  label: string,
  n: number,
  optionsA: PostgresTaskStoreOptions,
  optionsB: PostgresTaskStoreOptions,
): Promise<void> {
  const a = await PostgresTaskStore.connect(url, optionsA);
  const b = await PostgresTaskStore.connect(url, optionsB);
  try {
    const id = crypto.randomUUID();
    let task: Task = {
      id,
      contextId: crypto.randomUUID(),
      status: { state: "TASK_STATE_WORKING", timestamp: new Date().toISOString() },
    };
    await a.commit({ owner: "bench", task, lastSeq: 1 }, {
      created: true,
      event: { seq: 1, task },
    });
    // When each commit started: its event may reach B before A has the commit's answer.
    const committedAt = new Float64Array(n + 2);
    const latencies: number[] = [];
    const commits: number[] = [];
    const done = Promise.withResolvers<void>();
    b.watch(id, 1, (events) => {
      const now = performance.now();
      for (const e of events) latencies.push(now - committedAt[e.seq]!);
      if (events.at(-1)!.seq === n + 1) done.resolve();
    }, done.reject);
    const parts: Array<{ text: string }> = [];
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      const seq = i + 2;
      const chunk = { text: `chunk ${i} `.padEnd(100, ".") };
      parts.push(chunk);
      task = { ...task, artifacts: [{ artifactId: "out", parts }] };
      const event: StreamEvent = {
        seq,
        artifactUpdate: {
          taskId: id,
          contextId: task.contextId,
          artifact: { artifactId: "out", parts: [chunk] },
          append: i > 0,
        },
      };
      const t0 = committedAt[seq] = performance.now();
      await a.commit({ owner: "bench", task, lastSeq: seq }, {
        event,
        artifact: { index: 0, fromPart: i },
      });
      commits.push(performance.now() - t0);
    }
    await done.promise;
    report(label, performance.now() - start, latencies, commits);
  } finally {
    await a.close();
    await b.close();
  }
}

/** A TaskManager on A runs an agent that streams `n` chunks; B watches the task's log. */
async function managerToStore(url: string, n: number): Promise<void> {
  const a = await PostgresTaskStore.connect(url);
  const b = await PostgresTaskStore.connect(url);
  const executor: AgentExecutor = {
    async execute(_ctx, events) {
      await events.status("TASK_STATE_WORKING");
      for (let i = 0; i < n; i++) {
        await events.artifact({ artifactId: "out", parts: [{ text: `chunk ${i}` }] }, {
          append: i > 0,
        });
      }
      await events.status("TASK_STATE_COMPLETED");
    },
  };
  const manager = new TaskManager({ store: a, executor });
  try {
    const start = performance.now();
    const res = await manager.sendMessage("bench", {
      message: userMessage("go"),
      configuration: { returnImmediately: true },
    });
    const id = res.task!.id;
    const done = Promise.withResolvers<void>();
    let got = 0;
    b.watch(id, 0, (events) => {
      got += events.length;
      if (events.some((e) => e.statusUpdate?.status.state === "TASK_STATE_COMPLETED")) {
        done.resolve();
      }
    }, done.reject);
    await done.promise;
    const ms = performance.now() - start;
    say(
      `TaskManager on A → watch on B: ${got} events in ${formatMs(ms)}, ` +
        `${Math.round(got / (ms / 1000))} events/s`,
    );
  } finally {
    await manager.close();
    await a.close();
    await b.close();
  }
}

/** The floor under a commit: one round trip of `SELECT 1` on the same machine. */
async function roundTrip(url: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, max_lifetime: null });
  try {
    for (let i = 0; i < 200; i++) await sql`SELECT 1`;
    const times: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const t0 = performance.now();
      await sql`SELECT 1`;
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    say(
      `SELECT 1 round trip: p50 ${formatMs(quantile(times, 0.5))}, ` +
        `p99 ${formatMs(quantile(times, 0.99))}`,
    );
  } finally {
    await sql.end();
  }
}

const url = await database();
await roundTrip(url);
say(`${EVENTS} artifact chunks of one task, committed one after another on store A`);
await storeToStore(url, "warm-up", Math.min(500, EVENTS), {}, {});
await storeToStore(url, "A → watch on B, with doorbells", EVENTS, {}, {});
await storeToStore(
  url,
  "A → watch on B, polling alone (pollMs 20)",
  Math.min(EVENTS, 2000),
  { notify: false },
  { pollMs: 20 },
);
await managerToStore(url, Math.min(EVENTS, 5000));
printSummary("PostgresTaskStore, commit → watch", lines);
