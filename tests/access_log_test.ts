// The access log over real sockets: one info line per HTTP request (with the operation inside it
// on JSON-RPC and HTTP+JSON) and per capnweb operation, never a token or ticket, and a switch.

import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { A2AClient } from "../client.ts";
import { ACCESS_LOG_CATEGORY } from "../mod.ts";
import { postJsonRpc, startServer, TOKENS, userMessage } from "./helpers.ts";

/** Captures the access log for the body of one test. */
async function capturing(body: (records: LogRecord[]) => Promise<void>): Promise<LogRecord[]> {
  const records: LogRecord[] = [];
  await configure({
    sinks: { capture: (r) => records.push(r) },
    loggers: [
      { category: [...ACCESS_LOG_CATEGORY], lowestLevel: "info", sinks: ["capture"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
    reset: true,
  });
  try {
    await body(records);
  } finally {
    await reset();
  }
  return records;
}

Deno.test("each HTTP request and each capnweb operation writes one access line with its outcome", async () => {
  const records = await capturing(async () => {
    await using server = startServer();
    const res = await postJsonRpc(server.url, "GetTask", { id: "nope" });
    await res.body?.cancel();
    await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
    const { task } = await client.sendMessage({ message: userMessage("logged") });
    await client.getTask({ id: task!.id });
  });
  for (const r of records) assert.equal(r.level, "info");
  const props = records.map((r) => r.properties as Record<string, unknown>);
  const jsonrpc = props.find((p) => p.path === "/a2a/jsonrpc");
  assert.ok(jsonrpc, JSON.stringify(props));
  assert.equal(jsonrpc.method, "POST");
  assert.equal(jsonrpc.status, 200);
  assert.equal(jsonrpc.operation, "GetTask");
  assert.equal(jsonrpc.userId, "alice");
  assert.equal(jsonrpc.taskId, "nope");
  assert.equal(jsonrpc.code, -32001);
  assert.equal(typeof jsonrpc.durationMs, "number");
  assert.equal(jsonrpc.address, "127.0.0.1");
  // The HTTP JSON-RPC call is one line, not a request line and an operation line.
  assert.equal(props.filter((p) => p.operation === "GetTask" && p.binding === "jsonrpc").length, 0);

  const upgrade = props.find((p) => p.path === "/a2a/capnweb" && p.method === "GET");
  assert.equal(upgrade?.status, 101);
  const send = props.find((p) => p.binding === "capnweb" && p.operation === "SendMessage");
  assert.ok(send, JSON.stringify(props));
  assert.equal(send.userId, "alice");
  assert.equal(send.code, 0);
  assert.equal(typeof send.taskId, "string");
  const get = props.find((p) => p.binding === "capnweb" && p.operation === "GetTask");
  assert.equal(get?.taskId, send.taskId);
});

Deno.test("access lines never carry a token or a ticket", async () => {
  let ticket = "";
  const records = await capturing(async () => {
    await using server = startServer();
    const issued = await fetch(`${server.url}/a2a/auth`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKENS.alice}` },
      signal: AbortSignal.timeout(5000),
    });
    ticket = (await issued.json()).ticket;
    await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
    await client.listTasks({});
    const res = await postJsonRpc(server.url, "ListTasks", {}, TOKENS.bob);
    await res.body?.cancel();
    const rest = await fetch(`${server.url}/a2a/rest/tasks?token=${TOKENS.bob}`, {
      headers: { authorization: `Bearer ${TOKENS.bob}`, "a2a-version": "1.0" },
      signal: AbortSignal.timeout(5000),
    });
    await rest.body?.cancel();
  });
  assert.ok(records.length >= 5, `${records.length} lines`);
  assert.ok(ticket.length > 10);
  const text = records.map((r) => JSON.stringify([r.message, r.properties])).join("\n");
  for (const secret of [TOKENS.alice, TOKENS.bob, ticket]) {
    assert.equal(text.includes(secret), false, `the log shows ${secret}`);
  }
});

Deno.test("accessLog: false writes no access lines", async () => {
  const records = await capturing(async () => {
    await using server = startServer({ accessLog: false });
    const res = await postJsonRpc(server.url, "ListTasks", {});
    await res.body?.cancel();
    await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
    await client.listTasks({});
  });
  assert.deepEqual(records, []);
});
