// Attacks from one client address, each run while a well-behaved client at another address keeps
// being served: floods before authentication, too many calls in flight, too many sockets, login
// guessing, and malformed frames whose text must not come back or fill the log.

import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { A2AClient } from "../client.ts";
import { ErrorCode } from "../mod.ts";
import { ABORT_REASON, CLOSE_ABORTED } from "../src/rpc/size_limited_transport.ts";
import {
  postJsonRpc,
  startServer,
  type TestServer,
  TOKENS,
  userMessage,
  waitFor,
} from "./helpers.ts";

/** Requests carrying this header count as coming from its value's address. */
const ADDRESS_HEADER = "x-test-client";

/** Starts a server whose per-address limits count by the test's address header. */
function startAttributed(limits: Record<string, number> = {}): TestServer {
  return startServer({
    limits,
    clientAddress: (req) => req.headers.get(ADDRESS_HEADER) ?? "198.51.100.1",
  });
}

interface RawSocket {
  ws: WebSocket;
  /** Messages received so far, parsed. */
  received: unknown[];
  /** Resolves with the close code and reason. */
  closed: Promise<{ code: number; reason: string }>;
  send(frame: unknown): void;
  /** Waits for a message that satisfies `match`. */
  next(match: (m: unknown) => boolean): Promise<unknown>;
}

/** Opens a raw capnweb WebSocket from an attacker's address. */
async function rawSocket(server: TestServer, address = "203.0.113.9"): Promise<RawSocket> {
  const ws = new WebSocket(`${server.url.replace(/^http/, "ws")}/a2a/capnweb`, {
    headers: { [ADDRESS_HEADER]: address },
  });
  const received: unknown[] = [];
  const waiters: { match: (m: unknown) => boolean; resolve: (m: unknown) => void }[] = [];
  ws.on("message", (data: Uint8Array) => {
    const m: unknown = JSON.parse(new TextDecoder().decode(data));
    received.push(m);
    for (const w of [...waiters]) {
      if (w.match(m)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on(
      "close",
      (code: number, reason: Uint8Array) =>
        resolve({ code, reason: new TextDecoder().decode(reason) }),
    )
  );
  await new Promise((resolve, reject) => {
    ws.on("open", resolve);
    ws.on("error", reject);
  });
  return {
    ws,
    received,
    closed,
    send: (frame) => ws.send(typeof frame === "string" ? frame : JSON.stringify(frame)),
    next: (match) =>
      new Promise((resolve) => {
        const found = received.find(match);
        if (found !== undefined) resolve(found);
        else waiters.push({ match, resolve });
      }),
  };
}

/** A raw call on the root object (import 0). */
function rootCall(method: string, args: unknown[] = []): unknown {
  return ["push", ["pipeline", 0, [method], args]];
}

/** Whether a message is the answer (resolve or reject) to export `id`. */
function answerTo(id: number): (m: unknown) => boolean {
  return (m) => Array.isArray(m) && (m[0] === "resolve" || m[0] === "reject") && m[1] === id;
}

/** The well-behaved client: connects, then keeps sending until `stop`; returns its results. */
async function healthyTraffic(server: TestServer, stop: Promise<unknown>): Promise<number> {
  await using client = await A2AClient.connect(server.url, { token: TOKENS.bob });
  let done = false;
  stop.finally(() => done = true);
  let served = 0;
  do {
    const res = await client.sendMessage({ message: userMessage("still here") });
    assert.equal(res.task?.status.state, "TASK_STATE_COMPLETED");
    served++;
    await new Promise((r) => setTimeout(r, 5));
  } while (!done);
  return served;
}

Deno.test("pushes never pulled before authenticate close the socket with 1008 past preAuthMaxCalls", async () => {
  await using server = startAttributed();
  const attacker = await rawSocket(server);
  const healthy = healthyTraffic(server, attacker.closed);
  // Calls nobody pulls: the 17th ends the session.
  for (let i = 0; i < 17; i++) attacker.send(rootCall("ping"));
  const { code, reason } = await attacker.closed;
  assert.equal(code, 1008);
  assert.match(reason, /more than 16 calls outstanding before authenticating/);
  assert.ok(await healthy >= 1);
});

Deno.test("a flood of 100,000 frames before authenticate is cut off at once", async () => {
  await using server = startAttributed();
  const attacker = await rawSocket(server);
  const healthy = healthyTraffic(server, attacker.closed);
  const frame = JSON.stringify(rootCall("ping"));
  for (let i = 0; i < 100_000 && attacker.ws.readyState === WebSocket.OPEN; i++) {
    attacker.ws.send(frame);
  }
  // The server closes as soon as it has read 17 of them (the attacker, still writing, may see
  // the close frame or only the reset that follows it).
  const { code } = await attacker.closed;
  assert.ok(code === 1008 || code === 1006, `close code ${code}`);
  assert.ok(
    attacker.received.every((m) => Array.isArray(m) && m[0] === "abort"),
    "none of the calls was answered",
  );
  assert.ok(await healthy >= 1);
});

Deno.test("bytes and capabilities before authenticate are capped", async () => {
  await using server = startAttributed({ preAuthMaxBytes: 10_000 });
  const big = await rawSocket(server);
  const healthy = healthyTraffic(server, big.closed);
  for (let i = 0; i < 5; i++) big.send(rootCall("ping", ["x".repeat(3000)]));
  const bytes = await big.closed;
  assert.equal(bytes.code, 1008);
  assert.match(bytes.reason, /more than 10000 bytes before authenticating/);

  const caps = await rawSocket(server);
  const exports = Array.from({ length: 20 }, (_, i) => ["export", -(i + 1)]);
  caps.send(rootCall("ping", exports));
  const imports = await caps.closed;
  assert.equal(imports.code, 1008);
  assert.match(imports.reason, /more than 16 capabilities before authenticating/);
  assert.ok(await healthy >= 1);
});

Deno.test("a call past maxCallsInFlight fails alone with -31005 and the session goes on", async () => {
  await using server = startAttributed({ maxCallsInFlight: 8 });
  const raw = await rawSocket(server);
  raw.send(rootCall("authenticate", [{ token: TOKENS.alice }]));
  raw.send(["pull", 1]);
  await raw.next(answerTo(1));
  // Import 1 is the capability; 7 more calls fill the window of 8, the 9th is refused.
  for (let id = 2; id <= 9; id++) raw.send(["push", ["pipeline", 1, ["listTasks"], [{}]]]);
  const refused = await raw.next(answerTo(9)) as [string, number, unknown];
  assert.equal(refused[0], "reject");
  assert.match(JSON.stringify(refused[2]), new RegExp(`${ErrorCode.QuotaExceeded}`));
  assert.match(JSON.stringify(refused[2]), /Too many calls in flight on this connection/);
  // Released calls make room again.
  for (let id = 2; id <= 9; id++) raw.send(["release", id, 1]);
  raw.send(["push", ["pipeline", 1, ["listTasks"], [{}]]]);
  raw.send(["pull", 10]);
  const ok = await raw.next(answerTo(10)) as [string];
  assert.equal(ok[0], "resolve");
  raw.ws.close();
  await raw.closed;
});

Deno.test("the real client's calls never pile up against maxCallsInFlight", async () => {
  await using server = startServer({ limits: { maxCallsInFlight: 8, preAuthMaxCalls: 4 } });
  await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
  // Far more sequential calls than the window: each one is released after its answer.
  for (let i = 0; i < 100; i++) await client.listTasks({ pageSize: 1 });
  const tasks = await Promise.all(
    Array.from({ length: 6 }, () => client.sendMessage({ message: userMessage("x") })),
  );
  assert.equal(tasks.length, 6);
});

Deno.test("maxConnectionsPerAddress refuses a WebSocket and an SSE stream with 429, other addresses go on", async () => {
  await using server = startAttributed({ maxConnectionsPerAddress: 2, maxConnections: 5 });
  const a = await rawSocket(server);
  const b = await rawSocket(server);
  const refused = await fetch(`${server.url}/a2a/capnweb`, {
    headers: {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
      [ADDRESS_HEADER]: "203.0.113.9",
    },
  });
  assert.equal(refused.status, 429);
  assert.equal(refused.headers.get("retry-after"), "1");
  const body = await refused.json();
  assert.equal(body.error.code, ErrorCode.QuotaExceeded);
  assert.match(body.error.message, /Too many open connections from this address: the limit is 2/);
  // The same address's SSE stream is refused too, on the JSON-RPC face.
  const sse = await fetch(`${server.url}/a2a/jsonrpc`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${TOKENS.alice}`,
      "a2a-version": "1.0",
      [ADDRESS_HEADER]: "203.0.113.9",
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "SendStreamingMessage",
      params: { message: userMessage("hi") },
    }),
  });
  assert.equal(sse.status, 429);
  assert.equal((await sse.json()).error.code, ErrorCode.QuotaExceeded);
  // Another address is served, until the server's own total is reached.
  await using client = await A2AClient.connect(server.url, { token: TOKENS.bob });
  assert.equal(
    (await client.sendMessage({ message: userMessage("ok") })).task?.status.state,
    "TASK_STATE_COMPLETED",
  );
  const c = await rawSocket(server, "192.0.2.50");
  const d = await rawSocket(server, "192.0.2.51");
  assert.equal(server.handler.stats().connections, 5);
  const full = await fetch(`${server.url}/a2a/capnweb`, {
    headers: {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
      [ADDRESS_HEADER]: "192.0.2.52",
    },
  });
  assert.equal(full.status, 503);
  assert.equal((await full.json()).error.code, ErrorCode.ServiceUnavailable);
  for (const s of [a, b, c, d]) s.ws.close();
  await Promise.all([a, b, c, d].map((s) => s.closed));
  // Closed sockets are uncounted; bob's stays.
  await waitFor(
    () => server.handler.stats().connections === 1,
    () => JSON.stringify(server.handler.stats()),
  );
});

Deno.test("failed logins from one address are throttled with 429 on /a2a/auth, JSON-RPC and authenticate", async () => {
  await using server = startAttributed({ authFailureBurst: 5, authFailuresPerMinute: 6 });
  const attacker = { [ADDRESS_HEADER]: "203.0.113.9" };
  const ticket = (token: string, headers: Record<string, string> = attacker) =>
    fetch(`${server.url}/a2a/auth`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, ...headers },
    });
  for (let i = 0; i < 5; i++) {
    const res = await ticket(`guess-${i}`);
    assert.equal(res.status, 401);
    await res.body?.cancel();
  }
  // The burst is used up: even a right token from that address waits, on every face.
  const limited = await ticket(TOKENS.alice);
  assert.equal(limited.status, 429);
  assert.equal(limited.headers.get("retry-after"), "10");
  assert.equal((await limited.json()).error.code, ErrorCode.RateLimited);
  const rpc = await fetch(`${server.url}/a2a/jsonrpc`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${TOKENS.alice}`,
      "a2a-version": "1.0",
      ...attacker,
    },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ListTasks", params: {} }),
  });
  assert.equal(rpc.status, 429);
  assert.ok(Number(rpc.headers.get("retry-after")) >= 1);
  assert.equal((await rpc.json()).error.code, ErrorCode.RateLimited);
  const raw = await rawSocket(server);
  raw.send(rootCall("authenticate", [{ token: TOKENS.alice }]));
  raw.send(["pull", 1]);
  const refused = await raw.next(answerTo(1)) as [string, number, unknown];
  assert.equal(refused[0], "reject");
  assert.match(JSON.stringify(refused[2]), new RegExp(`${ErrorCode.RateLimited}`));
  raw.ws.close();
  await raw.closed;
  // Another address is not affected, on any face.
  const other = await ticket(TOKENS.bob, { [ADDRESS_HEADER]: "198.51.100.7" });
  assert.equal(other.status, 200);
  await other.body?.cancel();
  const res = await postJsonRpc(server.url, "ListTasks", {}, TOKENS.bob);
  assert.equal(res.status, 200);
  await res.body?.cancel();
  await using client = await A2AClient.connect(server.url, { token: TOKENS.bob });
  assert.ok((await client.listTasks({})).tasks);
});

Deno.test("a WebSocket is closed with 1008 after maxAuthFailuresPerSocket failed authenticate calls", async () => {
  await using server = startAttributed({ maxAuthFailuresPerSocket: 3 });
  const raw = await rawSocket(server);
  const healthy = healthyTraffic(server, raw.closed);
  for (let id = 1; id <= 10 && raw.ws.readyState === WebSocket.OPEN; id++) {
    raw.send(rootCall("authenticate", [{ token: `guess-${id}` }]));
    raw.send(["pull", id]);
    await Promise.race([raw.next(answerTo(id)), raw.closed]);
  }
  const { code, reason } = await raw.closed;
  assert.equal(code, 1008);
  assert.match(reason, /Too many failed authentication attempts/);
  // Three tokens were checked; any attempt after them was refused unchecked, until the close.
  const rejects = raw.received.filter((m) => Array.isArray(m) && m[0] === "reject");
  assert.equal(rejects.filter((m) => /Invalid bearer token/.test(JSON.stringify(m))).length, 3);
  assert.ok(
    rejects.slice(3).every((m) => /Too many failed authentication/.test(JSON.stringify(m))),
  );
  assert.ok(await healthy >= 1);
});

Deno.test("the default client address is the socket's: failed logins from 127.0.0.1 are throttled", async () => {
  await using server = startServer({ limits: { authFailureBurst: 2 } });
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) {
    const res = await postJsonRpc(server.url, "ListTasks", {}, `guess-${i}`);
    statuses.push(res.status);
    await res.body?.cancel();
  }
  assert.deepEqual(statuses, [401, 401, 429]);
});

Deno.test("a malformed frame aborts only its session, with a short fixed reason and a cut-short log", async () => {
  const records: LogRecord[] = [];
  await configure({
    sinks: { mem: (r) => records.push(r) },
    loggers: [
      { category: ["a2a-capnweb"], lowestLevel: "debug", sinks: ["mem"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
    reset: true,
  });
  try {
    await using server = startAttributed();
    const raw = await rawSocket(server);
    const healthy = healthyTraffic(server, raw.closed);
    raw.send(rootCall("authenticate", [{ token: TOKENS.alice }]));
    raw.send(["pull", 1]);
    await raw.next(answerTo(1));
    // A valid JSON array that is no capnweb message, 3 MB long; then a release of an unknown id.
    raw.send(JSON.stringify(["bogus", "A".repeat(3_000_000)]));
    const { code, reason } = await raw.closed;
    assert.equal(code, CLOSE_ABORTED);
    assert.equal(reason, ABORT_REASON);
    const abort = raw.received.find((m) => Array.isArray(m) && m[0] === "abort");
    assert.ok(abort, "the client is told why");
    assert.doesNotMatch(JSON.stringify(abort), /AAAA/);
    assert.ok(await healthy >= 1);
    const longest = Math.max(...records.map((r) => JSON.stringify(r.properties).length));
    assert.ok(longest < 2000, `a log record is ${longest} characters long`);

    const raw2 = await rawSocket(server);
    raw2.send(["release", 77, 1]);
    const second = await raw2.closed;
    assert.equal(second.code, CLOSE_ABORTED);
    assert.equal(second.reason, ABORT_REASON);
    assert.doesNotMatch(second.reason, /exports table/);
  } finally {
    await reset();
  }
});
