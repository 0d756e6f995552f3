/**
 * The a2a-capnweb client. {@linkcode A2AClient.connect} reads an agent's card and opens its
 * capnweb interface (a WebSocket, or HTTP batches on request) and authenticates, or, for an
 * agent that offers only the standard JSON-RPC binding (or on request), uses that; its methods
 * mirror the A2A operations, and streaming ones return async iterables. Safe to use in
 * browsers; in Deno and Node it uses `npm:ws`, whose sockets have Nagle's algorithm off.
 *
 * Run it as a small CLI against a running server:
 *
 * ```sh
 * deno run -A client.ts http://127.0.0.1:8000 "hello world"
 * ```
 *
 * @example Send a message to a demo server
 * ```ts ignore
 * import { A2AClient, userMessage } from "@a2a-capnweb/core/client";
 *
 * await using client = await A2AClient.connect("http://127.0.0.1:8000", {
 *   token: "token-alice",
 * });
 * const { task } = await client.sendMessage({ message: userMessage("hi") });
 * console.log(task?.status.state);
 * ```
 *
 * @module
 */

import { RpcTarget } from "capnweb";
import { HttpBatchTransport } from "./src/client/batch_transport.ts";
import { type CaFetch, caFetch, trustingWebSocket } from "./src/client/tls.ts";
import { fromWireError, InvalidAgentResponseError } from "./src/errors/errors.ts";
import { DEFAULT_MAX_EVENT_BYTES } from "./src/http/limits.ts";
import {
  closedError,
  JsonRpcClient,
  type JsonRpcClientOptions,
  type JsonRpcSubscribeOptions,
} from "./src/jsonrpc/client.ts";
import { JSONRPC_BINDING } from "./src/jsonrpc/protocol.ts";
import {
  clientSession,
  type ConnectionState,
  type Handle,
  type LivenessOptions,
  type ReconnectOptions,
  type Sink,
  type WebSocketConstructor,
  WebSocketSession,
} from "./src/client/websocket_session.ts";
import type { StreamEvent } from "./src/tasks/store.ts";
import type { CallbackPushConfig } from "./src/push/types.ts";
import type { AgentCard } from "./src/types/agent_card.ts";
import { checkAgentCard } from "./src/client/card.ts";
import type { Message, StreamResponse, Task } from "./src/types/core.ts";
import {
  type StreamResponseKind,
  streamResponseKind,
  userMessage,
  type UserMessageOptions,
} from "./src/types/messages.ts";
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
} from "./src/types/requests.ts";
import { CAPNWEB_BINDING_URI } from "./src/types/version.ts";

export { CAPNWEB_BINDING_URI, DEFAULT_MAX_EVENT_BYTES };

export type {
  AgentCard,
  CancelTaskRequest,
  DeleteTaskPushNotificationConfigRequest,
  GetExtendedAgentCardRequest,
  GetTaskPushNotificationConfigRequest,
  GetTaskRequest,
  JsonRpcClientOptions,
  JsonRpcSubscribeOptions,
  ListTaskPushNotificationConfigsRequest,
  ListTaskPushNotificationConfigsResponse,
  ListTasksRequest,
  ListTasksResponse,
  Message,
  SendMessageRequest,
  SendMessageResponse,
  StreamEvent,
  StreamResponse,
  SubscribeToTaskRequest,
  Task,
  TaskPushNotificationConfig,
};
export type {
  CallbackPushConfig,
  ConnectionState,
  LivenessOptions,
  ReconnectOptions,
  WebSocketConstructor,
};
export { JSONRPC_BINDING, JsonRpcClient };
export { streamResponseKind, userMessage };
export type { StreamResponseKind, UserMessageOptions };

/** Options of {@linkcode A2AClient.connect}. */
export interface ConnectOptions {
  /**
   * The bearer token. Leave it out for an open agent (one whose card declares no security
   * requirement): the client then authenticates with no credentials, and an agent that does
   * require them refuses `connect()` with AuthenticationError.
   */
  token?: string;
  /**
   * `"websocket"` (the default when the card offers capnweb), `"batch"` (capnweb, one HTTP
   * request per call, no streaming) or `"jsonrpc"` (the standard JSON-RPC binding, the default
   * when the card offers no capnweb interface).
   */
  transport?: "websocket" | "batch" | "jsonrpc";
  /** The WebSocket implementation; `npm:ws` in Deno and Node, the global one elsewhere. */
  webSocket?: WebSocketConstructor;
  /** The fetch implementation (default: the global one). */
  fetch?: typeof fetch;
  /**
   * PEM certificates of CAs to trust for this agent, for a server whose certificate a private CA
   * issued (Deno and Node). The WebSocket (`npm:ws`) trusts exactly these, and Deno's fetch these
   * besides its default roots (through `Deno.createHttpClient`, closed with the client). In Node,
   * whose fetch takes no CA, pass a `fetch` that trusts it as well (undici's, with an `Agent`
   * whose `connect.ca` is the CA); a given `fetch` or `webSocket` is used as it is. Browsers
   * trust their system's store only.
   */
  caCerts?: string[];
  /** The A2A version to request (default `1.0`). */
  version?: string;
  /** Extension URIs to request. */
  extensions?: string[];
  /**
   * Reconnection after a lost WebSocket connection (on by default): open streams resume from
   * their last `seq`, reads are retried, other calls in flight fail with ConnectionLostError.
   * It keeps trying until `close()` unless `budgetMs` or `maxAttempts` is set. `false` turns it
   * off.
   */
  reconnect?: ReconnectOptions | false;
  /**
   * How often to ping the server, and how long to wait for the answer (default every 5 s, 4 s
   * to answer: a dead connection is noticed within 9 s).
   */
  liveness?: LivenessOptions;
  /**
   * The largest message accepted from the agent, in bytes: a capnweb message (a result or a
   * stream event) or a JSON-RPC SSE event (default 64 MiB, {@linkcode DEFAULT_MAX_EVENT_BYTES},
   * the most this module's server sends). A larger one fails only its own call or stream, with
   * InvalidAgentResponseError (-32006) naming the limit. `npm:ws`, the WebSocket used in Deno
   * and Node, drops a connection over a frame above its own 100 MiB limit.
   */
  maxEventBytes?: number;
  /** Called whenever the connection state changes (e.g. to show "reconnecting"). */
  onStateChange?: (state: ConnectionState, detail: { attempt?: number; error?: unknown }) => void;
}

/** SubscribeToTask parameters, with the last `seq` the caller already has. */
export interface SubscribeOptions extends SubscribeToTaskRequest {
  /** Resume after this event: every later event is delivered, none twice. */
  afterSeq?: number;
}

/** The per-user capability as the client sees it. */
interface Capability {
  sendMessage(request: SendMessageRequest): Promise<SendMessageResponse>;
  createTaskPushNotificationConfig(
    request: TaskPushNotificationConfig | CallbackPushConfig,
    callback?: RpcTarget,
  ): Promise<TaskPushNotificationConfig>;
  getTaskPushNotificationConfig(
    request: GetTaskPushNotificationConfigRequest,
  ): Promise<TaskPushNotificationConfig>;
  listTaskPushNotificationConfigs(
    request: ListTaskPushNotificationConfigsRequest,
  ): Promise<ListTaskPushNotificationConfigsResponse>;
  deleteTaskPushNotificationConfig(request: DeleteTaskPushNotificationConfigRequest): Promise<void>;
  getTask(request: GetTaskRequest): Promise<Task>;
  listTasks(request: ListTasksRequest): Promise<ListTasksResponse>;
  cancelTask(request: CancelTaskRequest): Promise<Task>;
  getExtendedAgentCard(request: GetExtendedAgentCardRequest): Promise<AgentCard>;
  sendStreamingMessage(request: SendMessageRequest, sink: RpcTarget): Promise<Handle>;
  subscribeToTask(request: SubscribeOptions, sink: RpcTarget): Promise<Handle>;
  [Symbol.dispose](): void;
}

interface Root {
  authenticate(
    credentials: { ticket: string } | { token: string } | Record<never, never>,
    options: { version: string; extensions: string[] },
  ): Capability;
  ping(): Promise<{ time: string }>;
  [Symbol.dispose](): void;
}

function isNodeLike(): boolean {
  const g = globalThis as { Deno?: unknown; process?: { versions?: { node?: string } } };
  return g.Deno !== undefined || g.process?.versions?.node !== undefined;
}

async function defaultWebSocket(caCerts?: readonly string[]): Promise<WebSocketConstructor> {
  if (isNodeLike()) {
    // Deno's built-in WebSocket client leaves Nagle's algorithm on, which delays every capnweb
    // call by a delayed-ACK timeout; ws sets TCP_NODELAY.
    const mod = await import("ws");
    const WS = (mod.WebSocket ?? mod.default) as unknown as WebSocketConstructor;
    return corking(caCerts ? trustingWebSocket(WS, caCerts) : WS);
  }
  return globalThis.WebSocket;
}

/** What `npm:ws` keeps of its TCP socket: Node streams' cork and uncork. */
interface Corkable {
  cork(): void;
  uncork(): void;
}

/**
 * An `npm:ws` WebSocket that writes the frames of one turn of the event loop together: the first
 * send of a turn corks the TCP socket and a microtask uncorks it, so pipelined calls (a call and
 * its pull, many calls in flight) leave in one write instead of one each (about 15% more calls
 * per second with 100 in flight, bench/BENCHMARKS.md).
 *
 * capnweb's `release` frames (the client is done with a call's result) are held back until the
 * next other frame or the end of the turn's timers, whichever comes first: a sequential caller's
 * release then leaves in the same write as its next call instead of in a write of its own. A
 * release only frees memory on the server, so sending it later changes nothing else; the order
 * of frames is kept.
 */
function corking(WS: WebSocketConstructor): WebSocketConstructor {
  // npm:ws's class; `send` and `close` are the only methods changed.
  const Base = WS as unknown as new (url: string) => WebSocket;
  return class extends Base {
    #corked = false;
    #held: string[] = [];
    #timer: ReturnType<typeof setTimeout> | undefined;

    override send(
      data: string | ArrayBufferLike | Blob | ArrayBufferView,
      ...rest: unknown[]
    ): void {
      if (typeof data === "string" && data.startsWith('["release",') && rest.length === 0) {
        this.#held.push(data);
        this.#timer ??= setTimeout(() => this.#flush(), 0);
        return;
      }
      this.#cork();
      this.#flush();
      this.#write(data, rest);
    }

    override close(code?: number, reason?: string): void {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#held = [];
      super.close(code, reason);
    }

    #flush(): void {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      if (this.#held.length === 0) return;
      const held = this.#held;
      this.#held = [];
      // A socket that is closing drops what it is given, as capnweb expects of a closed one.
      if (this.readyState !== 1) return;
      this.#cork();
      for (const frame of held) this.#write(frame, []);
    }

    #cork(): void {
      const socket = (this as unknown as { _socket?: Partial<Corkable> })._socket;
      if (!this.#corked && typeof socket?.cork === "function") {
        socket.cork();
        this.#corked = true;
        queueMicrotask(() => {
          this.#corked = false;
          socket.uncork?.();
        });
      }
    }

    #write(data: string | ArrayBufferLike | Blob | ArrayBufferView, rest: unknown[]): void {
      // npm:ws takes options and a callback after the data.
      (super.send as (...args: unknown[]) => void).call(this, data, ...rest);
    }
  } as unknown as WebSocketConstructor;
}

function rethrow(err: unknown): never {
  throw fromWireError(err);
}

/** The client's end of a push callback config: hands each event to the caller's function. */
class Pusher extends RpcTarget {
  #onPush: (event: StreamEvent) => void | Promise<void>;

  constructor(onPush: (event: StreamEvent) => void | Promise<void>) {
    super();
    this.#onPush = onPush;
  }

  onPush(event: StreamEvent): void | Promise<void> {
    return this.#onPush(event);
  }
}

/**
 * Where an agent's card is: `.well-known/agent-card.json` under the base URL's path (the agent's
 * base path, which a plain origin does not have), or the URL itself when it names the card.
 */
function agentCardUrl(baseUrl: string | URL): URL {
  const url = new URL(baseUrl);
  url.search = "";
  url.hash = "";
  if (url.pathname.endsWith("/.well-known/agent-card.json")) return url;
  if (!url.pathname.endsWith("/")) url.pathname += "/";
  return new URL(".well-known/agent-card.json", url);
}

/** Picks a card's JSON-RPC interface, preferring one that speaks A2A 1.0. */
function jsonRpcInterface(card: AgentCard) {
  const all = card.supportedInterfaces.filter((i) =>
    i.protocolBinding.toUpperCase() === JSONRPC_BINDING
  );
  return all.find((i) => i.protocolVersion === "1.0") ?? all[0];
}

/**
 * An A2A client over capnweb, or over the JSON-RPC binding for agents that offer only that.
 * Create one with {@linkcode A2AClient.connect}; end it with `close()` or `await using`.
 */
export class A2AClient implements AsyncDisposable {
  /** The agent card the client connected with. */
  readonly agentCard: AgentCard;
  /** The transport in use. */
  readonly transport: "websocket" | "batch" | "jsonrpc";
  #url: string;
  #options: ConnectOptions;
  #session: WebSocketSession | undefined;
  #jsonrpc: JsonRpcClient | undefined;
  #closed = false;
  #ca: CaFetch | undefined;

  private constructor(card: AgentCard, url: string, options: ConnectOptions) {
    this.agentCard = card;
    this.transport = options.transport ?? "websocket";
    this.#url = url;
    this.#options = options;
  }

  /**
   * Reads the agent card at `baseUrl`, opens its capnweb interface and authenticates. When the
   * card offers no capnweb interface, or `transport` is `"jsonrpc"`, it uses the card's JSON-RPC
   * interface instead, which has no session: the token goes with every request, so a refused
   * token fails the first call rather than `connect()`.
   *
   * @param baseUrl The agent's base URL, with its base path if it has one
   *   (`https://example.com/agents/echo`): the card is read from `.well-known/agent-card.json`
   *   under it. A URL that ends in `/.well-known/agent-card.json` is the card's own.
   * @param options The token (none for an open agent) and the transport.
   * @returns The connected client.
   * @throws {AuthenticationError} When the token is refused, or missing for an agent that needs one.
   */
  static async connect(baseUrl: string | URL, options: ConnectOptions = {}): Promise<A2AClient> {
    // A fetch that trusts the given CAs, owned by the client from here on.
    const ca = options.caCerts !== undefined && options.fetch === undefined
      ? caFetch(options.caCerts)
      : undefined;
    try {
      return await A2AClient.#connect(baseUrl, ca ? { ...options, fetch: ca.fetch } : options, ca);
    } catch (err) {
      ca?.close();
      throw err;
    }
  }

  static async #connect(
    baseUrl: string | URL,
    options: ConnectOptions,
    ca: CaFetch | undefined,
  ): Promise<A2AClient> {
    const doFetch = options.fetch ?? fetch;
    const cardUrl = agentCardUrl(baseUrl);
    let res: Response;
    try {
      res = await doFetch(cardUrl, { headers: { accept: "application/json" } });
    } catch (err) {
      // Deno and undici say "fetch failed" and keep the reason (a certificate the client does
      // not trust, a refused connection) in `cause`.
      const cause = (err as { cause?: { message?: unknown } })?.cause?.message;
      const detail = typeof cause === "string" ? cause : (err as Error)?.message ?? String(err);
      throw new Error(`Cannot read agent card: ${cardUrl}: ${detail}`, { cause: err });
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`Cannot read agent card: ${cardUrl} answered ${res.status}`);
    }
    const card = checkAgentCard(
      await res.json().catch((err: Error) => {
        throw new InvalidAgentResponseError(`Invalid agent card: not JSON: ${err.message}`);
      }),
    );
    const wanted = options.transport;
    const capnweb = wanted === "jsonrpc"
      ? undefined
      : card.supportedInterfaces.find((i) => i.protocolBinding === CAPNWEB_BINDING_URI);
    const jsonrpc = wanted === undefined || wanted === "jsonrpc"
      ? jsonRpcInterface(card)
      : undefined;
    if (!capnweb && !jsonrpc) {
      throw new Error(
        `Cannot connect: the agent card offers no ${
          wanted === "jsonrpc" ? "JSONRPC" : wanted === undefined ? "capnweb or JSONRPC" : "capnweb"
        } interface`,
      );
    }
    const transport = capnweb ? wanted ?? "websocket" : "jsonrpc";
    const url = new URL((capnweb ?? jsonrpc)!.url, cardUrl).href;
    const client = new A2AClient(card, url, { ...options, transport });
    client.#ca = ca;
    await client.#open();
    return client;
  }

  /** What `authenticate` gets: the token, or no credentials (`{}`) for an open agent. */
  #credentials(): { token: string } | Record<never, never> {
    return this.#options.token !== undefined ? { token: this.#options.token } : {};
  }

  #authOptions() {
    return { version: this.#options.version ?? "1.0", extensions: this.#options.extensions ?? [] };
  }

  async #open(): Promise<void> {
    if (this.transport === "jsonrpc") {
      const o = this.#options;
      this.#jsonrpc = new JsonRpcClient(this.#url, {
        ...(o.token !== undefined && { token: o.token }),
        ...(o.fetch && { fetch: o.fetch }),
        ...(o.version !== undefined && { version: o.version }),
        ...(o.extensions && { extensions: o.extensions }),
        ...(o.maxEventBytes !== undefined && { maxEventBytes: o.maxEventBytes }),
      });
      return;
    }
    if (this.transport === "batch") {
      // Each call is a batch of its own: authenticate and call travel in one request.
      const root = this.#batchRoot();
      try {
        await (root.authenticate(
          this.#credentials(),
          this.#authOptions(),
        ) as unknown as Promise<unknown>);
      } catch (err) {
        rethrow(err);
      } finally {
        root[Symbol.dispose]();
      }
      return;
    }
    const o = this.#options;
    this.#session = new WebSocketSession(this.#url, {
      ...(o.token !== undefined && { token: o.token }),
      // Unbound, as a browser's fetch must be called.
      fetch: o.fetch ?? ((input, init) => fetch(input, init)),
      webSocket: async () => o.webSocket ?? await defaultWebSocket(o.caCerts),
      authOptions: this.#authOptions(),
      reconnect: o.reconnect === false ? { enabled: false } : o.reconnect ?? {},
      ...(o.liveness && { liveness: o.liveness }),
      ...(o.maxEventBytes !== undefined && { maxEventBytes: o.maxEventBytes }),
      ...(o.onStateChange && { onStateChange: o.onStateChange }),
    });
    try {
      await this.#session.open();
    } catch (err) {
      await this.#session.close();
      throw err;
    }
  }

  /**
   * The connection state: `"open"`, `"reconnecting"` after a lost connection, `"closed"`.
   * Clients without a session (batch, JSON-RPC) are `"open"` until closed.
   */
  get state(): ConnectionState {
    if (this.#session) return this.#session.state;
    return this.#closed ? "closed" : "open";
  }

  /** A capnweb session of one HTTP batch, holding results to the same size limit as sockets. */
  #batchRoot(): Root {
    // Calling the global fetch unbound fails in some browsers.
    const doFetch = this.#options.fetch ?? ((input, init) => fetch(input, init));
    return clientSession(
      new HttpBatchTransport(this.#url, doFetch),
      this.#options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES,
    ) as Root;
  }

  async #call<T>(fn: (cap: Capability) => Promise<T>, idempotent = false): Promise<T> {
    if (this.#closed) throw closedError();
    if (this.transport === "batch") {
      const root = this.#batchRoot();
      try {
        const cap = root.authenticate(this.#credentials(), this.#authOptions());
        return await fn(cap);
      } catch (err) {
        rethrow(err);
      } finally {
        root[Symbol.dispose]();
      }
    }
    return await this.#session!.call((cap) => fn(cap as unknown as Capability), idempotent);
  }

  /** SendMessage: sends a message and returns the task (or a direct reply). */
  sendMessage(request: SendMessageRequest): Promise<SendMessageResponse> {
    if (this.#jsonrpc) return this.#jsonrpc.sendMessage(request);
    // Safe to repeat: the server runs a messageId once per user and answers a repeat with the
    // first one's task, so a send cut by a lost connection is sent again.
    return this.#call((cap) => cap.sendMessage(request), true);
  }

  /** GetTask. */
  getTask(request: GetTaskRequest): Promise<Task> {
    if (this.#jsonrpc) return this.#jsonrpc.getTask(request);
    return this.#call((cap) => cap.getTask(request), true);
  }

  /** ListTasks. */
  listTasks(request: ListTasksRequest = {}): Promise<ListTasksResponse> {
    if (this.#jsonrpc) return this.#jsonrpc.listTasks(request);
    return this.#call((cap) => cap.listTasks(request), true);
  }

  /** CancelTask. */
  cancelTask(request: CancelTaskRequest): Promise<Task> {
    if (this.#jsonrpc) return this.#jsonrpc.cancelTask(request);
    return this.#call((cap) => cap.cancelTask(request));
  }

  /** GetExtendedAgentCard. */
  getExtendedAgentCard(request: GetExtendedAgentCardRequest = {}): Promise<AgentCard> {
    if (this.#jsonrpc) return this.#jsonrpc.getExtendedAgentCard(request);
    return this.#call((cap) => cap.getExtendedAgentCard(request), true);
  }

  /**
   * CreateTaskPushNotificationConfig: registers a webhook for a task's updates. With `onPush`
   * instead of a `url` (capnweb over a WebSocket only), the server calls `onPush` over this
   * connection with each event of the task, in order and with its `seq`, until the config is
   * deleted, the task reaches a terminal state, `onPush` throws, or the client closes.
   *
   * @param request The config, with `taskId`; without `url` when `onPush` is given.
   * @param onPush Receives the task's events instead of a webhook.
   * @returns The config, with its `id`.
   */
  createTaskPushNotificationConfig(
    request: TaskPushNotificationConfig | CallbackPushConfig,
    onPush?: (event: StreamEvent) => void | Promise<void>,
  ): Promise<TaskPushNotificationConfig> {
    if (onPush !== undefined) {
      if (this.#jsonrpc || this.transport !== "websocket") {
        return Promise.reject(fromWireError({
          code: -32004,
          message: "Push callbacks need the capnweb WebSocket transport",
        }));
      }
      return this.#call((cap) => cap.createTaskPushNotificationConfig(request, new Pusher(onPush)));
    }
    const config = request as TaskPushNotificationConfig;
    if (this.#jsonrpc) return this.#jsonrpc.createTaskPushNotificationConfig(config);
    return this.#call((cap) => cap.createTaskPushNotificationConfig(config));
  }

  /** GetTaskPushNotificationConfig. */
  getTaskPushNotificationConfig(
    request: GetTaskPushNotificationConfigRequest,
  ): Promise<TaskPushNotificationConfig> {
    if (this.#jsonrpc) return this.#jsonrpc.getTaskPushNotificationConfig(request);
    return this.#call((cap) => cap.getTaskPushNotificationConfig(request), true);
  }

  /** ListTaskPushNotificationConfigs. */
  listTaskPushNotificationConfigs(
    request: ListTaskPushNotificationConfigsRequest,
  ): Promise<ListTaskPushNotificationConfigsResponse> {
    if (this.#jsonrpc) return this.#jsonrpc.listTaskPushNotificationConfigs(request);
    return this.#call((cap) => cap.listTaskPushNotificationConfigs(request), true);
  }

  /** DeleteTaskPushNotificationConfig. */
  async deleteTaskPushNotificationConfig(
    request: DeleteTaskPushNotificationConfigRequest,
  ): Promise<void> {
    if (this.#jsonrpc) return await this.#jsonrpc.deleteTaskPushNotificationConfig(request);
    await this.#call((cap) => cap.deleteTaskPushNotificationConfig(request), true);
  }

  /**
   * SendStreamingMessage: the task's events as they happen, each with its `seq`. Leaving the
   * loop early cancels the stream on the server.
   */
  sendStreamingMessage(request: SendMessageRequest): AsyncIterable<StreamEvent> {
    if (this.#jsonrpc) return this.#jsonrpc.sendStreamingMessage(request);
    return this.#stream((cap, sink) => cap.sendStreamingMessage(request, sink), {});
  }

  /**
   * SubscribeToTask: a snapshot of the task, then its events; with `afterSeq`, every event
   * after that one instead, with no gap and no duplicate.
   */
  subscribeToTask(request: SubscribeOptions): AsyncIterable<StreamEvent> {
    if (this.#jsonrpc) return this.#jsonrpc.subscribeToTask(request);
    return this.#stream((cap, sink) => cap.subscribeToTask(request, sink), {
      taskId: request.id,
      ...(request.afterSeq !== undefined && { lastSeq: request.afterSeq }),
    });
  }

  async *#stream(
    start: (cap: Capability, sink: Sink) => Promise<Handle>,
    resume: { taskId?: string; lastSeq?: number },
  ): AsyncGenerator<StreamEvent> {
    if (this.transport === "batch") {
      rethrow({ code: -32004, message: "Streaming needs the WebSocket transport" });
    }
    if (this.#closed) throw closedError();
    yield* this.#session!.stream((cap, sink) => start(cap as unknown as Capability, sink), resume);
  }

  /** Answers once the server does; for checking a connection is alive. */
  async ping(): Promise<{ time: string }> {
    if (this.#jsonrpc) return await this.#jsonrpc.ping();
    if (this.transport === "batch") {
      const root = this.#batchRoot();
      try {
        return await root.ping();
      } finally {
        root[Symbol.dispose]();
      }
    }
    return await this.#session!.ping();
  }

  /** Ends the session and closes the connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#jsonrpc?.close();
    await this.#session?.close();
    this.#ca?.close();
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

if (import.meta.main) {
  // The CLI is a module of its own, loaded only here, so that the browser bundle can leave it out
  // (`deno task bundle` marks it external).
  const { runCli } = await import("./src/client/cli.ts");
  Deno.exitCode = await runCli(Deno.args, A2AClient, { token: Deno.env.get("A2A_TOKEN") });
}
