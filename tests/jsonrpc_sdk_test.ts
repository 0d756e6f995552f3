// Interop: the official A2A JS SDK's client (npm:@a2a-js/sdk) against our real server, over the
// JSON-RPC binding that our agent card lists after the capnweb interface.

import assert from "node:assert/strict";
import {
  type Message as SdkMessage,
  type StreamResponse as SdkStreamResponse,
  type Task as SdkTask,
  TaskState,
} from "@a2a-js/sdk";
import {
  type Client,
  ClientFactory,
  ClientFactoryOptions,
  JsonRpcTransportFactory,
} from "@a2a-js/sdk/client";
import {
  JsonRpcTransportError,
  RequestMalformedError,
  TaskNotCancelableError,
  TaskNotFoundError,
  UnsupportedOperationError,
  VersionNotSupportedError,
} from "@a2a-js/sdk/errors";
import { startServer, type TestServer, TOKENS } from "./helpers.ts";
import { sdkSend } from "./sdk_messages.ts";

/** Every request the SDK made: URL and headers. */
interface Seen {
  url: string;
  headers: Headers;
}

async function sdkClient(
  server: TestServer,
  token: string | null = TOKENS.alice,
): Promise<{ client: Client; seen: Seen[] }> {
  const seen: Seen[] = [];
  const fetchImpl = (input: RequestInfo | URL, init?: RequestInit) => {
    const headers = new Headers(init?.headers);
    if (token !== null) headers.set("authorization", `Bearer ${token}`);
    seen.push({ url: String(input), headers });
    return fetch(input, { ...init, headers });
  };
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ fetchImpl })],
    }),
  );
  return { client: await factory.createFromUrl(server.url), seen };
}

function artifactText(task: SdkTask): string {
  return task.artifacts.flatMap((a) => a.parts)
    .map((p) => p.content?.$case === "text" ? p.content.value : "").join("");
}

function asTask(result: SdkTask | SdkMessage): SdkTask {
  assert.ok("status" in result, "expected a task");
  return result;
}

async function collect(stream: AsyncIterable<SdkStreamResponse>): Promise<SdkStreamResponse[]> {
  const out: SdkStreamResponse[] = [];
  for await (const event of stream) out.push(event);
  return out;
}

Deno.test("ClientFactory picks the JSONRPC interface from our card and sends A2A-Version 1.0", async () => {
  await using server = startServer();
  const { client, seen } = await sdkClient(server);
  assert.equal(client.transport.protocolName, "JSONRPC");
  assert.equal(client.protocolVersion, "1.0");
  const task = asTask(await client.sendMessage(sdkSend("hello from the sdk")));
  assert.equal(task.status?.state, TaskState.TASK_STATE_COMPLETED);
  assert.equal(artifactText(task), "hello from the sdk");
  const rpc = seen.filter((s) => s.url.endsWith("/a2a/jsonrpc"));
  assert.equal(rpc.length, 1);
  assert.equal(rpc[0]!.headers.get("a2a-version"), "1.0");
});

Deno.test("SDK sendMessageStream() receives task, working, artifact chunks, completed in order", async () => {
  await using server = startServer();
  const { client } = await sdkClient(server);
  const events = await collect(
    client.sendMessageStream(sdkSend("stream me back please, in chunks")),
  );
  const kinds = events.map((e) => e.payload?.$case);
  assert.equal(kinds[0], "task");
  assert.equal(kinds[1], "statusUpdate");
  assert.equal(kinds.at(-1), "statusUpdate");
  assert.ok(kinds.filter((k) => k === "artifactUpdate").length >= 2);
  const states = events.flatMap((e) =>
    e.payload?.$case === "statusUpdate" ? [e.payload.value.status?.state] : []
  );
  assert.deepEqual(states, [TaskState.TASK_STATE_WORKING, TaskState.TASK_STATE_COMPLETED]);
  const text = events.flatMap((e) =>
    e.payload?.$case === "artifactUpdate"
      ? e.payload.value.artifact!.parts.map((p) =>
        p.content?.$case === "text" ? p.content.value : ""
      )
      : []
  ).join("");
  assert.equal(text, "stream me back please, in chunks");
});

Deno.test("SDK getTask() and listTasks() see the task; an unknown id fails with TaskNotFoundError", async () => {
  await using server = startServer();
  const { client } = await sdkClient(server);
  const task = asTask(await client.sendMessage(sdkSend("find me")));
  const got = await client.getTask({ tenant: "", id: task.id });
  assert.equal(got.id, task.id);
  assert.equal(got.status?.state, TaskState.TASK_STATE_COMPLETED);
  const list = await client.listTasks({
    tenant: "",
    contextId: "",
    status: TaskState.TASK_STATE_UNSPECIFIED,
    pageToken: "",
    statusTimestampAfter: undefined,
  });
  assert.deepEqual(list.tasks.map((t) => t.id), [task.id]);
  assert.equal(list.totalSize, 1);
  const err = await client.getTask({ tenant: "", id: "no-such-task" }).catch((e) => e);
  assert.ok(err instanceof TaskNotFoundError, String(err));
  assert.equal((err as { envelopeCode?: number }).envelopeCode, -32001);
});

Deno.test("SDK cancelTask() cancels a slow task and fails with TaskNotCancelableError afterwards", async () => {
  await using server = startServer();
  const { client } = await sdkClient(server);
  const task = asTask(await client.sendMessage(sdkSend("slow: one two three four five six", true)));
  assert.notEqual(task.status?.state, TaskState.TASK_STATE_COMPLETED);
  const canceled = await client.cancelTask({ tenant: "", id: task.id, metadata: undefined });
  assert.equal(canceled.status?.state, TaskState.TASK_STATE_CANCELED);
  const err = await client.cancelTask({ tenant: "", id: task.id, metadata: undefined })
    .catch((e) => e);
  assert.ok(err instanceof TaskNotCancelableError, String(err));
  assert.equal((err as { envelopeCode?: number }).envelopeCode, -32002);
});

Deno.test("SDK resubscribeTask() gets a snapshot then the live events up to completion", async () => {
  await using server = startServer();
  const { client } = await sdkClient(server);
  const task = asTask(await client.sendMessage(sdkSend("slow: a b c", true)));
  const events = await collect(client.resubscribeTask({ tenant: "", id: task.id }));
  assert.equal(events[0]?.payload?.$case, "task");
  const last = events.at(-1)?.payload;
  assert.equal(last?.$case, "statusUpdate");
  assert.equal(last.value.status?.state, TaskState.TASK_STATE_COMPLETED);
  // A finished task cannot be subscribed to (spec 9.4.6).
  const err = await collect(client.resubscribeTask({ tenant: "", id: task.id })).catch((e) => e);
  assert.ok(err instanceof UnsupportedOperationError, String(err));
});

Deno.test("SDK leaving a stream early closes the subscription on the server", async () => {
  await using server = startServer();
  const { client } = await sdkClient(server);
  for await (const event of client.sendMessageStream(sdkSend("slow: one two three four five"))) {
    if (event.payload?.$case === "artifactUpdate") break;
  }
  await server.settled();
});

Deno.test("SDK getAgentCard() fetches the extended card with GetExtendedAgentCard", async () => {
  await using server = startServer();
  const { client } = await sdkClient(server);
  const card = await client.getAgentCard();
  assert.equal(card.description, "extended");
  assert.ok(card.supportedInterfaces.some((i) => i.protocolBinding === "JSONRPC"));
});

Deno.test("SDK sees -32602 for a message without parts as RequestMalformedError", async () => {
  await using server = startServer();
  const { client } = await sdkClient(server);
  const request = sdkSend("x");
  request.message.parts = [];
  const err = await client.sendMessage(request).catch((e) => e);
  assert.ok(err instanceof RequestMalformedError, String(err));
  assert.equal((err as { envelopeCode?: number }).envelopeCode, -32602);
});

Deno.test("SDK without a token gets HTTP 401 with the -31001 JSON-RPC error", async () => {
  await using server = startServer();
  for (const token of [null, "wrong-token"]) {
    const { client } = await sdkClient(server, token);
    const err = await client.getTask({ tenant: "", id: "x" }).catch((e) => e);
    assert.ok(err instanceof JsonRpcTransportError, String(err));
    assert.equal(err.envelopeCode, -31001);
  }
});

Deno.test("SDK transport used without its Client sends no A2A-Version and gets VersionNotSupportedError", async () => {
  await using server = startServer();
  const card = await (await fetch(`${server.url}/.well-known/agent-card.json`)).json();
  const fetchImpl = (input: RequestInfo | URL, init?: RequestInit) => {
    const headers = new Headers(init?.headers);
    headers.set("authorization", `Bearer ${TOKENS.alice}`);
    return fetch(input, { ...init, headers });
  };
  const transport = await new JsonRpcTransportFactory({ fetchImpl })
    .create(`${server.url}/a2a/jsonrpc`, card);
  const err = await transport.getTask({ tenant: "", id: "x" }).catch((e) => e);
  assert.ok(err instanceof VersionNotSupportedError, String(err));
  assert.equal((err as { envelopeCode?: number }).envelopeCode, -32009);
});

Deno.test("SDK push notification config create, get, list and delete round-trip", async () => {
  {
    // No DNS here: example.com resolves to a public documentation address.
    await using server = startServer({
      push: { resolveHost: () => Promise.resolve(["93.184.215.14"]) },
    });
    const { client } = await sdkClient(server);
    const task = asTask(await client.sendMessage(sdkSend("push me")));
    const created = await client.createTaskPushNotificationConfig({
      tenant: "",
      id: "cfg-1",
      taskId: task.id,
      url: "https://example.com/webhook",
      token: "secret",
      authentication: undefined,
    });
    assert.equal(created.taskId, task.id);
    assert.equal(created.url, "https://example.com/webhook");
    const id = created.id;
    assert.ok(id);
    const got = await client.getTaskPushNotificationConfig({ tenant: "", taskId: task.id, id });
    assert.equal(got.url, "https://example.com/webhook");
    const list = await client.listTaskPushNotificationConfig({
      tenant: "",
      taskId: task.id,
      pageSize: 0,
      pageToken: "",
    });
    assert.deepEqual(list.configs.map((c) => c.id), [id]);
    await client.deleteTaskPushNotificationConfig({ tenant: "", taskId: task.id, id });
    const after = await client.listTaskPushNotificationConfig({
      tenant: "",
      taskId: task.id,
      pageSize: 0,
      pageToken: "",
    });
    assert.deepEqual(after.configs, []);
  }
});
