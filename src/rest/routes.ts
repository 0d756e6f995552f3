// The HTTP+JSON binding's method table: each operation's verb and path template, copied from
// the `google.api.http` annotations of specification/a2a.proto, and the matcher that finds the
// operation of a request path (with the proto's optional `/{tenant}` prefix).

/** Where an operation's request message comes from, besides its path fields. */
export type RequestSource = "body" | "query";

/** One operation of the binding. */
export interface RestRoute {
  /** The A2A operation, as JSON-RPC names it. */
  operation: string;
  /** The HTTP method. */
  method: "GET" | "POST" | "DELETE";
  /** The path template, e.g. `/tasks/{id}:cancel`; `{field}` binds one segment. */
  template: string;
  /** Where the other fields come from: the JSON body (`body: "*"`) or the query string. */
  source: RequestSource;
  /** True for the operations that answer `text/event-stream`. */
  streaming: boolean;
}

/**
 * The eleven operations. SubscribeToTask is GET in the proto but POST in the specification's
 * section 11.3.2 (and in what the official SDK's client sends): both are served.
 */
export const REST_ROUTES: readonly RestRoute[] = [
  route("SendMessage", "POST", "/message:send", "body"),
  route("SendStreamingMessage", "POST", "/message:stream", "body", true),
  route("GetTask", "GET", "/tasks/{id}", "query"),
  route("ListTasks", "GET", "/tasks", "query"),
  route("CancelTask", "POST", "/tasks/{id}:cancel", "body"),
  route("SubscribeToTask", "GET", "/tasks/{id}:subscribe", "query", true),
  route("SubscribeToTask", "POST", "/tasks/{id}:subscribe", "body", true),
  route(
    "CreateTaskPushNotificationConfig",
    "POST",
    "/tasks/{taskId}/pushNotificationConfigs",
    "body",
  ),
  route(
    "GetTaskPushNotificationConfig",
    "GET",
    "/tasks/{taskId}/pushNotificationConfigs/{id}",
    "query",
  ),
  route(
    "ListTaskPushNotificationConfigs",
    "GET",
    "/tasks/{taskId}/pushNotificationConfigs",
    "query",
  ),
  route(
    "DeleteTaskPushNotificationConfig",
    "DELETE",
    "/tasks/{taskId}/pushNotificationConfigs/{id}",
    "query",
  ),
  route("GetExtendedAgentCard", "GET", "/extendedAgentCard", "query"),
];

function route(
  operation: string,
  method: RestRoute["method"],
  template: string,
  source: RequestSource,
  streaming = false,
): RestRoute {
  return { operation, method, template, source, streaming };
}

/** A template split up: literal segments, `{field}` segments, and the custom verb. */
interface Compiled {
  route: RestRoute;
  segments: ({ literal: string } | { field: string })[];
  verb: string | undefined;
}

function compile(r: RestRoute): Compiled {
  const colon = r.template.lastIndexOf(":");
  const path = colon < 0 ? r.template : r.template.slice(0, colon);
  const verb = colon < 0 ? undefined : r.template.slice(colon + 1);
  const segments = path.slice(1).split("/").map((s) =>
    s.startsWith("{") ? { field: s.slice(1, -1) } : { literal: s }
  );
  return { route: r, segments, verb };
}

const COMPILED: readonly Compiled[] = REST_ROUTES.map(compile);

/** A request path matched: the route and the path fields, percent-decoded. */
export interface RouteMatch {
  /** The route. */
  route: RestRoute;
  /** The values of the template's fields, and `tenant` when the path had the prefix. */
  fields: Record<string, string>;
}

/** The outcome of matching: a route, or why there is none. */
export type RouteResult =
  | { match: RouteMatch }
  | { notFound: true }
  | { methodNotAllowed: readonly string[] };

/** The routes whose template fits the segments, with their field values. */
function fitting(raw: readonly string[]): RouteMatch[] {
  if (raw.length === 0) return [];
  // The custom verb (`:cancel`) ends the last segment; a colon inside a field is sent as %3A.
  const last = raw[raw.length - 1]!;
  const colon = last.lastIndexOf(":");
  const verb = colon < 0 ? undefined : last.slice(colon + 1);
  const segments = colon < 0 ? raw : [...raw.slice(0, -1), last.slice(0, colon)];
  const out: RouteMatch[] = [];
  for (const c of COMPILED) {
    if (c.verb !== verb || c.segments.length !== segments.length) continue;
    const fields: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < segments.length && ok; i++) {
      const want = c.segments[i]!;
      const got = segments[i]!;
      if ("literal" in want) ok = got === want.literal;
      else {
        const value = decodeSegment(got);
        ok = value !== undefined && value !== "";
        if (ok) fields[want.field] = value!;
      }
    }
    if (ok) out.push({ route: c.route, fields });
  }
  return out;
}

function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/**
 * Finds the operation of a request. A path fits the proto's primary template first; only a
 * path that fits none is read as `/{tenant}/...` (so `/tasks/tasks` is the task named `tasks`,
 * never tenant `tasks` listing its tasks).
 *
 * @param path The path below the binding's mount point, e.g. `/tasks/abc:cancel`.
 * @param method The HTTP method.
 * @returns The match, or 404 or 405 (with the methods the path allows).
 */
export function matchRoute(path: string, method: string): RouteResult {
  const raw = path.replace(/^\/+/, "").split("/");
  let candidates = fitting(raw);
  let tenant: string | undefined;
  if (candidates.length === 0 && raw.length > 1) {
    tenant = decodeSegment(raw[0]!);
    candidates = tenant ? fitting(raw.slice(1)) : [];
  }
  if (candidates.length === 0) return { notFound: true };
  const found = candidates.find((c) => c.route.method === method);
  if (!found) return { methodNotAllowed: [...new Set(candidates.map((c) => c.route.method))] };
  if (tenant !== undefined) found.fields.tenant = tenant;
  return { match: found };
}
