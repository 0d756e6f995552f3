// Retention of both stores: ended tasks are evicted beyond a count and after a time, with
// everything that belongs to them, while tasks that have not ended stay.

import assert from "node:assert/strict";
import type { AgentExecutor } from "../src/tasks/executor.ts";
import { textOf } from "../src/tasks/executor.ts";
import { KvTaskStore } from "../src/tasks/kv_store.ts";
import {
  InMemoryTaskStore,
  type RetentionOptions,
  type TaskRecord,
  type TaskStore,
} from "../src/tasks/store.ts";
import { TaskManager } from "../src/tasks/task_manager.ts";
import type { Task, TaskState } from "../src/types/core.ts";
import { userMessage } from "./helpers.ts";

const agent: AgentExecutor = {
  async execute(ctx, events) {
    await events.status(
      textOf(ctx.message) === "ask" ? "TASK_STATE_INPUT_REQUIRED" : "TASK_STATE_COMPLETED",
    );
  },
};

/** A store with retention, and what makes its eviction happen before the test looks. */
interface RetainingStore {
  store: TaskStore;
  /** Waits for eviction: nothing in memory, where it happens in the commit; a round on Deno KV. */
  settle(): Promise<void>;
  close(): Promise<void>;
}

const KINDS: ReadonlyArray<[string, (retention: RetentionOptions) => Promise<RetainingStore>]> = [
  ["InMemoryTaskStore", async (retention) => {
    await Promise.resolve();
    const store = new InMemoryTaskStore({ retention });
    return { store, settle: async () => {}, close: async () => {} };
  }],
  ["KvTaskStore", async (retention) => {
    const kv = await Deno.openKv(":memory:");
    let store: KvTaskStore;
    try {
      store = new KvTaskStore(kv, { retention });
    } catch (err) {
      kv.close();
      throw err;
    }
    return {
      store,
      settle: async () => void await store.evict(),
      close: () => store.release(),
    };
  }],
];

function task(id: string, state: TaskState, contextId = `ctx-${id}`): Task {
  return { id, contextId, status: { state, timestamp: new Date().toISOString() } };
}

/** Creates a task in a state, as its first event. */
async function create(store: TaskStore, owner: string, t: Task): Promise<void> {
  await store.commit({ owner, task: t, lastSeq: 1 }, { created: true, event: { seq: 1, task: t } });
}

/** Moves a task to a state, as event `seq`. */
async function move(store: TaskStore, record: TaskRecord, state: TaskState, seq: number) {
  const t: Task = { ...record.task, status: { state, timestamp: new Date().toISOString() } };
  const statusUpdate = { taskId: t.id, contextId: t.contextId, status: t.status };
  await store.commit({ ...record, task: t, lastSeq: seq }, { event: { seq, statusUpdate } });
}

for (const [name, open] of KINDS) {
  Deno.test(`${name} keeps at most maxTerminalTasks ended tasks, evicting the oldest with their logs and messages`, async () => {
    const { store, settle, close } = await open({ maxTerminalTasks: 3 });
    const manager = new TaskManager({ executor: agent, store, idleTasks: 0 });
    try {
      const paused = await manager.sendMessage("alice", { message: userMessage("ask") });
      const first = userMessage("done");
      const ids: string[] = [];
      for (const message of [first, ...Array.from({ length: 9 }, () => userMessage("done"))]) {
        ids.push((await manager.sendMessage("alice", { message })).task!.id);
      }
      await settle();
      assert.equal(await store.get(ids[0]!), undefined);
      assert.deepEqual(await store.events(ids[0]!, 0), []);
      assert.equal(await store.findMessage("alice", first.messageId), undefined);
      assert.ok(await store.get(ids[9]!));
      assert.ok(await store.get(paused.task!.id), "a task that has not ended is never evicted");
      const page = await manager.listTasks("alice", {});
      assert.deepEqual(
        page.tasks.map((t) => t.id).sort(),
        [paused.task!.id, ...ids.slice(7)].sort(),
      );
      assert.equal(page.totalSize, 4, "three ended tasks and the paused one");
    } finally {
      await manager.close();
      await close();
    }
  });

  Deno.test(`${name} evicts an ended task once terminalTtlMs has passed on its clock`, async () => {
    let now = Date.parse("2025-01-01T00:00:00Z");
    const { store, settle, close } = await open({ terminalTtlMs: 1000, now: () => now });
    try {
      await create(store, "alice", task("old", "TASK_STATE_COMPLETED"));
      await create(store, "alice", task("working", "TASK_STATE_WORKING"));
      await create(store, "alice", task("asking", "TASK_STATE_INPUT_REQUIRED"));
      now += 999;
      await create(store, "alice", task("fresh", "TASK_STATE_FAILED"));
      await settle();
      assert.ok(await store.get("old"), "kept until its time is up");
      now += 1;
      await create(store, "alice", task("later", "TASK_STATE_CANCELED"));
      await settle();
      assert.equal(await store.get("old"), undefined);
      assert.deepEqual(await store.events("old", 0), []);
      assert.ok(await store.get("fresh"));
      // In memory eviction runs on the next write; on Deno KV also on a timer.
      now += 1_000_000;
      await create(store, "alice", task("next", "TASK_STATE_SUBMITTED"));
      await settle();
      assert.equal(await store.get("fresh"), undefined);
      for (const id of ["working", "asking", "next"]) {
        assert.ok(await store.get(id), `${id} has not ended and stays`);
      }
    } finally {
      await close();
    }
  });

  Deno.test(`${name} never evicts a task that left its terminal state`, async () => {
    const { store, settle, close } = await open({ maxTerminalTasks: 1 });
    try {
      // Only a store's own callers move a task out of a terminal state; the count follows it.
      await create(store, "alice", task("t1", "TASK_STATE_COMPLETED"));
      await move(store, (await store.get("t1"))!, "TASK_STATE_WORKING", 2);
      await create(store, "alice", task("t2", "TASK_STATE_REJECTED"));
      await create(store, "alice", task("t3", "TASK_STATE_COMPLETED"));
      await settle();
      assert.equal(await store.get("t2"), undefined, "the oldest ended task is t2 now");
      assert.ok(await store.get("t3"));
      assert.equal((await store.get("t1"))?.task.status.state, "TASK_STATE_WORKING");
      assert.equal((await store.events("t1", 0)).length, 2);
    } finally {
      await close();
    }
  });

  Deno.test(`${name} rejects negative or non-numeric retention limits with RangeError`, async () => {
    for (
      const retention of [{ maxTerminalTasks: -1 }, { maxTerminalTasks: 1.5 }, {
        terminalTtlMs: Number.NaN,
      }]
    ) {
      await assert.rejects(() => open(retention), RangeError);
    }
    const { store, close } = await open({ maxTerminalTasks: Infinity, terminalTtlMs: Infinity });
    await create(store, "alice", task("t1", "TASK_STATE_COMPLETED"));
    assert.ok(await store.get("t1"));
    await close();
  });
}
