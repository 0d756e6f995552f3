// The client end of the JSON-RPC binding (A2A 1.0 section 9), for any A2A agent that lists a
// JSONRPC interface: fetch for calls, a small SSE parser for streams. Browser-safe.

import {
  A2AError,
  AuthenticationError,
  fromWireError,
  InternalError,
  InvalidAgentResponseError,
} from "../errors/errors.ts";
import type { StreamEvent } from "../tasks/store.ts";
import type { AgentCard } from "../types/agent_card.ts";
import type { StreamResponse, Task } from "../types/core.ts";
import type {
  CancelTaskRequest,
  DeleteTaskPushNotificationConfigRequest,
  GetExtendedAgentCardRequest,
  GetTaskPushNotificationConfigRequest,
  GetTaskRequest,
  ListTaskPushNotificationConfigsRequest,
  ListTaskPushNotificationConfigsResponse,
  ListTasksRequest,
  ListTasksResponse,
  SendMessageRequest,
  SendMessageResponse,
  SubscribeToTaskRequest,
  TaskPushNotificationConfig,
} from "../types/requests.ts";
import { HEADERS } from "../json_http/service_params.ts";
import { parseSse } from "../json_http/sse.ts";
import type { JsonRpcId } from "./protocol.ts";

/** Options of {@linkcode JsonRpcClient}. */
export interface JsonRpcClientOptions {
  /** The bearer token sent as `Authorization: Bearer`; none when absent or empty. */
  token?: string;
  /** The fetch implementation (default: the global one). */
  fetch?: typeof fetch;
  /** The A2A version to send as `A2A-Version` (default `1.0`). */
  version?: string;
  /** Extension URIs to send as `A2A-Extensions`. */
  extensions?: string[];
  /**
   * The largest SSE event accepted, in bytes of its data (default 64 MiB,
   * `DEFAULT_MAX_EVENT_BYTES`, the most this module's server sends). A larger event fails the
   * stream with InvalidAgentResponseError (-32006) naming the limit.
   */
  maxEventBytes?: number;
}

/** SubscribeToTask parameters, with the last `seq` the caller already has. */
export interface JsonRpcSubscribeOptions extends SubscribeToTaskRequest {
  /** Resume after this event (sent as `Last-Event-ID`). */
  afterSeq?: number;
}

/**
 * Reads a plain JSON-RPC response: its result, or its error as the matching A2AError. A body
 * that is not JSON, or a failed HTTP status without a JSON-RPC error, becomes an HTTP error.
 */
async function readResult(res: Response, id: JsonRpcId): Promise<unknown> {
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw httpError(res.status, text);
  }
  if (!res.ok && !(isObject(body) && body.error !== undefined)) {
    throw httpError(res.status, text);
  }
  return resultOf(body, id);
}

/** The error a call on a closed client fails with. */
export function closedError(): A2AError {
  return new A2AError(-32603, "The client is closed", "CLIENT_CLOSED");
}

/** An answer that is not a JSON-RPC response: judged by its HTTP status. */
function httpError(status: number, text: string): A2AError {
  const detail = text.length > 200 ? `${text.slice(0, 200)}...` : text;
  const message = `The agent answered HTTP ${status}${detail ? `: ${detail}` : ""}`;
  if (status === 401) return new AuthenticationError(message);
  if (status >= 500) return new InternalError(message);
  return new InvalidAgentResponseError(message);
}

/** Turns a JSON-RPC error object into the matching A2AError subclass. */
function rpcError(error: unknown): A2AError {
  const err = fromWireError(error);
  if (err instanceof A2AError) return err;
  return new InvalidAgentResponseError("The agent sent an error without a numeric code");
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Reads one JSON-RPC response and returns its result, or throws its error.
 *
 * @param body The parsed body.
 * @param id The id of the request it answers.
 */
function resultOf(body: unknown, id: JsonRpcId): unknown {
  if (!isObject(body) || body.jsonrpc !== "2.0") {
    throw new InvalidAgentResponseError(
      "The agent sent something other than a JSON-RPC 2.0 response",
    );
  }
  if (body.error !== undefined) throw rpcError(body.error);
  if (body.id !== id) {
    throw new InvalidAgentResponseError(
      `The agent answered request ${JSON.stringify(body.id)} instead of ${JSON.stringify(id)}`,
    );
  }
  if (!Object.hasOwn(body, "result")) {
    throw new InvalidAgentResponseError("The JSON-RPC response has neither result nor error");
  }
  return body.result;
}

/**
 * A client of the A2A JSON-RPC binding at one URL: one method per A2A 1.0 operation, and
 * async iterables for the streaming ones. Each stream event carries `seq`, taken from the SSE
 * event's `id` (the per-task sequence number this module's server sends); an event without a
 * numeric id gets `seq` 0, which means the server gave none.
 *
 * @example Call an agent's JSON-RPC interface directly
 * ```ts ignore
 * import { JsonRpcClient } from "@a2a-capnweb/core/client";
 *
 * const rpc = new JsonRpcClient("http://127.0.0.1:8000/a2a/jsonrpc", { token: "token-alice" });
 * const { task } = await rpc.sendMessage({
 *   message: { messageId: crypto.randomUUID(), role: "ROLE_USER", parts: [{ text: "hi" }] },
 * });
 * console.log(task?.status.state);
 * rpc.close();
 * ```
 */
export class JsonRpcClient {
  /** The JSON-RPC endpoint. */
  readonly url: string;
  #options: JsonRpcClientOptions;
  #fetch: typeof fetch;
  #nextId = 1;
  #inflight = new Set<AbortController>();
  #closed = false;

  /**
   * Creates a client of the endpoint; no request is made until the first call.
   *
   * @param url The JSON-RPC endpoint (an agent card's JSONRPC interface URL).
   * @param options The token, service parameters and fetch implementation.
   */
  constructor(url: string | URL, options: JsonRpcClientOptions = {}) {
    this.url = String(url);
    this.#options = options;
    const f = options.fetch ?? fetch;
    // `this.#fetch(...)` calls it as a method of this client, and a browser's fetch throws
    // "Illegal invocation" unless it is called unbound (or on the window).
    this.#fetch = (input, init) => f(input, init);
  }

  #headers(accept: string, lastEventId?: number): Record<string, string> {
    const o = this.#options;
    const headers: Record<string, string> = {
      "content-type": "application/json",
      accept,
      [HEADERS.version]: o.version ?? "1.0",
    };
    if (o.extensions?.length) headers[HEADERS.extensions] = o.extensions.join(",");
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    if (lastEventId !== undefined) headers[HEADERS.lastEventId] = String(lastEventId);
    return headers;
  }

  async #post(
    method: string,
    params: unknown,
    accept: string,
    controller: AbortController,
    lastEventId?: number,
  ): Promise<{ res: Response; id: number }> {
    if (this.#closed) throw closedError();
    const id = this.#nextId++;
    const body = JSON.stringify(
      params === undefined
        ? { jsonrpc: "2.0", id, method }
        : { jsonrpc: "2.0", id, method, params },
    );
    try {
      const res = await this.#fetch(this.url, {
        method: "POST",
        headers: this.#headers(accept, lastEventId),
        body,
        signal: controller.signal,
      });
      return { res, id };
    } catch (err) {
      if (this.#closed) throw closedError();
      throw err;
    }
  }

  /**
   * Calls a method and returns its result.
   *
   * @param method The JSON-RPC method, e.g. `GetTask`.
   * @param params The parameters object.
   * @returns The result.
   * @throws {A2AError} The agent's error, as the subclass matching its code.
   */
  async call<T>(method: string, params?: unknown): Promise<T> {
    const controller = new AbortController();
    this.#inflight.add(controller);
    try {
      const { res, id } = await this.#post(method, params, "application/json", controller);
      return await readResult(res, id) as T;
    } catch (err) {
      if (this.#closed && !(err instanceof A2AError)) throw closedError();
      throw err;
    } finally {
      this.#inflight.delete(controller);
    }
  }

  /**
   * Calls a streaming method and yields its events. Leaving the loop early closes the stream.
   *
   * @param method `SendStreamingMessage` or `SubscribeToTask`.
   * @param params The parameters object.
   * @param lastEventId Sent as `Last-Event-ID`: resume after this event.
   * @returns The events, each with its `seq`.
   */
  async *stream(
    method: string,
    params: unknown,
    lastEventId?: number,
  ): AsyncGenerator<StreamEvent> {
    const controller = new AbortController();
    this.#inflight.add(controller);
    try {
      const { res, id } = await this.#post(
        method,
        params,
        "text/event-stream",
        controller,
        lastEventId,
      );
      const type = res.headers.get("content-type") ?? "";
      if (!type.toLowerCase().startsWith("text/event-stream") || !res.body) {
        // An error before the stream started comes as a plain JSON-RPC response.
        await readResult(res, id);
        throw new InvalidAgentResponseError(`The agent answered ${method} without a stream`);
      }
      const options = this.#options.maxEventBytes === undefined
        ? {}
        : { maxEventBytes: this.#options.maxEventBytes };
      for await (const event of parseSse(res.body, options)) {
        let body: unknown;
        try {
          body = JSON.parse(event.data);
        } catch {
          throw new InvalidAgentResponseError("An SSE event's data is not JSON");
        }
        const result = resultOf(body, id);
        if (!isObject(result)) {
          throw new InvalidAgentResponseError("An SSE event's result is not a StreamResponse");
        }
        if (this.#closed) throw closedError();
        const seq = event.id !== undefined && /^\d+$/.test(event.id) ? Number(event.id) : 0;
        yield { ...(result as StreamResponse), seq };
      }
    } catch (err) {
      if (this.#closed && !(err instanceof A2AError)) throw closedError();
      // The SSE parser's refusal of an event over the limit.
      if (err instanceof RangeError) throw new InvalidAgentResponseError(err.message);
      throw err;
    } finally {
      controller.abort();
      this.#inflight.delete(controller);
    }
  }

  /** SendMessage: sends a message and returns the task (or a direct reply). */
  sendMessage(request: SendMessageRequest): Promise<SendMessageResponse> {
    return this.call("SendMessage", request);
  }

  /** SendStreamingMessage: the task's events as they happen. */
  sendStreamingMessage(request: SendMessageRequest): AsyncGenerator<StreamEvent> {
    return this.stream("SendStreamingMessage", request);
  }

  /** SubscribeToTask; with `afterSeq`, every event after that one (sent as `Last-Event-ID`). */
  subscribeToTask(request: JsonRpcSubscribeOptions): AsyncGenerator<StreamEvent> {
    const { afterSeq, ...params } = request;
    return this.stream("SubscribeToTask", params, afterSeq);
  }

  /** GetTask. */
  getTask(request: GetTaskRequest): Promise<Task> {
    return this.call("GetTask", request);
  }

  /** ListTasks. */
  async listTasks(request: ListTasksRequest = {}): Promise<ListTasksResponse> {
    // ProtoJSON may omit fields that hold their default value (empty list, "", 0).
    const res = await this.call<Partial<ListTasksResponse>>("ListTasks", request);
    return {
      ...res,
      tasks: res.tasks ?? [],
      nextPageToken: res.nextPageToken ?? "",
      pageSize: res.pageSize ?? 0,
      totalSize: res.totalSize ?? 0,
    };
  }

  /** CancelTask. */
  cancelTask(request: CancelTaskRequest): Promise<Task> {
    return this.call("CancelTask", request);
  }

  /** CreateTaskPushNotificationConfig. */
  createTaskPushNotificationConfig(
    request: TaskPushNotificationConfig,
  ): Promise<TaskPushNotificationConfig> {
    return this.call("CreateTaskPushNotificationConfig", request);
  }

  /** GetTaskPushNotificationConfig. */
  getTaskPushNotificationConfig(
    request: GetTaskPushNotificationConfigRequest,
  ): Promise<TaskPushNotificationConfig> {
    return this.call("GetTaskPushNotificationConfig", request);
  }

  /** ListTaskPushNotificationConfigs. */
  async listTaskPushNotificationConfigs(
    request: ListTaskPushNotificationConfigsRequest,
  ): Promise<ListTaskPushNotificationConfigsResponse> {
    const res = await this.call<Partial<ListTaskPushNotificationConfigsResponse>>(
      "ListTaskPushNotificationConfigs",
      request,
    );
    return { ...res, configs: res.configs ?? [], nextPageToken: res.nextPageToken ?? "" };
  }

  /** DeleteTaskPushNotificationConfig. */
  async deleteTaskPushNotificationConfig(
    request: DeleteTaskPushNotificationConfigRequest,
  ): Promise<void> {
    await this.call("DeleteTaskPushNotificationConfig", request);
  }

  /** GetExtendedAgentCard. */
  getExtendedAgentCard(request: GetExtendedAgentCardRequest = {}): Promise<AgentCard> {
    return this.call("GetExtendedAgentCard", request);
  }

  /**
   * Checks that the agent answers, by reading its agent card (JSON-RPC has no ping).
   *
   * @returns The agent's clock (its `Date` header), or the local one when it sends none.
   */
  async ping(): Promise<{ time: string }> {
    if (this.#closed) throw closedError();
    const res = await this.#fetch(new URL("/.well-known/agent-card.json", this.url), {
      headers: { accept: "application/json" },
    });
    await res.body?.cancel();
    if (!res.ok) throw httpError(res.status, "");
    const date = Date.parse(res.headers.get("date") ?? "");
    return { time: new Date(Number.isNaN(date) ? Date.now() : date).toISOString() };
  }

  /** Aborts every call and stream in flight; later calls fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of this.#inflight) c.abort();
    this.#inflight.clear();
  }
}
