// The HTTP+JSON binding of A2A 1.0 (spec section 11) under `/a2a/rest`. It only deals with HTTP:
// routing by verb and path, bearer auth, body limits, service parameter headers, the query
// string and SSE. Every operation is one call on the shared RequestHandler, as in the other
// bindings.

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
  ServiceUnavailableError,
} from "../errors/errors.ts";
import { DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_MESSAGE_BYTES } from "../http/limits.ts";
import { authenticateBearer, type HttpFailure } from "../json_http/auth.ts";
import { JSON_MEDIA_TYPES, mediaTypeOf, readBody } from "../json_http/body.ts";
import {
  checkVersion,
  HEADERS,
  isVersionParam,
  lastEventIdOf,
  parseExtensions,
  requestedVersion,
} from "../json_http/service_params.ts";
import { formatSseErrorEvent } from "../json_http/sse.ts";
import { SseStreams } from "../json_http/sse_stream.ts";
import type { JsonBindingOptions } from "../json_http/options.ts";
import { STREAMING_OPERATIONS, UNARY_OPERATIONS } from "../json_http/operations.ts";
import type { CallContext } from "../tasks/request_handler.ts";
import type { Subscription } from "../tasks/subscription.ts";
import { restErrorBody, restStatusOf } from "./protocol.ts";
import { matchRoute, type RouteMatch } from "./routes.ts";

const log = getLogger(["a2a-capnweb", "rest"]);

/** Options of {@link createRestHandler}. */
export interface RestHandlerOptions extends JsonBindingOptions {
  /**
   * The path the binding is mounted at (default `/a2a/rest`): the operations' paths follow it
   * (`/a2a/rest/message:send`). Used when the handler is called without the path below it.
   */
  mountPath?: string;
}

/** The HTTP+JSON binding's handler, with a way to end its open streams. */
export interface RestHandler {
  /**
   * Handles one request under the mount path.
   *
   * @param req The request.
   * @param path The path below the mount path (`/tasks/abc`); taken from the URL when absent.
   */
  (req: Request, path?: string): Promise<Response>;
  /** How many SSE streams are open. */
  readonly streams: number;
  /**
   * Ends every open SSE stream with an error event (503 UNAVAILABLE, -31003; the client
   * resubscribes, with `Last-Event-ID`, elsewhere or later) and gives the server a turn to send
   * it.
   */
  close(): Promise<void>;
}

// Boolean fields of the query-string requests: the query carries them as `true` or `false`.
// Numbers need no such step: ProtoJSON accepts an int32 as a string of digits.
const BOOLEAN_QUERY_FIELDS: ReadonlySet<string> = new Set(["includeArtifacts"]);

/** `include_artifacts` → `includeArtifacts`, as protoc derives JSON names. */
function camelCase(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Anything thrown as an A2A error: A2A errors as they are; anything else is logged and becomes
 * a bare -32603 that reveals nothing.
 */
function asA2AError(err: unknown): A2AError {
  if (err instanceof A2AError) return err;
  log.error("Unexpected error in an HTTP+JSON call: {error}", { error: err });
  return new InternalError();
}

/**
 * Reads the request message's fields from the query string (spec 11.5): one value per field,
 * under its JSON or its proto name; `A2A-Version` is a service parameter, not a field.
 */
function queryParams(url: URL): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of url.searchParams) {
    if (isVersionParam(name)) continue;
    if (Object.hasOwn(out, name)) {
      throw new InvalidParamsError(`Invalid params: ${name} is sent more than once`, [
        { field: name, description: "must be sent once" },
      ]);
    }
    if (BOOLEAN_QUERY_FIELDS.has(camelCase(name))) {
      if (value !== "true" && value !== "false") {
        throw new InvalidParamsError(`Invalid params: ${name} must be true or false`, [
          { field: name, description: "must be true or false" },
        ]);
      }
      out[name] = value === "true";
    } else out[name] = value;
  }
  return out;
}

/** Parses a JSON body that must be an object; an empty body is the empty request message. */
function bodyParams(bytes: Uint8Array): Record<string, unknown> {
  if (bytes.byteLength === 0) return {};
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new JSONParseError();
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new InvalidRequestError("The request body must be a JSON object");
  }
  return body as Record<string, unknown>;
}

/**
 * Puts the path's fields into the request message. The path decides: the same field in the
 * body or query string, under either of its names, is dropped.
 */
function withPathFields(
  params: Record<string, unknown>,
  fields: Record<string, string>,
): Record<string, unknown> {
  const out = { ...params };
  for (const [field, value] of Object.entries(fields)) {
    for (const name of Object.keys(out)) if (camelCase(name) === field) delete out[name];
    out[field] = value;
  }
  return out;
}

/**
 * Creates the handler of the HTTP+JSON binding, mounted at `/a2a/rest` by default.
 *
 * The paths and verbs are the proto's `google.api.http` annotations: `POST /message:send`,
 * `POST /message:stream`, `GET /tasks/{id}`, `GET /tasks`, `POST /tasks/{id}:cancel`,
 * `GET` or `POST /tasks/{id}:subscribe`, `POST|GET /tasks/{taskId}/pushNotificationConfigs`,
 * `GET|DELETE /tasks/{taskId}/pushNotificationConfigs/{id}` and `GET /extendedAgentCard`, each
 * also under the proto's `/{tenant}` prefix. GET and DELETE take their fields from the query
 * string (JSON or proto names), POST from a JSON body. Answers are `application/a2a+json`;
 * errors are a `google.rpc.Status` (`{ error: { code, status, message, details } }`) whose HTTP
 * status follows spec section 5.4 and whose `details` carry an ErrorInfo naming the A2A error.
 * The two streaming operations answer `text/event-stream`: each event's `data` is a
 * StreamResponse and its `id` the event's per-task sequence number, which `Last-Event-ID` on
 * SubscribeToTask resumes after; an error after the stream started is an `event: error` whose
 * data is the error body.
 *
 * @param options The request handler, the token check and limits.
 * @returns The handler.
 *
 * @example Answer an HTTP+JSON request without a server
 * ```ts
 * import {
 *   AuthenticationError,
 *   buildAgentCard,
 *   createRestHandler,
 *   demoAgent,
 *   demoAgentCard,
 *   RequestHandler,
 *   TaskManager,
 * } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * const manager = new TaskManager({ executor: demoAgent });
 * const rest = createRestHandler({
 *   handler: new RequestHandler({
 *     manager,
 *     agentCard: buildAgentCard(demoAgentCard, "http://localhost"),
 *   }),
 *   verifyToken: (token) =>
 *     token === "t" ? Promise.resolve({ userId: "alice" }) : Promise.reject(new AuthenticationError()),
 * });
 * const res = await rest(
 *   new Request("http://localhost/a2a/rest/tasks?pageSize=10", {
 *     headers: { authorization: "Bearer t", "a2a-version": "1.0" },
 *   }),
 * );
 * assert.deepEqual((await res.json()).tasks, []);
 * const missing = await rest(
 *   new Request("http://localhost/a2a/rest/tasks/nope", {
 *     headers: { authorization: "Bearer t", "a2a-version": "1.0" },
 *   }),
 * );
 * assert.equal(missing.status, 404);
 * assert.equal((await missing.json()).error.details[0].reason, "TASK_NOT_FOUND");
 * await rest.close();
 * await manager.close();
 * ```
 */
export function createRestHandler(options: RestHandlerOptions): RestHandler {
  const handler = options.handler;
  const versions = options.versions ?? ["1.0"];
  const maxBytes = options.maxBodyBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const mountPath = (options.mountPath ?? "/a2a/rest").replace(/\/+$/, "");
  const extra = options.headers ?? {};
  const streams = new SseStreams({
    keepAliveMs: options.keepAliveMs ?? 15_000,
    maxEventBytes: options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES,
    headers: extra,
  });

  // -32005, as on the JSON-RPC binding: the SDK's client makes it ContentTypeNotSupportedError.
  const unsupported = (type?: string): HttpFailure => ({
    error: new ContentTypeNotSupportedError(
      `Unsupported Content-Type: ${type ?? "(none)"}; use application/a2a+json or application/json`,
    ),
    status: 415,
    headers: { "accept-post": JSON_MEDIA_TYPES.join(", ") },
  });
  const json = (body: unknown, status: number, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { ...extra, ...headers, "content-type": "application/a2a+json" },
    });
  const httpFailure = ({ error, status, headers }: HttpFailure) =>
    json(restErrorBody(asA2AError(error), status), status, headers);
  // An error of the call itself: its status from its code, and `Retry-After` where the client
  // should back off.
  const callFailure = (err: unknown) => {
    const e = asA2AError(err);
    const { status } = restStatusOf(e);
    const headers: Record<string, string> = {};
    if (status === 503) headers["retry-after"] = "5";
    else if (status === 429) {
      headers["retry-after"] = "retryAfterSeconds" in e ? String(e.retryAfterSeconds) : "1";
    }
    return json(restErrorBody(e), status, headers);
  };

  /** The request message: path fields over the body (POST) or the query string. */
  const readParams = async (
    req: Request,
    url: URL,
    match: RouteMatch,
  ): Promise<{ params: Record<string, unknown> } | { failure: HttpFailure }> => {
    if (match.route.source === "query") {
      await req.body?.cancel();
      return { params: withPathFields(queryParams(url), match.fields) };
    }
    const bytes = await readBody(req, maxBytes);
    if (bytes === undefined) {
      const error = new InvalidRequestError(`Request body is larger than ${maxBytes} bytes`);
      return { failure: { error, status: 413, headers: {} } };
    }
    if (bytes.byteLength > 0 && mediaTypeOf(req) === undefined) return { failure: unsupported() };
    return { params: withPathFields(bodyParams(bytes), match.fields) };
  };

  const call = async (req: Request, url: URL, principal: Principal, match: RouteMatch) => {
    const context: CallContext = {
      userId: principal.userId,
      origin: url.origin,
      binding: "rest",
      headers: req.headers,
    };
    const { operation, streaming } = match.route;
    try {
      checkVersion(requestedVersion(req, url), versions);
      handler.requireExtensions(parseExtensions(req.headers.get(HEADERS.extensions)));
      const read = await readParams(req, url, match);
      if ("failure" in read) return httpFailure(read.failure);
      const params = read.params;
      if (!streaming) {
        const result = await UNARY_OPERATIONS.get(operation)!(handler, context, params);
        // An empty answer has no body: the official SDK's client does not read one after DELETE,
        // and a body it leaves unread holds its connection.
        if (result === undefined) return new Response(null, { status: 204, headers: extra });
        return json(result, 200);
      }
      const last = operation === "SubscribeToTask" ? lastEventIdOf(req) : undefined;
      const release = options.admitStream?.(req) ?? (() => {});
      let sub: Subscription;
      try {
        sub = await STREAMING_OPERATIONS.get(operation)!(handler, context, params, last);
      } catch (err) {
        release();
        throw err;
      }
      return streams.open(sub, {
        event: (result) => JSON.stringify(result),
        error: (err) => formatSseErrorEvent(JSON.stringify(restErrorBody(asA2AError(err)))),
      }, release);
    } catch (err) {
      await req.body?.cancel().catch(() => {});
      return callFailure(err);
    }
  };

  // The HTTP layer: shutdown, route, token and media type, each with its status.
  const handle = async (req: Request, below?: string): Promise<Response> => {
    const url = new URL(req.url);
    let path = below ?? url.pathname.slice(mountPath.length);
    if (path.length > 1 && path.endsWith("/")) path = path.slice(0, -1);
    if (options.closing?.()) {
      await req.body?.cancel();
      return httpFailure({
        error: new ServiceUnavailableError("The server is shutting down"),
        status: 503,
        headers: { "retry-after": "5" },
      });
    }
    const found = matchRoute(path, req.method);
    if (!("match" in found)) {
      await req.body?.cancel();
      const shown = path.length > 200 ? `${path.slice(0, 200)}…` : path;
      if ("notFound" in found) {
        const err = new MethodNotFoundError(`${req.method} ${shown}`);
        err.message = `Not found: no HTTP+JSON operation at ${req.method} ${mountPath}${shown}`;
        return httpFailure({ error: err, status: 404, headers: {} });
      }
      const allow = found.methodNotAllowed.join(", ");
      return httpFailure({
        error: new InvalidRequestError(`Method not allowed: ${mountPath}${shown} takes ${allow}`),
        status: 405,
        headers: { allow: `${allow}, OPTIONS` },
      });
    }
    const auth = await authenticateBearer(req, options.verifyToken);
    if ("failure" in auth) {
      await req.body?.cancel();
      return httpFailure(auth.failure);
    }
    // A body must say it is JSON; a POST without one (CancelTask, SubscribeToTask) needs none.
    const type = mediaTypeOf(req);
    if (
      found.match.route.source === "body" && type !== undefined && !JSON_MEDIA_TYPES.includes(type)
    ) {
      await req.body?.cancel();
      return httpFailure(unsupported(type));
    }
    return await call(req, url, auth.principal, found.match);
  };
  return Object.defineProperties(handle as RestHandler, {
    streams: { get: () => streams.size },
    close: { value: (): Promise<void> => streams.close() },
  });
}
