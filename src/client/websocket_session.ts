// The client's capnweb WebSocket session: connects and authenticates, watches liveness with
// ping(), reconnects with backoff when the connection is lost, retries calls that are safe to
// repeat, and resumes open streams from their last `seq`. Browser-safe: no Deno APIs.

import { RpcSession, RpcTarget, type RpcTransport, WebSocketTransport } from "capnweb";
import {
  A2AError,
  AuthenticationError,
  ConnectionLostError,
  ErrorCode,
  fromWireError,
  InvalidAgentResponseError,
  InvalidRequestError,
  StreamOverflowError,
} from "../errors/errors.ts";
import { DEFAULT_MAX_EVENT_BYTES } from "../http/limits.ts";
import { CLOSE_MESSAGE_TOO_BIG, SizeLimitedTransport } from "../rpc/size_limited_transport.ts";
import type { StreamEvent } from "../tasks/store.ts";
import { Subscription } from "../tasks/subscription.ts";
import { sleep } from "../util/sleep.ts";

/** Milliseconds between liveness pings by default. */
const DEFAULT_PING_INTERVAL_MS = 5_000;
/** Milliseconds a ping may go unanswered by default. */
const DEFAULT_PING_TIMEOUT_MS = 4_000;

/** What the connection is doing. */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

/**
 * How the client reconnects after losing its connection. By default it keeps trying, with
 * exponential backoff and jitter, until the caller closes the client; `budgetMs` and
 * `maxAttempts` make it give up (and close the client) sooner, whichever is reached first.
 */
export interface ReconnectOptions {
  /** Reconnect at all (default true). */
  enabled?: boolean;
  /** Delay before the first attempt, in milliseconds (default 250). */
  initialDelayMs?: number;
  /** Upper bound of the delay between attempts (default 10 000). */
  maxDelayMs?: number;
  /**
   * Milliseconds from the loss after which no new attempt starts and the client closes (default
   * `Infinity`: keep trying until `close()`).
   */
  budgetMs?: number;
  /** Attempts before giving up and closing the client (default `Infinity`). */
  maxAttempts?: number;
}

/**
 * How the client checks that its connection is alive. With the defaults a dead peer (a half-open
 * connection) is noticed within 9 seconds: the interval plus the timeout.
 */
export interface LivenessOptions {
  /** Milliseconds between pings; 0 turns pinging off (default 5 000). */
  pingIntervalMs?: number;
  /** Milliseconds to wait for a ping's answer before the connection counts as dead (default 4 000). */
  pingTimeoutMs?: number;
  /** Milliseconds a connection attempt (ticket, WebSocket, authenticate) may take (default 10 000). */
  connectTimeoutMs?: number;
}

/** A WebSocket constructor, as browsers and `npm:ws` provide. */
export type WebSocketConstructor = new (url: string) => WebSocket;

/** The per-user capability as the client sees it; the session itself only subscribes. */
export interface Capability extends Disposable {
  /** SubscribeToTask with resume, used to continue a stream after reconnecting. */
  subscribeToTask(request: { id: string; afterSeq?: number }, sink: Sink): Promise<Handle>;
}

interface Root {
  authenticate(
    credentials: { ticket: string } | { token: string } | Record<never, never>,
    options: { version: string; extensions: string[]; batchEvents?: boolean },
  ): Promise<Capability>;
  ping(): Promise<{ time: string }>;
  [Symbol.dispose](): void;
}

/** A stream handle returned by the server. */
export interface Handle {
  /** Stops the stream. */
  cancel(): Promise<void>;
  /** Releases the handle (which stops the stream). */
  [Symbol.dispose](): void;
}

/** Options of a WebSocketSession. */
export interface WebSocketSessionOptions {
  /** The bearer token; none for an open agent, which is sent no credentials (`{}`) and no ticket. */
  token?: string;
  /** The fetch implementation for the ticket endpoint. */
  fetch: typeof fetch;
  /** Resolves the WebSocket implementation. */
  webSocket: () => Promise<WebSocketConstructor>;
  /** Service parameters sent with `authenticate`. */
  authOptions: { version: string; extensions: string[] };
  /** Reconnection settings. */
  reconnect?: ReconnectOptions;
  /** Liveness settings. */
  liveness?: LivenessOptions;
  /**
   * The largest message accepted from the server, in bytes (default 64 MiB,
   * `DEFAULT_MAX_EVENT_BYTES`). A larger one fails only the call or stream it belongs to, with
   * InvalidAgentResponseError (-32006).
   */
  maxEventBytes?: number;
  /** Called on every state change. */
  onStateChange?: (state: ConnectionState, detail: { attempt?: number; error?: unknown }) => void;
}

/** One physical connection. */
interface Conn {
  socket: WebSocket;
  root: Root;
  cap: Capability;
  lost: boolean;
  /** Why the server ended the connection, when that is an error to report rather than retry. */
  fatal: A2AError | undefined;
  /** What the socket's error event said (npm:ws: a refused certificate, a refused connection). */
  socketError: string | undefined;
  sinks: Set<Sink>;
  pingTimer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * The error a close stands for, when it is not a lost connection. Code 1009 with a reason comes
 * from the server: a message of ours broke its size limit, and the reason says which. Without a
 * reason it is our own WebSocket refusing a frame (`npm:ws` over its `maxPayload`). Either way the
 * same message would break it again, so the calls in flight fail instead of being retried.
 */
function closeError(event: Event): A2AError | undefined {
  const { code, reason } = event as CloseEvent;
  if (code !== CLOSE_MESSAGE_TOO_BIG) return undefined;
  if (reason) return new InvalidRequestError(reason);
  return new InvalidAgentResponseError(
    "Message from the agent is larger than the WebSocket accepts",
  );
}

/**
 * Starts the client's end of a capnweb session over a transport, holding what the agent sends to
 * `maxBytes` per message. capnweb's own limit (32 Mi UTF-16 code units by default) would end the
 * session over one large result; this refuses such a message alone, failing only its call or
 * stream with InvalidAgentResponseError (-32006) naming the limit.
 *
 * @param transport The transport (a WebSocket, or one HTTP batch).
 * @param maxBytes The largest message accepted, in bytes.
 * @returns The stub of the server's root object.
 */
export function clientSession(transport: RpcTransport, maxBytes: number): unknown {
  const limited = new SizeLimitedTransport(transport, {
    maxIncomingBytes: maxBytes,
    // The server refuses what is over its own limit, one call at a time.
    maxOutgoingBytes: Infinity,
    incomingError: (limit, bytes) =>
      new InvalidAgentResponseError(
        `Message from the agent is larger than the ${limit}-byte limit: ${bytes} bytes`,
      ),
  });
  return new RpcSession(limited, undefined, { limits: { maxMessageSize: maxBytes } })
    .getRemoteMain();
}

/**
 * The client's end of a stream: queues events and slows the server when the caller lags. The
 * server keeps several calls in flight (batches of events with `onEvents`, or single events with
 * `onEvent` from a server without batches), so every call that arrives while the queue is over
 * its high-water mark waits, and all of them are released together once the caller has drained
 * the queue to half of it, or the stream has ended. A held call holds back its events' credit:
 * the server sends no more once that is spent.
 */
/**
 * Subscribes to a capnweb call's result at once. capnweb asks for a result (its `pull` frame)
 * when `then` is called, and `await` calls it one microtask later, after the client's socket has
 * written the call: the pull then costs a write of its own. Called here, both leave together.
 */
function pulled<T>(result: PromiseLike<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => result.then(resolve, reject));
}

export class Sink extends RpcTarget {
  readonly queue: Subscription = new Subscription(Infinity, 0);
  #waiting: Array<() => void> = [];
  #highWater = 64;

  onEvents(events: StreamEvent[]): Promise<void> | void {
    if (!Array.isArray(events)) {
      throw new InvalidAgentResponseError("Invalid stream batch: events must be a list");
    }
    for (const event of events) this.queue.push(event);
    return this.#hold();
  }

  onEvent(event: StreamEvent): Promise<void> | void {
    this.queue.push(event);
    return this.#hold();
  }

  #hold(): Promise<void> | void {
    if (this.queue.pending >= this.#highWater && !this.queue.done) {
      return new Promise((resolve) => this.#waiting.push(resolve));
    }
  }

  onEnd(): void {
    this.queue.end();
    this.#releaseAll();
  }

  onError(error: unknown): void {
    this.queue.fail(fromWireError(error), true);
    this.#releaseAll();
  }

  /** Calls waiting for the caller to catch up (for tests and stats). */
  get waiting(): number {
    return this.#waiting.length;
  }

  drained(): void {
    if (this.queue.done || this.queue.pending < this.#highWater / 2) this.#releaseAll();
  }

  #releaseAll(): void {
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const w of waiting) w();
  }
}

/** True for errors that mean "the connection went away", not "the server said no". */
function isRetryable(err: unknown): boolean {
  return err instanceof ConnectionLostError ||
    (err instanceof A2AError && err.code === ErrorCode.ServiceUnavailable);
}

/**
 * A capnweb session over a WebSocket that survives connection loss. Calls wait while it
 * reconnects; reads are retried, other calls fail with ConnectionLostError; streams resume.
 */
export class WebSocketSession {
  #url: string;
  #options: WebSocketSessionOptions;
  #state: ConnectionState = "connecting";
  #conn: Conn | undefined;
  #ready: Promise<Conn>;
  #resolveReady!: (c: Conn) => void;
  #rejectReady!: (e: unknown) => void;
  #closing = new AbortController();
  #reconnecting: Promise<void> | undefined;

  /**
   * Creates the session; call `open()` to connect.
   *
   * @param url The capnweb interface URL (http or https; ws or wss is derived).
   * @param options Token, transports and settings.
   */
  constructor(url: string, options: WebSocketSessionOptions) {
    this.#url = url;
    this.#options = options;
    this.#ready = this.#newReady();
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.#state;
  }

  #newReady(): Promise<Conn> {
    const p = new Promise<Conn>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    p.catch(() => {}); // observed by whoever awaits it
    return p;
  }

  #setState(state: ConnectionState, detail: { attempt?: number; error?: unknown } = {}): void {
    if (this.#state === state && state !== "reconnecting") return;
    this.#state = state;
    try {
      this.#options.onStateChange?.(state, detail);
    } catch {
      // A listener's failure must not break the connection logic.
    }
  }

  /** Connects for the first time; fails (without retrying) when the credentials are refused. */
  async open(): Promise<void> {
    const conn = await this.#connect();
    this.#install(conn);
  }

  async #ticket(
    signal: AbortSignal,
  ): Promise<{ ticket: string } | { token: string } | Record<never, never>> {
    // An open agent needs no credentials, so no ticket either.
    const token = this.#options.token;
    if (token === undefined) return {};
    // The ticket endpoint sits beside the capnweb endpoint: /a2a/capnweb -> /a2a/auth.
    // Called unbound: a browser's fetch throws "Illegal invocation" when called as a method of
    // anything but the window, which `this.#options.fetch(...)` would be.
    const doFetch = this.#options.fetch;
    const res = await doFetch(new URL("auth", this.#url), {
      method: "POST",
      // One request per connection attempt: leaving its connection in the pool would have the
      // next attempt, after a loss, wait out the connect timeout on a connection that is as dead
      // as the WebSocket was. Deno and Node (undici) then close it; a browser ignores the header
      // and manages its own pool.
      headers: { authorization: `Bearer ${token}`, connection: "close" },
      signal,
    });
    if (res.status === 404) {
      await res.body?.cancel();
      return { token };
    }
    const body = await res.json().catch(() => ({}));
    if (res.status === 401 || res.status === 403) {
      throw new AuthenticationError(
        body?.error?.message ?? `Authentication failed: HTTP ${res.status}`,
      );
    }
    if (!res.ok) {
      throw new ConnectionLostError(`Cannot get a ticket: HTTP ${res.status}`);
    }
    return { ticket: String(body.ticket) };
  }

  /** One connection attempt, bounded by the connect timeout and by close(). */
  async #connect(): Promise<Conn> {
    const limit = this.#options.liveness?.connectTimeoutMs ?? 10_000;
    const attempt = new AbortController();
    const onClose = () => attempt.abort(new ConnectionLostError("The client is closed"));
    this.#closing.signal.addEventListener("abort", onClose, { once: true });
    const timer = setTimeout(
      () => attempt.abort(new ConnectionLostError(`Connecting took longer than ${limit} ms`)),
      limit,
    );
    try {
      return await this.#connectOnce(attempt.signal);
    } finally {
      clearTimeout(timer);
      this.#closing.signal.removeEventListener("abort", onClose);
    }
  }

  async #connectOnce(signal: AbortSignal): Promise<Conn> {
    let credentials;
    try {
      credentials = await this.#ticket(signal);
    } catch (err) {
      if (err instanceof A2AError) throw err;
      if (signal.aborted) throw signal.reason;
      throw new ConnectionLostError(`Cannot reach the server: ${(err as Error)?.message ?? err}`);
    }
    const WS = await this.#options.webSocket();
    const socket = new WS(this.#url.replace(/^http/, "ws"));
    const conn: Conn = {
      socket,
      root: undefined as unknown as Root,
      cap: undefined as unknown as Capability,
      lost: false,
      fatal: undefined,
      socketError: undefined,
      sinks: new Set(),
      pingTimer: undefined,
    };
    // capnweb sees only that the socket closed; the reason, when there is one, is here.
    socket.addEventListener("error", (event) => {
      const message = (event as ErrorEvent).message ?? (event as ErrorEvent).error?.message;
      if (typeof message === "string" && message !== "") conn.socketError ??= message;
    });
    // Registered before capnweb's own listener, so calls that fail because of the close see
    // the connection already marked lost.
    socket.addEventListener("close", (event) => {
      conn.fatal ??= closeError(event);
      this.#lost(conn, conn.fatal);
    });
    conn.root = clientSession(
      new WebSocketTransport(socket),
      this.#options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES,
    ) as unknown as Root;
    const abandon = () => {
      conn.lost = true;
      this.#teardown(conn);
    };
    signal.addEventListener("abort", abandon, { once: true });
    try {
      // Every sink of this session is a Sink, which takes batches (`onEvents`). A server that
      // does not know the option ignores it and calls `onEvent` per event.
      conn.cap = await conn.root.authenticate(credentials, {
        ...this.#options.authOptions,
        batchEvents: true,
      });
    } catch (err) {
      abandon();
      if (signal.aborted) throw signal.reason;
      if (err instanceof Error && !("code" in err)) {
        throw new ConnectionLostError(`Connection failed: ${conn.socketError ?? err.message}`);
      }
      throw fromWireError(err);
    } finally {
      signal.removeEventListener("abort", abandon);
    }
    if (conn.lost) throw new ConnectionLostError("The connection closed while authenticating");
    return conn;
  }

  #install(conn: Conn): void {
    this.#conn = conn;
    this.#resolveReady(conn);
    this.#setState("open");
    this.#schedulePing(conn);
  }

  #schedulePing(conn: Conn): void {
    const interval = this.#options.liveness?.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    if (interval <= 0 || conn.lost) return;
    conn.pingTimer = setTimeout(async () => {
      conn.pingTimer = undefined;
      const timeout = this.#options.liveness?.pingTimeoutMs ?? DEFAULT_PING_TIMEOUT_MS;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const alive = await Promise.race([
        conn.root.ping().then(() => true, () => false),
        new Promise<boolean>((r) => timer = setTimeout(() => r(false), timeout)),
      ]);
      clearTimeout(timer);
      if (conn.lost) return;
      if (alive) this.#schedulePing(conn);
      else this.#lost(conn, new ConnectionLostError(`No answer to ping within ${timeout} ms`));
    }, interval);
  }

  /** Tears a connection down without waiting for a closing handshake. */
  #teardown(conn: Conn): void {
    clearTimeout(conn.pingTimer);
    conn.pingTimer = undefined;
    try {
      conn.cap?.[Symbol.dispose]();
      conn.root?.[Symbol.dispose]();
    } catch {
      // already broken
    }
    const s = conn.socket as WebSocket & { terminate?: () => void };
    if (s.readyState === 0 || s.readyState === 1) {
      // ws can drop a dead connection at once; a browser socket closes with a handshake.
      if (conn.lost && typeof s.terminate === "function") s.terminate();
      else s.close(1000, "Client closed");
    }
  }

  #lost(conn: Conn, error: unknown): void {
    if (conn.lost) return;
    conn.lost = true;
    const reason = error ?? new ConnectionLostError("The connection to the server was lost");
    for (const sink of conn.sinks) sink.queue.fail(reason, true);
    conn.sinks.clear();
    this.#teardown(conn);
    if (this.#conn !== conn || this.#closing.signal.aborted) return;
    this.#conn = undefined;
    const r = this.#options.reconnect ?? {};
    if (r.enabled === false) {
      this.#fail(reason);
      return;
    }
    this.#ready = this.#newReady();
    this.#reconnecting = this.#reconnectLoop(reason);
  }

  async #reconnectLoop(cause: unknown): Promise<void> {
    const r = this.#options.reconnect ?? {};
    const initial = r.initialDelayMs ?? 250;
    const max = r.maxDelayMs ?? 10_000;
    const attempts = r.maxAttempts ?? Infinity;
    const deadline = Date.now() + (r.budgetMs ?? Infinity);
    let last: unknown = cause;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const base = Math.min(max, initial * 2 ** Math.min(attempt - 1, 52));
      const delay = base / 2 + Math.random() * base / 2;
      if (Date.now() + delay > deadline) break;
      this.#setState("reconnecting", { attempt, error: last });
      await sleep(delay, this.#closing.signal);
      if (this.#closing.signal.aborted) return;
      try {
        const conn = await this.#connect();
        if (this.#closing.signal.aborted) {
          this.#teardown(conn);
          return;
        }
        this.#install(conn);
        return;
      } catch (err) {
        last = err;
        if (err instanceof AuthenticationError) break;
      }
    }
    this.#fail(last);
  }

  #fail(error: unknown): void {
    const err = error instanceof A2AError
      ? error
      : new ConnectionLostError("The connection to the server was lost");
    this.#rejectReady(err);
    this.#closing.abort();
    this.#setState("closed", { error: err });
  }

  async #currentConn(): Promise<Conn> {
    while (true) {
      if (this.#state === "closed") throw new ConnectionLostError("The client is closed");
      const conn = await this.#ready;
      // A socket the server has begun to close is lost already: don't send on it.
      if (conn.socket.readyState <= 1 && !conn.lost) return conn;
      this.#lost(conn, undefined);
      if (this.#ready === undefined) throw new ConnectionLostError("The client is closed");
    }
  }

  /**
   * Runs one call on the capability. When the connection drops meanwhile, an idempotent call
   * is retried once reconnected; any other call fails with ConnectionLostError, since the
   * server may or may not have acted on it.
   *
   * @param fn The call.
   * @param idempotent Whether repeating the call is safe.
   * @returns The call's result.
   */
  async call<T>(fn: (cap: Capability) => Promise<T>, idempotent: boolean): Promise<T> {
    while (true) {
      const conn = await this.#currentConn();
      try {
        return await pulled(fn(conn.cap));
      } catch (err) {
        if (!conn.lost) throw fromWireError(err);
        if (conn.fatal) throw conn.fatal;
        if (!idempotent || this.#options.reconnect?.enabled === false) {
          throw new ConnectionLostError(
            "The connection was lost during the call; it may or may not have taken effect",
          );
        }
        // A read: wait for the reconnection and run it again.
      }
    }
  }

  /**
   * Opens a stream and keeps it going across reconnections: after a drop it subscribes again
   * with `afterSeq` set to the last event delivered, so the caller sees every event once.
   *
   * @param start Opens the stream on a capability with a sink (the first time).
   * @param resume Tells how to resume: the task id and last seq, known from the events.
   * @returns The events.
   */
  async *stream(
    start: (cap: Capability, sink: Sink) => Promise<Handle>,
    resume: { taskId?: string; lastSeq?: number } = {},
  ): AsyncGenerator<StreamEvent> {
    let taskId = resume.taskId;
    let lastSeq = resume.lastSeq;
    let first = true;
    while (true) {
      const conn = await this.#currentConn();
      const sink = new Sink();
      conn.sinks.add(sink);
      let handle: Handle | undefined;
      try {
        try {
          handle = first || taskId === undefined
            ? await start(conn.cap, sink)
            : await conn.cap.subscribeToTask({ id: taskId, afterSeq: lastSeq ?? 0 }, sink);
        } catch (err) {
          if (conn.fatal) throw conn.fatal;
          if (!conn.lost) throw fromWireError(err);
          if (this.#options.reconnect?.enabled === false || this.#state === "closed") {
            throw new ConnectionLostError("The connection was lost opening a stream");
          }
          // Opening again is safe: a subscribe replays from the last seq, and the server answers a
          // repeated messageId with the first send's task, streamed from its start.
          continue;
        }
        first = false;
        while (true) {
          const next = await sink.queue.next();
          sink.drained();
          if (next.done) return;
          const event = next.value;
          if (lastSeq !== undefined && !event.task && event.seq <= lastSeq) continue;
          lastSeq = event.seq;
          taskId ??= event.task?.id ?? event.statusUpdate?.taskId ?? event.artifactUpdate?.taskId;
          yield event;
        }
      } catch (err) {
        if (err instanceof StreamOverflowError && taskId !== undefined && !conn.lost) {
          // This consumer fell behind and the server let go of its buffer; the task's event log
          // still has every event, so subscribe again right after the last one delivered.
          continue;
        }
        const canResume = isRetryable(err) && taskId !== undefined &&
          this.#options.reconnect?.enabled !== false && this.#state !== "closed";
        if (!canResume) throw err;
        if (!conn.lost) {
          // The server asked us to go (shutting down) while the socket still stands.
          this.#lost(conn, err);
        }
      } finally {
        conn.sinks.delete(sink);
        try {
          handle?.[Symbol.dispose]();
        } catch {
          // The connection may be gone.
        }
      }
    }
  }

  /** Pings the server over the current connection. */
  async ping(): Promise<{ time: string }> {
    const conn = await this.#currentConn();
    try {
      return await conn.root.ping();
    } catch (err) {
      if (conn.fatal) throw conn.fatal;
      if (conn.lost) throw new ConnectionLostError("The connection was lost during ping()");
      throw fromWireError(err);
    }
  }

  /** Closes the session for good. */
  async close(): Promise<void> {
    if (this.#closing.signal.aborted && this.#state === "closed") return;
    this.#closing.abort();
    const conn = this.#conn;
    this.#conn = undefined;
    this.#rejectReady(new ConnectionLostError("The client is closed"));
    this.#setState("closed");
    await this.#reconnecting;
    if (!conn) return;
    clearTimeout(conn.pingTimer);
    for (const sink of conn.sinks) sink.queue.fail(new ConnectionLostError("The client is closed"));
    conn.lost = true;
    const socket = conn.socket;
    const closed = socket.readyState === 3
      ? Promise.resolve()
      : new Promise<void>((resolve) =>
        socket.addEventListener("close", () => resolve(), { once: true })
      );
    try {
      conn.cap[Symbol.dispose]();
      conn.root[Symbol.dispose]();
    } catch {
      // already broken
    }
    if (socket.readyState === 0 || socket.readyState === 1) socket.close(1000, "Client closed");
    await closed;
  }
}
