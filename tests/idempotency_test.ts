// SendMessage is idempotent on messageId, per user: a retried message gets its task's outcome
// instead of a second execution, on both stores and across a restart of the task core.

import assert from "node:assert/strict";
import { A2AError, ErrorCode } from "../src/errors/errors.ts";
import type { AgentExecutor } from "../src/tasks/executor.ts";
import { textOf } from "../src/tasks/executor.ts";
import type { StreamEvent } from "../src/tasks/store.ts";
import type { Subscription } from "../src/tasks/subscription.ts";
import { TaskManager } from "../src/tasks/task_manager.ts";
import { STORES } from "./faulty_store.ts";
import { userMessage } from "./helpers.ts";

/** Counts its executions; `ask` pauses for input, `hold` waits for `release()`, else completes. */
function countingAgent() {
  let runs = 0;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const executor: AgentExecutor = {
    async execute(ctx, events) {
      runs++;
      const word = textOf(ctx.message);
      await events.status("TASK_STATE_WORKING");
      await events.artifact({ artifactId: "a", parts: [{ text: word }] });
      if (word === "hold") await gate;
      if (word === "reply") return;
      await events.status(word === "ask" ? "TASK_STATE_INPUT_REQUIRED" : "TASK_STATE_COMPLETED");
    },
  };
  return { executor, runs: () => runs, release: () => release() };
}

async function drain(sub: Subscription): Promise<StreamEvent[]> {
  const out: StreamEvent[] = [];
  try {
    for await (const e of sub) out.push(e);
  } finally {
    sub.close();
  }
  return out;
}

for (const [storeName, makeStore] of STORES) {
  const setup = async () => {
    const held = await makeStore();
    const agent = countingAgent();
    const manager = new TaskManager({ executor: agent.executor, store: held.store });
    return {
      ...agent,
      store: held.store,
      manager,
      async [Symbol.asyncDispose]() {
        agent.release();
        await manager.close({ timeoutMs: 100 });
        await held[Symbol.asyncDispose]();
      },
    };
  };

  Deno.test(`sendMessage() with a messageId already accepted returns its task without running again (${storeName})`, async () => {
    await using t = await setup();
    const message = userMessage("go");
    const first = await t.manager.sendMessage("alice", { message });
    const again = await t.manager.sendMessage("alice", { message });
    assert.equal(again.task?.id, first.task?.id);
    assert.equal(again.task?.status.state, "TASK_STATE_COMPLETED");
    assert.equal(t.runs(), 1);
    assert.equal((await t.manager.listTasks("alice", {})).tasks.length, 1);
  });

  Deno.test(`sendMessage() sent twice at once with one messageId runs the agent once (${storeName})`, async () => {
    await using t = await setup();
    const message = userMessage("go");
    const results = await Promise.all(
      Array.from({ length: 5 }, () => t.manager.sendMessage("alice", { message })),
    );
    assert.equal(new Set(results.map((r) => r.task?.id)).size, 1);
    for (const r of results) assert.equal(r.task?.status.state, "TASK_STATE_COMPLETED");
    assert.equal(t.runs(), 1);
  });

  Deno.test(`a retried send while the task runs waits for the same outcome (${storeName})`, async () => {
    await using t = await setup();
    const message = userMessage("hold");
    const first = t.manager.sendMessage("alice", { message });
    const stream = await t.manager.sendStreamingMessage("alice", { message });
    const retried = t.manager.sendMessage("alice", { message });
    t.release();
    const [a, b] = await Promise.all([first, retried]);
    assert.equal(a.task?.id, b.task?.id);
    assert.equal(b.task?.status.state, "TASK_STATE_COMPLETED");
    const events = await drain(stream);
    assert.deepEqual(events, await t.store.events(a.task!.id, 0), "every event once, from seq 1");
    assert.equal(t.runs(), 1);
  });

  Deno.test(`sendStreamingMessage() retried streams the task from seq 1, every event once (${storeName})`, async () => {
    await using t = await setup();
    const message = userMessage("go");
    const original = await drain(await t.manager.sendStreamingMessage("alice", { message }));
    const retried = await drain(await t.manager.sendStreamingMessage("alice", { message }));
    assert.deepEqual(retried.map((e) => e.seq), original.map((e) => e.seq));
    assert.deepEqual(retried, await t.store.events(original[0]!.task!.id, 0));
    assert.equal(t.runs(), 1);
  });

  Deno.test(`a retried follow-up is not added again nor run again (${storeName})`, async () => {
    await using t = await setup();
    const first = await t.manager.sendMessage("alice", { message: userMessage("ask") });
    const id = first.task!.id;
    const follow = userMessage("ask", { taskId: id });
    await t.manager.sendMessage("alice", { message: follow });
    const again = await t.manager.sendMessage("alice", { message: follow });
    assert.equal(again.task?.id, id);
    assert.equal(t.runs(), 2);
    const history = (await t.manager.getTask("alice", { id })).history!;
    assert.equal(history.filter((m) => m.messageId === follow.messageId).length, 1);
  });

  Deno.test(`another user's identical messageId is a message of its own (${storeName})`, async () => {
    await using t = await setup();
    const message = userMessage("go");
    const alice = await t.manager.sendMessage("alice", { message });
    const bob = await t.manager.sendMessage("bob", { message });
    assert.notEqual(alice.task?.id, bob.task?.id);
    assert.equal(t.runs(), 2);
  });

  Deno.test(`a messageId reused for a different message rejects with InvalidParamsError (${storeName})`, async () => {
    await using t = await setup();
    const message = userMessage("go");
    await t.manager.sendMessage("alice", { message });
    await assert.rejects(
      t.manager.sendMessage("alice", { message: { ...message, parts: [{ text: "other" }] } }),
      (err) =>
        err instanceof A2AError && err.code === ErrorCode.InvalidParams &&
        /already used for a different message/.test(err.message),
    );
    assert.equal(t.runs(), 1);
  });

  Deno.test(`a retry after the task core restarts on the same store finds the task (${storeName})`, async () => {
    await using t = await setup();
    const message = userMessage("go");
    const first = await t.manager.sendMessage("alice", { message });
    await t.manager.close();
    const agent = countingAgent();
    const restarted = new TaskManager({ executor: agent.executor, store: t.store });
    try {
      const again = await restarted.sendMessage("alice", { message });
      assert.equal(again.task?.id, first.task?.id);
      assert.equal(agent.runs(), 0);
    } finally {
      await restarted.close();
    }
  });
}
