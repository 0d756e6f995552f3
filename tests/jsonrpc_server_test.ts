// The JSON-RPC binding on the wire: raw HTTP requests against the real server, for what no
// client library shows (status codes, headers, envelope errors, SSE framing and resumption).

import assert from "node:assert/strict";
import { demoAgentCard, StaticTokenVerifier } from "../mod.ts";
import { parseSse } from "../src/json_http/sse.ts";
import { startServer, type TestServer, TOKENS, userMessage } from "./helpers.ts";

// Bodies read off the wire are checked field by field.
// deno-lint-ignore no-explicit-any
type Json = any;

interface RpcOptions {
  headers?: Record<string, string>;
  body?: string;
  query?: string;
}

function post(server: TestServer, payload: unknown, options: RpcOptions = {}): Promise<Response> {
  return fetch(`${server.url}/a2a/jsonrpc${options.query ?? ""}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${TOKENS.alice}`,
      "a2a-version": "1.0",
      ...options.headers,
    },
    body: options.body ?? JSON.stringify(payload),
  });
}

async function rpc(
  server: TestServer,
  method: string,
  params?: unknown,
  options: RpcOptions = {},
): Promise<{ status: number; body: Json }> {
  const res = await post(server, { jsonrpc: "2.0", id: 7, method, params }, options);
  return { status: res.status, body: await res.json() };
}

async function sse(res: Response): Promise<{ id: string | undefined; data: Json }[]> {
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  const out = [];
  for await (const e of parseSse(res.body!)) out.push({ id: e.id, data: JSON.parse(e.data) });
  return out;
}

Deno.test("POST /a2a/jsonrpc without a bearer token answers 401 with a challenge and -31001", async () => {
  await using server = startServer();
  const missing = await post(server, {}, { headers: { authorization: "" } });
  assert.equal(missing.status, 401);
  assert.equal(missing.headers.get("www-authenticate"), 'Bearer realm="a2a"');
  const body = await missing.json();
  assert.equal(body.jsonrpc, "2.0");
  assert.equal(body.id, null);
  assert.equal(body.error.code, -31001);
  assert.equal(body.error.data[0].reason, "UNAUTHENTICATED");

  const wrong = await post(server, {}, { headers: { authorization: "Bearer nope" } });
  assert.equal(wrong.status, 401);
  assert.match(wrong.headers.get("www-authenticate")!, /error="invalid_token"/);
  assert.equal((await wrong.json()).error.code, -31001);
});

Deno.test("a failing token verifier gives -32603 without leaking its message", async () => {
  await using server = startServer({
    verifier: {
      verify() {
        throw new Error("database password is hunter2");
      },
    },
  });
  const res = await post(server, { jsonrpc: "2.0", id: 1, method: "GetTask" });
  assert.equal(res.status, 500);
  const text = await res.text();
  assert.doesNotMatch(text, /hunter2/);
  assert.equal(JSON.parse(text).error.code, -32603);
});

Deno.test("A2A-Version: none means 0.3 (-32009), 1.0 and 1.0.x are served, the query parameter works", async () => {
  await using server = startServer();
  const none = await rpc(server, "ListTasks", {}, { headers: { "a2a-version": "" } });
  assert.equal(none.status, 200);
  assert.equal(none.body.id, 7);
  assert.equal(none.body.error.code, -32009);
  assert.match(none.body.error.message, /0\.3/);
  assert.equal(
    (await rpc(server, "ListTasks", {}, { headers: { "a2a-version": "2.0" } })).body
      .error.code,
    -32009,
  );
  assert.ok(
    (await rpc(server, "ListTasks", {}, { headers: { "a2a-version": "1.0.3" } })).body
      .result,
  );
  const query = await rpc(server, "ListTasks", {}, {
    headers: { "a2a-version": "" },
    query: "?A2A-Version=1.0",
  });
  assert.ok(query.body.result, JSON.stringify(query.body));
});

Deno.test("A2A-Extensions must name the extensions the card requires (-32008)", async () => {
  const uri = "https://example.com/ext/required/v1";
  await using server = startServer({
    agentCard: {
      ...demoAgentCard,
      capabilities: { ...demoAgentCard.capabilities, extensions: [{ uri, required: true }] },
    },
  });
  assert.equal((await rpc(server, "ListTasks", {})).body.error.code, -32008);
  const ok = await rpc(server, "ListTasks", {}, {
    headers: { "a2a-extensions": `https://example.com/other, ${uri}` },
  });
  assert.ok(ok.body.result, JSON.stringify(ok.body));
});

Deno.test("envelope errors: -32700, -32600 (batch, version, id, method), -32601, -32602", async () => {
  await using server = startServer();
  const code = async (body: string) => {
    const res = await post(server, undefined, { body });
    assert.equal(res.status, 200);
    const json = await res.json();
    assert.equal(json.jsonrpc, "2.0");
    return [json.id, json.error?.code];
  };
  assert.deepEqual(await code("{not json"), [null, -32700]);
  assert.deepEqual(await code("[]"), [null, -32600]);
  assert.deepEqual(
    await code(JSON.stringify([{ jsonrpc: "2.0", id: 1, method: "ListTasks" }])),
    [null, -32600],
  );
  assert.deepEqual(await code('"hello"'), [null, -32600]);
  assert.deepEqual(await code(JSON.stringify({ jsonrpc: "1.0", id: 1, method: "ListTasks" })), [
    1,
    -32600,
  ]);
  assert.deepEqual(await code(JSON.stringify({ jsonrpc: "2.0", id: {}, method: "ListTasks" })), [
    null,
    -32600,
  ]);
  assert.deepEqual(await code(JSON.stringify({ jsonrpc: "2.0", id: "a", method: 3 })), [
    "a",
    -32600,
  ]);
  assert.deepEqual(await code(JSON.stringify({ jsonrpc: "2.0", id: 2, method: "message/send" })), [
    2,
    -32601,
  ]);
  assert.deepEqual(
    await code(JSON.stringify({ jsonrpc: "2.0", id: 3, method: "GetTask", params: ["x"] })),
    [3, -32602],
  );
  const bad = await rpc(server, "SendMessage", { message: { messageId: "m", parts: [] } });
  assert.equal(bad.body.error.code, -32602);
  const badRequest = bad.body.error.data.find((d: { "@type": string }) =>
    d["@type"] === "type.googleapis.com/google.rpc.BadRequest"
  );
  assert.ok(badRequest.fieldViolations.length > 0);
});

Deno.test("HTTP-level refusals: 405 for GET, 415 for text/plain, 413 over the size limit", async () => {
  await using server = startServer({ limits: { maxMessageBytes: 1024 } });
  const get = await fetch(`${server.url}/a2a/jsonrpc`);
  assert.equal(get.status, 405);
  assert.equal(get.headers.get("allow"), "POST, OPTIONS");
  await get.body?.cancel();
  const text = await post(server, {}, { headers: { "content-type": "text/plain" } });
  assert.equal(text.status, 415);
  assert.equal((await text.json()).error.code, -32005);
  const big = await rpc(server, "SendMessage", { message: userMessage("x".repeat(2000)) });
  assert.equal(big.status, 413);
  assert.equal(big.body.error.code, -32600);
  const a2aJson = await post(server, { jsonrpc: "2.0", id: 1, method: "ListTasks" }, {
    headers: { "content-type": "application/a2a+json; charset=utf-8" },
  });
  assert.ok((await a2aJson.json()).result);
});

Deno.test("a notification (no id) runs the method and answers 204 without a body", async () => {
  await using server = startServer();
  const res = await post(server, {
    jsonrpc: "2.0",
    method: "SendMessage",
    params: { message: userMessage("fire and forget") },
  });
  assert.equal(res.status, 204);
  assert.equal(await res.text(), "");
  const list = await rpc(server, "ListTasks", {});
  assert.equal(list.body.result.tasks.length, 1);
});

Deno.test("GetExtendedAgentCard takes no params; push methods answer -32003 when the card has no push", async () => {
  await using server = startServer({
    agentCard: {
      ...demoAgentCard,
      capabilities: { ...demoAgentCard.capabilities, pushNotifications: false },
    },
  });
  const res = await post(server, { jsonrpc: "2.0", id: "c", method: "GetExtendedAgentCard" });
  const body = await res.json();
  assert.equal(body.id, "c");
  assert.equal(body.result.description, "extended");
  for (const method of ["GetTaskPushNotificationConfig", "DeleteTaskPushNotificationConfig"]) {
    const push = await rpc(server, method, { taskId: "t", id: "c" });
    assert.equal(push.body.error.code, -32003);
  }
});

Deno.test("DeleteTaskPushNotificationConfig answers {} (google.protobuf.Empty)", async () => {
  // No DNS here: example.com resolves to a public documentation address.
  await using server = startServer({
    push: { resolveHost: () => Promise.resolve(["93.184.215.14"]) },
  });
  const sent = await rpc(server, "SendMessage", { message: userMessage("push target") });
  const taskId = sent.body.result.task.id;
  const created = await rpc(server, "CreateTaskPushNotificationConfig", {
    taskId,
    url: "https://93.184.216.34/hook",
  });
  assert.equal(created.body.result.taskId, taskId);
  const deleted = await rpc(server, "DeleteTaskPushNotificationConfig", {
    taskId,
    id: created.body.result.id,
  });
  assert.deepEqual(deleted.body, { jsonrpc: "2.0", id: 7, result: {} });
});

Deno.test("SendStreamingMessage streams JSON-RPC responses whose SSE ids are the task's seqs", async () => {
  await using server = startServer();
  const res = await post(server, {
    jsonrpc: "2.0",
    id: "s",
    method: "SendStreamingMessage",
    params: { message: userMessage("count the events") },
  });
  assert.equal(res.headers.get("cache-control"), "no-cache");
  const events = await sse(res);
  assert.ok(events.length >= 4);
  events.forEach((e, i) => {
    assert.equal(e.id, String(i + 1));
    assert.equal(e.data.jsonrpc, "2.0");
    assert.equal(e.data.id, "s");
    assert.equal(e.data.result.seq, undefined);
  });
  assert.ok(events[0]!.data.result.task);
  assert.equal(events.at(-1)!.data.result.statusUpdate.status.state, "TASK_STATE_COMPLETED");
});

Deno.test("SubscribeToTask with Last-Event-ID replays exactly the events after it", async () => {
  await using server = startServer();
  const all = await sse(
    await post(server, {
      jsonrpc: "2.0",
      id: 1,
      method: "SendStreamingMessage",
      params: { message: userMessage("resume me later") },
    }),
  );
  const taskId = all[0]!.data.result.task.id;
  const resumed = await sse(
    await post(
      server,
      { jsonrpc: "2.0", id: 2, method: "SubscribeToTask", params: { id: taskId } },
      {
        headers: { "last-event-id": "2" },
      },
    ),
  );
  assert.deepEqual(resumed.map((e) => e.id), all.slice(2).map((e) => e.id));
  assert.deepEqual(resumed.map((e) => e.data.result), all.slice(2).map((e) => e.data.result));
  const bad = await rpc(server, "SubscribeToTask", { id: taskId }, {
    headers: { "last-event-id": "abc" },
  });
  assert.equal(bad.body.error.code, -32602);
  // Without Last-Event-ID a finished task cannot be subscribed to; the error is plain JSON.
  const done = await post(server, {
    jsonrpc: "2.0",
    id: 3,
    method: "SubscribeToTask",
    params: { id: taskId },
  });
  assert.equal(done.headers.get("content-type"), "application/json");
  assert.equal((await done.json()).error.code, -32004);
});

Deno.test("an idle SSE stream gets keep-alive comments at the configured interval", async () => {
  await using server = startServer({ limits: { sseKeepAliveMs: 40 } });
  const res = await post(server, {
    jsonrpc: "2.0",
    id: 1,
    method: "SendStreamingMessage",
    params: { message: userMessage("slow: one two three") },
  });
  const text = await res.text();
  assert.match(text, /^: keep-alive$/m);
  // Comments do not disturb the events.
  const events = await sse(
    new Response(text, { headers: { "content-type": "text/event-stream" } }),
  );
  assert.equal(events.at(-1)!.data.result.statusUpdate.status.state, "TASK_STATE_COMPLETED");
});

Deno.test("a client that disconnects mid-stream releases its subscription", async () => {
  await using server = startServer({ limits: { sseKeepAliveMs: 20 } });
  const res = await post(server, {
    jsonrpc: "2.0",
    id: 1,
    method: "SendStreamingMessage",
    params: { message: userMessage("slow: one two three four five six seven") },
  });
  const reader = res.body!.getReader();
  await reader.read();
  assert.equal(server.handler.stats().subscribers, 1);
  await reader.cancel();
  await server.settled();
});

Deno.test("shutting down fails a running task and ends its SSE stream with that status", async () => {
  const server = startServer();
  const res = await post(server, {
    jsonrpc: "2.0",
    id: 1,
    method: "SendStreamingMessage",
    params: { message: userMessage("slow: one two three four five six seven") },
  });
  const events: { id: string | undefined; data: Json }[] = [];
  let stopping: Promise<void> | undefined;
  for await (const e of parseSse(res.body!)) {
    events.push({ id: e.id, data: JSON.parse(e.data) });
    if (events.length === 2) stopping = server.shutdown();
  }
  await stopping;
  const last = events.at(-1)!;
  assert.equal(last.data.result.statusUpdate.status.state, "TASK_STATE_FAILED");
  assert.match(JSON.stringify(last.data.result.statusUpdate.status.message), /shut down/);
  const ids = events.map((e) => Number(e.id));
  assert.deepEqual(ids, ids.map((_, i) => i + 1));
});

Deno.test("shutting down ends an SSE subscription to a paused task with -31003", async () => {
  const server = startServer();
  const sent = await post(server, {
    jsonrpc: "2.0",
    id: 1,
    method: "SendMessage",
    params: { message: userMessage("input: name?") },
  });
  const task = (await sent.json()).result.task;
  assert.equal(task.status.state, "TASK_STATE_INPUT_REQUIRED");
  const res = await post(server, {
    jsonrpc: "2.0",
    id: 2,
    method: "SubscribeToTask",
    params: { id: task.id },
  });
  const events: { id: string | undefined; data: Json }[] = [];
  let stopping: Promise<void> | undefined;
  for await (const e of parseSse(res.body!)) {
    events.push({ id: e.id, data: JSON.parse(e.data) });
    if (events.length === 1) stopping = server.shutdown();
  }
  await stopping;
  assert.equal(events[0]?.data.result.task.id, task.id);
  const last = events.at(-1)!;
  assert.equal(last.id, undefined);
  assert.equal(last.data.error.code, -31003);
  assert.match(last.data.error.message, /shutting down/);
});

Deno.test("the JSON-RPC handler works without a network: createHandler() answers a Request", async () => {
  const { createHandler } = await import("../server.ts");
  const handler = createHandler({
    agentCard: demoAgentCard,
    executor: { async execute() {} },
    verifier: StaticTokenVerifier.fromList("alice=t"),
  });
  try {
    const res = await handler(
      new Request("http://localhost/a2a/jsonrpc", {
        method: "POST",
        headers: {
          authorization: "Bearer t",
          "content-type": "application/json",
          "a2a-version": "1.0",
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ListTasks" }),
      }),
    );
    assert.deepEqual((await res.json()).result.tasks, []);
    await handler.close();
    const late = await handler(
      new Request("http://localhost/a2a/jsonrpc", {
        method: "POST",
        headers: { authorization: "Bearer t", "content-type": "application/json" },
        body: "{}",
      }),
    );
    assert.equal(late.status, 503);
    assert.equal((await late.json()).error.code, -31003);
  } finally {
    await handler.close();
  }
});

Deno.test("a request nested 100,000 levels deep gets -32602 naming the limit, and others are served", async () => {
  await using server = startServer();
  const depth = 100_000;
  const deep = `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
  const message = JSON.stringify(userMessage("deep")).slice(0, -1) + `,"metadata":${deep}}`;
  const body = `{"jsonrpc":"2.0","id":7,"method":"SendMessage","params":{"message":${message}}}`;
  const [deepRes, healthy] = await Promise.all([
    post(server, undefined, { body }).then(async (r) => ({
      status: r.status,
      body: await r.json(),
    })),
    rpc(server, "SendMessage", { message: userMessage("healthy") }),
  ]);
  assert.equal(deepRes.status, 200);
  assert.equal(deepRes.body.error.code, -32602);
  assert.match(deepRes.body.error.message, /nested deeper than 64 levels/);
  assert.equal(healthy.body.result.task.status.state, "TASK_STATE_COMPLETED");
});

Deno.test("a trailing slash reaches the same endpoint: /a2a/jsonrpc/ and the card path", async () => {
  await using server = startServer();
  const res = await fetch(`${server.url}/a2a/jsonrpc/`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${TOKENS.alice}`,
      "a2a-version": "1.0",
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 7,
      method: "SendMessage",
      params: { message: userMessage("slash") },
    }),
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.id, 7);
  assert.equal(body.result.task.status.state, "TASK_STATE_COMPLETED");
  const card = await fetch(`${server.url}/.well-known/agent-card.json/`);
  assert.equal(card.status, 200);
  assert.equal((await card.json()).name, demoAgentCard.name);
  const missing = await fetch(`${server.url}/nope/`);
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
});

Deno.test("proto field names work as the JSON names do, and one field under both names is -32602", async () => {
  await using server = startServer();
  const call = async (method: string, params: unknown) => {
    const res = await fetch(`${server.url}/a2a/jsonrpc`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${TOKENS.alice}`,
        "a2a-version": "1.0",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    });
    return await res.json();
  };
  const contextId = crypto.randomUUID();
  const sent = await call("SendMessage", {
    message: { ...userMessage("snake"), context_id: contextId },
  });
  const taskId = sent.result.task.id;
  assert.equal(sent.result.task.contextId, contextId);
  await call("SendMessage", { message: userMessage("other") });
  // A filter and a limit sent by their proto names take effect.
  const listed = await call("ListTasks", {
    context_id: contextId,
    page_size: 1,
    history_length: 0,
  });
  assert.deepEqual(listed.result.tasks.map((t: { id: string }) => t.id), [taskId]);
  assert.equal(listed.result.tasks[0].history, undefined);
  const got = await call("GetTask", { id: taskId, history_length: 1 });
  assert.equal(got.result.history.length, 1);
  // A push config names its task as task_id.
  const created = await call("CreateTaskPushNotificationConfig", {
    task_id: taskId,
    url: "https://93.184.216.34/hook",
  });
  assert.equal(created.error?.code ?? 0, 0, JSON.stringify(created.error));
  assert.equal(created.result.taskId, taskId);
  const both = await call("GetTask", { id: taskId, historyLength: 1, history_length: 2 });
  assert.equal(both.error.code, -32602);
  assert.match(
    both.error.message,
    /historyLength is sent twice, as history_length and as historyLength/,
  );
});
