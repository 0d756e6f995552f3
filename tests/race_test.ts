// The race suite of the task core: each scenario runs many times with small random delays between
// the agent's events and the clients' calls, on both stores, and checks the invariants after
// every run: terminal states are final, one final event per turn, seq contiguous and unique, each
// message once in history, no call left hanging, no active task or subscriber left behind.
//
// A2A_RACE_SEED fixes the random sequence (each failure names the seed that produced it) and
// A2A_RACE_REPS scales the number of repetitions.

import assert from "node:assert/strict";
import { A2AError, ErrorCode } from "../src/errors/errors.ts";
import type { AgentExecutor, EventPublisher } from "../src/tasks/executor.ts";
import { textOf } from "../src/tasks/executor.ts";
import type { StreamEvent, TaskStore } from "../src/tasks/store.ts";
import type { Subscription } from "../src/tasks/subscription.ts";
import { TaskManager } from "../src/tasks/task_manager.ts";
import {
  INTERRUPTED_STATES,
  type Message,
  type Task,
  type TaskState,
  TERMINAL_STATES,
} from "../src/types/core.ts";
import { STORES } from "./faulty_store.ts";
import { userMessage } from "./helpers.ts";

const SEED = Number(Deno.env.get("A2A_RACE_SEED") ?? Date.now() % 1_000_000);
const SCALE = Number(Deno.env.get("A2A_RACE_REPS") ?? 1);
/** A call that has not settled after this long is a hang, and fails the run. */
const HANG_MS = 5000;

/** A small seeded generator (mulberry32), so that a failing run can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Waits a random short while: nothing, a few microtask turns, or a timer of up to 2 ms. */
async function jitter(rand: () => number): Promise<void> {
  const r = rand();
  if (r < 0.25) return;
  if (r < 0.7) {
    const turns = 1 + Math.floor(rand() * 6);
    for (let i = 0; i < turns; i++) await Promise.resolve();
    return;
  }
  await new Promise((resolve) => setTimeout(resolve, Math.floor(rand() * 3)));
}

/** Fails with a named error if the promise has not settled within HANG_MS. */
async function bounded<T>(what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} hung for ${HANG_MS} ms`)), HANG_MS);
  });
  try {
    return await Promise.race([promise, hang]);
  } finally {
    clearTimeout(timer);
  }
}

/** Settles a call into its result or its A2A error code. */
async function outcome<T>(
  what: string,
  promise: Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; code: number; message: string }> {
  try {
    return { ok: true, value: await bounded(what, promise) };
  } catch (err) {
    if (err instanceof A2AError) return { ok: false, code: err.code, message: err.message };
    throw err;
  }
}

/**
 * The agent of the suite. The message's first word says what it does, with a random pause before
 * every event: `ask` works, sends a chunk and asks for input; `done N` works, sends N chunks and
 * completes; `artfirst` sends a chunk before it sets WORKING, then completes.
 */
function scriptedAgent(rand: () => number): AgentExecutor {
  const step = async (signal: AbortSignal) => {
    await jitter(rand);
    if (signal.aborted) throw signal.reason;
  };
  const chunk = (events: EventPublisher, i: number) =>
    events.artifact({ artifactId: "out", parts: [{ text: `c${i}` }] }, { append: i > 0 });
  return {
    async execute(ctx, events) {
      const [word, count] = textOf(ctx.message).split(" ");
      if (word === "artfirst") {
        await step(ctx.signal);
        await chunk(events, 1);
        await step(ctx.signal);
        await events.status("TASK_STATE_WORKING");
        await step(ctx.signal);
        await events.status("TASK_STATE_COMPLETED");
        return;
      }
      await step(ctx.signal);
      await events.status("TASK_STATE_WORKING");
      const n = word === "ask" ? 1 : Number(count ?? 3);
      for (let i = 0; i < n; i++) {
        await step(ctx.signal);
        await chunk(events, i);
      }
      await step(ctx.signal);
      await events.status(word === "ask" ? "TASK_STATE_INPUT_REQUIRED" : "TASK_STATE_COMPLETED");
    },
  };
}

function isFinal(state: TaskState): boolean {
  return TERMINAL_STATES.has(state) || INTERRUPTED_STATES.has(state);
}

/** Reads a subscription to its end (bounded), then closes it. */
async function drain(what: string, sub: Subscription): Promise<StreamEvent[]> {
  const out: StreamEvent[] = [];
  try {
    await bounded(
      what,
      (async () => {
        for await (const e of sub) out.push(e);
      })(),
    );
  } finally {
    sub.close();
  }
  return out;
}

/** One run of a scenario: a fresh manager on a fresh store, and what the run must leave behind. */
interface Run {
  manager: TaskManager;
  store: TaskStore;
  rand: () => number;
  /** Names the run in assertion messages. */
  label: string;
}

/** Checks the invariants of one task after its run has settled. */
async function checkTask(
  run: Run,
  taskId: string,
  messages: { accepted: Message[]; refused: Message[] },
): Promise<Task> {
  const { store, label } = run;
  const record = await store.get(taskId);
  assert.ok(record, `${label}: task ${taskId} is stored`);
  const task = record.task;
  const log = await store.events(taskId, 0);
  log.forEach((e, i) => assert.equal(e.seq, i + 1, `${label}: seq ${i + 1} is contiguous`));
  assert.equal(record.lastSeq, log.length, `${label}: lastSeq is the last logged seq`);
  const statuses = log.flatMap((e) => e.statusUpdate ? [e.statusUpdate.status.state] : []);
  const terminal = statuses.filter((s) => TERMINAL_STATES.has(s));
  assert.ok(terminal.length <= 1, `${label}: at most one terminal event, got ${terminal}`);
  const end = log.findIndex((e) =>
    e.statusUpdate !== undefined && TERMINAL_STATES.has(e.statusUpdate.status.state)
  );
  if (end >= 0) assert.equal(end, log.length - 1, `${label}: nothing is logged after the terminal`);
  // Each turn ends at most once in an interrupted state; a cancel adds the one terminal event.
  const interrupted = statuses.filter((s) => INTERRUPTED_STATES.has(s)).length;
  assert.ok(
    interrupted <= messages.accepted.length,
    `${label}: one final event per turn: ${interrupted} pauses for ${messages.accepted.length} turns`,
  );
  const paused = statuses.map((s, i) =>
    INTERRUPTED_STATES.has(s) && INTERRUPTED_STATES.has(statuses[i + 1]!)
  );
  assert.ok(!paused.includes(true), `${label}: no turn pauses twice in a row: ${statuses}`);
  const lastStatus = statuses.at(-1) ?? "TASK_STATE_SUBMITTED";
  assert.equal(task.status.state, lastStatus, `${label}: the task's state is its last logged one`);
  const ids = (task.history ?? []).map((m) => m.messageId);
  assert.equal(new Set(ids).size, ids.length, `${label}: each message is once in history`);
  for (const m of messages.accepted) {
    assert.ok(ids.includes(m.messageId), `${label}: accepted message ${m.messageId} in history`);
  }
  for (const m of messages.refused) {
    assert.ok(
      !ids.includes(m.messageId),
      `${label}: refused message ${m.messageId} not in history`,
    );
  }
  return task;
}

/** Waits until the manager holds no active task and no subscriber (bounded), then closes it. */
async function finish(run: Run): Promise<void> {
  const { manager, label } = run;
  const end = Date.now() + HANG_MS;
  while (manager.activeCount > 0 || manager.subscriberCount > 0) {
    if (Date.now() > end) {
      assert.fail(
        `${label}: left behind ${manager.activeCount} active tasks and ` +
          `${manager.subscriberCount} subscribers`,
      );
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await manager.close();
}

/** Starts a task and waits until it asks for input. */
async function pausedTask(run: Run): Promise<{ id: string; first: Message }> {
  const first = userMessage("ask");
  const res = await bounded(
    `${run.label}: first message`,
    run.manager.sendMessage("alice", { message: first }),
  );
  assert.equal(res.task?.status.state, "TASK_STATE_INPUT_REQUIRED", `${run.label}: paused`);
  return { id: res.task.id, first };
}

type Scenario = (run: Run) => Promise<void>;

const scenarios: Array<[string, number, Scenario]> = [
  ["cancel racing a follow-up message", 100, async (run) => {
    const { manager, rand, label } = run;
    const { id, first } = await pausedTask(run);
    const follow = userMessage(rand() < 0.5 ? "ask" : "done 2", { taskId: id });
    const [sent, canceled] = await Promise.all([
      (async () => {
        await jitter(rand);
        return await outcome(
          `${label}: follow-up`,
          manager.sendMessage("alice", { message: follow }),
        );
      })(),
      (async () => {
        await jitter(rand);
        return await outcome(`${label}: cancel`, manager.cancelTask("alice", { id }));
      })(),
    ]);
    if (!sent.ok) {
      assert.equal(
        sent.code,
        ErrorCode.UnsupportedOperation,
        `${label}: a losing follow-up: ${sent.message}`,
      );
    } else assert.ok(isFinal(sent.value.task!.status.state), `${label}: follow-up ends final`);
    if (!canceled.ok) {
      assert.equal(
        canceled.code,
        ErrorCode.TaskNotCancelable,
        `${label}: a losing cancel: ${canceled.message}`,
      );
    } else assert.equal(canceled.value.status.state, "TASK_STATE_CANCELED");
    assert.ok(sent.ok || canceled.ok, `${label}: one of the two wins`);
    const task = await checkTask(run, id, {
      accepted: sent.ok ? [first, follow] : [first],
      refused: sent.ok ? [] : [follow],
    });
    if (canceled.ok) {
      assert.equal(task.status.state, "TASK_STATE_CANCELED", `${label}: stays CANCELED`);
    } else assert.equal(task.status.state, "TASK_STATE_COMPLETED", `${label}: completed first`);
    await finish(run);
  }],
  ["two follow-ups at once", 40, async (run) => {
    const { manager, rand, label } = run;
    const { id, first } = await pausedTask(run);
    const a = userMessage("ask", { taskId: id });
    const b = userMessage("done 2", { taskId: id });
    const results = await Promise.all([a, b].map(async (m, i) => {
      await jitter(rand);
      return await outcome(
        `${label}: follow-up ${i}`,
        manager.sendMessage("alice", { message: m }),
      );
    }));
    for (const r of results) {
      if (!r.ok) assert.equal(r.code, ErrorCode.UnsupportedOperation, `${label}: refused`);
    }
    assert.ok(results.some((r) => r.ok), `${label}: one follow-up is accepted`);
    await checkTask(run, id, {
      accepted: [first, ...[a, b].filter((_, i) => results[i]!.ok)],
      refused: [a, b].filter((_, i) => !results[i]!.ok),
    });
    await finish(run);
  }],
  ["cancel racing completion", 40, async (run) => {
    const { manager, rand, label } = run;
    const message = userMessage("done 3");
    const res = await manager.sendMessage("alice", {
      message,
      configuration: { returnImmediately: true },
    });
    const id = res.task!.id;
    await jitter(rand);
    await jitter(rand);
    const canceled = await outcome(`${label}: cancel`, manager.cancelTask("alice", { id }));
    if (!canceled.ok) assert.equal(canceled.code, ErrorCode.TaskNotCancelable, label);
    await finish(run);
    const task = await checkTask(run, id, { accepted: [message], refused: [] });
    assert.equal(
      task.status.state,
      canceled.ok ? "TASK_STATE_CANCELED" : "TASK_STATE_COMPLETED",
      `${label}: the winner's state is the task's`,
    );
  }],
  ["subscribers joining a task as it ends", 30, async (run) => {
    const { manager, rand, label } = run;
    const message = userMessage("done 4");
    const res = await manager.sendMessage("alice", {
      message,
      configuration: { returnImmediately: true },
    });
    const id = res.task!.id;
    const streams = await Promise.all(Array.from({ length: 6 }, async (_, i) => {
      for (let k = 0; k < i; k++) await jitter(rand);
      const resume = rand() < 0.5;
      const opened = await outcome(
        `${label}: subscribe ${i}`,
        manager.subscribeToTask("alice", resume ? { id, afterSeq: 1 } : { id }),
      );
      if (!opened.ok) {
        assert.ok(!resume, `${label}: a resume from seq 1 is always accepted`);
        assert.equal(opened.code, ErrorCode.UnsupportedOperation, `${label}: ended task refused`);
        return undefined;
      }
      return { resume, events: await drain(`${label}: stream ${i}`, opened.value) };
    }));
    await finish(run);
    const log = await run.store.events(id, 0);
    for (const s of streams) {
      if (!s) continue;
      let seq = s.resume ? 1 : s.events[0]!.seq;
      if (!s.resume) {
        assert.ok(s.events[0]!.task, `${label}: a fresh stream starts with a snapshot`);
      }
      for (const e of s.resume ? s.events : s.events.slice(1)) {
        assert.equal(e.seq, ++seq, `${label}: stream seq is contiguous`);
        assert.deepEqual(e, log[e.seq - 1], `${label}: the stream's event is the logged one`);
      }
      assert.equal(seq, log.length, `${label}: every stream reaches the last event`);
    }
    await checkTask(run, id, { accepted: [message], refused: [] });
  }],
  ["subscribers joining and leaving a running task", 20, async (run) => {
    const { manager, rand, label } = run;
    const message = userMessage("done 12");
    const res = await manager.sendMessage("alice", {
      message,
      configuration: { returnImmediately: true },
    });
    const id = res.task!.id;
    await Promise.all(Array.from({ length: 8 }, async (_, i) => {
      await jitter(rand);
      const opened = await outcome(
        `${label}: subscribe ${i}`,
        manager.subscribeToTask("alice", { id }),
      );
      if (!opened.ok) return;
      const keep = Math.floor(rand() * 4);
      let n = 0;
      await bounded(
        `${label}: stream ${i}`,
        (async () => {
          for await (const _ of opened.value) if (++n > keep) break;
        })(),
      );
    }));
    await finish(run);
    await checkTask(run, id, { accepted: [message], refused: [] });
  }],
  ["an artifact before WORKING on a follow-up", 20, async (run) => {
    const { manager, label } = run;
    const { id, first } = await pausedTask(run);
    const follow = userMessage("artfirst", { taskId: id });
    const sub = await manager.sendStreamingMessage("alice", { message: follow });
    const events = await drain(`${label}: follow-up stream`, sub);
    const last = events.at(-1)!;
    assert.equal(
      last.statusUpdate?.status.state,
      "TASK_STATE_COMPLETED",
      `${label}: the stream ends at COMPLETED, not at the artifact`,
    );
    assert.ok(events.some((e) => e.artifactUpdate), `${label}: the artifact is streamed`);
    const again = await pausedTask(run);
    const res = await bounded(
      `${label}: blocking follow-up`,
      manager.sendMessage("alice", { message: userMessage("artfirst", { taskId: again.id }) }),
    );
    assert.equal(res.task?.status.state, "TASK_STATE_COMPLETED", `${label}: returns COMPLETED`);
    await finish(run);
    await checkTask(run, id, { accepted: [first, follow], refused: [] });
  }],
];

for (const [storeName, makeStore] of STORES) {
  for (const [name, reps, scenario] of scenarios) {
    Deno.test(`race: ${name} keeps the invariants (${storeName})`, async () => {
      const count = Math.max(1, Math.round(reps * SCALE));
      for (let i = 0; i < count; i++) {
        const seed = SEED + i;
        const rand = random(seed);
        await using held = await makeStore();
        const manager = new TaskManager({ executor: scriptedAgent(rand), store: held.store });
        try {
          await scenario({
            manager,
            store: held.store,
            rand,
            label: `${name} (${storeName}, A2A_RACE_SEED=${SEED}, run ${i})`,
          });
        } finally {
          await manager.close({ timeoutMs: 100 });
        }
      }
    });
  }
}
