// Unit tests of the A2A error classes, their wire form, and the parameter parsing that makes them.

import assert from "node:assert/strict";
import {
  A2AError,
  AuthenticationError,
  ContentTypeNotSupportedError,
  ERROR_DOMAIN,
  ErrorCode,
  type ErrorInfo,
  ExtendedAgentCardNotConfiguredError,
  ExtensionSupportRequiredError,
  fromWireError,
  InternalError,
  InvalidAgentResponseError,
  InvalidParamsError,
  InvalidRequestError,
  JSONParseError,
  MethodNotFoundError,
  PushNotificationNotSupportedError,
  StreamOverflowError,
  TaskNotCancelableError,
  TaskNotFoundError,
  UnsupportedOperationError,
  VersionNotSupportedError,
} from "../src/errors/errors.ts";
import { parseParams } from "../src/tasks/request_handler.ts";
import { GetTaskRequestSchema, SendMessageRequestSchema } from "../src/types/requests.ts";

type ErrorClass = abstract new (...args: never[]) => A2AError;

/** Every error class with its code, its ErrorInfo reason and one instance. */
const CASES: { cls: ErrorClass; code: number; reason: string; make: () => A2AError }[] = [
  {
    cls: TaskNotFoundError,
    code: -32001,
    reason: "TASK_NOT_FOUND",
    make: () => new TaskNotFoundError("t1"),
  },
  {
    cls: TaskNotCancelableError,
    code: -32002,
    reason: "TASK_NOT_CANCELABLE",
    make: () => new TaskNotCancelableError("t1"),
  },
  {
    cls: PushNotificationNotSupportedError,
    code: -32003,
    reason: "PUSH_NOTIFICATION_NOT_SUPPORTED",
    make: () => new PushNotificationNotSupportedError(),
  },
  {
    cls: UnsupportedOperationError,
    code: -32004,
    reason: "UNSUPPORTED_OPERATION",
    make: () => new UnsupportedOperationError(),
  },
  {
    cls: ContentTypeNotSupportedError,
    code: -32005,
    reason: "CONTENT_TYPE_NOT_SUPPORTED",
    make: () => new ContentTypeNotSupportedError(),
  },
  {
    cls: InvalidAgentResponseError,
    code: -32006,
    reason: "INVALID_AGENT_RESPONSE",
    make: () => new InvalidAgentResponseError(),
  },
  {
    cls: ExtendedAgentCardNotConfiguredError,
    code: -32007,
    reason: "EXTENDED_AGENT_CARD_NOT_CONFIGURED",
    make: () => new ExtendedAgentCardNotConfiguredError(),
  },
  {
    cls: ExtensionSupportRequiredError,
    code: -32008,
    reason: "EXTENSION_SUPPORT_REQUIRED",
    make: () => new ExtensionSupportRequiredError(),
  },
  {
    cls: VersionNotSupportedError,
    code: -32009,
    reason: "VERSION_NOT_SUPPORTED",
    make: () => new VersionNotSupportedError("0.3"),
  },
  {
    cls: InvalidParamsError,
    code: -32602,
    reason: "INVALID_PARAMS",
    make: () => new InvalidParamsError("Invalid params: id: is required"),
  },
  { cls: InternalError, code: -32603, reason: "INTERNAL", make: () => new InternalError() },
  {
    cls: InvalidRequestError,
    code: -32600,
    reason: "INVALID_REQUEST",
    make: () => new InvalidRequestError(),
  },
  {
    cls: MethodNotFoundError,
    code: -32601,
    reason: "METHOD_NOT_FOUND",
    make: () => new MethodNotFoundError("Nope"),
  },
  { cls: JSONParseError, code: -32700, reason: "PARSE_ERROR", make: () => new JSONParseError() },
  {
    cls: AuthenticationError,
    code: -31001,
    reason: "UNAUTHENTICATED",
    make: () => new AuthenticationError(),
  },
];

function errorInfo(err: A2AError): ErrorInfo {
  const info = err.data.find((d) => d["@type"] === "type.googleapis.com/google.rpc.ErrorInfo");
  assert.ok(info, `${err.name} has no ErrorInfo`);
  return info as ErrorInfo;
}

Deno.test("every error class carries its A2A code as an own enumerable property", () => {
  for (const { cls, code, make } of CASES) {
    const err = make();
    assert.ok(err instanceof cls);
    assert.ok(err instanceof A2AError);
    assert.ok(err instanceof Error);
    const desc = Object.getOwnPropertyDescriptor(err, "code");
    assert.ok(desc, `${err.name}.code is not an own property`);
    assert.equal(desc.enumerable, true, `${err.name}.code is not enumerable`);
    assert.equal(desc.value, code, err.name);
    assert.equal(err.name, cls.name);
  }
});

Deno.test("every error class carries an ErrorInfo in data as an own enumerable property", () => {
  for (const { reason, make } of CASES) {
    const err = make();
    const desc = Object.getOwnPropertyDescriptor(err, "data");
    assert.ok(desc, `${err.name}.data is not an own property`);
    assert.equal(desc.enumerable, true, `${err.name}.data is not enumerable`);
    const info = errorInfo(err);
    assert.equal(info.reason, reason, err.name);
    assert.equal(info.domain, "a2a-protocol.org", err.name);
    assert.equal(err.reason, reason, err.name);
  }
  assert.equal(ERROR_DOMAIN, "a2a-protocol.org");
});

Deno.test("the error codes table has the A2A and JSON-RPC codes", () => {
  assert.deepEqual(
    [ErrorCode.TaskNotFound, ErrorCode.VersionNotSupported, ErrorCode.Unauthenticated],
    [-32001, -32009, -31001],
  );
  assert.deepEqual(
    [
      ErrorCode.ParseError,
      ErrorCode.InvalidRequest,
      ErrorCode.MethodNotFound,
      ErrorCode.InvalidParams,
      ErrorCode.Internal,
    ],
    [-32700, -32600, -32601, -32602, -32603],
  );
});

Deno.test("an error's code and data survive a copy of its own enumerable properties", () => {
  // capnweb sends an Error's own properties across but not its class.
  for (const { code, make } of CASES) {
    const err = make();
    const copy = { ...err, message: err.message };
    assert.equal(copy.code, code);
    assert.deepEqual(copy.data, err.data);
  }
});

Deno.test("TaskNotFoundError names the task in its message and ErrorInfo metadata", () => {
  const err = new TaskNotFoundError("task-42");
  assert.equal(err.message, "Task not found: task-42");
  assert.deepEqual(errorInfo(err).metadata, { taskId: "task-42" });
  assert.equal(new TaskNotFoundError().message, "Task not found");
  assert.equal(errorInfo(new TaskNotFoundError()).metadata, undefined);
});

Deno.test("InvalidParamsError carries a BadRequest with its field violations", () => {
  const violations = [{ field: "message.parts", description: "parts must not be empty" }];
  const err = new InvalidParamsError("Invalid params: message.parts: empty", violations);
  assert.equal(err.data.length, 2);
  assert.deepEqual(err.data[1], {
    "@type": "type.googleapis.com/google.rpc.BadRequest",
    fieldViolations: violations,
  });
});

Deno.test("InvalidParamsError without violations carries only the ErrorInfo", () => {
  const err = new InvalidParamsError("Invalid params");
  assert.equal(err.data.length, 1);
  assert.equal(err.data[0]!["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
});

Deno.test("InternalError keeps its cause but not in the message or data", () => {
  const cause = new Error("secret database password in stack");
  const err = new InternalError("Internal error", cause);
  assert.equal(err.cause, cause);
  assert.doesNotMatch(err.message, /secret/);
  assert.doesNotMatch(JSON.stringify(err.data), /secret/);
});

Deno.test("fromWireError() maps every code back to its error class with message and data", () => {
  for (const { cls, code, make } of CASES) {
    const original = make();
    const wire = { code, message: original.message, data: original.data };
    const err = fromWireError(wire);
    assert.ok(err instanceof cls, `code ${code} did not map to ${cls.name}`);
    assert.ok(err instanceof A2AError);
    assert.equal(err.code, code);
    assert.equal(err.message, original.message);
    assert.deepEqual(err.data, original.data);
  }
});

Deno.test("fromWireError() maps an Error instance that carries a code", () => {
  const received = Object.assign(new Error("Task not found: t9"), {
    code: -32001,
    data: new TaskNotFoundError("t9").data,
  });
  const err = fromWireError(received);
  assert.ok(err instanceof TaskNotFoundError);
  assert.equal(err.message, "Task not found: t9");
  assert.deepEqual(errorInfo(err).metadata, { taskId: "t9" });
});

Deno.test("fromWireError() keeps the BadRequest details of invalid params", () => {
  const original = new InvalidParamsError("Invalid params: id: is required", [
    { field: "id", description: "is required" },
  ]);
  const err = fromWireError(JSON.parse(JSON.stringify(original)));
  assert.ok(err instanceof InvalidParamsError);
  assert.deepEqual(err.data, original.data);
});

Deno.test("fromWireError() rebuilds StreamOverflowError with its lastSeq", () => {
  const original = new StreamOverflowError(17, 1024);
  const err = fromWireError({
    code: original.code,
    message: original.message,
    data: original.data,
  });
  assert.ok(err instanceof StreamOverflowError);
  assert.equal(err.lastSeq, 17);
  assert.equal(err.message, original.message);
});

Deno.test("fromWireError() turns an unknown numeric code into a plain A2AError", () => {
  const err = fromWireError({ code: -32099, message: "Something new" });
  assert.ok(err instanceof A2AError);
  assert.equal(err.constructor, A2AError);
  assert.equal(err.code, -32099);
  assert.equal(err.message, "Something new");
});

Deno.test("fromWireError() uses a default message when the value has none", () => {
  const err = fromWireError({ code: -32004 });
  assert.ok(err instanceof UnsupportedOperationError);
  assert.equal(typeof err.message, "string");
  assert.notEqual(err.message, "");
});

Deno.test("fromWireError() leaves values without a numeric code unchanged", () => {
  const plain = new Error("boom");
  const stringCode = { code: "-32001", message: "x" };
  const noCode = { message: "x" };
  for (const value of [plain, stringCode, noCode, "text", 42, null, undefined]) {
    assert.equal(fromWireError(value), value);
  }
});

Deno.test("fromWireError() returns an A2AError unchanged", () => {
  const err = new TaskNotFoundError("t1");
  assert.equal(fromWireError(err), err);
});

Deno.test("parseParams() returns the parsed value when it is valid", () => {
  const params = { id: "t1", historyLength: "2", extra: true };
  assert.deepEqual(parseParams(GetTaskRequestSchema, params), { id: "t1", historyLength: 2 });
});

Deno.test("parseParams() names the field path of an invalid nested field", () => {
  const params = { message: { messageId: "m1", role: "ROLE_USER", parts: [] } };
  assert.throws(
    () => parseParams(SendMessageRequestSchema, params),
    (e: unknown) => {
      assert.ok(e instanceof InvalidParamsError);
      assert.equal(e.code, -32602);
      assert.match(e.message, /^Invalid params: /);
      assert.match(e.message, /message\.parts/);
      const bad = e.data.find((d) => "fieldViolations" in d);
      assert.ok(bad && "fieldViolations" in bad);
      assert.deepEqual(bad.fieldViolations.map((v) => v.field), ["message.parts"]);
      return true;
    },
  );
});

Deno.test("parseParams() names array indexes and the prefix in the field path", () => {
  const params = { message: { messageId: "m1", role: "ROLE_USER", parts: [{ text: "a" }, {}] } };
  assert.throws(
    () => parseParams(SendMessageRequestSchema, params, "params"),
    (e: unknown) => {
      assert.ok(e instanceof InvalidParamsError);
      assert.match(e.message, /params\.message\.parts\.1/);
      return true;
    },
  );
});

Deno.test("parseParams() treats missing params as an empty object", () => {
  assert.throws(
    () => parseParams(GetTaskRequestSchema, undefined),
    (e: unknown) => {
      assert.ok(e instanceof InvalidParamsError);
      assert.match(e.message, /id/);
      return true;
    },
  );
});

Deno.test("parseParams() reports a non-object value against the whole params", () => {
  assert.throws(
    () => parseParams(GetTaskRequestSchema, "t1"),
    (e: unknown) => {
      assert.ok(e instanceof InvalidParamsError);
      assert.match(e.message, /\(params\)/);
      return true;
    },
  );
});
