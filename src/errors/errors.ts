// A2A errors as Error subclasses that carry their code and details as own properties: capnweb
// sends an error's own properties across but not its class, so the code is what survives.

/** The A2A and JSON-RPC error codes this module uses. */
export const ErrorCode = {
  TaskNotFound: -32001,
  TaskNotCancelable: -32002,
  PushNotificationNotSupported: -32003,
  UnsupportedOperation: -32004,
  ContentTypeNotSupported: -32005,
  InvalidAgentResponse: -32006,
  ExtendedAgentCardNotConfigured: -32007,
  ExtensionSupportRequired: -32008,
  VersionNotSupported: -32009,
  Unauthenticated: -31001,
  StreamOverflow: -31002,
  ServiceUnavailable: -31003,
  ConnectionLost: -31004,
  QuotaExceeded: -31005,
  RateLimited: -31006,
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  Internal: -32603,
} as const;

/** The domain of our ErrorInfo details, as the A2A specification's examples use it. */
export const ERROR_DOMAIN = "a2a-protocol.org";

/** A `google.rpc.ErrorInfo`-shaped detail: a machine-readable reason and its domain. */
export interface ErrorInfo {
  /** The ProtoJSON `Any` type URL. */
  "@type": "type.googleapis.com/google.rpc.ErrorInfo";
  /** UPPER_SNAKE_CASE reason, e.g. `TASK_NOT_FOUND`. */
  reason: string;
  /** The domain that defines the reason. */
  domain: string;
  /** Context, e.g. the task id. */
  metadata?: Record<string, string>;
}

/** A `google.rpc.BadRequest`-shaped detail listing what was wrong with the parameters. */
export interface BadRequest {
  /** The ProtoJSON `Any` type URL. */
  "@type": "type.googleapis.com/google.rpc.BadRequest";
  /** One entry per invalid field. */
  fieldViolations: { field: string; description: string }[];
}

/** One structured detail of an error, as carried in `error.data`. */
export type ErrorDetail = ErrorInfo | BadRequest;

/** Options shared by every A2A error constructor. */
export interface A2AErrorOptions {
  /** Context for the ErrorInfo detail, e.g. `{ taskId }`. */
  metadata?: Record<string, string>;
  /** Field violations, for invalid parameters. */
  fieldViolations?: { field: string; description: string }[];
  /** The underlying cause. */
  cause?: unknown;
}

/**
 * The base class of every A2A error. `code` and `data` are own enumerable properties so that
 * they travel with the error over capnweb and map directly onto a JSON-RPC error object.
 *
 * @example Inspect an error's code
 * ```ts
 * import { A2AError, TaskNotFoundError } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * const err = new TaskNotFoundError("task-1");
 * assert.ok(err instanceof A2AError);
 * assert.equal(err.code, -32001);
 * ```
 */
export class A2AError extends Error {
  /** The numeric A2A / JSON-RPC error code. */
  code: number;
  /** Structured details (`ErrorInfo`, and `BadRequest` for invalid parameters). */
  data: ErrorDetail[];

  /**
   * Creates an error with a code, a message and a reason.
   *
   * @param code The numeric error code.
   * @param message The human-readable message.
   * @param reason The ErrorInfo reason, UPPER_SNAKE_CASE.
   * @param options Context metadata, field violations and cause.
   */
  constructor(code: number, message: string, reason: string, options: A2AErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    const info: ErrorInfo = {
      "@type": "type.googleapis.com/google.rpc.ErrorInfo",
      reason,
      domain: ERROR_DOMAIN,
    };
    if (options.metadata) info.metadata = options.metadata;
    this.data = [info];
    if (options.fieldViolations?.length) {
      this.data.push({
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        fieldViolations: options.fieldViolations,
      });
    }
  }

  /** The ErrorInfo reason, e.g. `TASK_NOT_FOUND`. */
  get reason(): string | undefined {
    for (const d of this.data) if ("reason" in d) return d.reason;
    return undefined;
  }
}

/** The task does not exist or is not visible to the caller (-32001). */
export class TaskNotFoundError extends A2AError {
  /**
   * Creates the error.
   *
   * @param taskId The id that was asked for.
   * @param message Overrides the default message.
   */
  constructor(taskId?: string, message?: string) {
    super(
      ErrorCode.TaskNotFound,
      message ?? (taskId === undefined ? "Task not found" : `Task not found: ${taskId}`),
      "TASK_NOT_FOUND",
      taskId === undefined ? {} : { metadata: { taskId } },
    );
  }
}

/** The task is in a state that cannot be canceled (-32002). */
export class TaskNotCancelableError extends A2AError {
  /**
   * Creates the error.
   *
   * @param taskId The task's id.
   * @param message Overrides the default message.
   */
  constructor(taskId?: string, message?: string) {
    super(
      ErrorCode.TaskNotCancelable,
      message ?? `Task cannot be canceled${taskId === undefined ? "" : `: ${taskId}`}`,
      "TASK_NOT_CANCELABLE",
      taskId === undefined ? {} : { metadata: { taskId } },
    );
  }
}

/** Push notifications are not supported by this agent (-32003). */
export class PushNotificationNotSupportedError extends A2AError {
  /**
   * Creates the error.
   *
   * @param message Overrides the default message.
   */
  constructor(message = "Push notifications are not supported") {
    super(ErrorCode.PushNotificationNotSupported, message, "PUSH_NOTIFICATION_NOT_SUPPORTED");
  }
}

/** The operation, or this use of it, is not supported (-32004). */
export class UnsupportedOperationError extends A2AError {
  /**
   * Creates the error.
   *
   * @param message What is not supported.
   */
  constructor(message = "Operation not supported") {
    super(ErrorCode.UnsupportedOperation, message, "UNSUPPORTED_OPERATION");
  }
}

/** A media type in the request is not supported (-32005). */
export class ContentTypeNotSupportedError extends A2AError {
  /**
   * Creates the error.
   *
   * @param message Which media type.
   */
  constructor(message = "Content type not supported") {
    super(ErrorCode.ContentTypeNotSupported, message, "CONTENT_TYPE_NOT_SUPPORTED");
  }
}

/** The agent produced a response that does not conform to the specification (-32006). */
export class InvalidAgentResponseError extends A2AError {
  /**
   * Creates the error.
   *
   * @param message What was wrong.
   */
  constructor(message = "Invalid agent response") {
    super(ErrorCode.InvalidAgentResponse, message, "INVALID_AGENT_RESPONSE");
  }
}

/** No extended agent card is configured (-32007). */
export class ExtendedAgentCardNotConfiguredError extends A2AError {
  /**
   * Creates the error.
   *
   * @param message Overrides the default message.
   */
  constructor(message = "Extended agent card is not configured") {
    super(
      ErrorCode.ExtendedAgentCardNotConfigured,
      message,
      "EXTENDED_AGENT_CARD_NOT_CONFIGURED",
    );
  }
}

/** The agent requires an extension that the client did not declare (-32008). */
export class ExtensionSupportRequiredError extends A2AError {
  /**
   * Creates the error.
   *
   * @param message Which extension.
   */
  constructor(message = "A required extension is not supported by the client") {
    super(ErrorCode.ExtensionSupportRequired, message, "EXTENSION_SUPPORT_REQUIRED");
  }
}

/** The requested A2A protocol version is not supported (-32009). */
export class VersionNotSupportedError extends A2AError {
  /**
   * Creates the error.
   *
   * @param version The version the client asked for.
   */
  constructor(version?: string) {
    super(
      ErrorCode.VersionNotSupported,
      `A2A version not supported: ${version ?? "(none)"}; supported: 1.0`,
      "VERSION_NOT_SUPPORTED",
      version === undefined ? {} : { metadata: { version } },
    );
  }
}

/**
 * The credentials are missing, invalid or expired (-31001; HTTP 401 where HTTP is used). A2A
 * defines no code for this, so the code sits outside the ranges JSON-RPC and A2A reserve.
 */
export class AuthenticationError extends A2AError {
  /**
   * Creates the error.
   *
   * @param message What was wrong with the credentials.
   */
  constructor(message = "Authentication failed") {
    super(ErrorCode.Unauthenticated, message, "UNAUTHENTICATED");
  }
}

/** The parameters of a call are invalid (-32602). */
export class InvalidParamsError extends A2AError {
  /**
   * Creates the error.
   *
   * @param message What is wrong, e.g. `Invalid params: message.parts: must not be empty`.
   * @param fieldViolations One entry per invalid field.
   */
  constructor(message: string, fieldViolations: { field: string; description: string }[] = []) {
    super(ErrorCode.InvalidParams, message, "INVALID_PARAMS", { fieldViolations });
  }
}

/** The request is not a valid request object (-32600). */
export class InvalidRequestError extends A2AError {
  /**
   * Creates the error.
   *
   * @param message What is wrong.
   */
  constructor(message = "Invalid request") {
    super(ErrorCode.InvalidRequest, message, "INVALID_REQUEST");
  }
}

/** The method does not exist (-32601). */
export class MethodNotFoundError extends A2AError {
  /**
   * Creates the error.
   *
   * @param method The method that was asked for.
   */
  constructor(method: string) {
    super(ErrorCode.MethodNotFound, `Method not found: ${method}`, "METHOD_NOT_FOUND", {
      metadata: { method },
    });
  }
}

/** The request body is not valid JSON (-32700). */
export class JSONParseError extends A2AError {
  /**
   * Creates the error.
   *
   * @param message What is wrong.
   */
  constructor(message = "Invalid JSON payload") {
    super(ErrorCode.ParseError, message, "PARSE_ERROR");
  }
}

/** Something failed inside the server (-32603). The message never carries internals. */
export class InternalError extends A2AError {
  /**
   * Creates the error.
   *
   * @param message A safe message for the client.
   * @param cause The underlying error, kept for logs and never sent.
   */
  constructor(message = "Internal error", cause?: unknown) {
    super(ErrorCode.Internal, message, "INTERNAL", cause === undefined ? {} : { cause });
  }
}

/**
 * A subscriber fell too far behind and its stream was ended. Resume with `afterSeq` set to
 * `lastSeq` to receive the rest.
 */
export class StreamOverflowError extends A2AError {
  /** The last sequence number handed to the subscriber before the stream was ended. */
  lastSeq: number;

  /**
   * Creates the error.
   *
   * @param lastSeq The last delivered sequence number.
   * @param limit The buffer size that was exceeded.
   */
  constructor(lastSeq: number, limit: number) {
    super(
      ErrorCode.StreamOverflow,
      `Stream ended: more than ${limit} events were waiting for this subscriber; resume with afterSeq ${lastSeq}`,
      "STREAM_OVERFLOW",
      { metadata: { lastSeq: String(lastSeq) } },
    );
    this.lastSeq = lastSeq;
  }
}

/**
 * The server is shutting down or overloaded (-31003). Retryable: a client reconnects, possibly
 * to another instance, and resumes its streams.
 */
export class ServiceUnavailableError extends A2AError {
  /**
   * Creates the error.
   *
   * @param message What is unavailable.
   */
  constructor(message = "Service unavailable") {
    super(ErrorCode.ServiceUnavailable, message, "UNAVAILABLE");
  }
}

/**
 * The client lost its connection (-31004). Raised on the client only: for a call that was in
 * flight and is not safe to repeat (it may or may not have taken effect), or when reconnecting
 * gave up. Retryable by the application.
 */
export class ConnectionLostError extends A2AError {
  /** Always true: the same call may succeed on a new connection. */
  readonly retryable: boolean = true;

  /**
   * Creates the error.
   *
   * @param message What was lost.
   */
  constructor(message = "The connection to the server was lost") {
    super(ErrorCode.ConnectionLost, message, "CONNECTION_LOST");
  }
}

/**
 * A per-user quota is used up (-31005): too many unfinished tasks, open streams or push configs.
 * Retryable once the user's tasks end or streams close; HTTP bindings answer 429.
 */
export class QuotaExceededError extends A2AError {
  /**
   * Creates the error.
   *
   * @param message Which quota, and its limit.
   */
  constructor(message = "Quota exceeded") {
    super(ErrorCode.QuotaExceeded, message, "QUOTA_EXCEEDED");
  }
}

/**
 * Too many failed authentication attempts came from the client's address (-31006); HTTP
 * bindings answer 429 with `Retry-After`. Retryable after `retryAfterSeconds`.
 */
export class RateLimitedError extends A2AError {
  /** Seconds until an attempt from the same address is accepted again. */
  retryAfterSeconds: number;

  /**
   * Creates the error.
   *
   * @param retryAfterSeconds Seconds until the next attempt is accepted.
   * @param message What was limited.
   */
  constructor(
    retryAfterSeconds = 1,
    message =
      `Too many failed authentication attempts from this address; retry in ${retryAfterSeconds} s`,
  ) {
    super(ErrorCode.RateLimited, message, "RATE_LIMITED", {
      metadata: { retryAfterSeconds: String(retryAfterSeconds) },
    });
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

const BY_CODE: Record<number, (message: string) => A2AError> = {
  [ErrorCode.TaskNotFound]: (m) => new TaskNotFoundError(undefined, m),
  [ErrorCode.TaskNotCancelable]: (m) => new TaskNotCancelableError(undefined, m),
  [ErrorCode.PushNotificationNotSupported]: (m) => new PushNotificationNotSupportedError(m),
  [ErrorCode.UnsupportedOperation]: (m) => new UnsupportedOperationError(m),
  [ErrorCode.ContentTypeNotSupported]: (m) => new ContentTypeNotSupportedError(m),
  [ErrorCode.InvalidAgentResponse]: (m) => new InvalidAgentResponseError(m),
  [ErrorCode.ExtendedAgentCardNotConfigured]: (m) => new ExtendedAgentCardNotConfiguredError(m),
  [ErrorCode.ExtensionSupportRequired]: (m) => new ExtensionSupportRequiredError(m),
  [ErrorCode.VersionNotSupported]: (m) => {
    const e = new VersionNotSupportedError();
    e.message = m;
    return e;
  },
  [ErrorCode.Unauthenticated]: (m) => new AuthenticationError(m),
  [ErrorCode.ServiceUnavailable]: (m) => new ServiceUnavailableError(m),
  [ErrorCode.ConnectionLost]: (m) => new ConnectionLostError(m),
  [ErrorCode.QuotaExceeded]: (m) => new QuotaExceededError(m),
  [ErrorCode.RateLimited]: (m) =>
    new RateLimitedError(Number(/retry in (\d+) s/.exec(m)?.[1] ?? 1), m),
  [ErrorCode.StreamOverflow]: (m) => {
    const e = new StreamOverflowError(0, 0);
    e.message = m;
    return e;
  },
  [ErrorCode.InvalidParams]: (m) => new InvalidParamsError(m),
  [ErrorCode.InvalidRequest]: (m) => new InvalidRequestError(m),
  [ErrorCode.MethodNotFound]: (m) => {
    const e = new MethodNotFoundError("");
    e.message = m;
    return e;
  },
  [ErrorCode.ParseError]: (m) => new JSONParseError(m),
  [ErrorCode.Internal]: (m) => new InternalError(m),
};

/**
 * Turns an error received from the network (a plain object or an Error carrying `code`,
 * `message` and `data`) back into the matching A2AError subclass.
 *
 * @param value The received error.
 * @returns The matching A2AError, or the value unchanged when it carries no numeric code.
 *
 * @example Rebuild an error from its code
 * ```ts
 * import { fromWireError, TaskNotCancelableError } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * const err = fromWireError({ code: -32002, message: "Task cannot be canceled" });
 * assert.ok(err instanceof TaskNotCancelableError);
 * ```
 */
export function fromWireError(value: unknown): unknown {
  if (value instanceof A2AError) return value;
  if (typeof value !== "object" || value === null) return value;
  const { code, message, data } = value as { code?: unknown; message?: unknown; data?: unknown };
  if (typeof code !== "number") return value;
  const text = typeof message === "string" ? message : "A2A error";
  const make = BY_CODE[code];
  const err = make ? make(text) : new A2AError(code, text, "UNKNOWN");
  if (Array.isArray(data)) err.data = data as ErrorDetail[];
  if (err instanceof StreamOverflowError) {
    const info = err.data.find((d): d is ErrorInfo => "reason" in d);
    err.lastSeq = Number(info?.metadata?.lastSeq ?? 0);
  }
  return err;
}
