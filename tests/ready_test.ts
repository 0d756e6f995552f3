// Readiness over real sockets: /ready is 200 with a reachable store, 503 while the store cannot
// be reached or the server drains for shutdown, and /health stays liveness throughout.

import assert from "node:assert/strict";
import { A2AClient } from "../client.ts";
import { type AgentExecutor, InMemoryTaskStore, KvTaskStore } from "../mod.ts";
import { FaultyStore, STORES } from "./faulty_store.ts";
import { PG_TEST } from "./pg_cluster.ts";
import { startServer, TOKENS, userMessage, waitFor } from "./helpers.ts";

async function get(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, body: await res.json() };
}

/** Polls a URL until it answers `status` (at most 5 s). */
async function poll(url: string, status: number): ReturnType<typeof get> {
  const end = Date.now() + 5000;
  for (;;) {
    const res = await get(url);
    if (res.status === status) return res;
    assert.ok(Date.now() < end, `${url} still answers ${res.status}: ${JSON.stringify(res.body)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test("GET /ready answers 200 with a reachable store, and 503 with a reason when it is not", async () => {
  const store = new FaultyStore(new InMemoryTaskStore());
  await using server = startServer({ store });
  const ready = await get(`${server.url}/ready`);
  assert.equal(ready.status, 200);
  assert.deepEqual(ready.body, { status: "ready" });
  store.unreachable = true;
  // The answer is cached for a second: poll until a fresh check sees the failure.
  const down = await poll(`${server.url}/ready`, 503);
  assert.equal(down.body.status, "unavailable");
  assert.match(String(down.body.reason), /^Store unreachable: connection refused: injected/);
  const health = await get(`${server.url}/health`);
  assert.equal(health.status, 200);
  store.unreachable = false;
  assert.deepEqual((await poll(`${server.url}/ready`, 200)).body, { status: "ready" });
});

Deno.test("GET /ready answers 503 while the server drains for shutdown", async () => {
  const release = Promise.withResolvers<void>();
  const slow: AgentExecutor = {
    async execute(_ctx, events) {
      await events.status("TASK_STATE_WORKING");
      await release.promise;
      await events.status("TASK_STATE_COMPLETED");
    },
  };
  await using server = startServer({ executor: slow });
  await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
  const sent = client.sendMessage({ message: userMessage("hold the drain") });
  await waitFor(() => server.handler.stats().activeTasks === 1);
  const closing = server.handler.close("Test drain", { deadlineMs: 5000 });
  const draining = await get(`${server.url}/ready`);
  assert.equal(draining.status, 503);
  assert.deepEqual(draining.body, { status: "draining", reason: "Server is shutting down" });
  release.resolve();
  await sent;
  await closing;
});

Deno.test("KvTaskStore.ping() answers while open and fails once closed", async () => {
  const store = new KvTaskStore(await Deno.openKv(":memory:"));
  await store.ping();
  store.close();
  await assert.rejects(store.ping(), /closed/);
});

for (const [name, open] of STORES) {
  Deno.test({
    name: `${name}: ping() answers while the store is reachable`,
    ...(name === "PostgreSQL" && PG_TEST),
    async fn() {
      await using test = await open();
      await test.store.ping?.();
    },
  });
}
