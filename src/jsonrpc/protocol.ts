// The JSON-RPC binding's wire vocabulary (A2A 1.0 section 9), shared by the server adapter and
// the browser-safe client: method names and envelope shapes. The service parameter headers are
// both JSON bindings' (src/json_http/service_params.ts).

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
