// The HTTP+JSON binding's wire shapes (A2A 1.0 section 11): its name in agent cards, the error
// body (google.rpc.Status in ProtoJSON, section 11.6) and the HTTP status of every error code
// (section 5.4, and for the codes this module adds, the nearest google.rpc.Code).

import { type A2AError, ErrorCode, type ErrorDetail } from "../errors/errors.ts";

/** The `protocolBinding` name of the HTTP+JSON binding in an agent card. */
export const REST_BINDING = "HTTP+JSON";

/** The error body of the HTTP+JSON binding: a `google.rpc.Status` in ProtoJSON. */
export interface RestErrorBody {
  /** The status. */
  error: {
    /** The HTTP status code (google.rpc.Status carries the HTTP code in HTTP APIs). */
    code: number;
    /** The `google.rpc.Code` name, e.g. `NOT_FOUND` or `FAILED_PRECONDITION`. */
    status: string;
    /** A human-readable message. */
    message: string;
    /** An ErrorInfo whose `reason` names the A2A error, and a BadRequest for invalid params. */
    details: ErrorDetail[];
  };
}

/** An HTTP status and the google.rpc.Code name that goes with it. */
export interface RestStatus {
  /** The HTTP status code. */
  status: number;
  /** The `google.rpc.Code` name. */
  name: string;
}

// A2A errors from spec section 5.4; the rest are JSON-RPC's generic codes and this module's own,
// mapped as google.rpc.Code maps to HTTP.
const STATUS_OF_CODE: ReadonlyMap<number, RestStatus> = new Map([
  [ErrorCode.TaskNotFound, { status: 404, name: "NOT_FOUND" }],
  [ErrorCode.TaskNotCancelable, { status: 400, name: "FAILED_PRECONDITION" }],
  [ErrorCode.PushNotificationNotSupported, { status: 400, name: "FAILED_PRECONDITION" }],
  [ErrorCode.UnsupportedOperation, { status: 400, name: "FAILED_PRECONDITION" }],
  [ErrorCode.ContentTypeNotSupported, { status: 400, name: "INVALID_ARGUMENT" }],
  [ErrorCode.InvalidAgentResponse, { status: 500, name: "INTERNAL" }],
  [ErrorCode.ExtendedAgentCardNotConfigured, { status: 400, name: "FAILED_PRECONDITION" }],
  [ErrorCode.ExtensionSupportRequired, { status: 400, name: "FAILED_PRECONDITION" }],
  [ErrorCode.VersionNotSupported, { status: 400, name: "FAILED_PRECONDITION" }],
  [ErrorCode.Unauthenticated, { status: 401, name: "UNAUTHENTICATED" }],
  [ErrorCode.StreamOverflow, { status: 429, name: "RESOURCE_EXHAUSTED" }],
  [ErrorCode.ServiceUnavailable, { status: 503, name: "UNAVAILABLE" }],
  [ErrorCode.ConnectionLost, { status: 503, name: "UNAVAILABLE" }],
  [ErrorCode.QuotaExceeded, { status: 429, name: "RESOURCE_EXHAUSTED" }],
  [ErrorCode.RateLimited, { status: 429, name: "RESOURCE_EXHAUSTED" }],
  [ErrorCode.ParseError, { status: 400, name: "INVALID_ARGUMENT" }],
  [ErrorCode.InvalidRequest, { status: 400, name: "INVALID_ARGUMENT" }],
  [ErrorCode.MethodNotFound, { status: 404, name: "NOT_FOUND" }],
  [ErrorCode.InvalidParams, { status: 400, name: "INVALID_ARGUMENT" }],
  [ErrorCode.Internal, { status: 500, name: "INTERNAL" }],
]);

// Statuses the HTTP layer answers with on its own (wrong verb, body too large, media type), and
// the google.rpc.Code name each gets.
const NAME_OF_STATUS: ReadonlyMap<number, string> = new Map([
  [405, "UNIMPLEMENTED"],
  [413, "INVALID_ARGUMENT"],
  [415, "INVALID_ARGUMENT"],
]);

/**
 * The HTTP status of an A2A error on the HTTP+JSON binding.
 *
 * @param err The error.
 * @returns Its status and google.rpc.Code name (500 INTERNAL for a code without one).
 */
export function restStatusOf(err: A2AError): RestStatus {
  return STATUS_OF_CODE.get(err.code) ?? { status: 500, name: "INTERNAL" };
}

/**
 * Writes an A2A error as the HTTP+JSON binding's error body.
 *
 * @param err The error.
 * @param status The HTTP status when the HTTP layer decides it (405, 413, 415); else the
 * error code's.
 * @returns The body.
 */
export function restErrorBody(err: A2AError, status?: number): RestErrorBody {
  const mapped = restStatusOf(err);
  const code = status ?? mapped.status;
  const name = status === undefined ? mapped.name : NAME_OF_STATUS.get(status) ?? mapped.name;
  return { error: { code, status: name, message: err.message, details: err.data } };
}
