// The JSON-RPC 2.0 binding of A2A 1.0 (spec section 9) at `POST /a2a/jsonrpc`. It only deals with
// HTTP: bearer auth, body limits, service parameter headers, the JSON-RPC envelope and SSE. Every
// method is one call on the shared RequestHandler, exactly as in the capnweb binding.

import { getLogger } from "@logtape/logtape";
import type { Principal } from "../auth/tokens.ts";
import {
  A2AError,
  AuthenticationError,
  InternalError,
  InvalidParamsError,
  InvalidRequestError,
  JSONParseError,
  MethodNotFoundError,
  QuotaExceededError,
  RateLimitedError,
  ServiceUnavailableError,
  VersionNotSupportedError,
} from "../errors/errors.ts";
import type { CallContext, RequestHandler } from "../tasks/request_handler.ts";
import type { Subscription } from "../tasks/subscription.ts";
import { readBody } from "../http/body.ts";
import {
  DEFAULT_MAX_EVENT_BYTES,
  DEFAULT_MAX_MESSAGE_BYTES,
  exceedsUtf8,
  utf8Length,
} from "../http/limits.ts";
import { isSupportedVersion } from "../types/version.ts";
import {
  HEADERS,
  type JsonRpcErrorObject,
  type JsonRpcId,
  type JsonRpcResponse,
  parseExtensions,
} from "./protocol.ts";
import { formatSseEvent, SSE_KEEP_ALIVE } from "./sse.ts";

const log = getLogger(["a2a-capnweb", "jsonrpc"]);

/** Options of {@link createJsonRpcHandler}. */
export interface JsonRpcHandlerOptions {
  /** The request handler shared by every binding. */
  handler: RequestHandler;
  /**
   * Verifies a bearer token; throws AuthenticationError when it is not valid (HTTP 401), or
   * RateLimitedError when its sender made too many failed attempts (HTTP 429).
   */
  verifyToken: (token: string, req: Request) => Promise<Principal>;
  /** The A2A versions served (`Major.Minor`); default `["1.0"]`. */
  versions?: readonly string[];
  /** Largest request body accepted, in bytes (default 4 MiB). */
  maxBodyBytes?: number;
  /**
   * Largest SSE event sent, in bytes of its `data` (default 64 MiB, `DEFAULT_MAX_EVENT_BYTES`,
   * which is what this module's client accepts). A larger event is not sent: the stream ends
   * with a -32603 error event that names the limit.
   */
  maxEventBytes?: number;
  /**
   * Milliseconds of silence after which an SSE stream gets a `: keep-alive` comment (default
   * 15 000; 0 turns it off).
   */
  keepAliveMs?: number;
  /** Headers added to every response (CORS). */
  headers?: Record<string, string>;
  /** True once the server is shutting down: new requests get HTTP 503. */
  closing?: () => boolean;
  /**
   * Counts a new SSE stream against the server's connection limits before it opens: returns a
   * function called once when the stream ends, or throws QuotaExceededError (HTTP 429) or
   * ServiceUnavailableError (HTTP 503) to refuse it.
   */
  admitStream?: (req: Request) => () => void;
}

/** The JSON-RPC endpoint's handler, with a way to end its open streams. */
export interface JsonRpcHandler {
  /** Handles one `POST /a2a/jsonrpc` request. */
  (req: Request): Promise<Response>;
  /** How many SSE streams are open. */
  readonly streams: number;
  /**
   * Ends every open SSE stream with a -31003 error event (the client resubscribes, with
   * `Last-Event-ID`, elsewhere or later) and gives the server a turn to send it.
   */
  close(): Promise<void>;
}

/** Where an A2A error of the HTTP layer ends up: its HTTP status and extra headers. */
interface HttpFailure {
  status: number;
  headers?: Record<string, string>;
}

type UnaryMethod = (h: RequestHandler, call: CallContext, params: unknown) => Promise<unknown>;
type StreamMethod = (
  h: RequestHandler,
  call: CallContext,
  params: unknown,
  lastEventId: number | undefined,
) => Promise<Subscription>;

const UNARY: ReadonlyMap<string, UnaryMethod> = new Map<string, UnaryMethod>([
  ["SendMessage", (h, c, p) => h.sendMessage(c, p)],
  ["GetTask", (h, c, p) => h.getTask(c, p)],
  ["ListTasks", (h, c, p) => h.listTasks(c, p)],
  ["CancelTask", (h, c, p) => h.cancelTask(c, p)],
  ["CreateTaskPushNotificationConfig", (h, c, p) => h.createTaskPushNotificationConfig(c, p)],
  ["GetTaskPushNotificationConfig", (h, c, p) => h.getTaskPushNotificationConfig(c, p)],
  ["ListTaskPushNotificationConfigs", (h, c, p) => h.listTaskPushNotificationConfigs(c, p)],
  ["DeleteTaskPushNotificationConfig", async (h, c, p) => {
    await h.deleteTaskPushNotificationConfig(c, p);
    return {}; // google.protobuf.Empty in ProtoJSON
  }],
  ["GetExtendedAgentCard", (h, c, p) => h.getExtendedAgentCard(c, p)],
]);

const STREAMING: ReadonlyMap<string, StreamMethod> = new Map<string, StreamMethod>([
  ["SendStreamingMessage", (h, c, p) => h.sendStreamingMessage(c, p)],
  ["SubscribeToTask", (h, c, p, last) => h.subscribeToTask(c, p, last)],
]);

/**
 * Turns anything thrown into a JSON-RPC error object: A2A errors keep their code, message and
 * details; anything else is logged and becomes a bare -32603 that reveals nothing.
 */
function toErrorObject(err: unknown): JsonRpcErrorObject {
  let e: A2AError;
  if (err instanceof A2AError) e = err;
  else {
    log.error("Unexpected error in a JSON-RPC call: {error}", { error: err });
    e = new InternalError();
  }
  return e.data.length > 0
    ? { code: e.code, message: e.message, data: e.data }
    : { code: e.code, message: e.message };
}

function failure(id: JsonRpcId, err: unknown): JsonRpcResponse {
  return { jsonrpc: "2.0", id, error: toErrorObject(err) };
}

function isId(value: unknown): value is JsonRpcId {
  return value === null || typeof value === "string" ||
    (typeof value === "number" && Number.isFinite(value));
}

/**
 * The version a request asks for: the `A2A-Version` header, else an `A2A-Version` query
 * parameter (spec 3.6.1), else `0.3`, which an empty value means (spec 3.6.2).
 */
function requestedVersion(req: Request, url: URL): string {
  const header = req.headers.get(HEADERS.version)?.trim();
  if (header) return header;
  for (const [k, v] of url.searchParams) {
    if (k.toLowerCase() === HEADERS.version && v.trim() !== "") return v.trim();
  }
  return "";
}

function checkVersion(version: string, supported: readonly string[]): void {
  if (isSupportedVersion(version, supported)) return;
  if (version === "") {
    const err = new VersionNotSupportedError("0.3");
    err.message = `A2A version not supported: 0.3 (a request without A2A-Version asks for 0.3); ` +
      `send A2A-Version: ${supported.join(", ")}`;
    throw err;
  }
  throw new VersionNotSupportedError(version);
}

function lastEventIdOf(req: Request): number | undefined {
  const value = req.headers.get(HEADERS.lastEventId)?.trim();
  if (!value) return undefined;
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new InvalidParamsError(
      "Invalid params: Last-Event-ID must be the non-negative integer id of an event",
      [{ field: "Last-Event-ID", description: "must be a non-negative integer" }],
    );
  }
  return n;
}

/**
 * Creates the handler of `POST /a2a/jsonrpc`.
 *
 * The HTTP layer answers with an HTTP status and a JSON-RPC error body (id `null`): a missing or
 * invalid bearer token gets 401 with `WWW-Authenticate` (code -31001), a body over the limit
 * 413, a Content-Type other than `application/json` or `application/a2a+json` 415, a method
 * other than POST 405, a server shutting down 503. Everything past that is JSON-RPC and answers
 * HTTP 200: -32700 for invalid JSON, -32600 for an invalid envelope or a batch (arrays are not
 * supported), -32009 for an A2A-Version other than 1.0 (none means 0.3), -32601 for an unknown
 * method, and the RequestHandler's errors as they are. Streaming methods answer
 * `text/event-stream`: each event's `data` is a JSON-RPC response whose `result` is a
 * StreamResponse, and its `id` is the event's per-task sequence number, which `Last-Event-ID`
 * on SubscribeToTask resumes after. An error before the stream starts is a plain JSON response;
 * one after ends the stream with an error event.
 *
 * @param options The request handler, the token check and limits.
 * @returns The handler.
 *
 * @example Answer a JSON-RPC request without a server
 * ```ts
 * import {
 *   AuthenticationError,
 *   buildAgentCard,
 *   createJsonRpcHandler,
 *   demoAgent,
 *   demoAgentCard,
 *   RequestHandler,
 *   TaskManager,
 * } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * const manager = new TaskManager({ executor: demoAgent });
 * const jsonrpc = createJsonRpcHandler({
 *   handler: new RequestHandler({
 *     manager,
 *     agentCard: buildAgentCard(demoAgentCard, "http://localhost"),
 *   }),
 *   verifyToken: (token) =>
 *     token === "t" ? Promise.resolve({ userId: "alice" }) : Promise.reject(new AuthenticationError()),
 * });
 * const res = await jsonrpc(
 *   new Request("http://localhost/a2a/jsonrpc", {
 *     method: "POST",
 *     headers: { authorization: "Bearer t", "content-type": "application/json", "a2a-version": "1.0" },
 *     body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ListTasks" }),
 *   }),
 * );
 * assert.deepEqual((await res.json()).result.tasks, []);
 * await jsonrpc.close();
 * await manager.close();
 * ```
 */
export function createJsonRpcHandler(options: JsonRpcHandlerOptions): JsonRpcHandler {
  const handler = options.handler;
  const versions = options.versions ?? ["1.0"];
  const maxBytes = options.maxBodyBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const maxEventBytes = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
  const keepAliveMs = options.keepAliveMs ?? 15_000;
  const extra = options.headers ?? {};
  // Each open stream's shutdown function.
  const open = new Set<() => void>();

  const reply = (body: JsonRpcResponse, status = 200, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { ...extra, ...headers, "content-type": "application/json" },
    });
  const httpFailure = (err: A2AError, http: HttpFailure) =>
    reply(failure(null, err), http.status, http.headers);

  const authenticate = async (req: Request): Promise<Principal | Response> => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.get("authorization") ?? "");
    if (!match) {
      return httpFailure(new AuthenticationError("Missing bearer token"), {
        status: 401,
        headers: { "www-authenticate": 'Bearer realm="a2a"' },
      });
    }
    try {
      return await options.verifyToken(match[1]!, req);
    } catch (err) {
      if (err instanceof RateLimitedError) {
        return httpFailure(err, {
          status: 429,
          headers: { "retry-after": String(err.retryAfterSeconds) },
        });
      }
      if (err instanceof AuthenticationError) {
        return httpFailure(err, {
          status: 401,
          headers: { "www-authenticate": 'Bearer realm="a2a", error="invalid_token"' },
        });
      }
      return reply(failure(null, err), 500);
    }
  };

  // The client going away cancels the body stream, which closes the subscription. (Deno's
  // request.signal is not used: it also aborts after every successful response.)
  const stream = (sub: Subscription, id: JsonRpcId, release: () => void): Response => {
    const encoder = new TextEncoder();
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let finished = false;
    const finish = (): boolean => {
      if (finished) return false;
      finished = true;
      clearTimeout(timer);
      open.delete(shutdown);
      sub.close();
      release();
      return true;
    };
    // The keep-alive timer restarts on every write, so only an idle stream gets comments.
    const arm = () => {
      clearTimeout(timer);
      if (keepAliveMs > 0) {
        timer = setTimeout(() => {
          if (!finished) write(SSE_KEEP_ALIVE);
        }, keepAliveMs);
      }
    };
    const write = (text: string) => {
      controller.enqueue(encoder.encode(text));
      arm();
    };
    const end = () => {
      if (finish()) controller.close();
    };
    const fail = (err: unknown) => {
      if (finished) return;
      write(formatSseEvent(JSON.stringify(failure(id, err))));
      end();
    };
    function shutdown() {
      fail(
        new ServiceUnavailableError(
          "The server is shutting down; subscribe again with Last-Event-ID to continue",
        ),
      );
    }
    open.add(shutdown);
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
        arm();
      },
      // Pulling one event at a time leaves a slow client's backlog in the Subscription, whose
      // bound protects the task core (it ends the stream with StreamOverflowError).
      async pull() {
        let next: IteratorResult<{ seq: number }>;
        try {
          next = await sub.next();
        } catch (err) {
          return fail(err);
        }
        if (finished) return;
        if (next.done) return end();
        const { seq, ...result } = next.value;
        const data = JSON.stringify({ jsonrpc: "2.0", id, result });
        // A client may refuse anything larger, and would lose the whole stream to it; the task
        // itself can still be read with GetTask.
        if (exceedsUtf8(data, maxEventBytes)) {
          return fail(
            new InternalError(
              `Stream event ${seq} is larger than the ${maxEventBytes}-byte limit: ${
                utf8Length(data)
              } bytes`,
            ),
          );
        }
        write(formatSseEvent(data, seq));
      },
      cancel() {
        finish();
      },
    }, new CountQueuingStrategy({ highWaterMark: 16 }));
    return new Response(body, {
      headers: {
        ...extra,
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
      },
    });
  };

  const dispatch = async (req: Request, url: URL, principal: Principal): Promise<Response> => {
    const bytes = await readBody(req, maxBytes);
    if (bytes === undefined) {
      return httpFailure(
        new InvalidRequestError(`Request body is larger than ${maxBytes} bytes`),
        { status: 413 },
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    } catch {
      return reply(failure(null, new JSONParseError()));
    }
    if (Array.isArray(body)) {
      return reply(failure(
        null,
        new InvalidRequestError("Batch requests are not supported: send one request per POST"),
      ));
    }
    if (typeof body !== "object" || body === null) {
      return reply(failure(null, new InvalidRequestError("The request must be a JSON object")));
    }
    const envelope = body as Record<string, unknown>;
    const notification = !Object.hasOwn(envelope, "id");
    const id: JsonRpcId = isId(envelope.id) ? envelope.id : null;
    if (!notification && !isId(envelope.id)) {
      return reply(failure(null, new InvalidRequestError("id must be a string, a number or null")));
    }
    if (envelope.jsonrpc !== "2.0") {
      return reply(failure(id, new InvalidRequestError('jsonrpc must be exactly "2.0"')));
    }
    const method = envelope.method;
    if (typeof method !== "string") {
      return reply(failure(id, new InvalidRequestError("method must be a string")));
    }
    const params = envelope.params;
    const call: CallContext = { userId: principal.userId, origin: url.origin };
    const answer = (res: JsonRpcResponse, err?: unknown) => {
      if (notification) return new Response(null, { status: 204, headers: extra });
      // A used-up quota is the one error a client should back off from: say so in HTTP too.
      if (err instanceof QuotaExceededError) return reply(res, 429, { "retry-after": "1" });
      if (err instanceof ServiceUnavailableError) return reply(res, 503, { "retry-after": "5" });
      return reply(res);
    };
    try {
      checkVersion(requestedVersion(req, url), versions);
      handler.requireExtensions(parseExtensions(req.headers.get(HEADERS.extensions)));
      const unary = UNARY.get(method);
      const streaming = STREAMING.get(method);
      if (!unary && !streaming) throw new MethodNotFoundError(method);
      if (
        params !== undefined &&
        (typeof params !== "object" || params === null || Array.isArray(params))
      ) {
        throw new InvalidParamsError("Invalid params: params must be an object", [
          { field: "(params)", description: "must be an object" },
        ]);
      }
      if (unary) return answer({ jsonrpc: "2.0", id, result: await unary(handler, call, params) });
      const last = method === "SubscribeToTask" ? lastEventIdOf(req) : undefined;
      const release = notification ? () => {} : options.admitStream?.(req) ?? (() => {});
      let sub: Subscription;
      try {
        sub = await streaming!(handler, call, params, last);
      } catch (err) {
        release();
        throw err;
      }
      if (notification) {
        // Nobody reads the stream of a notification; the call itself (e.g. starting a task) stands.
        sub.close();
        return answer({ jsonrpc: "2.0", id, result: null });
      }
      return stream(sub, id, release);
    } catch (err) {
      return answer(failure(id, err), err);
    }
  };

  const handle = async (req: Request): Promise<Response> => {
    if (options.closing?.()) {
      await req.body?.cancel();
      return httpFailure(new ServiceUnavailableError("The server is shutting down"), {
        status: 503,
        headers: { "retry-after": "5" },
      });
    }
    if (req.method !== "POST") {
      await req.body?.cancel();
      return httpFailure(new InvalidRequestError("Use POST for JSON-RPC requests"), {
        status: 405,
        headers: { allow: "POST, OPTIONS" },
      });
    }
    const principal = await authenticate(req);
    if (principal instanceof Response) {
      await req.body?.cancel();
      return principal;
    }
    const type = req.headers.get("content-type")?.split(";")[0]?.trim().toLowerCase();
    if (type !== "application/json" && type !== "application/a2a+json") {
      await req.body?.cancel();
      return httpFailure(
        new InvalidRequestError(
          `Unsupported Content-Type: ${type ?? "(none)"}; use application/json`,
        ),
        { status: 415, headers: { "accept-post": "application/json, application/a2a+json" } },
      );
    }
    return await dispatch(req, new URL(req.url), principal);
  };
  return Object.defineProperties(handle as JsonRpcHandler, {
    streams: { get: () => open.size },
    close: {
      value: async (): Promise<void> => {
        if (open.size === 0) return;
        for (const shutdown of [...open]) shutdown();
        // Deno.serve drops a response whose last chunk is still unsent when it stops; one turn
        // of the event loop lets the final events go out.
        await new Promise((resolve) => setTimeout(resolve, 0));
      },
    },
  });
}
