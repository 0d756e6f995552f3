// Unit tests of the zod schemas of the A2A 1.0 data model, requests and agent card.

import assert from "node:assert/strict";
import {
  Int32Schema,
  MessageSchema,
  PartSchema,
  RoleSchema,
  StreamResponseSchema,
  TaskSchema,
  TaskStateSchema,
  TaskStatusSchema,
  TimestampSchema,
} from "../src/types/core.ts";
import {
  GetTaskRequestSchema,
  ListTasksRequestSchema,
  SendMessageRequestSchema,
  TaskPushNotificationConfigSchema,
} from "../src/types/requests.ts";
import { AgentCardSchema, SecuritySchemeSchema } from "../src/types/agent_card.ts";

const message = { messageId: "m1", role: "ROLE_USER", parts: [{ text: "hi" }] };

const task = {
  id: "t1",
  contextId: "c1",
  status: { state: "TASK_STATE_COMPLETED", timestamp: "2025-06-01T12:00:00.123Z" },
  artifacts: [{ artifactId: "a1", name: "echo", parts: [{ text: "hi" }] }],
  history: [message],
  metadata: { source: "test", nested: { n: 1, list: [true, null] } },
};

const card = {
  name: "Echo",
  description: "Echoes text",
  supportedInterfaces: [
    { url: "ws://127.0.0.1/a2a/capnweb", protocolBinding: "urn:x", protocolVersion: "1.0" },
    { url: "http://127.0.0.1/a2a/jsonrpc", protocolBinding: "JSONRPC", protocolVersion: "1.0" },
  ],
  version: "0.1.0",
  capabilities: { streaming: true },
  defaultInputModes: ["text/plain"],
  defaultOutputModes: ["text/plain"],
  skills: [{ id: "echo", name: "Echo", description: "Echoes", tags: ["demo"] }],
  securitySchemes: { bearer: { httpAuthSecurityScheme: { scheme: "Bearer" } } },
  securityRequirements: [{ schemes: { bearer: { list: [] } } }],
};

Deno.test("MessageSchema parses a valid ProtoJSON message unchanged", () => {
  const value = {
    ...message,
    contextId: "c1",
    taskId: "t1",
    metadata: { k: "v" },
    extensions: ["urn:ext"],
    referenceTaskIds: ["t0"],
  };
  assert.deepEqual(MessageSchema.parse(value), value);
});

Deno.test("TaskSchema parses a valid ProtoJSON task unchanged", () => {
  assert.deepEqual(TaskSchema.parse(task), task);
});

Deno.test("PartSchema accepts each of text, raw, url and data on its own", () => {
  for (
    const part of [
      { text: "hello", mediaType: "text/plain" },
      { raw: "aGVsbG8=", filename: "hello.txt", mediaType: "application/octet-stream" },
      { url: "https://example.com/file.png", mediaType: "image/png" },
      { data: { answer: 42, list: [1, "two"] }, metadata: { k: "v" } },
      { data: [1, 2, 3] },
      { text: "" },
    ]
  ) {
    assert.deepEqual(PartSchema.parse(part), part);
  }
});

Deno.test("PartSchema rejects a part with none of text, raw, url or data", () => {
  const result = PartSchema.safeParse({ mediaType: "text/plain" });
  assert.equal(result.success, false);
  assert.match(result.error!.issues[0]!.message, /exactly one of text, raw, url or data/);
});

Deno.test("PartSchema rejects a part with two of text, raw, url or data", () => {
  for (
    const part of [
      { text: "a", raw: "YQ==" },
      { text: "a", url: "https://example.com" },
      { url: "https://example.com", data: {} },
      { raw: "YQ==", data: 1 },
    ]
  ) {
    assert.equal(PartSchema.safeParse(part).success, false, JSON.stringify(part));
  }
});

Deno.test("PartSchema rejects raw content that is not base64", () => {
  assert.equal(PartSchema.safeParse({ raw: "not base64!" }).success, false);
});

Deno.test("MessageSchema rejects a message with no parts", () => {
  const result = MessageSchema.safeParse({ ...message, parts: [] });
  assert.equal(result.success, false);
  assert.deepEqual(result.error!.issues[0]!.path, ["parts"]);
  assert.match(result.error!.issues[0]!.message, /parts must not be empty/);
});

Deno.test("MessageSchema rejects an empty messageId", () => {
  assert.equal(MessageSchema.safeParse({ ...message, messageId: "" }).success, false);
});

Deno.test("ArtifactSchema in a task rejects an artifact with no parts", () => {
  const value = { ...task, artifacts: [{ artifactId: "a1", parts: [] }] };
  assert.equal(TaskSchema.safeParse(value).success, false);
});

Deno.test("TaskStateSchema and RoleSchema accept ProtoJSON enum numbers", () => {
  assert.equal(TaskStateSchema.parse(0), "TASK_STATE_UNSPECIFIED");
  assert.equal(TaskStateSchema.parse(3), "TASK_STATE_COMPLETED");
  assert.equal(TaskStateSchema.parse(8), "TASK_STATE_AUTH_REQUIRED");
  assert.equal(RoleSchema.parse(1), "ROLE_USER");
  assert.equal(RoleSchema.parse(2), "ROLE_AGENT");
  assert.equal(MessageSchema.parse({ ...message, role: 2 }).role, "ROLE_AGENT");
  assert.equal(TaskStatusSchema.parse({ state: 2 }).state, "TASK_STATE_WORKING");
});

Deno.test("TaskStateSchema and RoleSchema reject unknown enum strings and out-of-range numbers", () => {
  for (const bad of ["TASK_STATE_DONE", "completed", "task_state_completed", "", 9, -1, 1.5]) {
    assert.equal(TaskStateSchema.safeParse(bad).success, false, String(bad));
  }
  for (const bad of ["ROLE_ROBOT", "user", "USER", 3, -1]) {
    assert.equal(RoleSchema.safeParse(bad).success, false, String(bad));
  }
});

Deno.test("Int32Schema accepts an int32 written as a string", () => {
  assert.equal(Int32Schema.parse("42"), 42);
  assert.equal(Int32Schema.parse("-7"), -7);
  assert.equal(Int32Schema.parse(42), 42);
  assert.equal(GetTaskRequestSchema.parse({ id: "t1", historyLength: "3" }).historyLength, 3);
  assert.equal(ListTasksRequestSchema.parse({ pageSize: "10" }).pageSize, 10);
});

Deno.test("Int32Schema rejects fractions, out-of-range values and non-numeric strings", () => {
  for (const bad of [1.5, "1.5", "2147483648", 2147483648, "-2147483649", "ten", "", " 1", null]) {
    assert.equal(Int32Schema.safeParse(bad).success, false, String(bad));
  }
});

Deno.test("GetTaskRequestSchema rejects a negative historyLength", () => {
  assert.equal(GetTaskRequestSchema.safeParse({ id: "t1", historyLength: -1 }).success, false);
});

Deno.test("TaskSchema strips unrecognized fields at every level", () => {
  const parsed = TaskSchema.parse({
    ...task,
    kind: "task",
    status: { ...task.status, extra: 1 },
    history: [{ ...message, futureField: "x", parts: [{ text: "hi", kind: "text" }] }],
  });
  assert.deepEqual(parsed, task);
  assert.equal("kind" in parsed, false);
});

Deno.test("SendMessageRequestSchema strips unrecognized fields", () => {
  const parsed = SendMessageRequestSchema.parse({
    message,
    configuration: { returnImmediately: true, blocking: false },
    unknown: { deep: true },
  });
  assert.deepEqual(parsed, { message, configuration: { returnImmediately: true } });
});

Deno.test("TimestampSchema accepts UTC ISO 8601 timestamps with any fractional precision", () => {
  for (
    const ts of [
      "2025-06-01T12:00:00Z",
      "2025-06-01T12:00:00.1Z",
      "2025-06-01T12:00:00.123Z",
      "2025-06-01T12:00:00.123456789Z",
    ]
  ) {
    assert.equal(TimestampSchema.parse(ts), ts);
  }
});

Deno.test("TimestampSchema rejects offsets, local times and non-ISO dates", () => {
  for (
    const ts of [
      "2025-06-01T12:00:00+02:00",
      "2025-06-01T12:00:00-05:00",
      "2025-06-01T12:00:00",
      "2025-06-01",
      "Sun, 01 Jun 2025 12:00:00 GMT",
      "2025-13-01T12:00:00Z",
      "",
    ]
  ) {
    assert.equal(TimestampSchema.safeParse(ts).success, false, ts);
  }
  const status = { state: "TASK_STATE_WORKING", timestamp: "2025-06-01T12:00:00+02:00" };
  assert.equal(TaskStatusSchema.safeParse(status).success, false);
  const list = { statusTimestampAfter: "2025-06-01T12:00:00" };
  assert.equal(ListTasksRequestSchema.safeParse(list).success, false);
});

Deno.test("ListTasksRequestSchema accepts pageSize from 1 to 100", () => {
  assert.equal(ListTasksRequestSchema.parse({ pageSize: 1 }).pageSize, 1);
  assert.equal(ListTasksRequestSchema.parse({ pageSize: 100 }).pageSize, 100);
  assert.deepEqual(ListTasksRequestSchema.parse({}), {});
});

Deno.test("ListTasksRequestSchema rejects pageSize outside 1 to 100", () => {
  for (const pageSize of [0, -1, 101, "0", "101", 10.5]) {
    const result = ListTasksRequestSchema.safeParse({ pageSize });
    assert.equal(result.success, false, String(pageSize));
    assert.deepEqual(result.error!.issues[0]!.path, ["pageSize"]);
  }
});

Deno.test("ListTasksRequestSchema parses every filter", () => {
  const value = {
    contextId: "c1",
    status: "TASK_STATE_WORKING",
    pageSize: 10,
    pageToken: "abc",
    historyLength: 2,
    statusTimestampAfter: "2025-06-01T12:00:00Z",
    includeArtifacts: true,
  };
  assert.deepEqual(ListTasksRequestSchema.parse(value), value);
  assert.equal(ListTasksRequestSchema.parse({ status: 4 }).status, "TASK_STATE_FAILED");
  assert.equal(ListTasksRequestSchema.safeParse({ status: "WORKING" }).success, false);
});

Deno.test("TaskPushNotificationConfigSchema accepts http and https URLs", () => {
  for (const url of ["https://example.com/hook", "http://127.0.0.1:8080/hook?x=1"]) {
    const config = { url, token: "t", authentication: { scheme: "Bearer", credentials: "c" } };
    assert.deepEqual(TaskPushNotificationConfigSchema.parse(config), config);
  }
});

Deno.test("TaskPushNotificationConfigSchema rejects URLs that are not http or https", () => {
  for (
    const url of [
      "ftp://example.com/hook",
      "javascript:alert(1)",
      "file:///etc/passwd",
      "ws://example.com/hook",
      "example.com/hook",
      "",
    ]
  ) {
    const result = TaskPushNotificationConfigSchema.safeParse({ url });
    assert.equal(result.success, false, url);
    assert.deepEqual(result.error!.issues[0]!.path, ["url"]);
  }
});

Deno.test("TaskPushNotificationConfigSchema rejects an authentication without a scheme", () => {
  const config = { url: "https://example.com/hook", authentication: { scheme: "" } };
  assert.equal(TaskPushNotificationConfigSchema.safeParse(config).success, false);
});

Deno.test("AgentCardSchema parses a valid card unchanged", () => {
  assert.deepEqual(AgentCardSchema.parse(card), card);
});

Deno.test("AgentCardSchema rejects an empty or missing supportedInterfaces", () => {
  const empty = AgentCardSchema.safeParse({ ...card, supportedInterfaces: [] });
  assert.equal(empty.success, false);
  assert.match(empty.error!.issues[0]!.message, /supportedInterfaces must not be empty/);
  const { supportedInterfaces: _, ...missing } = card;
  assert.equal(AgentCardSchema.safeParse(missing).success, false);
});

Deno.test("AgentCardSchema rejects an interface without protocolBinding", () => {
  const value = { ...card, supportedInterfaces: [{ url: "http://x", protocolVersion: "1.0" }] };
  assert.equal(AgentCardSchema.safeParse(value).success, false);
});

Deno.test("SecuritySchemeSchema accepts exactly one scheme of each kind", () => {
  for (
    const scheme of [
      { apiKeySecurityScheme: { location: "header", name: "X-Key" } },
      { httpAuthSecurityScheme: { scheme: "Bearer", bearerFormat: "JWT" } },
      {
        oauth2SecurityScheme: {
          flows: { clientCredentials: { tokenUrl: "https://x/token", scopes: { read: "Read" } } },
        },
      },
      { openIdConnectSecurityScheme: { openIdConnectUrl: "https://x/.well-known/openid" } },
      { mtlsSecurityScheme: {} },
    ]
  ) {
    assert.deepEqual(SecuritySchemeSchema.parse(scheme), scheme);
  }
});

Deno.test("SecuritySchemeSchema rejects none or two schemes", () => {
  assert.equal(SecuritySchemeSchema.safeParse({}).success, false);
  const two = {
    httpAuthSecurityScheme: { scheme: "Bearer" },
    mtlsSecurityScheme: {},
  };
  assert.equal(SecuritySchemeSchema.safeParse(two).success, false);
  const badCard = { ...card, securitySchemes: { bearer: two } };
  assert.equal(AgentCardSchema.safeParse(badCard).success, false);
});

Deno.test("SecuritySchemeSchema rejects OAuth flows with none or two flows", () => {
  const flow = { tokenUrl: "https://x/token", scopes: {} };
  for (const flows of [{}, { clientCredentials: flow, password: {} }]) {
    const scheme = { oauth2SecurityScheme: { flows } };
    assert.equal(SecuritySchemeSchema.safeParse(scheme).success, false, JSON.stringify(flows));
  }
});

Deno.test("StreamResponseSchema accepts exactly one member", () => {
  const statusUpdate = { taskId: "t1", contextId: "c1", status: { state: "TASK_STATE_WORKING" } };
  const artifactUpdate = {
    taskId: "t1",
    contextId: "c1",
    artifact: { artifactId: "a1", parts: [{ text: "x" }] },
    append: true,
    lastChunk: false,
  };
  for (
    const value of [{ task }, { message }, { statusUpdate }, { artifactUpdate }]
  ) {
    assert.deepEqual(StreamResponseSchema.parse(value), value);
  }
});

Deno.test("StreamResponseSchema rejects none or two members", () => {
  assert.equal(StreamResponseSchema.safeParse({}).success, false);
  const two = StreamResponseSchema.safeParse({ task, message });
  assert.equal(two.success, false);
  assert.match(two.error!.issues[0]!.message, /exactly one of task, message/);
});
