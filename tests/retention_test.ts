// Retention of the in-memory store: ended tasks are evicted beyond a count and after a time, with
// everything that belongs to them, while tasks that have not ended stay.

import assert from "node:assert/strict";
import type { AgentExecutor } from "../src/tasks/executor.ts";
import { textOf } from "../src/tasks/executor.ts";
import { InMemoryTaskStore } from "../src/tasks/store.ts";
import { TaskManager } from "../src/tasks/task_manager.ts";
import { userMessage } from "./helpers.ts";

const agent: AgentExecutor = {
  async execute(ctx, events) {
    await events.status(
      textOf(ctx.message) === "ask" ? "TASK_STATE_INPUT_REQUIRED" : "TASK_STATE_COMPLETED",
    );
  },
};

Deno.test("InMemoryTaskStore keeps at most maxTerminalTasks ended tasks, evicting the oldest with their logs and messages", async () => {
  const store = new InMemoryTaskStore({ retention: { maxTerminalTasks: 3 } });
  const manager = new TaskManager({ executor: agent, store, idleTasks: 0 });
  const paused = await manager.sendMessage("alice", { message: userMessage("ask") });
  const first = userMessage("done");
  const ids: string[] = [];
  for (const message of [first, ...Array.from({ length: 9 }, () => userMessage("done"))]) {
    ids.push((await manager.sendMessage("alice", { message })).task!.id);
  }
  assert.equal(store.size, 4, "three ended tasks and the paused one");
  assert.equal(await store.get(ids[0]!), undefined);
  assert.deepEqual(await store.events(ids[0]!, 0), []);
  assert.equal(await store.findMessage("alice", first.messageId), undefined);
  assert.ok(await store.get(ids[9]!));
  assert.ok(await store.get(paused.task!.id), "a task that has not ended is never evicted");
  const page = await manager.listTasks("alice", {});
  assert.deepEqual(page.tasks.map((t) => t.id).sort(), [paused.task!.id, ...ids.slice(7)].sort());
  assert.equal(page.totalSize, 4);
  await manager.close();
});

Deno.test("InMemoryTaskStore evicts an ended task once terminalTtlMs has passed", async () => {
  const store = new InMemoryTaskStore({ retention: { terminalTtlMs: 20 } });
  const manager = new TaskManager({ executor: agent, store, idleTasks: 0 });
  const old = (await manager.sendMessage("alice", { message: userMessage("done") })).task!.id;
  await new Promise((r) => setTimeout(r, 40));
  const fresh = (await manager.sendMessage("alice", { message: userMessage("done") })).task!.id;
  assert.equal(await store.get(old), undefined);
  assert.ok(await store.get(fresh));
  await manager.close();
});
