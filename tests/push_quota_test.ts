// Push configs per user over all tasks: past `maxPushConfigsPerUser` a new config (webhook or
// callback) fails with QuotaExceededError (-31005; HTTP 429 with Retry-After on JSON-RPC), while
// replacing one is allowed, deleting one makes room, and another user is unaffected.

import assert from "node:assert/strict";
import { A2AClient } from "../client.ts";
import { A2AError, ErrorCode, QuotaExceededError } from "../src/errors/errors.ts";
import { PushDispatcher, type PushOptions } from "../src/push/dispatcher.ts";
import type { PushReceiver } from "../src/push/types.ts";
import type { AgentExecutor } from "../src/tasks/executor.ts";
import { textOf } from "../src/tasks/executor.ts";
import { InMemoryTaskStore, type TaskStore } from "../src/tasks/store.ts";
import { TaskManager } from "../src/tasks/task_manager.ts";
import { STORES } from "./faulty_store.ts";
import { postJsonRpc, startServer, TOKENS, userMessage } from "./helpers.ts";

/** `ask` pauses for input; anything else completes. */
const agent: AgentExecutor = {
  async execute(ctx, events) {
    await events.status(
      textOf(ctx.message) === "ask" ? "TASK_STATE_INPUT_REQUIRED" : "TASK_STATE_COMPLETED",
    );
  },
};

const OPTIONS: PushOptions = {
  allowLoopback: true,
  maxConfigsPerTask: 2,
  maxPushConfigsPerUser: 5,
  // No webhook is reached: every delivery succeeds at once.
  fetch: () => Promise.resolve(new Response(null, { status: 204 })),
};

function isQuota(e: unknown): boolean {
  return e instanceof QuotaExceededError && e.code === ErrorCode.QuotaExceeded &&
    /Too many push configs: at most 5 per user/.test(e.message);
}

function receiver(): PushReceiver & { closed: boolean } {
  return {
    closed: false,
    deliver: () => Promise.resolve(),
    close() {
      this.closed = true;
    },
  };
}

/** The store without its `countPushConfigs`, as a store that cannot count: the dispatcher counts. */
function uncounted(store: InMemoryTaskStore): TaskStore {
  Object.defineProperty(store, "countPushConfigs", { value: undefined });
  assert.equal((store as TaskStore).countPushConfigs, undefined);
  return store;
}

/** A core and a dispatcher over a store, with `tasks` paused tasks of alice and one of bob. */
async function setup(store: TaskStore, tasks = 3) {
  const manager = new TaskManager({ executor: agent, store });
  const push = new PushDispatcher(manager, OPTIONS);
  const ids: string[] = [];
  for (let i = 0; i < tasks; i++) {
    ids.push((await manager.sendMessage("alice", { message: userMessage("ask") })).task!.id);
  }
  const bobs = (await manager.sendMessage("bob", { message: userMessage("ask") })).task!.id;
  return {
    manager,
    push,
    ids,
    bobs,
    async [Symbol.asyncDispose]() {
      await push.close();
      await manager.close();
    },
  };
}

const STORES_AND_FALLBACK: ReadonlyArray<
  [string, () => Promise<{ store: TaskStore } & AsyncDisposable>]
> = [
  ...STORES,
  ["a store that cannot count", () => {
    const store = uncounted(new InMemoryTaskStore());
    return Promise.resolve({ store, [Symbol.asyncDispose]: () => Promise.resolve() });
  }],
];

for (const [name, open] of STORES_AND_FALLBACK) {
  Deno.test(`create() past maxPushConfigsPerUser fails with QuotaExceededError until one is deleted (${name})`, async () => {
    await using opened = await open();
    await using s = await setup(opened.store);
    const [t1, t2, t3] = s.ids as [string, string, string];
    const url = (n: number) => `http://127.0.0.1:9/hook/${n}`;
    await s.push.create("alice", t1, { id: "a", url: url(1) });
    await s.push.create("alice", t1, { id: "b", url: url(2) });
    await s.push.create("alice", t2, { url: url(3) });
    await s.push.create("alice", t2, {}, { receiver: receiver() });
    await s.push.create("alice", t3, { url: url(5) });
    // Five configs over three tasks: a sixth, webhook or callback, is refused.
    await assert.rejects(s.push.create("alice", t3, { url: url(6) }), isQuota);
    const refused = receiver();
    await assert.rejects(s.push.create("alice", t3, {}, { receiver: refused }), isQuota);
    // Replacing a config by its id, or asking again for the same webhook, creates none.
    const replaced = await s.push.create("alice", t1, { id: "a", url: url(7) });
    assert.equal(replaced.url, url(7));
    const same = await s.push.create("alice", t3, { url: url(5) });
    assert.equal(same.url, url(5));
    // Bob has his own quota.
    const bobs = await s.push.create("bob", s.bobs, { url: url(8) });
    assert.equal(bobs.taskId, s.bobs);
    // Deleting one makes room for one.
    await s.push.delete("alice", t1, "b");
    const again = await s.push.create("alice", t3, { url: url(6) });
    assert.equal(again.taskId, t3);
    await assert.rejects(s.push.create("alice", t1, { url: url(9) }), isQuota);
    assert.equal((await s.push.list("alice", t1)).configs.length, 1);
  });

  Deno.test(`concurrent creates do not slip past maxPushConfigsPerUser (${name})`, async () => {
    await using opened = await open();
    await using s = await setup(opened.store, 4);
    const results = await Promise.allSettled(
      Array.from(
        { length: 12 },
        (_, i) => s.push.create("alice", s.ids[i % 4]!, { url: `http://127.0.0.1:9/${i}` }),
      ),
    );
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 5);
    assert.ok(results.some((r) => r.status === "rejected" && isQuota(r.reason)));
  });

  Deno.test(`callback configs count against maxPushConfigsPerUser until they are let go (${name})`, async () => {
    await using opened = await open();
    await using s = await setup(opened.store);
    const [t1, t2, t3] = s.ids as [string, string, string];
    const live = [receiver(), receiver(), receiver(), receiver(), receiver()];
    for (const [i, r] of live.entries()) {
      await s.push.create("alice", [t1, t2, t3][i % 3]!, {}, { receiver: r });
    }
    await assert.rejects(s.push.create("alice", t3, { url: "http://127.0.0.1:9/x" }), isQuota);
    assert.equal(s.push.removeReceiver(live[0]!), true);
    await s.push.create("alice", t1, { url: "http://127.0.0.1:9/x" });
    await assert.rejects(s.push.create("alice", t3, {}, { receiver: receiver() }), isQuota);
    // A task's end lets its callbacks go (t1 has live[3], live[0] is gone): room for one more.
    await s.manager.cancelTask("alice", { id: t1 });
    assert.ok(live[3]!.closed);
    await s.push.create("alice", t3, {}, { receiver: receiver() });
    await assert.rejects(s.push.create("alice", t1, { url: "http://127.0.0.1:9/y" }), isQuota);
  });
}

for (const counting of ["the store", "the dispatcher"]) {
  Deno.test(`an ended task's configs stop counting once the store evicts it (${counting} counts)`, async () => {
    // A store that keeps no ended task: canceling one evicts it with its configs.
    const inner = new InMemoryTaskStore({ retention: { maxTerminalTasks: 0 } });
    await using s = await setup(counting === "the store" ? inner : uncounted(inner), 5);
    for (const id of s.ids) await s.push.create("alice", id, { url: `http://127.0.0.1:9/${id}` });
    await assert.rejects(
      s.push.create("alice", s.ids[0]!, { url: "http://127.0.0.1:9/y" }),
      isQuota,
    );
    await s.manager.cancelTask("alice", { id: s.ids[0]! });
    assert.equal(await inner.get(s.ids[0]!), undefined, "the task was evicted");
    await s.push.create("alice", s.ids[1]!, { url: "http://127.0.0.1:9/y" });
    await assert.rejects(
      s.push.create("alice", s.ids[2]!, { url: "http://127.0.0.1:9/z" }),
      isQuota,
    );
  });
}

Deno.test("a SendMessage whose push config is over the quota fails and holds no unfinished-task slot", async () => {
  const manager = new TaskManager({ executor: agent, maxUnfinishedTasksPerUser: 1 });
  const push = new PushDispatcher(manager, { ...OPTIONS, maxPushConfigsPerUser: 1 });
  try {
    const config = { url: "http://127.0.0.1:9/hook" };
    const done = await manager.sendMessage("alice", {
      message: userMessage("done"),
      configuration: { taskPushNotificationConfig: config },
    });
    assert.equal(done.task?.status.state, "TASK_STATE_COMPLETED");
    await assert.rejects(
      manager.sendMessage("alice", {
        message: userMessage("ask"),
        configuration: { taskPushNotificationConfig: config },
      }),
      (e) => e instanceof QuotaExceededError && /at most 1 per user/.test(e.message),
    );
    assert.equal((await manager.listTasks("alice", {})).tasks.length, 1, "no second task");
    // The refused send took no slot: alice's one unfinished task may still be made.
    const asked = await manager.sendMessage("alice", { message: userMessage("ask") });
    assert.equal(asked.task?.status.state, "TASK_STATE_INPUT_REQUIRED");
  } finally {
    await push.close();
    await manager.close();
  }
});

Deno.test("past maxPushConfigsPerUser capnweb gets -31005 and JSON-RPC 429 with Retry-After, while another user creates configs", async () => {
  await using server = startServer({
    executor: agent,
    push: { allowLoopback: true, maxPushConfigsPerUser: 3, fetch: OPTIONS.fetch! },
  });
  await using alice = await A2AClient.connect(server.url, { token: TOKENS.alice });
  await using bob = await A2AClient.connect(server.url, { token: TOKENS.bob });
  const tasks: string[] = [];
  for (let i = 0; i < 2; i++) {
    tasks.push((await alice.sendMessage({ message: userMessage("ask") })).task!.id);
  }
  await alice.createTaskPushNotificationConfig({ taskId: tasks[0]!, url: "http://127.0.0.1:9/1" });
  await alice.createTaskPushNotificationConfig({ taskId: tasks[1]!, url: "http://127.0.0.1:9/2" });
  const live = await alice.createTaskPushNotificationConfig({ taskId: tasks[1]! }, () => {});
  await assert.rejects(
    alice.createTaskPushNotificationConfig({ taskId: tasks[0]!, url: "http://127.0.0.1:9/3" }),
    (e) =>
      e instanceof A2AError && e.code === ErrorCode.QuotaExceeded && /at most 3/.test(e.message),
  );
  const res = await postJsonRpc(server.url, "CreateTaskPushNotificationConfig", {
    taskId: tasks[0]!,
    url: "http://127.0.0.1:9/3",
  });
  assert.equal(res.status, 429);
  assert.ok(res.headers.get("retry-after"));
  assert.equal((await res.json()).error.code, ErrorCode.QuotaExceeded);

  const bobs = (await bob.sendMessage({ message: userMessage("ask") })).task!.id;
  const mine = await bob.createTaskPushNotificationConfig({
    taskId: bobs,
    url: "http://127.0.0.1:9/b",
  });
  assert.equal(mine.taskId, bobs);

  await alice.deleteTaskPushNotificationConfig({ taskId: tasks[1]!, id: live.id! });
  const made = await alice.createTaskPushNotificationConfig({
    taskId: tasks[0]!,
    url: "http://127.0.0.1:9/3",
  });
  assert.equal(made.taskId, tasks[0]);
});
