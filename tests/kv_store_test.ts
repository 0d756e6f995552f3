// The TaskStore contract, run against the in-memory store and the Deno KV store, and recovery
// after a restart: in the task core, and of a real server process killed mid-task.

import assert from "node:assert/strict";
import { startServerProcess } from "./process.ts";
import { A2AClient } from "../client.ts";
import {
  type AgentExecutor,
  InMemoryTaskStore,
  InternalError,
  KvTaskStore,
  type StreamEvent,
  type Task,
  TaskManager,
  type TaskQuery,
  type TaskState,
  type TaskStore,
  textOf,
} from "../mod.ts";
import { TOKENS, userMessage } from "./helpers.ts";

const RESTART_MESSAGE = "The server restarted while the task was running";
const BASE = Date.parse("2025-01-01T00:00:00.000Z");

interface StoreKind {
  name: string;
  open(): Promise<TaskStore & { close?(): void }>;
}

const KINDS: StoreKind[] = [
  { name: "InMemoryTaskStore", open: () => Promise.resolve(new InMemoryTaskStore()) },
  { name: "KvTaskStore", open: async () => new KvTaskStore(await Deno.openKv(":memory:")) },
];

function makeTask(
  id: string,
  o: { contextId?: string; state?: TaskState; at?: number; text?: string } = {},
): Task {
  const task: Task = {
    id,
    contextId: o.contextId ?? "ctx",
    status: {
      state: o.state ?? "TASK_STATE_COMPLETED",
      timestamp: new Date(BASE + (o.at ?? 0)).toISOString(),
    },
  };
  if (o.text !== undefined) task.artifacts = [{ artifactId: "a", parts: [{ text: o.text }] }];
  return task;
}

/** Commits a task as its own first event (seq 1). */
async function put(store: TaskStore, owner: string, task: Task): Promise<void> {
  await store.commit({ owner, task, lastSeq: 1 }, { seq: 1, task });
}

function statusEvent(task: Task, seq: number): StreamEvent {
  return { seq, statusUpdate: { taskId: task.id, contextId: task.contextId, status: task.status } };
}

function query(q: Partial<TaskQuery> = {}): TaskQuery {
  return { pageSize: 50, pageToken: "", ...q };
}

async function ids(store: TaskStore, owner: string, q: Partial<TaskQuery> = {}) {
  return (await store.list(owner, query(q))).records.map((r) => r.task.id);
}

for (const kind of KINDS) {
  const test = (name: string, fn: (store: TaskStore) => Promise<void>) =>
    Deno.test(`${kind.name} ${name}`, async () => {
      const store = await kind.open();
      try {
        await fn(store);
      } finally {
        store.close?.();
      }
    });

  test("commit() then get() round-trips the record", async (store) => {
    assert.equal(await store.get("t1"), undefined);
    const task = makeTask("t1", { state: "TASK_STATE_SUBMITTED", text: "hello" });
    task.history = [userMessage("hi")];
    task.metadata = { n: 1, nested: { ok: true, list: [1, "two", null] } };
    await put(store, "alice", task);
    assert.deepEqual(await store.get("t1"), { owner: "alice", task, lastSeq: 1 });
    // A commit without an event changes the task and leaves the log alone.
    const next = { ...task, history: [...task.history, userMessage("more")] };
    await store.commit({ owner: "alice", task: next, lastSeq: 1 });
    assert.deepEqual(await store.get("t1"), { owner: "alice", task: next, lastSeq: 1 });
    assert.equal((await store.events("t1", 0)).length, 1);
  });

  test("events() replays the log after a seq, in order", async (store) => {
    let task = makeTask("t1", { state: "TASK_STATE_SUBMITTED" });
    await put(store, "alice", task);
    const logged: StreamEvent[] = [{ seq: 1, task }];
    for (let seq = 2; seq <= 5; seq++) {
      task = makeTask("t1", { state: "TASK_STATE_WORKING", at: seq });
      const event = statusEvent(task, seq);
      await store.commit({ owner: "alice", task, lastSeq: seq }, event);
      logged.push(event);
    }
    assert.deepEqual(await store.events("t1", 0), logged);
    assert.deepEqual(await store.events("t1", 3), logged.slice(3));
    assert.deepEqual(await store.events("t1", 5), []);
    assert.deepEqual(await store.events("other", 0), []);
    assert.equal((await store.get("t1"))?.lastSeq, 5);
  });

  test("list() filters by contextId, status and statusTimestampAfter", async (store) => {
    await put(store, "alice", makeTask("a", { contextId: "c1", at: 1000 }));
    await put(store, "alice", makeTask("b", { contextId: "c2", at: 2000 }));
    await put(
      store,
      "alice",
      makeTask("c", { contextId: "c1", at: 3000, state: "TASK_STATE_WORKING" }),
    );
    await put(store, "alice", makeTask("d", { contextId: "c1", at: 4000 }));
    assert.deepEqual(await ids(store, "alice"), ["d", "c", "b", "a"]);
    assert.deepEqual(await ids(store, "alice", { contextId: "c1" }), ["d", "c", "a"]);
    assert.deepEqual(await ids(store, "alice", { status: "TASK_STATE_WORKING" }), ["c"]);
    assert.deepEqual(await ids(store, "alice", { statusTimestampAfter: BASE + 2000 }), ["d", "c"]);
    const page = await store.list(
      "alice",
      query({ contextId: "c1", status: "TASK_STATE_COMPLETED", statusTimestampAfter: BASE }),
    );
    assert.deepEqual(page.records.map((r) => r.task.id), ["d", "a"]);
    assert.equal(page.totalSize, 2);
    assert.equal(page.nextPageToken, "");
    assert.equal((await store.list("alice", query({ contextId: "none" }))).totalSize, 0);
  });

  test("list() orders newest first and moves a task when its status changes", async (store) => {
    await put(store, "alice", makeTask("t1", { at: 1 }));
    await put(store, "alice", makeTask("t3", { at: 3 }));
    await put(store, "alice", makeTask("t2", { at: 2 }));
    // Equal timestamps order by id, descending.
    await put(store, "alice", makeTask("t2b", { at: 2 }));
    assert.deepEqual(await ids(store, "alice"), ["t3", "t2b", "t2", "t1"]);
    const t1 = makeTask("t1", { at: 10, state: "TASK_STATE_WORKING" });
    await store.commit({ owner: "alice", task: t1, lastSeq: 2 }, statusEvent(t1, 2));
    assert.deepEqual(await ids(store, "alice"), ["t1", "t3", "t2b", "t2"]);
    assert.equal((await store.list("alice", query())).totalSize, 4);
    assert.deepEqual(await ids(store, "alice", { status: "TASK_STATE_WORKING" }), ["t1"]);
  });

  test("list() pages through many tasks, each exactly once", async (store) => {
    const expected: string[] = [];
    for (let i = 0; i < 57; i++) {
      const id = `task-${String(i).padStart(3, "0")}`;
      // Groups of three share a timestamp, so ties are paged through too.
      await put(store, "alice", makeTask(id, { at: Math.floor(i / 3), contextId: `c${i % 2}` }));
      expected.push(id);
    }
    expected.reverse();
    for (const [filter, want] of [[{}, expected], [{ contextId: "c1" }, undefined]] as const) {
      const seen: string[] = [];
      let pageToken = "";
      let pages = 0;
      do {
        const page = await store.list("alice", query({ ...filter, pageSize: 10, pageToken }));
        assert.equal(page.totalSize, want?.length ?? 28);
        assert.ok(page.records.length <= 10);
        seen.push(...page.records.map((r) => r.task.id));
        pageToken = page.nextPageToken;
        pages++;
      } while (pageToken !== "");
      assert.equal(pages, Math.ceil((want?.length ?? 28) / 10));
      assert.equal(new Set(seen).size, seen.length);
      if (want) assert.deepEqual(seen, want);
      else assert.deepEqual(seen, expected.filter((id) => Number(id.slice(5)) % 2 === 1));
    }
    await assert.rejects(() => store.list("alice", query({ pageToken: "nope" })), RangeError);
  });

  test("list() shows a user only their own tasks", async (store) => {
    await put(store, "alice", makeTask("a1"));
    await put(store, "alice", makeTask("a2", { at: 1 }));
    await put(store, "bob", makeTask("b1"));
    assert.deepEqual(await ids(store, "alice"), ["a2", "a1"]);
    const bob = await store.list("bob", query());
    assert.deepEqual(bob.records.map((r) => r.task.id), ["b1"]);
    assert.equal(bob.totalSize, 1);
    assert.equal((await store.list("carol", query())).totalSize, 0);
  });

  test("push configs can be created, read, listed, replaced and deleted", async (store) => {
    const config = (taskId: string, id: string, url: string) => ({
      owner: "alice",
      config: { id, taskId, url, token: "secret", authentication: { scheme: "Bearer" } },
    });
    assert.equal(await store.getPushConfig("t1", "p1"), undefined);
    await store.putPushConfig(config("t1", "p1", "https://example.com/1"));
    await store.putPushConfig(config("t1", "p2", "https://example.com/2"));
    await store.putPushConfig(config("t2", "p1", "https://example.com/3"));
    assert.deepEqual(
      await store.getPushConfig("t1", "p1"),
      config("t1", "p1", "https://example.com/1"),
    );
    assert.deepEqual(
      (await store.listPushConfigs("t1")).map((r) => r.config.id).sort(),
      ["p1", "p2"],
    );
    await store.putPushConfig(config("t1", "p1", "https://example.com/new"));
    assert.equal((await store.getPushConfig("t1", "p1"))?.config.url, "https://example.com/new");
    assert.equal(await store.deletePushConfig("t1", "p1"), true);
    assert.equal(await store.deletePushConfig("t1", "p1"), false);
    assert.deepEqual((await store.listPushConfigs("t1")).map((r) => r.config.id), ["p2"]);
    assert.equal((await store.listPushConfigs("t2")).length, 1);
    assert.deepEqual(await store.listPushConfigs("t3"), []);
  });

  test("a task and an event larger than 64 KiB round-trip", async (store) => {
    // Multi-byte characters, so that chunk boundaries fall inside them.
    const big = "é🙂 abc ".repeat(30_000);
    const task = makeTask("big", { state: "TASK_STATE_WORKING", text: big });
    const event: StreamEvent = {
      seq: 1,
      artifactUpdate: { taskId: "big", contextId: "ctx", artifact: task.artifacts![0]! },
    };
    await store.commit({ owner: "alice", task, lastSeq: 1 }, event);
    assert.deepEqual(await store.get("big"), { owner: "alice", task, lastSeq: 1 });
    assert.deepEqual(await store.events("big", 0), [event]);
    // Shrinking drops the pieces it no longer needs.
    const small = makeTask("big", { state: "TASK_STATE_COMPLETED", text: "done", at: 5 });
    await store.commit({ owner: "alice", task: small, lastSeq: 2 }, statusEvent(small, 2));
    assert.deepEqual(await store.get("big"), { owner: "alice", task: small, lastSeq: 2 });
    assert.deepEqual(await store.events("big", 1), [statusEvent(small, 2)]);
    assert.deepEqual(await ids(store, "alice"), ["big"]);
  });

  test("unfinished() lists the tasks left SUBMITTED or WORKING", async (store) => {
    await put(store, "alice", makeTask("s", { state: "TASK_STATE_SUBMITTED" }));
    await put(store, "alice", makeTask("w", { state: "TASK_STATE_WORKING" }));
    await put(store, "bob", makeTask("i", { state: "TASK_STATE_INPUT_REQUIRED" }));
    await put(store, "bob", makeTask("c", { state: "TASK_STATE_COMPLETED" }));
    const list = async () => (await store.unfinished!()).map((r) => r.task.id).sort();
    assert.deepEqual(await list(), ["s", "w"]);
    const done = makeTask("w", { state: "TASK_STATE_COMPLETED", at: 1 });
    await store.commit({ owner: "alice", task: done, lastSeq: 2 }, statusEvent(done, 2));
    assert.deepEqual(await list(), ["s"]);
  });
}

async function openKv(): Promise<KvTaskStore> {
  return new KvTaskStore(await Deno.openKv(":memory:"));
}

Deno.test("KvTaskStore commit() refuses a task beyond its size limits and keeps the old state", async () => {
  using store = await openKv();
  const task = makeTask("t1", { state: "TASK_STATE_WORKING", text: "small" });
  await put(store, "alice", task);
  const refused = async (next: Task, event: StreamEvent, message: RegExp) => {
    await assert.rejects(
      () => store.commit({ owner: "alice", task: next, lastSeq: 2 }, event),
      (err: Error) => {
        assert.ok(err instanceof InternalError);
        assert.match(err.message, message);
        return true;
      },
    );
    assert.deepEqual(await store.get("t1"), { owner: "alice", task, lastSeq: 1 });
    assert.equal((await store.events("t1", 0)).length, 1);
  };
  // A task over 576 KiB.
  const huge = makeTask("t1", { state: "TASK_STATE_WORKING", text: "x".repeat(600_000), at: 1 });
  await refused(huge, statusEvent(huge, 2), /^Cannot store task t1: its JSON of \d+ bytes exceeds/);
  // A task and its event over one atomic operation.
  const big = makeTask("t1", { state: "TASK_STATE_WORKING", text: "x".repeat(450_000), at: 1 });
  await refused(
    big,
    { seq: 2, task: big },
    /^Cannot store task t1: its commit of about \d+ bytes exceeds the 819200 bytes/,
  );
  // Just under the limits still fits.
  const large = makeTask("t1", { state: "TASK_STATE_WORKING", text: "y".repeat(589_000), at: 2 });
  await store.commit({ owner: "alice", task: large, lastSeq: 2 }, statusEvent(large, 2));
  assert.deepEqual((await store.get("t1"))?.task, large);
});

Deno.test("KvTaskStore commit() refuses to log a seq twice", async () => {
  using store = await openKv();
  const task = makeTask("t1", { state: "TASK_STATE_WORKING" });
  await put(store, "alice", task);
  await assert.rejects(
    () => store.commit({ owner: "alice", task, lastSeq: 1 }, { seq: 1, task }),
    /Cannot log event 1 of task t1/,
  );
});

Deno.test("KvTaskStore get() never mixes the pieces of two versions of a large task", async () => {
  using store = await openKv();
  const versions = [makeTask("t1", { text: "a".repeat(200_000) })];
  versions.push(makeTask("t1", { text: "b".repeat(130_000), at: 1 }));
  await store.commit({ owner: "alice", task: versions[0]!, lastSeq: 1 });
  let writing = true;
  const writer = (async () => {
    for (let i = 1; i <= 40; i++) {
      await store.commit({ owner: "alice", task: versions[i % 2]!, lastSeq: 1 });
    }
    writing = false;
  })();
  let reads = 0;
  while (writing) {
    const read = (await store.get("t1"))!;
    assert.ok(versions.some((v) => JSON.stringify(v) === JSON.stringify(read.task)));
    reads++;
  }
  await writer;
  assert.ok(reads > 0);
});

Deno.test("KvTaskStore close() closes the database and can be called twice", async () => {
  const store = await openKv();
  await put(store, "alice", makeTask("t1"));
  store.close();
  store.close();
  await assert.rejects(() => store.get("t1"));
});

Deno.test("KvTaskStore.open() opens a database file that keeps tasks", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/tasks.db`;
    {
      using store = await KvTaskStore.open(path);
      await put(store, "alice", makeTask("t1"));
    }
    using store = await KvTaskStore.open(path);
    assert.equal((await store.get("t1"))?.owner, "alice");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Recovery in the task core.

/** Completes a text message, except `hang`, which works until aborted and signals `working`. */
function hangingExecutor(working?: () => void): AgentExecutor {
  return {
    async execute(ctx, events) {
      await events.status("TASK_STATE_WORKING");
      if (textOf(ctx.message) === "hang") {
        working?.();
        await new Promise((_, reject) => {
          if (ctx.signal.aborted) reject(ctx.signal.reason);
          ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true });
        });
      }
      await events.artifact({ artifactId: "out", parts: [{ text: textOf(ctx.message) }] });
      await events.status("TASK_STATE_COMPLETED");
    },
  };
}

Deno.test("recover() fails the tasks a dead process left running, through the event log", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/tasks.db`;
  try {
    let doneTask: Task;
    let hungId: string;
    {
      const store = await KvTaskStore.open(path);
      const working = Promise.withResolvers<void>();
      const manager = new TaskManager({ store, executor: hangingExecutor(working.resolve) });
      try {
        doneTask = (await manager.sendMessage("alice", { message: userMessage("finish") })).task!;
        const res = await manager.sendMessage("alice", {
          message: userMessage("hang"),
          configuration: { returnImmediately: true },
        });
        hungId = res.task!.id;
        await working.promise;
        // The crash: the database goes away while the task runs, before anything else is saved.
        store.close();
      } finally {
        await manager.close({ timeoutMs: 1000 });
        store.close();
      }
    }
    using store = await KvTaskStore.open(path);
    const manager = new TaskManager({ store, executor: hangingExecutor() });
    try {
      const before = (await store.get(hungId))!;
      assert.equal(before.task.status.state, "TASK_STATE_WORKING");
      assert.deepEqual((await store.unfinished()).map((r) => r.task.id), [hungId]);

      assert.equal(await manager.recover(), 1);

      const after = (await store.get(hungId))!;
      assert.equal(after.task.status.state, "TASK_STATE_FAILED");
      assert.equal(after.task.status.message?.parts[0]?.text, RESTART_MESSAGE);
      assert.equal(after.task.status.message?.role, "ROLE_AGENT");
      assert.equal(after.lastSeq, before.lastSeq + 1);
      const logged = await store.events(hungId, before.lastSeq);
      assert.equal(logged.length, 1);
      assert.equal(logged[0]!.seq, before.lastSeq + 1);
      assert.equal(logged[0]!.statusUpdate?.status.state, "TASK_STATE_FAILED");
      assert.equal(logged[0]!.statusUpdate?.status.message?.parts[0]?.text, RESTART_MESSAGE);
      // A subscriber resuming where it left off gets the FAILED event, then the end.
      const resumed: StreamEvent[] = [];
      const sub = await manager.subscribeToTask("alice", { id: hungId, afterSeq: before.lastSeq });
      for await (const e of sub) resumed.push(e);
      assert.deepEqual(resumed, logged);
      // Finished tasks are untouched.
      const done = (await store.get(doneTask.id))!;
      assert.equal(done.task.status.state, "TASK_STATE_COMPLETED");
      assert.deepEqual(done.task, doneTask);
      assert.deepEqual(await store.unfinished(), []);
      assert.equal(await manager.recover(), 0);
      const listed = await manager.listTasks("alice", {});
      assert.deepEqual(listed.tasks.map((t) => t.status.state).sort(), [
        "TASK_STATE_COMPLETED",
        "TASK_STATE_FAILED",
      ]);
    } finally {
      await manager.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("recover() leaves tasks executing in this manager alone", async () => {
  const store = new InMemoryTaskStore();
  const working = Promise.withResolvers<void>();
  const manager = new TaskManager({ store, executor: hangingExecutor(working.resolve) });
  try {
    const res = await manager.sendMessage("alice", {
      message: userMessage("hang"),
      configuration: { returnImmediately: true },
    });
    await working.promise;
    assert.equal(await manager.recover(), 0);
    assert.equal((await store.get(res.task!.id))?.task.status.state, "TASK_STATE_WORKING");
  } finally {
    await manager.close({ timeoutMs: 1000 });
  }
});

Deno.test("recover() without a store that lists unfinished tasks does nothing", async () => {
  const inner = new InMemoryTaskStore();
  const store: TaskStore = {
    get: (id) => inner.get(id),
    commit: (r, e) => inner.commit(r, e),
    events: (id, after) => inner.events(id, after),
    list: (owner, q) => inner.list(owner, q),
    putPushConfig: (r) => inner.putPushConfig(r),
    getPushConfig: (t, id) => inner.getPushConfig(t, id),
    listPushConfigs: (t) => inner.listPushConfigs(t),
    deletePushConfig: (t, id) => inner.deletePushConfig(t, id),
  };
  await put(store, "alice", makeTask("t1", { state: "TASK_STATE_WORKING" }));
  const manager = new TaskManager({ store, executor: hangingExecutor() });
  assert.equal(await manager.recover(), 0);
  await manager.close();
});

// ---------------------------------------------------------------------------------------------
// A real server process, killed mid-task and started again on the same data.

Deno.test("a server killed mid-task marks the task FAILED when it starts again on the same data", async () => {
  const dir = await Deno.makeTempDir();
  const dataPath = `${dir}/tasks.db`;
  try {
    let doneId: string;
    let slowId: string | undefined;
    const first = await startServerProcess(dataPath);
    try {
      const client = await A2AClient.connect(first.url, {
        token: TOKENS.alice,
        transport: "websocket",
      });
      try {
        const done = await client.sendMessage({ message: userMessage("hello") });
        assert.equal(done.task?.status.state, "TASK_STATE_COMPLETED");
        doneId = done.task!.id;
        const slow = client.sendStreamingMessage({
          message: userMessage("slow: one two three four five six seven eight nine ten"),
        });
        for await (const e of slow) {
          slowId ??= e.task?.id;
          if (e.artifactUpdate) break;
        }
        assert.ok(slowId, "the stream starts with the task");
        await first.kill();
      } finally {
        await client.close();
      }
    } finally {
      await first.kill();
    }

    const second = await startServerProcess(dataPath);
    try {
      await using client = await A2AClient.connect(second.url, {
        token: TOKENS.alice,
        transport: "websocket",
      });
      const slow = await client.getTask({ id: slowId });
      assert.equal(slow.status.state, "TASK_STATE_FAILED");
      assert.equal(slow.status.message?.parts[0]?.text, RESTART_MESSAGE);
      assert.ok(slow.artifacts?.[0]?.parts[0]?.text, "the artifact chunks sent before stay");
      const done = await client.getTask({ id: doneId });
      assert.equal(done.status.state, "TASK_STATE_COMPLETED");
      assert.equal(
        done.artifacts?.map((a) => a.parts.map((p) => p.text).join("")).join(""),
        "hello",
      );
      const replay: StreamEvent[] = [];
      for await (const e of client.subscribeToTask({ id: slowId, afterSeq: 1 })) replay.push(e);
      assert.equal(replay.at(-1)?.statusUpdate?.status.state, "TASK_STATE_FAILED");
      assert.equal((await client.listTasks()).totalSize, 2);
    } finally {
      await second.kill();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
