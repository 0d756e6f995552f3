// The HTTP+JSON binding on the wire: raw HTTP requests against the real server, for what no
// client library shows (paths, status codes, error bodies, query strings, SSE framing and
// resumption).

import assert from "node:assert/strict";
import { demoAgentCard } from "../mod.ts";
import { parseSse, type SseEvent } from "../src/json_http/sse.ts";
import { startServer, type TestServer, TOKENS, userMessage } from "./helpers.ts";

// Bodies read off the wire are checked field by field.
// deno-lint-ignore no-explicit-any
type Json = any;

/** Every request gets this long before it is aborted, so that a regression fails, not hangs. */
const DEADLINE_MS = 10_000;

interface RestOptions {
  /** The JSON body (serialized) or a raw string. */
  body?: unknown;
  headers?: Record<string, string>;
  token?: string | null;
}

function call(
  server: TestServer,
  method: string,
  path: string,
  options: RestOptions = {},
): Promise<Response> {
  const headers: Record<string, string> = { "a2a-version": "1.0" };
  const token = options.token === undefined ? TOKENS.alice : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    headers["content-type"] = "application/a2a+json";
  }
  return fetch(`${server.url}/a2a/rest${path}`, {
    method,
    headers: { ...headers, ...options.headers },
    ...(body !== undefined && { body }),
    signal: AbortSignal.timeout(DEADLINE_MS),
  });
}

async function rest(
  server: TestServer,
  method: string,
  path: string,
  options: RestOptions = {},
): Promise<{ status: number; headers: Headers; body: Json }> {
  const res = await call(server, method, path, options);
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    body: text === "" ? undefined : JSON.parse(text),
  };
}

/** Checks a google.rpc.Status error body and returns its ErrorInfo reason. */
function reasonOf(res: { status: number; body: Json }, status: number, name: string): string {
  assert.equal(res.status, status, JSON.stringify(res.body));
  assert.equal(res.body.error.code, status);
  assert.equal(res.body.error.status, name);
  assert.equal(typeof res.body.error.message, "string");
  const info = res.body.error.details.find((d: Json) =>
    d["@type"] === "type.googleapis.com/google.rpc.ErrorInfo"
  );
  assert.equal(info.domain, "a2a-protocol.org");
  return info.reason;
}

async function events(res: Response): Promise<(SseEvent & { json: Json })[]> {
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  const out = [];
  for await (const e of parseSse(res.body!)) out.push({ ...e, json: JSON.parse(e.data) });
  return out;
}

async function sendTask(server: TestServer, text: string, extra: Json = {}): Promise<Json> {
  const sent = await rest(server, "POST", "/message:send", {
    body: { message: userMessage(text), ...extra },
  });
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  return sent.body.task;
}

Deno.test("the agent card lists the HTTP+JSON interface after JSONRPC", async () => {
  await using server = startServer();
  const res = await fetch(`${server.url}/.well-known/agent-card.json`, {
    signal: AbortSignal.timeout(DEADLINE_MS),
  });
  const card = await res.json();
  assert.deepEqual(card.supportedInterfaces.map((i: Json) => i.protocolBinding).slice(1, 3), [
    "JSONRPC",
    "HTTP+JSON",
  ]);
  assert.equal(card.supportedInterfaces[2].url, `${server.url}/a2a/rest`);
  assert.equal(card.supportedInterfaces[2].protocolVersion, "1.0");
});

Deno.test("POST /message:send answers the completed task as application/a2a+json", async () => {
  await using server = startServer();
  const res = await rest(server, "POST", "/message:send", {
    body: { message: userMessage("hello over rest") },
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "application/a2a+json");
  assert.equal(res.body.task.status.state, "TASK_STATE_COMPLETED");
  const text = res.body.task.artifacts.flatMap((a: Json) => a.parts).map((p: Json) => p.text);
  assert.equal(text.join(""), "hello over rest");
  // application/json is accepted too, with parameters.
  const plain = await rest(server, "POST", "/message:send", {
    body: { message: userMessage("plain json") },
    headers: { "content-type": "application/json; charset=utf-8" },
  });
  assert.equal(plain.status, 200);
});

Deno.test("GET /tasks/{id} takes historyLength from the query, under its JSON or proto name", async () => {
  await using server = startServer();
  const task = await sendTask(server, "remember me");
  const full = await rest(server, "GET", `/tasks/${task.id}`);
  assert.equal(full.status, 200);
  assert.equal(full.body.id, task.id);
  assert.ok(full.body.history.length >= 1);
  for (const name of ["historyLength", "history_length"]) {
    const none = await rest(server, "GET", `/tasks/${task.id}?${name}=0`);
    assert.equal(none.status, 200);
    assert.equal(none.body.history, undefined, name);
  }
  const both = await rest(server, "GET", `/tasks/${task.id}?historyLength=0&history_length=0`);
  assert.equal(reasonOf(both, 400, "INVALID_ARGUMENT"), "INVALID_PARAMS");
  const negative = await rest(server, "GET", `/tasks/${task.id}?historyLength=-1`);
  assert.equal(reasonOf(negative, 400, "INVALID_ARGUMENT"), "INVALID_PARAMS");
  // A2A-Version in the query is a service parameter, not a field.
  const versioned = await rest(server, "GET", `/tasks/${task.id}?A2A-Version=1.0`, {
    headers: { "a2a-version": "" },
  });
  assert.equal(versioned.status, 200, JSON.stringify(versioned.body));
});

Deno.test("GET /tasks filters by query parameters: contextId, status, pageSize, includeArtifacts", async () => {
  await using server = startServer();
  const first = await sendTask(server, "first");
  await sendTask(server, "second");
  const all = await rest(server, "GET", "/tasks");
  assert.equal(all.status, 200);
  assert.equal(all.body.tasks.length, 2);
  const byContext = await rest(server, "GET", `/tasks?context_id=${first.contextId}`);
  assert.deepEqual(byContext.body.tasks.map((t: Json) => t.id), [first.id]);
  const completed = await rest(server, "GET", "/tasks?status=TASK_STATE_COMPLETED&pageSize=1");
  assert.equal(completed.body.tasks.length, 1);
  assert.equal(completed.body.pageSize, 1);
  assert.ok(completed.body.nextPageToken);
  const working = await rest(server, "GET", "/tasks?status=TASK_STATE_WORKING");
  assert.deepEqual(working.body.tasks, []);
  const withArtifacts = await rest(server, "GET", "/tasks?includeArtifacts=true");
  assert.ok(withArtifacts.body.tasks.every((t: Json) => t.artifacts?.length > 0));
  const without = await rest(server, "GET", "/tasks?include_artifacts=false");
  assert.ok(without.body.tasks.every((t: Json) => t.artifacts === undefined));
  for (const query of ["includeArtifacts=yes", "pageSize=1&pageSize=2", "pageSize=500"]) {
    const bad = await rest(server, "GET", `/tasks?${query}`);
    assert.equal(reasonOf(bad, 400, "INVALID_ARGUMENT"), "INVALID_PARAMS", query);
  }
});

Deno.test("an unknown task is 404 NOT_FOUND with a TASK_NOT_FOUND ErrorInfo naming it", async () => {
  await using server = startServer();
  const res = await rest(server, "GET", "/tasks/no-such-task");
  assert.equal(res.headers.get("content-type"), "application/a2a+json");
  assert.deepEqual(res.body, {
    error: {
      code: 404,
      status: "NOT_FOUND",
      message: "Task not found: no-such-task",
      details: [{
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        reason: "TASK_NOT_FOUND",
        domain: "a2a-protocol.org",
        metadata: { taskId: "no-such-task" },
      }],
    },
  });
  // Another user's task is just as unknown.
  const task = await sendTask(server, "alice's");
  const bob = await rest(server, "GET", `/tasks/${task.id}`, { token: TOKENS.bob });
  assert.equal(reasonOf(bob, 404, "NOT_FOUND"), "TASK_NOT_FOUND");
});

Deno.test("without a valid bearer token every operation is 401 UNAUTHENTICATED with a challenge", async () => {
  await using server = startServer();
  const missing = await rest(server, "GET", "/tasks", { token: null });
  assert.equal(reasonOf(missing, 401, "UNAUTHENTICATED"), "UNAUTHENTICATED");
  assert.equal(missing.headers.get("www-authenticate"), 'Bearer realm="a2a"');
  const wrong = await rest(server, "POST", "/message:send", {
    token: "nope",
    body: { message: userMessage("x") },
  });
  assert.equal(reasonOf(wrong, 401, "UNAUTHENTICATED"), "UNAUTHENTICATED");
  assert.equal(
    wrong.headers.get("www-authenticate"),
    'Bearer realm="a2a", error="invalid_token"',
  );
});

Deno.test("invalid requests are 400 INVALID_ARGUMENT: bad JSON, a non-object body, invalid params", async () => {
  await using server = startServer();
  const json = await rest(server, "POST", "/message:send", { body: "{not json" });
  assert.equal(reasonOf(json, 400, "INVALID_ARGUMENT"), "PARSE_ERROR");
  const array = await rest(server, "POST", "/message:send", { body: "[]" });
  assert.equal(reasonOf(array, 400, "INVALID_ARGUMENT"), "INVALID_REQUEST");
  const params = await rest(server, "POST", "/message:send", {
    body: { message: { messageId: "m", role: "ROLE_USER", parts: [] } },
  });
  assert.equal(reasonOf(params, 400, "INVALID_ARGUMENT"), "INVALID_PARAMS");
  const badRequest = params.body.error.details.find((d: Json) =>
    d["@type"] === "type.googleapis.com/google.rpc.BadRequest"
  );
  assert.ok(badRequest.fieldViolations.length > 0);
  const empty = await rest(server, "POST", "/message:send", { body: "" });
  assert.equal(reasonOf(empty, 400, "INVALID_ARGUMENT"), "INVALID_PARAMS");
});

Deno.test("A2A-Version and A2A-Extensions are checked as on JSON-RPC: 400 FAILED_PRECONDITION", async () => {
  const uri = "https://example.com/ext/required/v1";
  await using server = startServer({
    agentCard: {
      ...demoAgentCard,
      capabilities: { ...demoAgentCard.capabilities, extensions: [{ uri, required: true }] },
    },
  });
  const ext = { "a2a-extensions": uri };
  const none = await rest(server, "GET", "/tasks", { headers: { "a2a-version": "", ...ext } });
  assert.equal(reasonOf(none, 400, "FAILED_PRECONDITION"), "VERSION_NOT_SUPPORTED");
  assert.match(none.body.error.message, /0\.3/);
  const two = await rest(server, "GET", "/tasks", { headers: { "a2a-version": "2.0", ...ext } });
  assert.equal(reasonOf(two, 400, "FAILED_PRECONDITION"), "VERSION_NOT_SUPPORTED");
  const patch = await rest(server, "GET", "/tasks", {
    headers: { "a2a-version": "1.0.3", ...ext },
  });
  assert.equal(patch.status, 200);
  const missing = await rest(server, "GET", "/tasks");
  assert.equal(reasonOf(missing, 400, "FAILED_PRECONDITION"), "EXTENSION_SUPPORT_REQUIRED");
});

Deno.test("HTTP-level refusals: 404 unknown path, 405 wrong method, 413 too large, 415 media type", async () => {
  await using server = startServer({ limits: { maxMessageBytes: 1024 } });
  for (const path of ["/nope", "/tasks/x:explode", "/", "", "/message:send/extra"]) {
    const unknown = await rest(server, "POST", path, { token: null });
    assert.equal(reasonOf(unknown, 404, "NOT_FOUND"), "METHOD_NOT_FOUND", path);
    assert.match(unknown.body.error.message, /no HTTP\+JSON operation/);
  }
  const method = await rest(server, "GET", "/message:send");
  assert.equal(reasonOf(method, 405, "UNIMPLEMENTED"), "INVALID_REQUEST");
  assert.equal(method.headers.get("allow"), "POST, OPTIONS");
  const del = await rest(server, "PUT", "/tasks/t/pushNotificationConfigs/c");
  assert.equal(del.status, 405);
  assert.equal(del.headers.get("allow"), "GET, DELETE, OPTIONS");
  const big = await rest(server, "POST", "/message:send", {
    body: { message: userMessage("x".repeat(2000)) },
  });
  assert.equal(reasonOf(big, 413, "INVALID_ARGUMENT"), "INVALID_REQUEST");
  const text = await rest(server, "POST", "/message:send", {
    body: { message: userMessage("x") },
    headers: { "content-type": "text/plain" },
  });
  assert.equal(reasonOf(text, 415, "INVALID_ARGUMENT"), "CONTENT_TYPE_NOT_SUPPORTED");
  assert.equal(text.headers.get("accept-post"), "application/json, application/a2a+json");
  // A body must say what it is; a POST without a body needs no Content-Type.
  const untyped = await fetch(`${server.url}/a2a/rest/message:send`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKENS.alice}`, "a2a-version": "1.0" },
    body: new TextEncoder().encode(JSON.stringify({ message: userMessage("x") })),
    signal: AbortSignal.timeout(DEADLINE_MS),
  });
  assert.equal(untyped.status, 415);
  await untyped.body?.cancel();
});

Deno.test("POST /tasks/{id}:cancel cancels a running task; a finished one is 400 TASK_NOT_CANCELABLE", async () => {
  await using server = startServer();
  const task = await sendTask(server, "slow: one two three four five six", {
    configuration: { returnImmediately: true },
  });
  assert.notEqual(task.status.state, "TASK_STATE_COMPLETED");
  // No body and no Content-Type, as the official SDK sends it.
  const canceled = await rest(server, "POST", `/tasks/${task.id}:cancel`);
  assert.equal(canceled.status, 200, JSON.stringify(canceled.body));
  assert.equal(canceled.body.status.state, "TASK_STATE_CANCELED");
  const again = await rest(server, "POST", `/tasks/${task.id}:cancel`, { body: {} });
  assert.equal(reasonOf(again, 400, "FAILED_PRECONDITION"), "TASK_NOT_CANCELABLE");
  assert.equal(again.body.error.details[0].metadata.taskId, task.id);
});

Deno.test("POST /message:stream sends StreamResponse events whose SSE ids are the task's seqs", async () => {
  await using server = startServer();
  const res = await call(server, "POST", "/message:stream", {
    body: { message: userMessage("count the rest events") },
  });
  assert.equal(res.headers.get("cache-control"), "no-cache");
  const all = await events(res);
  assert.ok(all.length >= 4);
  all.forEach((e, i) => {
    assert.equal(e.id, String(i + 1));
    assert.equal(e.event, "message");
    assert.equal(e.json.jsonrpc, undefined);
    assert.equal(e.json.seq, undefined);
  });
  assert.ok(all[0]!.json.task);
  assert.equal(all.at(-1)!.json.statusUpdate.status.state, "TASK_STATE_COMPLETED");
});

Deno.test("/tasks/{id}:subscribe with Last-Event-ID replays exactly the events after it, by GET or POST", async () => {
  await using server = startServer();
  const all = await events(
    await call(server, "POST", "/message:stream", { body: { message: userMessage("resume") } }),
  );
  const taskId = all[0]!.json.task.id;
  for (const method of ["GET", "POST"]) {
    const resumed = await events(
      await call(server, method, `/tasks/${taskId}:subscribe`, {
        headers: { "last-event-id": "2" },
      }),
    );
    assert.deepEqual(resumed.map((e) => e.id), all.slice(2).map((e) => e.id), method);
    assert.deepEqual(resumed.map((e) => e.json), all.slice(2).map((e) => e.json), method);
  }
  const bad = await rest(server, "GET", `/tasks/${taskId}:subscribe`, {
    headers: { "last-event-id": "abc" },
  });
  assert.equal(reasonOf(bad, 400, "INVALID_ARGUMENT"), "INVALID_PARAMS");
  // Without Last-Event-ID a finished task cannot be subscribed to; the error is a plain answer.
  const done = await rest(server, "POST", `/tasks/${taskId}:subscribe`);
  assert.equal(done.headers.get("content-type"), "application/a2a+json");
  assert.equal(reasonOf(done, 400, "FAILED_PRECONDITION"), "UNSUPPORTED_OPERATION");
  const unknown = await rest(server, "GET", "/tasks/nope:subscribe");
  assert.equal(reasonOf(unknown, 404, "NOT_FOUND"), "TASK_NOT_FOUND");
});

Deno.test("subscribing to a running task gets a snapshot, then live events to completion", async () => {
  await using server = startServer();
  const task = await sendTask(server, "slow: a b c", {
    configuration: { returnImmediately: true },
  });
  const live = await events(await call(server, "GET", `/tasks/${task.id}:subscribe`));
  assert.equal(live[0]!.json.task.id, task.id);
  assert.equal(live.at(-1)!.json.statusUpdate.status.state, "TASK_STATE_COMPLETED");
  const ids = live.map((e) => Number(e.id));
  assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
});

Deno.test("an event over maxEventBytes ends the stream with an error event naming the limit", async () => {
  await using server = startServer({ limits: { maxEventBytes: 600 } });
  const res = await call(server, "POST", "/message:stream", {
    body: { message: userMessage("x".repeat(700)) },
  });
  const all = await events(res);
  const last = all.at(-1)!;
  assert.equal(last.event, "error");
  assert.equal(last.id, undefined);
  assert.equal(last.json.error.code, 500);
  assert.equal(last.json.error.status, "INTERNAL");
  assert.match(last.json.error.message, /larger than the 600-byte limit/);
});

Deno.test("an idle REST stream gets keep-alive comments, and a client that leaves releases it", async () => {
  await using server = startServer({ limits: { sseKeepAliveMs: 20 } });
  const res = await call(server, "POST", "/message:stream", {
    body: { message: userMessage("slow: one two three four five six seven") },
  });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!/^: keep-alive$/m.test(text)) {
    const { value, done } = await reader.read();
    assert.ok(!done, "the stream ended before a keep-alive");
    text += decoder.decode(value, { stream: true });
  }
  assert.equal(server.handler.stats().subscribers, 1);
  await reader.cancel();
  await server.settled();
});

Deno.test("shutting down ends a REST subscription to a paused task with a 503 UNAVAILABLE error event", async () => {
  const server = startServer();
  const task = await sendTask(server, "input: name?");
  assert.equal(task.status.state, "TASK_STATE_INPUT_REQUIRED");
  const res = await call(server, "GET", `/tasks/${task.id}:subscribe`);
  const seen: (SseEvent & { json: Json })[] = [];
  let stopping: Promise<void> | undefined;
  for await (const e of parseSse(res.body!)) {
    seen.push({ ...e, json: JSON.parse(e.data) });
    if (seen.length === 1) stopping = server.shutdown();
  }
  await stopping;
  assert.equal(seen[0]!.json.task.id, task.id);
  const last = seen.at(-1)!;
  assert.equal(last.event, "error");
  assert.equal(last.json.error.code, 503);
  assert.equal(last.json.error.status, "UNAVAILABLE");
  assert.equal(last.json.error.details[0].reason, "UNAVAILABLE");
});

Deno.test("push notification configs: create, get, list and delete under /tasks/{taskId}", async () => {
  // No DNS here: example.com resolves to a public documentation address.
  await using server = startServer({
    push: { resolveHost: () => Promise.resolve(["93.184.215.14"]) },
  });
  const task = await sendTask(server, "push target");
  const base = `/tasks/${task.id}/pushNotificationConfigs`;
  // The path names the task; the body need not.
  const created = await rest(server, "POST", base, {
    body: { url: "https://example.com/hook", token: "secret" },
  });
  assert.equal(created.status, 200, JSON.stringify(created.body));
  assert.equal(created.body.taskId, task.id);
  const id = created.body.id;
  assert.ok(id);
  const got = await rest(server, "GET", `${base}/${id}`);
  assert.equal(got.body.url, "https://example.com/hook");
  const list = await rest(server, "GET", `${base}?pageSize=10`);
  assert.deepEqual(list.body.configs.map((c: Json) => c.id), [id]);
  const deleted = await rest(server, "DELETE", `${base}/${id}`);
  assert.equal(deleted.status, 204);
  assert.equal(deleted.body, undefined);
  assert.deepEqual((await rest(server, "GET", base)).body.configs, []);
  const unknown = await rest(server, "GET", "/tasks/nope/pushNotificationConfigs");
  assert.equal(reasonOf(unknown, 404, "NOT_FOUND"), "TASK_NOT_FOUND");
});

Deno.test("push operations are 400 PUSH_NOTIFICATION_NOT_SUPPORTED when the card has no push", async () => {
  await using server = startServer({
    agentCard: {
      ...demoAgentCard,
      capabilities: { ...demoAgentCard.capabilities, pushNotifications: false },
    },
  });
  const res = await rest(server, "GET", "/tasks/t/pushNotificationConfigs/c");
  assert.equal(reasonOf(res, 400, "FAILED_PRECONDITION"), "PUSH_NOTIFICATION_NOT_SUPPORTED");
});

Deno.test("GET /extendedAgentCard answers the extended card, or 400 when none is configured", async () => {
  {
    await using server = startServer();
    const res = await rest(server, "GET", "/extendedAgentCard");
    assert.equal(res.status, 200);
    assert.equal(res.body.description, "extended");
    assert.ok(res.body.supportedInterfaces.some((i: Json) => i.protocolBinding === "HTTP+JSON"));
  }
  {
    await using server = startServer({ noExtendedCard: true });
    const res = await rest(server, "GET", "/extendedAgentCard");
    assert.equal(
      reasonOf(res, 400, "FAILED_PRECONDITION"),
      "EXTENDED_AGENT_CARD_NOT_CONFIGURED",
    );
  }
});

Deno.test("a trailing slash reaches the same operation, and the proto's /{tenant} prefix is served", async () => {
  await using server = startServer();
  const task = await sendTask(server, "slash");
  const slash = await rest(server, "GET", `/tasks/${task.id}/`);
  assert.equal(slash.status, 200);
  assert.equal(slash.body.id, task.id);
  const list = await rest(server, "GET", "/tasks/");
  assert.equal(list.body.tasks.length, 1);
  const tenant = await rest(server, "GET", `/acme/tasks/${task.id}`);
  assert.equal(tenant.status, 200);
  assert.equal(tenant.body.id, task.id);
  const sent = await rest(server, "POST", "/acme%20corp/message:send", {
    body: { message: userMessage("tenant") },
  });
  assert.equal(sent.body.task.status.state, "TASK_STATE_COMPLETED");
  // The primary template wins: /tasks/tasks is the task named "tasks", not tenant "tasks".
  const ambiguous = await rest(server, "GET", "/tasks/tasks");
  assert.equal(reasonOf(ambiguous, 404, "NOT_FOUND"), "TASK_NOT_FOUND");
  // A path field is percent-decoded, and a colon in it must be encoded.
  const encoded = await rest(server, "GET", `/tasks/${encodeURIComponent("a:b")}`);
  assert.equal(reasonOf(encoded, 404, "NOT_FOUND"), "TASK_NOT_FOUND");
  assert.equal(encoded.body.error.details[0].metadata.taskId, "a:b");
});

Deno.test("proto field names work in REST bodies; the path's field wins over the body's", async () => {
  await using server = startServer();
  const sent = await rest(server, "POST", "/message:send", {
    body: {
      message: { message_id: crypto.randomUUID(), role: "ROLE_USER", parts: [{ text: "snake" }] },
      configuration: { history_length: 0 },
    },
  });
  assert.equal(sent.status, 200, JSON.stringify(sent.body));
  assert.equal(sent.body.task.history, undefined);
  const task = await sendTask(server, "slow: a b c d e f", {
    configuration: { returnImmediately: true },
  });
  const canceled = await rest(server, "POST", `/tasks/${task.id}:cancel`, {
    body: { id: "some-other-task" },
  });
  assert.equal(canceled.body.id, task.id);
  assert.equal(canceled.body.status.state, "TASK_STATE_CANCELED");
});

Deno.test("a stream over the per-address connection limit is 429 RESOURCE_EXHAUSTED with Retry-After", async () => {
  await using server = startServer({ limits: { maxConnectionsPerAddress: 1 } });
  const first = await call(server, "POST", "/message:stream", {
    body: { message: userMessage("slow: a b c d e") },
  });
  const reader = first.body!.getReader();
  await reader.read();
  const second = await rest(server, "POST", "/message:stream", {
    body: { message: userMessage("refused") },
  });
  assert.equal(reasonOf(second, 429, "RESOURCE_EXHAUSTED"), "QUOTA_EXCEEDED");
  assert.equal(second.headers.get("retry-after"), "1");
  // Plain calls are not long-lived connections: they are still served.
  assert.equal((await rest(server, "GET", "/tasks")).status, 200);
  await reader.cancel();
});
