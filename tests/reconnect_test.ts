// Reconnection that keeps going: a half-open connection is noticed with the default liveness
// settings and left for a fresh one, and the client keeps trying until the server is back.

import assert from "node:assert/strict";
import { A2AClient, type ConnectionState } from "../client.ts";
import { startServer, TOKENS, waitFor } from "./helpers.ts";
import { TcpProxy } from "./tcp_proxy.ts";

/** A backoff so small that many attempts fail in little time. */
const TINY_BACKOFF = { initialDelayMs: 1, maxDelayMs: 5 };

Deno.test("a client whose connection goes half-open notices it by default and its next call succeeds", async () => {
  // The server's heartbeat ends its side of the blackholed connection, so the leak check passes.
  await using server = startServer({ limits: { idleTimeoutSeconds: 1 } });
  await using proxy = new TcpProxy(server.addr);
  const states: { state: ConnectionState; attempt?: number }[] = [];
  await using client = await A2AClient.connect(proxy.url, {
    token: TOKENS.alice,
    onStateChange: (state, { attempt }) => states.push({ state, ...(attempt && { attempt }) }),
  });
  await client.listTasks({});
  const before = proxy.accepted;
  // Every connection open now, the WebSocket and any pooled HTTP connection, goes silent.
  proxy.blackhole();
  // A read on the dead connection waits for the ping to fail, then runs again once reconnected.
  const { tasks } = await client.listTasks({});
  assert.deepEqual(tasks, []);
  assert.equal(client.state, "open");
  assert.ok(proxy.accepted > before, "the client opened a new connection");
  // Had the ticket request gone over a pooled (blackholed) connection, the first attempt would
  // have timed out and a second one been needed.
  const reconnecting = states.filter((s) => s.state === "reconnecting");
  assert.deepEqual(reconnecting, [{ state: "reconnecting", attempt: 1 }], JSON.stringify(states));
  assert.equal(states.at(-1)?.state, "open");
  await client.close();
  await waitFor(
    () => server.handler.stats().sessions === server.baseline.sessions,
    () => JSON.stringify(server.handler.stats()),
    10_000,
  );
});

Deno.test("a client keeps reconnecting past ten failed attempts until the server is reachable", async () => {
  await using server = startServer();
  await using proxy = new TcpProxy(server.addr);
  let attempts = 0;
  await using client = await A2AClient.connect(proxy.url, {
    token: TOKENS.alice,
    reconnect: TINY_BACKOFF,
    onStateChange: (state, { attempt }) => {
      if (state === "reconnecting") attempts = attempt ?? attempts;
    },
  });
  proxy.refusing = true;
  await proxy.cut();
  await waitFor(() => attempts > 25, () => `${attempts} attempts, ${client.state}`, 10_000);
  assert.equal(client.state, "reconnecting");
  proxy.refusing = false;
  const { tasks } = await client.listTasks({});
  assert.deepEqual(tasks, []);
  assert.equal(client.state, "open");
  assert.ok(attempts > 25, `${attempts} attempts`);
});

Deno.test("a client gives up and closes once reconnect.maxAttempts attempts failed", async () => {
  await using server = startServer();
  await using proxy = new TcpProxy(server.addr);
  const states: ConnectionState[] = [];
  await using client = await A2AClient.connect(proxy.url, {
    token: TOKENS.alice,
    reconnect: { ...TINY_BACKOFF, maxAttempts: 3 },
    onStateChange: (state) => states.push(state),
  });
  proxy.refusing = true;
  await proxy.cut();
  await waitFor(() => client.state === "closed", () => states.join(), 10_000);
  assert.equal(states.filter((s) => s === "reconnecting").length, 3);
  await assert.rejects(client.listTasks({}), { name: "ConnectionLostError" });
});

Deno.test("a client gives up and closes once reconnect.budgetMs has passed", async () => {
  await using server = startServer();
  await using proxy = new TcpProxy(server.addr);
  const states: ConnectionState[] = [];
  await using client = await A2AClient.connect(proxy.url, {
    token: TOKENS.alice,
    reconnect: { ...TINY_BACKOFF, budgetMs: 200 },
    onStateChange: (state) => states.push(state),
  });
  proxy.refusing = true;
  await proxy.cut();
  await waitFor(() => client.state === "closed", () => states.join(), 10_000);
  assert.ok(states.includes("reconnecting"), states.join());
  await assert.rejects(client.listTasks({}), { name: "ConnectionLostError" });
});
