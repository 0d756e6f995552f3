// Work that must not grow with the store: ListTasks at 1,000 and 100,000 tasks of one user, and
// the cost of one artifact append at 1,000 and 100,000 chunks, through the in-memory TaskManager.
// With `--base REV` (and --allow-run=git) the same runs go against the task core and store of that
// commit too, loaded from `git show`, interleaved with this tree's, for a before/after in one run.
//
//   deno run --allow-read --allow-write --allow-run=git bench/hot_paths_bench.ts [--base c5d72b1]

import { TaskManager } from "../mod.ts";
import type { AgentExecutor } from "../mod.ts";
import { userMessage } from "./_util.ts";

interface Manager {
  sendMessage(user: string, request: unknown): Promise<{ task?: { id: string } }>;
  listTasks(user: string, request: unknown): Promise<{ tasks: unknown[]; totalSize: number }>;
  close(): Promise<void>;
}
type ManagerClass = new (options: { executor: AgentExecutor }) => Manager;

/** Loads the TaskManager of an older commit: its src/ tree written to a temp dir. */
async function managerAt(rev: string): Promise<ManagerClass> {
  const dir = await Deno.makeTempDir({ prefix: "hot_paths_" });
  const list = new Deno.Command("git", { args: ["ls-tree", "-r", "--name-only", rev, "src"] });
  const files = new TextDecoder().decode((await list.output()).stdout).trim().split("\n");
  for (const f of files) {
    const out = await new Deno.Command("git", { args: ["show", `${rev}:${f}`] }).output();
    await Deno.mkdir(`${dir}/${f.split("/").slice(0, -1).join("/")}`, { recursive: true });
    await Deno.writeFile(`${dir}/${f}`, out.stdout);
  }
  await Deno.copyFile("deno.json", `${dir}/deno.json`);
  const mod = await import(`file://${dir}/src/tasks/task_manager.ts`);
  return mod.TaskManager as ManagerClass;
}

const quick: AgentExecutor = {
  async execute(_ctx, events) {
    await events.status("TASK_STATE_COMPLETED");
  },
};

/** Median of `rounds` ListTasks calls (first page of 50) of a user with `n` tasks. */
async function listCost(Manager: ManagerClass, n: number, rounds = 50): Promise<number> {
  const manager = new Manager({ executor: quick });
  for (let i = 0; i < n; i++) {
    await manager.sendMessage("alice", { message: userMessage(`t${i}`) });
  }
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    const page = await manager.listTasks("alice", { pageSize: 50 });
    times.push(performance.now() - t0);
    if (page.totalSize !== n) throw new Error(`listed ${page.totalSize} of ${n}`);
  }
  await manager.close();
  return median(times);
}

/** Mean cost of the appends numbered (n - 1000, n] of one artifact, from the executor's side. */
async function appendCost(Manager: ManagerClass, n: number): Promise<number> {
  let window = 0;
  const executor: AgentExecutor = {
    async execute(_ctx, events) {
      await events.status("TASK_STATE_WORKING");
      let t0 = 0;
      for (let i = 0; i < n; i++) {
        if (i === n - 1000) t0 = performance.now();
        await events.artifact({ artifactId: "a", parts: [{ text: "x" }] }, { append: i > 0 });
      }
      window = (performance.now() - t0) / 1000;
      await events.status("TASK_STATE_COMPLETED");
    },
  };
  const manager = new Manager({ executor });
  await manager.sendMessage("alice", { message: userMessage("go") });
  await manager.close();
  return window;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const fmt = (ms: number) => ms >= 1 ? `${ms.toFixed(2)} ms` : `${(ms * 1000).toFixed(1)} µs`;

const baseAt = Deno.args.indexOf("--base");
const base = baseAt >= 0 ? Deno.args[baseAt + 1] : undefined;
const cores: Array<[string, ManagerClass]> = [[
  "this tree",
  TaskManager as unknown as ManagerClass,
]];
if (base) cores.push([`at ${base}`, await managerAt(base)]);

const rows: string[] = [];
for (const [name, Manager] of cores) {
  const l1 = await listCost(Manager, 1_000);
  const l2 = await listCost(Manager, 100_000);
  await appendCost(Manager, 1_000); // warm-up: the first run measures the JIT
  const a1 = await appendCost(Manager, 1_000);
  const a2 = await appendCost(Manager, base && name !== "this tree" ? 32_000 : 100_000);
  rows.push(
    `| ${name} | ${fmt(l1)} | ${fmt(l2)} | ${(l2 / l1).toFixed(2)}x | ${fmt(a1)} | ${fmt(a2)} | ${
      (a2 / a1).toFixed(2)
    }x |`,
  );
}
// deno-lint-ignore no-console
console.log(
  [
    "| task core | ListTasks, 1,000 tasks | ListTasks, 100,000 tasks | ratio | append at 1,000 chunks | append at 100,000 chunks (32,000 for the old core) | ratio |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows,
  ].join("\n"),
);
