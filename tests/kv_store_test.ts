// The TaskStore contract, run against every store (tests/faulty_store.ts STORES), and recovery
// after a restart: in the task core, and of a real server process killed mid-task.

import assert from "node:assert/strict";
import { startServerProcess } from "./process.ts";
import { A2AClient } from "../client.ts";
import {
  type AgentExecutor,
  type Artifact,
  InMemoryTaskStore,
  InternalError,
  KvTaskStore,
  type Message,
  type StreamEvent,
  type Task,
  TaskManager,
  type TaskQuery,
  type TaskState,
  type TaskStore,
  textOf,
} from "../mod.ts";
import { STORES } from "./faulty_store.ts";
import { TOKENS, userMessage } from "./helpers.ts";

const RESTART_MESSAGE = "The server restarted while the task was running";
const BASE = Date.parse("2025-01-01T00:00:00.000Z");

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
  await store.commit({ owner, task, lastSeq: 1 }, { created: true, event: { seq: 1, task } });
}

function statusEvent(task: Task, seq: number): StreamEvent {
  return { seq, statusUpdate: { taskId: task.id, contextId: task.contextId, status: task.status } };
}

/** Commits a status change of a task as event `seq`. */
async function putStatus(store: TaskStore, owner: string, task: Task, seq: number) {
  await store.commit({ owner, task, lastSeq: seq }, { event: statusEvent(task, seq) });
}

function query(q: Partial<TaskQuery> = {}): TaskQuery {
  return { pageSize: 50, pageToken: "", ...q };
}

async function ids(store: TaskStore, owner: string, q: Partial<TaskQuery> = {}) {
  return (await store.list(owner, query(q))).records.map((r) => r.task.id);
}

// The contract every store keeps, on each of them (PostgreSQL too when it is installed).
for (const [name, open] of STORES) {
  const test = (title: string, fn: (store: TaskStore) => Promise<void>) =>
    Deno.test(`${name}: ${title}`, async () => {
      await using opened = await open();
      await fn(opened.store);
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
    await store.commit({ owner: "alice", task: next, lastSeq: 1 }, { historyAppended: 1 });
    assert.deepEqual(await store.get("t1"), { owner: "alice", task: next, lastSeq: 1 });
    assert.equal((await store.events("t1", 0)).length, 1);
    // A view cuts the history and leaves the artifacts out.
    const { artifacts: _, ...bare } = next;
    assert.deepEqual((await store.get("t1", { historyLength: 1, artifacts: false }))?.task, {
      ...bare,
      history: next.history.slice(1),
    });
    const { history: _h, ...noHistory } = next;
    assert.deepEqual((await store.get("t1", { historyLength: 0 }))?.task, noHistory);
  });

  test("events() replays the log after a seq, in order", async (store) => {
    let task = makeTask("t1", { state: "TASK_STATE_SUBMITTED" });
    await put(store, "alice", task);
    const logged: StreamEvent[] = [{ seq: 1, task }];
    for (let seq = 2; seq <= 5; seq++) {
      task = makeTask("t1", { state: "TASK_STATE_WORKING", at: seq });
      const event = statusEvent(task, seq);
      await store.commit({ owner: "alice", task, lastSeq: seq }, { event });
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
    await putStatus(store, "alice", t1, 2);
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
    await put(store, "bob", makeTask("b1", { contextId: "bobs" }));
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
    await store.commit({ owner: "alice", task, lastSeq: 1 }, { created: true, event });
    assert.deepEqual(await store.get("big"), { owner: "alice", task, lastSeq: 1 });
    assert.deepEqual(await store.events("big", 0), [event]);
    // Replacing the artifact with a small one.
    const small = makeTask("big", { state: "TASK_STATE_COMPLETED", text: "done", at: 5 });
    const replaced: StreamEvent = {
      seq: 2,
      artifactUpdate: { taskId: "big", contextId: "ctx", artifact: small.artifacts![0]! },
    };
    await store.commit({ owner: "alice", task: small, lastSeq: 2 }, {
      event: replaced,
      artifact: { index: 0, fromPart: 0 },
    });
    assert.deepEqual(await store.get("big"), { owner: "alice", task: small, lastSeq: 2 });
    assert.deepEqual(await store.events("big", 1), [replaced]);
    assert.deepEqual(await ids(store, "alice"), ["big"]);
  });

  test("commit() refuses to log a seq twice and changes nothing", async (store) => {
    const task = makeTask("t1", { state: "TASK_STATE_WORKING", text: "first" });
    task.history = [userMessage("hi")];
    await put(store, "alice", task);
    const again = makeTask("t1", { state: "TASK_STATE_COMPLETED", text: "second", at: 9 });
    again.history = [...task.history, userMessage("more")];
    for (
      const change of [
        { created: true, event: { seq: 1, task: again } },
        { event: statusEvent(again, 1), historyAppended: 1 },
        {
          event: {
            seq: 0,
            artifactUpdate: { taskId: "t1", contextId: "ctx", artifact: again.artifacts![0]! },
          },
          artifact: { index: 0, fromPart: 0 },
        },
      ]
    ) {
      await assert.rejects(
        () => store.commit({ owner: "alice", task: again, lastSeq: change.event.seq }, change),
        (err: Error) =>
          err instanceof InternalError && /^Cannot log event \d of task t1/.test(err.message),
      );
    }
    assert.deepEqual(await store.get("t1"), { owner: "alice", task, lastSeq: 1 });
    assert.deepEqual(await store.events("t1", 0), [{ seq: 1, task }]);
    assert.deepEqual(await ids(store, "alice", { status: "TASK_STATE_WORKING" }), ["t1"]);
    assert.equal(await store.findMessage("alice", again.history[1]!.messageId), undefined);
  });

  test("findMessage() finds each user message of a task, for its owner only", async (store) => {
    const first = userMessage("hi");
    let task: Task = {
      ...makeTask("t1", { state: "TASK_STATE_INPUT_REQUIRED" }),
      history: [first],
    };
    await put(store, "alice", task);
    const reply: Message = { messageId: "r1", role: "ROLE_AGENT", parts: [{ text: "more?" }] };
    task = { ...task, history: [first, reply] };
    await store.commit({ owner: "alice", task, lastSeq: 2 }, {
      event: statusEvent(task, 2),
      historyAppended: 1,
    });
    // A follow-up, with an id longer than a Deno KV key may be.
    const follow = userMessage("yes", { messageId: `long-${"x".repeat(3000)}`, taskId: "t1" });
    task = { ...task, history: [first, reply, follow] };
    await store.commit({ owner: "alice", task, lastSeq: 2 }, { historyAppended: 1 });
    assert.deepEqual(await store.findMessage("alice", first.messageId), {
      taskId: "t1",
      message: first,
    });
    assert.deepEqual(await store.findMessage("alice", follow.messageId), {
      taskId: "t1",
      message: follow,
    });
    assert.equal(await store.findMessage("alice", "r1"), undefined, "an agent message");
    assert.equal(await store.findMessage("bob", first.messageId), undefined);
    assert.equal(await store.findMessage("alice", "none"), undefined);
  });

  test("unfinished() lists the tasks left SUBMITTED or WORKING", async (store) => {
    await put(store, "alice", makeTask("s", { state: "TASK_STATE_SUBMITTED" }));
    await put(store, "alice", makeTask("w", { state: "TASK_STATE_WORKING" }));
    await put(store, "bob", makeTask("i", { state: "TASK_STATE_INPUT_REQUIRED", contextId: "b" }));
    await put(store, "bob", makeTask("c", { state: "TASK_STATE_COMPLETED", contextId: "b" }));
    const list = async () => (await store.unfinished!()).map((r) => r.task.id).sort();
    assert.deepEqual(await list(), ["s", "w"]);
    const done = makeTask("w", { state: "TASK_STATE_COMPLETED", at: 1 });
    await putStatus(store, "alice", done, 2);
    assert.deepEqual(await list(), ["s"]);
  });
}

// ---------------------------------------------------------------------------------------------
// KvTaskStore: large values, a task in pieces, atomic commits and what dead commits leave.

async function openKv(): Promise<KvTaskStore> {
  return new KvTaskStore(await Deno.openKv(":memory:"));
}

/** Reads a property of a real database, with its methods bound (they need their own `this`). */
function forward(target: object, prop: string | symbol): unknown {
  const value = Reflect.get(target, prop, target);
  return typeof value === "function" ? value.bind(target) : value;
}

/** A view of a database that counts the entries its reads return. */
function countingKv(kv: Deno.Kv): { kv: Deno.Kv; reads: { n: number } } {
  const reads = { n: 0 };
  const proxy = new Proxy(kv, {
    get(target, prop) {
      if (prop === "get") {
        return async (key: Deno.KvKey) => {
          const entry = await target.get(key);
          if (entry.versionstamp !== null) reads.n++;
          return entry;
        };
      }
      if (prop === "getMany") {
        return async (keys: Deno.KvKey[]) => {
          const entries = await target.getMany(keys);
          reads.n += entries.filter((e) => e.versionstamp !== null).length;
          return entries;
        };
      }
      if (prop === "list") {
        return async function* (selector: Deno.KvListSelector, options?: Deno.KvListOptions) {
          for await (const entry of target.list(selector, options)) {
            reads.n++;
            yield entry;
          }
        };
      }
      return forward(target, prop);
    },
  });
  return { kv: proxy, reads };
}

/**
 * A view of a database whose atomic commits fail once `commits` of them went through, as when the
 * process dies there: nothing after that point reaches the database. `close()` does nothing.
 */
function crashingKv(kv: Deno.Kv, commits: number): { kv: Deno.Kv; committed: () => number } {
  let done = 0;
  const proxy = new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") {
        return () => {
          const op = target.atomic();
          const wrapped: Deno.AtomicOperation = new Proxy(op, {
            get(o, p) {
              if (p === "commit") {
                return () => {
                  if (done >= commits) return Promise.reject(new Error("Simulated crash"));
                  done++;
                  return o.commit();
                };
              }
              const v = Reflect.get(o, p, o);
              return typeof v === "function"
                ? (...args: unknown[]) => {
                  v.apply(o, args);
                  return wrapped;
                }
                : v;
            },
          });
          return wrapped;
        };
      }
      if (prop === "close") return () => {};
      return forward(target, prop);
    },
  });
  return { kv: proxy, committed: () => done };
}

/** Every entry of a database as a line of its key and a digest of its value, in key order. */
async function dump(kv: Deno.Kv): Promise<string[]> {
  const out: string[] = [];
  for await (const e of kv.list({ prefix: [] })) {
    const bytes = e.value instanceof Uint8Array ? e.value : new TextEncoder().encode(
      e.value instanceof Deno.KvU64 ? `${e.value.value}n` : JSON.stringify(e.value),
    );
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(bytes)));
    out.push(`${JSON.stringify(e.key)} ${[...digest].join(".")}`);
  }
  return out;
}

/** Keys under a prefix, for the tests that check what the store keeps (the layout's names). */
async function keysUnder(kv: Deno.Kv, prefix: Deno.KvKey): Promise<Deno.KvKey[]> {
  const out: Deno.KvKey[] = [];
  for await (const e of kv.list({ prefix })) out.push(e.key);
  return out;
}

function agentMessage(text: string): Message {
  return { messageId: crypto.randomUUID(), role: "ROLE_AGENT", parts: [{ text }] };
}

function artifactEvent(task: Task, index: number, seq: number, append?: boolean): StreamEvent {
  const update: NonNullable<StreamEvent["artifactUpdate"]> = {
    taskId: task.id,
    contextId: task.contextId,
    artifact: task.artifacts![index]!,
  };
  if (append !== undefined) update.append = append;
  return { seq, artifactUpdate: update };
}

Deno.test("KvTaskStore round-trips 1 MB and 20 MB parts, in the task and in its log", async () => {
  using store = await openKv();
  // Multi-byte characters, so that chunk boundaries fall inside them.
  const oneMb = "é🙂 abc ".repeat(100_000);
  let task = makeTask("big", { state: "TASK_STATE_WORKING", text: oneMb });
  const first: StreamEvent = { seq: 1, task };
  await store.commit({ owner: "alice", task, lastSeq: 1 }, { created: true, event: first });
  assert.deepEqual(await store.get("big"), { owner: "alice", task, lastSeq: 1 });
  task = {
    ...task,
    artifacts: [task.artifacts![0]!, {
      artifactId: "b",
      parts: [{ text: "x".repeat(20_000_000) }],
    }],
  };
  const second = artifactEvent(task, 1, 2);
  await store.commit({ owner: "alice", task, lastSeq: 2 }, {
    event: second,
    artifact: { index: 1, fromPart: 0 },
  });
  const read = await store.get("big");
  assert.equal(read?.task.artifacts?.[1]?.parts[0]?.text?.length, 20_000_000);
  assert.deepEqual(read, { owner: "alice", task, lastSeq: 2 });
  assert.deepEqual(await store.events("big", 0), [first, second]);
  assert.deepEqual(await store.events("big", 1), [second]);
});

Deno.test("KvTaskStore keeps a status message over 64 KiB and drops its copy when the status changes", async () => {
  const kv = await Deno.openKv(":memory:");
  using store = new KvTaskStore(kv);
  const base = makeTask("t1", { state: "TASK_STATE_WORKING" });
  await put(store, "alice", base);
  const message = agentMessage("s".repeat(300_000));
  const asking: Task = {
    ...base,
    status: { state: "TASK_STATE_INPUT_REQUIRED", message, timestamp: base.status.timestamp! },
    history: [message],
  };
  await store.commit({ owner: "alice", task: asking, lastSeq: 2 }, {
    event: statusEvent(asking, 2),
    historyAppended: 1,
  });
  assert.deepEqual(await store.get("t1"), { owner: "alice", task: asking, lastSeq: 2 });
  const done: Task = { ...asking, status: { state: "TASK_STATE_COMPLETED", timestamp: "x" } };
  await putStatus(store, "alice", done, 3);
  assert.deepEqual(await store.get("t1"), { owner: "alice", task: done, lastSeq: 3 });
  assert.deepEqual((await store.events("t1", 1)).map((e) => e.statusUpdate?.status), [
    asking.status,
    done.status,
  ]);
  // What stays in blobs besides the log is the message in the history, not the old status.
  const chunks = Math.ceil(new TextEncoder().encode(JSON.stringify([message])).length / 65_536);
  const blobs = (await keysUnder(kv, ["a2a", "blob", "t1"])).filter((k) => k[3] !== "log");
  assert.equal(blobs.length, chunks);
  assert.deepEqual(await keysUnder(kv, ["a2a", "gc"]), []);
});

Deno.test("KvTaskStore logs an event larger than one atomic operation can hold", async () => {
  using store = await openKv();
  let task = makeTask("t1", { state: "TASK_STATE_WORKING" });
  await put(store, "alice", task);
  // 2 MB in 2000 parts: more than 800 KiB, and more pieces than 1000 mutations.
  const parts = (from: number) =>
    Array.from({ length: 2000 }, (_, i) => ({ text: `${from + i} `.padEnd(1000, "p") }));
  task = { ...task, artifacts: [{ artifactId: "a", name: "first", parts: parts(0) }] };
  const created = artifactEvent(task, 0, 2);
  await store.commit({ owner: "alice", task, lastSeq: 2 }, {
    event: created,
    artifact: { index: 0, fromPart: 0 },
  });
  // An append brings as many again, and the chunk's name.
  const chunk = { artifactId: "a", name: "second", parts: parts(2000) };
  task = {
    ...task,
    artifacts: [{ ...chunk, parts: [...task.artifacts![0]!.parts, ...chunk.parts] }],
  };
  const appended: StreamEvent = {
    seq: 3,
    artifactUpdate: { taskId: "t1", contextId: "ctx", artifact: chunk, append: true },
  };
  await store.commit({ owner: "alice", task, lastSeq: 3 }, {
    event: appended,
    artifact: { index: 0, fromPart: 2000 },
  });
  assert.deepEqual(await store.get("t1"), { owner: "alice", task, lastSeq: 3 });
  assert.deepEqual(await store.events("t1", 1), [created, appended]);
});

Deno.test("KvTaskStore get() with historyLength reads only the messages it returns, of 10,000", async () => {
  const { kv, reads } = countingKv(await Deno.openKv(":memory:"));
  using store = new KvTaskStore(kv);
  // Created with 9,990 messages, more pieces than one atomic operation holds, then ten appends.
  let task: Task = {
    ...makeTask("t1", { state: "TASK_STATE_WORKING", text: "out" }),
    history: Array.from({ length: 9_990 }, (_, i) => userMessage(`m${i}`)),
  };
  await store.commit({ owner: "alice", task, lastSeq: 1 }, {
    created: true,
    event: { seq: 1, task: makeTask("t1") },
  });
  for (let i = 9_990; i < 10_000; i++) {
    task = { ...task, history: [...task.history!, userMessage(`m${i}`)] };
    await store.commit({ owner: "alice", task, lastSeq: 1 }, { historyAppended: 1 });
  }
  reads.n = 0;
  const two = await store.get("t1", { historyLength: 2, artifacts: false });
  assert.deepEqual(two?.task.history, task.history!.slice(-2));
  assert.equal(two?.task.artifacts, undefined);
  assert.equal(reads.n, 3, "the head and two messages");
  // Across the created messages and the appended ones.
  assert.deepEqual(
    (await store.get("t1", { historyLength: 15 }))?.task.history,
    task.history!.slice(-15),
  );
  assert.deepEqual((await store.get("t1", { historyLength: 20_000 }))?.task, task);
  reads.n = 0;
  assert.deepEqual(await store.get("t1"), { owner: "alice", task, lastSeq: 1 });
  assert.ok(reads.n > 10_000);
  for (const i of [0, 5_000, 9_995]) {
    const message = task.history![i]!;
    assert.deepEqual(await store.findMessage("alice", message.messageId), {
      taskId: "t1",
      message,
    });
  }
});

Deno.test("KvTaskStore get() with artifacts: false reads no artifact", async () => {
  const { kv, reads } = countingKv(await Deno.openKv(":memory:"));
  using store = new KvTaskStore(kv);
  const task: Task = {
    ...makeTask("t1", { state: "TASK_STATE_WORKING" }),
    artifacts: [1, 2, 3].map((i) => ({
      artifactId: `a${i}`,
      parts: [{ text: "y".repeat(i * 100_000) }],
    })),
    history: [userMessage("hi")],
  };
  await put(store, "alice", task);
  reads.n = 0;
  const { artifacts: _, history: _h, ...bare } = task;
  assert.deepEqual((await store.get("t1", { artifacts: false, historyLength: 0 }))?.task, bare);
  assert.equal(reads.n, 1, "the head only");
  assert.deepEqual((await store.get("t1"))?.task, task);
});

Deno.test("KvTaskStore appends to and replaces artifacts, keeping no old part", async () => {
  const kv = await Deno.openKv(":memory:");
  using store = new KvTaskStore(kv);
  let task = makeTask("t1", { state: "TASK_STATE_WORKING" });
  await put(store, "alice", task);
  let seq = 1;
  const write = async (artifact: Artifact, append: boolean) => {
    const artifacts = [...task.artifacts ?? []];
    let index = artifacts.findIndex((a) => a.artifactId === artifact.artifactId);
    let fromPart = 0;
    if (index < 0) index = artifacts.push(artifact) - 1;
    else if (!append) artifacts[index] = artifact;
    else {
      fromPart = artifacts[index]!.parts.length;
      artifacts[index] = {
        ...artifacts[index]!,
        ...artifact,
        parts: [...artifacts[index]!.parts, ...artifact.parts],
      };
    }
    task = { ...task, artifacts };
    seq++;
    await store.commit({ owner: "alice", task, lastSeq: seq }, {
      event: { seq, artifactUpdate: { taskId: "t1", contextId: "ctx", artifact, append } },
      artifact: { index, fromPart },
    });
    assert.deepEqual(await store.get("t1"), { owner: "alice", task, lastSeq: seq });
  };
  // "a" grows by appends, one of them a blob, and takes each chunk's name; "b" is one part.
  await write({ artifactId: "a", name: "a0", parts: [{ text: "one " }] }, false);
  await write({ artifactId: "b", parts: [{ text: "b" }] }, false);
  await write({ artifactId: "a", name: "a1", parts: [{ text: "z".repeat(200_000) }] }, true);
  await write({ artifactId: "a", parts: [{ text: "three" }, { data: "AAEC" }] }, true);
  assert.equal(task.artifacts![0]!.parts.length, 4);
  assert.equal(task.artifacts![0]!.name, "a1");
  // "c" has a head too large for the store to keep in memory: each append reads it again.
  const note = "n".repeat(10_000);
  await write({ artifactId: "c", metadata: { note }, parts: [{ text: "c0" }] }, false);
  await write({ artifactId: "c", metadata: { note, n: 1 }, parts: [{ text: "c1" }] }, true);
  await write({ artifactId: "c", parts: [{ text: "c2" }] }, true);
  assert.deepEqual(task.artifacts![2], {
    artifactId: "c",
    metadata: { note, n: 1 },
    parts: [{ text: "c0" }, { text: "c1" }, { text: "c2" }],
  });
  // Replacing two: "a" had several slots and a blob, "b" a single small slot.
  await write({ artifactId: "a", parts: [{ text: "new a" }] }, false);
  await write({ artifactId: "b", metadata: { v: 2 }, parts: [{ text: "new b" }] }, false);
  assert.deepEqual(task.artifacts!.slice(0, 2).map((a) => a.parts), [
    [{ text: "new a" }],
    [{ text: "new b" }],
  ]);
  // The log keeps every chunk; the task keeps one part slot for "a" and "b", three for "c", no blob.
  assert.equal((await store.events("t1", 0)).length, seq);
  assert.equal((await keysUnder(kv, ["a2a", "part", "t1"])).length, 5);
  assert.deepEqual((await keysUnder(kv, ["a2a", "blob", "t1"])).filter((k) => k[3] !== "log"), []);
  assert.deepEqual(await keysUnder(kv, ["a2a", "gc"]), []);
});

Deno.test("KvTaskStore lets only one of two writers log a seq", async () => {
  // Two stores on one database, each reading the head before the other commits. (Two
  // connections to one file would also do, but SQLite answers the second "database is locked".)
  const kv = await Deno.openKv(":memory:");
  using a = new KvTaskStore(kv);
  using b = new KvTaskStore(crashingKv(kv, Infinity).kv);
  await put(a, "alice", makeTask("t1", { state: "TASK_STATE_WORKING" }));
  const tasks = [
    makeTask("t1", { state: "TASK_STATE_COMPLETED", at: 1, text: "from a" }),
    makeTask("t1", { state: "TASK_STATE_FAILED", at: 2, text: "from b" }),
  ];
  const results = await Promise.allSettled(
    [a, b].map((store, i) =>
      store.commit({ owner: "alice", task: tasks[i]!, lastSeq: 2 }, {
        event: artifactEvent(tasks[i]!, 0, 2),
        artifact: { index: 0, fromPart: 0 },
      })
    ),
  );
  const won = results.findIndex((r) => r.status === "fulfilled");
  assert.ok(won >= 0);
  const lost = results[1 - won]!;
  assert.ok(lost.status === "rejected" && lost.reason instanceof InternalError);
  assert.match(lost.reason.message, /^Cannot log event 2 of task t1: it is logged/);
  assert.deepEqual(await b.get("t1"), { owner: "alice", task: tasks[won], lastSeq: 2 });
  assert.deepEqual(await a.events("t1", 1), [artifactEvent(tasks[won]!, 0, 2)]);
  assert.deepEqual(await ids(a, "alice", { status: tasks[won]!.status.state }), ["t1"]);
  // Each store keeps the head it wrote last; the other's commits make it stale, and then it is
  // read again: an append goes on after the other's, and an old seq stays refused.
  const [winner, loser] = won === 0 ? [a, b] : [b, a];
  const grown = { ...tasks[won]!, artifacts: [{ artifactId: "a", parts: [{ text: "x" }] }] };
  await loser.commit({ owner: "alice", task: grown, lastSeq: 3 }, {
    event: artifactEvent(grown, 0, 3),
    artifact: { index: 0, fromPart: 0 },
  });
  const more = {
    ...grown,
    artifacts: [{ artifactId: "a", parts: [{ text: "x" }, { text: "y" }] }],
  };
  await winner.commit({ owner: "alice", task: more, lastSeq: 4 }, {
    event: artifactEvent(more, 0, 4, true),
    artifact: { index: 0, fromPart: 1 },
  });
  await assert.rejects(
    () => loser.commit({ owner: "alice", task: more, lastSeq: 4 }, { event: statusEvent(more, 4) }),
    /Cannot log event 4 of task t1: it is logged/,
  );
  assert.deepEqual(await a.get("t1"), { owner: "alice", task: more, lastSeq: 4 });
  assert.deepEqual((await b.events("t1", 0)).map((e) => e.seq), [1, 2, 3, 4]);
});

Deno.test("KvTaskStore commit() refuses a state older than the stored one, changing nothing", async () => {
  // A follow-up decided before a cancel and committed after it carries the state before it.
  const kv = await Deno.openKv(":memory:");
  using store = new KvTaskStore(kv);
  const asking = makeTask("t1", { state: "TASK_STATE_INPUT_REQUIRED" });
  await put(store, "alice", asking);
  const canceled = makeTask("t1", { state: "TASK_STATE_CANCELED", at: 1 });
  await putStatus(store, "alice", canceled, 2);
  const late = { ...asking, history: [userMessage("late")] };
  // Through this store, which remembers seq 2, and through one that reads it.
  using reader = new KvTaskStore(crashingKv(kv, Infinity).kv);
  for (const writer of [store, reader]) {
    await assert.rejects(
      () => writer.commit({ owner: "alice", task: late, lastSeq: 1 }, { historyAppended: 1 }),
      (err: Error) =>
        err instanceof InternalError &&
        /^Cannot store task t1: its state at seq 1 is older than the stored one at seq 2/
          .test(err.message),
    );
  }
  assert.deepEqual(await store.get("t1"), { owner: "alice", task: canceled, lastSeq: 2 });
  assert.equal((await store.events("t1", 0)).length, 2);
});

Deno.test("KvTaskStore get() never mixes the pieces of two versions of a task", async () => {
  using store = await openKv();
  // Twelve artifacts, more than one getMany reads with the head, each a blob of about 70 KB.
  const count = 12;
  const text = (version: number, i: number) =>
    `${version}:` + String.fromCharCode(97 + version % 26).repeat(70_000 + i);
  const at = (version: number): Task => {
    const artifacts = Array.from({ length: count }, (_, i) => {
      let v = version;
      while (v > 0 && v % count !== i) v--;
      return { artifactId: `a${i}`, parts: [{ text: text(v, i) }] };
    });
    return { ...makeTask("t1", { state: "TASK_STATE_WORKING", at: version }), artifacts };
  };
  await store.commit({ owner: "alice", task: at(0), lastSeq: 1 }, {
    created: true,
    event: { seq: 1, task: makeTask("t1") },
  });
  let writing = true;
  const writer = (async () => {
    for (let v = 1; v <= 40; v++) {
      const task = at(v);
      await store.commit({ owner: "alice", task, lastSeq: v + 1 }, {
        event: artifactEvent(task, v % count, v + 1),
        artifact: { index: v % count, fromPart: 0 },
      });
    }
    writing = false;
  })();
  let reads = 0;
  while (writing) {
    const read = (await store.get("t1"))!;
    const version = Date.parse(read.task.status.timestamp!) - BASE;
    assert.equal(read.lastSeq, version + 1);
    assert.deepEqual(read.task, at(version));
    reads++;
  }
  await writer;
  assert.ok(reads > 0);
});

Deno.test("KvTaskStore unfinished() sweeps what a commit that died before its final operation staged", async () => {
  // The change: a status with a 1 MB message, whose blobs take several operations before the last.
  const base = makeTask("t1", { state: "TASK_STATE_WORKING" });
  const message = agentMessage("m".repeat(1_000_000));
  const next: Task = {
    ...base,
    status: { state: "TASK_STATE_INPUT_REQUIRED", message, timestamp: "2025-01-02" },
    history: [message],
  };
  const change = { event: statusEvent(next, 2), historyAppended: 1 };
  let total: number;
  {
    const kv = await Deno.openKv(":memory:");
    using store = new KvTaskStore(kv);
    const counter = crashingKv(kv, Infinity);
    await put(store, "alice", base);
    using counted = new KvTaskStore(counter.kv);
    await counted.commit({ owner: "alice", task: next, lastSeq: 2 }, change);
    total = counter.committed();
  }
  assert.ok(total >= 3, `${total} operations`);
  for (let crashAt = 0; crashAt < total; crashAt++) {
    const kv = await Deno.openKv(":memory:");
    using store = new KvTaskStore(kv);
    await put(store, "alice", base);
    const clean = await dump(kv);
    using dying = new KvTaskStore(crashingKv(kv, crashAt).kv);
    await assert.rejects(
      () => dying.commit({ owner: "alice", task: next, lastSeq: 2 }, change),
      /Simulated crash/,
    );
    // Nothing of the commit is visible, but what it staged is stored.
    assert.deepEqual(await store.get("t1"), { owner: "alice", task: base, lastSeq: 1 });
    assert.deepEqual(await store.events("t1", 1), []);
    if (crashAt > 0) assert.notDeepEqual(await dump(kv), clean);
    assert.deepEqual((await store.unfinished()).map((r) => r.task.id), ["t1"]);
    assert.deepEqual(await dump(kv), clean, `after a crash at operation ${crashAt + 1}`);
    await store.commit({ owner: "alice", task: next, lastSeq: 2 }, change);
    assert.deepEqual(await store.get("t1"), { owner: "alice", task: next, lastSeq: 2 });
  }
});

Deno.test("KvTaskStore unfinished() sweeps the old parts a commit died before deleting", async () => {
  const kv = await Deno.openKv(":memory:");
  using store = new KvTaskStore(kv);
  const parts = Array.from({ length: 3 }, (_, i) => ({ text: `${i}`.repeat(100_000) }));
  let task: Task = {
    ...makeTask("t1", { state: "TASK_STATE_WORKING" }),
    artifacts: [{ artifactId: "a", parts }],
  };
  await put(store, "alice", task);
  task = { ...task, artifacts: [{ artifactId: "a", parts: [{ text: "small" }] }] };
  // The replacing commit goes through; the process dies before deleting the old parts.
  using dying = new KvTaskStore(crashingKv(kv, 1).kv);
  await dying.commit({ owner: "alice", task, lastSeq: 2 }, {
    event: artifactEvent(task, 0, 2),
    artifact: { index: 0, fromPart: 0 },
  });
  assert.deepEqual(await store.get("t1"), { owner: "alice", task, lastSeq: 2 });
  const blobs = async () =>
    (await keysUnder(kv, ["a2a", "blob", "t1"])).filter((k) => k[3] !== "log").length;
  assert.ok(await blobs() > 0);
  assert.equal((await keysUnder(kv, ["a2a", "gc"])).length, 1);
  await store.unfinished();
  assert.equal(await blobs(), 0);
  assert.equal((await keysUnder(kv, ["a2a", "part", "t1"])).length, 1);
  assert.deepEqual(await keysUnder(kv, ["a2a", "gc"]), []);
  assert.deepEqual(await store.get("t1"), { owner: "alice", task, lastSeq: 2 });
});

Deno.test("KvTaskStore commit() refuses what Deno KV cannot hold with InternalError, changing nothing", async () => {
  using store = await openKv();
  const task = makeTask("t1", { state: "TASK_STATE_WORKING" });
  await put(store, "alice", task);
  const refused = async (owner: string, next: Task, message: RegExp) => {
    await assert.rejects(
      () => store.commit({ owner, task: next, lastSeq: 2 }, { event: statusEvent(next, 2) }),
      (err: Error) => {
        assert.ok(err instanceof InternalError);
        assert.match(err.message, message);
        return true;
      },
    );
    assert.deepEqual(await store.get("t1"), { owner: "alice", task, lastSeq: 1 });
    assert.equal((await store.events("t1", 0)).length, 1);
  };
  await refused(
    "o".repeat(3000),
    task,
    /^Cannot store task t1: a key of \d+ bytes exceeds the 2048 bytes Deno KV allows/,
  );
  await refused(
    "alice",
    { ...task, contextId: "c".repeat(70_000) },
    /^Cannot store task t1: its head of \d+ bytes .* exceeds the 65536 bytes/,
  );
});

Deno.test("KvTaskStore close() closes the database and can be called twice", async () => {
  const store = await openKv();
  await put(store, "alice", makeTask("t1"));
  store.close();
  store.close();
  await assert.rejects(() => store.get("t1"));
});

Deno.test("KvTaskStore.open() reopens a database file with its tasks, large values and logs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/tasks.db`;
    let task = makeTask("t1", { state: "TASK_STATE_WORKING" });
    const logged: StreamEvent[] = [{ seq: 1, task }];
    {
      using store = await KvTaskStore.open(path);
      await put(store, "alice", task);
      // An artifact of 2 MB by appends of 500 KB.
      for (let i = 0; i < 4; i++) {
        const chunk = { artifactId: "a", parts: [{ text: `${i}`.repeat(500_000) }] };
        const before = task.artifacts?.[0]?.parts ?? [];
        task = { ...task, artifacts: [{ ...chunk, parts: [...before, ...chunk.parts] }] };
        const event: StreamEvent = {
          seq: i + 2,
          artifactUpdate: { taskId: "t1", contextId: "ctx", artifact: chunk, append: i > 0 },
        };
        await store.commit({ owner: "alice", task, lastSeq: i + 2 }, {
          event,
          artifact: { index: 0, fromPart: before.length },
        });
        logged.push(event);
      }
      task = { ...task, status: { state: "TASK_STATE_COMPLETED", timestamp: "2025-02-01" } };
      await putStatus(store, "alice", task, 6);
      logged.push(statusEvent(task, 6));
    }
    using store = await KvTaskStore.open(path);
    assert.deepEqual(await store.get("t1"), { owner: "alice", task, lastSeq: 6 });
    assert.deepEqual(await store.events("t1", 0), logged);
    assert.deepEqual(await ids(store, "alice"), ["t1"]);
    assert.deepEqual(await store.unfinished(), []);
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
    commit: (r, c) => inner.commit(r, c),
    events: (id, after) => inner.events(id, after),
    list: (owner, q) => inner.list(owner, q),
    putPushConfig: (r) => inner.putPushConfig(r),
    getPushConfig: (t, id) => inner.getPushConfig(t, id),
    listPushConfigs: (t) => inner.listPushConfigs(t),
    deletePushConfig: (t, id) => inner.deletePushConfig(t, id),
    findMessage: (owner, id) => inner.findMessage(owner, id),
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
