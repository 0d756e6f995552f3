// What a store keeps per user, on both stores: who owns a context (for as long as any task of it
// is kept), and how many push configs each user has (for a per-user quota).

import assert from "node:assert/strict";
import { InvalidParamsError, TaskNotFoundError } from "../src/errors/errors.ts";
import { KvTaskStore } from "../src/tasks/kv_store.ts";
import {
  InMemoryTaskStore,
  type PushConfigRecord,
  type RetentionOptions,
  type TaskStore,
} from "../src/tasks/store.ts";
import type { Task, TaskState } from "../src/types/core.ts";

/** A store with both optional methods, and what makes its eviction happen before a check. */
interface OwnerStore {
  store: TaskStore & Required<Pick<TaskStore, "contextOwner" | "countPushConfigs">>;
  settle(): Promise<void>;
  close(): Promise<void>;
}

/** Makes a store; `gate` (Deno KV only) holds each read of a context owner until it resolves. */
type Open = (retention?: RetentionOptions, gate?: (key: Deno.KvKey) => Promise<void>) => Promise<
  OwnerStore
>;

const KINDS: ReadonlyArray<[string, Open]> = [
  ["InMemoryTaskStore", async (retention) => {
    await Promise.resolve();
    const store = new InMemoryTaskStore(retention ? { retention } : {});
    return { store, settle: async () => {}, close: async () => {} };
  }],
  ["KvTaskStore", async (retention, gate) => {
    const raw = await Deno.openKv(":memory:");
    const kv = gate
      ? new Proxy(raw, {
        get(target, prop) {
          if (prop === "get") {
            return async (key: Deno.KvKey) => {
              if (key[1] === "ctx") await gate(key);
              return target.get(key);
            };
          }
          if (prop === "getMany") {
            return async (keys: Deno.KvKey[]) => {
              const read = await target.getMany(keys);
              const context = keys.find((k) => k[1] === "ctx");
              if (context) await gate(context);
              return read;
            };
          }
          const value = Reflect.get(target, prop, target);
          return typeof value === "function" ? value.bind(target) : value;
        },
      })
      : raw;
    const store = new KvTaskStore(kv, retention ? { retention } : {});
    return { store, settle: async () => void await store.evict(), close: () => store.release() };
  }],
];

function task(id: string, contextId: string, state: TaskState = "TASK_STATE_COMPLETED"): Task {
  return { id, contextId, status: { state, timestamp: new Date().toISOString() } };
}

async function create(store: TaskStore, owner: string, t: Task): Promise<void> {
  await store.commit({ owner, task: t, lastSeq: 1 }, { created: true, event: { seq: 1, task: t } });
}

function push(
  owner: string,
  taskId: string,
  id: string,
  url = "https://x.test/",
): PushConfigRecord {
  return { owner, config: { id, taskId, url } };
}

function isTaken(err: unknown): boolean {
  return err instanceof InvalidParamsError && err.message === "contextId belongs to another user";
}

for (const [name, open] of KINDS) {
  const test = (
    title: string,
    fn: (s: OwnerStore) => Promise<void>,
    retention?: RetentionOptions,
  ) =>
    Deno.test(`${name} ${title}`, async () => {
      const s = await open(retention);
      try {
        await fn(s);
      } finally {
        await s.close();
      }
    });

  test(
    "contextOwner() names the owner of a context's first task until its last is evicted",
    async ({ store, settle }) => {
      assert.equal(await store.contextOwner("c1"), undefined);
      await create(store, "alice", task("t1", "c1"));
      await create(store, "alice", task("t2", "c1"));
      await create(store, "bob", task("t3", "c2", "TASK_STATE_WORKING"));
      await settle();
      // maxTerminalTasks 1: t1 is evicted, t2 keeps the context.
      assert.equal(await store.get("t1"), undefined);
      assert.equal(await store.contextOwner("c1"), "alice");
      assert.equal(await store.contextOwner("c2"), "bob");
      await create(store, "bob", task("t4", "c3"));
      await settle();
      assert.equal(await store.get("t2"), undefined);
      assert.equal(await store.contextOwner("c1"), undefined, "forgotten with its last task");
      // Forgotten, the context is anyone's again.
      await create(store, "carol", task("t5", "c1", "TASK_STATE_WORKING"));
      assert.equal(await store.contextOwner("c1"), "carol");
      assert.equal(await store.contextOwner("c2"), "bob", "a task that has not ended keeps it");
    },
    { maxTerminalTasks: 1 },
  );

  test("commit() refuses a task in another user's context with InvalidParamsError, changing nothing", async ({ store }) => {
    await create(store, "alice", task("t1", "c1", "TASK_STATE_WORKING"));
    await assert.rejects(() => create(store, "bob", task("t2", "c1")), isTaken);
    assert.equal(await store.get("t2"), undefined);
    assert.deepEqual(await store.events("t2", 0), []);
    assert.equal((await store.list("bob", { pageSize: 10, pageToken: "" })).totalSize, 0);
    assert.equal(await store.contextOwner("c1"), "alice");
    // The owner goes on creating tasks in it, and a long context id works as a short one does.
    await create(store, "alice", task("t3", "c1"));
    const long = "l".repeat(5000);
    await create(store, "bob", task("t4", long));
    assert.equal(await store.contextOwner(long), "bob");
    await assert.rejects(() => create(store, "alice", task("t5", long)), isTaken);
    assert.equal(
      (await store.list("alice", { pageSize: 10, pageToken: "", contextId: "c1" })).totalSize,
      2,
    );
  });

  Deno.test(`${name} lets only one of two users racing for a new contextId create a task in it`, async () => {
    // Both read the context as unowned before either commits (on Deno KV, by holding the reads).
    let reads = 0;
    const both = Promise.withResolvers<void>();
    const s = await open(undefined, () => {
      if (++reads === 2) both.resolve();
      return both.promise;
    });
    try {
      const results = await Promise.allSettled([
        create(s.store, "alice", task("ta", "new")),
        create(s.store, "bob", task("tb", "new")),
      ]);
      const won = results.findIndex((r) => r.status === "fulfilled");
      assert.ok(won >= 0, "one of them wins");
      const lost = results[1 - won]!;
      assert.ok(lost.status === "rejected" && isTaken(lost.reason), "the other is refused");
      const winner = won === 0 ? "alice" : "bob";
      assert.equal(await s.store.contextOwner("new"), winner);
      assert.equal(await s.store.get(won === 0 ? "tb" : "ta"), undefined);
      if (name === "KvTaskStore") assert.ok(reads >= 2, "both read before either committed");
    } finally {
      await s.close();
    }
  });

  test(
    "countPushConfigs() counts a user's configs over tasks, once per config, down on delete and eviction",
    async ({ store, settle }) => {
      await create(store, "alice", task("t1", "c1", "TASK_STATE_WORKING"));
      await create(store, "alice", task("t2", "c1", "TASK_STATE_WORKING"));
      await create(store, "bob", task("t3", "c3", "TASK_STATE_WORKING"));
      assert.equal(await store.countPushConfigs("alice"), 0);
      await store.putPushConfig(push("alice", "t1", "p1"));
      await store.putPushConfig(push("alice", "t1", "p2"));
      await store.putPushConfig(push("alice", "t2", "p1"));
      await store.putPushConfig(push("bob", "t3", "p1"));
      // A config before its task exists counts too: it comes with the first message.
      await store.putPushConfig(push("bob", "t-new", "p1"));
      // Replacing a config does not count it again.
      await store.putPushConfig(push("alice", "t1", "p1", "https://x.test/new"));
      assert.equal(await store.countPushConfigs("alice"), 3);
      assert.equal(await store.countPushConfigs("bob"), 2);
      assert.equal(await store.deletePushConfig("t1", "p2"), true);
      assert.equal(await store.deletePushConfig("t1", "p2"), false);
      assert.equal(await store.countPushConfigs("alice"), 2);
      // t1 ends; with maxTerminalTasks 0 it is evicted, with its config.
      const done = task("t1", "c1");
      await store.commit({ owner: "alice", task: done, lastSeq: 2 }, {
        event: {
          seq: 2,
          statusUpdate: { taskId: "t1", contextId: "c1", status: done.status },
        },
      });
      await settle();
      assert.equal(await store.get("t1"), undefined);
      assert.deepEqual(await store.listPushConfigs("t1"), []);
      assert.equal(await store.countPushConfigs("alice"), 1);
      assert.equal(await store.countPushConfigs("bob"), 2);
      assert.equal(await store.countPushConfigs("carol"), 0);
    },
    { maxTerminalTasks: 0 },
  );

  test(
    "deletePushConfig() of an evicted task answers false, and putPushConfig() refuses it with TaskNotFoundError",
    async ({ store, settle }) => {
      await create(store, "alice", task("t1", "c1", "TASK_STATE_WORKING"));
      await store.putPushConfig(push("alice", "t1", "p1"));
      await create(store, "alice", task("t2", "c2"));
      await store.putPushConfig(push("alice", "t2", "p1"));
      assert.equal(await store.countPushConfigs("alice"), 2);
      await create(store, "alice", task("t3", "c3"));
      await settle();
      // maxTerminalTasks 1: t2 is evicted, t1 (working) and t3 stay.
      assert.equal(await store.get("t2"), undefined);
      assert.ok(await store.get("t3"));
      assert.equal(await store.countPushConfigs("alice"), 1);
      assert.equal(await store.deletePushConfig("t2", "p1"), false);
      assert.equal(await store.countPushConfigs("alice"), 1, "nothing counted off twice");
      await assert.rejects(() => store.putPushConfig(push("alice", "t2", "p2")), TaskNotFoundError);
      assert.deepEqual(await store.listPushConfigs("t2"), []);
      assert.equal(await store.countPushConfigs("alice"), 1);
      assert.equal(await store.deletePushConfig("t1", "p1"), true);
      assert.equal(await store.countPushConfigs("alice"), 0);
    },
    { maxTerminalTasks: 1 },
  );
}
