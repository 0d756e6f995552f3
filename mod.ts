/**
 * a2a-capnweb: serve and consume the A2A (Agent2Agent) protocol 1.0 over Cloudflare's capnweb
 * RPC. This entry point has the data model, the errors, the task core, auth and the server's
 * request handler; `./server` starts a server and `./client` connects to one.
 *
 * @example Build an agent and run it in the task core
 * ```ts
 * import { type AgentExecutor, TaskManager, textOf } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * const upper: AgentExecutor = {
 *   async execute(ctx, events) {
 *     await events.status("TASK_STATE_WORKING");
 *     await events.artifact({
 *       artifactId: "out",
 *       parts: [{ text: textOf(ctx.message).toUpperCase() }],
 *     });
 *     await events.status("TASK_STATE_COMPLETED");
 *   },
 * };
 * const manager = new TaskManager({ executor: upper });
 * const { task } = await manager.sendMessage("alice", {
 *   message: { messageId: "m1", role: "ROLE_USER", parts: [{ text: "hi" }] },
 * });
 * assert.equal(task?.artifacts?.[0]?.parts[0]?.text, "HI");
 * await manager.close();
 * ```
 *
 * @module
 */

export type {
  Artifact,
  JsonObject,
  JsonValue,
  Message,
  Part,
  Role,
  StreamResponse,
  Task,
  TaskArtifactUpdateEvent,
  TaskState,
  TaskStatus,
  TaskStatusUpdateEvent,
} from "./src/types/core.ts";
export { INTERRUPTED_STATES, isTerminalState, TERMINAL_STATES } from "./src/types/core.ts";
export {
  type StreamResponseKind,
  streamResponseKind,
  userMessage,
  type UserMessageOptions,
} from "./src/types/messages.ts";
export type {
  AgentCapabilities,
  AgentCard,
  AgentCardSignature,
  AgentExtension,
  AgentInterface,
  AgentProvider,
  AgentSkill,
  APIKeySecurityScheme,
  AuthorizationCodeOAuthFlow,
  ClientCredentialsOAuthFlow,
  DeviceCodeOAuthFlow,
  HTTPAuthSecurityScheme,
  ImplicitOAuthFlow,
  MutualTlsSecurityScheme,
  OAuth2SecurityScheme,
  OAuthFlows,
  OpenIdConnectSecurityScheme,
  PasswordOAuthFlow,
  SecurityRequirement,
  SecurityScheme,
  StringList,
} from "./src/types/agent_card.ts";
export type {
  AuthenticationInfo,
  CancelTaskRequest,
  DeleteTaskPushNotificationConfigRequest,
  GetExtendedAgentCardRequest,
  GetTaskPushNotificationConfigRequest,
  GetTaskRequest,
  ListTaskPushNotificationConfigsRequest,
  ListTaskPushNotificationConfigsResponse,
  ListTasksRequest,
  ListTasksResponse,
  SendMessageConfiguration,
  SendMessageRequest,
  SendMessageResponse,
  SubscribeToTaskRequest,
  TaskPushNotificationConfig,
} from "./src/types/requests.ts";
export {
  A2AError,
  type A2AErrorOptions,
  AuthenticationError,
  type BadRequest,
  ConnectionLostError,
  ContentTypeNotSupportedError,
  ERROR_DOMAIN,
  ErrorCode,
  type ErrorDetail,
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
  QuotaExceededError,
  RateLimitedError,
  ServiceUnavailableError,
  TaskNotCancelableError,
  TaskNotFoundError,
  UnsupportedOperationError,
  VersionNotSupportedError,
} from "./src/errors/errors.ts";
export {
  type AgentExecutor,
  type ArtifactOptions,
  type EventPublisher,
  type RequestContext,
  type StatusOptions,
  textOf,
  type TraceContext,
} from "./src/tasks/executor.ts";
export {
  InMemoryTaskStore,
  type InMemoryTaskStoreOptions,
  type PushConfigRecord,
  type RetentionOptions,
  type StoredMessage,
  type StreamEvent,
  type TaskChange,
  type TaskPage,
  type TaskQuery,
  type TaskRecord,
  type TaskStore,
  type TaskView,
} from "./src/tasks/store.ts";
export { KvTaskStore, type KvTaskStoreOptions } from "./src/tasks/kv_store.ts";
export { PostgresTaskStore, type PostgresTaskStoreOptions } from "./src/tasks/pg_store.ts";
export {
  type DeliveryOutcome,
  isShared,
  type PushDelivery,
  type SharedTaskStore,
  type Unwatch,
} from "./src/tasks/shared_store.ts";
export type { KvLeaseOptions } from "./src/tasks/kv_lease.ts";
export { StreamOverflowError, Subscription } from "./src/tasks/subscription.ts";
export {
  type CallOptions,
  type MessageHook,
  type TaskEventListener,
  TaskManager,
  type TaskManagerOptions,
  trimTask,
} from "./src/tasks/task_manager.ts";
export { Inflight } from "./src/tasks/inflight.ts";
export type { OperationObserver } from "./src/tasks/observer.ts";
export {
  type CallContext,
  RequestHandler,
  type RequestHandlerOptions,
} from "./src/tasks/request_handler.ts";
export {
  parseTokenList,
  type Principal,
  StaticTokenVerifier,
  type TokenVerifier,
} from "./src/auth/tokens.ts";
export { JwtVerifier, type JwtVerifierOptions, type PublicJwk } from "./src/auth/jwt.ts";
export { AuthThrottle, type AuthThrottleOptions } from "./src/auth/throttle.ts";
export type { StoredTicket, TicketStore } from "./src/auth/ticket_store.ts";
export { PostgresTicketStore } from "./src/auth/pg_ticket_store.ts";
export {
  type Credentials,
  DEFAULT_ANONYMOUS_USER_ID,
  Session,
  SessionManager,
  type SessionManagerOptions,
  type Ticket,
} from "./src/auth/sessions.ts";
export {
  type A2AHandler,
  type AgentCardInput,
  buildAgentCard,
  CAPNWEB_BINDING_URI,
  type ConnectionInfo,
  createHandler,
  DEFAULT_MAX_EVENT_BYTES,
  DEFAULT_MAX_MESSAGE_BYTES,
  type HandlerOptions,
  type HandlerStats,
  PATHS,
  type ServerLimits,
} from "./src/http/handler.ts";
export { trustedProxyAddress, type TrustedProxyOptions } from "./src/http/trusted_proxy.ts";
export type { AuthenticateOptions, PushCallback, StreamSink } from "./src/rpc/types.ts";
export {
  type CreatePushConfigOptions,
  type PushConfigPage,
  PushDispatcher,
  type PushHooks,
  type PushOptions,
} from "./src/push/dispatcher.ts";
export {
  type AddressKind,
  classifyAddress,
  type DestinationPolicy,
  type HostResolver,
} from "./src/push/address.ts";
export { type CallbackPushConfig, PUSH_CALLBACK_URL, type PushReceiver } from "./src/push/types.ts";
export {
  EVENT_SEQ_HEADER,
  NOTIFICATION_CONTENT_TYPE,
  NOTIFICATION_TOKEN_HEADER,
} from "./src/push/webhook.ts";
export {
  createJsonRpcHandler,
  type JsonRpcHandler,
  type JsonRpcHandlerOptions,
} from "./src/jsonrpc/server.ts";
export { JSONRPC_BINDING, JSONRPC_METHODS } from "./src/jsonrpc/protocol.ts";
export type { VerifyToken } from "./src/json_http/auth.ts";
export { createRestHandler, type RestHandler, type RestHandlerOptions } from "./src/rest/server.ts";
export type { JsonBindingOptions } from "./src/json_http/options.ts";
export { REST_BINDING, type RestErrorBody } from "./src/rest/protocol.ts";
export { chunkText, demoAgent, demoAgentCard, SLOW_CHUNK_MS } from "./src/demo/agent.ts";
export { demoPageHtml, type DemoPageOptions } from "./src/demo/page.ts";
export { ACCESS_LOG_CATEGORY } from "./src/observability/access_log.ts";
export type { MetricsOption } from "./src/observability/metrics.ts";
export { TRACER_NAME } from "./src/observability/tracing.ts";
