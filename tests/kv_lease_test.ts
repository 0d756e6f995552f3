// One process per Deno KV data file: a second opener is refused within about a second, naming
// the holder; a lease left by a process that died lapses; a lost lease stops writes.

import assert from "node:assert/strict";
import { A2AClient } from "../client.ts";
import { KvTaskStore } from "../src/tasks/kv_store.ts";
import { startServerProcess } from "./process.ts";
import { TOKENS, userMessage } from "./helpers.ts";

async function tempDb(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "kv_lease_" });
  return `${dir}/tasks.db`;
}

Deno.test("KvTaskStore.open() refuses a file another store holds, naming the holder, until it is released", async () => {
  const path = await tempDb();
  const first = await KvTaskStore.open(path);
  await assert.rejects(
    KvTaskStore.open(path),
    (e: unknown) =>
      e instanceof Error && e.message.includes(path) &&
      e.message.includes(`process ${Deno.pid}`) && /one process per data file/.test(e.message),
  );
  await first.release();
  const second = await KvTaskStore.open(path);
  await second.release();
  await Deno.remove(path.replace(/\/tasks\.db$/, ""), { recursive: true });
});

Deno.test("KvTaskStore.open() takes over a lease whose holder stopped renewing once it lapses", async () => {
  const path = await tempDb();
  // A holder that died: its lease is in the file, and nobody renews it.
  const kv = await Deno.openKv(path);
  await kv.set(["a2a", "lease"], {
    holder: "dead",
    pid: 999_999,
    hostname: "elsewhere",
    expiresAt: Date.now() + 1500,
    beat: 0,
  });
  kv.close();
  const store = await KvTaskStore.open(path);
  assert.ok(store, "opened after the dead holder's lease lapsed");
  await store.release();
  await Deno.remove(path.replace(/\/tasks\.db$/, ""), { recursive: true });
});

Deno.test("a second server process on the same data file exits with the holder's name while the first serves", async () => {
  const path = await tempDb();
  const first = await startServerProcess(path);
  try {
    const second = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "server.ts", "--port", "0", "--data", path],
      cwd: new URL("..", import.meta.url),
      env: { A2A_TOKENS: `alice=${TOKENS.alice}`, NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    });
    const out = await second.output();
    assert.notEqual(out.code, 0);
    const stderr = new TextDecoder().decode(out.stderr);
    assert.match(stderr, /in use by process \d+/);
    assert.ok(stderr.includes(path), stderr);
    await using client = await A2AClient.connect(first.url, { token: TOKENS.alice });
    const res = await client.sendMessage({ message: userMessage("still serving") });
    assert.equal(res.task?.status.state, "TASK_STATE_COMPLETED");
  } finally {
    await first.kill();
    await Deno.remove(path.replace(/\/tasks\.db$/, ""), { recursive: true });
  }
});
