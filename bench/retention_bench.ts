// Server heap under the default retention of the in-memory store: the heap after 50,000 and after
// 500,000 tasks created (each sent, completed and listed by one of 50 users), measured after a
// full garbage collection, through TaskManager as every binding uses it.
//
//   deno run --v8-flags=--expose-gc bench/retention_bench.ts [tasks=500000]

import { type AgentExecutor, TaskManager } from "../mod.ts";
import { userMessage } from "./_util.ts";

const TOTAL = Number(Deno.args[0] ?? 500_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("Run with --v8-flags=--expose-gc");

const agent: AgentExecutor = {
  async execute(ctx, events) {
    await events.status("TASK_STATE_WORKING");
    await events.artifact({ artifactId: "a", parts: [{ text: `echo ${ctx.message.messageId}` }] });
    await events.status("TASK_STATE_COMPLETED");
  },
};

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
