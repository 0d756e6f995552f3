// The A2A 1.0 core data model (Part, Message, Task, Artifact, streaming events) in ProtoJSON
// shape, each as a TypeScript interface plus a zod schema that the compiler checks against it.

import { z } from "zod";

/** A JSON object, as carried by `google.protobuf.Struct` fields such as `metadata`. */
export type JsonObject = { [key: string]: JsonValue };

/** Any JSON value, as carried by `google.protobuf.Value` fields such as `Part.data`. */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;

/** The lifecycle states of a task (`TaskState` in the A2A 1.0 proto). */
export type TaskState =
  | "TASK_STATE_UNSPECIFIED"
  | "TASK_STATE_SUBMITTED"
  | "TASK_STATE_WORKING"
  | "TASK_STATE_COMPLETED"
  | "TASK_STATE_FAILED"
  | "TASK_STATE_CANCELED"
  | "TASK_STATE_INPUT_REQUIRED"
  | "TASK_STATE_REJECTED"
  | "TASK_STATE_AUTH_REQUIRED";

/** Who sent a message (`Role` in the A2A 1.0 proto). */
export type Role = "ROLE_UNSPECIFIED" | "ROLE_USER" | "ROLE_AGENT";

/**
 * One piece of content in a message or artifact: exactly one of `text`, `raw` (base64 bytes),
 * `url` or `data` (any JSON value), with optional `mediaType`, `filename` and `metadata`.
 */
export interface Part {
  /** Plain text content. */
  text?: string;
  /** Inline bytes, base64-encoded as ProtoJSON encodes `bytes`. */
  raw?: string;
  /** A URL pointing at the content. */
  url?: string;
  /** Structured content: any JSON value. */
  data?: JsonValue;
  /** Extra information about this part. */
  metadata?: JsonObject;
  /** A file name for the content, if it is a file. */
  filename?: string;
  /** The media type of the content, e.g. `text/plain` or `image/png`. */
  mediaType?: string;
}

/** One unit of communication between a client and an agent. */
export interface Message {
  /** Unique id of the message, chosen by its sender. */
  messageId: string;
  /** The conversation this message belongs to. */
  contextId?: string;
  /** The task this message belongs to, when it continues an existing task. */
  taskId?: string;
  /** Who sent it. */
  role: Role;
  /** The content; at least one part. */
  parts: Part[];
  /** Extra information about the message. */
  metadata?: JsonObject;
  /** URIs of the extensions present in this message. */
  extensions?: string[];
  /** Ids of other tasks this message refers to. */
  referenceTaskIds?: string[];
}

/** The status of a task at one moment: its state, an optional message and a timestamp. */
export interface TaskStatus {
  /** The lifecycle state. */
  state: TaskState;
  /** A message from the agent about this status (e.g. why input is required). */
  message?: Message;
  /** When the status was set, ISO 8601 in UTC. */
  timestamp?: string;
}

/** An output produced by a task. */
export interface Artifact {
  /** Unique id of the artifact within its task. */
  artifactId: string;
  /** A human-readable name. */
  name?: string;
  /** A human-readable description. */
  description?: string;
  /** The content; at least one part. */
  parts: Part[];
  /** Extra information about the artifact. */
  metadata?: JsonObject;
  /** URIs of the extensions present in this artifact. */
  extensions?: string[];
}

/** A stateful unit of work that an agent performs for a client. */
export interface Task {
  /** Server-generated unique id. */
  id: string;
  /** The conversation this task belongs to. */
  contextId: string;
  /** The current status. */
  status: TaskStatus;
  /** Outputs produced so far. */
  artifacts?: Artifact[];
  /** Messages exchanged during the task, oldest first. */
  history?: Message[];
  /** Extra information about the task. */
  metadata?: JsonObject;
}

/** A streaming event: the status of a task changed. */
export interface TaskStatusUpdateEvent {
  /** The task that changed. */
  taskId: string;
  /** The task's context. */
  contextId: string;
  /** The new status. */
  status: TaskStatus;
  /** Extra information about the event. */
  metadata?: JsonObject;
}

/** A streaming event: an artifact of a task was created or extended. */
export interface TaskArtifactUpdateEvent {
  /** The task the artifact belongs to. */
  taskId: string;
  /** The task's context. */
  contextId: string;
  /** The artifact, or the chunk of it that this event adds. */
  artifact: Artifact;
  /** True when the parts extend an artifact sent earlier with the same id. */
  append?: boolean;
  /** True when this is the last chunk of the artifact. */
  lastChunk?: boolean;
  /** Extra information about the event. */
  metadata?: JsonObject;
}

/** One item of a stream: exactly one of `task`, `message`, `statusUpdate`, `artifactUpdate`. */
export interface StreamResponse {
  /** A task snapshot. */
  task?: Task;
  /** A direct message from the agent. */
  message?: Message;
  /** A status change. */
  statusUpdate?: TaskStatusUpdateEvent;
  /** An artifact chunk. */
  artifactUpdate?: TaskArtifactUpdateEvent;
}

/** The terminal states: a task in one of them never changes again. */
export const TERMINAL_STATES: ReadonlySet<TaskState> = new Set<TaskState>([
  "TASK_STATE_COMPLETED",
  "TASK_STATE_FAILED",
  "TASK_STATE_CANCELED",
  "TASK_STATE_REJECTED",
]);

/** The interrupted states: the task waits for the client before it goes on. */
export const INTERRUPTED_STATES: ReadonlySet<TaskState> = new Set<TaskState>([
  "TASK_STATE_INPUT_REQUIRED",
  "TASK_STATE_AUTH_REQUIRED",
]);

/**
 * Tells whether a state is terminal.
 *
 * @param state The state to test.
 * @returns True for COMPLETED, FAILED, CANCELED and REJECTED.
 *
 * @example Terminal and non-terminal states
 * ```ts
 * import { isTerminalState } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isTerminalState("TASK_STATE_COMPLETED"), true);
 * assert.equal(isTerminalState("TASK_STATE_WORKING"), false);
 * ```
 */
export function isTerminalState(state: TaskState): boolean {
  return TERMINAL_STATES.has(state);
}

// ---------------------------------------------------------------------------------------------
// Schemas. ProtoJSON parsers accept enum numbers and int64/int32 as strings too, so ours do.

const TASK_STATES = [
  "TASK_STATE_UNSPECIFIED",
  "TASK_STATE_SUBMITTED",
  "TASK_STATE_WORKING",
  "TASK_STATE_COMPLETED",
  "TASK_STATE_FAILED",
  "TASK_STATE_CANCELED",
  "TASK_STATE_INPUT_REQUIRED",
  "TASK_STATE_REJECTED",
  "TASK_STATE_AUTH_REQUIRED",
] as const satisfies readonly TaskState[];

const ROLES = ["ROLE_UNSPECIFIED", "ROLE_USER", "ROLE_AGENT"] as const satisfies readonly Role[];

function protoEnum<const T extends readonly [string, ...string[]]>(values: T) {
  return z.preprocess(
    (
      v,
    ) => (typeof v === "number" && Number.isInteger(v) && v >= 0 && v < values.length
      ? values[v]
      : v),
    z.enum(values),
  );
}

export const TaskStateSchema: z.ZodType<TaskState> = protoEnum(TASK_STATES);
export const RoleSchema: z.ZodType<Role> = protoEnum(ROLES);

/** A ProtoJSON int32: a number, or a string of digits. */
export const Int32Schema: z.ZodType<number> = z.preprocess(
  (v) => (typeof v === "string" && /^-?\d+$/.test(v) ? Number(v) : v),
  z.number().int().min(-2147483648).max(2147483647),
);

export const JsonValueSchema: z.ZodType<JsonValue> = z.json() as z.ZodType<JsonValue>;
export const JsonObjectSchema: z.ZodType<JsonObject> = z.record(z.string(), JsonValueSchema);

/** An RFC 3339 timestamp in UTC, as ProtoJSON writes `google.protobuf.Timestamp`. */
export const TimestampSchema: z.ZodType<string> = z.iso.datetime({ offset: false, local: false });

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

export const PartSchema: z.ZodType<Part> = z.object({
  text: z.string().exactOptional(),
  raw: z.string().regex(BASE64, "raw must be base64").exactOptional(),
  url: z.string().exactOptional(),
  data: JsonValueSchema.exactOptional(),
  metadata: JsonObjectSchema.exactOptional(),
  filename: z.string().exactOptional(),
  mediaType: z.string().exactOptional(),
}).refine(
  (p) => [p.text, p.raw, p.url, p.data].filter((v) => v !== undefined).length === 1,
  "a part must have exactly one of text, raw, url or data",
);

const nonEmptyId = (what: string) => z.string().min(1, `${what} must not be empty`);

export const MessageSchema: z.ZodType<Message> = z.object({
  messageId: nonEmptyId("messageId"),
  contextId: z.string().exactOptional(),
  taskId: z.string().exactOptional(),
  role: RoleSchema,
  parts: z.array(PartSchema).min(1, "parts must not be empty"),
  metadata: JsonObjectSchema.exactOptional(),
  extensions: z.array(z.string()).exactOptional(),
  referenceTaskIds: z.array(z.string()).exactOptional(),
});

export const TaskStatusSchema: z.ZodType<TaskStatus> = z.object({
  state: TaskStateSchema,
  message: MessageSchema.exactOptional(),
  timestamp: TimestampSchema.exactOptional(),
});

export const ArtifactSchema: z.ZodType<Artifact> = z.object({
  artifactId: nonEmptyId("artifactId"),
  name: z.string().exactOptional(),
  description: z.string().exactOptional(),
  parts: z.array(PartSchema).min(1, "parts must not be empty"),
  metadata: JsonObjectSchema.exactOptional(),
  extensions: z.array(z.string()).exactOptional(),
});

export const TaskSchema: z.ZodType<Task> = z.object({
  id: nonEmptyId("id"),
  contextId: z.string(),
  status: TaskStatusSchema,
  artifacts: z.array(ArtifactSchema).exactOptional(),
  history: z.array(MessageSchema).exactOptional(),
  metadata: JsonObjectSchema.exactOptional(),
});

export const TaskStatusUpdateEventSchema: z.ZodType<TaskStatusUpdateEvent> = z.object({
  taskId: nonEmptyId("taskId"),
  contextId: z.string(),
  status: TaskStatusSchema,
  metadata: JsonObjectSchema.exactOptional(),
});

export const TaskArtifactUpdateEventSchema: z.ZodType<TaskArtifactUpdateEvent> = z.object({
  taskId: nonEmptyId("taskId"),
  contextId: z.string(),
  artifact: ArtifactSchema,
  append: z.boolean().exactOptional(),
  lastChunk: z.boolean().exactOptional(),
  metadata: JsonObjectSchema.exactOptional(),
});

export const StreamResponseSchema: z.ZodType<StreamResponse> = z.object({
  task: TaskSchema.exactOptional(),
  message: MessageSchema.exactOptional(),
  statusUpdate: TaskStatusUpdateEventSchema.exactOptional(),
  artifactUpdate: TaskArtifactUpdateEventSchema.exactOptional(),
}).refine(
  (r) =>
    [r.task, r.message, r.statusUpdate, r.artifactUpdate].filter((v) => v !== undefined).length ===
      1,
  "a stream response must have exactly one of task, message, statusUpdate or artifactUpdate",
);
