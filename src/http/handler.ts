// The HTTP face of the server: one `(Request) => Promise<Response>` handler that routes the
// agent card, ticket issuing, the capnweb endpoint (WebSocket and HTTP batch) and health.

import { getLogger } from "@logtape/logtape";
import { newHttpBatchRpcResponse, RpcSession, WebSocketTransport } from "capnweb";
import { SessionManager } from "../auth/sessions.ts";
import { PushDispatcher, type PushOptions } from "../push/dispatcher.ts";
import type { TicketStore } from "../auth/ticket_store.ts";
import type { TokenVerifier } from "../auth/tokens.ts";
import { AuthThrottle } from "../auth/throttle.ts";
import {
  A2AError,
  InvalidRequestError,
  QuotaExceededError,
  RateLimitedError,
  ServiceUnavailableError,
} from "../errors/errors.ts";
import { createJsonRpcHandler } from "../jsonrpc/server.ts";
import { JSONRPC_BINDING } from "../jsonrpc/protocol.ts";
import { REST_BINDING } from "../rest/protocol.ts";
import { createRestHandler } from "../rest/server.ts";
import type { JsonBindingOptions } from "../json_http/options.ts";
import { A2AService, redactError, type ServiceContext } from "../rpc/service.ts";
import { guardCapnwebRejections } from "../rpc/rejection_guard.ts";
import { CLOSE_POLICY_VIOLATION, SizeLimitedTransport } from "../rpc/size_limited_transport.ts";
import { ConnectionLimiter } from "./connection_limits.ts";
import { trustedProxyAddress } from "./trusted_proxy.ts";
import { readBody } from "../json_http/body.ts";
import { DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_MESSAGE_BYTES } from "./limits.ts";
import type { AgentExecutor } from "../tasks/executor.ts";
import { type CallContext, RequestHandler } from "../tasks/request_handler.ts";
import type { TaskStore } from "../tasks/store.ts";
import { Inflight } from "../tasks/inflight.ts";
import { TaskManager } from "../tasks/task_manager.ts";
import type { AgentCard, AgentInterface } from "../types/agent_card.ts";
import { AgentCardSchema } from "../types/agent_card.ts";
import { CAPNWEB_BINDING_URI, SUPPORTED_VERSIONS } from "../types/version.ts";
import { accessLogEnabled, type AccessRecord, logRequest } from "../observability/access_log.ts";
import { HandlerMetrics, metricsAllowed, type MetricsOption } from "../observability/metrics.ts";
import { limitOfQuota, OperationInstruments } from "../observability/operations.ts";
import { StoreProbe } from "../observability/readiness.ts";
import { measuredStore } from "../observability/store_metrics.ts";
import { OperationTracer } from "../observability/tracing.ts";
import { InMemoryTaskStore } from "../tasks/store.ts";
import { demoPageRoute, serveClientBundle } from "./assets.ts";
import type { DemoPageOptions } from "../demo/page.ts";

export { CAPNWEB_BINDING_URI, DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_MESSAGE_BYTES };

const log = getLogger(["a2a-capnweb", "http"]);

/** The paths the handler serves. */
export const PATHS = {
  agentCard: "/.well-known/agent-card.json",
  auth: "/a2a/auth",
  capnweb: "/a2a/capnweb",
  jsonrpc: "/a2a/jsonrpc",
  rest: "/a2a/rest",
  health: "/health",
  ready: "/ready",
  metrics: "/metrics",
  clientBundle: "/a2a/client.js",
  demoPage: "/",
} as const;

/** An agent card as the application writes it; the server adds its own interfaces. */
export type AgentCardInput = Omit<AgentCard, "supportedInterfaces"> & {
  /** Extra interfaces, listed after the ones this server serves. */
  supportedInterfaces?: AgentInterface[];
};

/** Limits that protect the server from clients. */
export interface ServerLimits {
  /**
   * Largest message accepted, in bytes (default 4 MiB, {@linkcode DEFAULT_MAX_MESSAGE_BYTES}):
   * one capnweb WebSocket message (over it, that call alone fails with -32600 and the session
   * goes on), an HTTP batch body or a JSON-RPC body (over it, HTTP 413 with -32600). Deno's
   * WebSocket drops a connection whose frame is over 64 MiB before the server sees it.
   */
  maxMessageBytes?: number;
  /**
   * Largest single message the server sends, in bytes (default 64 MiB,
   * {@linkcode DEFAULT_MAX_EVENT_BYTES}, which this module's clients accept): one JSON-RPC SSE
   * event's data, or one capnweb WebSocket message. Over it, a call fails with -32603 and a
   * stream ends with a -32603 error event naming the limit.
   */
  maxEventBytes?: number;
  /** Seconds without a pong before a WebSocket is closed (default 30; 0 turns it off). */
  idleTimeoutSeconds?: number;
  /**
   * Milliseconds a capnweb WebSocket may stay open without a successful `authenticate` (default
   * 10 000; 0 turns it off); then it is closed with code 1008 and a reason saying so.
   */
  authTimeoutMs?: number;
  /** Events that may wait for one stream subscriber before it is ended (default 1024). */
  subscriberBufferLimit?: number;
  /**
   * Bytes of events (their JSON, UTF-8) that may wait for one stream subscriber before it is
   * ended with StreamOverflowError (-31002) (default 8 MiB); one event always fits.
   */
  subscriberBufferBytes?: number;
  /** Sink calls in flight per stream (default 32). */
  streamWindow?: number;
  /**
   * Events unacknowledged per stream, for clients that take batches (default 32 ×
   * `streamWindow`, 1024): the credit that lets a slow consumer slow the producer.
   */
  streamCredit?: number;
  /** Lifetime of a ticket from `POST /a2a/auth`, in milliseconds (default 30 000). */
  ticketTtlMs?: number;
  /** Unused tickets one user may hold; a new one drops that user's oldest (default 100). */
  maxTicketsPerUser?: number;
  /**
   * Tasks one user may have that have not ended (default 100); past it a new task gets
   * QuotaExceededError (-31005, HTTP 429 on JSON-RPC).
   */
  maxUnfinishedTasksPerUser?: number;
  /** Streams one user may have open on all bindings together (default 100; then -31005). */
  maxStreamsPerUser?: number;
  /**
   * Milliseconds of silence after which a JSON-RPC SSE stream gets a keep-alive comment
   * (default 15 000; 0 turns it off).
   */
  sseKeepAliveMs?: number;
  /**
   * Long-lived connections (WebSockets and SSE streams) open at once in all (default 10 000);
   * one more gets HTTP 503 with ServiceUnavailableError (-31003).
   */
  maxConnections?: number;
  /**
   * Long-lived connections open at once from one client address (default 256); one more gets
   * HTTP 429 with QuotaExceededError (-31005).
   */
  maxConnectionsPerAddress?: number;
  /**
   * Calls one capnweb connection may have outstanding at once (default 256); one more fails
   * alone with QuotaExceededError (-31005).
   */
  maxCallsInFlight?: number;
  /**
   * Before `authenticate` succeeds, calls outstanding at once on a capnweb connection (default
   * 16); one more closes it with code 1008.
   */
  preAuthMaxCalls?: number;
  /** Before `authenticate`, capabilities a capnweb client may pass in all (default 16; then 1008). */
  preAuthMaxImports?: number;
  /** Before `authenticate`, bytes a capnweb client may send in all (default 1 MiB; then 1008). */
  preAuthMaxBytes?: number;
  /**
   * Failed authentication attempts one client address may make in a burst, over tickets,
   * JSON-RPC and `authenticate` together (default 10); then every attempt from it is refused with
   * RateLimitedError (-31006, HTTP 429 with `Retry-After`) until it earns attempts back.
   */
  authFailureBurst?: number;
  /** Failed attempts per minute an address earns back after its burst (default 30). */
  authFailuresPerMinute?: number;
  /**
   * Failed `authenticate` calls one capnweb connection may make (default 3); the connection is
   * then closed with code 1008.
   */
  maxAuthFailuresPerSocket?: number;
}

/** What the server knows of the connection a request came on (Deno.serve's handler info). */
export interface ConnectionInfo {
  /** The peer's address: `hostname` for TCP. */
  readonly remoteAddr?: { readonly transport?: string; readonly hostname?: string };
}

/** Options of createHandler and serve. */
export interface HandlerOptions {
  /** The agent card; the server fills in the interfaces it serves. */
  agentCard: AgentCardInput;
  /** The agent logic. */
  executor: AgentExecutor;
  /**
   * Checks bearer tokens. Without one the agent is open: every caller acts as one anonymous user
   * (`anonymousUserId`), no credential is needed on any binding, and the card declares no
   * security requirement (so the application's card must not declare one either). With one, a
   * card that declares no `securitySchemes` or `securityRequirements` gets the bearer scheme the
   * server enforces.
   */
  verifier?: TokenVerifier;
  /**
   * The user id every caller of an open agent acts as (default `"anonymous"`): its tasks, push
   * configs and per-user quotas are shared by all callers. Only without a verifier.
   */
  anonymousUserId?: string;
  /**
   * A path prefix, e.g. `/agents/echo`, under which every endpoint is served (the card at
   * `/agents/echo/.well-known/agent-card.json`, capnweb at `/agents/echo/a2a/capnweb`, ...); the
   * card's interface URLs include it. Requests outside it get 404: the root of the domain, its
   * own `/.well-known/agent-card.json` included, is left to whatever else is mounted there.
   */
  basePath?: string;
  /** Where tasks live (in memory when absent). */
  store?: TaskStore;
  /**
   * Where unused tickets live, when several server processes accept each other's tickets
   * (`PostgresTaskStore.tickets`); in this process's memory when absent.
   */
  tickets?: TicketStore;
  /**
   * The card for authenticated users (`GetExtendedAgentCard`), or a function of the user's id
   * that returns it; the server fills in the interfaces as for the public card.
   */
  extendedAgentCard?:
    | AgentCardInput
    | ((userId: string) => AgentCardInput | Promise<AgentCardInput>);
  /**
   * The public base URL (e.g. `https://agent.example.com`) to advertise in the agent card.
   * When absent, the card follows the origin each request came to.
   */
  publicUrl?: string;
  /** Limits. */
  limits?: ServerLimits;
  /**
   * Push notification delivery and where webhooks may point (used when the card declares
   * `capabilities.pushNotifications`). By default webhooks may reach public addresses only.
   */
  push?: PushOptions;
  /**
   * The browser origins that may call the server: `"*"` (the default) or a list of exact
   * origins such as `https://app.example.com` (`"*"` in the list also allows every origin).
   * A request without an `Origin` header (Deno, Node, curl, SDKs) and a request from the
   * server's own origin (the request URL's, or `publicUrl`'s) are always allowed. A disallowed
   * origin gets HTTP 403 on a WebSocket upgrade, a CORS preflight or any other non-GET request,
   * and no CORS headers on GET and HEAD. Authentication never rests on this: requests carry a
   * bearer token or ticket, never cookies, so the check is defence in depth against a page
   * that got hold of a ticket.
   */
  allowedOrigins?: "*" | readonly string[];
  /**
   * The client's address, which the per-address limits (connections, failed logins) count by.
   * Default: the socket's peer address from `info` (Deno.serve's second handler argument); a
   * request without one is counted in the totals only and is never throttled. Behind a reverse
   * proxy every request comes from the proxy: return the client's address here from a header
   * the proxy sets, and only when the request comes from that proxy (`trustedProxies` does
   * that).
   */
  clientAddress?: (request: Request, info: ConnectionInfo | undefined) => string | undefined;
  /**
   * The reverse proxies in front, as addresses or CIDR ranges (`["10.0.0.0/8", "::1"]`): a
   * request whose socket peer is one of them is counted by the client address in its
   * `X-Forwarded-For` (the right-most hop that is not a trusted proxy); any other request by its
   * peer address, whatever headers it sends. Shorthand for
   * `clientAddress: trustedProxyAddress(trustedProxies)`; ignored when `clientAddress` is given.
   */
  trustedProxies?: readonly string[];
  /**
   * `GET /metrics` in the Prometheus text format: `false` (the default) serves no metrics and
   * counts nothing; `true` serves them to anyone; `{ token }` serves them only to requests with
   * `Authorization: Bearer <token>` (others get 401). On a public deployment use a token, or
   * keep the path off the public network: the counts show traffic, users' failures and limits.
   */
  metrics?: MetricsOption;
  /**
   * One span per A2A operation through `@opentelemetry/api` (default `true`): a no-op until the
   * application registers an OpenTelemetry SDK. The span's parent is the request's W3C
   * `traceparent` on JSON-RPC and HTTP+JSON; the executor gets its context as
   * `RequestContext.traceContext`.
   */
  tracing?: boolean;
  /**
   * An info line per HTTP request and per capnweb operation under the LogTape category
   * `["a2a-capnweb", "access"]` (default `true`; silent until the application configures a sink
   * for it). Lines carry the method, path or operation, user id, task id, result code and
   * duration, never a header, query string, token or ticket.
   */
  accessLog?: boolean;
  /**
   * The demo page at `GET /` (under `basePath`), a small browser UI on the bundled client:
   * `true`, or `{ token }` to fill in a token for the visitor (only a documented demo token,
   * since anyone who loads the page reads it). Default `false`: `/` is then 404. For servers that
   * run the demo agent; `server.ts` turns it on. The bundle itself, `GET /a2a/client.js`, is
   * always served.
   */
  demoPage?: boolean | DemoPageOptions;
}

/** Live counts, for monitoring and for tests that check nothing leaks. */
export interface HandlerStats {
  /** Open capnweb sessions (WebSocket connections and batches in progress). */
  sessions: number;
  /** Capabilities and streams the sessions hold. */
  resources: number;
  /** Open WebSocket connections. */
  sockets: number;
  /** Open long-lived connections counted against the connection limits (WebSockets, SSE). */
  connections: number;
  /** Tasks executing or subscribed to. */
  activeTasks: number;
  /** Open stream subscriptions. */
  subscribers: number;
  /** Streams ended since the start because their consumer fell behind (-31002). */
  overflows: number;
  /** Push notification events waiting for delivery. */
  pushPending: number;
  /**
   * Stubs the WebSocket sessions hold of their clients' objects (capnweb imports: the client's
   * root, sinks and push callbacks the server keeps, results not yet released).
   */
  rpcImports: number;
  /** Objects of the server the WebSocket sessions export (the root, capabilities, handles). */
  rpcExports: number;
}

/** The capnweb import and export counts summed over sessions. */
function stubCounts(
  sessions: Iterable<{ getStats(): { imports: number; exports: number } }>,
): { rpcImports: number; rpcExports: number } {
  let rpcImports = 0;
  let rpcExports = 0;
  for (const s of sessions) {
    const { imports, exports } = s.getStats();
    rpcImports += imports;
    rpcExports += exports;
  }
  return { rpcImports, rpcExports };
}

/** The request handler, with access to its parts and a way to shut it down. */
export interface A2AHandler {
  /**
   * Handles one HTTP request.
   *
   * @param request The request.
   * @param info The connection it came on (Deno.serve passes it), for the client's address.
   */
  (request: Request, info?: ConnectionInfo): Promise<Response>;
  /** The task core. */
  readonly manager: TaskManager;
  /** The ticket and session manager. */
  readonly sessions: SessionManager;
  /** The request handler shared by the bindings. */
  readonly requestHandler: RequestHandler;
  /** The push notification dispatcher, when the card declares push notifications. */
  readonly push: PushDispatcher | undefined;
  /** Live counts. */
  stats(): HandlerStats;
  /**
   * Shuts down gracefully: refuses new work, lets calls in progress finish up to a deadline,
   * stops the task core (running tasks end FAILED; streams of paused tasks end with
   * ServiceUnavailableError so clients resume elsewhere), then closes every WebSocket with code
   * 1001 and releases every session.
   *
   * @param reason The close reason sent to clients.
   * @param options `deadlineMs`: how long calls in progress may take (default 10 000).
   */
  close(reason?: string, options?: { deadlineMs?: number }): Promise<void>;
}

// Sent on the responses to allowed cross-origin requests; `access-control-allow-origin` is set
// per request by the origin policy (see `applyCors`).
const CORS_HEADERS = {
  "access-control-allow-methods": "GET, POST, DELETE, OPTIONS",
  "access-control-allow-headers":
    "authorization, content-type, a2a-version, a2a-extensions, last-event-id",
  "access-control-max-age": "86400",
  "access-control-expose-headers": "www-authenticate",
};

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return Response.json(body, { status, headers: { ...CORS_HEADERS, ...headers } });
}

/**
 * An error answer: `{ error: { status, message } }`, and with an A2A error also its `code` and
 * `data`, as in a JSON-RPC error object, so that a client can rebuild the error class.
 */
function httpError(
  status: number,
  error: string | A2AError,
  headers: Record<string, string> = {},
): Response {
  if (typeof error === "string") {
    return json({ error: { status, message: error } }, status, headers);
  }
  const { code, message, data } = error;
  return json({ error: { status, code, message, data } }, status, headers);
}

/** The checked form of `allowedOrigins`: `"*"` or the set of exact origins. */
type OriginPolicy = "*" | ReadonlySet<string>;

function originPolicyOf(allowed: HandlerOptions["allowedOrigins"]): OriginPolicy {
  if (allowed === undefined || allowed === "*") return "*";
  if (typeof allowed === "string" || !Array.isArray(allowed)) {
    throw new TypeError(`Invalid allowedOrigins: expected "*" or a list of origins`);
  }
  const set = new Set<string>();
  for (const entry of allowed) {
    if (entry === "*") return "*";
    let origin: string | undefined;
    try {
      origin = new URL(entry).origin;
    } catch {
      // reported below
    }
    // An entry must be exactly an origin: scheme, host and port, no path, no "null".
    if (origin === undefined || origin === "null" || origin !== entry.replace(/\/$/, "")) {
      throw new TypeError(`Invalid allowed origin: ${entry}`);
    }
    set.add(origin);
  }
  return set;
}

/**
 * Sets the CORS headers of a response: the static ones and `access-control-allow-origin` when
 * `allowOrigin` is given (`*`, or the request's origin echoed), none of them otherwise.
 * `vary` adds `Vary: Origin`, for a policy under which the answer depends on the origin.
 */
function applyCors(res: Response, allowOrigin: string | undefined, vary: boolean): Response {
  // A WebSocket upgrade answer must go back as it is.
  if (res.status === 101) return res;
  const set = (headers: Headers) => {
    for (const key of [...headers.keys()]) {
      if (key.startsWith("access-control-")) headers.delete(key);
    }
    if (vary) headers.append("vary", "Origin");
    if (allowOrigin === undefined) return;
    for (const [k, v] of Object.entries(CORS_HEADERS)) headers.set(k, v);
    headers.set("access-control-allow-origin", allowOrigin);
  };
  try {
    set(res.headers);
    return res;
  } catch {
    // Immutable headers (a response made by fetch): copy them.
    const headers = new Headers(res.headers);
    set(headers);
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
  }
}

async function sha256Hex(text: string): Promise<string> {
  const bytes = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Builds the agent card for one origin: the capnweb interface first, then the JSON-RPC one, then
 * the HTTP+JSON one, then whatever the application listed.
 *
 * @param input The application's card.
 * @param origin The base URL clients reach the server at, with the base path if there is one
 *   (`https://agent.example.com/agents/echo`).
 * @returns The full card.
 */
export function buildAgentCard(input: AgentCardInput, origin: string): AgentCard {
  const base = origin.replace(/\/+$/, "");
  const own: AgentInterface[] = [
    { url: base + PATHS.capnweb, protocolBinding: CAPNWEB_BINDING_URI, protocolVersion: "1.0" },
    { url: base + PATHS.jsonrpc, protocolBinding: JSONRPC_BINDING, protocolVersion: "1.0" },
    { url: base + PATHS.rest, protocolBinding: REST_BINDING, protocolVersion: "1.0" },
  ];
  return { ...input, supportedInterfaces: [...own, ...input.supportedInterfaces ?? []] };
}

/** The bearer scheme the server declares for the verifier it enforces. */
const BEARER_SCHEME = "bearer";

/**
 * The card with the truth about authentication: with a verifier, the bearer scheme the server
 * enforces when the application declared no scheme or requirement of its own (one that did, an
 * OAuth 2.0 flow that issues those bearer tokens say, knows better); without one, the card as it
 * is, after checking that it demands nothing that an open agent would not ask for.
 */
function withSecurity(input: AgentCardInput, open: boolean, what: string): AgentCardInput {
  const declares = (list: unknown[] | undefined) => list !== undefined && list.length > 0;
  if (open) {
    const skill = input.skills.find((s) => declares(s.securityRequirements));
    if (declares(input.securityRequirements) || skill) {
      throw new TypeError(
        `Invalid ${what}: it declares securityRequirements${
          skill ? ` (skill ${skill.id})` : ""
        } but no verifier enforces them; pass a verifier, or remove them for an open agent`,
      );
    }
    return input;
  }
  if (
    declares(input.securityRequirements) ||
    Object.keys(input.securitySchemes ?? {}).length > 0
  ) {
    return input;
  }
  return {
    ...input,
    securitySchemes: {
      [BEARER_SCHEME]: {
        httpAuthSecurityScheme: {
          scheme: "Bearer",
          // Not the paths: they move with basePath, and the binding documents them.
          description: "A bearer token in the Authorization header; on capnweb, the token or a " +
            "one-time ticket from the a2a/auth endpoint, passed to authenticate()",
        },
      },
    },
    securityRequirements: [{ schemes: { [BEARER_SCHEME]: { list: [] } } }],
  };
}

/** `basePath` checked and normalised: `""` for none, else `/a` or `/a/b`, no trailing slash. */
function basePathOf(path: string | undefined): string {
  if (path === undefined) return "";
  const trimmed = typeof path === "string" ? path.replace(/\/+$/, "") : undefined;
  if (trimmed === "") return "";
  // Segments of URL path characters that need no percent-encoding, so that the prefix compares
  // equal to the request URL's pathname; no "." or ".." segments.
  if (
    trimmed === undefined || !/^(\/[A-Za-z0-9._~!$&'()*+,;=:@-]+)+$/.test(trimmed) ||
    trimmed.split("/").some((segment) => segment === "." || segment === "..")
  ) {
    throw new TypeError(`Invalid basePath: expected a path such as /agents/echo, got "${path}"`);
  }
  return trimmed;
}

/** An HTTP date (RFC 9110 IMF-fixdate) as milliseconds, or undefined when it is not one. */
function httpDate(value: string | null): number | undefined {
  if (value === null) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * Creates the server's request handler: a plain `(Request) => Promise<Response>` that works
 * with `Deno.serve` or any framework that speaks Request and Response.
 *
 * @param options The agent card, executor, token verifier, store and limits.
 * @returns The handler.
 *
 * @example Serve an agent with Deno.serve
 * ```ts
 * import { createHandler, StaticTokenVerifier } from "@a2a-capnweb/core";
 *
 * const handler = createHandler({
 *   agentCard: {
 *     name: "Echo",
 *     description: "Echoes what you say",
 *     version: "1.0.0",
 *     capabilities: { streaming: true },
 *     defaultInputModes: ["text/plain"],
 *     defaultOutputModes: ["text/plain"],
 *     skills: [],
 *   },
 *   executor: { async execute(_ctx, events) { await events.status("TASK_STATE_COMPLETED"); } },
 *   verifier: StaticTokenVerifier.fromList("alice=token-alice"),
 * });
 * const res = await handler(new Request("http://localhost/health"));
 * console.log(res.status); // 200
 * await res.body?.cancel();
 * await handler.close();
 * ```
 */
export function createHandler(options: HandlerOptions): A2AHandler {
  guardCapnwebRejections();
  const limits = options.limits ?? {};
  const maxBytes = limits.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const maxEventBytes = limits.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
  const idleTimeout = limits.idleTimeoutSeconds ?? 30;
  const authTimeoutMs = limits.authTimeoutMs ?? 10_000;
  const originPolicy = originPolicyOf(options.allowedOrigins);
  const ownOrigin = options.publicUrl !== undefined ? new URL(options.publicUrl).origin : undefined;
  /** Whether a request's `Origin` (null when absent) may call the server. */
  const originAllowed = (origin: string | null, req: Request): boolean =>
    origin === null || originPolicy === "*" || originPolicy.has(origin) ||
    origin === ownOrigin || origin === new URL(req.url).origin;
  const open = options.verifier === undefined;
  const basePath = basePathOf(options.basePath);
  const demoPage = options.demoPage
    ? demoPageRoute(basePath, options.demoPage === true ? {} : options.demoPage)
    : undefined;
  const agentCard = withSecurity(options.agentCard, open, "agent card");
  const extendedCard = options.extendedAgentCard;
  if (extendedCard !== undefined && typeof extendedCard !== "function") {
    withSecurity(extendedCard, open, "extended agent card");
  }
  /** The card for clients that reach the server's root at `root` (an origin or `publicUrl`). */
  const cardAt = (input: AgentCardInput, root: string, what = "agent card") =>
    buildAgentCard(withSecurity(input, open, what), root.replace(/\/+$/, "") + basePath);
  // Validate the application's card once, with a placeholder origin, so mistakes show at start.
  const checked = AgentCardSchema.safeParse(cardAt(agentCard, "http://localhost"));
  if (!checked.success) {
    throw new TypeError(
      `Invalid agent card: ${
        checked.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")
      }`,
    );
  }
  const metricsOption = options.metrics ?? false;
  if (
    metricsOption !== false && metricsOption !== true &&
    (typeof metricsOption?.token !== "string" || metricsOption.token === "")
  ) {
    throw new TypeError("Invalid metrics: expected false, true or { token } with a token");
  }
  // Filled in below: the gauges read them only when scraped.
  const counts = { batches: 0, jsonrpc: 0, rest: 0 };
  const metrics: HandlerMetrics | undefined = metricsOption === false
    ? undefined
    : new HandlerMetrics({
      sockets: () => sockets.size,
      batches: () => counts.batches,
      sessions: () => sessions.sessionCount,
      sseStreams: (binding) => counts[binding],
      activeTasks: () => manager.activeCount,
      subscriptions: () => manager.subscriberCount,
      overflows: () => manager.overflowCount,
      pushPending: () => push?.pendingCount ?? 0,
    });
  const store = options.store ?? new InMemoryTaskStore();
  const probe = new StoreProbe(store);
  const manager: TaskManager = new TaskManager({
    executor: options.executor,
    store: metrics === undefined ? store : measuredStore(store, metrics),
    ...(limits.subscriberBufferLimit !== undefined &&
      { subscriberBufferLimit: limits.subscriberBufferLimit }),
    ...(limits.subscriberBufferBytes !== undefined &&
      { subscriberBufferBytes: limits.subscriberBufferBytes }),
    ...(limits.maxUnfinishedTasksPerUser !== undefined &&
      { maxUnfinishedTasksPerUser: limits.maxUnfinishedTasksPerUser }),
    ...(limits.maxStreamsPerUser !== undefined && { maxStreamsPerUser: limits.maxStreamsPerUser }),
  });
  const sessions = new SessionManager({
    ...(options.verifier && { verifier: options.verifier }),
    ...(options.anonymousUserId !== undefined && { anonymousUserId: options.anonymousUserId }),
    ...(options.tickets && { tickets: options.tickets }),
    throttle: new AuthThrottle({
      ...(limits.authFailureBurst !== undefined && { burst: limits.authFailureBurst }),
      ...(limits.authFailuresPerMinute !== undefined &&
        { perMinute: limits.authFailuresPerMinute }),
    }),
    ...(limits.ticketTtlMs !== undefined && { ticketTtlMs: limits.ticketTtlMs }),
    ...(limits.maxTicketsPerUser !== undefined && { maxTicketsPerUser: limits.maxTicketsPerUser }),
  });
  if (open) {
    log.warn("No token verifier: serving an open agent, every caller acts as {userId}", {
      userId: sessions.anonymous!.userId,
    });
  }
  // The public card's content is fixed from here on (only the origin in its URLs varies), so its
  // Last-Modified is this moment, in whole seconds as HTTP dates have them: the same for every
  // origin, and for a card evicted from the cache and built again.
  const cardModified = Math.floor(Date.now() / 1000) * 1000;
  const cards = new Map<string, { card: AgentCard; body: string; etag: string }>();
  const cardFor = async (origin: string) => {
    const key = options.publicUrl ?? origin;
    let entry = cards.get(key);
    if (!entry) {
      const card = cardAt(agentCard, key);
      const body = JSON.stringify(card);
      entry = { card, body, etag: `"${(await sha256Hex(body)).slice(0, 32)}"` };
      if (cards.size >= 64) cards.delete(cards.keys().next().value!);
      cards.set(key, entry);
    }
    return entry;
  };
  const push = options.agentCard.capabilities.pushNotifications === true
    ? new PushDispatcher(
      manager,
      options.push,
      metrics && { outcome: (kind, outcome) => metrics.push(kind, outcome) },
    )
    : undefined;
  if (metrics !== undefined) {
    manager.onEvent((_owner, event) => {
      const state = event.statusUpdate?.status.state ?? event.task?.status.state;
      if (state !== undefined) metrics.taskState(state);
    });
  }
  const accessLog = options.accessLog ?? true;
  // Each HTTP request's access record, by its headers object, which the HTTP bindings hand the
  // core as `CallContext.headers`: the operation inside fills in the request's line.
  const records = new WeakMap<object, AccessRecord>();
  const tracer = options.tracing === false ? undefined : new OperationTracer();
  const observer = metrics === undefined && !accessLog && tracer === undefined
    ? undefined
    : new OperationInstruments({
      ...(metrics && { metrics }),
      ...(tracer && { tracer }),
      accessLog,
      records,
    });
  const requestHandler = new RequestHandler({
    manager,
    ...(push && { push }),
    ...(observer && { observer }),
    agentCard: cardAt(agentCard, options.publicUrl ?? "http://localhost"),
    ...(extendedCard !== undefined && {
      extendedAgentCard: async (call: CallContext) => {
        const input = typeof extendedCard === "function"
          ? await extendedCard(call.userId)
          : extendedCard;
        return cardAt(
          input,
          options.publicUrl ?? call.origin ?? "http://localhost",
          "extended agent card",
        );
      },
    }),
  });
  const sockets = new Set<WebSocket>();
  const connections = new ConnectionLimiter({
    ...(limits.maxConnections !== undefined && { maxConnections: limits.maxConnections }),
    ...(limits.maxConnectionsPerAddress !== undefined &&
      { maxPerAddress: limits.maxConnectionsPerAddress }),
  });
  const maxAuthFailures = limits.maxAuthFailuresPerSocket ?? 3;
  const clientAddress = options.clientAddress ??
    (options.trustedProxies !== undefined
      ? trustedProxyAddress(options.trustedProxies)
      : (_req: Request, info: ConnectionInfo | undefined) => info?.remoteAddr?.hostname);
  // Each request's client address, set once as it arrives.
  const addresses = new WeakMap<Request, string>();
  let closing = false;
  // The capnweb streams still delivering: a shutdown waits for their last calls.
  const streams = new Inflight();
  // Each WebSocket's capnweb session, for the stub counts in `stats()`.
  const rpcSessions = new Set<RpcSession>();
  const rpcOptions = {
    onSendError: (err: Error) => redactError(err),
    // capnweb aborts the whole session over this (counted in UTF-16 code units, never more than
    // the bytes); SizeLimitedTransport refuses oversized messages one by one before it sees them.
    limits: { maxMessageSize: maxBytes },
  };

  const serviceFor = async (
    req: Request,
    transport: "websocket" | "batch",
    auth: Pick<ServiceContext, "onAuthFailure" | "authBlocked" | "onAuthenticated"> = {},
  ) => {
    const session = sessions.open();
    const address = addresses.get(req);
    const origin = new URL(req.url).origin;
    const { card } = await cardFor(origin);
    const service = new A2AService({
      origin,
      handler: requestHandler,
      sessions,
      session,
      agentCard: () => card,
      transport,
      streams,
      ...(limits.streamWindow !== undefined && { streamWindow: limits.streamWindow }),
      ...(limits.streamCredit !== undefined && { streamCredit: limits.streamCredit }),
      // A batch must fit in one message to the client, with room for its framing.
      maxBatchBytes: Math.max(1, Math.min(1024 * 1024, Math.floor(maxEventBytes / 4))),
      ...(address !== undefined && { address }),
      ...auth,
    });
    return { session, service };
  };

  /** Counts a refusal by a limit, when metrics are on. */
  const countLimit = (err: unknown) => {
    if (metrics === undefined) return;
    if (err instanceof RateLimitedError) metrics.limitHit("auth_failures_per_address");
    else if (err instanceof QuotaExceededError) metrics.limitHit(limitOfQuota(err.message));
    else if (err instanceof ServiceUnavailableError) metrics.limitHit("connections");
  };
  /** Counts a failed authentication on one binding, when metrics are on. */
  const countAuthFailure = (binding: string, err: unknown) => {
    if (metrics === undefined) return;
    if (err instanceof RateLimitedError) {
      metrics.authFailure(binding, "rate_limited");
      metrics.limitHit("auth_failures_per_address");
    } else if (err instanceof A2AError && err.message.startsWith("Missing")) {
      metrics.authFailure(binding, "missing_credentials");
    } else if (err instanceof A2AError && !(err instanceof ServiceUnavailableError)) {
      metrics.authFailure(binding, "invalid_credentials");
    }
  };
  /** A connection-limiter slot for an SSE stream of one binding, counted by binding. */
  const admitStream = (binding: "jsonrpc" | "rest", req: Request): () => void => {
    let release: () => void;
    try {
      release = connections.admit(addresses.get(req));
    } catch (err) {
      countLimit(err);
      throw err;
    }
    counts[binding]++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      counts[binding]--;
      release();
    };
  };
  /** Checks a bearer token of an HTTP binding, counting a failure. */
  const verifyToken = async (binding: string, token: string | undefined, req: Request) => {
    try {
      return await sessions.verifyToken(token, addresses.get(req));
    } catch (err) {
      countAuthFailure(binding, err);
      throw err;
    }
  };

  /** The answer to a request refused by a limit: 429 or 503, with `Retry-After`. */
  const refusal = (err: unknown): Response => {
    countLimit(err);
    if (err instanceof RateLimitedError) {
      return httpError(429, err, { "retry-after": String(err.retryAfterSeconds) });
    }
    if (err instanceof QuotaExceededError) return httpError(429, err, { "retry-after": "1" });
    if (err instanceof ServiceUnavailableError) return httpError(503, err, { "retry-after": "5" });
    throw err;
  };

  const handleCapnweb = async (req: Request): Promise<Response> => {
    if (closing) return httpError(503, "Server is shutting down");
    if (req.headers.get("upgrade")?.toLowerCase() === "websocket") {
      let release: () => void;
      try {
        release = connections.admit(addresses.get(req));
      } catch (err) {
        return refusal(err);
      }
      const { socket, response } = Deno.upgradeWebSocket(req, { idleTimeout });
      const closeSocket = (code: number, reason: string) => {
        try {
          socket.close(code, reason);
        } catch {
          // already closing
        }
      };
      // A few failed logins end the connection: guessing then costs a new socket each time. The
      // close waits a moment, so the refusal of the last attempt reaches the client first.
      let failures = 0;
      let failTimer: ReturnType<typeof setTimeout> | undefined;
      const onAuthFailure = (err: Error) => {
        countAuthFailure("capnweb", err);
        if (++failures < maxAuthFailures || failTimer !== undefined) return;
        metrics?.limitHit("auth_failures_per_socket");
        failTimer = setTimeout(
          () => closeSocket(CLOSE_POLICY_VIOLATION, "Too many failed authentication attempts"),
          50,
        );
      };
      let authTimer: ReturnType<typeof setTimeout> | undefined;
      const { session, service } = await serviceFor(req, "websocket", {
        onAuthFailure,
        authBlocked: () => failures >= maxAuthFailures,
        // The deadline is for sockets that never authenticate: one that did holds no timer.
        onAuthenticated: () => {
          clearTimeout(authTimer);
          authTimer = undefined;
        },
      });
      sockets.add(socket);
      // A socket that never authenticates holds a session for nothing: it gets a deadline.
      authTimer = authTimeoutMs > 0 && !session.principal
        ? setTimeout(() => {
          if (session.principal) return;
          log.debug("Closing a WebSocket that did not authenticate in time");
          try {
            socket.close(1008, `Not authenticated within ${authTimeoutMs} ms`);
          } catch {
            // already closing
          }
        }, authTimeoutMs)
        : undefined;
      socket.addEventListener("close", () => {
        clearTimeout(authTimer);
        clearTimeout(failTimer);
        sockets.delete(socket);
        release();
        session.close();
      });
      const transport = new SizeLimitedTransport(new WebSocketTransport(socket), {
        maxIncomingBytes: maxBytes,
        maxOutgoingBytes: maxEventBytes,
        close: closeSocket,
        maxCallsInFlight: limits.maxCallsInFlight ?? 256,
        preAuth: {
          authenticated: () => session.principal !== undefined,
          ...(limits.preAuthMaxCalls !== undefined && { maxCalls: limits.preAuthMaxCalls }),
          ...(limits.preAuthMaxImports !== undefined && { maxImports: limits.preAuthMaxImports }),
          ...(limits.preAuthMaxBytes !== undefined && { maxBytes: limits.preAuthMaxBytes }),
        },
      });
      const rpc = new RpcSession(transport, service, rpcOptions);
      rpcSessions.add(rpc);
      socket.addEventListener("close", () => rpcSessions.delete(rpc));
      return response;
    }
    if (req.method === "POST") {
      // Read the body here, with the limit, so that a chunked body cannot grow without bound.
      const body = await readBody(req, maxBytes);
      if (body === undefined) {
        return httpError(
          413,
          new InvalidRequestError(`Request body is larger than ${maxBytes} bytes`),
        );
      }
      const { session, service } = await serviceFor(req, "batch");
      counts.batches++;
      try {
        const batch = new Request(req.url, { method: "POST", headers: req.headers, body });
        const res = await newHttpBatchRpcResponse(batch, service, rpcOptions);
        const headers = new Headers(res.headers);
        for (const [k, v] of Object.entries(CORS_HEADERS)) headers.set(k, v);
        return new Response(res.body, { status: res.status, headers });
      } finally {
        counts.batches--;
        session.close();
      }
    }
    return httpError(405, "Use a WebSocket upgrade or POST an HTTP batch", {
      allow: "GET, POST, OPTIONS",
    });
  };

  // What the two JSON bindings share: one request handler, one token check, the same limits.
  const jsonBinding: JsonBindingOptions = {
    handler: requestHandler,
    verifyToken: (token, req) => sessions.verifyToken(token, addresses.get(req)),
    admitStream: (req) => connections.admit(addresses.get(req)),
    versions: SUPPORTED_VERSIONS,
    maxBodyBytes: maxBytes,
    maxEventBytes,
    ...(limits.sseKeepAliveMs !== undefined && { keepAliveMs: limits.sseKeepAliveMs }),
    headers: CORS_HEADERS,
    closing: () => closing,
  };
  const handleJsonRpc = createJsonRpcHandler({
    ...jsonBinding,
    verifyToken: (token, req) => verifyToken("jsonrpc", token, req),
    admitStream: (req) => admitStream("jsonrpc", req),
  });
  // For its messages: the routes come from the path below it, with the basePath already off.
  const handleRest = createRestHandler({
    ...jsonBinding,
    mountPath: basePath + PATHS.rest,
    verifyToken: (token, req) => verifyToken("rest", token, req),
    admitStream: (req) => admitStream("rest", req),
  });

  const handleAuth = async (req: Request): Promise<Response> => {
    if (req.method !== "POST") return httpError(405, "Use POST", { allow: "POST, OPTIONS" });
    if (open) {
      // Nothing to exchange: every caller is the anonymous user, and its tickets, all one user's,
      // would be a bound any caller could use up. A client that gets 404 sends `authenticate`
      // its token instead (docs/BINDING.md section 7), which an open agent ignores.
      await req.body?.cancel();
      return httpError(
        404,
        "Not found: this agent is open and issues no tickets; call authenticate({}) without credentials",
      );
    }
    const header = req.headers.get("authorization") ?? "";
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const challenge = { "www-authenticate": 'Bearer realm="a2a"' };
    if (!match) {
      metrics?.authFailure("ticket", "missing_credentials");
      return httpError(401, "Missing bearer token", challenge);
    }
    try {
      const ticket = await sessions.issueTicket(match[1]!, addresses.get(req));
      return json(ticket, 200, { "cache-control": "no-store" });
    } catch (err) {
      countAuthFailure("ticket", err);
      if (err instanceof ServiceUnavailableError) {
        return httpError(503, err.message, { "retry-after": "5" });
      }
      if (err instanceof RateLimitedError) return refusal(err);
      if (err instanceof A2AError) {
        return httpError(401, err.message, {
          "www-authenticate": 'Bearer realm="a2a", error="invalid_token"',
        });
      }
      throw err;
    }
  };

  const handleCard = async (req: Request): Promise<Response> => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return httpError(405, "Use GET", { allow: "GET, HEAD" });
    }
    const { body, etag } = await cardFor(new URL(req.url).origin);
    const headers = {
      ...CORS_HEADERS,
      "content-type": "application/json",
      "cache-control": "public, max-age=300",
      etag,
      "last-modified": new Date(cardModified).toUTCString(),
      vary: "Host",
    };
    // RFC 9110 13.2.2: If-None-Match, when present, decides alone; If-Modified-Since otherwise.
    const inm = req.headers.get("if-none-match");
    if (inm !== null) {
      if (inm.split(",").some((t) => t.trim() === etag || t.trim() === "*")) {
        return new Response(null, { status: 304, headers });
      }
    } else {
      const since = httpDate(req.headers.get("if-modified-since"));
      if (since !== undefined && cardModified <= since) {
        return new Response(null, { status: 304, headers });
      }
    }
    return new Response(req.method === "HEAD" ? null : body, { headers });
  };

  /** Readiness: 503 while draining or while the store cannot be reached, 200 otherwise. */
  const handleReady = async (req: Request): Promise<Response> => {
    await req.body?.cancel();
    const headers = { "cache-control": "no-store" };
    if (closing) {
      return json({ status: "draining", reason: "Server is shutting down" }, 503, headers);
    }
    const { ok, reason } = await probe.check();
    if (closing) {
      return json({ status: "draining", reason: "Server is shutting down" }, 503, headers);
    }
    if (!ok) return json({ status: "unavailable", reason }, 503, headers);
    return json({ status: "ready" }, 200, headers);
  };

  const handleMetrics = async (
    req: Request,
    option: true | { readonly token: string },
  ): Promise<Response> => {
    await req.body?.cancel();
    if (req.method !== "GET" && req.method !== "HEAD") {
      return httpError(405, "Use GET", { allow: "GET, HEAD" });
    }
    if (!metricsAllowed(option, req)) {
      return httpError(401, "Missing or invalid metrics token", {
        "www-authenticate": 'Bearer realm="metrics"',
      });
    }
    const text = await metrics!.render();
    return new Response(req.method === "HEAD" ? null : text, {
      headers: { "content-type": metrics!.contentType, "cache-control": "no-store" },
    });
  };

  const route = async (req: Request, path: string): Promise<Response> => {
    if (req.method === "OPTIONS") return new Response(null, { status: 204 });
    // The HTTP+JSON binding has a path per operation: everything under its prefix is its own.
    if (path === PATHS.rest || path.startsWith(`${PATHS.rest}/`)) {
      return await handleRest(req, path.slice(PATHS.rest.length));
    }
    switch (path) {
      case PATHS.agentCard:
        return await handleCard(req);
      case PATHS.auth:
        return await handleAuth(req);
      case PATHS.capnweb:
        return await handleCapnweb(req);
      case PATHS.jsonrpc:
        return await handleJsonRpc(req);
      case PATHS.health:
        return json({ status: closing ? "shutting-down" : "ok" }, closing ? 503 : 200);
      case PATHS.ready:
        return await handleReady(req);
      case PATHS.metrics:
        if (metricsOption === false) return notFound(req, path);
        return await handleMetrics(req, metricsOption);
      case PATHS.clientBundle:
        return await serveClientBundle(req);
      case PATHS.demoPage:
        return demoPage ? await demoPage(req) : await notFound(req, path);
      default:
        return notFound(req, path);
    }
  };

  /**
   * The 404 of a path the handler does not serve, in the shape of the binding whose interface it
   * is under: a JSON-RPC client reads an error body of its own kind, id `null`.
   */
  const notFound = async (req: Request, path: string): Promise<Response> => {
    await req.body?.cancel();
    const shown = basePath + (path.length > 200 ? `${path.slice(0, 200)}…` : path);
    if (path.startsWith(`${PATHS.jsonrpc}/`)) {
      const err = new InvalidRequestError(
        `Not found: ${shown}; the JSON-RPC endpoint is ${basePath}${PATHS.jsonrpc}`,
      );
      return json(
        { jsonrpc: "2.0", id: null, error: { code: err.code, message: err.message } },
        404,
      );
    }
    if (path.startsWith(`${PATHS.capnweb}/`)) {
      return httpError(
        404,
        new InvalidRequestError(
          `Not found: ${shown}; the capnweb endpoint is ${basePath}${PATHS.capnweb}`,
        ),
      );
    }
    return httpError(404, `Not found: ${shown}`);
  };

  const serveRequest = async (req: Request, info?: ConnectionInfo): Promise<Response> => {
    const address = clientAddress(req, info);
    if (address !== undefined) addresses.set(req, address);
    // `/a2a/jsonrpc/` is what many HTTP clients make of a base URL: the same endpoint.
    const raw = new URL(req.url).pathname;
    const trimmed = raw.length > 1 && raw.endsWith("/") ? raw.slice(0, -1) : raw;
    // Under a basePath, what is outside it is not this handler's; inside it, the paths are the
    // usual ones (the prefix alone, with or without its slash, is `/`).
    const inside = basePath === "" || trimmed === basePath || trimmed.startsWith(`${basePath}/`);
    const path = basePath === "" ? trimmed : trimmed.slice(basePath.length) || "/";
    const origin = req.headers.get("origin");
    const allowed = originAllowed(origin, req);
    const cors = (res: Response) =>
      applyCors(
        res,
        originPolicy === "*" ? "*" : allowed && origin !== null ? origin : undefined,
        originPolicy !== "*",
      );
    try {
      if (!allowed) {
        const upgrade = req.headers.get("upgrade")?.toLowerCase() === "websocket";
        // GET and HEAD are served without CORS headers, so the page cannot read them. Anything
        // else is refused before it runs: a preflight, a WebSocket upgrade (browsers do not
        // apply CORS to WebSockets), and a POST that skipped the preflight as a "simple request"
        // (an HTTP batch carries its ticket in the body).
        if (upgrade || (req.method !== "GET" && req.method !== "HEAD")) {
          const shown = origin!.length > 200 ? `${origin!.slice(0, 200)}…` : origin!;
          log.debug("Refused {method} {path} from origin {origin}", {
            method: req.method,
            path,
            origin: shown,
          });
          return cors(httpError(403, `Origin not allowed: ${shown}`));
        }
      }
      if (!inside) {
        await req.body?.cancel();
        const shown = raw.length > 200 ? `${raw.slice(0, 200)}…` : raw;
        return cors(httpError(404, `Not found: ${shown}`));
      }
      return cors(await route(req, path));
    } catch (err) {
      log.error("Request to {path} failed: {error}", { path, error: err });
      return cors(httpError(500, "Internal server error"));
    }
  };

  const handler = (async (req: Request, info?: ConnectionInfo): Promise<Response> => {
    // Checked per request: the application may configure its sinks after the server starts.
    if (!accessLog || !accessLogEnabled()) return await serveRequest(req, info);
    const start = performance.now();
    const record: AccessRecord = {};
    records.set(req.headers, record);
    let status = 500;
    try {
      const res = await serveRequest(req, info);
      status = res.status;
      return res;
    } finally {
      logRequest(
        req.method,
        new URL(req.url).pathname,
        status,
        performance.now() - start,
        addresses.get(req),
        record.operation === undefined ? undefined : record,
      );
    }
  }) as A2AHandler;

  Object.defineProperties(handler, {
    manager: { value: manager },
    sessions: { value: sessions },
    requestHandler: { value: requestHandler },
    push: { value: push },
    stats: {
      value: (): HandlerStats => ({
        sessions: sessions.sessionCount,
        resources: sessions.resourceCount,
        sockets: sockets.size,
        connections: connections.count,
        activeTasks: manager.activeCount,
        subscribers: manager.subscriberCount,
        overflows: manager.overflowCount,
        pushPending: push?.pendingCount ?? 0,
        ...stubCounts(rpcSessions),
      }),
    },
    close: {
      value: async (
        reason = "Server shutting down",
        options: { deadlineMs?: number } = {},
      ): Promise<void> => {
        if (closing) return;
        // 1. Refuse new sessions, batches and JSON-RPC requests (503). The listener stays open
        //    (serve() stops it only after this), so a request during the drain is answered.
        closing = true;
        const end = Date.now() + (options.deadlineMs ?? 10_000);
        const left = (atLeast: number) => Math.max(atLeast, end - Date.now());
        // 2. Let calls in progress finish, up to the deadline.
        const finished = await requestHandler.inflight.idle(left(0));
        if (!finished) {
          log.warn("Shutting down with {count} calls still in progress", {
            count: requestHandler.inflight.count,
          });
        }
        // 3. Stop the task core: running tasks end FAILED, open streams of paused tasks get
        //    ServiceUnavailableError, which clients take as "resume elsewhere".
        await manager.close({ timeoutMs: Math.min(left(1000), 5000) });
        // 4. Let the streams deliver those last events and their onEnd or onError, and wait
        //    until the client has answered them: a socket closed earlier loses them. A consumer
        //    that holds its calls cannot keep the server up past the deadline (at least a
        //    second is left for this step).
        const flushed = await streams.idle(left(1000));
        if (!flushed) {
          log.warn("Closing {count} streams whose last calls were not answered in time", {
            count: streams.count,
          });
        }
        await handleJsonRpc.close();
        await handleRest.close();
        // 5. Tell capnweb clients to reconnect elsewhere, and release every session.
        for (const s of sockets) {
          try {
            s.close(1001, reason);
          } catch {
            // already closing
          }
        }
        sessions.closeAll();
        await push?.close();
      },
    },
  });
  return handler;
}
