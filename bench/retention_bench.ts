// Server heap under the default retention of the in-memory store: the heap after 50,000 and after
// 500,000 tasks created (each sent, completed and listed by one of 50 users), measured after a
// full garbage collection, through TaskManager as every binding uses it. With `kv`, the same load
// on a KvTaskStore in a temporary file, with and without retention: the number of keys in the
// database as tasks are created, and the time per task.
//
//   deno run --v8-flags=--expose-gc bench/retention_bench.ts [tasks=500000]
//   deno run -A bench/retention_bench.ts kv [tasks=10000] [maxTerminalTasks=1000]

import { type AgentExecutor, KvTaskStore, type RetentionOptions, TaskManager } from "../mod.ts";
import { userMessage } from "./_util.ts";

const agent: AgentExecutor = {
  async execute(ctx, events) {
    await events.status("TASK_STATE_WORKING");
    await events.artifact({ artifactId: "a", parts: [{ text: `echo ${ctx.message.messageId}` }] });
    await events.status("TASK_STATE_COMPLETED");
  },
};

if (Deno.args[0] === "kv") {
  await kvBench(Number(Deno.args[1] ?? 10_000), Number(Deno.args[2] ?? 1000));
  Deno.exit(0);
}

async function countKeys(kv: Deno.Kv): Promise<number> {
  let n = 0;
  for await (const _ of kv.list({ prefix: [] })) n++;
  return n;
}

/** Creates `total` tasks to completion on a KvTaskStore in a temporary file, with and without retention. */
async function kvBench(total: number, max: number): Promise<void> {
  const runs: Array<[string, RetentionOptions]> = [
    [`retention on (maxTerminalTasks ${max})`, { maxTerminalTasks: max }],
    ["retention off", { maxTerminalTasks: Infinity, terminalTtlMs: Infinity }],
  ];
  const lines: string[] = [];
  const checkpoints = [1000, total / 2, total].filter((n) => n <= total);
  for (const [name, retention] of runs) {
    const dir = await Deno.makeTempDir();
    const kv = await Deno.openKv(`${dir}/tasks.db`);
    const store = new KvTaskStore(kv, { retention });
    const manager = new TaskManager({ executor: agent, store });
    const keys: string[] = [];
    const times: number[] = [];
    for (let i = 1; i <= total; i++) {
      const t0 = performance.now();
      await manager.sendMessage(`user${i % 50}`, { message: userMessage(`task ${i}`) });
      times.push(performance.now() - t0);
      if (checkpoints.includes(i)) {
        await store.evict();
        keys.push(`${i.toLocaleString("en")}: ${(await countKeys(kv)).toLocaleString("en")}`);
      }
    }
    await manager.close();
    await store.release();
    await Deno.remove(dir, { recursive: true });
    const mean = times.reduce((a, b) => a + b, 0) / total;
    const median = times.sort((a, b) => a - b)[Math.floor(total / 2)]!;
    lines.push(
      `| ${name} | ${mean.toFixed(3)} ms | ${median.toFixed(3)} ms | ${keys.join(", ")} |`,
    );
  }
  // deno-lint-ignore no-console
  console.log(
    [
      `KvTaskStore on a temporary file, ${total.toLocaleString("en")} tasks to completion`,
      "| store | time per task, mean | median | keys in the database after N tasks |",
      "| --- | ---: | ---: | --- |",
      ...lines,
    ].join("\n"),
  );
}

const TOTAL = Number(Deno.args[0] ?? 500_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("Run with --v8-flags=--expose-gc");

function heapMiB(): number {
  gc!();
  gc!();
  return Deno.memoryUsage().heapUsed / 2 ** 20;
}

const manager = new TaskManager({ executor: agent });
const marks = new Map<number, number>([[10_000, 0], [50_000, 0], [100_000, 0], [250_000, 0], [
  TOTAL,
  0,
]]);
const start = heapMiB();
const t0 = performance.now();
for (let i = 1; i <= TOTAL; i++) {
  await manager.sendMessage(`user${i % 50}`, { message: userMessage(`task ${i}`) });
  if (i % 1000 === 0) await manager.listTasks(`user${i % 50}`, { pageSize: 10 });
  if (marks.has(i)) marks.set(i, heapMiB());
}
const seconds = (performance.now() - t0) / 1000;
await manager.close();

const rows = [...marks].filter(([n]) => n <= TOTAL).map(([n, mib]) =>
  `| ${n.toLocaleString("en")} | ${mib.toFixed(1)} MiB |`
);
// deno-lint-ignore no-console
console.log(
  [
    `heap before: ${start.toFixed(1)} MiB; ${TOTAL} tasks in ${seconds.toFixed(1)} s`,
    "| tasks created | heap after GC |",
    "| ---: | ---: |",
    ...rows,
    `500,000 / 50,000: ${((marks.get(TOTAL) ?? 0) / (marks.get(50_000) ?? 1)).toFixed(2)}x`,
  ].join("\n"),
);
