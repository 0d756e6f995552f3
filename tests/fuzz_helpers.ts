// The fuzz suite's shared parts: seed and run counts, arbitraries for hostile JSON-RPC requests
// and capnweb frames, the oracles that judge each answer, and the well-behaved bystanders.

import assert from "node:assert/strict";
import fc from "fast-check";
import { WebSocket as WsWebSocket } from "ws";
import { A2AClient } from "../client.ts";
import { ErrorCode } from "../mod.ts";
import { startServer, type TestServer, TOKENS, withDeadline } from "./helpers.ts";

// Bodies read off the wire are checked field by field.
// deno-lint-ignore no-explicit-any
export type Json = any;

// ---------------------------------------------------------------------------------------------
// Seeds, run counts, bounds

function intFromEnv(name: string): number | undefined {
  const raw = Deno.env.get(name)?.trim();
  if (!raw) return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new TypeError(`${name} must be an integer: ${raw}`);
  return n;
}

/** The seed of every property: `A2A_FUZZ_SEED`, or a fixed default so that runs repeat. */
export const FUZZ_SEED: number = intFromEnv("A2A_FUZZ_SEED") ?? 20260101;

/**
 * The fast-check parameters of one property.
 *
 * @param defaultRuns The property's run count when `A2A_FUZZ_RUNS` is not set.
 * @returns The seed and run count; fast-check prints both with a counterexample.
 */
export function fuzzParameters(defaultRuns: number): { seed: number; numRuns: number } {
  return { seed: FUZZ_SEED, numRuns: intFromEnv("A2A_FUZZ_RUNS") ?? defaultRuns };
}

/** The longest any request may take to be answered; a longer one fails the property. */
export const ANSWER_MS = 5000;

/** The body limit of the fuzz server: small, so oversized inputs are cheap to send. */
export const FUZZ_MAX_BYTES = 64 * 1024;

/** The codes a client may receive: the README's error table (-31004 is client-side only). */
export const DOCUMENTED_CODES: ReadonlySet<number> = new Set(
  Object.values(ErrorCode).filter((c) => c !== ErrorCode.ConnectionLost),
);

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Shortens untrusted text for an assertion message. */
export function clip(value: unknown, max = 300): string {
  const text = typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  return text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text;
}

/**
 * Splits a list written as one string of words.
 *
 * @param text Words separated by single spaces.
 * @returns The words.
 */
export function words(text: string): string[] {
  return text.split(" ");
}

// ---------------------------------------------------------------------------------------------
// The server under test

/**
 * Host names the fuzz server's resolver knows, so webhook checks never leave the machine: every
 * name resolves to loopback (allowed here), except the ones that name another outcome.
 */
function fuzzResolver(hostname: string, signal: AbortSignal): Promise<string[]> {
  if (hostname.includes("nxdomain")) return Promise.reject(new Error("NXDOMAIN"));
  if (hostname.includes("private")) return Promise.resolve(["10.1.2.3"]);
  if (hostname.includes("metadata")) return Promise.resolve(["169.254.169.254"]);
  if (hostname.includes("v6")) return Promise.resolve(["::1", "fe80::1"]);
  if (hostname.includes("empty")) return Promise.resolve([]);
  if (hostname.includes("slow")) {
    return new Promise((_, reject) => {
      const fail = () => reject(signal.reason);
      if (signal.aborted) fail();
      else signal.addEventListener("abort", fail, { once: true });
    });
  }
  return Promise.resolve(["127.0.0.1"]);
}

/**
 * Starts the demo agent for fuzzing: a small body limit, webhooks that may reach loopback only
 * through the resolver above (so deliveries fail fast on closed local ports), one attempt each.
 * The failed-login throttle is set out of reach: the fuzzer fails logins on purpose from the
 * bystanders' address, and a throttled address is refused even with a valid token.
 *
 * @returns The server.
 */
export function startFuzzServer(): TestServer {
  return startServer({
    limits: { maxMessageBytes: FUZZ_MAX_BYTES, authFailureBurst: 1_000_000 },
    push: {
      allowLoopback: true,
      resolveHost: fuzzResolver,
      timeoutMs: 500,
      maxAttempts: 1,
    },
  });
}

/**
 * Asserts that the server holds no more sessions, sockets, resources or subscribers than it did
 * at the start.
 *
 * @param server The server.
 */
export async function assertBackToBaseline(server: TestServer): Promise<void> {
  await server.settled();
  const now = server.handler.stats();
  const { baseline } = server;
  assert.deepEqual(
    {
      sessions: now.sessions,
      resources: now.resources,
      sockets: now.sockets,
      subscribers: now.subscribers,
    },
    {
      sessions: baseline.sessions,
      resources: baseline.resources,
      sockets: baseline.sockets,
      subscribers: baseline.subscribers,
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Plain JSON-RPC calls

/** Headers of a well-formed JSON-RPC request. */
export function jsonRpcHeaders(token: string): Record<string, string> {
  return {
    "content-type": "application/json",
    authorization: `Bearer ${token}`,
    "a2a-version": "1.0",
  };
}

/**
 * Makes one well-formed JSON-RPC call and returns its result, failing on anything else.
 *
 * @param url The server's base URL.
 * @param token The bearer token.
 * @param method The method.
 * @param params The params.
 * @returns The `result`.
 */
export async function callJsonRpc(
  url: string,
  token: string,
  method: string,
  params: unknown,
): Promise<Json> {
  const res = await fetch(`${url}/a2a/jsonrpc`, {
    method: "POST",
    headers: jsonRpcHeaders(token),
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    signal: AbortSignal.timeout(ANSWER_MS),
  });
  const text = await res.text();
  assert.equal(res.status, 200, `${method}: HTTP ${res.status} ${clip(text)}`);
  const body = JSON.parse(text);
  assert.ok("result" in body, `${method}: ${clip(text)}`);
  return body.result;
}

/**
 * A user text message.
 *
 * @param text The text.
 * @returns The message.
 */
export function textMessage(text: string): Json {
  return { messageId: crypto.randomUUID(), role: "ROLE_USER", parts: [{ text }] };
}

// ---------------------------------------------------------------------------------------------
// Oracles: what every answer must look like

/** The terminal and interrupted states, after whose status event a new stream ends. */
const FINAL_STATES = new Set([
  "TASK_STATE_COMPLETED",
  "TASK_STATE_FAILED",
  "TASK_STATE_CANCELED",
  "TASK_STATE_REJECTED",
  "TASK_STATE_INPUT_REQUIRED",
  "TASK_STATE_AUTH_REQUIRED",
]);

/**
 * Asserts that an error object has a documented code, a message, and is not an internal error
 * (which the fuzz inputs, all of them the client's doing, must never cause).
 *
 * @param error The `error` member of a JSON-RPC response.
 * @param where Context for the failure message.
 */
export function assertClientError(error: Json, where: string): void {
  assert.ok(typeof error === "object" && error !== null, `${where}: error is ${clip(error)}`);
  assert.ok(Number.isInteger(error.code), `${where}: error code ${clip(error.code)}`);
  assert.ok(DOCUMENTED_CODES.has(error.code), `${where}: undocumented code ${error.code}`);
  assert.notEqual(
    error.code,
    ErrorCode.Internal,
    `${where}: -32603 for a client's input: ${clip(error.message)}`,
  );
  assert.equal(typeof error.message, "string", `${where}: error message ${clip(error.message)}`);
  // BINDING.md section 8: always one ErrorInfo, and for -32602 also a BadRequest.
  const data = error.data;
  assert.ok(Array.isArray(data), `${where}: error data ${clip(data)}`);
  for (const d of data) {
    assert.equal(typeof d?.["@type"], "string", `${where}: error detail ${clip(d)}`);
  }
  const infos = data.filter((d: Json) => d["@type"] === "type.googleapis.com/google.rpc.ErrorInfo");
  assert.equal(infos.length, 1, `${where}: ErrorInfo details in ${clip(data)}`);
  assert.ok(typeof infos[0].reason === "string" && infos[0].domain === "a2a-protocol.org", where);
  if (error.code === ErrorCode.InvalidParams) {
    const bad = data.find((d: Json) => d["@type"] === "type.googleapis.com/google.rpc.BadRequest");
    assert.ok(
      Array.isArray(bad?.fieldViolations) && bad.fieldViolations.length > 0 &&
        bad.fieldViolations.every((v: Json) =>
          typeof v?.field === "string" && typeof v?.description === "string"
        ),
      `${where}: -32602 without field violations: ${clip(data)}`,
    );
  }
}

/**
 * Asserts that a value is a JSON-RPC 2.0 response to the given id, with exactly one of `result`
 * and `error`, and that an error is a documented client error.
 *
 * @param body The parsed body.
 * @param id The id the response must carry.
 * @param where Context for the failure message.
 */
export function assertJsonRpcResponse(body: Json, id: Json, where: string): void {
  assert.ok(
    typeof body === "object" && body !== null && !Array.isArray(body),
    `${where}: body ${clip(body)}`,
  );
  assert.equal(body.jsonrpc, "2.0", `${where}: jsonrpc ${clip(body)}`);
  assert.equal(JSON.stringify(body.id), JSON.stringify(id), `${where}: id of ${clip(body)}`);
  const keys = Object.keys(body).filter((k) => k !== "jsonrpc" && k !== "id").sort();
  assert.ok(
    keys.length === 1 && (keys[0] === "result" || keys[0] === "error"),
    `${where}: members ${keys.join(",")}`,
  );
  if (body.error !== undefined) assertClientError(body.error, where);
}

/** Asserts that a value is a StreamResponse: an object with exactly one of its four members. */
function assertStreamResponse(result: Json, where: string): void {
  assert.ok(typeof result === "object" && result !== null, `${where}: result ${clip(result)}`);
  const keys = Object.keys(result);
  assert.equal(keys.length, 1, `${where}: stream response members ${keys.join(",")}`);
  assert.ok(
    ["task", "message", "statusUpdate", "artifactUpdate"].includes(keys[0]!),
    `${where}: stream response member ${keys[0]}`,
  );
}

/** How a stream is to be read: what it answers and whether it may stay open. */
export interface SseExpectation {
  /** The JSON-RPC id every event's data carries. */
  id: Json;
  /** May stay open after its events (a subscription to a live task); else it must end. */
  mayStayOpen: boolean;
  /** Every `id:` must be above this (the request's Last-Event-ID). */
  after?: number;
}

/** What a stream delivered. */
export interface SseSummary {
  /** The parsed `data` of each event. */
  events: Json[];
  /** Whether the server ended the stream (rather than the reader leaving it idle). */
  ended: boolean;
}

/**
 * Reads a `text/event-stream` body and checks its framing and every event: `id:` lines of
 * increasing sequence numbers, one `data:` line of a JSON-RPC response per event, results that
 * are StreamResponses, at most one error and only as the last event. A stream that may stay open
 * is left after 300 ms without bytes; any other must end within {@link ANSWER_MS}.
 *
 * @param res The response.
 * @param expect What the stream answers.
 * @param where Context for failure messages.
 * @returns The events.
 */
export async function readSse(
  res: Response,
  expect: SseExpectation,
  where: string,
): Promise<SseSummary> {
  assert.ok(res.body, `${where}: a stream without a body`);
  const reader = res.body.getReader();
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const events: Json[] = [];
  let buffer = "";
  let lastSeq = expect.after ?? -1;
  let errored = false;
  const end = Date.now() + ANSWER_MS;
  let ended = false;
  try {
    while (true) {
      // A subscription to a paused task may send nothing after its replay (BINDING.md 9.4).
      const idleMs = expect.mayStayOpen ? 300 : end - Date.now();
      if (idleMs <= 0) assert.fail(`${where}: the stream did not end within ${ANSWER_MS} ms`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const idle = new Promise<"idle">((r) => timer = setTimeout(() => r("idle"), idleMs));
      const next = await Promise.race([reader.read(), idle]);
      clearTimeout(timer);
      if (next === "idle") {
        if (expect.mayStayOpen) break;
        assert.fail(`${where}: no event within ${ANSWER_MS} ms`);
      }
      if (next.done) {
        ended = true;
        break;
      }
      buffer += decoder.decode(next.value, { stream: true });
      let cut: number;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        if (block === ": keep-alive") continue;
        assert.ok(!errored, `${where}: an event after the error event`);
        const lines = block.split("\n");
        let data: string | undefined;
        let seq: number | undefined;
        for (const line of lines) {
          if (line.startsWith("id: ")) {
            assert.match(line, /^id: \d+$/, `${where}: SSE id line ${clip(line)}`);
            seq = Number(line.slice(4));
          } else if (line.startsWith("data: ")) {
            assert.equal(data, undefined, `${where}: two data lines`);
            data = line.slice(6);
          } else assert.fail(`${where}: SSE line ${clip(line)}`);
        }
        assert.ok(data !== undefined, `${where}: an SSE event without data: ${clip(block)}`);
        const body = JSON.parse(data);
        assertJsonRpcResponse(body, expect.id, where);
        if (body.error !== undefined) {
          assert.equal(seq, undefined, `${where}: an error event with an id`);
          errored = true;
        } else {
          assert.ok(seq !== undefined, `${where}: an event without an id`);
          assert.ok(seq > lastSeq, `${where}: event id ${seq} after ${lastSeq}`);
          lastSeq = seq;
          assertStreamResponse(body.result, where);
        }
        events.push(body);
      }
    }
    if (ended) assert.equal(buffer, "", `${where}: the stream ended inside an event`);
    return { events, ended };
  } finally {
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/** Whether a stream event moves the task into a state after which a new stream ends. */
export function isFinalEvent(body: Json): boolean {
  const r = body?.result;
  return r?.message !== undefined || FINAL_STATES.has(r?.statusUpdate?.status?.state);
}

// ---------------------------------------------------------------------------------------------
// Bystanders: well-behaved clients that must be served throughout a fuzz run

/** What a bystander did. */
export interface BystanderReport {
  /** Calls made. */
  calls: number;
  /** Every call that did not succeed, described. */
  failures: string[];
}

/** A well-behaved client running in the background. */
export interface Bystander {
  /** Stops after the call in progress, closes the client and reports. */
  stop(): Promise<BystanderReport>;
}

/** Runs rounds of calls until stopped, keeping every failure instead of stopping at one. */
function runLoop(
  round: (i: number, count: () => void) => Promise<void>,
  close: () => Promise<void>,
) {
  let running = true;
  let calls = 0;
  const failures: string[] = [];
  const loop = (async () => {
    for (let i = 1; running; i++) {
      try {
        await round(i, () => calls++);
      } catch (err) {
        failures.push(`round ${i}: ${err instanceof Error ? err.message : String(err)}`);
      }
      await delay(5);
    }
  })();
  return {
    async stop(): Promise<BystanderReport> {
      running = false;
      await loop;
      await close();
      return { calls, failures };
    },
  };
}

/**
 * Starts a bystander that makes plain JSON-RPC calls as bob: SendMessage, GetTask, ListTasks and,
 * every third round, a SendStreamingMessage read to its end.
 *
 * @param url The server's base URL.
 * @returns The bystander.
 */
export function startJsonRpcBystander(url: string): Bystander {
  return runLoop(async (i, count) => {
    count();
    const sent = await callJsonRpc(url, TOKENS.bob, "SendMessage", {
      message: textMessage(`bystander ${i}`),
    });
    assert.equal(sent.task?.status?.state, "TASK_STATE_COMPLETED", clip(sent));
    count();
    const got = await callJsonRpc(url, TOKENS.bob, "GetTask", { id: sent.task.id });
    assert.equal(got.id, sent.task.id);
    count();
    const listed = await callJsonRpc(url, TOKENS.bob, "ListTasks", { pageSize: 3 });
    assert.ok(Array.isArray(listed.tasks) && listed.tasks.length <= 3, clip(listed));
    if (i % 3 !== 0) return;
    count();
    const res = await fetch(`${url}/a2a/jsonrpc`, {
      method: "POST",
      headers: jsonRpcHeaders(TOKENS.bob),
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: i,
        method: "SendStreamingMessage",
        params: { message: textMessage(`bystander stream ${i}`) },
      }),
      signal: AbortSignal.timeout(ANSWER_MS),
    });
    assert.equal(res.headers.get("content-type"), "text/event-stream");
    const { events, ended } = await readSse(res, { id: i, mayStayOpen: false }, "bystander");
    assert.ok(ended && events.length > 0);
    assert.equal(events.at(-1).result?.statusUpdate?.status?.state, "TASK_STATE_COMPLETED");
  }, () => Promise.resolve());
}

/**
 * Starts a bystander that uses this module's client over a WebSocket as bob: sendMessage,
 * getTask, listTasks and, every third round, a whole sendStreamingMessage stream.
 *
 * @param url The server's base URL.
 * @returns The bystander, once its client is connected.
 */
export async function startClientBystander(url: string): Promise<Bystander> {
  const client = await A2AClient.connect(url, { token: TOKENS.bob, reconnect: false });
  return runLoop(async (i, count) => {
    count();
    const { task } = await withDeadline(
      client.sendMessage({ message: textMessage(`client bystander ${i}`) }),
      ANSWER_MS,
      "sendMessage",
    );
    assert.equal(task?.status.state, "TASK_STATE_COMPLETED");
    count();
    const got = await withDeadline(client.getTask({ id: task.id }), ANSWER_MS, "getTask");
    assert.equal(got.id, task.id);
    count();
    const listed = await withDeadline(client.listTasks({ pageSize: 3 }), ANSWER_MS, "listTasks");
    assert.ok(listed.tasks.length <= 3);
    if (i % 3 !== 0) return;
    count();
    const states = await withDeadline(
      (async () => {
        const out: string[] = [];
        const stream = client.sendStreamingMessage({
          message: textMessage(`client stream ${i}`),
        });
        for await (const e of stream) if (e.statusUpdate) out.push(e.statusUpdate.status.state);
        return out;
      })(),
      ANSWER_MS,
      "sendStreamingMessage",
    );
    assert.equal(states.at(-1), "TASK_STATE_COMPLETED");
  }, () => client.close());
}

/**
 * Stops bystanders and asserts that each made calls and that all of them succeeded.
 *
 * @param bystanders The bystanders.
 */
export async function assertBystandersServed(...bystanders: Bystander[]): Promise<void> {
  const reports = await Promise.all(bystanders.map((b) => b.stop()));
  for (const [i, r] of reports.entries()) {
    assert.deepEqual(r.failures, [], `bystander ${i} failed ${r.failures.length} of ${r.calls}`);
    assert.ok(r.calls >= 3, `bystander ${i} made only ${r.calls} calls`);
  }
}

// ---------------------------------------------------------------------------------------------
// Arbitraries: hostile JSON

/** Strings that stress parsers: unicode (lone surrogates too), control characters, odd names. */
export const oddString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 24 }) },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 24 }) },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 12 }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      ...words(
        "__proto__ constructor toString hasOwnProperty then null NaN -1 1e400 0x10 " +
          "TASK_STATE_WORKING ROLE_USER ../../etc/passwd %00%ff <script>alert(1)</script>",
      ),
      ...["", " ", "\u0000", "\ud800", "\udfff", "\ufeff", "\u202e", "😀", "e\u0301"],
      "a".repeat(1000),
      "é".repeat(3000),
    ),
  },
);

/** Numbers at the edges: int32 and safe-integer bounds, fractions, huge and tiny values. */
export const oddNumber: fc.Arbitrary<number> = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(
    ...[0, -0, 1, -1, 0.5, 5e-324, 1e308, -1e308, 2 ** 53, Number.MAX_SAFE_INTEGER + 2],
    ...[2 ** 31 - 1, 2 ** 31, -(2 ** 31), -(2 ** 31) - 1],
  ),
);

/** Any JSON value, a few levels deep, made of odd strings and numbers. */
export const anyJson: fc.Arbitrary<Json> = fc.letrec<{ value: Json }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    oddNumber,
    oddString,
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(oddString, tie("value"), { maxKeys: 4 }),
  ),
})).value;

/**
 * Builds a value nested `depth` levels deep, arrays or objects.
 *
 * @param depth How deep.
 * @param objects Objects (`{"a":…}`) instead of arrays.
 * @returns The value.
 */
export function nested(depth: number, objects: boolean): Json {
  let v: Json = 1;
  for (let i = 0; i < depth; i++) v = objects ? { a: v } : [v];
  return v;
}

/** Values nested around the 64-level limit of the bindings, and a few far beyond it. */
export const deepJson: fc.Arbitrary<Json> = fc.tuple(
  fc.oneof(fc.integer({ min: 50, max: 80 }), fc.constantFrom(300, 3000)),
  fc.boolean(),
).map(([depth, objects]) => nested(depth, objects));

/** Strings from a few kilobytes to past the fuzz server's body limit. */
export const hugeString: fc.Arbitrary<string> = fc.tuple(
  fc.constantFrom(2_000, 2_000, 30_000, FUZZ_MAX_BYTES + 100),
  fc.constantFrom("x", "é", "😀", "\\", '"', "\u0000"),
).map(([n, ch]) => ch.repeat(Math.ceil(n / ch.length)));

/** Enum values as they should not be: wrong names, numbers out of range, lower case. */
export const oddEnum: fc.Arbitrary<Json> = fc.constantFrom(
  ...words("TASK_STATE_BOGUS task_state_working WORKING ROLE_AGENT ROLE_UNSPECIFIED user 3"),
  ...["", 0, 1, 3, 8, 9, 99, -1, 1.5, true],
);

/** One change to a valid value: the kinds of mistakes and attacks the fuzz suite makes. */
export interface Mutation {
  /** Picks the member to change, modulo the number of members. */
  at: number;
  /** What to do. */
  op:
    | "delete"
    | "replace"
    | "null"
    | "extra"
    | "snake"
    | "wrapArray"
    | "stringify"
    | "deep"
    | "huge"
    | "enum"
    | "number";
  /** A value the operation may use. */
  value: Json;
  /** A member name the operation may use. */
  key: string;
}

/** A short list of mutations: none for about a third of the values, so valid ones get through. */
export const mutations: fc.Arbitrary<Mutation[]> = fc.oneof(
  { weight: 1, arbitrary: fc.constant<Mutation[]>([]) },
  {
    weight: 2,
    arbitrary: fc.array(
      fc.record({
        at: fc.nat(),
        op: fc.constantFrom(
          ..."delete replace replace null extra extra snake wrapArray stringify deep huge enum enum number"
            .split(" ") as Mutation["op"][],
        ),
        value: fc.oneof(
          { weight: 8, arbitrary: anyJson },
          { weight: 1, arbitrary: deepJson },
          { weight: 1, arbitrary: hugeString },
          { weight: 3, arbitrary: oddEnum },
        ),
        key: fc.oneof(
          fc.constantFrom("tenant", "extra", "__proto__", "constructor", "message_id", "@type"),
          oddString,
        ),
      }),
      { minLength: 1, maxLength: 3 },
    ),
  },
);

interface Slot {
  parent: Json;
  key: string | number;
}

function slotsOf(value: Json): Slot[] {
  const out: Slot[] = [];
  const visit = (v: Json, depth: number) => {
    if (typeof v !== "object" || v === null || depth > 8) return;
    for (const key of Array.isArray(v) ? v.keys() : Object.keys(v)) {
      out.push({ parent: v, key });
      visit(v[key], depth + 1);
    }
  };
  visit(value, 0);
  return out;
}

function snakeCase(key: string): string {
  const snake = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return snake === key ? `${key}_` : snake;
}

/**
 * Applies mutations to a copy of a value (a JSON object).
 *
 * @param base The valid value.
 * @param list The mutations.
 * @returns The mutated copy.
 */
export function mutate(base: Json, list: readonly Mutation[]): Json {
  const root = structuredClone(base);
  for (const m of list) {
    const slots = slotsOf(root);
    if (slots.length === 0) {
      Object.defineProperty(root, m.key, {
        value: m.value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
      continue;
    }
    const { parent, key } = slots[m.at % slots.length]!;
    const current = parent[key];
    const set = (v: Json) => {
      // Assigned as an own member even for "__proto__", as JSON.parse would make it.
      Object.defineProperty(parent, key, {
        value: v,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    };
    switch (m.op) {
      case "delete":
        if (Array.isArray(parent)) parent.splice(key as number, 1);
        else delete parent[key];
        break;
      case "replace":
        set(m.value);
        break;
      case "null":
        set(null);
        break;
      case "extra": {
        const target = typeof current === "object" && current !== null && !Array.isArray(current)
          ? current
          : Array.isArray(parent)
          ? undefined
          : parent;
        if (target) {
          Object.defineProperty(target, m.key, {
            value: m.value,
            enumerable: true,
            writable: true,
            configurable: true,
          });
        } else parent.push(m.value);
        break;
      }
      case "snake":
        if (typeof key === "string") {
          delete parent[key];
          parent[snakeCase(key)] = current;
        }
        break;
      case "wrapArray":
        set([current]);
        break;
      case "stringify":
        set(JSON.stringify(current) ?? "undefined");
        break;
      case "deep":
        set(
          nested(typeof m.value === "number" ? 50 + Math.abs(Math.trunc(m.value)) % 40 : 70, true),
        );
        break;
      case "huge":
        set(typeof m.value === "string" && m.value.length > 1000 ? m.value : "x".repeat(20_000));
        break;
      case "enum":
        set(m.value);
        break;
      case "number":
        set(
          typeof current === "number"
            ? String(current)
            : typeof m.value === "number"
            ? m.value
            : -1,
        );
        break;
    }
  }
  return root;
}

// ---------------------------------------------------------------------------------------------
// Arbitraries: A2A requests

/** Ids of tasks that exist when the fuzzing starts, by what they are. */
export interface KnownTasks {
  /** Alice's completed task. */
  completed: string;
  /** Alice's tasks waiting for input. */
  inputRequired: string[];
  /** Alice's failed task. */
  failed: string;
  /** Bob's completed task, which alice must not see. */
  bobs: string;
  /** The context of alice's completed task. */
  contextId: string;
}

/**
 * Creates the tasks the fuzzers point at, over JSON-RPC.
 *
 * @param url The server's base URL.
 * @returns Their ids.
 */
export async function createKnownTasks(url: string): Promise<KnownTasks> {
  const send = async (token: string, text: string) =>
    (await callJsonRpc(url, token, "SendMessage", { message: textMessage(text) })).task;
  const completed = await send(TOKENS.alice, "known");
  const inputRequired = [];
  for (let i = 0; i < 3; i++) inputRequired.push((await send(TOKENS.alice, "input: more?")).id);
  const failed = await send(TOKENS.alice, "fail: on purpose");
  const bobs = await send(TOKENS.bob, "bob's");
  return {
    completed: completed.id,
    inputRequired,
    failed: failed.id,
    bobs: bobs.id,
    contextId: completed.contextId,
  };
}

/**
 * Task ids as a fuzzer uses them: real ones of every kind, and garbage.
 *
 * @param known The tasks that exist.
 * @returns The arbitrary.
 */
export function taskIdArb(known: KnownTasks): fc.Arbitrary<Json> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(known.completed, known.failed, known.bobs) },
    { weight: 3, arbitrary: fc.constantFrom(...known.inputRequired) },
    { weight: 2, arbitrary: oddString },
    { weight: 1, arbitrary: fc.uuid() },
    { weight: 1, arbitrary: anyJson },
  );
}

/** Message texts: the demo agent's modes (slow only with two words) and arbitrary text. */
export const textArb: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("hello", "input: why?", "fail: no", "reply: hi", "slow: a b", ""),
  // Prefixed so that a random string never asks for a long slow stream.
  oddString.map((s) => `t ${s}`),
);

/** Webhook URLs: odd schemes, private, loopback, link-local and encoded hosts, odd ports. */
export const webhookUrlArb: fc.Arbitrary<Json> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.tuple(
      fc.constantFrom(...words("http https HTTPS ftp file javascript data ws gopher mailto")),
      fc.oneof(
        fc.constantFrom(...words(
          "hooks.example.com nxdomain.example private.example metadata.example v6.example " +
            "empty.example slow.example localhost 127.0.0.1 127.1 0.0.0.0 10.0.0.1 172.16.5.4 " +
            "192.168.1.1 100.64.0.1 169.254.169.254 224.0.0.1 255.255.255.255 [::1] [::] " +
            "[fe80::1] [fc00::1] [::ffff:10.0.0.1] [::ffff:169.254.169.254] " +
            "[64:ff9b::a9fe:a9fe] 2130706433 0x7f000001 017700000001 xn--nxasmq6b.example " +
            "例え.example user:pw@hooks.example.com",
        )),
        fc.constantFrom("a".repeat(260), ""),
      ),
      fc.constantFrom("", ":0", ":1", ":9", ":443", ":65535", ":65536", ":-1"),
      fc.oneof(fc.constantFrom("/", "/hook", "/a?b=c#d", "/%00", "/../x"), oddString),
    ).map(([scheme, host, port, path]) => `${scheme}://${host}${port}${path}`),
  },
  { weight: 1, arbitrary: oddString },
  { weight: 1, arbitrary: anyJson },
);

/** A push config's optional members. */
function pushConfigArb(known: KnownTasks): fc.Arbitrary<Json> {
  return fc.record({
    taskId: taskIdArb(known),
    url: webhookUrlArb,
    id: fc.option(fc.oneof(oddString, fc.uuid()), { nil: undefined }),
    token: fc.option(oddString, { nil: undefined }),
    authentication: fc.option(
      fc.record({ scheme: fc.constantFrom("Bearer", "Basic", ""), credentials: oddString }),
      { nil: undefined },
    ),
  }, { requiredKeys: ["taskId", "url"] });
}

/** A value in about one case of four, else undefined. */
function rarely<T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> {
  return fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });
}

/** A valid SendMessage request (before mutation). */
export function sendMessageArb(known: KnownTasks): fc.Arbitrary<Json> {
  return fc.record({
    messageId: fc.uuid(),
    text: textArb,
    taskId: rarely(taskIdArb(known)),
    contextId: rarely(fc.oneof(fc.constant(known.contextId), fc.uuid())),
    extraParts: fc.array(
      fc.oneof(
        fc.record({ text: oddString }),
        // `data: null` is left to its own property (a known bug) so that this one stays green.
        fc.record({ data: anyJson.filter((v) => v !== null) }),
        fc.record({ url: oddString, mediaType: oddString }),
        fc.record({ raw: fc.base64String({ maxLength: 40 }), filename: oddString }),
      ),
      { maxLength: 2 },
    ),
    metadata: rarely(fc.dictionary(oddString, anyJson, { maxKeys: 3 })),
    configuration: rarely(
      fc.record({
        historyLength: fc.oneof({ weight: 3, arbitrary: fc.nat(10) }, {
          weight: 1,
          arbitrary: oddNumber,
        }),
        returnImmediately: fc.boolean(),
        acceptedOutputModes: fc.array(fc.constantFrom("text/plain", "*/*", ""), { maxLength: 2 }),
        taskPushNotificationConfig: pushConfigArb(known).map(({ taskId: _, ...c }) => c),
      }, { requiredKeys: [] }),
    ),
  }).map((r) => {
    const message: Json = {
      messageId: r.messageId,
      role: "ROLE_USER",
      parts: [{ text: r.text }, ...r.extraParts],
    };
    if (r.taskId !== undefined) message.taskId = r.taskId;
    if (r.contextId !== undefined) message.contextId = r.contextId;
    const params: Json = { message };
    if (r.metadata !== undefined) params.metadata = r.metadata;
    if (r.configuration !== undefined) params.configuration = r.configuration;
    return params;
  });
}

/** RFC 3339 timestamps and near misses. */
export const timestampArb: fc.Arbitrary<Json> = fc.oneof(
  fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  fc.constantFrom(...words(
    "2025-01-01T00:00:00Z 2025-01-01T00:00:00.123456789Z 2025-02-30T00:00:00Z " +
      "2025-01-01T24:00:00Z 2025-01-01T00:00:60Z 2025-01-01T00:00:00+02:00 2025-01-01 " +
      "0000-01-01T00:00:00Z 9999-12-31T23:59:59.999Z +275760-09-13T00:00:00Z " +
      "-000001-01-01T00:00:00Z 1970-01-01T00:00:00.Z now",
  )),
  oddString,
  oddNumber,
);

function base64(text: string): string {
  return btoa(Array.from(new TextEncoder().encode(text), (b) => String.fromCharCode(b)).join(""));
}

/** Page tokens: garbage, base64 of odd JSON, and tokens shaped like real ones. */
export const pageTokenArb: fc.Arbitrary<Json> = fc.oneof(
  oddString,
  anyJson.map((v) => base64(JSON.stringify(v) ?? "")),
  fc.tuple(fc.string(), fc.integer()).map(([id, n]) =>
    base64(JSON.stringify({ id, t: n, updatedAt: n })).replace(/=+$/, "")
  ),
  fc.constantFrom("", "=", "====", "-_-_", "AAAA", "e30", "bnVsbA", "W10", "IiI"),
);

/**
 * The params of every method but SendMessage, valid or nearly.
 *
 * @param known The tasks that exist.
 * @returns The arbitrary of `{ method, params }`.
 */
export function otherRequestArb(known: KnownTasks): fc.Arbitrary<{ method: string; params: Json }> {
  const id = taskIdArb(known);
  const historyLength = fc.oneof(fc.nat(5), oddNumber, oddString);
  const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
  const req = (method: string, params: fc.Arbitrary<Json>) =>
    params.map((p) => ({ method, params: p }));
  return fc.oneof(
    req("GetTask", fc.record({ id, historyLength }, { requiredKeys: ["id"] })),
    req(
      "ListTasks",
      fc.record({
        contextId: fc.oneof(fc.constant(known.contextId), oddString),
        status: fc.oneof(
          fc.constantFrom("TASK_STATE_COMPLETED", "TASK_STATE_INPUT_REQUIRED", 3, 6),
          oddEnum,
        ),
        pageSize: fc.oneof(fc.integer({ min: -2, max: 102 }), oddNumber, oddString),
        pageToken: pageTokenArb,
        historyLength,
        statusTimestampAfter: timestampArb,
        includeArtifacts: fc.oneof(fc.boolean(), anyJson),
      }, { requiredKeys: [] }),
    ),
    req("CancelTask", fc.record({ id, metadata: opt(anyJson) }, { requiredKeys: ["id"] })),
    req("SubscribeToTask", fc.record({ id }, { requiredKeys: [] })),
    req("CreateTaskPushNotificationConfig", pushConfigArb(known)),
    req(
      "GetTaskPushNotificationConfig",
      fc.record({ taskId: id, id: fc.oneof(oddString, fc.uuid()) }, { requiredKeys: [] }),
    ),
    req(
      "ListTaskPushNotificationConfigs",
      fc.record({
        taskId: id,
        pageSize: fc.oneof(fc.integer({ min: -2, max: 20 }), oddNumber),
        pageToken: pageTokenArb,
      }, { requiredKeys: ["taskId"] }),
    ),
    req(
      "DeleteTaskPushNotificationConfig",
      fc.record({ taskId: id, id: fc.oneof(oddString, fc.uuid()) }, { requiredKeys: [] }),
    ),
    req("GetExtendedAgentCard", fc.record({ tenant: opt(oddString) }, { requiredKeys: [] })),
  );
}

/** JSON-RPC ids, valid and not; `absent` leaves the member out (a notification). */
export const jsonRpcIdArb: fc.Arbitrary<Json> = fc.oneof(
  { weight: 6, arbitrary: fc.integer() },
  { weight: 3, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.constant("absent") },
  { weight: 1, arbitrary: fc.constantFrom(1.5, -0, 2 ** 60, true, false, [], {}, [1], { id: 1 }) },
);

/**
 * The id a JSON-RPC response must carry for a request envelope.
 *
 * @param envelope The parsed request.
 * @returns The id, `null` when it could not be read.
 */
export function expectedId(envelope: Json): Json {
  const id = envelope?.id;
  return id === null || typeof id === "string" || (typeof id === "number" && Number.isFinite(id))
    ? id
    : null;
}

// ---------------------------------------------------------------------------------------------
// capnweb frames over a raw WebSocket

/** A close as the client saw it. */
export interface CloseInfo {
  /** The close code. */
  code: number;
  /** The close reason. */
  reason: string;
  /** The reason's length in bytes of UTF-8. */
  reasonBytes: number;
}

/** A raw WebSocket to `/a2a/capnweb` that keeps every message the server sends. */
export class RawCapnwebSocket {
  #ws: WsWebSocket;
  #waiters = new Set<() => void>();
  /** The server's messages, parsed. */
  readonly messages: Json[] = [];
  /** Messages that were not JSON, or binary frames. */
  readonly garbage: string[] = [];
  /** Set once the socket closed. */
  closeInfo: CloseInfo | undefined;
  /** Resolves when the socket has closed. */
  readonly closed: Promise<CloseInfo>;

  private constructor(ws: WsWebSocket) {
    this.#ws = ws;
    ws.on("message", (data: Uint8Array, isBinary: boolean) => {
      const text = new TextDecoder().decode(data);
      if (isBinary) this.garbage.push(`binary: ${clip(text)}`);
      else {
        try {
          this.messages.push(JSON.parse(text));
        } catch {
          this.garbage.push(clip(text));
        }
      }
      this.#wake();
    });
    // Errors end in a close event, which is what the oracles look at.
    ws.on("error", () => {});
    this.closed = new Promise((resolve) => {
      ws.once("close", (code: number, reason: Uint8Array) => {
        this.closeInfo = {
          code,
          reason: new TextDecoder().decode(reason),
          reasonBytes: reason.byteLength,
        };
        resolve(this.closeInfo);
        this.#wake();
      });
    });
  }

  /**
   * Opens a socket to a server's capnweb endpoint.
   *
   * @param url The server's base URL.
   * @returns The open socket.
   */
  static async open(url: string): Promise<RawCapnwebSocket> {
    const ws = new WsWebSocket(`${url.replace("http", "ws")}/a2a/capnweb`);
    const socket = new RawCapnwebSocket(ws);
    await withDeadline(
      new Promise<void>((resolve, reject) => {
        ws.once("open", () => resolve());
        ws.once("error", reject);
      }),
      ANSWER_MS,
      "WebSocket open",
    );
    return socket;
  }

  #wake(): void {
    for (const w of this.#waiters) w();
  }

  /**
   * Sends one frame, ignoring a socket that is already closing.
   *
   * @param frame The text, or bytes.
   * @param binary Send as a binary frame (bytes may also go as a text frame).
   */
  send(frame: string | Uint8Array, binary = false): void {
    if (this.#ws.readyState !== WsWebSocket.OPEN) return;
    this.#ws.send(frame, { binary });
  }

  /**
   * Waits until a condition on the messages holds or the socket closes.
   *
   * @param cond The condition.
   * @param ms The deadline; passing it fails.
   * @param what Names the wait in the failure.
   * @returns True when the condition held, false when the socket closed first.
   */
  async until(cond: () => boolean, ms: number, what: string): Promise<boolean> {
    if (cond()) return true;
    if (this.closeInfo) return false;
    let wake!: () => void;
    const woken = () =>
      new Promise<void>((r) => {
        wake = r;
      });
    let next = woken();
    const waiter = () => wake();
    this.#waiters.add(waiter);
    try {
      return await withDeadline(
        (async () => {
          while (true) {
            await next;
            next = woken();
            if (cond()) return true;
            if (this.closeInfo) return false;
          }
        })(),
        ms,
        what,
      );
    } finally {
      this.#waiters.delete(waiter);
    }
  }

  /** The answer (`resolve` or `reject`) to one of our imports, when it arrived. */
  answer(id: number): Json | undefined {
    return this.messages.find((m) =>
      Array.isArray(m) && (m[0] === "resolve" || m[0] === "reject") && m[1] === id
    );
  }

  /** Closes the socket, if the server has not, and waits for the close. */
  async close(): Promise<CloseInfo> {
    if (!this.closeInfo && this.#ws.readyState !== WsWebSocket.CLOSING) {
      try {
        this.#ws.close(1000);
      } catch {
        this.#ws.terminate();
      }
    }
    try {
      return await withDeadline(this.closed, ANSWER_MS, "WebSocket close");
    } catch (err) {
      this.#ws.terminate();
      await this.closed;
      throw err;
    }
  }
}

/**
 * Encodes a plain value for capnweb: arrays are written `[[…]]`, so that they are not read as
 * expressions.
 *
 * @param value A JSON value.
 * @param depth How deep the value sits.
 * @returns Its capnweb form.
 */
export function capnwebValue(value: Json, depth = 0): Json {
  // Past capnweb's own depth limit the encoding no longer matters: the server refuses it.
  if (depth > 300) return value;
  if (Array.isArray(value)) return [value.map((v) => capnwebValue(v, depth + 1))];
  if (typeof value !== "object" || value === null) return value;
  const out: Json = {};
  for (const [k, v] of Object.entries(value)) {
    Object.defineProperty(out, k, {
      value: capnwebValue(v, depth + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/**
 * Decodes a plain capnweb value, the inverse of {@link capnwebValue}; special expressions are
 * left as they are.
 *
 * @param value A value from a capnweb message.
 * @returns The plain value.
 */
export function plainValue(value: Json): Json {
  if (Array.isArray(value)) {
    return value.length === 1 && Array.isArray(value[0]) ? value[0].map(plainValue) : value;
  }
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plainValue(v)]));
}

/** Import and export ids as a fuzzer uses them: real ones near zero, and absurd ones. */
export const capIdArb: fc.Arbitrary<Json> = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: -3, max: 6 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(2 ** 31, -(2 ** 31), 2 ** 53, 1e308, -1e308, 0.5, -0, 1e-9),
  },
  { weight: 1, arbitrary: fc.constantFrom("1", null, true, [1], {}) },
);

/** Method names on the root object and the capability, and names that are not methods. */
export const capMethodArb: fc.Arbitrary<Json> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.constantFrom(...words(
      "ping getAgentCard authenticate sendMessage sendStreamingMessage getTask listTasks " +
        "cancelTask subscribeToTask createTaskPushNotificationConfig " +
        "getTaskPushNotificationConfig listTaskPushNotificationConfigs " +
        "deleteTaskPushNotificationConfig getExtendedAgentCard cancel",
    )),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(...words(
      "constructor __proto__ prototype toString then dup call apply bind valueOf " +
        "hasOwnProperty #ctx",
    )),
  },
  { weight: 1, arbitrary: oddString },
  { weight: 1, arbitrary: fc.integer({ min: -1, max: 3 }) },
);

/**
 * capnweb's special values other than promises and imports: what a hostile peer can put where a
 * value goes. (A `["promise", id]`, or an `["import", id]` of a call that failed, makes capnweb
 * leave an unhandled rejection in several places; a property of their own covers those.)
 */
export function capSpecialArb(value: fc.Arbitrary<Json>): fc.Arbitrary<Json> {
  return fc.oneof(
    fc.tuple(fc.constant("export"), capIdArb),
    fc.tuple(fc.constant("pipeline"), capIdArb, fc.array(capMethodArb, { maxLength: 2 })),
    fc.tuple(fc.constantFrom("date"), fc.oneof(oddNumber, fc.constant(null), oddString)),
    fc.tuple(fc.constantFrom("bytes"), fc.oneof(fc.base64String({ maxLength: 16 }), oddString)),
    fc.tuple(
      fc.constant("bigint"),
      fc.oneof(fc.bigInt().map(String), oddString, fc.constant("9".repeat(20_000))),
    ),
    fc.constantFrom(["undefined"], ["inf"], ["-inf"], ["nan"], ["undefined", 1]),
    fc.tuple(fc.constant("error"), oddString, oddString),
    fc.tuple(
      fc.constant("error"),
      fc.constantFrom("Error", "TypeError", "RangeError", "AggregateError", "Nope"),
      oddString,
      fc.oneof(fc.constant(null), oddString),
      fc.oneof(fc.dictionary(oddString, value, { maxKeys: 3 }), anyJson),
    ),
    fc.tuple(fc.constant("url"), oddString),
    fc.tuple(fc.constant("headers"), fc.constant([[["a", "b"], ["\n", "x"]]])),
    fc.tuple(fc.constantFrom("readable", "writable"), capIdArb),
    fc.tuple(fc.constant("remap"), capIdArb, fc.constant([]), fc.constant([]), fc.constant([])),
    fc.tuple(fc.constant("request"), oddString, fc.oneof(anyJson, fc.constant({ method: "GET" }))),
    fc.tuple(fc.constant("response"), value, fc.oneof(anyJson, fc.constant({ status: 99 }))),
    fc.tuple(fc.constant("blob"), oddString, value),
    fc.tuple(fc.constantFrom("nope", "Push", ""), value),
    fc.constant([]),
  );
}

/** capnweb expressions: encoded plain values with special values mixed in. */
export const capExprArb: fc.Arbitrary<Json> = fc.letrec<{ expr: Json }>((tie) => ({
  expr: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    { weight: 3, arbitrary: anyJson.map(capnwebValue) },
    { weight: 1, arbitrary: capSpecialArb(tie("expr")) },
    { weight: 1, arbitrary: fc.array(tie("expr"), { maxLength: 3 }).map((a) => [a]) },
    {
      weight: 1,
      arbitrary: fc.dictionary(fc.constantFrom("message", "id", "a", "__proto__"), tie("expr"), {
        maxKeys: 2,
      }),
    },
  ),
})).expr;

/**
 * A call: `["pipeline", id, path, args]`, the path mostly one method name.
 *
 * @param args The arguments.
 * @returns The arbitrary.
 */
export function capCallArb(args: fc.Arbitrary<Json[]>): fc.Arbitrary<Json> {
  return fc.tuple(
    fc.constant("pipeline"),
    fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 3 }) }, {
      weight: 1,
      arbitrary: capIdArb,
    }),
    fc.oneof(
      { weight: 8, arbitrary: capMethodArb.map((m) => [m]) },
      { weight: 1, arbitrary: fc.array(capMethodArb, { maxLength: 3 }) },
    ),
    args,
  );
}

/**
 * One message of the capnweb protocol, each kind with odd members.
 *
 * @param args The arguments of calls.
 * @returns The arbitrary.
 */
export function capMessageArb(args: fc.Arbitrary<Json[]>): fc.Arbitrary<Json> {
  return fc.oneof(
    { weight: 6, arbitrary: capCallArb(args).map((call) => ["push", call]) },
    { weight: 1, arbitrary: capExprArb.map((e) => ["push", e]) },
    { weight: 1, arbitrary: capCallArb(args).map((call) => ["stream", call]) },
    { weight: 2, arbitrary: capIdArb.map((id) => ["pull", id]) },
    {
      weight: 2,
      arbitrary: fc.tuple(
        capIdArb,
        fc.oneof(fc.integer({ min: -2, max: 3 }), oddNumber),
      ).map(([id, n]) => ["release", id, n]),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(fc.constantFrom("resolve", "reject"), capIdArb, capExprArb),
    },
    { weight: 1, arbitrary: capExprArb.map((e) => ["abort", e]) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(["pipe"], ["push"], ["pull"], ["release", 1], [], ["nope", 1]),
    },
    { weight: 1, arbitrary: anyJson },
  );
}

/** A frame as sent: text, bytes as a text frame, or a binary frame. */
export interface Frame {
  /** The payload. */
  data: string | Uint8Array;
  /** Sent as a binary frame. */
  binary: boolean;
  /** When the frame is a call, pull its answer right after it. */
  pull?: boolean;
}

/**
 * Frames on the wire: encoded messages, and text that is not quite one (truncated, padded,
 * escaped, oversized, deeply nested, invalid UTF-8, binary).
 *
 * @param message The messages to encode.
 * @returns The arbitrary.
 */
export function frameArb(message: fc.Arbitrary<Json>): fc.Arbitrary<Frame> {
  const text = (data: string): Frame => ({ data, binary: false });
  return fc.oneof(
    { weight: 10, arbitrary: message.map((m) => text(JSON.stringify(m))) },
    {
      weight: 1,
      arbitrary: fc.tuple(message, fc.nat()).map(([m, n]) => {
        const s = JSON.stringify(m);
        return text(s.slice(0, n % Math.max(1, s.length)));
      }),
    },
    { weight: 1, arbitrary: message.map((m) => text(`${JSON.stringify(m)} trailing`)) },
    { weight: 1, arbitrary: oddString.map(text) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "",
        "null",
        "[]",
        "{}",
        '"push"',
        "1e999",
        '["pull",1e999]',
        '["release",1,1e999]',
        '["pull",-0]',
        `["pull",${"9".repeat(400)}]`,
        "[".repeat(2000) + "]".repeat(2000),
        JSON.stringify(["push", ["pipeline", 0, ["ping"], [nested(300, false)]]]),
        JSON.stringify(["push", ["pipeline", 0, ["ping"], [nested(250, true)]]]),
      ).map(text),
    },
    {
      weight: 1,
      arbitrary: fc.uint8Array({ maxLength: 32 }).map((data) => ({ data, binary: true })),
    },
    {
      weight: 1,
      arbitrary: message.map((m) => ({
        data: new TextEncoder().encode(JSON.stringify(m)),
        binary: true,
      })),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        new Uint8Array([0xff, 0xfe, 0x5b, 0x5d]),
        new Uint8Array([0x5b, 0x22, 0xc3, 0x28, 0x22, 0x5d]),
        new Uint8Array([0xed, 0xa0, 0x80]),
      ).map((data) => ({ data, binary: false })),
    },
  );
}
