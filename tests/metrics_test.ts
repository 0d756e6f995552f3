// GET /metrics over real sockets: the Prometheus text moves as calls, streams, logins and limits
// happen on every binding, stays per handler, and can be off or behind a token.

import assert from "node:assert/strict";
import { A2AClient } from "../client.ts";
import { AuthenticationError, QuotaExceededError, TaskNotFoundError } from "../mod.ts";
import { startServer, type TestServer, TOKENS, userMessage, waitFor } from "./helpers.ts";

/** One sample of the exposition text: the value of `name` with exactly these labels. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(",");
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = (m[2] ?? "").split(/,(?=[a-zA-Z_]+=")/).filter((s) => s !== "").sort().join(",");
    if (got === wanted) return Number(m[3]);
  }
  return 0;
}

async function scrape(server: TestServer, headers: HeadersInit = {}): Promise<string> {
  const res = await fetch(`${server.url}/metrics`, {
    headers,
    signal: AbortSignal.timeout(5000),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return await res.text();
}

function rest(server: TestServer, method: string, path: string, body?: unknown, token?: string) {
  return fetch(`${server.url}/a2a/rest${path}`, {
    method,
    headers: {
      "content-type": "application/json",
      "a2a-version": "1.0",
      authorization: `Bearer ${token ?? TOKENS.alice}`,
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(5000),
  });
}

Deno.test("GET /metrics is not served when metrics are off, the default", async () => {
  await using server = startServer();
  const res = await fetch(`${server.url}/metrics`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 404);
  await res.body?.cancel();
});

Deno.test("calls are counted by binding, operation and result code, with a latency histogram", async () => {
  await using server = startServer({ metrics: true });
  const before = await scrape(server);
  assert.equal(
    sample(before, "a2a_calls_total", { binding: "capnweb", operation: "SendMessage", code: "0" }),
    0,
  );

  await using capnweb = await A2AClient.connect(server.url, { token: TOKENS.alice });
  const { task } = await capnweb.sendMessage({ message: userMessage("counted") });
  await assert.rejects(capnweb.getTask({ id: "no-such-task" }), TaskNotFoundError);
  await using jsonrpc = await A2AClient.connect(server.url, {
    token: TOKENS.alice,
    transport: "jsonrpc",
  });
  await jsonrpc.getTask({ id: task!.id });
  await jsonrpc.listTasks({});
  const res = await rest(server, "GET", `/tasks/${task!.id}`);
  assert.equal(res.status, 200);
  await res.body?.cancel();

  const text = await scrape(server);
  const calls = (binding: string, operation: string, code: string) =>
    sample(text, "a2a_calls_total", { binding, operation, code });
  assert.equal(calls("capnweb", "SendMessage", "0"), 1);
  assert.equal(calls("capnweb", "GetTask", "-32001"), 1);
  assert.equal(calls("jsonrpc", "GetTask", "0"), 1);
  assert.equal(calls("jsonrpc", "ListTasks", "0"), 1);
  assert.equal(calls("rest", "GetTask", "0"), 1);
  assert.equal(
    sample(text, "a2a_call_duration_seconds_count", {
      binding: "capnweb",
      operation: "SendMessage",
    }),
    1,
  );
  assert.equal(
    sample(text, "a2a_call_duration_seconds_bucket", {
      binding: "capnweb",
      operation: "SendMessage",
      le: "+Inf",
    }),
    1,
  );
  // The demo agent went SUBMITTED → WORKING → COMPLETED, and the store was written and read.
  assert.equal(sample(text, "a2a_task_transitions_total", { state: "TASK_STATE_SUBMITTED" }), 1);
  assert.equal(sample(text, "a2a_task_transitions_total", { state: "TASK_STATE_COMPLETED" }), 1);
  assert.ok(
    sample(text, "a2a_store_operation_duration_seconds_count", {
      operation: "commit",
      result: "ok",
    }) >= 3,
  );
  assert.ok(
    sample(text, "a2a_store_operation_duration_seconds_count", {
      operation: "get",
      result: "ok",
    }) >= 1,
  );
});

Deno.test("connections, sessions and streams are gauged by transport while open, events are counted", async () => {
  await using server = startServer({ metrics: true });
  {
    await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
    let received = 0;
    let during = "";
    for await (const _ of client.sendStreamingMessage({ message: userMessage("slow: a b c") })) {
      if (received++ === 0) during = await scrape(server);
    }
    assert.equal(sample(during, "a2a_connections", { transport: "capnweb_websocket" }), 1);
    assert.equal(sample(during, "a2a_sessions", { transport: "websocket" }), 1);
    assert.equal(sample(during, "a2a_streams_open", { binding: "capnweb" }), 1);
    await waitFor(() => server.handler.stats().subscribers === 0);
    const after = await scrape(server);
    assert.equal(sample(after, "a2a_streams_open", { binding: "capnweb" }), 0);
    assert.equal(
      sample(after, "a2a_stream_events_delivered_total", { binding: "capnweb" }),
      received,
    );
  }
  await server.settled();
  const closed = await scrape(server);
  assert.equal(sample(closed, "a2a_connections", { transport: "capnweb_websocket" }), 0);
  assert.equal(sample(closed, "a2a_sessions", { transport: "websocket" }), 0);

  // An SSE stream of the HTTP+JSON binding counts as a connection of its own transport.
  const res = await rest(server, "POST", "/message:stream", {
    message: userMessage("slow: x y z"),
  });
  assert.equal(res.status, 200);
  const reader = res.body!.getReader();
  await reader.read();
  const open = await scrape(server);
  assert.equal(sample(open, "a2a_connections", { transport: "rest_sse" }), 1);
  assert.equal(sample(open, "a2a_streams_open", { binding: "rest" }), 1);
  await reader.cancel();
  await server.settled();
  const ended = await scrape(server);
  assert.equal(sample(ended, "a2a_connections", { transport: "rest_sse" }), 0);
  assert.ok(sample(ended, "a2a_stream_events_delivered_total", { binding: "rest" }) >= 1);
});

Deno.test("authentication failures are counted by binding and reason, refusals by limit", async () => {
  await using server = startServer({ metrics: true, limits: { maxUnfinishedTasksPerUser: 1 } });
  const noToken = await fetch(`${server.url}/a2a/jsonrpc`, {
    method: "POST",
    headers: { "content-type": "application/json", "a2a-version": "1.0" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ListTasks", params: {} }),
    signal: AbortSignal.timeout(5000),
  });
  assert.equal(noToken.status, 401);
  await noToken.body?.cancel();
  const badRest = await rest(server, "GET", "/tasks", undefined, "wrong-token");
  assert.equal(badRest.status, 401);
  await badRest.body?.cancel();
  const ticket = await fetch(`${server.url}/a2a/auth`, {
    method: "POST",
    headers: { authorization: "Bearer wrong-token" },
    signal: AbortSignal.timeout(5000),
  });
  assert.equal(ticket.status, 401);
  await ticket.body?.cancel();
  await assert.rejects(
    A2AClient.connect(server.url, { token: "wrong-token" }),
    AuthenticationError,
  );

  // The quota of unfinished tasks: an interrupted task holds it, the next new task is refused.
  await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
  const { task } = await client.sendMessage({ message: userMessage("input: your name?") });
  assert.equal(task?.status.state, "TASK_STATE_INPUT_REQUIRED");
  await assert.rejects(
    client.sendMessage({ message: userMessage("one more") }),
    QuotaExceededError,
  );
  await client.cancelTask({ id: task!.id });

  const text = await scrape(server);
  const failures = (binding: string, reason: string) =>
    sample(text, "a2a_auth_failures_total", { binding, reason });
  assert.equal(failures("jsonrpc", "missing_credentials"), 1);
  assert.equal(failures("rest", "invalid_credentials"), 1);
  // Mine, and the client's own ticket request before it gave up.
  assert.ok(failures("ticket", "invalid_credentials") >= 1);
  assert.ok(
    failures("ticket", "invalid_credentials") + failures("capnweb", "invalid_credentials") >= 2,
  );
  assert.equal(sample(text, "a2a_limits_hit_total", { limit: "unfinished_tasks_per_user" }), 1);
  assert.equal(
    sample(text, "a2a_calls_total", {
      binding: "capnweb",
      operation: "SendMessage",
      code: "-31005",
    }),
    1,
  );
});

Deno.test("a metrics token keeps /metrics from requests without it", async () => {
  await using server = startServer({ metrics: { token: "scrape-secret" } });
  for (
    const headers of [{}, { authorization: "Bearer not-it" }, { authorization: "Bearer scrape" }]
  ) {
    const res = await fetch(`${server.url}/metrics`, {
      headers,
      signal: AbortSignal.timeout(5000),
    });
    assert.equal(res.status, 401);
    assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer/);
    await res.body?.cancel();
  }
  const text = await scrape(server, { authorization: "Bearer scrape-secret" });
  assert.match(text, /# TYPE a2a_calls_total counter/);
});

Deno.test("two handlers in one process keep their own metrics", async () => {
  await using one = startServer({ metrics: true });
  await using two = startServer({ metrics: true });
  await using client = await A2AClient.connect(one.url, { token: TOKENS.alice });
  await client.listTasks({});
  const counted = { binding: "capnweb", operation: "ListTasks", code: "0" };
  assert.equal(sample(await scrape(one), "a2a_calls_total", counted), 1);
  assert.equal(sample(await scrape(two), "a2a_calls_total", counted), 0);
});

Deno.test("push callback deliveries are counted", async () => {
  await using server = startServer({ metrics: true });
  await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
  const { task } = await client.sendMessage({
    message: userMessage("input: first"),
  });
  const pushed: number[] = [];
  const done = Promise.withResolvers<void>();
  await client.createTaskPushNotificationConfig({ taskId: task!.id }, (event) => {
    pushed.push(event.seq);
    if (event.statusUpdate?.status.state === "TASK_STATE_COMPLETED") done.resolve();
  });
  await client.sendMessage({ message: userMessage("second", { taskId: task!.id }) });
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    done.promise,
    new Promise((_, reject) => timer = setTimeout(() => reject(new Error("No push in 5 s")), 5000)),
  ]).finally(() => clearTimeout(timer));
  await waitFor(() => server.handler.stats().resources === 1);
  const text = await scrape(server);
  assert.equal(
    sample(text, "a2a_push_deliveries_total", { kind: "callback", outcome: "delivered" }),
    pushed.length,
  );
});
