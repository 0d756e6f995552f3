// Failure paths of the task core, with a store that fails on command: whatever fails, the task
// is released, its streams end (with an error when the end could not be recorded), and the task
// keeps serving later calls.

import assert from "node:assert/strict";
import { A2AError, ErrorCode } from "../src/errors/errors.ts";
import type { AgentExecutor } from "../src/tasks/executor.ts";
import { textOf } from "../src/tasks/executor.ts";
import type { StreamEvent } from "../src/tasks/store.ts";
import type { Subscription } from "../src/tasks/subscription.ts";
import { TaskManager } from "../src/tasks/task_manager.ts";
import { TERMINAL_STATES } from "../src/types/core.ts";
import { FaultyStore, STORES } from "./faulty_store.ts";
import { userMessage } from "./helpers.ts";

/**
 * `ask` pauses for input; `big N` sends an artifact of N characters, then completes; anything
 * else works, sends a chunk and completes.
 */
const agent: AgentExecutor = {
  async execute(ctx, events) {
    const [word, n] = textOf(ctx.message).split(" ");
    await events.status("TASK_STATE_WORKING");
    if (word === "big") {
      await events.artifact({ artifactId: "big", parts: [{ text: "x".repeat(Number(n)) }] });
    } else await events.artifact({ artifactId: "a", parts: [{ text: "chunk" }] });
    await events.status(word === "ask" ? "TASK_STATE_INPUT_REQUIRED" : "TASK_STATE_COMPLETED");
  },
};

/** Reads a stream to its end: its events, and the error it ended with, if any. */
async function drain(sub: Subscription): Promise<{ events: StreamEvent[]; error?: unknown }> {
  const events: StreamEvent[] = [];
  try {
    for await (const e of sub) events.push(e);
    return { events };
  } catch (error) {
    return { events, error };
  } finally {
    sub.close();
  }
}

async function code(promise: Promise<unknown>): Promise<number | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    assert.ok(err instanceof A2AError, `an A2A error, got ${err}`);
    return err.code;
  }
}

async function idle(manager: TaskManager): Promise<void> {
  for (let i = 0; i < 500 && (manager.activeCount > 0 || manager.subscriberCount > 0); i++) {
    await new Promise((r) => setTimeout(r, 2));
  }
  assert.equal(manager.activeCount, 0, "no active task is left behind");
  assert.equal(manager.subscriberCount, 0, "no subscriber is left behind");
}

for (const [storeName, makeStore] of STORES) {
  const setup = async () => {
    const held = await makeStore();
    const store = new FaultyStore(held.store);
    const manager = new TaskManager({ executor: agent, store });
    return {
      store,
      manager,
      async [Symbol.asyncDispose]() {
        await manager.close({ timeoutMs: 100 });
        await held[Symbol.asyncDispose]();
      },
    };
  };

  Deno.test(`a refused artifact fails the task, which ends FAILED and releases its stream (${storeName})`, async () => {
    await using t = await setup();
    t.store.fault = (_, change) => change.event?.artifactUpdate !== undefined;
    const sub = await t.manager.sendStreamingMessage("alice", { message: userMessage("go") });
    const { events, error } = await drain(sub);
    assert.equal(error, undefined);
    const last = events.at(-1)!;
    assert.equal(last.statusUpdate?.status.state, "TASK_STATE_FAILED");
    const task = await t.store.get(last.statusUpdate!.taskId);
    assert.equal(task?.task.status.state, "TASK_STATE_FAILED");
    assert.equal(t.store.injected, 1);
    await idle(t.manager);
  });

  Deno.test(`a task past the store's size limit still ends FAILED: the bare status fits (${storeName})`, async () => {
    await using t = await setup();
    // A store with a size limit just above the WORKING task: the artifact does not fit, nor does a
    // FAILED status whose message grows the history.
    let limit = Infinity;
    t.store.fault = (record, change) => {
      const size = new TextEncoder().encode(JSON.stringify(record.task)).length;
      if (change.event?.statusUpdate?.status.state === "TASK_STATE_WORKING") limit = size + 50;
      return size > limit;
    };
    const sub = await t.manager.sendStreamingMessage("alice", { message: userMessage("big 2000") });
    const { events, error } = await drain(sub);
    assert.equal(error, undefined);
    const id = events[0]!.task!.id;
    const failed = events.at(-1)!.statusUpdate!.status;
    assert.equal(failed.state, "TASK_STATE_FAILED");
    const stored = await t.store.get(id);
    assert.equal(stored?.task.status.state, "TASK_STATE_FAILED");
    const log = await t.store.events(id, 0);
    assert.deepEqual(log.at(-1)?.statusUpdate?.status, stored?.task.status);
    // A replay of the task's log ends instead of waiting for an end that never comes.
    const replay = await drain(await t.manager.subscribeToTask("alice", { id, afterSeq: 0 }));
    assert.equal(replay.events.length, log.length);
    await idle(t.manager);
  });

  Deno.test(`a store that refuses every write ends the stream with InternalError and releases the task (${storeName})`, async () => {
    await using t = await setup();
    t.store.fault = (_, change) => change.created !== true;
    const sub = await t.manager.sendStreamingMessage("alice", { message: userMessage("go") });
    const { events, error } = await drain(sub);
    assert.ok(error instanceof A2AError);
    assert.equal(error.code, ErrorCode.Internal);
    assert.equal(events.length, 1, "only the creation snapshot was stored");
    assert.equal(
      await code(t.manager.sendMessage("alice", { message: userMessage("go") })),
      ErrorCode.Internal,
      "a blocking send rejects rather than hangs",
    );
    // The end of both tasks is being retried in the background: closing stops that for good.
    assert.equal(t.manager.activeCount, 2);
    await t.manager.close({ timeoutMs: 1000 });
    await idle(t.manager);
  });

  Deno.test(`a refused first write fails sendMessage with InternalError and leaves no task (${storeName})`, async () => {
    await using t = await setup();
    t.store.fault = () => true;
    assert.equal(
      await code(t.manager.sendMessage("alice", { message: userMessage("go") })),
      ErrorCode.Internal,
    );
    const page = await t.manager.listTasks("alice", {});
    assert.equal(page.tasks.length, 0);
    await idle(t.manager);
  });

  Deno.test(`a refused follow-up fails with InternalError and the task keeps taking messages (${storeName})`, async () => {
    await using t = await setup();
    const first = await t.manager.sendMessage("alice", { message: userMessage("ask") });
    const id = first.task!.id;
    t.store.fault = (_, change) => change.event === undefined;
    const refused = userMessage("ask", { taskId: id });
    assert.equal(
      await code(t.manager.sendMessage("alice", { message: refused })),
      ErrorCode.Internal,
    );
    const after = await t.manager.getTask("alice", { id });
    assert.equal(after.status.state, "TASK_STATE_INPUT_REQUIRED");
    assert.ok(!after.history!.some((m) => m.messageId === refused.messageId));
    t.store.fault = undefined;
    const next = await t.manager.sendMessage("alice", {
      message: userMessage("ask", { taskId: id }),
    });
    assert.equal(next.task?.status.state, "TASK_STATE_INPUT_REQUIRED");
    const canceled = await t.manager.cancelTask("alice", { id });
    assert.equal(canceled.status.state, "TASK_STATE_CANCELED");
    await idle(t.manager);
  });

  Deno.test(`a refused CANCELED write fails cancelTask and ends the task's streams (${storeName})`, async () => {
    await using t = await setup();
    const first = await t.manager.sendMessage("alice", { message: userMessage("ask") });
    const id = first.task!.id;
    const sub = await t.manager.subscribeToTask("alice", { id });
    t.store.fault = (record) => record.task.status.state === "TASK_STATE_CANCELED";
    assert.equal(await code(t.manager.cancelTask("alice", { id })), ErrorCode.Internal);
    const { error } = await drain(sub);
    assert.ok(error instanceof A2AError && error.code === ErrorCode.Internal);
    t.store.fault = undefined;
    const canceled = await t.manager.cancelTask("alice", { id });
    assert.equal(canceled.status.state, "TASK_STATE_CANCELED");
    await idle(t.manager);
  });

  Deno.test(`a refused final write fails the waiting send at once and is retried until it lands (${storeName})`, async () => {
    await using t = await setup();
    // The terminal write (COMPLETED, then FAILED with and without a message, then one retry) is
    // refused four times, then the store recovers.
    t.store.fault = (record) =>
      TERMINAL_STATES.has(record.task.status.state) && t.store.injected < 4;
    const message = userMessage("go");
    assert.equal(
      await code(t.manager.sendMessage("alice", { message })),
      ErrorCode.Internal,
      "the blocking send gets InternalError, not a hang",
    );
    await idle(t.manager);
    assert.equal(t.store.injected, 4);
    const [record] = (await t.manager.listTasks("alice", {})).tasks;
    assert.equal(record?.status.state, "TASK_STATE_FAILED", "the retried write landed");
    const log = await t.store.events(record.id, 0);
    assert.equal(log.at(-1)?.statusUpdate?.status.state, "TASK_STATE_FAILED");
  });
}
