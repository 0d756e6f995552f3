// One process per Deno KV data file: a second opener is refused within about a second, naming
// the holder; a lease left by a process that died lapses; a lost lease stops writes.

import assert from "node:assert/strict";
import { A2AClient } from "../client.ts";
import { InternalError } from "../src/errors/errors.ts";
import { KvTaskStore } from "../src/tasks/kv_store.ts";
import type { Task } from "../src/types/core.ts";
import { startServerProcess } from "./process.ts";
import { TOKENS, userMessage } from "./helpers.ts";

const LEASE_KEY: Deno.KvKey = ["a2a", "lease"];

async function tempDb(): Promise<{ path: string; [Symbol.asyncDispose](): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "kv_lease_" });
  return {
    path: `${dir}/tasks.db`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Writes another process's lease into the database, as that process would have left it. */
async function writeLease(
  kv: Deno.Kv,
  holder: string,
  expiresAt: number,
  beat = 0,
): Promise<void> {
  await kv.set(LEASE_KEY, { holder, pid: 999_999, hostname: "elsewhere", expiresAt, beat });
}

function completedTask(id: string): Task {
  return {
    id,
    contextId: "ctx",
    status: { state: "TASK_STATE_COMPLETED", timestamp: new Date().toISOString() },
  };
}

Deno.test("KvTaskStore.open() refuses a file another store holds, naming the holder, until it is released", async () => {
  await using db = await tempDb();
  const first = await KvTaskStore.open(db.path);
  await assert.rejects(
    KvTaskStore.open(db.path),
    (e: unknown) =>
      e instanceof Error && e.message.startsWith(`Cannot open ${db.path}: it is in use by `) &&
      e.message.includes(`process ${Deno.pid} on `) && e.message.includes("lease runs until"),
  );
  await first.release();
  const second = await KvTaskStore.open(db.path);
  await second.release();
});

Deno.test("KvTaskStore.open() on :memory: takes no lease", async () => {
  const a = await KvTaskStore.open(":memory:");
  const b = await KvTaskStore.open(":memory:");
  a.close();
  b.close();
});

Deno.test("KvTaskStore.open() rejects a heartbeat too slow for the lease with RangeError", async () => {
  await using db = await tempDb();
  await assert.rejects(
    KvTaskStore.open(db.path, { lease: { leaseMs: 300, beatMs: 200 } }),
    RangeError,
  );
  await assert.rejects(KvTaskStore.open(db.path, { lease: { leaseMs: NaN } }), RangeError);
});

Deno.test("KvTaskStore.open() takes over an expired lease at once", async () => {
  await using db = await tempDb();
  const kv = await Deno.openKv(db.path);
  await writeLease(kv, "dead", Date.now() - 1, 7);
  kv.close();
  const store = await KvTaskStore.open(db.path, { lease: { leaseMs: 300 } });
  await store.release();
});

Deno.test("KvTaskStore.open() takes over a lease whose holder stopped renewing once it lapses", async () => {
  await using db = await tempDb();
  // A holder that died: its lease is in the file, and nobody renews it.
  const kv = await Deno.openKv(db.path);
  await writeLease(kv, "dead", Date.now() + 600);
  kv.close();
  const store = await KvTaskStore.open(db.path, { lease: { leaseMs: 300 } });
  await store.release();
});

Deno.test("KvTaskStore.commit() fails with InternalError once another process took the lease", async () => {
  await using db = await tempDb();
  const store = await KvTaskStore.open(db.path, { lease: { leaseMs: 300 } });
  const task = completedTask("t1");
  await store.commit({ owner: "alice", task, lastSeq: 1 }, {
    created: true,
    event: { seq: 1, task },
  });
  // Another process's lease replaces this one (as after a long freeze of this process).
  const other = await Deno.openKv(db.path);
  await writeLease(other, "other", Date.now() + 60_000);
  let error: unknown;
  for (let i = 0; i < 200 && error === undefined; i++) {
    await new Promise((r) => setTimeout(r, 20));
    const t = completedTask(`t${i + 2}`);
    await store.commit({ owner: "alice", task: t, lastSeq: 1 }, {
      created: true,
      event: { seq: 1, task: t },
    }).catch((e) => error = e);
  }
  assert.ok(error instanceof InternalError, String(error));
  assert.match(error.message, new RegExp(`^Cannot write to .*: this process lost its lease`));
  await store.release();
  // The new holder's lease is left alone.
  assert.equal((await other.get<{ holder: string }>(LEASE_KEY)).value?.holder, "other");
  other.close();
});

Deno.test("a second server process on the same data file exits with the holder's name while the first serves", async () => {
  await using db = await tempDb();
  const first = await startServerProcess(db.path);
  const ac = new AbortController();
  // Bounded: a second process that hangs is killed, and the assertions below fail.
  const timer = setTimeout(() => ac.abort(), 30_000);
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "server.ts", "--port", "0", "--data", db.path],
      cwd: new URL("..", import.meta.url),
      env: { A2A_TOKENS: `alice=${TOKENS.alice}`, NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: ac.signal,
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(ac.signal.aborted, false, "the second process did not exit");
    assert.notEqual(out.code, 0);
    assert.ok(stderr.includes(`Cannot open ${db.path}: it is in use by process `), stderr);
    await using client = await A2AClient.connect(first.url, { token: TOKENS.alice });
    const res = await client.sendMessage({ message: userMessage("still serving") });
    assert.equal(res.task?.status.state, "TASK_STATE_COMPLETED");
    assert.equal((await client.getTask({ id: res.task!.id })).status.state, "TASK_STATE_COMPLETED");
  } finally {
    clearTimeout(timer);
    await first.kill();
  }
});

Deno.test("a server process killed with SIGKILL does not block a restart on its data file", async () => {
  await using db = await tempDb();
  // startServerProcess sets a short lease (A2A_KV_LEASE_MS): the restart waits for it to lapse.
  const first = await startServerProcess(db.path);
  await first.kill();
  const second = await startServerProcess(db.path);
  try {
    await using client = await A2AClient.connect(second.url, { token: TOKENS.alice });
    const res = await client.sendMessage({ message: userMessage("after restart") });
    assert.equal(res.task?.status.state, "TASK_STATE_COMPLETED");
  } finally {
    await second.kill();
  }
});
