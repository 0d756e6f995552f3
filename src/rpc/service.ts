// The capnweb binding: the root A2AService object each connection gets, and the per-user
// capability that `authenticate` returns. Both are thin: the RequestHandler does the work.

import { RpcTarget } from "capnweb";
import { getLogger } from "@logtape/logtape";
import type { Session, SessionManager } from "../auth/sessions.ts";
import {
  A2AError,
  AuthenticationError,
  fromWireError,
  InternalError,
  InvalidParamsError,
  InvalidRequestError,
  MethodNotFoundError,
  PushNotificationNotSupportedError,
  RateLimitedError,
  StreamOverflowError,
  UnsupportedOperationError,
  VersionNotSupportedError,
} from "../errors/errors.ts";
import type { Inflight } from "../tasks/inflight.ts";
import type { CallContext, RequestHandler } from "../tasks/request_handler.ts";
import type { StreamEvent } from "../tasks/store.ts";
import { eventBytesBound, type Subscription } from "../tasks/subscription.ts";
import type { AgentCard } from "../types/agent_card.ts";
import type { Task } from "../types/core.ts";
import type {
  ListTaskPushNotificationConfigsResponse,
  ListTasksResponse,
  SendMessageResponse,
  TaskPushNotificationConfig,
} from "../types/requests.ts";
import type { PushReceiver } from "../push/types.ts";

import { isSupportedVersion } from "../types/version.ts";
import type { StreamSink } from "./types.ts";

export type { StreamSink };

const log = getLogger(["a2a-capnweb", "rpc"]);

/** What a stub of a client's sink offers on the server side. */
interface SinkStub {
  onEvent(event: StreamEvent): Promise<unknown>;
  onEvents(events: StreamEvent[]): Promise<unknown>;
  onEnd(): Promise<unknown>;
  onError(error: unknown): Promise<unknown>;
  dup(): SinkStub;
  [Symbol.dispose](): void;
}

/** What a stub of a client's push callback offers on the server side. */
interface PushCallbackStub {
  onPush(event: StreamEvent): Promise<unknown>;
  dup(): PushCallbackStub;
  [Symbol.dispose](): void;
}

/** Everything a connection's objects need. */
export interface ServiceContext {
  /** The request handler shared by every binding. */
  handler: RequestHandler;
  /** Ticket and session bookkeeping. */
  sessions: SessionManager;
  /** This connection's session. */
  session: Session;
  /** The origin the connection came to. */
  origin: string;
  /** The agent card as this connection should see it. */
  agentCard: () => AgentCard;
  /** The transport: streams need a WebSocket, since a batch ends with its response. */
  transport: "websocket" | "batch";
  /** How many sink calls may be in flight per stream (default 32). */
  streamWindow?: number;
  /**
   * How many events may be in unresolved `onEvents` calls per stream, for a client that takes
   * batches (default 32 events per call of `streamWindow`: 1024).
   */
  streamCredit?: number;
  /**
   * The most bytes of events (by `eventBytesBound`) in one `onEvents` call (default 1 MiB). Keep
   * it well under the size limit of a message sent: a batch over that limit fails its stream.
   */
  maxBatchBytes?: number;
  /** The client's address, for the failed-login throttle (unknown when absent). */
  address?: string;
  /**
   * Called after each failed `authenticate` with its error, so the connection can end after a
   * few (and the failure be counted).
   */
  onAuthFailure?: (error: Error) => void;
  /** True once the connection made its last allowed failed attempt: it is about to close. */
  authBlocked?: () => boolean;
  /** Called after each successful `authenticate` (the connection can drop its login deadline). */
  onAuthenticated?: () => void;
  /**
   * Counts the streams still delivering, until their last sink call resolves: a shutdown waits
   * for them before it closes the sockets, so that a stream's end reaches its client.
   */
  streams?: Inflight;
}

/**
 * Converts anything thrown inside a method into an error that is safe to send: A2A errors go
 * as they are, anything else becomes InternalError (and is logged).
 *
 * @param err What was thrown.
 * @returns The error to send.
 */
export function toWireError(err: unknown): Error {
  if (err instanceof A2AError) return err;
  // capnweb's own answer to a call of a method that does not exist.
  const missing = err instanceof TypeError ? MISSING_METHOD.exec(err.message) : null;
  if (missing) return new MethodNotFoundError(missing[1]!);
  // Never echo a long message into the log: it may quote what a peer sent.
  const long = err instanceof Error && err.message.length > 500;
  log.error("Unexpected error in a capnweb call: {error}", {
    error: long ? `${err.name}: ${truncate(err.message)}` : err,
  });
  return new InternalError();
}

/** What capnweb says when the peer calls a method that does not exist. */
const MISSING_METHOD = /^'([^']*)' is not a function\.$/;

/** What capnweb says when a session ends because its peer closed or went away. */
const SESSION_ENDED =
  /^(Peer closed WebSocket|WebSocket connection failed|RPC session was shut down|RPC session failed)/;

function truncate(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max)}… (${text.length} characters)` : text;
}

/**
 * The capnweb `onSendError` hook: every error leaves as an A2A error, and without its stack,
 * which would show the server's file paths.
 *
 * @param err The error capnweb is about to send.
 * @returns The error to send instead.
 */
export function redactError(err: Error): Error {
  if (!(err instanceof A2AError) && SESSION_ENDED.test(err.message)) {
    // capnweb ends a session with these when the peer goes away: normal, not an error of ours.
    log.debug("capnweb session ended: {message}", { message: err.message.slice(0, 200) });
    return new InternalError("The session ended");
  }
  if (!(err instanceof A2AError) && !MISSING_METHOD.test(err.message)) {
    // Every method of ours turns what it throws into an A2A error (`guard`), so anything else
    // comes from capnweb reading the peer's messages: a malformed frame, an id the session never
    // had, a path through a value, a value nested too deep. The peer's fault, not an error of
    // ours; capnweb's text can quote the whole frame and names internal tables, so it is neither
    // sent nor logged in full.
    log.debug("capnweb protocol error from the peer: {message}", {
      message: truncate(err.message),
    });
    return redactError(
      new InvalidRequestError("Protocol error: the message was malformed or out of order"),
    );
  }
  const out = toWireError(err);
  if (out === err && !err.stack) return err;
  const copy = Object.assign(Object.create(Object.getPrototypeOf(out)), out) as Error;
  Object.defineProperty(copy, "message", { value: out.message, writable: true });
  Object.defineProperty(copy, "name", { value: out.name, writable: true });
  Object.defineProperty(copy, "stack", { value: "", writable: true });
  return copy;
}

async function guard<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toWireError(err);
  }
}

/**
 * The root object of a capnweb session at `/a2a/capnweb`: it reads the agent card, answers
 * pings, and exchanges credentials for the per-user capability.
 */
export class A2AService extends RpcTarget {
  #ctx: ServiceContext;

  /**
   * Creates the root object of one connection.
   *
   * @param ctx The connection's context.
   */
  constructor(ctx: ServiceContext) {
    super();
    this.#ctx = ctx;
  }

  /** Returns the public agent card. */
  getAgentCard(): AgentCard {
    return this.#ctx.agentCard();
  }

  /** Liveness check for clients that never see WebSocket ping frames (browsers). */
  ping(): { time: string } {
    return { time: new Date().toISOString() };
  }

  /**
   * Exchanges a one-time ticket or a bearer token for the per-user capability. An open agent (a
   * server without a token verifier) takes `{}`, or no argument, and acts for its one anonymous
   * user; it ignores a ticket or token sent anyway.
   *
   * @param credentials `{ ticket }`, `{ token }`, or `{}` (also `null` or absent) for none.
   * @param options The A2A version and extensions for this session.
   * @returns The capability; every A2A operation is a method on it.
   */
  authenticate(credentials: unknown, options?: unknown): Promise<A2ACapability> {
    return guard(async () => {
      const { version, extensions, batchEvents } = parseAuthOptions(options);
      if (!isSupportedVersion(version)) throw new VersionNotSupportedError(version);
      this.#ctx.handler.requireExtensions(extensions);
      if (this.#ctx.authBlocked?.()) {
        throw new AuthenticationError("Too many failed authentication attempts on this connection");
      }
      let principal;
      try {
        principal = await this.#ctx.sessions.authenticate(credentials, this.#ctx.address);
      } catch (err) {
        if (err instanceof AuthenticationError || err instanceof RateLimitedError) {
          this.#ctx.onAuthFailure?.(err);
        }
        throw err;
      }
      this.#ctx.session.setPrincipal(principal);
      this.#ctx.onAuthenticated?.();
      return new A2ACapability(
        this.#ctx,
        { userId: principal.userId, origin: this.#ctx.origin, binding: "capnweb" },
        { batchEvents },
      );
    });
  }
}

function parseAuthOptions(
  options: unknown,
): { version: string; extensions: string[]; batchEvents: boolean } {
  if (options === undefined || options === null) {
    return { version: "1.0", extensions: [], batchEvents: false };
  }
  if (typeof options !== "object") {
    throw new InvalidParamsError("Invalid params: options must be an object", [
      { field: "options", description: "must be an object" },
    ]);
  }
  const { version, extensions, batchEvents } = options as {
    version?: unknown;
    extensions?: unknown;
    batchEvents?: unknown;
  };
  if (version !== undefined && typeof version !== "string") {
    throw new InvalidParamsError("Invalid params: options.version must be a string", [
      { field: "options.version", description: "must be a string" },
    ]);
  }
  if (
    extensions !== undefined &&
    !(Array.isArray(extensions) && extensions.every((e) => typeof e === "string"))
  ) {
    throw new InvalidParamsError("Invalid params: options.extensions must be a list of strings", [
      { field: "options.extensions", description: "must be a list of strings" },
    ]);
  }
  if (batchEvents !== undefined && typeof batchEvents !== "boolean") {
    throw new InvalidParamsError("Invalid params: options.batchEvents must be a boolean", [
      { field: "options.batchEvents", description: "must be a boolean" },
    ]);
  }
  return { version: version ?? "1.0", extensions: extensions ?? [], batchEvents: !!batchEvents };
}

/** A handle on a running stream: `cancel()` stops it and releases the sink on the server. */
export class StreamHandle extends RpcTarget {
  #cancel: () => void;

  /**
   * Creates a handle that stops its stream.
   *
   * @param cancel Stops the stream.
   */
  constructor(cancel: () => void) {
    super();
    this.#cancel = cancel;
  }

  /** Stops the stream; the sink gets no further calls. */
  cancel(): void {
    this.#cancel();
  }

  /** Releasing the last stub of the handle stops the stream too. */
  [Symbol.dispose](): void {
    this.#cancel();
  }
}

/**
 * The per-user capability: holding it is the permission to act as that user. One method per
 * A2A 1.0 operation, with spec-shaped parameters and results.
 */
export class A2ACapability extends RpcTarget {
  #ctx: ServiceContext;
  #call: CallContext;
  #revoked = false;
  #untrack: () => void;
  #batchEvents: boolean;

  /**
   * Creates the capability of one authenticated user.
   *
   * @param ctx The connection's context.
   * @param call The authenticated caller.
   * @param options `batchEvents`: the client's sinks take `onEvents` batches (it said so in
   *   `authenticate`).
   */
  constructor(ctx: ServiceContext, call: CallContext, options: { batchEvents?: boolean } = {}) {
    super();
    this.#ctx = ctx;
    this.#call = call;
    this.#batchEvents = options.batchEvents ?? false;
    this.#untrack = ctx.session.track(this);
  }

  #check(): void {
    if (this.#revoked) throw new AuthenticationError("This capability has been released");
  }

  #op<T>(fn: (h: RequestHandler, call: CallContext) => Promise<T>): Promise<T> {
    return guard(() => {
      this.#check();
      return fn(this.#ctx.handler, this.#call);
    });
  }

  /** SendMessage. */
  sendMessage(request: unknown): Promise<SendMessageResponse> {
    return this.#op((h, c) => h.sendMessage(c, request));
  }

  /** GetTask. */
  getTask(request: unknown): Promise<Task> {
    return this.#op((h, c) => h.getTask(c, request));
  }

  /** ListTasks. */
  listTasks(request?: unknown): Promise<ListTasksResponse> {
    return this.#op((h, c) => h.listTasks(c, request));
  }

  /** CancelTask. */
  cancelTask(request: unknown): Promise<Task> {
    return this.#op((h, c) => h.cancelTask(c, request));
  }

  /** GetExtendedAgentCard. */
  getExtendedAgentCard(request?: unknown): Promise<AgentCard> {
    return this.#op((h, c) => h.getExtendedAgentCard(c, request));
  }

  /**
   * CreateTaskPushNotificationConfig. With a webhook `url` in the config, the server POSTs each
   * event of the task to it. With a `callback` instead (an RpcTarget with `onPush(event)`, and
   * no `url` in the config), the server calls `callback.onPush(event)` over this connection for
   * each event of the task, in order and with its `seq`, across turns of the task: no stream
   * to hold and no webhook to run. The result's `url` is then `urn:a2a-capnweb:push-callback`.
   *
   * A callback config lives as long as the connection: the server releases the callback when
   * the config is deleted or replaced, when the task reaches a terminal state (after that event
   * is delivered), when an `onPush` call fails, or when the connection closes. It needs the
   * WebSocket transport.
   *
   * @param request A TaskPushNotificationConfig with `taskId` (without `url` for a callback).
   * @param callback The client's callback object, instead of a webhook.
   * @returns The config, with its `id`.
   */
  createTaskPushNotificationConfig(
    request: unknown,
    callback?: unknown,
  ): Promise<TaskPushNotificationConfig> {
    return this.#op(async (h, c) => {
      if (callback === undefined || callback === null) {
        return await h.createTaskPushNotificationConfig(c, request);
      }
      const push = h.push;
      if (push === undefined) {
        throw new PushNotificationNotSupportedError(
          "This agent does not support push notifications",
        );
      }
      this.#requireWebSocket("Push callbacks");
      const stub = requirePushCallback(callback).dup();
      const session = this.#ctx.session;
      let released = false;
      let untrack = () => {};
      const receiver: PushReceiver = {
        deliver: (event) => stub.onPush(event).then(() => {}),
        close: () => {
          if (released) return;
          released = true;
          untrack();
          stub[Symbol.dispose]();
        },
      };
      // Closing the connection removes the config, which releases the callback.
      untrack = session.track({
        [Symbol.dispose]: () => {
          if (!push.removeReceiver(receiver)) receiver.close();
        },
      });
      if (released) throw new AuthenticationError("This session has been closed");
      try {
        const config = await h.createTaskPushNotificationConfig(c, request, receiver);
        // The connection may have closed while the config was being created.
        if (released) push.removeReceiver(receiver);
        return config;
      } catch (err) {
        receiver.close();
        throw err;
      }
    });
  }

  /** GetTaskPushNotificationConfig. */
  getTaskPushNotificationConfig(request: unknown): Promise<TaskPushNotificationConfig> {
    return this.#op((h, c) => h.getTaskPushNotificationConfig(c, request));
  }

  /** ListTaskPushNotificationConfigs. */
  listTaskPushNotificationConfigs(
    request: unknown,
  ): Promise<ListTaskPushNotificationConfigsResponse> {
    return this.#op((h, c) => h.listTaskPushNotificationConfigs(c, request));
  }

  /** DeleteTaskPushNotificationConfig; a callback config's callback is released. */
  deleteTaskPushNotificationConfig(request: unknown): Promise<void> {
    return this.#op((h, c) => h.deleteTaskPushNotificationConfig(c, request));
  }

  /**
   * SendStreamingMessage: events go to `sink`; the returned handle cancels the stream.
   *
   * @param request A SendMessageRequest.
   * @param sink The client's callback object.
   * @returns A handle whose `cancel()` stops the stream.
   */
  sendStreamingMessage(request: unknown, sink: unknown): Promise<StreamHandle> {
    return this.#op(async (h, c) => {
      this.#requireWebSocket();
      const stub = requireSink(sink);
      return this.#stream(await h.sendStreamingMessage(c, request), stub);
    });
  }

  /**
   * SubscribeToTask: `{ id, afterSeq? }`; with `afterSeq`, every event after it is replayed
   * before live events.
   *
   * @param request A SubscribeToTaskRequest, optionally with `afterSeq`.
   * @param sink The client's callback object.
   * @returns A handle whose `cancel()` stops the stream.
   */
  subscribeToTask(request: unknown, sink: unknown): Promise<StreamHandle> {
    return this.#op(async (h, c) => {
      this.#requireWebSocket();
      const stub = requireSink(sink);
      const afterSeq = typeof request === "object" && request !== null
        ? (request as { afterSeq?: unknown }).afterSeq
        : undefined;
      return this.#stream(await h.subscribeToTask(c, request, afterSeq), stub);
    });
  }

  #requireWebSocket(what = "Streaming"): void {
    if (this.#ctx.transport !== "websocket") {
      throw new UnsupportedOperationError(
        `${what} need${what.endsWith("s") ? "" : "s"} the WebSocket transport: ` +
          "an HTTP batch ends with its response",
      );
    }
  }

  #stream(sub: Subscription, stub: SinkStub): StreamHandle {
    const sink = stub.dup();
    let cancelled = false;
    const stop = () => {
      cancelled = true;
      sub.close();
    };
    const resource = { [Symbol.dispose]: stop };
    const untrack = this.#ctx.session.track(resource);
    const window = this.#ctx.streamWindow ?? 32;
    const delivery: Delivery = this.#batchEvents
      ? {
        window,
        credit: Math.max(1, this.#ctx.streamCredit ?? window * 32),
        maxEvents: MAX_BATCH_EVENTS,
        maxBytes: this.#ctx.maxBatchBytes ?? MAX_BATCH_BYTES,
      }
      : { window, credit: window, maxEvents: 1, maxBytes: Infinity };
    const delivering = () =>
      pump(sub, sink, delivery, () => cancelled).finally(() => {
        untrack();
        sink[Symbol.dispose]();
      });
    if (this.#ctx.streams) this.#ctx.streams.track(delivering);
    else delivering();
    return new StreamHandle(stop);
  }

  /** Released when the client disposes its last stub, or when the session closes. */
  [Symbol.dispose](): void {
    if (this.#revoked) return;
    this.#revoked = true;
    this.#untrack();
  }
}

function requirePushCallback(callback: unknown): PushCallbackStub {
  const s = callback as PushCallbackStub | null;
  if (
    (typeof s !== "object" && typeof s !== "function") || s === null || typeof s.dup !== "function"
  ) {
    throw new InvalidParamsError("Invalid params: callback must be a callback object", [
      { field: "callback", description: "must be an RpcTarget with onPush" },
    ]);
  }
  return s;
}

function requireSink(sink: unknown): SinkStub {
  const s = sink as SinkStub | null;
  if (
    (typeof s !== "object" && typeof s !== "function") || s === null || typeof s.dup !== "function"
  ) {
    throw new InvalidParamsError("Invalid params: sink must be a callback object", [
      { field: "sink", description: "must be an RpcTarget with onEvent, onEnd and onError" },
    ]);
  }
  return s;
}

/** The most events in one `onEvents` call. */
const MAX_BATCH_EVENTS = 256;
/** The most bytes of events (their upper bounds) in one `onEvents` call by default. */
const MAX_BATCH_BYTES = 1024 * 1024;

/**
 * How a stream's events go to its sink. With `maxEvents` 1 it is one `onEvent` call per event,
 * for clients that did not ask for batches; otherwise one `onEvents` call per batch.
 */
interface Delivery {
  /** Sink calls in flight, at most. */
  window: number;
  /** Events in unresolved sink calls, at most. */
  credit: number;
  /** Events in one call, at most. */
  maxEvents: number;
  /** Bytes of events (upper bounds) in one call, at most; a larger event goes alone. */
  maxBytes: number;
}

/**
 * Delivers a subscription's events to a sink. Each call takes every event queued at that moment,
 * within the caps of `delivery`: under backlog the calls carry many events, and a lone event goes
 * out at once.
 */
async function pump(
  sub: Subscription,
  sink: SinkStub,
  delivery: Delivery,
  cancelled: () => boolean,
): Promise<void> {
  const { window, credit, maxEvents, maxBytes } = delivery;
  const inflight: Array<{ settled: Promise<void>; events: number }> = [];
  let unacked = 0;
  let failure: unknown = undefined;
  const noteFailure = (err: unknown) => {
    failure ??= err;
    sub.close();
  };
  // An overflow is noticed while the window is full too, not only at the next read: a consumer
  // that holds its calls would otherwise keep the pump waiting, and never hear of it.
  const overflowed = new Promise<true>((resolve) => {
    sub.whenClosed(() => {
      if (sub.overflowed) resolve(true);
    });
  });
  /** Waits for the oldest call in flight; false when the subscription overflowed first. */
  const settleOldest = async () => {
    const call = inflight[0]!;
    if (await Promise.race([call.settled, overflowed]) === true) return false;
    inflight.shift();
    unacked -= call.events;
    return true;
  };
  const send = (events: StreamEvent[]) => {
    unacked += events.length;
    const call = maxEvents === 1 ? sink.onEvent(events[0]!) : sink.onEvents(events);
    inflight.push({ settled: call.then(() => {}, noteFailure), events: events.length });
  };
  // An event taken from the subscription that did not fit in the last batch. It counts as handed
  // to the sink (the subscription's lastSeq includes it, and so would an overflow's), so it
  // starts the next batch, which is sent before the subscription is read again.
  let carry: StreamEvent | undefined;
  try {
    while (failure === undefined) {
      while (inflight.length > 0 && (inflight.length >= window || unacked >= credit)) {
        // On an overflow the read below throws it.
        if (!await settleOldest()) break;
      }
      if (failure !== undefined || cancelled()) break;
      let first = carry;
      carry = undefined;
      if (first === undefined) {
        const r = await sub.next();
        if (r.done) break;
        first = r.value;
      }
      const batch = [first];
      let bytes = maxEvents === 1 ? 0 : eventBytesBound(first);
      const room = Math.min(maxEvents, credit - unacked);
      // Only what is queued already: a batch never waits for the producer.
      while (batch.length < room && sub.pending > 0) {
        const r = await sub.next();
        if (r.done) break;
        const size = eventBytesBound(r.value);
        if (bytes + size > maxBytes) {
          carry = r.value;
          break;
        }
        bytes += size;
        batch.push(r.value);
      }
      send(batch);
    }
    await Promise.all(inflight.map((c) => c.settled));
    if (failure !== undefined) {
      log.debug("Stream sink failed; ending the stream: {error}", { error: failure });
      // An event refused for its size (by the transport on either side) fails with an A2A
      // code; the client is still there, so tell it why its stream ends.
      const refused = fromWireError(failure);
      if (refused instanceof A2AError && !cancelled()) {
        await Promise.resolve().then(() => sink.onError(refused)).catch(() => {});
      }
      return;
    }
    if (!cancelled()) await sink.onEnd();
  } catch (err) {
    if (err instanceof StreamOverflowError) {
      // Said at once, without waiting for the calls in flight: a consumer that holds them would
      // otherwise never learn that it fell behind. capnweb delivers the calls on one stub in the
      // order they were sent, so onError still arrives after every event sent before it; and
      // it is not awaited either, so the sink is released even if the consumer never answers.
      if (failure === undefined && !cancelled()) sink.onError(err).catch(() => {});
      return;
    }
    await Promise.all(inflight.map((c) => c.settled));
    if (failure === undefined && !cancelled()) {
      await sink.onError(toWireError(err)).catch(() => {});
    }
  } finally {
    sub.close();
  }
}
