// Small helpers for the values applications handle most: telling which kind a StreamResponse is,
// and writing a user's text message. Type-only imports, so that the browser bundle stays free of
// zod.

import type { JsonObject, Message, StreamResponse } from "./core.ts";

/** The four kinds of {@linkcode StreamResponse}, named by the member that carries the value. */
export type StreamResponseKind = "task" | "message" | "statusUpdate" | "artifactUpdate";

const KINDS: readonly StreamResponseKind[] = ["task", "message", "statusUpdate", "artifactUpdate"];

/**
 * Tells which kind a stream event is: the name of its one member among `task`, `message`,
 * `statusUpdate` and `artifactUpdate` (other members, such as a stream event's `seq`, are
 * ignored).
 *
 * @example Count the artifact chunks of a stream
 * ```ts
 * import { type StreamResponse, streamResponseKind } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * const event: StreamResponse = {
 *   artifactUpdate: { taskId: "t1", contextId: "c1", artifact: { artifactId: "a", parts: [] } },
 * };
 * assert.equal(streamResponseKind(event), "artifactUpdate");
 * ```
 *
 * @param event A StreamResponse, or a stream event with its `seq`.
 * @returns The kind.
 * @throws {TypeError} When the event has none of the four members.
 */
export function streamResponseKind(event: StreamResponse): StreamResponseKind {
  for (const kind of KINDS) if (event[kind] !== undefined) return kind;
  throw new TypeError(
    "Cannot tell the kind of stream response: it has none of task, message, statusUpdate or " +
      "artifactUpdate",
  );
}

/** Options of {@linkcode userMessage}. */
export interface UserMessageOptions {
  /** The message id (default: a random UUID). */
  messageId?: string;
  /** The conversation to continue. */
  contextId?: string;
  /** The task to continue (e.g. one in INPUT_REQUIRED). */
  taskId?: string;
  /** Extra information about the message. */
  metadata?: JsonObject;
}

/**
 * Builds a user's message with one text part and a fresh `messageId`, ready for `sendMessage`.
 *
 * @example Write a message that continues a task
 * ```ts
 * import { userMessage } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * const message = userMessage("blue", { taskId: "t1" });
 * assert.equal(message.role, "ROLE_USER");
 * assert.deepEqual(message.parts, [{ text: "blue" }]);
 * assert.equal(message.taskId, "t1");
 * ```
 *
 * @param text The text.
 * @param options A message id, context or task to continue, metadata.
 * @returns The message.
 */
export function userMessage(text: string, options: UserMessageOptions = {}): Message {
  return {
    messageId: options.messageId ?? crypto.randomUUID(),
    role: "ROLE_USER",
    parts: [{ text }],
    ...(options.contextId !== undefined && { contextId: options.contextId }),
    ...(options.taskId !== undefined && { taskId: options.taskId }),
    ...(options.metadata !== undefined && { metadata: options.metadata }),
  };
}
