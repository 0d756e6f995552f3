// PostgresTaskStore (the contract every store keeps runs on it in tests/kv_store_test.ts): its own
// reads and layout, retention, and what sharing one database
// between processes adds (seqs written once, watches fed by doorbells or polling alone, leases
// that lapse, cancel requests that reach the runner), on a throwaway PostgreSQL cluster.

import assert from "node:assert/strict";
import postgres from "postgres";
import { InvalidParamsError, TaskNotFoundError } from "../src/errors/errors.ts";
import type { AgentExecutor } from "../src/tasks/executor.ts";
import { textOf } from "../src/tasks/executor.ts";
import { PostgresTaskStore, type PostgresTaskStoreOptions } from "../src/tasks/pg_store.ts";
import { SCHEMA_VERSION } from "../src/tasks/pg_schema.ts";
import type {
  PushConfigRecord,
  StreamEvent,
  TaskQuery,
  TaskRecord,
  TaskStore,
} from "../src/tasks/store.ts";
import { TaskManager } from "../src/tasks/task_manager.ts";
import type { Task, TaskState } from "../src/types/core.ts";
import { userMessage } from "./helpers.ts";
import { freshDatabase, PG_TEST } from "./pg_cluster.ts";

const BASE = Date.parse("2025-01-01T00:00:00.000Z");

/** A fresh database and the stores a test opens on it, all closed when it ends. */
interface Db extends AsyncDisposable {
  url: string;
  open(options?: PostgresTaskStoreOptions): Promise<PostgresTaskStore>;
  /** Runs a query on a connection of its own (for what no store method shows). */
  query<T>(text: string, params?: unknown[]): Promise<T[]>;
}

async function freshDb(schema = true): Promise<Db> {
  const url = await freshDatabase({ schema });
  if (url === undefined) throw new Error("PostgreSQL is not available");
  const stores: PostgresTaskStore[] = [];
  let admin: postgres.Sql | undefined;
  return {
    url,
    async open(options = {}) {
      const store = await PostgresTaskStore.connect(url, options);
      stores.push(store);
      return store;
    },
    async query<T>(text: string, params: unknown[] = []) {
      admin ??= postgres(url, { max: 1, onnotice: () => {}, max_lifetime: null });
      // A plain array, so that deepEqual compares rows only.
      return [...await admin.unsafe(text, params as never[])] as T[];
    },
    async [Symbol.asyncDispose]() {
      await Promise.all(stores.map((s) => s.close()));
      await admin?.end();
    },
  };
}

/** A test on one fresh database (with the schema, or empty). */
function pgTest(name: string, fn: (db: Db) => Promise<void>, schema = true): void {
  Deno.test({
    name: `PostgresTaskStore ${name}`,
    ...PG_TEST,
    async fn() {
      await using db = await freshDb(schema);
      await fn(db);
    },
  });
}

/** A test of one store on a fresh database. */
function storeTest(
  name: string,
  fn: (store: PostgresTaskStore, db: Db) => Promise<void>,
  options: PostgresTaskStoreOptions = {},
): void {
  pgTest(name, async (db) => await fn(await db.open(options), db));
}

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

async function put(store: TaskStore, owner: string, task: Task): Promise<void> {
  await store.commit({ owner, task, lastSeq: 1 }, { created: true, event: { seq: 1, task } });
}

function statusEvent(task: Task, seq: number): StreamEvent {
  return { seq, statusUpdate: { taskId: task.id, contextId: task.contextId, status: task.status } };
}

async function putStatus(store: TaskStore, owner: string, task: Task, seq: number) {
  await store.commit({ owner, task, lastSeq: seq }, { event: statusEvent(task, seq) });
}

function query(q: Partial<TaskQuery> = {}): TaskQuery {
  return { pageSize: 50, pageToken: "", ...q };
}

async function ids(store: TaskStore, owner: string, q: Partial<TaskQuery> = {}) {
  return (await store.list(owner, query(q))).records.map((r) => r.task.id);
}

function status(state: TaskState): Task["status"] {
  return { state, timestamp: new Date().toISOString() };
}

function isTaken(err: unknown): boolean {
  return err instanceof InvalidParamsError && err.message === "contextId belongs to another user";
}

function push(owner: string, taskId: string, id: string, url = "https://x.test/") {
  return { owner, config: { id, taskId, url } } satisfies PushConfigRecord;
}

/** Polls until `cond` holds, at most `timeoutMs`; fails the test with `what` otherwise. */
async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
  state: () => string = () => "",
) {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`Timed out waiting for ${what} ${state()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Collects what a watch delivers. */
function collector() {
  const events: StreamEvent[] = [];
  const errors: unknown[] = [];
  return {
    events,
    errors,
    onEvents: (batch: StreamEvent[]) => void events.push(...batch),
    onError: (err: unknown) => void errors.push(err),
  };
}

/** Commits `n` artifact chunks of a WORKING task as seqs 2 .. n + 1 (seq 1 is the creation). */
async function stream(store: PostgresTaskStore, id: string, n: number, from = 0) {
  let task: Task = (await store.get(id))?.task ?? {
    id,
    contextId: `ctx-${id}`,
    status: status("TASK_STATE_WORKING"),
  };
  const logged: StreamEvent[] = [];
  if (from === 0) {
    await put(store, "alice", task);
    logged.push({ seq: 1, task });
  }
  for (let i = from; i < from + n; i++) {
    const chunk = { artifactId: "a", parts: [{ text: `chunk ${i}` }] };
    const before = task.artifacts?.[0]?.parts ?? [];
    task = { ...task, artifacts: [{ artifactId: "a", parts: [...before, ...chunk.parts] }] };
    const event: StreamEvent = {
      seq: i + 2,
      artifactUpdate: { taskId: id, contextId: task.contextId, artifact: chunk, append: i > 0 },
    };
    await store.commit({ owner: "alice", task, lastSeq: i + 2 }, {
      event,
      artifact: { index: 0, fromPart: before.length },
    });
    logged.push(event);
  }
  return logged;
}

// ---------------------------------------------------------------------------------------------
// The TaskStore contract, as the in-memory and Deno KV stores keep it.

storeTest(
  "commit() then get() round-trips the record, and a view reads part of it",
  async (store) => {
    assert.equal(await store.get("t1"), undefined);
    const task = makeTask("t1", { state: "TASK_STATE_SUBMITTED", text: "hello" });
    task.history = [userMessage("hi")];
    task.metadata = { n: 1, nested: { ok: true, list: [1, "two", null] } };
    await put(store, "alice", task);
    assert.deepEqual(await store.get("t1"), { owner: "alice", task, lastSeq: 1 });
    const next = { ...task, history: [...task.history, userMessage("more")] };
    await store.commit({ owner: "alice", task: next, lastSeq: 1 }, { historyAppended: 1 });
    assert.deepEqual(await store.get("t1"), { owner: "alice", task: next, lastSeq: 1 });
    assert.equal((await store.events("t1", 0)).length, 1);
    const { artifacts: _, ...bare } = next;
    assert.deepEqual((await store.get("t1", { historyLength: 1, artifacts: false }))?.task, {
      ...bare,
      history: next.history.slice(1),
    });
    const { history: _h, ...noHistory } = next;
    assert.deepEqual((await store.get("t1", { historyLength: 0 }))?.task, noHistory);
    assert.deepEqual((await store.get("t1", { historyLength: 5 }))?.task, next);
    // A task with an empty history keeps it empty; one without keeps none.
    const empty: Task = { ...makeTask("t2"), history: [], artifacts: [] };
    await put(store, "alice", empty);
    assert.deepEqual((await store.get("t2"))?.task, empty);
  },
);

pgTest("list() reads a page from the owner index, not the user's whole task list", async (db) => {
  const store = await db.open();
  for (let i = 0; i < 300; i++) await put(store, "alice", makeTask(`t${i}`, { at: i }));
  await db.query("ANALYZE a2a_tasks");
  const page = await store.list("alice", query({ pageSize: 5 }));
  const [cts, cid] = JSON.parse(atob(page.nextPageToken));
  const plan = await db.query<{ "QUERY PLAN": string }>(
    `EXPLAIN SELECT id FROM a2a_tasks t WHERE t.owner = 'alice' AND (t.ts, t.id) < ($1, $2)
     ORDER BY t.ts DESC, t.id DESC LIMIT 6`,
    [cts, cid],
  );
  const text = plan.map((r) => r["QUERY PLAN"]).join("\n");
  assert.match(text, /Index (Only )?Scan using a2a_tasks_listing/, text);
  assert.doesNotMatch(text, /Sort/, text);
});

storeTest("a large task, large events and awkward strings round-trip", async (store) => {
  const big = "é🙂 abc ".repeat(30_000);
  // A NUL character and a lone surrogate: jsonb would refuse the first.
  const odd = "nul \u0000 lone \ud800 end";
  const task = makeTask("big", { state: "TASK_STATE_WORKING", text: big, contextId: odd });
  task.history = [userMessage(odd, { messageId: `m-${odd}` })];
  const event: StreamEvent = {
    seq: 1,
    artifactUpdate: { taskId: "big", contextId: odd, artifact: task.artifacts![0]! },
  };
  await store.commit({ owner: "alice", task, lastSeq: 1 }, { created: true, event });
  assert.deepEqual(await store.get("big"), { owner: "alice", task, lastSeq: 1 });
  assert.deepEqual(await store.events("big", 0), [event]);
  assert.equal(await store.contextOwner(odd), "alice");
  assert.equal((await store.findMessage("alice", `m-${odd}`))?.taskId, "big");
  assert.deepEqual(await ids(store, "alice", { contextId: odd }), ["big"]);
  const small = makeTask("big", { state: "TASK_STATE_COMPLETED", text: "done", at: 5 });
  small.contextId = odd;
  small.history = task.history;
  const replaced: StreamEvent = {
    seq: 2,
    artifactUpdate: { taskId: "big", contextId: odd, artifact: small.artifacts![0]! },
  };
  await store.commit({ owner: "alice", task: small, lastSeq: 2 }, {
    event: replaced,
    artifact: { index: 0, fromPart: 0 },
  });
  assert.deepEqual(await store.get("big"), { owner: "alice", task: small, lastSeq: 2 });
  assert.deepEqual(await store.events("big", 1), [replaced]);
  // An id with a NUL character names nothing (PostgreSQL text cannot hold one).
  assert.equal(await store.get("big\u0000"), undefined);
  assert.deepEqual(await store.events("big\u0000", 0), []);
});

storeTest(
  "commit() refuses a change that does not fit what is stored, changing nothing",
  async (store) => {
    const task: Task = {
      ...makeTask("t1", { state: "TASK_STATE_WORKING" }),
      artifacts: [{ artifactId: "a", parts: [{ text: "1" }] }],
    };
    await put(store, "alice", task);
    const refused = async (next: Task, change: Parameters<TaskStore["commit"]>[1], re: RegExp) => {
      await assert.rejects(
        () => store.commit({ owner: "alice", task: next, lastSeq: 2 }, change),
        re,
      );
      assert.deepEqual(await store.get("t1"), { owner: "alice", task, lastSeq: 1 });
    };
    const two: Task = {
      ...task,
      artifacts: [{ artifactId: "a", parts: [{ text: "1" }, { text: "2" }] }],
    };
    await refused(
      two,
      { event: statusEvent(two, 2), artifact: { index: 0, fromPart: 3 } },
      /appended to from part 3, but the store has 1/,
    );
    const gap: Task = {
      ...task,
      artifacts: [...task.artifacts!, task.artifacts![0]!, task.artifacts![0]!],
    };
    await refused(
      gap,
      { event: statusEvent(gap, 2), artifact: { index: 2, fromPart: 0 } },
      /would leave a gap/,
    );
    await refused(
      task,
      { event: statusEvent(task, 2), artifact: { index: 5, fromPart: 0 } },
      /names artifact 5/,
    );
    await refused(task, { event: statusEvent(task, 2), historyAppended: 1 }, /1 messages appended/);
    await store.commit({
      owner: "alice",
      task: { ...task, status: status("TASK_STATE_WORKING") },
      lastSeq: 3,
    }, {
      event: statusEvent(task, 3),
    });
    await assert.rejects(
      () => store.commit({ owner: "alice", task, lastSeq: 2 }, {}),
      /older than the stored one at seq 3/,
    );
  },
);

storeTest(
  "commit() appends artifact parts without rewriting the earlier ones",
  async (store, db) => {
    const logged = await stream(store, "t1", 5);
    const rows = await db.query<{ idx: number; xmin: string }>(
      "SELECT idx, xmin::text FROM a2a_artifact_parts WHERE task_id = 't1' ORDER BY idx",
    );
    assert.equal(rows.length, 5);
    // Each part row was written by its own commit, and never again.
    assert.equal(new Set(rows.map((r) => r.xmin)).size, 5);
    const read = (await store.get("t1"))!;
    assert.deepEqual(
      read.task.artifacts?.[0]?.parts.map((p) => p.text),
      [0, 1, 2, 3, 4].map((i) => `chunk ${i}`),
    );
    assert.deepEqual(await store.events("t1", 0), logged);
  },
);

storeTest(
  "a commit without created on a task it does not have stores the task whole",
  async (store) => {
    const task: Task = {
      ...makeTask("t1", { state: "TASK_STATE_WORKING", text: "x" }),
      history: [userMessage("a"), userMessage("b")],
    };
    await store.commit({ owner: "alice", task, lastSeq: 1 }, {
      event: statusEvent(task, 1),
      historyAppended: 1,
    });
    assert.deepEqual(await store.get("t1"), { owner: "alice", task, lastSeq: 1 });
    assert.equal((await store.findMessage("alice", task.history![0]!.messageId))?.taskId, "t1");
  },
);

// ---------------------------------------------------------------------------------------------
// Context owners and push config counts.

storeTest(
  "contextOwner() names the owner of a context's first task until its last is evicted",
  async (store) => {
    const create = (owner: string, id: string, ctx: string, state?: TaskState) =>
      put(store, owner, makeTask(id, { contextId: ctx, ...(state && { state }) }));
    assert.equal(await store.contextOwner("c1"), undefined);
    await create("alice", "t1", "c1");
    await create("alice", "t2", "c1");
    await create("bob", "t3", "c2", "TASK_STATE_WORKING");
    await store.evict();
    assert.equal(await store.get("t1"), undefined);
    assert.equal(await store.contextOwner("c1"), "alice");
    assert.equal(await store.contextOwner("c2"), "bob");
    await create("bob", "t4", "c3");
    await store.evict();
    assert.equal(await store.get("t2"), undefined);
    assert.equal(await store.contextOwner("c1"), undefined, "forgotten with its last task");
    await create("carol", "t5", "c1", "TASK_STATE_WORKING");
    assert.equal(await store.contextOwner("c1"), "carol");
    assert.equal(await store.contextOwner("c2"), "bob");
  },
  { retention: { maxTerminalTasks: 1 } },
);

storeTest(
  "commit() refuses a task in another user's context with InvalidParamsError, changing nothing",
  async (store) => {
    await put(store, "alice", makeTask("t1", { contextId: "c1", state: "TASK_STATE_WORKING" }));
    await assert.rejects(() => put(store, "bob", makeTask("t2", { contextId: "c1" })), isTaken);
    assert.equal(await store.get("t2"), undefined);
    assert.deepEqual(await store.events("t2", 0), []);
    assert.equal((await store.list("bob", query())).totalSize, 0);
    await put(store, "alice", makeTask("t3", { contextId: "c1" }));
    const long = "l".repeat(5000);
    await put(store, "bob", makeTask("t4", { contextId: long }));
    assert.equal(await store.contextOwner(long), "bob");
    await assert.rejects(() => put(store, "alice", makeTask("t5", { contextId: long })), isTaken);
    assert.equal((await store.list("alice", query({ contextId: "c1" }))).totalSize, 2);
    // A task that moves into another user's context is refused too.
    const moved = makeTask("t1", { contextId: long, state: "TASK_STATE_WORKING", at: 1 });
    await assert.rejects(() => putStatus(store, "alice", moved, 2), isTaken);
  },
);

pgTest(
  "of two users racing for a new contextId on two stores only one creates a task in it",
  async (db) => {
    const [a, b] = await Promise.all([db.open(), db.open()]);
    for (let i = 0; i < 20; i++) {
      const ctx = `race-${i}`;
      const results = await Promise.allSettled([
        put(a, "alice", makeTask(`ta${i}`, { contextId: ctx })),
        put(b, "bob", makeTask(`tb${i}`, { contextId: ctx })),
      ]);
      const won = results.findIndex((r) => r.status === "fulfilled");
      assert.ok(won >= 0, "one of them wins");
      const lost = results[1 - won]!;
      assert.ok(lost.status === "rejected" && isTaken(lost.reason), "the other is refused");
      assert.equal(await a.contextOwner(ctx), won === 0 ? "alice" : "bob");
      assert.equal(await b.get(won === 0 ? `tb${i}` : `ta${i}`), undefined);
    }
  },
);

storeTest(
  "countPushConfigs() counts a user's configs over tasks, once per config, down on delete and eviction",
  async (store) => {
    const working = (owner: string, id: string, ctx: string) =>
      put(store, owner, makeTask(id, { contextId: ctx, state: "TASK_STATE_WORKING" }));
    await working("alice", "t1", "c1");
    await working("alice", "t2", "c1");
    await working("bob", "t3", "c3");
    assert.equal(await store.countPushConfigs("alice"), 0);
    await store.putPushConfig(push("alice", "t1", "p1"));
    await store.putPushConfig(push("alice", "t1", "p2"));
    await store.putPushConfig(push("alice", "t2", "p1"));
    await store.putPushConfig(push("bob", "t3", "p1"));
    await store.putPushConfig(push("bob", "t-new", "p1"));
    await store.putPushConfig(push("alice", "t1", "p1", "https://x.test/new"));
    assert.equal(await store.countPushConfigs("alice"), 3);
    assert.equal(await store.countPushConfigs("bob"), 2);
    // Concurrent puts of one new config count it once.
    await Promise.all(
      Array.from({ length: 5 }, () => store.putPushConfig(push("bob", "t3", "p9"))),
    );
    assert.equal(await store.countPushConfigs("bob"), 3);
    assert.equal(await store.deletePushConfig("t1", "p2"), true);
    assert.equal(await store.deletePushConfig("t1", "p2"), false);
    assert.equal(await store.countPushConfigs("alice"), 2);
    await putStatus(store, "alice", makeTask("t1", { contextId: "c1" }), 2);
    await store.evict();
    assert.equal(await store.get("t1"), undefined);
    assert.deepEqual(await store.listPushConfigs("t1"), []);
    assert.equal(await store.countPushConfigs("alice"), 1);
    assert.equal(await store.countPushConfigs("bob"), 3);
    assert.equal(await store.countPushConfigs("carol"), 0);
  },
  { retention: { maxTerminalTasks: 0 } },
);

storeTest(
  "deletePushConfig() of an evicted task answers false, and putPushConfig() refuses it with TaskNotFoundError",
  async (store) => {
    await put(store, "alice", makeTask("t1", { contextId: "c1", state: "TASK_STATE_WORKING" }));
    await store.putPushConfig(push("alice", "t1", "p1"));
    await put(store, "alice", makeTask("t2", { contextId: "c2" }));
    await store.putPushConfig(push("alice", "t2", "p1"));
    await put(store, "alice", makeTask("t3", { contextId: "c3" }));
    await store.evict();
    assert.equal(await store.get("t2"), undefined);
    assert.ok(await store.get("t3"));
    assert.equal(await store.countPushConfigs("alice"), 1);
    assert.equal(await store.deletePushConfig("t2", "p1"), false);
    await assert.rejects(() => store.putPushConfig(push("alice", "t2", "p2")), TaskNotFoundError);
    assert.deepEqual(await store.listPushConfigs("t2"), []);
    assert.equal(await store.countPushConfigs("alice"), 1);
    // A commit on the evicted task is refused; creating it again is not.
    const late: Task = { ...makeTask("t2", { contextId: "c2" }), history: [userMessage("late")] };
    await assert.rejects(
      () => store.commit({ owner: "alice", task: late, lastSeq: 1 }, { historyAppended: 1 }),
      /^InternalError: Cannot store task t2: it was evicted/,
    );
    await put(store, "alice", makeTask("t2", { contextId: "c2", state: "TASK_STATE_WORKING" }));
    await store.putPushConfig(push("alice", "t2", "p2"));
    assert.equal(await store.countPushConfigs("alice"), 2);
  },
  { retention: { maxTerminalTasks: 1 } },
);

// ---------------------------------------------------------------------------------------------
// Retention.

const agent: AgentExecutor = {
  async execute(ctx, events) {
    await events.status(
      textOf(ctx.message) === "ask" ? "TASK_STATE_INPUT_REQUIRED" : "TASK_STATE_COMPLETED",
    );
  },
};

storeTest(
  "keeps at most maxTerminalTasks ended tasks, evicting the oldest with their logs and messages",
  async (store) => {
    const manager = new TaskManager({ executor: agent, store, idleTasks: 0 });
    try {
      const paused = await manager.sendMessage("alice", { message: userMessage("ask") });
      const first = userMessage("done");
      const ended: string[] = [];
      for (const message of [first, ...Array.from({ length: 9 }, () => userMessage("done"))]) {
        ended.push((await manager.sendMessage("alice", { message })).task!.id);
      }
      await store.evict();
      assert.equal(await store.get(ended[0]!), undefined);
      assert.deepEqual(await store.events(ended[0]!, 0), []);
      assert.equal(await store.findMessage("alice", first.messageId), undefined);
      assert.ok(await store.get(ended[9]!));
      assert.ok(await store.get(paused.task!.id), "a task that has not ended is never evicted");
      const page = await manager.listTasks("alice", {});
      assert.deepEqual(
        page.tasks.map((t) => t.id).sort(),
        [paused.task!.id, ...ended.slice(7)].sort(),
      );
      assert.equal(page.totalSize, 4);
    } finally {
      await manager.close();
    }
  },
  { retention: { maxTerminalTasks: 3 } },
);

pgTest("evicts an ended task once terminalTtlMs has passed on its clock", async (db) => {
  let now = Date.parse("2025-01-01T00:00:00Z");
  const store = await db.open({ retention: { terminalTtlMs: 1000, now: () => now } });
  const create = (id: string, state: TaskState) =>
    put(store, "alice", makeTask(id, { state, contextId: `ctx-${id}` }));
  await create("old", "TASK_STATE_COMPLETED");
  await create("working", "TASK_STATE_WORKING");
  await create("asking", "TASK_STATE_INPUT_REQUIRED");
  now += 999;
  await create("fresh", "TASK_STATE_FAILED");
  await store.evict();
  assert.ok(await store.get("old"), "kept until its time is up");
  now += 1;
  await create("later", "TASK_STATE_CANCELED");
  await store.evict();
  assert.equal(await store.get("old"), undefined);
  assert.deepEqual(await store.events("old", 0), []);
  assert.ok(await store.get("fresh"));
  now += 1_000_000;
  await store.evict();
  assert.equal(await store.get("fresh"), undefined);
  for (const id of ["working", "asking"]) assert.ok(await store.get(id), `${id} stays`);
});

storeTest("never evicts a task that left its terminal state", async (store) => {
  await put(store, "alice", makeTask("t1", { contextId: "c1" }));
  await putStatus(
    store,
    "alice",
    makeTask("t1", { contextId: "c1", state: "TASK_STATE_WORKING", at: 1 }),
    2,
  );
  await put(store, "alice", makeTask("t2", { contextId: "c2", state: "TASK_STATE_REJECTED" }));
  await put(store, "alice", makeTask("t3", { contextId: "c3" }));
  await store.evict();
  assert.equal(await store.get("t2"), undefined, "the oldest ended task is t2 now");
  assert.ok(await store.get("t3"));
  assert.equal((await store.get("t1"))?.task.status.state, "TASK_STATE_WORKING");
  assert.equal((await store.events("t1", 0)).length, 2);
}, { retention: { maxTerminalTasks: 1 } });

pgTest("eviction leaves no row of an evicted task, and the database stays flat", async (db) => {
  const store = await db.open({ retention: { maxTerminalTasks: 2 } });
  const tables = [
    "a2a_tasks",
    "a2a_messages",
    "a2a_artifacts",
    "a2a_artifact_parts",
    "a2a_events",
    "a2a_push_configs",
    "a2a_message_ids",
    "a2a_contexts",
  ];
  const rows = async () => {
    let n = 0;
    for (const t of tables) {
      n += (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${t}`))[0]!.n;
    }
    return n;
  };
  const full = async (i: number) => {
    const id = `t${i}`;
    let task: Task = {
      id,
      contextId: `ctx-${id}`,
      status: status("TASK_STATE_WORKING"),
      history: [userMessage("hi")],
    };
    await put(store, "alice", task);
    await store.putPushConfig(push("alice", id, "p1"));
    task = { ...task, artifacts: [{ artifactId: "a", parts: [{ text: "z".repeat(100_000) }] }] };
    await store.commit({ owner: "alice", task, lastSeq: 2 }, {
      event: {
        seq: 2,
        artifactUpdate: { taskId: id, contextId: task.contextId, artifact: task.artifacts![0]! },
      },
      artifact: { index: 0, fromPart: 0 },
    });
    task = { ...task, status: status("TASK_STATE_COMPLETED") };
    await putStatus(store, "alice", task, 3);
  };
  for (let i = 0; i < 5; i++) await full(i);
  await store.evict();
  const after5 = await rows();
  for (let i = 5; i < 25; i++) await full(i);
  await store.evict();
  assert.equal(await rows(), after5, "as many rows after 25 tasks as after 5");
  assert.equal((await store.list("alice", query())).totalSize, 2);
  for (const t of tables) {
    const left = await db.query(
      `SELECT * FROM ${t} WHERE ${
        t === "a2a_tasks" ? "id" : t === "a2a_contexts" ? "owner" : "task_id"
      } = $1`,
      [
        t === "a2a_contexts" ? "nobody" : "t0",
      ],
    );
    assert.deepEqual(left, [], `${t} kept a row of t0`);
  }
  assert.equal(await store.contextOwner("ctx-t0"), undefined);
  assert.equal(await store.countPushConfigs("alice"), 2);
  const evicted = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM a2a_evicted");
  assert.equal(evicted[0]!.n, 23);
});

pgTest("evicts on its timer while no task ends", async (db) => {
  const store = await db.open({ retention: { terminalTtlMs: 20 } });
  await put(store, "alice", makeTask("t1", { state: "TASK_STATE_CANCELED" }));
  await until(async () => (await store.get("t1")) === undefined, "the eviction of t1");
  assert.deepEqual(await store.events("t1", 0), []);
});

pgTest("connect() rejects negative or non-numeric options with RangeError", async (db) => {
  for (
    const options of [
      { retention: { maxTerminalTasks: -1 } },
      { retention: { maxTerminalTasks: 1.5 } },
      { retention: { terminalTtlMs: Number.NaN } },
      { leaseMs: 10 },
      { pollMs: 0 },
      { max: 0 },
    ]
  ) {
    await assert.rejects(() => db.open(options), RangeError);
  }
  const store = await db.open({
    retention: { maxTerminalTasks: Infinity, terminalTtlMs: Infinity },
  });
  await put(store, "alice", makeTask("t1"));
  assert.equal(await store.evict(), 0);
  assert.ok(await store.get("t1"));
});

// ---------------------------------------------------------------------------------------------
// Schema.

pgTest("three stores starting at once on an empty database create the schema once", async (db) => {
  const stores = await Promise.all([db.open(), db.open(), db.open()]);
  const version = await db.query<{ version: number }>("SELECT version FROM a2a_schema_version");
  assert.deepEqual(version, [{ version: SCHEMA_VERSION }]);
  await put(stores[0]!, "alice", makeTask("t1"));
  assert.equal((await stores[2]!.get("t1"))?.owner, "alice");
  // A later start finds it done.
  await db.open();
  assert.equal((await db.query("SELECT * FROM a2a_schema_version")).length, 1);
}, false);

pgTest("connect() refuses a database whose schema is newer than this code", async (db) => {
  await (await db.open()).close();
  await db.query("UPDATE a2a_schema_version SET version = $1", [SCHEMA_VERSION + 1]);
  await assert.rejects(() => db.open(), /its a2a schema is version \d+, newer than/);
});

pgTest(
  "close() can be called twice; a closed store refuses calls and ends its watches",
  async (db) => {
    const store = await db.open();
    await put(store, "alice", makeTask("t1", { state: "TASK_STATE_WORKING" }));
    const c = collector();
    store.watch("t1", 1, c.onEvents, c.onError);
    await Promise.all([store.close(), store.close()]);
    assert.equal(c.errors.length, 1);
    await assert.rejects(() => store.get("t1"));
    const late = collector();
    store.watch("t1", 0, late.onEvents, late.onError);
    await until(() => late.errors.length === 1, "the late watch's error");
  },
);

// ---------------------------------------------------------------------------------------------
// Several processes on one database.

pgTest("a seq written by one store cannot be written by another", async (db) => {
  const [a, b] = await Promise.all([db.open(), db.open()]);
  const task = makeTask("t1", { state: "TASK_STATE_WORKING" });
  await put(a, "alice", task);
  for (let seq = 2; seq < 12; seq++) {
    const mine = (s: PostgresTaskStore, at: number) => {
      const t = makeTask("t1", { state: "TASK_STATE_WORKING", at });
      return s.commit({ owner: "alice", task: t, lastSeq: seq }, { event: statusEvent(t, seq) });
    };
    const results = await Promise.allSettled([mine(a, seq * 10), mine(b, seq * 10 + 1)]);
    const won = results.filter((r) => r.status === "fulfilled");
    assert.equal(won.length, 1, `seq ${seq} is logged once`);
    const lost = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    assert.match(String(lost.reason), /Cannot log event \d+ of task t1: it is logged/);
    const logged = (await a.events("t1", seq - 1))[0]!;
    const winner = results[0]!.status === "fulfilled" ? seq * 10 : seq * 10 + 1;
    assert.equal(logged.statusUpdate?.status.timestamp, new Date(BASE + winner).toISOString());
    assert.equal((await b.get("t1"))?.task.status.timestamp, new Date(BASE + winner).toISOString());
  }
  assert.equal((await b.events("t1", 0)).length, 11);
});

pgTest("a watch on one store sees exactly the events another commits, in order", async (db) => {
  const [a, b] = await Promise.all([db.open(), db.open()]);
  const c = collector();
  // Watches from before the task exists, from the start and from the middle.
  const early = collector();
  const stop = b.watch("t1", 0, early.onEvents, early.onError);
  const logged = await stream(a, "t1", 200);
  b.watch("t1", 0, c.onEvents, c.onError);
  const middle = collector();
  b.watch("t1", 150, middle.onEvents, middle.onError);
  logged.push(...await stream(a, "t1", 100, 200));
  await until(
    () => c.events.length >= 301 && early.events.length >= 301,
    "every event",
    10_000,
    () =>
      `${c.events.length} ${early.events.length} ${middle.events.length} ${c.errors} ${early.errors}`,
  );
  await until(() => middle.events.length >= 151, "the events after seq 150");
  assert.deepEqual(early.events, logged);
  assert.deepEqual(c.events, logged);
  assert.deepEqual(middle.events, logged.slice(150));
  assert.deepEqual([...c.errors, ...early.errors, ...middle.errors], []);
  stop();
  logged.push(...await stream(a, "t1", 10, 300));
  await until(() => c.events.length >= 311, "the events after the first watch stopped");
  assert.equal(early.events.length, 301, "a stopped watch gets nothing more");
  assert.deepEqual(c.events, logged);
});

for (const notify of [false, true]) {
  pgTest(
    `a store's own watch gets what it commits once, in order, after the committing caller ${
      notify ? "(with doorbells, whose reads race the commit's answer)" : "(without a read)"
    }`,
    async (db) => {
      // Without doorbells and polls the only read is the first: the events that follow come by
      // the store's own delivery. With doorbells a read may see a commit before its caller has
      // the answer, and holds the event back.
      const store = await db.open({ pollMs: 600_000, notify });
      let task: Task = { id: "t1", contextId: "c", status: status("TASK_STATE_WORKING") };
      await put(store, "alice", task);
      const c = collector();
      store.watch("t1", 0, c.onEvents, c.onError);
      await until(() => c.events.length === 1, "the first read");
      const logged: StreamEvent[] = [{ seq: 1, task }];
      for (let seq = 2; seq <= 100; seq++) {
        task = { ...task, status: status("TASK_STATE_WORKING") };
        const event = statusEvent(task, seq);
        await store.commit({ owner: "alice", task, lastSeq: seq }, { event });
        logged.push(event);
        assert.equal(c.events.length, seq - 1, `seq ${seq} came before its caller resumed`);
        await until(() => c.events.length === seq, `seq ${seq}`);
      }
      assert.deepEqual(c.events, logged);
    },
  );
}

pgTest("a watch gets every event by polling alone when no doorbell rings", async (db) => {
  const a = await db.open({ notify: false });
  const b = await db.open({ pollMs: 20 });
  const c = collector();
  b.watch("t1", 0, c.onEvents, c.onError);
  const concurrent = collector();
  b.watch("t1", 0, concurrent.onEvents, concurrent.onError);
  const logged = await stream(a, "t1", 100);
  await until(() => c.events.length >= 101 && concurrent.events.length >= 101, "every event");
  assert.deepEqual(c.events, logged);
  assert.deepEqual(concurrent.events, logged);
  // Every doorbell and poll at once: each event still comes once, in order.
  const busy = await db.open({ pollMs: 10 });
  const both = collector();
  busy.watch("t1", 0, both.onEvents, both.onError);
  const more = await stream(await db.open(), "t1", 100, 100);
  await until(() => both.events.length >= 201, "every event on the busy watch");
  assert.deepEqual(both.events, [...logged, ...more]);
});

pgTest(
  "a watch goes on after the listening connection drops, reading what it missed",
  async (db) => {
    const a = await db.open();
    // Polling too slow to matter: only the doorbell and the read after listening again deliver.
    const b = await db.open({ pollMs: 600_000 });
    const c = collector();
    b.watch("t1", 0, c.onEvents, c.onError);
    const logged = await stream(a, "t1", 5);
    await until(() => c.events.length >= 6, "the first events");
    const killed = await db.query<{ pid: number }>(
      `SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity
     WHERE query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()`,
    );
    assert.equal(killed.length, 2, "both stores' listening connections");
    // Committed while nobody listens: the notifications are lost.
    logged.push(...await stream(a, "t1", 5, 5));
    await until(() => c.events.length >= 11, "the events committed while the connection was down");
    logged.push(...await stream(a, "t1", 5, 10));
    await until(() => c.events.length >= 16, "the events after it listens again");
    assert.deepEqual(c.events, logged);
    assert.deepEqual(c.errors, []);
  },
);

pgTest(
  "lapsed() lists a hung process's unfinished tasks after its lease time, never before, and never a live one's",
  async (db) => {
    const leaseMs = 400;
    const hung = await db.open({ leaseMs, heartbeat: false });
    const live = await db.open({ leaseMs });
    const observer = await db.open({ leaseMs });
    await put(
      hung,
      "alice",
      makeTask("h-working", { state: "TASK_STATE_WORKING", contextId: "h" }),
    );
    await put(
      hung,
      "alice",
      makeTask("h-submitted", { state: "TASK_STATE_SUBMITTED", contextId: "h" }),
    );
    await put(
      hung,
      "alice",
      makeTask("h-paused", { state: "TASK_STATE_INPUT_REQUIRED", contextId: "h" }),
    );
    await put(hung, "alice", makeTask("h-done", { contextId: "h" }));
    await put(live, "bob", makeTask("l-working", { state: "TASK_STATE_WORKING", contextId: "l" }));
    const age = async () =>
      (await db.query<{ ms: number }>(
        `SELECT (extract(epoch FROM now() - heartbeat_at) * 1000)::float8 AS ms
       FROM a2a_processes WHERE id = $1`,
        [hung.processId],
      ))[0]!.ms;
    let listed: string[] = [];
    let polls = 0;
    await until(async () => {
      const before = await age();
      listed = (await observer.lapsed()).map((r) => r.task.id);
      const after = await age();
      assert.ok(!listed.includes("l-working"), "a live runner's task is never listed");
      if (listed.length > 0) {
        assert.ok(after >= leaseMs, `listed ${after} ms after the last heartbeat`);
      } else assert.ok(before < leaseMs, `not listed ${before} ms after the last heartbeat`);
      polls++;
      return listed.length > 0;
    }, "the hung process's lease to lapse");
    assert.ok(polls > 1, "not listed at first");
    assert.deepEqual(listed, ["h-submitted", "h-working"]);
    assert.equal(await observer.runnerAlive("h-working"), false);
    assert.equal(await observer.runnerAlive("l-working"), true);
    assert.equal(await hung.runnerAlive("h-working"), true, "a process counts itself alive");
    assert.deepEqual((await hung.lapsed()).map((r) => r.task.id), [], "nor lists its own");
    assert.equal(await observer.runnerAlive("none"), false);
    // A commit by another process makes it the runner: the task is no longer lapsed.
    const working = makeTask("h-working", { state: "TASK_STATE_WORKING", contextId: "h", at: 5 });
    await putStatus(observer, "alice", working, 2);
    assert.deepEqual((await live.lapsed()).map((r) => r.task.id), ["h-submitted"]);
  },
);

pgTest("close() drops the lease at once: another process lists the tasks it ran", async (db) => {
  const leaving = await db.open();
  const staying = await db.open();
  await put(leaving, "alice", makeTask("t1", { state: "TASK_STATE_WORKING" }));
  assert.deepEqual(await staying.lapsed(), []);
  assert.equal(await staying.runnerAlive("t1"), true);
  await leaving.close();
  assert.deepEqual((await staying.lapsed()).map((r) => r.task.id), ["t1"]);
  assert.equal(await staying.runnerAlive("t1"), false);
  const rows = await db.query("SELECT * FROM a2a_processes WHERE id = $1", [leaving.processId]);
  assert.deepEqual(rows, []);
});

pgTest("requestCancel() reaches the listener of the task's runner, and only it", async (db) => {
  const [a, b, c] = await Promise.all([db.open(), db.open(), db.open()]);
  const got = new Map<PostgresTaskStore, string[]>([[a, []], [b, []], [c, []]]);
  for (const s of [a, b, c]) s.onCancelRequest((id) => got.get(s)!.push(id));
  await put(a, "alice", makeTask("ta", { state: "TASK_STATE_WORKING" }));
  await put(c, "alice", makeTask("tc", { state: "TASK_STATE_WORKING" }));
  await b.requestCancel("ta");
  await until(() => got.get(a)!.length === 1, "a's cancel request");
  await a.requestCancel("tc");
  await until(() => got.get(c)!.length === 1, "c's cancel request");
  await c.requestCancel("ta");
  await until(() => got.get(a)!.length === 2, "a's second cancel request");
  assert.deepEqual(got.get(a), ["ta", "ta"]);
  assert.deepEqual(got.get(b), []);
  assert.deepEqual(got.get(c), ["tc"]);
  assert.deepEqual(await db.query("SELECT * FROM a2a_cancel_requests"), [], "delivered, deleted");
});

pgTest(
  "a cancel request reaches the runner by polling alone, and one made before its listener",
  async (db) => {
    const quiet = await db.open({ notify: false });
    const runner = await db.open({ pollMs: 20 });
    await put(runner, "alice", makeTask("t1", { state: "TASK_STATE_WORKING" }));
    await put(runner, "alice", makeTask("t2", { state: "TASK_STATE_WORKING" }));
    await quiet.requestCancel("t1");
    const got: string[] = [];
    runner.onCancelRequest((id) => got.push(id));
    await until(() => got.length === 1, "the request made before the listener");
    await quiet.requestCancel("t2");
    await until(() => got.length === 2, "the request that rang no doorbell");
    assert.deepEqual(got, ["t1", "t2"]);
    // A request for a task that has ended is dropped, not delivered.
    await putStatus(runner, "alice", makeTask("t1", { at: 9 }), 2);
    await quiet.requestCancel("t1");
    await until(
      async () => (await db.query("SELECT * FROM a2a_cancel_requests")).length === 0,
      "the request of the ended task to be dropped",
    );
    assert.deepEqual(got, ["t1", "t2"]);
  },
);

pgTest("a task core on one store streams what a task core on another runs", async (db) => {
  const [a, b] = await Promise.all([db.open(), db.open()]);
  const executor: AgentExecutor = {
    async execute(ctx, events) {
      await events.status("TASK_STATE_WORKING");
      for (let i = 0; i < 20; i++) {
        await events.artifact({ artifactId: "out", parts: [{ text: `${i}` }] }, {
          append: i > 0,
        });
      }
      await events.status("TASK_STATE_COMPLETED");
      void ctx;
    },
  };
  const manager = new TaskManager({ store: a, executor });
  try {
    const done = await manager.sendMessage("alice", { message: userMessage("go") });
    const record = (await b.get(done.task!.id))!;
    assert.equal(record.task.status.state, "TASK_STATE_COMPLETED");
    assert.equal(record.task.artifacts?.[0]?.parts.length, 20);
    const c = collector();
    b.watch(done.task!.id, 0, c.onEvents, c.onError);
    await until(() => c.events.length === record.lastSeq, "the replay");
    assert.deepEqual(c.events, await a.events(done.task!.id, 0));
    assert.deepEqual(
      c.events.map((e) => e.seq),
      Array.from({ length: record.lastSeq }, (_, i) => i + 1),
    );
  } finally {
    await manager.close();
  }
});

// ---------------------------------------------------------------------------------------------
// The durable webhook queue.

pgTest(
  "claimDelivery() hands out each event of a config once, in order, one claim at a time",
  async (db) => {
    const [a, b] = await Promise.all([db.open(), db.open()]);
    const logged = await stream(a, "t1", 3);
    // A config created now gets what is logged after it; one created before its task, everything.
    await a.putPushConfig(push("alice", "t1", "late"));
    await b.putPushConfig(push("alice", "t2", "early"));
    assert.equal(await b.claimDelivery(60_000), undefined, "nothing due yet");
    const more = await stream(a, "t1", 2, 3);
    const t2 = await stream(b, "t2", 1);
    const first = (await b.claimDelivery(60_000))!;
    const second = (await a.claimDelivery(60_000))!;
    assert.ok(first && second);
    assert.deepEqual(
      [first, second].map((d) => [d.record.config.id, d.event.seq]).sort(),
      [["early", 1], ["late", 5]],
    );
    assert.equal(await a.claimDelivery(60_000), undefined, "each config is claimed once at a time");
    const late = first.record.config.id === "late" ? first : second;
    const early = late === first ? second : first;
    assert.deepEqual(late.event, more[0]);
    assert.deepEqual(early.event, t2[0]);
    assert.equal(late.attempts, 0);
    assert.deepEqual(late.record, push("alice", "t1", "late"));
    await a.settleDelivery(late, { done: true });
    const next = (await b.claimDelivery(60_000))!;
    assert.equal(next.record.config.id, "late");
    assert.deepEqual(next.event, more[1]);
    await b.settleDelivery(next, { done: true });
    await a.settleDelivery(early, { done: true });
    const rest: number[] = [];
    for (let d = await a.claimDelivery(60_000); d; d = await a.claimDelivery(60_000)) {
      assert.equal(d.record.config.id, "early");
      rest.push(d.event.seq);
      await a.settleDelivery(d, { done: true });
    }
    assert.deepEqual(rest, [2]);
    assert.equal(logged.length, 4);
  },
);

pgTest(
  "settleDelivery() retries at its time with one more attempt, and a lapsed claim is claimed again",
  async (db) => {
    const store = await db.open();
    await store.putPushConfig(push("alice", "t1", "p1"));
    await stream(store, "t1", 0);
    const first = (await store.claimDelivery(60_000))!;
    assert.equal(first.event.seq, 1);
    await store.settleDelivery(first, { done: false, retryAt: Date.now() + 600_000 });
    assert.equal(await store.claimDelivery(60_000), undefined, "not before its retry time");
    await db.query("UPDATE a2a_push_configs SET due_at = now()");
    const retry = (await store.claimDelivery(20))!;
    assert.equal(retry.event.seq, 1);
    assert.equal(retry.attempts, 1);
    // The claim lapses after 20 ms (its process died): the event is claimed again.
    let again: Awaited<ReturnType<typeof store.claimDelivery>>;
    await until(
      async () => (again = await store.claimDelivery(60_000)) !== undefined,
      "the claim to lapse",
    );
    assert.equal(again!.event.seq, 1);
    assert.notEqual(again!.claim, retry.claim);
    // Settling the lost claim changes nothing.
    await store.settleDelivery(retry, { done: true });
    assert.equal(await store.claimDelivery(60_000), undefined);
    await store.settleDelivery(again!, { done: true });
    assert.equal(await store.claimDelivery(60_000), undefined, "delivered");
    const rows = await db.query<{ cursor_seq: number; pending: boolean }>(
      "SELECT cursor_seq, pending FROM a2a_push_configs",
    );
    assert.deepEqual(rows, [{ cursor_seq: 1, pending: false }]);
  },
);

pgTest(
  "webhook deliveries of three stores draining at once reach every config once, in order",
  async (db) => {
    const stores = await Promise.all([db.open(), db.open(), db.open()]);
    const [a] = stores;
    await put(a!, "alice", makeTask("t1", { state: "TASK_STATE_WORKING", contextId: "c" }));
    await put(a!, "alice", makeTask("t2", { state: "TASK_STATE_WORKING", contextId: "c" }));
    for (const t of ["t1", "t2"]) {
      for (const c of ["p1", "p2", "p3"]) await a!.putPushConfig(push("alice", t, c));
    }
    const seen = new Map<string, number[]>();
    let writing = true;
    const drain = async (store: PostgresTaskStore) => {
      for (;;) {
        const d = await store.claimDelivery(60_000);
        if (!d) {
          if (!writing) return;
          await new Promise((r) => setTimeout(r, 1));
          continue;
        }
        const key = `${d.record.config.taskId}/${d.record.config.id}`;
        seen.set(key, [...seen.get(key) ?? [], d.event.seq]);
        await store.settleDelivery(d, { done: true });
      }
    };
    const drains = stores.map(drain);
    for (let seq = 2; seq <= 30; seq++) {
      for (const t of ["t1", "t2"]) {
        await putStatus(
          stores[seq % 3]!,
          "alice",
          makeTask(t, { state: "TASK_STATE_WORKING", contextId: "c", at: seq }),
          seq,
        );
      }
    }
    writing = false;
    await Promise.all(drains);
    for (const drain of stores) assert.equal(await drain.claimDelivery(60_000), undefined);
    assert.equal(seen.size, 6);
    for (const [key, seqs] of seen) {
      assert.deepEqual(seqs, Array.from({ length: 29 }, (_, i) => i + 2), key);
    }
  },
);

pgTest(
  "a config put while its task is created, or while it logs, is queued for what follows it",
  async (db) => {
    const [a, b] = await Promise.all([db.open(), db.open()]);
    for (let i = 0; i < 20; i++) {
      const id = `t${i}`;
      await Promise.all([
        put(a, "alice", makeTask(id, { state: "TASK_STATE_WORKING", contextId: "c" })),
        b.putPushConfig(push("alice", id, "p1")),
      ]);
      await Promise.all([
        putStatus(
          a,
          "alice",
          makeTask(id, { state: "TASK_STATE_WORKING", contextId: "c", at: 2 }),
          2,
        ),
        b.putPushConfig(push("alice", id, "p2")),
      ]);
    }
    // The queue's invariant: a config is pending exactly when its task logged past its cursor.
    const wrong = await db.query(
      `SELECT c.task_id, c.id, c.cursor_seq, c.pending, t.last_seq FROM a2a_push_configs c
     JOIN a2a_tasks t ON t.id = c.task_id WHERE c.pending <> (c.cursor_seq < t.last_seq)`,
    );
    assert.deepEqual(wrong, []);
  },
);

pgTest(
  "onDeliveriesDue() is told when another store logs an event of a task with webhooks",
  async (db) => {
    const [a, b] = await Promise.all([db.open(), db.open({ pollMs: 600_000 })]);
    let calls = 0;
    b.onDeliveriesDue(() => calls++);
    await until(() => calls === 1, "the first call");
    await stream(a, "t1", 2);
    await a.putPushConfig(push("alice", "t1", "p1"));
    const before = calls;
    await stream(a, "t1", 1, 2);
    await until(() => calls > before, "a call after the event");
    assert.equal((await b.claimDelivery(60_000))?.event.seq, 4);
  },
);

// Unused here, but checked: the record type the contract uses.
export type { TaskRecord };
