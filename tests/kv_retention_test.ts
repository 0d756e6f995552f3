// Retention of the Deno KV store, in its keys: an evicted task leaves nothing, the database stays
// flat, a large task goes in bounded operations, head first, and a half-done eviction is finished.

import assert from "node:assert/strict";
import { KvTaskStore } from "../src/tasks/kv_store.ts";
import type { RetentionOptions, StreamEvent, TaskRecord } from "../src/tasks/store.ts";
import type { Message, Task, TaskState } from "../src/types/core.ts";
import { userMessage } from "./helpers.ts";

/** Reads a property of a real database, with its methods bound (they need their own `this`). */
function forward(target: object, prop: string | symbol): unknown {
  const value = Reflect.get(target, prop, target);
  return typeof value === "function" ? value.bind(target) : value;
}

/** What one atomic operation did. */
interface OpRecord {
  checks: number;
  mutations: number;
  deleted: Deno.KvKey[];
}

/**
 * A view of a database that records its atomic operations, and whose commits fail once `crashAt`
 * of them went through, as when the process dies there. `close()` does nothing.
 */
function watchedKv(kv: Deno.Kv, crashAt = Infinity): { kv: Deno.Kv; ops: OpRecord[] } {
  const ops: OpRecord[] = [];
  const proxy = new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const record: OpRecord = { checks: 0, mutations: 0, deleted: [] };
          const wrapped: Deno.AtomicOperation = new Proxy(op, {
            get(o, p) {
              if (p === "commit") {
                return () => {
                  if (ops.length >= crashAt) return Promise.reject(new Error("Simulated crash"));
                  ops.push(record);
                  return o.commit();
                };
              }
              const v = Reflect.get(o, p, o);
              if (typeof v !== "function") return v;
              return (...args: unknown[]) => {
                if (p === "check") record.checks += args.length;
                else if (p === "delete") {
                  record.mutations++;
                  record.deleted.push(args[0] as Deno.KvKey);
                } else if (p === "set" || p === "sum") record.mutations++;
                v.apply(o, args);
                return wrapped;
              };
            },
          });
          return wrapped;
        };
      }
      if (prop === "close") return () => {};
      return forward(target, prop);
    },
  });
  return { kv: proxy, ops };
}

async function allKeys(kv: Deno.Kv): Promise<Deno.KvKey[]> {
  const out: Deno.KvKey[] = [];
  for await (const e of kv.list({ prefix: [] })) out.push(e.key);
  return out;
}

/** The keys that name a task id (in any part), or that point at it (a message index entry). */
async function keysOf(kv: Deno.Kv, id: string): Promise<Deno.KvKey[]> {
  const out: Deno.KvKey[] = [];
  for await (const e of kv.list({ prefix: [] })) {
    const points = e.key[1] === "message" && e.value instanceof Uint8Array &&
      JSON.parse(new TextDecoder().decode(e.value)).t === id;
    if (e.key.includes(id) || points) out.push(e.key);
  }
  return out;
}

async function counter(kv: Deno.Kv, key: Deno.KvKey): Promise<bigint> {
  const entry = await kv.get<Deno.KvU64>(key);
  return entry.value?.value ?? 0n;
}

function status(state: TaskState): Task["status"] {
  return { state, timestamp: new Date().toISOString() };
}

/**
 * Takes a task through what a real one stores: a history (of `messages` user messages when
 * created) with a follow-up, an artifact over 64 KiB (a blob), several events, two push configs,
 * then `end`.
 */
async function fullTask(
  store: KvTaskStore,
  owner: string,
  id: string,
  end: TaskState,
  messages = 1,
) {
  const first = userMessage("hi", { taskId: id, contextId: `ctx-${id}` });
  let task: Task = { id, contextId: `ctx-${id}`, status: status("TASK_STATE_WORKING") };
  task.history = [first];
  for (let i = 1; i < messages; i++) task.history.push(userMessage(`m${i}`, { taskId: id }));
  let seq = 1;
  const commit = async (change: Parameters<KvTaskStore["commit"]>[1]) => {
    await store.commit({ owner, task, lastSeq: seq }, change);
  };
  await commit({ created: true, event: { seq, task } });
  await store.putPushConfig({ owner, config: { id: "p1", taskId: id, url: "https://x.test/1" } });
  await store.putPushConfig({ owner, config: { id: "p2", taskId: id, url: "https://x.test/2" } });
  const artifact = { artifactId: "a", parts: [{ text: "z".repeat(100_000) }] };
  task = { ...task, artifacts: [artifact] };
  seq++;
  await commit({
    event: { seq, artifactUpdate: { taskId: id, contextId: task.contextId, artifact } },
    artifact: { index: 0, fromPart: 0 },
  });
  const follow: Message = userMessage("more", { taskId: id, contextId: task.contextId });
  task = { ...task, history: [...task.history!, follow] };
  await commit({ historyAppended: 1 });
  task = { ...task, status: status(end) };
  seq++;
  const statusUpdate = { taskId: id, contextId: task.contextId, status: task.status };
  await commit({ event: { seq, statusUpdate } });
  return { first, follow };
}

async function openStore(retention: RetentionOptions, kv?: Deno.Kv) {
  const raw = kv ?? await Deno.openKv(":memory:");
  return { raw, store: new KvTaskStore(raw, { retention }) };
}

Deno.test("KvTaskStore eviction leaves no key of an evicted task, and the database stays flat", async () => {
  const { raw, store } = await openStore({ maxTerminalTasks: 2 });
  try {
    const firsts: Message[] = [];
    const round = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        firsts.push((await fullTask(store, "alice", `t${i}`, "TASK_STATE_COMPLETED")).first);
      }
      await store.evict();
      return (await allKeys(raw)).length;
    };
    const after5 = await round(0, 5);
    for (let i = 0; i < 3; i++) {
      assert.equal(await store.get(`t${i}`), undefined);
      assert.deepEqual(await keysOf(raw, `t${i}`), [], `t${i} left keys behind`);
      assert.equal(await store.findMessage("alice", firsts[i]!.messageId), undefined);
      assert.equal(await store.contextOwner(`ctx-t${i}`), undefined);
    }
    assert.equal(await counter(raw, ["a2a", "term_n"]), 2n);
    assert.equal(await store.countPushConfigs("alice"), 4);
    assert.deepEqual(await raw.get(["a2a", "evict", "t0"]).then((e) => e.value), null);
    const after25 = await round(5, 25);
    assert.equal(after25, after5, "as many keys after 25 tasks as after 5");
    assert.deepEqual((await store.list("alice", { pageSize: 50, pageToken: "" })).totalSize, 2);
    const kept = await store.get("t24");
    assert.equal(kept?.task.history?.length, 2);
    assert.equal(kept?.task.artifacts?.[0]?.parts[0]?.text?.length, 100_000);
    assert.equal((await store.events("t24", 0)).length, 3);
    assert.deepEqual(await store.findMessage("alice", firsts[24]!.messageId), {
      taskId: "t24",
      message: kept!.task.history![0]!,
    });
  } finally {
    await store.release();
  }
});

Deno.test("KvTaskStore evicts a large task in bounded operations, making it unreadable first", async () => {
  const raw = await Deno.openKv(":memory:");
  const watched = watchedKv(raw);
  const { store } = await openStore({ maxTerminalTasks: 0 }, watched.kv);
  try {
    // 2500 messages, each a piece with an index entry: more than one operation may delete.
    const history = Array.from({ length: 2500 }, (_, i) => userMessage(`m${i}`));
    const parts = Array.from({ length: 2000 }, (_, i) => ({ text: `${i} `.padEnd(200, "p") }));
    let task: Task = {
      id: "big",
      contextId: "c",
      status: status("TASK_STATE_WORKING"),
      history,
      artifacts: [{ artifactId: "a", parts }],
    };
    await store.commit({ owner: "alice", task, lastSeq: 1 }, {
      created: true,
      event: { seq: 1, task: { ...task, history: [], artifacts: [] } },
    });
    const before = (await allKeys(raw)).length;
    assert.ok(before > 5000, `${before} keys`);
    watched.ops.length = 0;
    task = { ...task, status: status("TASK_STATE_COMPLETED") };
    const event: StreamEvent = {
      seq: 2,
      statusUpdate: { taskId: "big", contextId: "c", status: task.status },
    };
    await store.commit({ owner: "alice", task, lastSeq: 2 }, { event });
    await store.evict();
    const ops = watched.ops.slice(1);
    assert.ok(ops.length > 5, `${ops.length} operations`);
    for (const op of ops) {
      assert.ok(op.mutations <= 1000, `${op.mutations} mutations`);
      assert.ok(op.checks <= 10, `${op.checks} checks`);
    }
    const deletes = (op: OpRecord, kind: string) => op.deleted.some((k) => k[1] === kind);
    const headAt = ops.findIndex((op) => deletes(op, "head"));
    assert.ok(headAt >= 0);
    assert.ok(deletes(ops[headAt]!, "by_owner") && deletes(ops[headAt]!, "term"));
    for (const kind of ["msg", "art", "part", "event", "message", "blob"]) {
      const first = ops.findIndex((op) => deletes(op, kind));
      if (first >= 0) assert.ok(first > headAt, `${kind} deleted before the head`);
    }
    assert.deepEqual(await keysOf(raw, "big"), []);
    assert.deepEqual((await allKeys(raw)).filter((k) => k[1] === "message"), []);
  } finally {
    await store.release();
    raw.close();
  }
});

Deno.test("KvTaskStore finishes an eviction that a dead process left half done", async () => {
  /** A database with one ended task, its pieces, message entries and push configs. */
  const seeded = async () => {
    const raw = await Deno.openKv(":memory:");
    const keeper = new KvTaskStore(watchedKv(raw).kv, { retention: { maxTerminalTasks: 10 } });
    // 25 messages: their index entries take several operations of ten checks.
    const { first } = await fullTask(keeper, "alice", "t1", "TASK_STATE_FAILED", 25);
    // An unrelated task that stays, and whose keys the eviction must not touch.
    await fullTask(keeper, "bob", "t2", "TASK_STATE_WORKING");
    await keeper.release();
    return { raw, first };
  };
  let total: number;
  {
    const { raw } = await seeded();
    const watched = watchedKv(raw);
    const { store } = await openStore({ maxTerminalTasks: 0 }, watched.kv);
    assert.equal(await store.evict(), 1);
    total = watched.ops.length;
    await store.release();
    raw.close();
  }
  assert.ok(total >= 4, `${total} operations`);
  for (let crashAt = 0; crashAt < total; crashAt++) {
    const { raw, first } = await seeded();
    const t2 = (await allKeys(raw)).filter((k) => k.includes("t2")).length;
    const dying = new KvTaskStore(watchedKv(raw, crashAt).kv, {
      retention: { maxTerminalTasks: 0 },
    });
    await assert.rejects(() => dying.evict(), /Simulated crash/);
    dying.close();
    const { store } = await openStore({ maxTerminalTasks: 0 }, raw);
    try {
      // Readable whole before the first operation, and not at all after it.
      const read = await store.get("t1");
      if (crashAt === 0) assert.equal(read?.task.status.state, "TASK_STATE_FAILED");
      else {
        assert.equal(read, undefined, `after a crash at operation ${crashAt + 1}`);
        assert.equal(await store.findMessage("alice", first.messageId), undefined);
      }
      await store.evict();
      assert.deepEqual(await keysOf(raw, "t1"), [], `after a crash at operation ${crashAt + 1}`);
      assert.equal((await allKeys(raw)).filter((k) => k.includes("t2")).length, t2);
      assert.equal(await counter(raw, ["a2a", "term_n"]), 0n);
      assert.equal(await store.countPushConfigs("alice"), 0);
      assert.equal(await store.countPushConfigs("bob"), 2);
      assert.equal(await store.contextOwner("ctx-t1"), undefined);
      assert.equal(await store.contextOwner("ctx-t2"), "bob");
    } finally {
      await store.release();
    }
  }
});

Deno.test("KvTaskStore eviction gives way to a commit between its read and its delete", async () => {
  const raw = await Deno.openKv(":memory:");
  const other = new KvTaskStore(watchedKv(raw).kv, { retention: { maxTerminalTasks: 10 } });
  let moved: TaskRecord | undefined;
  // A view on which the eviction's first read of a `term` entry lets another writer commit first.
  const racing = new Proxy(raw, {
    get(target, prop) {
      if (prop === "getMany") {
        return async (keys: Deno.KvKey[]) => {
          const read = await target.getMany(keys);
          if (!moved && keys[1]?.[1] === "term") {
            const record = (await other.get("t1"))!;
            const task: Task = { ...record.task, status: status("TASK_STATE_WORKING") };
            moved = { ...record, task, lastSeq: 2 };
            await other.commit(moved, {
              event: {
                seq: 2,
                statusUpdate: { taskId: "t1", contextId: "c", status: task.status },
              },
            });
          }
          return read;
        };
      }
      if (prop === "close") return () => {};
      return forward(target, prop);
    },
  });
  const store = new KvTaskStore(racing, { retention: { maxTerminalTasks: 0 } });
  try {
    const task: Task = { id: "t1", contextId: "c", status: status("TASK_STATE_COMPLETED") };
    await other.commit({ owner: "alice", task, lastSeq: 1 }, {
      created: true,
      event: { seq: 1, task },
    });
    assert.equal(await store.evict(), 0);
    assert.ok(moved, "the commit came between");
    assert.deepEqual(await store.get("t1"), moved);
    assert.equal((await store.events("t1", 0)).length, 2);
    assert.equal(await counter(raw, ["a2a", "term_n"]), 0n);
    assert.equal(await store.contextOwner("c"), "alice");
  } finally {
    await store.release();
    await other.release();
    raw.close();
  }
});

Deno.test("KvTaskStore evicts on its timer while no task ends", async () => {
  const { store } = await openStore({ terminalTtlMs: 20 });
  try {
    const task: Task = { id: "t1", contextId: "c", status: status("TASK_STATE_CANCELED") };
    await store.commit({ owner: "alice", task, lastSeq: 1 }, {
      created: true,
      event: { seq: 1, task },
    });
    // The round after the commit may come before the TTL: then the timer's must do it.
    let polls = 0;
    while (await store.get("t1") && polls++ < 500) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(await store.get("t1"), undefined, "evicted within 5 s");
    // The head goes first; the round under way deletes the rest, and a new one waits for it.
    assert.equal(await store.evict(), 0);
    assert.deepEqual(await store.events("t1", 0), []);
  } finally {
    await store.release();
  }
});

Deno.test("KvTaskStore.commit() on a task it evicted fails with InternalError, writing nothing", async () => {
  const { raw, store } = await openStore({ maxTerminalTasks: 0 });
  try {
    const task: Task = { id: "t1", contextId: "c", status: status("TASK_STATE_COMPLETED") };
    await store.commit({ owner: "alice", task, lastSeq: 1 }, {
      created: true,
      event: { seq: 1, task },
    });
    await store.evict();
    const late: Task = { ...task, history: [userMessage("late")] };
    await assert.rejects(
      () => store.commit({ owner: "alice", task: late, lastSeq: 1 }, { historyAppended: 1 }),
      /^InternalError: Cannot store task t1: it was evicted/,
    );
    assert.deepEqual(await keysOf(raw, "t1"), []);
  } finally {
    await store.release();
  }
});
