// The one request handler behind every binding: parses each operation's parameters from the
// network with its schema, checks the agent's declared capabilities, then calls the task core.

import type { z } from "zod";
import {
  ExtendedAgentCardNotConfiguredError,
  InvalidParamsError,
  UnsupportedOperationError,
} from "../errors/errors.ts";
import type { AgentCard } from "../types/agent_card.ts";
import type { Task } from "../types/core.ts";
import {
  CancelTaskRequestSchema,
  GetExtendedAgentCardRequestSchema,
  GetTaskRequestSchema,
  ListTasksRequestSchema,
  type ListTasksResponse,
  SendMessageRequestSchema,
  type SendMessageResponse,
  SubscribeToTaskRequestSchema,
} from "../types/requests.ts";
import type { Subscription } from "./subscription.ts";
import type { TaskManager } from "./task_manager.ts";

/** Who is calling: the authenticated user. */
export interface CallContext {
  /** The authenticated user's id. */
  userId: string;
  /** The origin the client reached the server at, for cards that list interface URLs. */
  origin?: string;
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
  const result = schema.safeParse(value === undefined ? {} : value);
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
}

/** Parses and dispatches the A2A operations for every binding. */
export class RequestHandler {
  #manager: TaskManager;
  #card: AgentCard;
  #extended: RequestHandlerOptions["extendedAgentCard"];

  /**

   * Creates the object.

   *

   * @param options The task core and the agent card.

   */
  constructor(options: RequestHandlerOptions) {
    this.#manager = options.manager;
    this.#card = options.agentCard;
    this.#extended = options.extendedAgentCard;
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
    const request = parseParams(SendMessageRequestSchema, params);
    return this.#manager.sendMessage(call.userId, request);
  }

  /** SendStreamingMessage. */
  sendStreamingMessage(call: CallContext, params: unknown): Promise<Subscription> {
    this.#requireStreaming();
    const request = parseParams(SendMessageRequestSchema, params);
    return this.#manager.sendStreamingMessage(call.userId, request);
  }

  /** SubscribeToTask, with an optional `afterSeq` to resume after. */
  subscribeToTask(
    call: CallContext,
    params: unknown,
    afterSeq?: unknown,
  ): Promise<Subscription> {
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
  }

  /** GetTask. */
  getTask(call: CallContext, params: unknown): Promise<Task> {
    return this.#manager.getTask(call.userId, parseParams(GetTaskRequestSchema, params));
  }

  /** ListTasks. */
  listTasks(call: CallContext, params: unknown): Promise<ListTasksResponse> {
    return this.#manager.listTasks(call.userId, parseParams(ListTasksRequestSchema, params));
  }

  /** CancelTask. */
  cancelTask(call: CallContext, params: unknown): Promise<Task> {
    return this.#manager.cancelTask(call.userId, parseParams(CancelTaskRequestSchema, params));
  }

  /** GetExtendedAgentCard. */
  async getExtendedAgentCard(call: CallContext, params: unknown): Promise<AgentCard> {
    parseParams(GetExtendedAgentCardRequestSchema, params);
    if (this.#card.capabilities.extendedAgentCard !== true) {
      throw new UnsupportedOperationError("This agent does not offer an extended agent card");
    }
    const ext = this.#extended;
    if (ext === undefined) throw new ExtendedAgentCardNotConfiguredError();
    return await ext(call);
  }

  #requireStreaming(): void {
    if (this.#card.capabilities.streaming !== true) {
      throw new UnsupportedOperationError("This agent does not support streaming");
    }
  }
}
