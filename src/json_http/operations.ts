// The A2A operations as the JSON bindings name them (the proto's method names), each one call on
// the shared RequestHandler. Each binding maps its own wire onto these names.

import type { CallContext, RequestHandler } from "../tasks/request_handler.ts";
import type { Subscription } from "../tasks/subscription.ts";

/**
 * A unary operation. It resolves to the response message, or to undefined for
 * `google.protobuf.Empty` (DeleteTaskPushNotificationConfig), which each binding answers in its
 * own way (JSON-RPC `{}`, HTTP+JSON 204).
 */
export type UnaryOperation = (
  h: RequestHandler,
  call: CallContext,
  params: unknown,
) => Promise<unknown>;

/** A streaming operation: it resolves to the subscription whose events the binding sends. */
export type StreamOperation = (
  h: RequestHandler,
  call: CallContext,
  params: unknown,
  lastEventId: number | undefined,
) => Promise<Subscription>;

/** The unary operations by name. */
export const UNARY_OPERATIONS: ReadonlyMap<string, UnaryOperation> = new Map<
  string,
  UnaryOperation
>([
  ["SendMessage", (h, c, p) => h.sendMessage(c, p)],
  ["GetTask", (h, c, p) => h.getTask(c, p)],
  ["ListTasks", (h, c, p) => h.listTasks(c, p)],
  ["CancelTask", (h, c, p) => h.cancelTask(c, p)],
  ["CreateTaskPushNotificationConfig", (h, c, p) => h.createTaskPushNotificationConfig(c, p)],
  ["GetTaskPushNotificationConfig", (h, c, p) => h.getTaskPushNotificationConfig(c, p)],
  ["ListTaskPushNotificationConfigs", (h, c, p) => h.listTaskPushNotificationConfigs(c, p)],
  ["DeleteTaskPushNotificationConfig", async (h, c, p) => {
    await h.deleteTaskPushNotificationConfig(c, p);
    return undefined;
  }],
  ["GetExtendedAgentCard", (h, c, p) => h.getExtendedAgentCard(c, p)],
]);

/** The streaming operations by name. */
export const STREAMING_OPERATIONS: ReadonlyMap<string, StreamOperation> = new Map<
  string,
  StreamOperation
>([
  ["SendStreamingMessage", (h, c, p) => h.sendStreamingMessage(c, p)],
  ["SubscribeToTask", (h, c, p, last) => h.subscribeToTask(c, p, last)],
]);
