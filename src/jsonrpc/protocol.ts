// The JSON-RPC binding's wire vocabulary (A2A 1.0 section 9), shared by the server adapter and
// the browser-safe client: method names, envelope shapes and service parameter headers.

/** The `protocolBinding` name of the JSON-RPC binding in an agent card. */
export const JSONRPC_BINDING = "JSONRPC";

/** The eleven A2A 1.0 JSON-RPC methods, in the order the specification lists them. */
export const JSONRPC_METHODS: readonly string[] = [
  "SendMessage",
  "SendStreamingMessage",
  "GetTask",
  "ListTasks",
  "CancelTask",
  "SubscribeToTask",
  "CreateTaskPushNotificationConfig",
  "GetTaskPushNotificationConfig",
  "ListTaskPushNotificationConfigs",
  "DeleteTaskPushNotificationConfig",
  "GetExtendedAgentCard",
];

/** The methods whose answer is a `text/event-stream` of StreamResponse objects. */
export const STREAMING_METHODS: ReadonlySet<string> = new Set([
  "SendStreamingMessage",
  "SubscribeToTask",
]);

/** The service parameter headers of A2A 1.0 (section 3.2.6), lower-cased. */
export const HEADERS = {
  version: "a2a-version",
  extensions: "a2a-extensions",
  lastEventId: "last-event-id",
} as const;

/** A JSON-RPC request id. */
export type JsonRpcId = string | number | null;

/** A JSON-RPC 2.0 error object; `data` carries the A2A error details (`@type` objects). */
export interface JsonRpcErrorObject {
  /** The numeric error code. */
  code: number;
  /** A human-readable message. */
  message: string;
  /** Structured details, each with a `@type`. */
  data?: unknown;
}

/** A JSON-RPC 2.0 response: exactly one of `result` and `error`. */
export interface JsonRpcResponse {
  /** Always `2.0`. */
  jsonrpc: "2.0";
  /** The id of the request answered (null when it could not be read). */
  id: JsonRpcId;
  /** The result, on success. */
  result?: unknown;
  /** The error, on failure. */
  error?: JsonRpcErrorObject;
}

/**
 * Parses an `A2A-Extensions` value: comma-separated URIs, trimmed, empty ones and duplicates
 * dropped.
 *
 * @param value The header value.
 * @returns The URIs.
 */
export function parseExtensions(value: string | null | undefined): string[] {
  if (!value) return [];
  return [...new Set(value.split(",").map((s) => s.trim()).filter((s) => s !== ""))];
}
