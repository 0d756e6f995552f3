// The contract between the task core and the user's agent logic: what an executor receives and
// how it reports progress.

import type { Artifact, JsonObject, Message, Part, Task, TaskState } from "../types/core.ts";
import type { SendMessageConfiguration } from "../types/requests.ts";

/** What an executor knows about the message it is asked to handle. */
export interface RequestContext {
  /** The authenticated user who sent the message. */
  readonly userId: string;
  /** The task's id (server-generated for a new task). */
  readonly taskId: string;
  /** The task's context id (generated when the client sent none). */
  readonly contextId: string;
  /** The message to handle, with `taskId` and `contextId` filled in. */
  readonly message: Message;
  /** The task as it was before this message, when the message continues an existing task. */
  readonly task: Task | undefined;
  /** The request's `configuration`, if any. */
  readonly configuration: SendMessageConfiguration | undefined;
  /** The request's `metadata`, if any. */
  readonly metadata: JsonObject | undefined;
  /** Aborted when the task is canceled or the server shuts down. */
  readonly signal: AbortSignal;
  /**
   * The OpenTelemetry context of the operation that sent the message (its span, under the
   * caller's `traceparent`), when tracing is on: pass it as the parent of the agent's own spans,
   * e.g. `tracer.startSpan("work", {}, ctx.traceContext)`. Without a registered context manager
   * `context.active()` does not carry across the core's asynchronous steps; this always does.
   */
  readonly traceContext?: TraceContext;
}

/**
 * An OpenTelemetry `Context` (from `@opentelemetry/api`), declared here so that the core needs no
 * tracing dependency: an immutable map from symbol keys to values.
 */
export interface TraceContext {
  /** Reads the value of a key. */
  getValue(key: symbol): unknown;
  /** A copy of the context with one more key. */
  setValue(key: symbol, value: unknown): TraceContext;
  /** A copy of the context without a key. */
  deleteValue(key: symbol): TraceContext;
}

/** Options for a status update. */
export interface StatusOptions {
  /** A message from the agent to attach to the status: text or a full Message. */
  message?: string | Message;
  /** Metadata of the status update event. */
  metadata?: JsonObject;
}

/** Options for an artifact update. */
export interface ArtifactOptions {
  /** The parts extend the artifact with the same id that was sent before. */
  append?: boolean;
  /** This is the last chunk of the artifact. */
  lastChunk?: boolean;
  /** Metadata of the artifact update event. */
  metadata?: JsonObject;
}

/**
 * How an executor reports progress. Each call resolves once the event is recorded in the task's
 * event log. Calls after the task reached a terminal state reject with
 * UnsupportedOperationError, which also stops an executor whose task was canceled; a call whose
 * event the store refuses rejects with that error (an InternalError), and the event is not sent.
 *
 * Streams of the task end when a status event moves it into a terminal or interrupted state,
 * not on other events: on a follow-up, the task is still INPUT_REQUIRED until the agent sets
 * WORKING, and an artifact published before that goes to the open streams like any other.
 */
export interface EventPublisher {
  /** Sets the task's status; the first call creates the task. */
  status(state: TaskState, options?: StatusOptions): Promise<void>;
  /** Adds an artifact, or a chunk of one; the first call creates the task. */
  artifact(artifact: Artifact, options?: ArtifactOptions): Promise<void>;
  /**
   * Answers with a direct message instead of a task. Only allowed as the executor's first and
   * only event: the client then gets this message and no task is created.
   */
  reply(message: Message | string | Part[]): Promise<void>;
}

/**
 * The agent logic a user implements. The task core calls `execute` once per incoming message
 * and `cancel` when a client cancels the task.
 *
 * @example An agent that echoes the text it receives
 * ```ts
 * import type { AgentExecutor } from "@a2a-capnweb/core";
 * import { textOf } from "@a2a-capnweb/core";
 *
 * const echo: AgentExecutor = {
 *   async execute(ctx, events) {
 *     await events.status("TASK_STATE_WORKING");
 *     await events.artifact({
 *       artifactId: "echo",
 *       parts: [{ text: textOf(ctx.message) }],
 *     }, { lastChunk: true });
 *     await events.status("TASK_STATE_COMPLETED");
 *   },
 * };
 * ```
 */
export interface AgentExecutor {
  /**
   * Handles one message. Publish a terminal or interrupted status before returning; a task left
   * SUBMITTED or WORKING when `execute` returns is marked FAILED, and so is one whose `execute`
   * throws. An A2AError thrown before the first event (e.g. ContentTypeNotSupportedError)
   * goes to the caller as that error instead, and no task is created. When even the FAILED
   * status cannot be stored, the caller and the task's streams get InternalError and the core
   * retries that write with backoff.
   */
  execute(context: RequestContext, events: EventPublisher): Promise<void>;
  /**
   * Asks the agent to stop. `context.signal` is already aborted when this runs. The core marks
   * the task CANCELED afterwards unless the executor published a terminal state itself.
   */
  cancel?(context: RequestContext, events: EventPublisher): Promise<void>;
}

/**
 * Joins the text parts of a message or artifact.
 *
 * @param value A message, an artifact, or a list of parts.
 * @returns The text of every text part, joined without separator.
 *
 * @example Read the text of a message
 * ```ts
 * import { type Message, textOf } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * const message: Message = { messageId: "m1", role: "ROLE_USER", parts: [{ text: "hi" }] };
 * assert.equal(textOf(message), "hi");
 * ```
 */
export function textOf(value: { parts: Part[] } | Part[]): string {
  const parts = Array.isArray(value) ? value : value.parts;
  let out = "";
  for (const p of parts) if (p.text !== undefined) out += p.text;
  return out;
}
