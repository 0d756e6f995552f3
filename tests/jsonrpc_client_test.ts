// Our client against an agent built with the official JS SDK's server side, whose card lists
// only a JSONRPC interface: A2AClient.connect() has to fall back to the JSON-RPC binding.

import assert from "node:assert/strict";
import { A2AClient, JsonRpcClient, type StreamEvent, type Task } from "../client.ts";
import {
  A2AError,
  AuthenticationError,
  InvalidAgentResponseError,
  TaskNotCancelableError,
  TaskNotFoundError,
  UnsupportedOperationError,
  VersionNotSupportedError,
} from "../mod.ts";
import { userMessage, waitFor } from "./helpers.ts";
import { SDK_AGENT_TOKEN, startSdkAgent } from "./sdk_agent.ts";

function artifactText(task: Task): string {
  return (task.artifacts ?? []).flatMap((a) => a.parts).map((p) => p.text ?? "").join("");
}

async function collect(stream: AsyncIterable<StreamEvent>): Promise<StreamEvent[]> {
  const out: StreamEvent[] = [];
  for await (const event of stream) out.push(event);
  return out;
}

Deno.test("A2AClient.connect() uses the JSON-RPC interface of an agent whose card lists only it", async () => {
  await using agent = startSdkAgent();
  await using client = await A2AClient.connect(agent.url, {
    token: SDK_AGENT_TOKEN,
    extensions: ["https://example.com/ext/a", "https://example.com/ext/b"],
  });
  assert.equal(client.transport, "jsonrpc");
  const { task } = await client.sendMessage({ message: userMessage("hello sdk agent") });
  assert.ok(task);
  assert.equal(task.status.state, "TASK_STATE_COMPLETED");
  assert.equal(artifactText(task), "hello sdk agent");
  const headers = agent.requests.at(-1)!;
  assert.equal(headers.get("a2a-version"), "1.0");
  assert.equal(
    headers.get("a2a-extensions"),
    "https://example.com/ext/a,https://example.com/ext/b",
  );
  assert.equal(headers.get("content-type"), "application/json");
});

Deno.test("sendStreamingMessage() over JSON-RPC yields the SDK agent's events in order", async () => {
  await using agent = startSdkAgent();
  await using client = await A2AClient.connect(agent.url, { token: SDK_AGENT_TOKEN });
  const events = await collect(
    client.sendStreamingMessage({ message: userMessage("stream from the sdk") }),
  );
  const kinds = events.map((e) =>
    e.task ? "task" : e.statusUpdate ? "status" : e.artifactUpdate ? "artifact" : "message"
  );
  assert.deepEqual(kinds, ["task", "status", "artifact", "artifact", "status"]);
  assert.equal(events.at(-1)!.statusUpdate!.status.state, "TASK_STATE_COMPLETED");
  const text = events.flatMap((e) => e.artifactUpdate?.artifact.parts ?? []).map((p) => p.text)
    .join("");
  assert.equal(text, "stream from the sdk");
  // The SDK's server sends no SSE ids, so there is no sequence number to report.
  assert.deepEqual(events.map((e) => e.seq), events.map(() => 0));
});

Deno.test("getTask(), listTasks() and cancelTask() over JSON-RPC; errors come back as our classes", async () => {
  await using agent = startSdkAgent();
  await using client = await A2AClient.connect(agent.url, { token: SDK_AGENT_TOKEN });
  const { task } = await client.sendMessage({
    message: userMessage("slow: one two three four five"),
    configuration: { returnImmediately: true },
  });
  assert.ok(task);
  const got = await client.getTask({ id: task.id });
  assert.equal(got.id, task.id);
  const list = await client.listTasks();
  assert.ok(list.tasks.some((t) => t.id === task.id));
  const canceled = await client.cancelTask({ id: task.id });
  assert.equal(canceled.status.state, "TASK_STATE_CANCELED");

  const { task: done } = await client.sendMessage({ message: userMessage("quick") });
  await assert.rejects(client.cancelTask({ id: done!.id }), TaskNotCancelableError);
  await assert.rejects(client.getTask({ id: "no-such-task" }), TaskNotFoundError);
  await assert.rejects(client.getExtendedAgentCard(), UnsupportedOperationError);
});

Deno.test("subscribeToTask() over JSON-RPC gets a snapshot, then events up to completion", async () => {
  await using agent = startSdkAgent();
  await using client = await A2AClient.connect(agent.url, { token: SDK_AGENT_TOKEN });
  const { task } = await client.sendMessage({
    message: userMessage("slow: a b c"),
    configuration: { returnImmediately: true },
  });
  const events = await collect(client.subscribeToTask({ id: task!.id }));
  assert.equal(events[0]!.task?.id, task!.id);
  assert.equal(events.at(-1)!.statusUpdate?.status.state, "TASK_STATE_COMPLETED");
  await assert.rejects(
    collect(client.subscribeToTask({ id: task!.id })),
    UnsupportedOperationError,
  );
});

Deno.test("leaving a JSON-RPC stream early cancels the SSE response", async () => {
  await using agent = startSdkAgent();
  await using client = await A2AClient.connect(agent.url, { token: SDK_AGENT_TOKEN });
  for await (const event of client.sendStreamingMessage({ message: userMessage("slow: x y z") })) {
    if (event.artifactUpdate) break;
  }
  await waitFor(() => agent.openStreams === 0, () => `${agent.openStreams} streams open`);
});

Deno.test("push notification configs round-trip over JSON-RPC", async () => {
  await using agent = startSdkAgent();
  await using client = await A2AClient.connect(agent.url, { token: SDK_AGENT_TOKEN });
  const { task } = await client.sendMessage({ message: userMessage("push") });
  const taskId = task!.id;
  const created = await client.createTaskPushNotificationConfig({
    taskId,
    id: "cfg-1",
    url: "https://example.com/hook",
  });
  assert.equal(created.id, "cfg-1");
  const got = await client.getTaskPushNotificationConfig({ taskId, id: "cfg-1" });
  assert.equal(got.url, "https://example.com/hook");
  const list = await client.listTaskPushNotificationConfigs({ taskId });
  assert.deepEqual(list.configs.map((c) => c.id), ["cfg-1"]);
  await client.deleteTaskPushNotificationConfig({ taskId, id: "cfg-1" });
  assert.deepEqual((await client.listTaskPushNotificationConfigs({ taskId })).configs, []);
});

Deno.test("a refused token over JSON-RPC fails the first call with AuthenticationError", async () => {
  await using agent = startSdkAgent();
  await using client = await A2AClient.connect(agent.url, { token: "wrong" });
  await assert.rejects(client.listTasks(), AuthenticationError);
});

Deno.test("an A2A-Version the agent does not serve fails with VersionNotSupportedError", async () => {
  await using agent = startSdkAgent();
  await using client = await A2AClient.connect(agent.url, {
    token: SDK_AGENT_TOKEN,
    version: "9.9",
  });
  const err = await client.listTasks().catch((e) => e);
  assert.ok(err instanceof VersionNotSupportedError, String(err));
  assert.equal(err.code, -32009);
});

Deno.test("connect() with transport websocket refuses an agent that has no capnweb interface", async () => {
  await using agent = startSdkAgent();
  await assert.rejects(
    A2AClient.connect(agent.url, { token: SDK_AGENT_TOKEN, transport: "websocket" }),
    /no capnweb interface/,
  );
});

Deno.test("close() ends an open JSON-RPC stream with a client-closed error", async () => {
  await using agent = startSdkAgent();
  const client = await A2AClient.connect(agent.url, { token: SDK_AGENT_TOKEN });
  const stream = client.sendStreamingMessage({ message: userMessage("slow: p q r s") });
  const it = stream[Symbol.asyncIterator]();
  await it.next();
  await client.close();
  const err = await it.next().catch((e) => e);
  assert.ok(err instanceof A2AError, String(err));
  assert.equal(err.reason, "CLIENT_CLOSED");
  await assert.rejects(client.listTasks(), (e: A2AError) => e.reason === "CLIENT_CLOSED");
  await waitFor(() => agent.openStreams === 0);
});

Deno.test("JsonRpcClient can be used on its own, with the interface URL from a card", async () => {
  await using agent = startSdkAgent();
  const rpc = new JsonRpcClient(`${agent.url}/a2a/jsonrpc`, { token: SDK_AGENT_TOKEN });
  try {
    const { task } = await rpc.sendMessage({ message: userMessage("direct") });
    assert.equal(artifactText(task!), "direct");
    const ping = await rpc.ping();
    assert.ok(!Number.isNaN(Date.parse(ping.time)));
  } finally {
    rpc.close();
  }
});

Deno.test("JsonRpcClient refuses an SSE event over maxEventBytes with InvalidAgentResponseError", async () => {
  await using agent = startSdkAgent();
  const rpc = new JsonRpcClient(`${agent.url}/a2a/jsonrpc`, {
    token: SDK_AGENT_TOKEN,
    maxEventBytes: 1000,
  });
  try {
    // The SDK agent echoes the text as an artifact event, which is then over the limit.
    const err = await collect(rpc.sendStreamingMessage({ message: userMessage("z".repeat(2000)) }))
      .catch((e) => e);
    assert.ok(err instanceof InvalidAgentResponseError, String(err));
    assert.equal(err.code, -32006);
    assert.equal(err.message, "SSE event is larger than the 1000-byte limit");
    // A plain response has no such limit, and the client goes on.
    const { task } = await rpc.sendMessage({ message: userMessage("z".repeat(2000)) });
    assert.equal(artifactText(task!).length, 2000);
  } finally {
    rpc.close();
  }
  await waitFor(() => agent.openStreams === 0);
});
