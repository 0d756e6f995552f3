// Unit tests of the task core: task lifecycle, blocking rules, listing, ownership, the event log
// and subscriptions, each driven by a small in-test AgentExecutor (or the demo agent).

import assert from "node:assert/strict";
import {
  InvalidAgentResponseError,
  InvalidParamsError,
  ServiceUnavailableError,
  TaskNotCancelableError,
  TaskNotFoundError,
  UnsupportedOperationError,
} from "../src/errors/errors.ts";
import { demoAgent } from "../src/demo/agent.ts";
import {
  type AgentExecutor,
  type EventPublisher,
  type RequestContext,
  textOf,
} from "../src/tasks/executor.ts";
import { InMemoryTaskStore, type StreamEvent } from "../src/tasks/store.ts";
import { StreamOverflowError, type Subscription } from "../src/tasks/subscription.ts";
import { TaskManager } from "../src/tasks/task_manager.ts";
import {
  INTERRUPTED_STATES,
  type Message,
  type Task,
  type TaskState,
  TERMINAL_STATES,
} from "../src/types/core.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function userMessage(text: string, extra: Partial<Message> = {}): Message {
  return { messageId: crypto.randomUUID(), role: "ROLE_USER", parts: [{ text }], ...extra };
}

function send(manager: TaskManager, user: string, text: string, extra: Partial<Message> = {}) {
  return manager.sendMessage(user, { message: userMessage(text, extra) });
}

async function sendForTask(
  manager: TaskManager,
  user: string,
  text: string,
  extra: Partial<Message> = {},
): Promise<Task> {
  const { task } = await send(manager, user, text, extra);
  assert.ok(task, "expected a task");
  return task;
}

/** Reads a subscription to its end, then closes it. */
async function collect(sub: Subscription): Promise<StreamEvent[]> {
  const out: StreamEvent[] = [];
  try {
    for await (const event of sub) out.push(event);
  } finally {
    sub.close();
  }
  return out;
}

/** Reads the next event, failing the test when the stream has ended. */
async function nextEvent(sub: Subscription): Promise<StreamEvent> {
  const { value, done } = await sub.next();
  assert.equal(done, false, "the stream ended early");
  return value;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Lets the event loop run a number of times, so that pending work can settle. */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await sleep(0);
}

/**
 * Waits, for a bounded number of event-loop turns, until every execution has finished its
 * bookkeeping, then asserts that no task is left active and no subscription open.
 */
async function idle(manager: TaskManager): Promise<void> {
  for (let i = 0; i < 100 && (manager.activeCount > 0 || manager.subscriberCount > 0); i++) {
    await turns(1);
  }
  assert.equal(manager.activeCount, 0, "tasks left active");
  assert.equal(manager.subscriberCount, 0, "subscriptions left open");
}

/** Waits until the clock has moved past a timestamp, so the next one is strictly later. */
async function pastMillisecond(timestamp: string | undefined): Promise<void> {
  const ms = Date.parse(timestamp ?? "");
  assert.ok(Number.isFinite(ms), `not a timestamp: ${timestamp}`);
  while (Date.now() <= ms) await sleep(1);
}

/** Settles when the signal aborts, rejecting with its reason. */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) return reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

const STATE_BY_WORD: Record<string, TaskState> = {
  complete: "TASK_STATE_COMPLETED",
  fail: "TASK_STATE_FAILED",
  cancel: "TASK_STATE_CANCELED",
  reject: "TASK_STATE_REJECTED",
  input: "TASK_STATE_INPUT_REQUIRED",
  auth: "TASK_STATE_AUTH_REQUIRED",
};

/**
 * Goes WORKING, adds an artifact with the message text, then ends in the state named by the
 * text's first word (`complete`, `fail`, `cancel`, `reject`, `input`, `auth`; COMPLETED for
 * anything else).
 */
const byWord: AgentExecutor = {
  async execute(ctx, events) {
    const text = textOf(ctx.message);
    await events.status("TASK_STATE_WORKING");
    await events.artifact({ artifactId: "out", parts: [{ text }] });
    await events.status(STATE_BY_WORD[text.split(" ")[0]!] ?? "TASK_STATE_COMPLETED");
  },
};

/**
 * An executor that goes WORKING, tells the test it has started, and then waits for the test to
 * open its gate (or for its signal to abort) before it completes.
 */
function gatedExecutor() {
  const started = Promise.withResolvers<RequestContext>();
  const gate = Promise.withResolvers<void>();
  const contexts: RequestContext[] = [];
  const executor: AgentExecutor = {
    async execute(ctx, events) {
      contexts.push(ctx);
      await events.status("TASK_STATE_WORKING");
      await events.artifact({ artifactId: "a", parts: [{ text: "first" }] });
      started.resolve(ctx);
      await Promise.race([gate.promise, untilAborted(ctx.signal)]);
      await events.artifact({ artifactId: "a", parts: [{ text: "second" }] }, { append: true });
      await events.status("TASK_STATE_COMPLETED");
    },
  };
  return { executor, started: started.promise, open: () => gate.resolve(), contexts };
}

// --- ids and contexts ------------------------------------------------------------------------

Deno.test("sendMessage() creates a task with a server-generated id", async () => {
  let seen: RequestContext | undefined;
  const manager = new TaskManager({
    executor: {
      async execute(ctx, events) {
        seen = ctx;
        await events.status("TASK_STATE_COMPLETED");
      },
    },
  });
  const message = userMessage("hi");
  const { task } = await manager.sendMessage("alice", { message });
  assert.ok(task);
  assert.match(task.id, UUID);
  assert.notEqual(task.id, message.messageId);
  assert.equal(seen?.taskId, task.id);
  assert.equal(seen?.message.taskId, task.id);
  assert.equal(task.history?.[0]?.taskId, task.id);
  const other = await sendForTask(manager, "alice", "again");
  assert.notEqual(other.id, task.id);
  await manager.close();
});

Deno.test("sendMessage() rejects a client-chosen taskId that does not exist with TaskNotFoundError", async () => {
  let calls = 0;
  const manager = new TaskManager({
    executor: {
      async execute(_ctx, events) {
        calls++;
        await events.status("TASK_STATE_COMPLETED");
      },
    },
  });
  await assert.rejects(send(manager, "alice", "hi", { taskId: "my-own-id" }), TaskNotFoundError);
  assert.equal(calls, 0);
  assert.equal((await manager.listTasks("alice", {})).totalSize, 0);
  assert.equal(await manager.store.get("my-own-id"), undefined);
  assert.equal(manager.activeCount, 0);
  await manager.close();
});

Deno.test("sendMessage() generates a contextId when the message has none", async () => {
  const contexts: string[] = [];
  const manager = new TaskManager({
    executor: {
      async execute(ctx, events) {
        contexts.push(ctx.contextId);
        await events.status("TASK_STATE_COMPLETED");
      },
    },
  });
  const a = await sendForTask(manager, "alice", "one");
  const b = await sendForTask(manager, "alice", "two");
  assert.match(a.contextId, UUID);
  assert.match(b.contextId, UUID);
  assert.notEqual(a.contextId, b.contextId);
  assert.deepEqual(contexts, [a.contextId, b.contextId]);
  assert.equal(a.history?.[0]?.contextId, a.contextId);
  await manager.close();
});

Deno.test("sendMessage() keeps the contextId the client sent", async () => {
  let seen: RequestContext | undefined;
  const manager = new TaskManager({
    executor: {
      async execute(ctx, events) {
        seen = ctx;
        await events.status("TASK_STATE_COMPLETED");
      },
    },
  });
  const a = await sendForTask(manager, "alice", "one", { contextId: "conversation-1" });
  const b = await sendForTask(manager, "alice", "two", { contextId: "conversation-1" });
  assert.equal(a.contextId, "conversation-1");
  assert.equal(b.contextId, "conversation-1");
  assert.notEqual(a.id, b.id);
  assert.equal(seen?.contextId, "conversation-1");
  await manager.close();
});

// --- continuing a task -----------------------------------------------------------------------

Deno.test("sendMessage() with a taskId continues that task, even right after INPUT_REQUIRED", async () => {
  const manager = new TaskManager({ executor: demoAgent });
  const first = await sendForTask(manager, "alice", "input: what should I echo?");
  assert.equal(first.status.state, "TASK_STATE_INPUT_REQUIRED");
  assert.equal(textOf(first.status.message!), "what should I echo?");

  // No pause between the two calls: the follow-up must not be refused as concurrent.
  const second = await sendForTask(manager, "alice", "echo me", { taskId: first.id });
  assert.equal(second.id, first.id);
  assert.equal(second.contextId, first.contextId);
  assert.equal(second.status.state, "TASK_STATE_COMPLETED");
  assert.equal(textOf(second.artifacts![0]!), "echo me");
  const userTexts = second.history!.filter((m) => m.role === "ROLE_USER").map(textOf);
  assert.deepEqual(userTexts, ["input: what should I echo?", "echo me"]);
  assert.equal((await manager.listTasks("alice", {})).totalSize, 1);
  await manager.close();
});

Deno.test("sendMessage() gives the executor the task as it was before the follow-up", async () => {
  const seen: (Task | undefined)[] = [];
  const manager = new TaskManager({
    executor: {
      async execute(ctx, events) {
        seen.push(ctx.task);
        await events.status(ctx.task ? "TASK_STATE_COMPLETED" : "TASK_STATE_INPUT_REQUIRED");
      },
    },
  });
  const first = await sendForTask(manager, "alice", "one");
  await sendForTask(manager, "alice", "two", { taskId: first.id, contextId: first.contextId });
  assert.equal(seen[0], undefined);
  assert.equal(seen[1]?.id, first.id);
  assert.equal(seen[1]?.status.state, "TASK_STATE_INPUT_REQUIRED");
  await manager.close();
});

Deno.test("sendMessage() rejects a taskId with a mismatching contextId with InvalidParamsError", async () => {
  const manager = new TaskManager({ executor: byWord });
  const task = await sendForTask(manager, "alice", "input please");
  await idle(manager);
  await assert.rejects(
    send(manager, "alice", "more", { taskId: task.id, contextId: "someone-else" }),
    (e: unknown) => {
      assert.ok(e instanceof InvalidParamsError);
      assert.match(e.message, /contextId/);
      return true;
    },
  );
  const after = await manager.getTask("alice", { id: task.id });
  assert.equal(after.status.state, "TASK_STATE_INPUT_REQUIRED");
  assert.equal(after.history?.length, task.history?.length);
  assert.equal(manager.activeCount, 0);
  await manager.close();
});

Deno.test("sendMessage() to a task in a terminal state rejects with UnsupportedOperationError", async () => {
  let calls = 0;
  const manager = new TaskManager({
    executor: {
      async execute(ctx, events) {
        calls++;
        await byWord.execute(ctx, events);
      },
    },
  });
  for (const word of ["complete", "fail", "cancel", "reject"]) {
    const task = await sendForTask(manager, "alice", word);
    assert.ok(TERMINAL_STATES.has(task.status.state));
    await idle(manager);
    const before = calls;
    await assert.rejects(send(manager, "alice", "more", { taskId: task.id }), (e: unknown) => {
      assert.ok(e instanceof UnsupportedOperationError, word);
      assert.match(e.message, /terminal state/);
      return true;
    });
    assert.equal(calls, before, word);
    const after = await manager.getTask("alice", { id: task.id });
    assert.equal(after.history?.length, task.history?.length);
    assert.equal(manager.activeCount, 0);
  }
  await manager.close();
});

Deno.test("sendMessage() to a task that is still working rejects with UnsupportedOperationError", async () => {
  const { executor, started, open, contexts } = gatedExecutor();
  const manager = new TaskManager({ executor });
  const pending = send(manager, "alice", "work");
  const ctx = await started;
  await assert.rejects(
    send(manager, "alice", "more", { taskId: ctx.taskId }),
    UnsupportedOperationError,
  );
  open();
  assert.equal((await pending).task?.status.state, "TASK_STATE_COMPLETED");
  assert.equal(contexts.length, 1);
  await manager.close();
});

Deno.test("sendMessage() after close() rejects with ServiceUnavailableError", async () => {
  const manager = new TaskManager({ executor: byWord });
  await manager.close();
  await assert.rejects(send(manager, "alice", "hi"), ServiceUnavailableError);
  assert.equal(manager.activeCount, 0);
});

// --- blocking and returnImmediately ----------------------------------------------------------

Deno.test("sendMessage() waits for a terminal state by default", async () => {
  const { executor, started, open } = gatedExecutor();
  const manager = new TaskManager({ executor });
  let settled = false;
  const pending = send(manager, "alice", "work").finally(() => settled = true);
  const ctx = await started;
  await turns(5);
  assert.equal(settled, false, "sendMessage() resolved while the task was still WORKING");
  assert.equal(
    (await manager.getTask("alice", { id: ctx.taskId })).status.state,
    "TASK_STATE_WORKING",
  );
  open();
  const { task } = await pending;
  assert.equal(task?.status.state, "TASK_STATE_COMPLETED");
  assert.equal(textOf(task!.artifacts![0]!), "firstsecond");
  await manager.close();
});

Deno.test("sendMessage() returns at an interrupted state without waiting for the executor", async () => {
  for (const state of ["TASK_STATE_INPUT_REQUIRED", "TASK_STATE_AUTH_REQUIRED"] as const) {
    const order: string[] = [];
    const returned = Promise.withResolvers<void>();
    const manager = new TaskManager({
      executor: {
        async execute(_ctx, events) {
          await events.status(state, { message: "need more" });
          // Keep running for a while after the interrupted state.
          for (let i = 0; i < 50 && order.length === 0; i++) await turns(1);
          order.push("executor returned");
          returned.resolve();
        },
      },
    });
    const { task } = await send(manager, "alice", "hi");
    order.push("sendMessage resolved");
    await returned.promise;
    assert.deepEqual(order, ["sendMessage resolved", "executor returned"], state);
    assert.equal(task?.status.state, state);
    assert.equal(textOf(task!.status.message!), "need more");
    await manager.close();
  }
});

Deno.test("sendMessage() with returnImmediately returns the task before it is final", async () => {
  const { executor, open } = gatedExecutor();
  const manager = new TaskManager({ executor });
  const { task } = await manager.sendMessage("alice", {
    message: userMessage("work"),
    configuration: { returnImmediately: true },
  });
  assert.ok(task);
  const state = task.status.state;
  assert.ok(!TERMINAL_STATES.has(state) && !INTERRUPTED_STATES.has(state), state);
  const stored = await manager.getTask("alice", { id: task.id });
  assert.ok(!TERMINAL_STATES.has(stored.status.state));
  open();
  const sub = await manager.subscribeToTask("alice", { id: task.id, afterSeq: 0 });
  const events = await collect(sub);
  assert.equal(events.at(-1)?.statusUpdate?.status.state, "TASK_STATE_COMPLETED");
  await manager.close();
});

// --- history ---------------------------------------------------------------------------------

Deno.test("historyLength trims the history: 0 omits it, N keeps the last N messages", async () => {
  const manager = new TaskManager({
    executor: {
      async execute(_ctx, events) {
        await events.status("TASK_STATE_WORKING", { message: "a" });
        await events.status("TASK_STATE_COMPLETED", { message: "b" });
      },
    },
  });
  const full = await sendForTask(manager, "alice", "q");
  assert.deepEqual(full.history?.map(textOf), ["q", "a", "b"]);
  assert.equal(full.history?.[1]?.role, "ROLE_AGENT");

  const withLength = (historyLength: number) =>
    manager.sendMessage("alice", { message: userMessage("q"), configuration: { historyLength } });
  const none = (await withLength(0)).task!;
  assert.equal("history" in none, false);
  assert.deepEqual((await withLength(2)).task?.history?.map(textOf), ["a", "b"]);
  assert.deepEqual((await withLength(10)).task?.history?.map(textOf), ["q", "a", "b"]);

  const got = await manager.getTask("alice", { id: full.id, historyLength: 1 });
  assert.deepEqual(got.history?.map(textOf), ["b"]);
  assert.equal(
    "history" in await manager.getTask("alice", { id: full.id, historyLength: 0 }),
    false,
  );
  assert.equal((await manager.getTask("alice", { id: full.id })).history?.length, 3);

  const listed = await manager.listTasks("alice", { historyLength: 0 });
  assert.ok(listed.tasks.every((t) => !("history" in t)));
  const listedOne = await manager.listTasks("alice", { historyLength: 1 });
  assert.ok(listedOne.tasks.every((t) => t.history?.length === 1));
  await manager.close();
});

// --- terminal states, cancel and failures ----------------------------------------------------

Deno.test("a terminal state is final: publishing after COMPLETED rejects with UnsupportedOperationError", async () => {
  const errors: unknown[] = [];
  const returned = Promise.withResolvers<void>();
  const manager = new TaskManager({
    executor: {
      async execute(_ctx, events) {
        await events.status("TASK_STATE_COMPLETED");
        await events.status("TASK_STATE_WORKING").catch((e) => errors.push(e));
        await events.status("TASK_STATE_FAILED").catch((e) => errors.push(e));
        await events.artifact({ artifactId: "late", parts: [{ text: "x" }] })
          .catch((e) => errors.push(e));
        returned.resolve();
      },
    },
  });
  const task = await sendForTask(manager, "alice", "hi");
  await returned.promise;
  assert.equal(errors.length, 3);
  for (const e of errors) assert.ok(e instanceof UnsupportedOperationError);
  const after = await manager.getTask("alice", { id: task.id });
  assert.equal(after.status.state, "TASK_STATE_COMPLETED");
  assert.equal(after.artifacts, undefined);
  assert.deepEqual(after.status, task.status);
  const log = await collect(await manager.subscribeToTask("alice", { id: task.id, afterSeq: 0 }));
  assert.deepEqual(log.map((e) => e.seq), [1, 2]);
  await manager.close();
});

Deno.test("cancelTask() rejects a task in a terminal state with TaskNotCancelableError", async () => {
  const manager = new TaskManager({ executor: byWord });
  for (const word of ["complete", "fail", "cancel", "reject"]) {
    const task = await sendForTask(manager, "alice", word);
    await idle(manager);
    await assert.rejects(manager.cancelTask("alice", { id: task.id }), TaskNotCancelableError);
    assert.equal(manager.activeCount, 0);
    const after = await manager.getTask("alice", { id: task.id });
    assert.equal(after.status.state, task.status.state, word);
  }
  await manager.close();
});

Deno.test("cancelTask() aborts the executor's signal and leaves the task CANCELED", async () => {
  const { executor, started } = gatedExecutor();
  const manager = new TaskManager({ executor });
  const pending = send(manager, "alice", "work");
  const ctx = await started;
  assert.equal(ctx.signal.aborted, false);
  const canceled = await manager.cancelTask("alice", { id: ctx.taskId });
  assert.equal(canceled.status.state, "TASK_STATE_CANCELED");
  assert.equal(ctx.signal.aborted, true);
  assert.equal((await pending).task?.status.state, "TASK_STATE_CANCELED");
  const after = await manager.getTask("alice", { id: ctx.taskId });
  assert.equal(after.status.state, "TASK_STATE_CANCELED");
  assert.equal(textOf(after.artifacts![0]!), "first");
  await manager.close();
});

Deno.test("cancelTask() lets the executor's cancel() publish the CANCELED status", async () => {
  const manager = new TaskManager({ executor: demoAgent });
  const sub = await manager.sendStreamingMessage("alice", { message: userMessage("slow: a b c") });
  const first = await nextEvent(sub);
  const id = first.task!.id;
  const canceled = await manager.cancelTask("alice", { id });
  assert.equal(canceled.status.state, "TASK_STATE_CANCELED");
  assert.equal(textOf(canceled.status.message!), "Canceled by the client");
  const rest = await collect(sub);
  assert.equal(rest.at(-1)?.statusUpdate?.status.state, "TASK_STATE_CANCELED");
  await manager.close();
});

Deno.test("cancelTask() cancels a task that waits for input", async () => {
  const manager = new TaskManager({ executor: byWord });
  const task = await sendForTask(manager, "alice", "input please");
  const canceled = await manager.cancelTask("alice", { id: task.id });
  assert.equal(canceled.status.state, "TASK_STATE_CANCELED");
  await assert.rejects(manager.cancelTask("alice", { id: task.id }), TaskNotCancelableError);
  await manager.close();
});

Deno.test("an executor that throws leaves the task FAILED", async () => {
  const manager = new TaskManager({
    executor: {
      async execute(_ctx, events) {
        await events.status("TASK_STATE_WORKING");
        throw new Error("secret internal detail");
      },
    },
  });
  const task = await sendForTask(manager, "alice", "hi");
  assert.equal(task.status.state, "TASK_STATE_FAILED");
  assert.ok(task.status.message);
  assert.doesNotMatch(textOf(task.status.message), /secret/);
  await manager.close();
});

Deno.test("an executor that throws before any event leaves a FAILED task", async () => {
  const manager = new TaskManager({
    executor: {
      execute() {
        throw new Error("boom");
      },
    },
  });
  const task = await sendForTask(manager, "alice", "hi");
  assert.equal(task.status.state, "TASK_STATE_FAILED");
  assert.equal((await manager.getTask("alice", { id: task.id })).status.state, "TASK_STATE_FAILED");
  await manager.close();
});

Deno.test("an executor that returns while WORKING leaves the task FAILED", async () => {
  const manager = new TaskManager({
    executor: {
      async execute(_ctx, events) {
        await events.status("TASK_STATE_WORKING");
      },
    },
  });
  const task = await sendForTask(manager, "alice", "hi");
  assert.equal(task.status.state, "TASK_STATE_FAILED");
  assert.match(textOf(task.status.message!), /without reaching a final state/);
  await manager.close();
});

Deno.test("an executor that fails to handle a follow-up leaves the interrupted task FAILED", async () => {
  for (const mode of ["throws", "returns"] as const) {
    const manager = new TaskManager({
      executor: {
        async execute(ctx, events) {
          if (!ctx.task) return await events.status("TASK_STATE_INPUT_REQUIRED");
          if (mode === "throws") throw new Error("boom");
        },
      },
    });
    const task = await sendForTask(manager, "alice", "one");
    assert.equal(task.status.state, "TASK_STATE_INPUT_REQUIRED");
    const after = await sendForTask(manager, "alice", "two", { taskId: task.id });
    assert.equal(after.status.state, "TASK_STATE_FAILED", mode);
    await manager.close();
  }
});

Deno.test("sendMessage() rejects with the executor's A2AError when it refuses before any event", async () => {
  const manager = new TaskManager({
    executor: {
      execute() {
        return Promise.reject(new UnsupportedOperationError("No images, please"));
      },
    },
  });
  await assert.rejects(send(manager, "alice", "hi"), UnsupportedOperationError);
  assert.equal((await manager.listTasks("alice", {})).totalSize, 0);
  await manager.close();
});

// --- direct replies --------------------------------------------------------------------------

Deno.test("reply() gives the client a direct message and creates no task", async () => {
  const manager = new TaskManager({ executor: demoAgent });
  const res = await send(manager, "alice", "reply: hello there", { contextId: "c-7" });
  assert.equal(res.task, undefined);
  assert.ok(res.message);
  assert.equal(res.message.role, "ROLE_AGENT");
  assert.equal(textOf(res.message), "hello there");
  assert.equal(res.message.contextId, "c-7");
  assert.equal(res.message.taskId, undefined);
  assert.equal((await manager.listTasks("alice", {})).totalSize, 0);
  await manager.close();
});

Deno.test("reply() after a status update rejects with InvalidAgentResponseError", async () => {
  const errors: unknown[] = [];
  const manager = new TaskManager({
    executor: {
      async execute(_ctx, events) {
        await events.status("TASK_STATE_WORKING");
        await events.reply("too late").catch((e) => errors.push(e));
        await events.status("TASK_STATE_COMPLETED");
      },
    },
  });
  const res = await send(manager, "alice", "hi");
  assert.equal(res.message, undefined);
  assert.equal(res.task?.status.state, "TASK_STATE_COMPLETED");
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof InvalidAgentResponseError);
  await manager.close();
});

Deno.test("a status update after reply() rejects with InvalidAgentResponseError", async () => {
  const errors: unknown[] = [];
  const returned = Promise.withResolvers<void>();
  const manager = new TaskManager({
    executor: {
      async execute(_ctx, events) {
        await events.reply("hi back");
        await events.status("TASK_STATE_COMPLETED").catch((e) => errors.push(e));
        returned.resolve();
      },
    },
  });
  const res = await send(manager, "alice", "hi");
  assert.equal(textOf(res.message!), "hi back");
  await returned.promise;
  assert.ok(errors[0] instanceof InvalidAgentResponseError);
  assert.equal((await manager.listTasks("alice", {})).totalSize, 0);
  await manager.close();
});

// --- listing ---------------------------------------------------------------------------------

Deno.test("listTasks() filters by contextId", async () => {
  const manager = new TaskManager({ executor: byWord });
  const a1 = await sendForTask(manager, "alice", "x", { contextId: "a" });
  const a2 = await sendForTask(manager, "alice", "y", { contextId: "a" });
  await sendForTask(manager, "alice", "z", { contextId: "b" });
  const res = await manager.listTasks("alice", { contextId: "a" });
  assert.deepEqual(res.tasks.map((t) => t.id).sort(), [a1.id, a2.id].sort());
  assert.equal(res.totalSize, 2);
  assert.equal((await manager.listTasks("alice", { contextId: "none" })).totalSize, 0);
  await manager.close();
});

Deno.test("listTasks() filters by status", async () => {
  const manager = new TaskManager({ executor: byWord });
  const failed = await sendForTask(manager, "alice", "fail");
  const waiting = await sendForTask(manager, "alice", "input");
  await sendForTask(manager, "alice", "complete");
  await sendForTask(manager, "alice", "complete");
  const f = await manager.listTasks("alice", { status: "TASK_STATE_FAILED" });
  assert.deepEqual(f.tasks.map((t) => t.id), [failed.id]);
  const i = await manager.listTasks("alice", { status: "TASK_STATE_INPUT_REQUIRED" });
  assert.deepEqual(i.tasks.map((t) => t.id), [waiting.id]);
  const c = await manager.listTasks("alice", { status: "TASK_STATE_COMPLETED" });
  assert.equal(c.totalSize, 2);
  assert.ok(c.tasks.every((t) => t.status.state === "TASK_STATE_COMPLETED"));
  await manager.close();
});

Deno.test("listTasks() filters by statusTimestampAfter, strictly after", async () => {
  const manager = new TaskManager({ executor: byWord });
  const old = await sendForTask(manager, "alice", "one");
  await pastMillisecond(old.status.timestamp);
  const recent = await sendForTask(manager, "alice", "two");
  const after = old.status.timestamp!;
  const res = await manager.listTasks("alice", { statusTimestampAfter: after });
  assert.deepEqual(res.tasks.map((t) => t.id), [recent.id]);
  const all = await manager.listTasks("alice", { statusTimestampAfter: "2000-01-01T00:00:00Z" });
  assert.equal(all.totalSize, 2);
  const none = await manager.listTasks("alice", {
    statusTimestampAfter: recent.status.timestamp!,
  });
  assert.equal(none.totalSize, 0);
  await manager.close();
});

Deno.test("listTasks() uses a pageSize of 50 by default", async () => {
  const manager = new TaskManager({ executor: byWord });
  for (let i = 0; i < 51; i++) await sendForTask(manager, "alice", `task ${i}`);
  const first = await manager.listTasks("alice", {});
  assert.equal(first.pageSize, 50);
  assert.equal(first.tasks.length, 50);
  assert.equal(first.totalSize, 51);
  assert.notEqual(first.nextPageToken, "");
  const second = await manager.listTasks("alice", { pageToken: first.nextPageToken });
  assert.equal(second.tasks.length, 1);
  assert.equal(second.nextPageToken, "");
  await manager.close();
});

Deno.test("listTasks() pages through every task exactly once, newest status first", async () => {
  const manager = new TaskManager({ executor: byWord });
  const ids: string[] = [];
  for (let i = 0; i < 8; i++) {
    const task = await sendForTask(manager, "alice", `task ${i}`);
    ids.push(task.id);
    // Some tasks share a millisecond, some do not: both orderings must page correctly.
    if (i % 3 === 0) await pastMillisecond(task.status.timestamp);
  }
  const seen: Task[] = [];
  const sizes: number[] = [];
  let pageToken = "";
  do {
    const page = await manager.listTasks("alice", { pageSize: 3, pageToken });
    assert.equal(page.pageSize, 3);
    assert.equal(page.totalSize, 8);
    sizes.push(page.tasks.length);
    seen.push(...page.tasks);
    pageToken = page.nextPageToken;
  } while (pageToken !== "" && sizes.length < 10);
  assert.deepEqual(sizes, [3, 3, 2]);
  assert.deepEqual(seen.map((t) => t.id).sort(), [...ids].sort());
  const stamps = seen.map((t) => Date.parse(t.status.timestamp!));
  for (let i = 1; i < stamps.length; i++) assert.ok(stamps[i - 1]! >= stamps[i]!);
  assert.equal(seen[0]!.id, ids.at(-1));
  assert.equal(seen.at(-1)!.id, ids[0]);
  await manager.close();
});

Deno.test("listTasks() lists the most recently updated task first", async () => {
  const manager = new TaskManager({ executor: byWord });
  const older = await sendForTask(manager, "alice", "input first");
  await pastMillisecond(older.status.timestamp);
  const newer = await sendForTask(manager, "alice", "complete");
  assert.deepEqual((await manager.listTasks("alice", {})).tasks.map((t) => t.id), [
    newer.id,
    older.id,
  ]);
  await pastMillisecond(newer.status.timestamp);
  await sendForTask(manager, "alice", "complete", { taskId: older.id });
  assert.deepEqual((await manager.listTasks("alice", {})).tasks.map((t) => t.id), [
    older.id,
    newer.id,
  ]);
  await manager.close();
});

Deno.test("listTasks() includes artifacts only with includeArtifacts", async () => {
  const manager = new TaskManager({ executor: byWord });
  const task = await sendForTask(manager, "alice", "complete");
  assert.equal(task.artifacts?.length, 1);
  const without = await manager.listTasks("alice", {});
  assert.equal("artifacts" in without.tasks[0]!, false);
  const explicitFalse = await manager.listTasks("alice", { includeArtifacts: false });
  assert.equal("artifacts" in explicitFalse.tasks[0]!, false);
  const withArtifacts = await manager.listTasks("alice", { includeArtifacts: true });
  assert.deepEqual(withArtifacts.tasks[0]!.artifacts, task.artifacts);
  await manager.close();
});

Deno.test("listTasks() rejects an invalid pageToken with InvalidParamsError", async () => {
  const manager = new TaskManager({ executor: byWord });
  await sendForTask(manager, "alice", "complete");
  for (const pageToken of ["not a token!", btoa("{}"), btoa('["only-one"]'), btoa("[1,2]")]) {
    await assert.rejects(manager.listTasks("alice", { pageToken }), (e: unknown) => {
      assert.ok(e instanceof InvalidParamsError, pageToken);
      assert.match(e.message, /pageToken/);
      return true;
    });
  }
  await manager.close();
});

// --- ownership -------------------------------------------------------------------------------

Deno.test("a task is visible only to the user who created it", async () => {
  const manager = new TaskManager({ executor: byWord });
  const task = await sendForTask(manager, "alice", "input please");
  const id = task.id;
  await idle(manager);

  await assert.rejects(manager.getTask("bob", { id }), TaskNotFoundError);
  await assert.rejects(manager.cancelTask("bob", { id }), TaskNotFoundError);
  await assert.rejects(manager.subscribeToTask("bob", { id }), TaskNotFoundError);
  await assert.rejects(manager.subscribeToTask("bob", { id, afterSeq: 0 }), TaskNotFoundError);
  await assert.rejects(send(manager, "bob", "complete", { taskId: id }), TaskNotFoundError);
  const bobs = await manager.listTasks("bob", {});
  assert.deepEqual(bobs.tasks, []);
  assert.equal(bobs.totalSize, 0);
  assert.equal(manager.activeCount, 0);

  // Bob's attempts changed nothing, and alice can still do all of it.
  const mine = await manager.getTask("alice", { id });
  assert.deepEqual(mine, task);
  assert.deepEqual((await manager.listTasks("alice", {})).tasks.map((t) => t.id), [id]);
  const sub = await manager.subscribeToTask("alice", { id });
  assert.equal((await nextEvent(sub)).task?.id, id);
  sub.close();
  const done = await sendForTask(manager, "alice", "complete", { taskId: id });
  assert.equal(done.status.state, "TASK_STATE_COMPLETED");
  await manager.close();
});

// --- event log and subscriptions -------------------------------------------------------------

Deno.test("sendStreamingMessage() streams a task snapshot, status and artifact events, then ends", async () => {
  const manager = new TaskManager({ executor: demoAgent });
  const text = "the quick brown fox jumps over the lazy dog, twice over";
  const events = await collect(
    await manager.sendStreamingMessage("alice", { message: userMessage(text) }),
  );
  assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1));
  assert.equal(events[0]?.task?.status.state, "TASK_STATE_SUBMITTED");
  assert.equal(events[1]?.statusUpdate?.status.state, "TASK_STATE_WORKING");
  const chunks = events.filter((e) => e.artifactUpdate).map((e) => e.artifactUpdate!);
  assert.ok(chunks.length >= 2);
  assert.equal(chunks.map((c) => textOf(c.artifact)).join(""), text);
  assert.equal(chunks.at(-1)?.lastChunk, true);
  assert.equal(events.at(-1)?.statusUpdate?.status.state, "TASK_STATE_COMPLETED");
  for (const e of events) {
    assert.equal(Object.keys(e).filter((k) => k !== "seq").length, 1, "one member per event");
  }
  assert.equal(manager.subscriberCount, 0);
  await manager.close();
});

Deno.test("subscribeToTask() with afterSeq replays exactly the logged events after it", async () => {
  const manager = new TaskManager({ executor: demoAgent });
  const task = await sendForTask(manager, "alice", "one two three four five six seven eight nine");
  const all = await collect(await manager.subscribeToTask("alice", { id: task.id, afterSeq: 0 }));
  const n = all.length;
  assert.ok(n >= 5);
  assert.deepEqual(all.map((e) => e.seq), Array.from({ length: n }, (_, i) => i + 1));
  assert.ok(all[0]?.task);
  assert.equal(all.at(-1)?.statusUpdate?.status.state, "TASK_STATE_COMPLETED");
  for (let k = 1; k <= n; k++) {
    const sub = await manager.subscribeToTask("alice", { id: task.id, afterSeq: k });
    assert.deepEqual(await collect(sub), all.slice(k), `afterSeq ${k}`);
  }
  await assert.rejects(
    manager.subscribeToTask("alice", { id: task.id, afterSeq: n + 1 }),
    InvalidParamsError,
  );
  await idle(manager);
  await manager.close();
});

Deno.test("subscribeToTask() without afterSeq starts with a task snapshot, then live events", async () => {
  const { executor, started, open } = gatedExecutor();
  const manager = new TaskManager({ executor });
  const pending = send(manager, "alice", "work");
  const ctx = await started;
  const sub = await manager.subscribeToTask("alice", { id: ctx.taskId });
  const snapshot = await nextEvent(sub);
  assert.ok(snapshot.task);
  assert.equal(snapshot.task.status.state, "TASK_STATE_WORKING");
  assert.equal(textOf(snapshot.task.artifacts![0]!), "first");
  assert.equal(snapshot.seq, 3);
  open();
  const live = await collect(sub);
  assert.deepEqual(live.map((e) => e.seq), [4, 5]);
  assert.deepEqual(live, await manager.store.events(ctx.taskId, 3));
  await pending;
  await manager.close();
});

Deno.test("subscribeToTask() with afterSeq on a running task continues live with no gap or duplicate", async () => {
  const { executor, started, open } = gatedExecutor();
  const manager = new TaskManager({ executor });
  const pending = send(manager, "alice", "work");
  const ctx = await started;
  const sub = await manager.subscribeToTask("alice", { id: ctx.taskId, afterSeq: 1 });
  open();
  const events = await collect(sub);
  assert.deepEqual(events.map((e) => e.seq), [2, 3, 4, 5]);
  assert.deepEqual(events, await manager.store.events(ctx.taskId, 1));
  await pending;
  await manager.close();
});

Deno.test("subscribeToTask() rejects a task in a terminal state without afterSeq with UnsupportedOperationError", async () => {
  const manager = new TaskManager({ executor: byWord });
  const task = await sendForTask(manager, "alice", "complete");
  await idle(manager);
  await assert.rejects(
    manager.subscribeToTask("alice", { id: task.id }),
    UnsupportedOperationError,
  );
  assert.equal(manager.activeCount, 0);
  assert.equal(manager.subscriberCount, 0);
  await manager.close();
});

Deno.test("subscribeToTask() rejects an unknown task with TaskNotFoundError", async () => {
  const manager = new TaskManager({ executor: byWord });
  await assert.rejects(manager.subscribeToTask("alice", { id: "nope" }), TaskNotFoundError);
  await assert.rejects(manager.getTask("alice", { id: "nope" }), TaskNotFoundError);
  await assert.rejects(manager.cancelTask("alice", { id: "nope" }), TaskNotFoundError);
  await manager.close();
});

Deno.test("onEvent() sees every logged event with the task's owner", async () => {
  const manager = new TaskManager({ executor: byWord });
  const seen: [string, StreamEvent][] = [];
  const off = manager.onEvent((owner, event) => seen.push([owner, event]));
  const task = await sendForTask(manager, "alice", "complete");
  off();
  await sendForTask(manager, "alice", "complete");
  assert.ok(seen.every(([owner]) => owner === "alice"));
  assert.deepEqual(seen.map(([, e]) => e), await manager.store.events(task.id, 0));
  await manager.close();
});

Deno.test("artifact updates with append merge their parts into the artifact", async () => {
  const manager = new TaskManager({
    executor: {
      async execute(_ctx, events) {
        await events.artifact({ artifactId: "a", name: "text", parts: [{ text: "x" }] });
        await events.artifact({ artifactId: "a", parts: [{ text: "y" }] }, { append: true });
        await events.artifact({ artifactId: "a", parts: [{ text: "z" }] }, {
          append: true,
          lastChunk: true,
        });
        await events.artifact({ artifactId: "b", parts: [{ text: "old" }] });
        await events.artifact({ artifactId: "b", parts: [{ text: "new" }] });
        await events.status("TASK_STATE_COMPLETED");
      },
    },
  });
  const task = await sendForTask(manager, "alice", "hi");
  assert.deepEqual(task.artifacts, [
    { artifactId: "a", name: "text", parts: [{ text: "x" }, { text: "y" }, { text: "z" }] },
    { artifactId: "b", parts: [{ text: "new" }] },
  ]);
  const log = await manager.store.events(task.id, 0);
  const updates = log.filter((e) => e.artifactUpdate).map((e) => e.artifactUpdate!);
  assert.deepEqual(updates.map((u) => u.artifact.parts), [
    [{ text: "x" }],
    [{ text: "y" }],
    [{ text: "z" }],
    [{ text: "old" }],
    [{ text: "new" }],
  ]);
  assert.deepEqual(updates.map((u) => u.append), [undefined, true, true, undefined, undefined]);
  assert.equal(updates[2]?.lastChunk, true);
  await manager.close();
});

Deno.test("an artifact without parts rejects with InvalidAgentResponseError", async () => {
  const errors: unknown[] = [];
  const manager = new TaskManager({
    executor: {
      async execute(_ctx, events) {
        await events.artifact({ artifactId: "a", parts: [] }).catch((e) => errors.push(e));
        await events.status("TASK_STATE_COMPLETED");
      },
    },
  });
  const task = await sendForTask(manager, "alice", "hi");
  assert.ok(errors[0] instanceof InvalidAgentResponseError);
  assert.equal(task.artifacts, undefined);
  await manager.close();
});

Deno.test("a subscriber that does not consume overflows with StreamOverflowError and lastSeq", async () => {
  const gate = Promise.withResolvers<void>();
  const finished = Promise.withResolvers<void>();
  const manager = new TaskManager({
    subscriberBufferLimit: 2,
    executor: {
      async execute(_ctx: RequestContext, events: EventPublisher) {
        await gate.promise;
        await events.status("TASK_STATE_WORKING");
        for (let i = 0; i < 5; i++) {
          await events.artifact({ artifactId: "a", parts: [{ text: `${i}` }] }, { append: i > 0 });
        }
        await events.status("TASK_STATE_COMPLETED");
        finished.resolve();
      },
    },
  });
  const sub = await manager.sendStreamingMessage("alice", { message: userMessage("hi") });
  gate.resolve();
  await finished.promise;
  assert.equal(manager.subscriberCount, 0, "an overflowed subscriber is forgotten");
  const err = await sub.next().then(
    () => assert.fail("expected the stream to fail"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof StreamOverflowError);
  assert.equal(err.lastSeq, 0);
  assert.match(err.message, /afterSeq 0/);
  assert.equal((await sub.next()).done, true);
  sub.close();

  // The client resumes from lastSeq and gets everything it missed.
  const task = (await manager.listTasks("alice", {})).tasks[0]!;
  const rest = await collect(
    await manager.subscribeToTask("alice", { id: task.id, afterSeq: err.lastSeq }),
  );
  assert.deepEqual(rest.map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(rest.at(-1)?.statusUpdate?.status.state, "TASK_STATE_COMPLETED");
  await manager.close();
});

Deno.test("a subscriber that keeps up does not overflow a small buffer", async () => {
  const manager = new TaskManager({ subscriberBufferLimit: 1, executor: demoAgent });
  const text = "a fairly long text that the demo agent sends back in several chunks";
  const events = await collect(
    await manager.sendStreamingMessage("alice", { message: userMessage(text) }),
  );
  assert.equal(events.at(-1)?.statusUpdate?.status.state, "TASK_STATE_COMPLETED");
  await manager.close();
});

Deno.test("close() aborts running executions, which end FAILED with a shutdown message", async () => {
  const started = Promise.withResolvers<RequestContext>();
  const manager = new TaskManager({
    executor: {
      async execute(ctx, events) {
        await events.status("TASK_STATE_WORKING");
        started.resolve(ctx);
        await untilAborted(ctx.signal);
        throw ctx.signal.reason;
      },
    },
  });
  const sub = await manager.sendStreamingMessage("alice", { message: userMessage("work") });
  const ctx = await started.promise;
  await manager.close();
  assert.equal(ctx.signal.aborted, true);
  const events: StreamEvent[] = [];
  for await (const e of sub) events.push(e);
  const last = events.at(-1)?.statusUpdate?.status;
  assert.equal(last?.state, "TASK_STATE_FAILED");
  assert.match(textOf(last?.message ?? { parts: [] }), /shut down/);
  assert.equal(manager.subscriberCount, 0);
  await assert.rejects(
    manager.sendMessage("alice", { message: userMessage("late") }),
    ServiceUnavailableError,
  );
});

Deno.test("close() ends subscriptions of interrupted tasks with ServiceUnavailableError", async () => {
  const manager = new TaskManager({ executor: demoAgent });
  const { task } = await manager.sendMessage("alice", { message: userMessage("input: name?") });
  assert.equal(task?.status.state, "TASK_STATE_INPUT_REQUIRED");
  const sub = await manager.subscribeToTask("alice", { id: task.id });
  await manager.close();
  const events: StreamEvent[] = [];
  await assert.rejects(async () => {
    for await (const e of sub) events.push(e);
  }, ServiceUnavailableError);
  sub.close();
  // The snapshot queued before the shutdown is still delivered, then the stream fails.
  assert.equal(events[0]?.task?.id, task.id);
  assert.equal(manager.subscriberCount, 0);
});

Deno.test("a follow-up to a recently idle task reads nothing from the store, unless idleTasks is 0", async () => {
  for (const idleTasks of [64, 0]) {
    let reads = 0;
    const store = new InMemoryTaskStore();
    const get = store.get.bind(store);
    store.get = (id, view) => {
      reads++;
      return get(id, view);
    };
    const manager = new TaskManager({ executor: byWord, store, idleTasks });
    const task = await sendForTask(manager, "alice", "input");
    await idle(manager);
    const next = await send(manager, "alice", "complete", { taskId: task.id });
    assert.equal(next.task?.status.state, "TASK_STATE_COMPLETED");
    assert.equal(reads > 0, idleTasks === 0, `idleTasks ${idleTasks}: ${reads} reads`);
    await manager.close();
  }
});

Deno.test("a task handed out does not change when its artifact grows afterwards", async () => {
  const { executor, started, release } = (() => {
    const started = Promise.withResolvers<RequestContext>();
    const gate = Promise.withResolvers<void>();
    const executor: AgentExecutor = {
      async execute(ctx, events) {
        await events.status("TASK_STATE_WORKING");
        await events.artifact({ artifactId: "a", parts: [{ text: "1" }] });
        started.resolve(ctx);
        await gate.promise;
        await events.artifact({ artifactId: "a", parts: [{ text: "2" }] }, { append: true });
        await events.status("TASK_STATE_COMPLETED");
      },
    };
    return { executor, started: started.promise, release: () => gate.resolve() };
  })();
  const manager = new TaskManager({ executor });
  const pending = send(manager, "alice", "go");
  const ctx = await started;
  const before = await manager.getTask("alice", { id: ctx.taskId });
  const log = await manager.store.events(ctx.taskId, 0);
  release();
  const done = (await pending).task!;
  assert.equal(done.artifacts![0]!.parts.length, 2);
  assert.equal(before.artifacts![0]!.parts.length, 1, "the earlier copy kept its one part");
  assert.equal(log.at(-1)!.artifactUpdate!.artifact.parts.length, 1, "the logged event too");
  await manager.close();
});
