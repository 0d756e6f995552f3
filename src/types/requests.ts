// Request and response messages of the eleven A2A 1.0 operations, and push notification configs.

import { z } from "zod";
import {
  Int32Schema,
  JsonObjectSchema,
  type Message,
  MessageSchema,
  type Task,
  type TaskState,
  TaskStateSchema,
  TimestampSchema,
} from "./core.ts";
import type { JsonObject } from "./core.ts";

/** Credentials that the agent sends with each push notification. */
export interface AuthenticationInfo {
  /** The HTTP authentication scheme, e.g. `Bearer` or `Basic`. */
  scheme: string;
  /** The credentials to send with that scheme. */
  credentials?: string;
}

/** Where and how to deliver push notifications for one task. */
export interface TaskPushNotificationConfig {
  /** Optional tenant. */
  tenant?: string;
  /** The config's id; the server assigns one when it is absent. */
  id?: string;
  /** The task the config belongs to. */
  taskId?: string;
  /** The webhook URL that receives the notifications. */
  url: string;
  /** A token the receiver can use to check a notification's origin. */
  token?: string;
  /** Credentials the agent sends with each notification. */
  authentication?: AuthenticationInfo;
}

/** Options for one SendMessage call. */
export interface SendMessageConfiguration {
  /** Media types the client accepts in the response parts. */
  acceptedOutputModes?: string[];
  /** A push notification config to register for the task. */
  taskPushNotificationConfig?: TaskPushNotificationConfig;
  /** How many recent history messages to include in the returned task. */
  historyLength?: number;
  /** Return as soon as the task exists instead of waiting for it to finish or pause. */
  returnImmediately?: boolean;
}

/** Parameters of SendMessage and SendStreamingMessage. */
export interface SendMessageRequest {
  /** Optional tenant. */
  tenant?: string;
  /** The message to send. */
  message: Message;
  /** Options for this call. */
  configuration?: SendMessageConfiguration;
  /** Extra information for the agent. */
  metadata?: JsonObject;
}

/** Result of SendMessage: exactly one of a task or a direct message. */
export interface SendMessageResponse {
  /** The task that tracks the work. */
  task?: Task;
  /** A direct reply, when the agent answers without a task. */
  message?: Message;
}

/** Parameters of GetTask. */
export interface GetTaskRequest {
  /** Optional tenant. */
  tenant?: string;
  /** The task's id. */
  id: string;
  /** How many recent history messages to include. */
  historyLength?: number;
}

/** Parameters of ListTasks. */
export interface ListTasksRequest {
  /** Optional tenant. */
  tenant?: string;
  /** Only tasks of this context. */
  contextId?: string;
  /** Only tasks in this state. */
  status?: TaskState;
  /** Page size, 1 to 100; 50 when absent. */
  pageSize?: number;
  /** The `nextPageToken` of the previous page. */
  pageToken?: string;
  /** How many recent history messages to include per task. */
  historyLength?: number;
  /** Only tasks whose status changed after this time (ISO 8601). */
  statusTimestampAfter?: string;
  /** Include each task's artifacts. */
  includeArtifacts?: boolean;
}

/** Result of ListTasks. */
export interface ListTasksResponse {
  /** The tasks of this page, most recently updated first. */
  tasks: Task[];
  /** The token of the next page; `""` on the last page. */
  nextPageToken: string;
  /** The page size that was used. */
  pageSize: number;
  /** How many tasks match the filters in all. */
  totalSize: number;
}

/** Parameters of CancelTask. */
export interface CancelTaskRequest {
  /** Optional tenant. */
  tenant?: string;
  /** The task's id. */
  id: string;
  /** Extra information for the agent. */
  metadata?: JsonObject;
}

/** Parameters of SubscribeToTask. */
export interface SubscribeToTaskRequest {
  /** Optional tenant. */
  tenant?: string;
  /** The task's id. */
  id: string;
}

/** Parameters of GetTaskPushNotificationConfig. */
export interface GetTaskPushNotificationConfigRequest {
  /** Optional tenant. */
  tenant?: string;
  /** The task's id. */
  taskId: string;
  /** The config's id. */
  id: string;
}

/** Parameters of DeleteTaskPushNotificationConfig. */
export interface DeleteTaskPushNotificationConfigRequest {
  /** Optional tenant. */
  tenant?: string;
  /** The task's id. */
  taskId: string;
  /** The config's id. */
  id: string;
}

/** Parameters of ListTaskPushNotificationConfigs. */
export interface ListTaskPushNotificationConfigsRequest {
  /** Optional tenant. */
  tenant?: string;
  /** The task's id. */
  taskId: string;
  /** Page size. */
  pageSize?: number;
  /** The `nextPageToken` of the previous page. */
  pageToken?: string;
}

/** Result of ListTaskPushNotificationConfigs. */
export interface ListTaskPushNotificationConfigsResponse {
  /** The configs of this page. */
  configs: TaskPushNotificationConfig[];
  /** The token of the next page; `""` on the last page. */
  nextPageToken: string;
}

/** Parameters of GetExtendedAgentCard. */
export interface GetExtendedAgentCardRequest {
  /** Optional tenant. */
  tenant?: string;
}

// ---------------------------------------------------------------------------------------------

const tenant = z.string().exactOptional();
const requiredId = (what: string) =>
  z.string({ error: `${what} is required` }).min(1, `${what} must not be empty`);
const historyLength = Int32Schema.pipe(z.number().min(0, "historyLength must not be negative"))
  .exactOptional();

export const AuthenticationInfoSchema: z.ZodType<AuthenticationInfo> = z.object({
  scheme: z.string().min(1, "scheme must not be empty"),
  credentials: z.string().exactOptional(),
});

export const TaskPushNotificationConfigSchema: z.ZodType<TaskPushNotificationConfig> = z.object({
  tenant,
  id: z.string().exactOptional(),
  taskId: z.string().exactOptional(),
  url: z.url({ protocol: /^https?$/, error: "url must be an http or https URL" }),
  token: z.string().exactOptional(),
  authentication: AuthenticationInfoSchema.exactOptional(),
});

export const SendMessageConfigurationSchema: z.ZodType<SendMessageConfiguration> = z.object({
  acceptedOutputModes: z.array(z.string()).exactOptional(),
  taskPushNotificationConfig: TaskPushNotificationConfigSchema.exactOptional(),
  historyLength,
  returnImmediately: z.boolean().exactOptional(),
});

export const SendMessageRequestSchema: z.ZodType<SendMessageRequest> = z.object({
  tenant,
  message: MessageSchema,
  configuration: SendMessageConfigurationSchema.exactOptional(),
  metadata: JsonObjectSchema.exactOptional(),
});

export const GetTaskRequestSchema: z.ZodType<GetTaskRequest> = z.object({
  tenant,
  id: requiredId("id"),
  historyLength,
});

export const ListTasksRequestSchema: z.ZodType<ListTasksRequest> = z.object({
  tenant,
  contextId: z.string().exactOptional(),
  status: TaskStateSchema.exactOptional(),
  pageSize: Int32Schema.pipe(
    z.number().min(1, "pageSize must be between 1 and 100").max(
      100,
      "pageSize must be between 1 and 100",
    ),
  ).exactOptional(),
  pageToken: z.string().exactOptional(),
  historyLength,
  statusTimestampAfter: TimestampSchema.exactOptional(),
  includeArtifacts: z.boolean().exactOptional(),
});

export const CancelTaskRequestSchema: z.ZodType<CancelTaskRequest> = z.object({
  tenant,
  id: requiredId("id"),
  metadata: JsonObjectSchema.exactOptional(),
});

export const SubscribeToTaskRequestSchema: z.ZodType<SubscribeToTaskRequest> = z.object({
  tenant,
  id: requiredId("id"),
});

export const GetTaskPushNotificationConfigRequestSchema: z.ZodType<
  GetTaskPushNotificationConfigRequest
> = z.object({ tenant, taskId: requiredId("taskId"), id: requiredId("id") });

export const DeleteTaskPushNotificationConfigRequestSchema: z.ZodType<
  DeleteTaskPushNotificationConfigRequest
> = z.object({ tenant, taskId: requiredId("taskId"), id: requiredId("id") });

export const ListTaskPushNotificationConfigsRequestSchema: z.ZodType<
  ListTaskPushNotificationConfigsRequest
> = z.object({
  tenant,
  taskId: requiredId("taskId"),
  pageSize: Int32Schema.pipe(z.number().min(0, "pageSize must not be negative")).exactOptional(),
  pageToken: z.string().exactOptional(),
});

export const GetExtendedAgentCardRequestSchema: z.ZodType<GetExtendedAgentCardRequest> = z
  .object({ tenant });
