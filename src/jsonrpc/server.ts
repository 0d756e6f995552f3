// The JSON-RPC 2.0 binding of A2A 1.0 (spec section 9) at `POST /a2a/jsonrpc`. It only deals with
// HTTP: bearer auth, body limits, service parameter headers, the JSON-RPC envelope and SSE. Every
// method is one call on the shared RequestHandler, exactly as in the capnweb binding.

import { getLogger } from "@logtape/logtape";
import type { Principal } from "../auth/tokens.ts";
import {
  A2AError,
  ContentTypeNotSupportedError,
  InternalError,
  InvalidParamsError,
  InvalidRequestError,
  JSONParseError,
  MethodNotFoundError,
  QuotaExceededError,
  ServiceUnavailableError,
} from "../errors/errors.ts";
import type { CallContext } from "../tasks/request_handler.ts";
import type { Subscription } from "../tasks/subscription.ts";
import { authenticateBearer, type HttpFailure } from "../json_http/auth.ts";
import { JSON_MEDIA_TYPES, mediaTypeOf, readBody } from "../json_http/body.ts";
import {
  checkVersion,
  HEADERS,
  lastEventIdOf,
  parseExtensions,
  requestedVersion,
} from "../json_http/service_params.ts";
import { formatSseEvent } from "../json_http/sse.ts";
import { SseStreams } from "../json_http/sse_stream.ts";
import type { JsonBindingOptions } from "../json_http/options.ts";
import { STREAMING_OPERATIONS, UNARY_OPERATIONS } from "../json_http/operations.ts";
import { DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_MESSAGE_BYTES } from "../http/limits.ts";
import type { JsonRpcErrorObject, JsonRpcId, JsonRpcResponse } from "./protocol.ts";

const log = getLogger(["a2a-capnweb", "jsonrpc"]);

/** Options of {@link createJsonRpcHandler}. */
export type JsonRpcHandlerOptions = JsonBindingOptions;

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

/** A request object read from a body: its id, method and params. */
interface Envelope {
  id: JsonRpcId;
  /** True without an `id` member: nobody reads the answer. */
  notification: boolean;
  method: string;
  params: unknown;
}

/**
 * Reads a JSON-RPC request object from a body: an Envelope, or the error response for invalid
 * JSON (-32700), a batch, or an invalid envelope (-32600).
 */
function readEnvelope(bytes: Uint8Array): Envelope | JsonRpcResponse {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    return failure(null, new JSONParseError());
  }
  if (Array.isArray(body)) {
    return failure(
      null,
      new InvalidRequestError("Batch requests are not supported: send one request per POST"),
    );
  }
  if (typeof body !== "object" || body === null) {
    return failure(null, new InvalidRequestError("The request must be a JSON object"));
  }
  const envelope = body as Record<string, unknown>;
  const notification = !Object.hasOwn(envelope, "id");
  const id: JsonRpcId = isId(envelope.id) ? envelope.id : null;
  if (!notification && !isId(envelope.id)) {
    return failure(null, new InvalidRequestError("id must be a string, a number or null"));
  }
  if (envelope.jsonrpc !== "2.0") {
    return failure(id, new InvalidRequestError('jsonrpc must be exactly "2.0"'));
  }
  const method = envelope.method;
  if (typeof method !== "string") {
    return failure(id, new InvalidRequestError("method must be a string"));
  }
  return { id, notification, method, params: envelope.params };
}

/** Checks the params member: absent, or an object. */
function checkParams(params: unknown): void {
  if (
    params !== undefined &&
    (typeof params !== "object" || params === null || Array.isArray(params))
  ) {
    throw new InvalidParamsError("Invalid params: params must be an object", [
      { field: "(params)", description: "must be an object" },
    ]);
  }
}

/**
 * Creates the handler of `POST /a2a/jsonrpc`.
 *
 * The HTTP layer answers with an HTTP status and a JSON-RPC error body (id `null`): a missing or
 * invalid bearer token gets 401 with `WWW-Authenticate` (code -31001), a body over the limit
 * 413, a Content-Type other than `application/json` or `application/a2a+json` 415 (code -32005,
 * ContentTypeNotSupportedError), a method
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
  const extra = options.headers ?? {};
  const streams = new SseStreams({
    keepAliveMs: options.keepAliveMs ?? 15_000,
    maxEventBytes: options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES,
    headers: extra,
  });

  const reply = (body: JsonRpcResponse, status = 200, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { ...extra, ...headers, "content-type": "application/json" },
    });
  const httpFailure = ({ error, status, headers }: HttpFailure) =>
    reply(failure(null, error), status, headers);

  // One request object, past the HTTP checks: everything here answers HTTP 200 unless the error
  // is one a client should back off from.
  const call = async (req: Request, url: URL, principal: Principal, envelope: Envelope) => {
    const { id, notification, method, params } = envelope;
    const context: CallContext = {
      userId: principal.userId,
      origin: url.origin,
      binding: "jsonrpc",
      headers: req.headers,
    };
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
      const unary = UNARY_OPERATIONS.get(method);
      const streaming = STREAMING_OPERATIONS.get(method);
      if (!unary && !streaming) throw new MethodNotFoundError(method);
      checkParams(params);
      if (unary) {
        const result = await unary(handler, context, params);
        // undefined is google.protobuf.Empty, `{}` in ProtoJSON.
        return answer({ jsonrpc: "2.0", id, result: result === undefined ? {} : result });
      }
      const last = method === "SubscribeToTask" ? lastEventIdOf(req) : undefined;
      const release = notification ? () => {} : options.admitStream?.(req) ?? (() => {});
      let sub: Subscription;
      try {
        sub = await streaming!(handler, context, params, last);
      } catch (err) {
        release();
        throw err;
      }
      if (notification) {
        // Nobody reads the stream of a notification; the call itself (e.g. starting a task) stands.
        sub.close();
        return answer({ jsonrpc: "2.0", id, result: null });
      }
      return streams.open(sub, {
        event: (result) => JSON.stringify({ jsonrpc: "2.0", id, result }),
        error: (err) => formatSseEvent(JSON.stringify(failure(id, err))),
      }, release);
    } catch (err) {
      return answer(failure(id, err), err);
    }
  };

  // The HTTP layer: shutdown, method, token, media type and body size, each with its status.
  const handle = async (req: Request): Promise<Response> => {
    if (options.closing?.()) {
      await req.body?.cancel();
      return httpFailure({
        error: new ServiceUnavailableError("The server is shutting down"),
        status: 503,
        headers: { "retry-after": "5" },
      });
    }
    if (req.method !== "POST") {
      await req.body?.cancel();
      return httpFailure({
        error: new InvalidRequestError("Use POST for JSON-RPC requests"),
        status: 405,
        headers: { allow: "POST, OPTIONS" },
      });
    }
    const auth = await authenticateBearer(req, options.verifyToken);
    if ("failure" in auth) {
      await req.body?.cancel();
      return httpFailure(auth.failure);
    }
    const type = mediaTypeOf(req);
    if (type === undefined || !JSON_MEDIA_TYPES.includes(type)) {
      await req.body?.cancel();
      // -32005, as the official SDK's server answers and its client expects (docs/JSONRPC.md).
      return httpFailure({
        error: new ContentTypeNotSupportedError(
          `Unsupported Content-Type: ${type ?? "(none)"}; use application/json`,
        ),
        status: 415,
        headers: { "accept-post": JSON_MEDIA_TYPES.join(", ") },
      });
    }
    const bytes = await readBody(req, maxBytes);
    if (bytes === undefined) {
      return httpFailure({
        error: new InvalidRequestError(`Request body is larger than ${maxBytes} bytes`),
        status: 413,
        headers: {},
      });
    }
    const envelope = readEnvelope(bytes);
    if ("jsonrpc" in envelope) return reply(envelope);
    return await call(req, new URL(req.url), auth.principal, envelope);
  };
  return Object.defineProperties(handle as JsonRpcHandler, {
    streams: { get: () => streams.size },
    close: { value: (): Promise<void> => streams.close() },
  });
}
