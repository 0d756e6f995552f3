// Fuzzing both bindings of a real server: random and mutated JSON-RPC requests and capnweb frames
// must each get a documented answer, or a clean close of their own socket, in bounded time, while
// well-behaved clients keep being served and the server's counts go back to where they started.
// A2A_FUZZ_SEED and A2A_FUZZ_RUNS vary the runs; fast-check prints the seed of a failure.

import { guardCapnwebRejections } from "../src/rpc/rejection_guard.ts";
import assert from "node:assert/strict";
import fc from "fast-check";
import { JSONRPC_METHODS } from "../src/jsonrpc/protocol.ts";
import {
  ANSWER_MS,
  anyJson,
  assertBackToBaseline,
  assertBystandersServed,
  assertClientError,
  assertJsonRpcResponse,
  capCallArb,
  capExprArb,
  capIdArb,
  capMessageArb,
  capnwebValue,
  capSpecialArb,
  clip,
  createKnownTasks,
  deepJson,
  DOCUMENTED_CODES,
  expectedId,
  type Frame,
  frameArb,
  FUZZ_MAX_BYTES,
  fuzzParameters,
  hugeString,
  isFinalEvent,
  type Json,
  jsonRpcIdArb,
  type KnownTasks,
  mutate,
  mutations,
  oddString,
  otherRequestArb,
  plainValue,
  RawCapnwebSocket,
  readSse,
  sendMessageArb,
  startClientBystander,
  startFuzzServer,
  startJsonRpcBystander,
  textMessage,
  words,
} from "./fuzz_helpers.ts";
import { type TestServer, TOKENS } from "./helpers.ts";

// ---------------------------------------------------------------------------------------------
// JSON-RPC

/** One HTTP request to the JSON-RPC endpoint, as the fuzzer built it. */
interface HttpCase {
  method: string;
  headers: Record<string, string>;
  body: string | Uint8Array<ArrayBuffer> | undefined;
  query: string;
}

/** What the answer to an HTTP case must be, as docs/JSONRPC.md's decision table says. */
type Expected =
  | { kind: "http"; status: 401 | 405 | 413 | 415; code: number }
  | { kind: "envelope"; code: number; id: Json }
  | { kind: "call"; code?: number; id: Json; notification: boolean; method: string };

const VALID_TOKENS: ReadonlySet<string> = new Set(Object.values(TOKENS));

function bodyBytes(body: HttpCase["body"]): Uint8Array {
  if (body === undefined) return new Uint8Array();
  return typeof body === "string" ? new TextEncoder().encode(body) : body;
}

/** The A2A version a request asks for: the header, else the query parameter, else none. */
function requestedVersion(c: HttpCase): string {
  const header = c.headers["a2a-version"]?.trim();
  if (header) return header;
  for (const [k, v] of new URLSearchParams(c.query)) {
    if (k.toLowerCase() === "a2a-version" && v.trim() !== "") return v.trim();
  }
  return "";
}

/** `1.0` and `1.0.x` (any number of leading zeros) are served; everything else is not. */
function versionServed(version: string): boolean {
  const m = /^(\d+)\.(\d+)(?:\.\d+)?$/.exec(version);
  return m !== null && Number(m[1]) === 1 && Number(m[2]) === 0;
}

/**
 * Predicts the answer to a request from the decision table: the HTTP checks in order, then the
 * envelope, version and method checks; past those, the call runs.
 */
function predict(c: HttpCase): Expected {
  if (c.method !== "POST") return { kind: "http", status: 405, code: -32600 };
  const auth = /^Bearer\s+(\S+)\s*$/i.exec(c.headers.authorization ?? "");
  if (!auth || !VALID_TOKENS.has(auth[1]!)) return { kind: "http", status: 401, code: -31001 };
  const type = c.headers["content-type"]?.split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json" && type !== "application/a2a+json") {
    return { kind: "http", status: 415, code: -32005 };
  }
  const bytes = bodyBytes(c.body);
  if (bytes.length > FUZZ_MAX_BYTES) return { kind: "http", status: 413, code: -32600 };
  let envelope: Json;
  try {
    envelope = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return { kind: "envelope", code: -32700, id: null };
  }
  if (typeof envelope !== "object" || envelope === null || Array.isArray(envelope)) {
    return { kind: "envelope", code: -32600, id: null };
  }
  const notification = !Object.hasOwn(envelope, "id");
  const id = expectedId(envelope);
  if (!notification && id !== envelope.id) return { kind: "envelope", code: -32600, id: null };
  if (envelope.jsonrpc !== "2.0") return { kind: "envelope", code: -32600, id };
  if (typeof envelope.method !== "string") return { kind: "envelope", code: -32600, id };
  const call = { kind: "call", id, notification, method: envelope.method } as const;
  if (!versionServed(requestedVersion(c))) return { ...call, code: -32009 };
  if (!JSONRPC_METHODS.includes(envelope.method)) return { ...call, code: -32601 };
  const params = envelope.params;
  if (
    params !== undefined && (typeof params !== "object" || params === null || Array.isArray(params))
  ) {
    return { ...call, code: -32602 };
  }
  return call;
}

function describe(c: HttpCase): string {
  const body = c.body === undefined
    ? "(none)"
    : typeof c.body === "string"
    ? clip(c.body, 400)
    : `bytes ${clip([...c.body])}`;
  return `${c.method} ${c.query} ${JSON.stringify(c.headers)} ${body}`;
}

/**
 * Sends one case and checks its answer against the prediction: the status and code of an HTTP
 * refusal, the code of an envelope error, and for a call a JSON-RPC response (or an SSE stream
 * of them) with a result or a documented client error, within {@link ANSWER_MS}.
 *
 * @returns The parsed response body (the events of a stream), for callers that check more.
 */
async function sendAndCheck(url: string, c: HttpCase): Promise<Json> {
  const expected = predict(c);
  const where = describe(c);
  const res = await fetch(`${url}/a2a/jsonrpc${c.query}`, {
    method: c.method,
    headers: c.headers,
    ...(c.body !== undefined && { body: c.body }),
    signal: AbortSignal.timeout(ANSWER_MS),
  });
  const type = res.headers.get("content-type");
  if (res.status === 204) {
    const text = await res.text();
    assert.ok(expected.kind === "call" && expected.notification, `${where}: 204`);
    assert.equal(text, "", `${where}: a 204 with a body`);
    return undefined;
  }
  if (type === "text/event-stream") {
    assert.ok(
      expected.kind === "call" && expected.code === undefined && !expected.notification &&
        (expected.method === "SendStreamingMessage" || expected.method === "SubscribeToTask"),
      `${where}: an unexpected stream`,
    );
    assert.equal(res.status, 200, where);
    const after = Number(c.headers["last-event-id"]);
    const { events } = await readSse(res, {
      id: expected.id,
      mayStayOpen: expected.method === "SubscribeToTask",
      ...(Number.isSafeInteger(after) && after >= 0 && { after }),
    }, where);
    if (expected.method === "SendStreamingMessage") {
      // BINDING.md 9.4: it ends after a terminal or interrupted status, a direct reply or an error.
      const last = events.at(-1);
      assert.ok(
        last !== undefined && (last.error !== undefined || isFinalEvent(last)),
        `${where}: a stream that ended after ${clip(last)}`,
      );
    }
    return events;
  }
  const text = await res.text();
  assert.equal(type, "application/json", `${where}: HTTP ${res.status} ${type} ${clip(text)}`);
  let body: Json;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`${where}: HTTP ${res.status} with a body that is not JSON: ${clip(text)}`);
  }
  if (expected.kind === "http") {
    assert.equal(res.status, expected.status, `${where}: ${clip(text)}`);
    assertJsonRpcResponse(body, null, where);
    assert.equal(body.error?.code, expected.code, `${where}: ${clip(text)}`);
    return body;
  }
  assertJsonRpcResponse(body, expected.id, where);
  if (expected.kind === "envelope" || expected.code !== undefined) {
    assert.equal(res.status, 200, `${where}: ${clip(text)}`);
    assert.equal(body.error?.code, expected.code, `${where}: ${clip(text)}`);
    return body;
  }
  // The call ran: a result, or a documented error; a used-up quota is also HTTP 429.
  const quota = body.error?.code === -31005;
  assert.equal(res.status, quota ? 429 : 200, `${where}: ${clip(text)}`);
  return body;
}

/** A well-formed request with valid headers, as alice. */
function wellFormed(
  method: string,
  params: Json,
  id: Json,
  extraHeaders: Record<string, string> = {},
): HttpCase {
  const envelope: Json = { jsonrpc: "2.0", method, params };
  if (id !== "absent") envelope.id = id;
  return {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${TOKENS.alice}`,
      "a2a-version": "1.0",
      ...extraHeaders,
    },
    body: JSON.stringify(envelope),
    query: "",
  };
}

/**
 * Runs one JSON-RPC property against a fresh server, with both bystanders calling throughout,
 * then checks that they were served and that the server's counts are back to the baseline.
 */
async function fuzzJsonRpc(
  defaultRuns: number,
  property: (server: TestServer, known: KnownTasks) => fc.IAsyncProperty<[Json]>,
): Promise<void> {
  await using server = startFuzzServer();
  const known = await createKnownTasks(server.url);
  const bystanders = [startJsonRpcBystander(server.url), await startClientBystander(server.url)];
  try {
    await fc.assert(property(server, known), fuzzParameters(defaultRuns));
  } finally {
    await assertBystandersServed(...bystanders);
  }
  await assertBackToBaseline(server);
}

Deno.test("JSON-RPC fuzz: mutated SendMessage and SendStreamingMessage requests get documented answers", async () => {
  await fuzzJsonRpc(500, (server, known) =>
    fc.asyncProperty(
      fc.record({
        streaming: fc.boolean(),
        params: sendMessageArb(known),
        mutations,
        id: jsonRpcIdArb,
      }),
      async ({ streaming, params, mutations, id }) => {
        const method = streaming ? "SendStreamingMessage" : "SendMessage";
        const body = await sendAndCheck(
          server.url,
          wellFormed(method, mutate(params, mutations), id),
        );
        // An untouched new message, without push config, must be served.
        const untouched = mutations.length === 0 && params.message.taskId === undefined &&
          params.configuration === undefined && id !== "absent" && expectedId({ id }) === id;
        if (untouched && !streaming) {
          const keys = Object.keys(body.result ?? {});
          assert.ok(
            keys.length === 1 && (keys[0] === "task" || keys[0] === "message"),
            `a valid SendMessage got ${clip(body)}`,
          );
        }
        if (untouched && streaming) {
          assert.ok(Array.isArray(body), `a valid SendStreamingMessage got ${clip(body)}`);
          assert.ok(body.every((e: Json) => e.result !== undefined), clip(body));
        }
      },
    ));
});

Deno.test({
  name: "JSON-RPC fuzz: a data part of any JSON value is accepted",
  fn: async () => {
    await fuzzJsonRpc(40, (server) =>
      fc.asyncProperty(anyJson, async (data) => {
        const message = { ...textMessage("data part"), parts: [{ text: "hi" }, { data }] };
        const body = await sendAndCheck(server.url, wellFormed("SendMessage", { message }, 1));
        assert.ok(body.result?.task, `data ${clip(data)}: ${clip(body)}`);
      }));
  },
});

Deno.test("JSON-RPC fuzz: mutated task, list and push-config requests get documented answers", async () => {
  await fuzzJsonRpc(800, (server, known) =>
    fc.asyncProperty(
      fc.record({
        request: otherRequestArb(known),
        mutations,
        id: jsonRpcIdArb,
        lastEventId: fc.option(
          fc.oneof(
            fc.nat(12).map(String),
            fc.constantFrom("-1", "1.5", "abc", "99999999999999999999", " 2 ", "0x1"),
          ),
          { nil: undefined },
        ),
      }),
      async ({ request, mutations, id, lastEventId }) => {
        const headers: Record<string, string> = lastEventId === undefined
          ? {}
          : { "last-event-id": lastEventId };
        await sendAndCheck(
          server.url,
          wellFormed(request.method, mutate(request.params, mutations), id, headers),
        );
      },
    ));
});

/** Printable header values: fetch refuses anything else before it reaches the server. */
const headerText = fc.stringMatching(/^[\x21-\x7e][\x20-\x7e]{0,30}[\x21-\x7e]$/);

const methodNameArb: fc.Arbitrary<Json> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...JSONRPC_METHODS) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "message/send",
      "message/stream",
      "tasks/get",
      "sendMessage",
      "SendMessage ",
      "",
      "__proto__",
      "constructor",
      "toString",
      "hasOwnProperty",
    ),
  },
  { weight: 1, arbitrary: oddString },
  { weight: 1, arbitrary: anyJson },
);

const envelopeArb: fc.Arbitrary<Json> = fc.record({
  jsonrpc: fc.oneof({ weight: 8, arbitrary: fc.constant("2.0") }, {
    weight: 1,
    arbitrary: fc.oneof(fc.constantFrom("2", "1.0", 2, "absent"), anyJson),
  }),
  id: jsonRpcIdArb,
  method: methodNameArb,
  params: fc.oneof(
    { weight: 3, arbitrary: fc.constant({ message: textMessage("envelope") }) },
    { weight: 2, arbitrary: fc.constant({ id: "nope" }) },
    { weight: 1, arbitrary: fc.constant("absent") },
    { weight: 2, arbitrary: anyJson },
    { weight: 1, arbitrary: deepJson },
  ),
  extra: fc.dictionary(fc.constantFrom("extra", "__proto__", "result", "error"), anyJson, {
    maxKeys: 2,
  }),
}).map(({ jsonrpc, id, method, params, extra }) => {
  const e: Json = {};
  for (const [k, v] of Object.entries(extra)) {
    Object.defineProperty(e, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  if (jsonrpc !== "absent") e.jsonrpc = jsonrpc;
  if (id !== "absent") e.id = id;
  e.method = method;
  if (params !== "absent") e.params = params;
  return e;
});

const bodyArb: fc.Arbitrary<string | Uint8Array<ArrayBuffer> | undefined> = fc.oneof(
  { weight: 8, arbitrary: envelopeArb.map((e) => JSON.stringify(e)) },
  { weight: 2, arbitrary: fc.array(envelopeArb, { maxLength: 3 }).map((a) => JSON.stringify(a)) },
  { weight: 2, arbitrary: anyJson.map((v) => JSON.stringify(v) ?? "") },
  { weight: 1, arbitrary: oddString },
  {
    weight: 2,
    arbitrary: fc.tuple(envelopeArb, fc.nat()).map(([e, n]) => {
      const s = JSON.stringify(e);
      return s.slice(0, n % s.length);
    }),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(envelopeArb, fc.constantFrom("\ufeff", " \n\t", "")).map(([e, pad]) =>
      `${pad}${JSON.stringify(e)}${pad}`
    ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "",
      "null",
      "1e999",
      '{"jsonrpc":"2.0","id":1e999,"method":"GetTask","params":{"id":"x"}}',
      '{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"x","historyLength":1e999}}',
      '{"jsonrpc":"2.0","id":1,"id":2,"method":"GetTask","params":{"id":"x"}}',
      '{"jsonrpc":"2.0","id":1,"method":"ListTasks","params":{"__proto__":{"pageSize":1000}}}',
      `{"jsonrpc":"2.0","id":1,"method":"ListTasks","params":${"[".repeat(30_000)}${
        "]".repeat(30_000)
      }}`,
      `{"jsonrpc":"2.0","id":1,"method":"ListTasks","params":{"a":${'{"a":'.repeat(5000)}1${
        "}".repeat(5000)
      }}}`,
    ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      new Uint8Array([0xff, 0xfe, 0x7b, 0x7d]),
      new Uint8Array([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x3a, 0x31, 0x7d]),
      new Uint8Array([0xed, 0xa0, 0x80]),
    ),
  },
  {
    weight: 1,
    arbitrary: hugeString.map((s) =>
      JSON.stringify({ jsonrpc: "2.0", id: 1, method: "SendMessage", params: { message: s } })
    ),
  },
  { weight: 1, arbitrary: fc.constant(undefined) },
);

const httpCaseArb: fc.Arbitrary<HttpCase> = fc.record({
  method: fc.oneof(
    { weight: 10, arbitrary: fc.constant("POST") },
    { weight: 1, arbitrary: fc.constantFrom("GET", "PUT", "DELETE", "PATCH") },
  ),
  auth: fc.oneof(
    { weight: 10, arbitrary: fc.constant(`Bearer ${TOKENS.alice}`) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "absent",
        "Bearer wrong",
        "Basic YWxpY2U6cHc=",
        "Bearer",
        `bearer ${TOKENS.bob}`,
        `Bearer  ${TOKENS.alice}`,
        `Bearer ${TOKENS.alice} extra`,
        `Bearer ${"x".repeat(5000)}`,
        `Token ${TOKENS.alice}`,
      ),
    },
    { weight: 1, arbitrary: headerText },
  ),
  contentType: fc.oneof(
    { weight: 10, arbitrary: fc.constant("application/json") },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        "application/a2a+json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON",
        "application/json;",
        "absent",
        "text/plain",
        "application/jsonx",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
      ),
    },
    { weight: 1, arbitrary: headerText },
  ),
  version: fc.oneof(
    { weight: 10, arbitrary: fc.constant("1.0") },
    {
      weight: 2,
      arbitrary: fc.constantFrom("absent", "0.3", "1.0.7", "01.00", "1.1", "2.0", "1", "1.0.0.0"),
    },
    { weight: 1, arbitrary: headerText },
  ),
  query: fc.oneof(
    { weight: 10, arbitrary: fc.constant("") },
    { weight: 1, arbitrary: fc.constantFrom("?A2A-Version=1.0", "?a2a-version=0.3", "?x=%ff") },
  ),
  extensions: fc.option(headerText, { nil: undefined, freq: 5 }),
  body: bodyArb,
}).map(({ method, auth, contentType, version, query, extensions, body }) => {
  const headers: Record<string, string> = {};
  if (auth !== "absent") headers.authorization = auth;
  if (contentType !== "absent") headers["content-type"] = contentType;
  if (version !== "absent") headers["a2a-version"] = version;
  if (extensions !== undefined) headers["a2a-extensions"] = extensions;
  return { method, headers, query, body: method === "POST" ? body : undefined };
});

Deno.test("JSON-RPC fuzz: odd envelopes, batches, bodies, headers and HTTP methods get the documented answer", async () => {
  await fuzzJsonRpc(800, (server) =>
    fc.asyncProperty(httpCaseArb, async (c) => {
      await sendAndCheck(server.url, c);
    }));
});

// ---------------------------------------------------------------------------------------------
// capnweb over a raw WebSocket

/** How a fuzzed session starts before its frames. */
type AuthMode = "none" | "token" | "ticket" | "pipelined" | "badToken" | "usedTicket";

const KINDS = new Set(["push", "pull", "resolve", "reject", "release", "abort", "stream", "pipe"]);

/** Unhandled rejections seen while fuzzing capnweb: each one would end a server process. */
const unhandled: string[] = [];
function onUnhandled(e: PromiseRejectionEvent): void {
  // The server's guard against capnweb's stray rejections runs first (installed below before
  // this listener): only a rejection it left alone would have ended the process.
  if (e.defaultPrevented) return;
  e.preventDefault();
  unhandled.push(e.reason instanceof Error ? e.reason.message : clip(e.reason));
}

async function ticketFor(url: string, token: string): Promise<string> {
  const res = await fetch(`${url}/a2a/auth`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(ANSWER_MS),
  });
  assert.equal(res.status, 200);
  return (await res.json()).ticket;
}

/**
 * Starts a session as the mode says.
 *
 * @returns The id the next push takes.
 */
async function begin(ws: RawCapnwebSocket, url: string, mode: AuthMode): Promise<number> {
  const authenticate = (credentials: Json) =>
    ws.send(JSON.stringify([
      "push",
      ["pipeline", 0, ["authenticate"], [credentials, { version: "1.0" }]],
    ]));
  switch (mode) {
    case "none":
      return 1;
    case "pipelined":
      authenticate({ token: TOKENS.alice });
      return 2;
    case "usedTicket":
    case "badToken": {
      let credentials: Json = { token: "not-a-token" };
      if (mode === "usedTicket") {
        const ticket = await ticketFor(url, TOKENS.alice);
        const other = await RawCapnwebSocket.open(url);
        other.send(JSON.stringify(["push", ["pipeline", 0, ["authenticate"], [{ ticket }]]]));
        other.send(JSON.stringify(["pull", 1]));
        await other.until(() => other.answer(1) !== undefined, ANSWER_MS, "first ticket use");
        await other.close();
        credentials = { ticket };
      }
      authenticate(credentials);
      ws.send(JSON.stringify(["pull", 1]));
      await ws.until(() => ws.answer(1) !== undefined, ANSWER_MS, "authenticate");
      const answer = ws.answer(1);
      assert.equal(answer?.[0], "reject", clip(answer));
      assert.equal(answer[2]?.[4]?.code, -31001, clip(answer));
      return 2;
    }
    case "token":
    case "ticket": {
      const credentials = mode === "token"
        ? { token: TOKENS.alice }
        : { ticket: await ticketFor(url, TOKENS.alice) };
      authenticate(credentials);
      ws.send(JSON.stringify(["pull", 1]));
      await ws.until(() => ws.answer(1) !== undefined, ANSWER_MS, "authenticate");
      const answer = ws.answer(1);
      assert.equal(answer?.[0], "resolve", clip(answer));
      return 2;
    }
  }
}

/** A frame as capnweb reads it: its JSON, or undefined when it is not JSON. */
function parsed(frame: Frame): Json {
  try {
    const text = typeof frame.data === "string"
      ? frame.data
      : new TextDecoder("utf-8", { fatal: !frame.binary }).decode(frame.data);
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Whether a message takes the next of the server's export ids, as capnweb reads it. */
function takesId(m: Json): boolean {
  if (!Array.isArray(m)) return false;
  return ((m[0] === "push" || m[0] === "stream") && m.length > 1) || m[0] === "pipe";
}

const ROOT_METHODS = new Set(["ping", "getAgentCard", "authenticate"]);
const CAPABILITY_METHODS = new Set([
  ..."sendMessage sendStreamingMessage getTask listTasks cancelTask subscribeToTask".split(" "),
  ..."createTaskPushNotificationConfig getTaskPushNotificationConfig".split(" "),
  ..."listTaskPushNotificationConfigs deleteTaskPushNotificationConfig".split(" "),
  "getExtendedAgentCard",
]);

/**
 * Whether a capnweb value is plain data, sinks (`["export", id]`) and `undefined` aside: nothing
 * that capnweb itself must resolve (and may fail to) before the call reaches our method.
 */
function isPlainData(value: Json, depth = 0): boolean {
  if (depth > 100) return false;
  if (Array.isArray(value)) {
    if (value.length === 1 && Array.isArray(value[0])) {
      return value[0].every((v: Json) => isPlainData(v, depth + 1));
    }
    return (value[0] === "export" && typeof value[1] === "number" && value.length === 2) ||
      (value[0] === "undefined" && value.length === 1);
  }
  if (typeof value !== "object" || value === null) return true;
  return Object.values(value).every((v) => isPlainData(v, depth + 1));
}

/**
 * Whether a message calls a method of this module's objects with plain arguments: a method of the
 * root (import 0) or of the capability (import 1, when the session authenticated first). Its
 * answer comes from our code, not from capnweb's handling of a protocol mistake.
 */
function callsOurMethod(m: Json, capability: boolean): boolean {
  if (!takesId(m) || m[0] === "pipe") return false;
  const [kind, target, path, args] = Array.isArray(m[1]) ? m[1] : [];
  if (
    kind !== "pipeline" || !Array.isArray(path) || path.length !== 1 || !Array.isArray(args) ||
    !args.every((a) => isPlainData(a))
  ) {
    return false;
  }
  return (target === 0 && ROOT_METHODS.has(path[0])) ||
    (target === 1 && capability && CAPABILITY_METHODS.has(path[0]));
}

/** The code in an `error` expression's props, when it has one. */
function codeOf(expr: Json): unknown {
  return Array.isArray(expr) && expr[0] === "error" ? expr[4]?.code : undefined;
}

/**
 * Checks what the server sent on a fuzzed session: capnweb messages only, errors with documented
 * codes, and never -32603 for a call of one of this module's methods, whatever its arguments.
 * capnweb's answers to the client's protocol mistakes (aborts, calls on pipes or through missing
 * members, pulls of stubs) are -32600, as a property below checks.
 *
 * @param ours The ids of the calls of this module's methods.
 */
function checkServerMessages(ws: RawCapnwebSocket, ours: ReadonlySet<number>, where: string): void {
  assert.deepEqual(ws.garbage, [], `${where}: frames that are not capnweb messages`);
  for (const m of ws.messages) {
    assert.ok(Array.isArray(m) && KINDS.has(m[0]), `${where}: server sent ${clip(m)}`);
    if (m[0] !== "reject" && m[0] !== "abort") continue;
    const expr = m[0] === "reject" ? m[2] : m[1];
    assert.equal(expr?.[0], "error", `${where}: ${clip(m)}`);
    const code = codeOf(expr);
    assert.ok(
      typeof code === "number" && DOCUMENTED_CODES.has(code),
      `${where}: undocumented code in ${clip(m)}`,
    );
    if (m[0] === "reject" && ours.has(m[1])) {
      const props = plainValue(expr[4]);
      assertClientError({ code, message: expr[2], data: props.data }, `${where}: ${clip(m)}`);
    }
  }
}

/** A frame's text, as far as it is text. */
function textOf(frame: Frame): string {
  return typeof frame.data === "string" ? frame.data : new TextDecoder().decode(frame.data);
}

/** Whether a frame is a text frame whose bytes are not UTF-8. */
function isInvalidText(frame: Frame): boolean {
  if (frame.binary || typeof frame.data === "string") return false;
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(frame.data);
    return false;
  } catch {
    return true;
  }
}

/**
 * Asserts that a close is clean: a real close code and a reason that fits a close frame.
 *
 * Two closes reach the client as 1006 (no close frame) because of Deno's WebSocket server, not of
 * this module, and are allowed: a text frame of invalid UTF-8, which the runtime refuses by
 * dropping the connection before the application sees it; and a close that ends an aborted
 * session (the server's `abort`, or the client's) while the client still had frames in flight,
 * where the TCP reset for the unread frames overtakes the close frame.
 */
function assertCleanClose(ws: RawCapnwebSocket, where: string, frames: readonly Frame[]): void {
  const info = ws.closeInfo;
  assert.ok(info, `${where}: not closed`);
  const aborted = ws.messages.some((m) => Array.isArray(m) && m[0] === "abort") ||
    frames.some((f) => /^\s*\[\s*"abort"/.test(textOf(f)));
  assert.ok(
    info.code >= 1000 && info.code <= 4999 && info.code !== 1005 &&
      (info.code !== 1006 || frames.some(isInvalidText) || aborted),
    `${where}: close code ${info.code}`,
  );
  assert.ok(info.reasonBytes <= 123, `${where}: a ${info.reasonBytes}-byte close reason`);
}

/**
 * Plays a session of fuzzed frames: starts it as the mode says, sends the frames (pulling the
 * answers of those that ask for it), then a `ping` probe. Either the probe and every pulled call
 * are answered (the session goes on) or the server closes the socket cleanly; either way within
 * {@link ANSWER_MS}.
 *
 * @returns The socket, closed, for more checks.
 */
async function playSession(
  url: string,
  mode: AuthMode,
  frames: readonly Frame[],
): Promise<RawCapnwebSocket> {
  const ws = await RawCapnwebSocket.open(url);
  const where = `${mode} ${
    clip(frames.map((f) => typeof f.data === "string" ? f.data : `bytes:${[...f.data]}`), 600)
  }`;
  try {
    let next = await begin(ws, url, mode);
    const capability = mode === "token" || mode === "ticket" || mode === "pipelined";
    const ours = new Set<number>();
    const pulled: number[] = [];
    for (const frame of frames) {
      ws.send(frame.data, frame.binary);
      const m = parsed(frame);
      if (callsOurMethod(m, capability)) ours.add(next);
      if (!takesId(m)) continue;
      if (frame.pull && m[0] === "push") {
        ws.send(JSON.stringify(["pull", next]));
        pulled.push(next);
      }
      next++;
    }
    ws.send(JSON.stringify(["push", ["pipeline", 0, ["ping"], []]]));
    ws.send(JSON.stringify(["pull", next]));
    pulled.push(next);
    const alive = await ws.until(
      () => pulled.every((id) => ws.answer(id) !== undefined),
      ANSWER_MS,
      `${where}: answers to ${pulled.join(",")}`,
    );
    if (!alive) assertCleanClose(ws, where, frames);
    checkServerMessages(ws, ours, where);
  } finally {
    await ws.close();
  }
  return ws;
}

/**
 * Runs one capnweb property against a fresh server, with both bystanders calling throughout and
 * unhandled rejections counted as failures (in a server process each would be a crash).
 */
async function fuzzCapnweb(
  defaultRuns: number,
  property: (server: TestServer, known: KnownTasks) => fc.IAsyncProperty<[Json]>,
): Promise<void> {
  unhandled.length = 0;
  guardCapnwebRejections();
  globalThis.addEventListener("unhandledrejection", onUnhandled);
  try {
    await using server = startFuzzServer();
    const known = await createKnownTasks(server.url);
    const bystanders = [await startClientBystander(server.url), startJsonRpcBystander(server.url)];
    try {
      await fc.assert(property(server, known), fuzzParameters(defaultRuns));
    } finally {
      await assertBystandersServed(...bystanders);
    }
    await assertBackToBaseline(server);
  } finally {
    globalThis.removeEventListener("unhandledrejection", onUnhandled);
  }
  assert.deepEqual(unhandled, [], "unhandled rejections");
}

/** Fails a run that left an unhandled rejection, once the event loop had a turn to report it. */
async function assertNoUnhandled(where: string): Promise<void> {
  await new Promise((r) => setTimeout(r, 0));
  if (unhandled.length === 0) return;
  const seen = unhandled.splice(0);
  assert.fail(`${where}: unhandled rejection (a server crash): ${seen.join(" | ")}`);
}

/** Arguments of a call: real A2A requests (with a sink), credentials, or odd expressions. */
function capArgsArb(known: KnownTasks): fc.Arbitrary<Json[]> {
  const sink = fc.constantFrom(["export", -1], ["export", -2], null, ["undefined"]);
  const request = fc.oneof(
    sendMessageArb(known),
    otherRequestArb(known).map((r) => r.params),
  );
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc.tuple(request, mutations, sink).map((
        [r, m, s],
      ) => [capnwebValue(mutate(r, m)), s]),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(
        fc.oneof(
          fc.constant({ token: TOKENS.alice }),
          fc.constant({ token: TOKENS.bob, ticket: "x" }),
          fc.record({ ticket: oddString }),
          fc.record({ token: anyJson }),
          anyJson,
        ),
        fc.oneof(
          fc.constant({ version: "1.0" }),
          fc.record({ version: fc.oneof(oddString, fc.constantFrom("0.3", "1.0.3", "2.0")) }),
          fc.record({ extensions: fc.oneof(fc.array(oddString, { maxLength: 2 }), anyJson) }),
          anyJson,
        ),
      ).map(([credentials, options]) => [capnwebValue(credentials), capnwebValue(options)]),
    },
    { weight: 2, arbitrary: fc.array(capExprArb, { maxLength: 3 }) },
  );
}

const authModeArb: fc.Arbitrary<AuthMode> = fc.constantFrom(
  ...words("none token token ticket pipelined pipelined badToken usedTicket") as AuthMode[],
);

/**
 * Calls of this module's methods, on the root (import 0) or the capability (import 1), with
 * valid, mutated or odd arguments, mostly pulled.
 */
function callFrameArb(known: KnownTasks): fc.Arbitrary<Frame> {
  return fc.tuple(
    fc.oneof({ weight: 3, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.constant(0) }),
    fc.constantFrom(...CAPABILITY_METHODS),
    fc.constantFrom(...ROOT_METHODS),
    capArgsArb(known),
    fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, {
      weight: 1,
      arbitrary: fc.constant(false),
    }),
  ).map(([target, method, rootMethod, args, pull]) => ({
    data: JSON.stringify(["push", [
      "pipeline",
      target,
      [target === 0 ? rootMethod : method],
      args,
    ]]),
    binary: false,
    pull,
  }));
}

Deno.test("capnweb fuzz: random and mutated frames get answers or a clean close of their own socket", async () => {
  await fuzzCapnweb(800, (server, known) =>
    fc.asyncProperty(
      fc.record({
        mode: authModeArb,
        frames: fc.array(
          fc.oneof(
            { weight: 4, arbitrary: callFrameArb(known) },
            { weight: 1, arbitrary: frameArb(capMessageArb(capArgsArb(known))) },
          ),
          { minLength: 1, maxLength: 5 },
        ),
      }),
      async ({ mode, frames }) => {
        await playSession(server.url, mode, frames);
        await assertNoUnhandled(mode);
      },
    ));
});

// ---------------------------------------------------------------------------------------------
// capnweb: properties that pin down bugs the fuzzer found (each fixed; kept so they stay fixed)

/** How a frame is written: as capnweb writes it, or in ways JSON allows just as well. */
type Framing = "plain" | "spaced" | "escapedKind" | "leadingSpace";

function frame(message: Json[], framing: Framing): string {
  const text = JSON.stringify(message);
  switch (framing) {
    case "plain":
      return text;
    case "spaced":
      return text.replaceAll(",", " , ").replace("[", "[ ");
    case "escapedKind":
      return text.replace(
        `"${message[0]}"`,
        `"${
          [...String(message[0])].map((ch, i) =>
            i === 1 ? `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}` : ch
          ).join("")
        }"`,
      );
    case "leadingSpace":
      return " ".repeat(60) + text;
  }
}

/**
 * Every call in a session is answered for itself: pings resolve, oversized calls fail alone with
 * -32600, however the frames around them are written.
 */
function oversizedProperty(server: TestServer, framings: readonly Framing[]) {
  return fc.asyncProperty(
    fc.array(
      fc.record({ oversized: fc.boolean(), framing: fc.constantFrom(...framings) }),
      { minLength: 1, maxLength: 6 },
    ),
    async (calls) => {
      const ws = await RawCapnwebSocket.open(server.url);
      try {
        for (const { oversized, framing } of calls) {
          const args = oversized ? ["x".repeat(FUZZ_MAX_BYTES + 10)] : [];
          ws.send(frame(["push", ["pipeline", 0, ["ping"], args]], framing));
        }
        for (let id = 1; id <= calls.length; id++) ws.send(JSON.stringify(["pull", id]));
        for (const [i, { oversized }] of calls.entries()) {
          const id = i + 1;
          await ws.until(() => ws.answer(id) !== undefined, ANSWER_MS, `answer ${id}`);
          const answer = ws.answer(id);
          if (oversized) {
            assert.equal(answer?.[0], "reject", `call ${id}: ${clip(answer)}`);
            assert.equal(codeOf(answer[2]), -32600, `call ${id}: ${clip(answer)}`);
          } else {
            assert.equal(answer?.[0], "resolve", `call ${id}: ${clip(answer)}`);
            assert.equal(typeof answer[2]?.time, "string", `call ${id}: ${clip(answer)}`);
          }
        }
      } finally {
        await ws.close();
      }
    },
  );
}

Deno.test("capnweb fuzz: an oversized call fails alone among calls framed as capnweb frames them", async () => {
  await fuzzCapnweb(100, (server) => oversizedProperty(server, ["plain", "spaced"]));
});

Deno.test({
  name: "capnweb fuzz: an oversized call fails alone whatever JSON framing the calls before it use",
  fn: async () => {
    await fuzzCapnweb(
      30,
      (server) => oversizedProperty(server, ["plain", "spaced", "escapedKind", "leadingSpace"]),
    );
  },
});

Deno.test({
  name:
    "capnweb fuzz: a protocol mistake of the client is answered with a client error, not -32603",
  fn: async () => {
    await fuzzCapnweb(100, (server, known) =>
      fc.asyncProperty(
        fc.record({
          mode: authModeArb,
          frames: fc.array(frameArb(capMessageArb(capArgsArb(known))), {
            minLength: 1,
            maxLength: 4,
          }),
        }),
        async ({ mode, frames }) => {
          const ws = await playSession(server.url, mode, frames);
          for (const m of ws.messages) {
            if (m[0] !== "reject" && m[0] !== "abort") continue;
            const code = codeOf(m[0] === "reject" ? m[2] : m[1]);
            assert.notEqual(code, -32603, `${mode} ${clip(frames)}: ${clip(m)}`);
          }
        },
      ));
  },
});

Deno.test({
  name: "capnweb fuzz: promise and import expressions leave no unhandled rejection behind",
  fn: async () => {
    const promiseExpr = fc.oneof(
      fc.tuple(fc.constantFrom("promise", "import"), capIdArb),
      capSpecialArb(capExprArb),
    );
    await fuzzCapnweb(100, (server, known) =>
      fc.asyncProperty(
        fc.record({
          mode: authModeArb,
          frames: fc.array(
            fc.oneof(
              callFrameArb(known),
              fc.tuple(fc.constantFrom(0, 1), fc.constantFrom(...CAPABILITY_METHODS), capIdArb)
                .map(([target, method, id]): Frame => ({
                  data: JSON.stringify(["push", ["pipeline", target, [method], [["import", id]]]]),
                  binary: false,
                  pull: true,
                })),
              frameArb(fc.oneof(
                promiseExpr.map((e) => ["push", e]),
                promiseExpr.map((e) => ["abort", e]),
                fc.tuple(
                  fc.constantFrom("resolve", "reject"),
                  fc.integer({ min: -2, max: 9 }),
                  promiseExpr,
                ),
                capCallArb(fc.array(promiseExpr, { maxLength: 2 })).map((c) => ["push", c]),
                fc.constantFrom(["release", 1, 1], ["pull", 1]),
              )),
            ),
            { minLength: 1, maxLength: 4 },
          ),
        }),
        async ({ mode, frames }) => {
          await playSession(server.url, mode, frames);
          await new Promise((r) => setTimeout(r, 20));
          await assertNoUnhandled(mode);
        },
      ));
  },
});
