// One webhook delivery attempt: the destination check (again, against DNS rebinding), then an
// HTTP POST of the event as a StreamResponse with the config's credentials.

import type { StreamEvent } from "../tasks/store.ts";
import type { TaskPushNotificationConfig } from "../types/requests.ts";
import { checkDestination, type DestinationPolicy, type HostResolver } from "./address.ts";

/** The header that carries the config's `token`, as the official A2A SDKs send it. */
export const NOTIFICATION_TOKEN_HEADER = "X-A2A-Notification-Token";

/**
 * The header that carries the event's sequence number within its task (the body is a plain
 * StreamResponse, without `seq`): with the task id it identifies a notification, so a
 * receiver can drop the duplicates that retries may cause.
 */
export const EVENT_SEQ_HEADER = "X-A2A-Event-Seq";

/** The content type of a notification body. */
export const NOTIFICATION_CONTENT_TYPE = "application/a2a+json";

/** What one delivery attempt came to. */
export interface AttemptResult {
  /** The receiver answered 2xx. */
  ok: boolean;
  /** Trying again may succeed (timeouts, network errors, 408, 425, 429, 5xx). */
  retryable: boolean;
  /** Why it failed, for logs. */
  reason?: string;
  /** How long the receiver asked us to wait (`Retry-After`), in milliseconds. */
  retryAfterMs?: number;
}

/** What an attempt needs besides the config and the event. */
export interface AttemptOptions {
  /** The destination rules. */
  policy: DestinationPolicy;
  /** Resolves host names. */
  resolve: HostResolver;
  /** The fetch to use. */
  fetch: typeof fetch;
  /** The time limit of the attempt (lookup and request), in milliseconds. */
  timeoutMs: number;
  /** Aborted when the config is deleted or the server shuts down. */
  signal: AbortSignal;
}

/**
 * Builds the headers of a notification: content type, `Authorization` from the config's
 * `authentication`, the config's `token`, and the event's `seq`.
 *
 * @param config The push config.
 * @param seq The event's sequence number.
 * @returns The headers.
 */
export function notificationHeaders(config: TaskPushNotificationConfig, seq: number): Headers {
  const headers = new Headers({
    "content-type": NOTIFICATION_CONTENT_TYPE,
    "a2a-version": "1.0",
    "user-agent": "a2a-capnweb",
    [EVENT_SEQ_HEADER]: String(seq),
  });
  const auth = config.authentication;
  if (auth?.credentials !== undefined && auth.credentials !== "") {
    headers.set("authorization", `${auth.scheme} ${auth.credentials}`);
  }
  if (config.token !== undefined && config.token !== "") {
    headers.set(NOTIFICATION_TOKEN_HEADER, config.token);
  }
  return headers;
}

function parseRetryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

/**
 * Makes one delivery attempt. Never throws: every outcome is an AttemptResult.
 *
 * @param config The push config (with its webhook URL).
 * @param event The event to deliver; its `seq` goes in a header, not in the body.
 * @param options The policy, resolver, fetch, time limit and abort signal.
 * @returns What happened.
 */
export async function attemptDelivery(
  config: TaskPushNotificationConfig,
  event: StreamEvent,
  options: AttemptOptions,
): Promise<AttemptResult> {
  let url: URL;
  try {
    url = new URL(config.url);
  } catch {
    return { ok: false, retryable: false, reason: "url is not a valid URL" };
  }
  const timeout = new AbortController();
  const timer = setTimeout(
    () => timeout.abort(new DOMException("Webhook timed out", "TimeoutError")),
    options.timeoutMs,
  );
  const signal = AbortSignal.any([options.signal, timeout.signal]);
  try {
    // Checked again on every attempt: the name may resolve elsewhere than at creation.
    const dest = await checkDestination(url, options.policy, { resolve: options.resolve, signal });
    if (!dest.ok) return { ok: false, retryable: dest.retryable, reason: `url ${dest.reason}` };
    const { seq, ...payload } = event;
    const res = await options.fetch(url, {
      method: "POST",
      headers: notificationHeaders(config, seq),
      body: JSON.stringify(payload),
      // A redirect could lead to an internal host that the check above never saw.
      redirect: "manual",
      signal,
    });
    await res.body?.cancel().catch(() => {});
    if (res.status >= 200 && res.status < 300) return { ok: true, retryable: false };
    const result: AttemptResult = {
      ok: false,
      retryable: isRetryableStatus(res.status),
      reason: `receiver answered HTTP ${res.status}`,
    };
    const after = parseRetryAfter(res.headers.get("retry-after"));
    if (after !== undefined) result.retryAfterMs = after;
    return result;
  } catch (err) {
    if (options.signal.aborted) return { ok: false, retryable: false, reason: "canceled" };
    const reason = timeout.signal.aborted
      ? `no answer within ${options.timeoutMs} ms`
      : (err as Error)?.message ?? String(err);
    return { ok: false, retryable: true, reason };
  } finally {
    clearTimeout(timer);
  }
}
