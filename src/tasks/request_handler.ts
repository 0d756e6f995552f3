// The one request handler behind every binding: parses each operation's parameters from the
// network with its schema, checks the agent's declared capabilities, then calls the task core.

import { MAX_JSON_DEPTH, nestsDeeperThan } from "../util/json_depth.ts";
import type { z } from "zod";
import {
  ExtendedAgentCardNotConfiguredError,
  ExtensionSupportRequiredError,
  InvalidParamsError,
  PushNotificationNotSupportedError,
  UnsupportedOperationError,
} from "../errors/errors.ts";
import type { PushDispatcher } from "../push/dispatcher.ts";
import { CallbackPushConfigSchema, type PushReceiver } from "../push/types.ts";
import type { AgentCard } from "../types/agent_card.ts";
import type { Task } from "../types/core.ts";
import {
  CancelTaskRequestSchema,
  DeleteTaskPushNotificationConfigRequestSchema,
  GetExtendedAgentCardRequestSchema,
  GetTaskPushNotificationConfigRequestSchema,
  GetTaskRequestSchema,
  ListTaskPushNotificationConfigsRequestSchema,
  type ListTaskPushNotificationConfigsResponse,
  ListTasksRequestSchema,
  type ListTasksResponse,
  type SendMessageRequest,
  SendMessageRequestSchema,
  type SendMessageResponse,
  SubscribeToTaskRequestSchema,
  type TaskPushNotificationConfig,
  TaskPushNotificationConfigSchema,
} from "../types/requests.ts";
import type { Subscription } from "./subscription.ts";
import type { TaskManager } from "./task_manager.ts";
import { Inflight } from "./inflight.ts";
import type { TraceContext } from "./executor.ts";
import type { OperationObserver } from "./observer.ts";

/** Who is calling: the authenticated user. */
export interface CallContext {
  /** The authenticated user's id. */
  userId: string;
  /** The origin the client reached the server at, for cards that list interface URLs. */
  origin?: string;
  /** The binding the call came on (`capnweb`, `jsonrpc`, `rest`), for metrics and logs. */
  binding?: string;
  /**
   * The request's headers, on the HTTP bindings: where tracing finds the caller's
   * `traceparent` and `tracestate`.
   */
  headers?: { get(name: string): string | null };
}

// Fields of type google.protobuf.Struct or Value, where null is a value rather than "unset".
const JSON_FIELDS = new Set(["metadata", "data", "params", "header"]);

/**
 * Reads a value from the network as ProtoJSON does: a member whose value is null is not set
 * (except inside Struct and Value fields, where null is data), and a field may be named by its
 * lowerCamelCase JSON name or by its proto name (`history_length` is `historyLength`). Names
 * inside Struct and Value fields (`metadata`, `data`, ...) are data and kept as sent.
 *
 * @param value A value from the network.
 * @returns The value with null members dropped and field names in lowerCamelCase.
 * @throws {InvalidParamsError} When one field is sent under both of its names.
 */
export function normalizeInput(value: unknown, path = ""): unknown {
  if (Array.isArray(value)) return value.map((v, i) => normalizeInput(v, `${path}[${i}]`));
  if (typeof value !== "object" || value === null) return value;
  if (Object.getPrototypeOf(value) !== Object.prototype && Object.getPrototypeOf(value) !== null) {
    return value;
  }
  const out: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(value)) {
    const k = name.includes("_") ? camelCase(name) : name;
    if (k !== name && Object.hasOwn(value, k)) {
      const field = path ? `${path}.${k}` : k;
      throw new InvalidParamsError(
        `Invalid params: ${field} is sent twice, as ${name} and as ${k}`,
        [{ field, description: `send either ${k} or ${name}, not both` }],
      );
    }
    // ProtoJSON: null is a field's default, except in a `google.protobuf.Value` field (a data
    // part's `data`), where it is the JSON null. A JSON field's contents are data, kept as sent.
    if (v === null) {
      if (k === "data") out[k] = v;
    } else out[k] = JSON_FIELDS.has(k) ? v : normalizeInput(v, path ? `${path}.${k}` : k);
  }
  return out;
}

/** `history_length` → `historyLength`, as protoc derives JSON names. */
function camelCase(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Parses a value with a schema, turning a failure into InvalidParamsError whose message names
 * every offending field.
 *
 * @param schema The schema.
 * @param value The value from the network.
 * @param prefix A path prefix for field names, e.g. `params`.
 * @returns The parsed value.
 */
export function parseParams<T>(schema: z.ZodType<T>, value: unknown, prefix = ""): T {
  // Checked first: the steps below recurse, and a deep enough document would overflow the stack.
  if (nestsDeeperThan(value, MAX_JSON_DEPTH)) {
    throw new InvalidParamsError(
      `Invalid params: nested deeper than ${MAX_JSON_DEPTH} levels`,
      [{ field: prefix || "(params)", description: `must nest at most ${MAX_JSON_DEPTH} levels` }],
    );
  }
  const result = schema.safeParse(value === undefined ? {} : normalizeInput(value));
  if (result.success) return result.data;
  const violations = result.error.issues.map((issue) => {
    const path = [prefix, ...issue.path.map(String)].filter((p) => p !== "").join(".");
    return { field: path || "(params)", description: issue.message };
  });
  const text = violations.map((v) => `${v.field}: ${v.description}`).join("; ");
  throw new InvalidParamsError(`Invalid params: ${text}`, violations);
}

/** Options of a RequestHandler. */
export interface RequestHandlerOptions {
  /** The task core. */
  manager: TaskManager;
  /** The public agent card (its `capabilities` decide which operations are allowed). */
  agentCard: AgentCard;
  /** The card for authenticated users, when the agent has one; may depend on the caller. */
  extendedAgentCard?: (call: CallContext) => AgentCard | Promise<AgentCard>;
  /**
   * Push notification configs and their delivery. Without it, the push operations fail with
   * PushNotificationNotSupportedError whatever the card says.
   */
  push?: PushDispatcher;
  /** Sees every operation, for metrics, tracing and access logs. */
  observer?: OperationObserver;
}

/** Parses and dispatches the A2A operations for every binding. */
export class RequestHandler {
  #manager: TaskManager;
  #card: AgentCard;
  #inflight = new Inflight();
  #extended: RequestHandlerOptions["extendedAgentCard"];
  #push: PushDispatcher | undefined;
  #observer: OperationObserver | undefined;

  /**
   * Creates the handler over a task core.
   *
   * @param options The task core and the agent card.
   */
  constructor(options: RequestHandlerOptions) {
    this.#manager = options.manager;
    this.#card = options.agentCard;
    this.#extended = options.extendedAgentCard;
    this.#push = options.push;
    this.#observer = options.observer;
  }

  /** Runs one operation: counted for shutdown, and observed when there is an observer. */
  #run<T>(
    operation: string,
    call: CallContext,
    params: unknown,
    fn: (traceContext?: TraceContext) => Promise<T>,
  ): Promise<T> {
    const observer = this.#observer;
    // Without an observer the call costs nothing more than before: no closure, no timer.
    if (observer === undefined) return this.#inflight.track(fn);
    return this.#inflight.track(() => observer.observe(operation, call, params, fn));
  }

  /** The calls in progress, which a graceful shutdown waits for. */
  get inflight(): Inflight {
    return this.#inflight;
  }

  /** The push notification dispatcher, when push notifications are configured. */
  get push(): PushDispatcher | undefined {
    return this.#push;
  }

  /** The task core. */
  get manager(): TaskManager {
    return this.#manager;
  }

  /** The public agent card. */
  get agentCard(): AgentCard {
    return this.#card;
  }

  /** SendMessage. */
  sendMessage(call: CallContext, params: unknown): Promise<SendMessageResponse> {
    return this.#run("SendMessage", call, params, (traceContext) => {
      const request = parseParams(SendMessageRequestSchema, params);
      this.#checkSendPush(request);
      return this.#manager.sendMessage(call.userId, request, traceContext && { traceContext });
    });
  }

  /** SendStreamingMessage. */
  sendStreamingMessage(call: CallContext, params: unknown): Promise<Subscription> {
    return this.#run("SendStreamingMessage", call, params, (traceContext) => {
      this.#requireStreaming();
      const request = parseParams(SendMessageRequestSchema, params);
      this.#checkSendPush(request);
      return this.#manager.sendStreamingMessage(
        call.userId,
        request,
        traceContext && { traceContext },
      );
    });
  }

  /** SubscribeToTask, with an optional `afterSeq` to resume after. */
  subscribeToTask(
    call: CallContext,
    params: unknown,
    afterSeq?: unknown,
  ): Promise<Subscription> {
    return this.#run("SubscribeToTask", call, params, () => {
      this.#requireStreaming();
      const request = parseParams(SubscribeToTaskRequestSchema, params);
      let after: number | undefined;
      if (afterSeq !== undefined && afterSeq !== null) {
        if (typeof afterSeq !== "number" || !Number.isSafeInteger(afterSeq) || afterSeq < 0) {
          throw new InvalidParamsError("Invalid params: afterSeq must be a non-negative integer", [
            { field: "afterSeq", description: "must be a non-negative integer" },
          ]);
        }
        after = afterSeq;
      }
      return this.#manager.subscribeToTask(
        call.userId,
        after === undefined ? { id: request.id } : { id: request.id, afterSeq: after },
      );
    });
  }

  /** GetTask. */
  getTask(call: CallContext, params: unknown): Promise<Task> {
    return this.#run("GetTask", call, params, () => {
      return this.#manager.getTask(call.userId, parseParams(GetTaskRequestSchema, params));
    });
  }

  /** ListTasks. */
  listTasks(call: CallContext, params: unknown): Promise<ListTasksResponse> {
    return this.#run("ListTasks", call, params, () => {
      return this.#manager.listTasks(call.userId, parseParams(ListTasksRequestSchema, params));
    });
  }

  /** CancelTask. */
  cancelTask(call: CallContext, params: unknown): Promise<Task> {
    return this.#run("CancelTask", call, params, () => {
      return this.#manager.cancelTask(call.userId, parseParams(CancelTaskRequestSchema, params));
    });
  }

  /** GetExtendedAgentCard. */
  getExtendedAgentCard(call: CallContext, params: unknown): Promise<AgentCard> {
    return this.#run("GetExtendedAgentCard", call, params, async () => {
      parseParams(GetExtendedAgentCardRequestSchema, params);
      if (this.#card.capabilities.extendedAgentCard !== true) {
        throw new UnsupportedOperationError("This agent does not offer an extended agent card");
      }
      const ext = this.#extended;
      if (ext === undefined) throw new ExtendedAgentCardNotConfiguredError();
      return await ext(call);
    });
  }

  /**
   * Checks the extensions a client declared (the `A2A-Extensions` service parameter) against
   * the extensions the card marks as required.
   *
   * @param requested The extension URIs the client declared.
   * @throws {ExtensionSupportRequiredError} When a required extension is missing.
   */
  requireExtensions(requested: readonly string[]): void {
    for (const ext of this.#card.capabilities.extensions ?? []) {
      if (ext.required === true && ext.uri !== undefined && !requested.includes(ext.uri)) {
        throw new ExtensionSupportRequiredError(
          `This agent requires the extension ${ext.uri}; declare it in A2A-Extensions`,
        );
      }
    }
  }

  /**
   * CreateTaskPushNotificationConfig: registers a webhook for a task's events (the server
   * assigns `id` when absent). With `receiver` (a binding's live callback), the params carry no
   * `url` and the events go to the receiver instead.
   *
   * @param call The caller.
   * @param params A TaskPushNotificationConfig with `taskId`.
   * @param receiver A live receiver instead of a webhook.
   * @returns The config as stored.
   */
  createTaskPushNotificationConfig(
    call: CallContext,
    params: unknown,
    receiver?: PushReceiver,
  ): Promise<TaskPushNotificationConfig> {
    return this.#run("CreateTaskPushNotificationConfig", call, params, async () => {
      const push = this.#requirePush();
      const config = receiver
        ? parseParams(CallbackPushConfigSchema, params)
        : parseParams(TaskPushNotificationConfigSchema, params);
      const taskId = config.taskId;
      if (taskId === undefined || taskId === "") {
        throw new InvalidParamsError("Invalid params: taskId is required", [
          { field: "taskId", description: "is required" },
        ]);
      }
      await this.#manager.getTask(call.userId, { id: taskId, historyLength: 0 });
      return await push.create(call.userId, taskId, config, receiver ? { receiver } : {});
    });
  }

  /** GetTaskPushNotificationConfig. */
  getTaskPushNotificationConfig(
    call: CallContext,
    params: unknown,
  ): Promise<TaskPushNotificationConfig> {
    return this.#run("GetTaskPushNotificationConfig", call, params, async () => {
      const push = this.#requirePush();
      const request = parseParams(GetTaskPushNotificationConfigRequestSchema, params);
      await this.#manager.getTask(call.userId, { id: request.taskId, historyLength: 0 });
      return await push.get(call.userId, request.taskId, request.id);
    });
  }

  /** ListTaskPushNotificationConfigs. */
  listTaskPushNotificationConfigs(
    call: CallContext,
    params: unknown,
  ): Promise<ListTaskPushNotificationConfigsResponse> {
    return this.#run("ListTaskPushNotificationConfigs", call, params, async () => {
      const push = this.#requirePush();
      const request = parseParams(ListTaskPushNotificationConfigsRequestSchema, params);
      await this.#manager.getTask(call.userId, { id: request.taskId, historyLength: 0 });
      return await push.list(call.userId, request.taskId, {
        ...(request.pageSize !== undefined && { pageSize: request.pageSize }),
        ...(request.pageToken !== undefined && { pageToken: request.pageToken }),
      });
    });
  }

  /** DeleteTaskPushNotificationConfig; deleting a config that does not exist succeeds. */
  deleteTaskPushNotificationConfig(call: CallContext, params: unknown): Promise<void> {
    return this.#run("DeleteTaskPushNotificationConfig", call, params, async () => {
      const push = this.#requirePush();
      const request = parseParams(DeleteTaskPushNotificationConfigRequestSchema, params);
      await this.#manager.getTask(call.userId, { id: request.taskId, historyLength: 0 });
      await push.delete(call.userId, request.taskId, request.id);
    });
  }

  #requirePush(): PushDispatcher {
    if (this.#card.capabilities.pushNotifications !== true || this.#push === undefined) {
      throw new PushNotificationNotSupportedError(
        "This agent does not support push notifications",
      );
    }
    return this.#push;
  }

  /** A SendMessage that carries a push config needs push support; the core registers it. */
  #checkSendPush(request: SendMessageRequest): void {
    if (request.configuration?.taskPushNotificationConfig !== undefined) this.#requirePush();
  }

  #requireStreaming(): void {
    if (this.#card.capabilities.streaming !== true) {
      throw new UnsupportedOperationError("This agent does not support streaming");
    }
  }
}
