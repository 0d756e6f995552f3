// What KvTaskStore costs as a task grows: per-event commit cost from the 1st to the 10,000th
// event of an artifact that grows to 10 MB by appends (the store alone, with the layout before
// pieces beside it, and through a TaskManager); a 20 MB artifact written, read back and replayed
// across a reopen; reading the last messages of a 10,000-message history; a 10,000-turn task.
//
//   deno run --unstable-kv --allow-read --allow-write --allow-run=git bench/kv_store_bench.ts \
//     [events=10000] [turns=10000] [sections=ABCD]
//
// --allow-run=git reads the store before pieces (commit 39336ca's layout, kept at c5d72b1) for
// the side-by-side run; without it that column is left out.

import {
  type AgentExecutor,
  type Artifact,
  type Message,
  type Task,
  TaskManager,
  textOf,
} from "../mod.ts";
import { KvTaskStore } from "../src/tasks/kv_store.ts";
import type { StreamEvent, TaskRecord } from "../src/tasks/store.ts";
import { formatMs, printSummary, quantile, userMessage } from "./_util.ts";

const EVENTS = Number(Deno.args[0] ?? 10_000);
const TURNS = Number(Deno.args[1] ?? 10_000);
/** Which sections to run, e.g. "AB" (default all: "ABCD"). */
const SECTIONS = Deno.args[2] ?? "ABCD";
/** Bytes of text per appended chunk: 10,000 of them make the 10 MB artifact. */
const CHUNK_BYTES = 1_000;
/** The commit whose kv_store.ts is the store before pieces. */
const OLD_COMMIT = "c5d72b1";
const BIG_BYTES = 20_000_000;
const BIG_APPENDS = 2_000;

const lines: string[] = [];
const say = (line: string) => {
  lines.push(line);
  // deno-lint-ignore no-console
  console.log(line);
};

/** The store before pieces, which took the whole task on every commit. */
interface OldStore {
  commit(record: TaskRecord, event?: StreamEvent): Promise<void>;
  close(): void;
}

/** Loads the store before pieces from git, or undefined without --allow-run=git. */
async function loadOldStore(): Promise<(new (kv: Deno.Kv) => OldStore) | undefined> {
  if (Deno.permissions.querySync({ name: "run", command: "git" }).state !== "granted") {
    return undefined;
  }
  const root = new URL("..", import.meta.url);
  const out = await new Deno.Command("git", {
    args: ["show", `${OLD_COMMIT}:src/tasks/kv_store.ts`],
    cwd: root,
    stdout: "piped",
    stderr: "null",
  }).output();
  if (!out.success) return undefined;
  const source = new TextDecoder().decode(out.stdout)
    .replaceAll('"../errors/errors.ts"', `"${new URL("src/errors/errors.ts", root).href}"`)
    .replaceAll('"./store.ts"', `"${new URL("src/tasks/store.ts", root).href}"`);
  const path = await Deno.makeTempFile({ prefix: "old_kv_store_", suffix: ".ts" });
  await Deno.writeTextFile(path, source);
  try {
    const mod = await import(new URL(`file://${path}`).href);
    return mod.KvTaskStore as new (kv: Deno.Kv) => OldStore;
  } finally {
    await Deno.remove(path);
  }
}

/** A temp database file, and a function that removes it with its WAL files. */
async function tempDb(prefix: string): Promise<{ path: string; size(): number; remove(): void }> {
  const dir = await Deno.makeTempDir({ prefix });
  const path = `${dir}/tasks.db`;
  return {
    path,
    size() {
      let n = 0;
      for (const e of Deno.readDirSync(dir)) n += Deno.statSync(`${dir}/${e.name}`).size;
      return n;
    },
    remove: () => Deno.removeSync(dir, { recursive: true }),
  };
}

function median(values: number[]): number {
  return quantile([...values].sort((a, b) => a - b), 0.5);
}

/** Median per-event time in each window of event numbers (1-based, inclusive). */
function windows(times: number[], total: number): Array<[string, number | undefined]> {
  const ranges: Array<[number, number]> = [
    [1, 100],
    [Math.round(total * 0.1) - 99, Math.round(total * 0.1)],
    [total / 2 - 99, total / 2],
    [total - 99, total],
  ];
  return ranges.map(([from, to]) => {
    const slice = times.slice(from - 1, to);
    return [`${from}–${to}`, slice.length === to - from + 1 ? median(slice) : undefined];
  });
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

// ---------------------------------------------------------------------------------------------
// A: per-event cost of appends to one artifact, the stores interleaved event by event.

async function growth(): Promise<void> {
  const Old = await loadOldStore();
  const file = await tempDb("kv_bench_growth_");
  const stores: Array<{ name: string; commit: (r: TaskRecord, i: number) => Promise<void> }> = [];
  const memory = await KvTaskStore.open(":memory:");
  const onFile = await KvTaskStore.open(file.path);
  const byPieces = (store: KvTaskStore) => (record: TaskRecord, i: number) =>
    store.commit(record, {
      event: event(record.task, i),
      artifact: { index: 0, fromPart: i === 0 ? 0 : i },
    });
  stores.push({ name: "KvTaskStore, :memory:", commit: byPieces(memory) });
  stores.push({ name: "KvTaskStore, temp file", commit: byPieces(onFile) });
  const old = Old ? new Old(await Deno.openKv(":memory:")) : undefined;
  if (old) {
    stores.push({
      name: `store before pieces (${OLD_COMMIT}), :memory:`,
      commit: (record, i) => old.commit(record, event(record.task, i)),
    });
  }
  const parts: Artifact["parts"] = [];
  const task: Task = {
    id: "grow",
    contextId: "ctx",
    status: { state: "TASK_STATE_WORKING", timestamp: new Date().toISOString() },
    history: [userMessage("grow")],
    artifacts: [{ artifactId: "a", name: "answer", parts }],
  };
  const chunk = (i: number) => ({ text: `${i} `.padEnd(CHUNK_BYTES, "x") });
  // Each event's artifact update carries the newest chunk, as the task core's does.
  function event(t: Task, i: number): StreamEvent {
    return {
      seq: i + 2,
      artifactUpdate: {
        taskId: t.id,
        contextId: t.contextId,
        artifact: { artifactId: "a", name: "answer", parts: [parts[i]!] },
        append: i > 0,
      },
    };
  }
  const first: TaskRecord = { owner: "alice", task: { ...task, artifacts: [] }, lastSeq: 1 };
  await memory.commit(first, { created: true, event: { seq: 1, task: first.task } });
  await onFile.commit(first, { created: true, event: { seq: 1, task: first.task } });
  await old?.commit(first, { seq: 1, task: first.task });
  const times = stores.map(() => [] as number[]);
  const failed: Array<string | undefined> = stores.map(() => undefined);
  for (let i = 0; i < EVENTS; i++) {
    parts.push(chunk(i));
    const record: TaskRecord = { owner: "alice", task, lastSeq: i + 2 };
    for (let s = 0; s < stores.length; s++) {
      if (failed[s] !== undefined) continue;
      const t0 = performance.now();
      try {
        await stores[s]!.commit(record, i);
      } catch (err) {
        failed[s] = `failed at event ${i + 1}: ${(err as Error).message}`;
        continue;
      }
      times[s]!.push(performance.now() - t0);
    }
  }
  // The task read back whole, so the numbers are of a store that holds it.
  const back = await onFile.get("grow");
  const stored = back?.task.artifacts?.[0]?.parts.reduce((n, p) => n + (p.text?.length ?? 0), 0);
  say(
    `\nA. ${EVENTS} appends of ${CHUNK_BYTES} bytes to one artifact (${
      mb(EVENTS * CHUNK_BYTES)
    }),` +
      ` stores interleaved event by event; median ms per event in each window`,
  );
  const header = windows(times[0]!, EVENTS).map(([w]) => w);
  say(`| store | ${header.join(" | ")} | last / first | total |`);
  say(`| --- | ${header.map(() => "---:").join(" | ")} | ---: | ---: |`);
  stores.forEach((s, i) => {
    const w = windows(times[i]!, EVENTS).map(([, v]) => v);
    const ratio = w[0] !== undefined && w.at(-1) !== undefined
      ? (w.at(-1)! / w[0]!).toFixed(2)
      : "–";
    const total = times[i]!.reduce((a, b) => a + b, 0);
    say(
      `| ${s.name} | ${
        w.map((v) => (v === undefined ? "–" : formatMs(v))).join(" | ")
      } | ${ratio} | ${(total / 1000).toFixed(1)} s |`,
    );
    if (failed[i]) say(`  ${s.name} ${failed[i]}`);
  });
  memory.close();
  onFile.close();
  old?.close();
  say(
    `  read back from the file store: ${back?.task.artifacts?.[0]?.parts.length} parts, ${
      mb(stored ?? 0)
    }; database file after closing ${mb(file.size())}`,
  );
  file.remove();
}

// ---------------------------------------------------------------------------------------------
// B: the same through a TaskManager, timed inside the executor.

/** For a message "N": N appends of CHUNK_BYTES to one artifact, each timed, then COMPLETED. */
function growingAgent(times: number[]): AgentExecutor {
  return {
    async execute(ctx, events) {
      const n = Number(textOf(ctx.message));
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await events.artifact(
          { artifactId: "a", parts: [{ text: `${i} `.padEnd(CHUNK_BYTES, "x") }] },
          { append: i > 0 },
        );
        times.push(performance.now() - t0);
      }
      await events.status("TASK_STATE_COMPLETED");
    },
  };
}

async function throughManager(): Promise<void> {
  say(
    `\nB. the same ${EVENTS} appends through TaskManager (sendMessage, no subscriber but its own);` +
      ` median ms per event`,
  );
  const header = windows(new Array(EVENTS).fill(0), EVENTS).map(([w]) => w);
  say(`| store | ${header.join(" | ")} | last / first | total |`);
  say(`| --- | ${header.map(() => "---:").join(" | ")} | ---: | ---: |`);
  for (const kind of [":memory:", "temp file"] as const) {
    const file = kind === "temp file" ? await tempDb("kv_bench_manager_") : undefined;
    const store = await KvTaskStore.open(file?.path ?? ":memory:");
    const times: number[] = [];
    const manager = new TaskManager({ store, executor: growingAgent(times) });
    const { task } = await manager.sendMessage("alice", { message: userMessage(String(EVENTS)) });
    if (task?.status.state !== "TASK_STATE_COMPLETED") {
      throw new Error(`Ended ${task?.status.state}`);
    }
    const w = windows(times, EVENTS).map(([, v]) => v);
    const total = times.reduce((a, b) => a + b, 0);
    say(
      `| KvTaskStore, ${kind} | ${
        w.map((v) => (v === undefined ? "–" : formatMs(v))).join(" | ")
      } | ${(w.at(-1)! / w[0]!).toFixed(2)} | ${(total / 1000).toFixed(1)} s |`,
    );
    await manager.close();
    store.close();
    file?.remove();
  }
}

// ---------------------------------------------------------------------------------------------
// C: a 20 MB artifact, in one event and by appends, on a file; read back after a reopen.

const bigAgent: AgentExecutor = {
  async execute(ctx, events) {
    if (textOf(ctx.message) === "one") {
      await events.artifact({ artifactId: "big", parts: [{ text: "y".repeat(BIG_BYTES) }] });
    } else {
      const size = BIG_BYTES / BIG_APPENDS;
      for (let i = 0; i < BIG_APPENDS; i++) {
        await events.artifact(
          { artifactId: "big", parts: [{ text: `${i} `.padEnd(size, "z") }] },
          { append: i > 0 },
        );
      }
    }
    await events.status("TASK_STATE_COMPLETED");
  },
};

async function twentyMegabytes(): Promise<void> {
  const file = await tempDb("kv_bench_big_");
  const ids: Record<string, string> = {};
  const writeMs: Record<string, number> = {};
  {
    const store = await KvTaskStore.open(file.path);
    const manager = new TaskManager({ store, executor: bigAgent });
    for (const how of ["one", "appends"]) {
      const t0 = performance.now();
      const { task } = await manager.sendMessage("alice", { message: userMessage(how) });
      writeMs[how] = performance.now() - t0;
      if (task?.status.state !== "TASK_STATE_COMPLETED") {
        throw new Error(`Ended ${task?.status.state}`);
      }
      ids[how] = task.id;
    }
    await manager.close();
    store.close();
  }
  say(
    `\nC. a ${mb(BIG_BYTES)} artifact on a temp file: written through TaskManager, then the store` +
      ` closed and reopened, getTask through a new TaskManager and store.events replay`,
  );
  say(
    "| how | write | getTask | parts, text read back | events() replay | events, text replayed |",
  );
  say("| --- | ---: | ---: | ---: | ---: | ---: |");
  const store = await KvTaskStore.open(file.path);
  const manager = new TaskManager({ store, executor: bigAgent });
  for (const how of ["one", "appends"]) {
    let t0 = performance.now();
    const task = await manager.getTask("alice", { id: ids[how]! });
    const getMs = performance.now() - t0;
    const parts = task.artifacts?.[0]?.parts ?? [];
    const text = parts.reduce((n, p) => n + (p.text?.length ?? 0), 0);
    t0 = performance.now();
    const log = await store.events(ids[how]!, 0);
    const replayMs = performance.now() - t0;
    const replayed = log.reduce(
      (n, e) =>
        n + (e.artifactUpdate?.artifact.parts.reduce((m, p) => m + (p.text?.length ?? 0), 0) ?? 0),
      0,
    );
    const label = how === "one"
      ? "one event, one part"
      : `${BIG_APPENDS} appends of ${BIG_BYTES / BIG_APPENDS / 1000} KB`;
    say(
      `| ${label} | ${formatMs(writeMs[how]!)} | ${formatMs(getMs)} | ${parts.length}, ${
        mb(text)
      } | ${formatMs(replayMs)} | ${log.length}, ${mb(replayed)} |`,
    );
    if (text !== BIG_BYTES || replayed !== BIG_BYTES) {
      throw new Error("The 20 MB did not come back");
    }
  }
  await manager.close();
  store.close();
  say(`  database file after closing ${mb(file.size())}`);
  file.remove();
}

// ---------------------------------------------------------------------------------------------
// D: a 10,000-turn task through TaskManager, then reads of its last messages against a full read.

/** Asks for more input after every message, so that one task takes any number of turns. */
const chattyAgent: AgentExecutor = {
  async execute(ctx, events) {
    await events.status("TASK_STATE_INPUT_REQUIRED", {
      message: `reply to ${textOf(ctx.message)}`,
    });
  },
};

async function turns(): Promise<void> {
  const file = await tempDb("kv_bench_turns_");
  const store = await KvTaskStore.open(file.path);
  // The time each turn spends in the store's commit and get, apart from the rest of the turn.
  const spent = { commit: 0, get: 0 };
  const timed = new Proxy(store, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== "function") return value;
      if (prop !== "commit" && prop !== "get") return value.bind(target);
      return async (...args: unknown[]) => {
        const t0 = performance.now();
        try {
          return await value.apply(target, args);
        } finally {
          spent[prop] += performance.now() - t0;
        }
      };
    },
  });
  const manager = new TaskManager({ store: timed, executor: chattyAgent });
  const turnMs: number[] = [];
  const commitMs: number[] = [];
  const getMs: number[] = [];
  let id: string | undefined;
  for (let i = 0; i < TURNS; i++) {
    spent.commit = spent.get = 0;
    const t0 = performance.now();
    const { task } = await manager.sendMessage("alice", {
      message: turnMessage(`turn ${i}`, id),
      configuration: { historyLength: 0 },
    });
    turnMs.push(performance.now() - t0);
    commitMs.push(spent.commit);
    getMs.push(spent.get);
    id = task!.id;
    if (task?.status.state !== "TASK_STATE_INPUT_REQUIRED") {
      throw new Error(`Ended ${task?.status.state}`);
    }
  }
  const w = windows(turnMs, TURNS);
  say(
    `\nD. ${TURNS} turns of one task through TaskManager on a temp file (a user message, then` +
      ` INPUT_REQUIRED with an agent message: ${2 * TURNS} history messages); median ms per turn`,
  );
  say(`| per turn | ${w.map(([r]) => `turns ${r}`).join(" | ")} | total |`);
  say(`| --- | ${w.map(() => "---:").join(" | ")} | ---: |`);
  for (
    const [name, ms] of [["whole turn", turnMs], ["in store.commit", commitMs], [
      "in store.get",
      getMs,
    ]] as const
  ) {
    say(
      `| ${name} | ${
        windows(ms, TURNS).map(([, v]) => (v === undefined ? "–" : formatMs(v))).join(" | ")
      } | ${(ms.reduce((a, b) => a + b, 0) / 1000).toFixed(1)} s |`,
    );
  }
  const reads: Array<[string, () => Promise<unknown>]> = [
    ["store.get(id, { historyLength: 2 })", () => store.get(id!, { historyLength: 2 })],
    [
      "manager.getTask({ id, historyLength: 2 })",
      () => manager.getTask("alice", { id: id!, historyLength: 2 }),
    ],
    ["store.get(id) (everything)", () => store.get(id!)],
  ];
  const samples = reads.map(() => [] as number[]);
  // Interleaved, so that load on the machine hits all three alike.
  for (let round = 0; round < 21; round++) {
    for (let r = 0; r < reads.length; r++) {
      const t0 = performance.now();
      await reads[r]![1]();
      if (round > 0) samples[r]!.push(performance.now() - t0);
    }
  }
  const full = await store.get(id!);
  if (full?.task.history?.length !== 2 * TURNS) throw new Error("The history is not all there");
  say(`  reads of the task after its ${2 * TURNS} messages, median of 20 interleaved rounds:`);
  reads.forEach(([name], r) => say(`  ${name}: ${formatMs(median(samples[r]!))}`));
  await manager.close();
  store.close();
  file.remove();
}

/** A user message, continuing a task when there is one. */
function turnMessage(text: string, taskId: string | undefined): Message {
  const m = userMessage(text);
  return taskId === undefined ? m : { ...m, taskId };
}

say(`kv_store_bench: events=${EVENTS}, turns=${TURNS}, Deno ${Deno.version.deno}`);
if (SECTIONS.includes("A")) await growth();
if (SECTIONS.includes("B")) await throughManager();
if (SECTIONS.includes("C")) await twentyMegabytes();
if (SECTIONS.includes("D")) await turns();
printSummary("kv_store_bench done", [`${lines.length} lines above`]);
