// One scenario suite, two bindings: our client over capnweb (WebSocket) and over JSON-RPC against
// the same server must see the same states, artifact text, error codes and event sequences.

import assert from "node:assert/strict";
import { A2AClient, type StreamEvent } from "../client.ts";
import { A2AError, AuthenticationError } from "../mod.ts";
import { startServer, type TestServer, TOKENS, userMessage } from "./helpers.ts";

const TRANSPORTS = ["websocket", "jsonrpc"] as const;
type Transport = typeof TRANSPORTS[number];

/**
 * Runs a scenario once per binding against one server and checks that both runs give the same
 * result (which the scenario makes free of ids and timestamps).
 */
async function onBoth<T>(
  scenario: (client: A2AClient, server: TestServer, transport: Transport) => Promise<T>,
): Promise<T> {
  await using server = startServer({
    // No DNS here: example.com resolves to a public documentation address.
    push: { resolveHost: () => Promise.resolve(["93.184.215.14"]) },
  });
  const results: T[] = [];
  for (const transport of TRANSPORTS) {
    await using client = await A2AClient.connect(server.url, { token: TOKENS.alice, transport });
    assert.equal(client.transport, transport);
    results.push(await scenario(client, server, transport));
  }
  assert.deepEqual(results[1], results[0], "JSON-RPC and capnweb disagree");
  return results[0]!;
}

/** What an event says, without ids and timestamps. */
function shape(event: StreamEvent) {
  if (event.task) return { seq: event.seq, kind: "task", state: event.task.status.state };
  if (event.statusUpdate) {
    return { seq: event.seq, kind: "status", state: event.statusUpdate.status.state };
  }
  if (event.artifactUpdate) {
    const u = event.artifactUpdate;
    return {
      seq: event.seq,
      kind: "artifact",
      text: u.artifact.parts.map((p) => p.text).join(""),
      append: u.append ?? false,
      lastChunk: u.lastChunk ?? false,
    };
  }
  return {
    seq: event.seq,
    kind: "message",
    text: event.message?.parts.map((p) => p.text).join(""),
  };
}

async function shapes(stream: AsyncIterable<StreamEvent>) {
  const out = [];
  for await (const event of stream) out.push(shape(event));
  return out;
}

/** The code of the error a call fails with, or "ok". */
function codeOf(call: Promise<unknown>): Promise<number | string> {
  return call.then(() => "ok", (err) => {
    assert.ok(err instanceof A2AError, String(err));
    return err.code;
  });
}

Deno.test("both bindings: sendMessage() completes with the echoed artifact", async () => {
  const result = await onBoth(async (client) => {
    const { task } = await client.sendMessage({ message: userMessage("same on both") });
    return {
      state: task!.status.state,
      text: task!.artifacts?.flatMap((a) => a.parts).map((p) => p.text).join(""),
      history: task!.history?.map((m) => m.role),
    };
  });
  assert.equal(result.state, "TASK_STATE_COMPLETED");
  assert.equal(result.text, "same on both");
});

Deno.test("both bindings: sendStreamingMessage() gives the same events with the same seqs", async () => {
  const events = await onBoth((client) =>
    shapes(client.sendStreamingMessage({ message: userMessage("a stream of several chunks") }))
  );
  assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1));
  assert.equal(events[0]!.kind, "task");
  assert.equal(events.at(-1)!.state, "TASK_STATE_COMPLETED");
});

Deno.test("both bindings: input-required, failure and direct replies", async () => {
  await onBoth(async (client) => {
    const { task: asked } = await client.sendMessage({ message: userMessage("input: name?") });
    const { task: answered } = await client.sendMessage({
      message: userMessage("Ada", { taskId: asked!.id, contextId: asked!.contextId }),
    });
    const { task: failed } = await client.sendMessage({ message: userMessage("fail: on purpose") });
    const reply = await client.sendMessage({ message: userMessage("reply: hi there") });
    return {
      asked: asked!.status.state,
      question: asked!.status.message?.parts[0]?.text,
      answered: answered!.status.state,
      failed: failed!.status.state,
      reason: failed!.status.message?.parts[0]?.text,
      reply: reply.message?.parts[0]?.text,
      replyTask: reply.task,
    };
  });
});

Deno.test("both bindings: get, list and cancel, and the same error codes", async () => {
  const result = await onBoth(async (client) => {
    const { task } = await client.sendMessage({
      message: userMessage("slow: one two three four five six"),
      configuration: { returnImmediately: true },
    });
    const running = (await client.getTask({ id: task!.id, historyLength: 0 })).history;
    const listed = await client.listTasks({ contextId: task!.contextId });
    const canceled = await client.cancelTask({ id: task!.id });
    return {
      history: running,
      listed: listed.tasks.map((t) => t.id === task!.id),
      totalSize: listed.totalSize,
      canceled: canceled.status.state,
      cancelAgain: await codeOf(client.cancelTask({ id: task!.id })),
      unknown: await codeOf(client.getTask({ id: "no-such-task" })),
      invalid: await codeOf(client.sendMessage({ message: { ...userMessage("x"), parts: [] } })),
      terminalSubscribe: await codeOf(shapes(client.subscribeToTask({ id: task!.id }))),
      badPageSize: await codeOf(client.listTasks({ pageSize: 1000 })),
    };
  });
  assert.deepEqual(
    [result.cancelAgain, result.unknown, result.invalid, result.terminalSubscribe],
    [-32002, -32001, -32602, -32004],
  );
  assert.equal(result.canceled, "TASK_STATE_CANCELED");
});

Deno.test("both bindings: subscribeToTask() with afterSeq resumes with exactly the missed events", async () => {
  const result = await onBoth(async (client) => {
    const all = [];
    let taskId = "";
    for await (
      const event of client.sendStreamingMessage({ message: userMessage("slow: a b c d") })
    ) {
      all.push(shape(event));
      taskId ||= event.task?.id ?? "";
      if (all.length === 3) break;
    }
    const rest = await shapes(client.subscribeToTask({ id: taskId, afterSeq: 3 }));
    const replay = await shapes(client.subscribeToTask({ id: taskId, afterSeq: 0 }));
    return { first: all, rest, replay };
  });
  assert.deepEqual([...result.first, ...result.rest], result.replay);
  assert.equal(result.rest.at(-1)!.state, "TASK_STATE_COMPLETED");
});

Deno.test("both bindings: a live subscription sees a snapshot, then the rest", async () => {
  const result = await onBoth(async (client) => {
    const { task } = await client.sendMessage({
      message: userMessage("slow: x y z"),
      configuration: { returnImmediately: true },
    });
    const events = await shapes(client.subscribeToTask({ id: task!.id }));
    return { first: events[0]!.kind, last: events.at(-1)!.state };
  });
  assert.deepEqual(result, { first: "task", last: "TASK_STATE_COMPLETED" });
});

Deno.test("both bindings: the extended agent card and push config CRUD", async () => {
  await onBoth(async (client) => {
    const card = await client.getExtendedAgentCard();
    const { task } = await client.sendMessage({ message: userMessage("push target") });
    const taskId = task!.id;
    const created = await client.createTaskPushNotificationConfig({
      taskId,
      id: "cfg",
      url: "https://example.com/hook",
    });
    const got = await client.getTaskPushNotificationConfig({ taskId, id: "cfg" });
    const listed = await client.listTaskPushNotificationConfigs({ taskId });
    await client.deleteTaskPushNotificationConfig({ taskId, id: "cfg" });
    const after = await client.listTaskPushNotificationConfigs({ taskId });
    return {
      description: card.description,
      bindings: card.supportedInterfaces.map((i) => i.protocolBinding),
      created: { id: created.id, url: created.url, sameTask: created.taskId === taskId },
      got: got.url,
      listed: listed.configs.map((c) => c.id),
      after: after.configs.length,
      missing: await codeOf(client.getTaskPushNotificationConfig({ taskId, id: "cfg" })),
    };
  });
});

Deno.test("both bindings: a refused token ends in AuthenticationError", async () => {
  await using server = startServer();
  for (const transport of TRANSPORTS) {
    // capnweb refuses at connect(); JSON-RPC has no session, so the first call is refused.
    await assert.rejects(async () => {
      await using client = await A2AClient.connect(server.url, { token: "wrong", transport });
      await client.listTasks();
    }, AuthenticationError);
  }
});
