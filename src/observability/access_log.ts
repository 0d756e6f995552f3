// The access log: one info line per HTTP request and per capnweb operation, under the category
// ["a2a-capnweb", "access"]. It names the caller and the outcome, never a credential: no header,
// no query string and no body is ever written.

import { getLogger, type Logger } from "@logtape/logtape";

/** The LogTape category of access log lines. */
export const ACCESS_LOG_CATEGORY: readonly string[] = ["a2a-capnweb", "access"];

const log: Logger = getLogger(ACCESS_LOG_CATEGORY);

/** What the operation inside an HTTP request adds to that request's line. */
export interface AccessRecord {
  /** The A2A method. */
  operation?: string;
  /** The authenticated user. */
  userId?: string;
  /** The task the operation was about. */
  taskId?: string;
  /** 0 for success, else the A2A error code. */
  code?: number;
}

/** Untrusted text, cut to a length a log line can hold. */
function clip(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/**
 * Whether access lines would go anywhere: false until the application configures a sink for
 * the category, so that a server nobody logs pays nothing for the log.
 *
 * @returns True when an info line would be written.
 */
export function accessLogEnabled(): boolean {
  return log.isEnabledFor("info");
}

/**
 * Writes the line of one HTTP request.
 *
 * @param method The HTTP method.
 * @param path The path, without the query string (which this server never reads a secret from,
 *   but a client might put one in).
 * @param status The response status.
 * @param durationMs Until the response (its headers, for a stream or a WebSocket upgrade).
 * @param address The client's address, when known.
 * @param record What the operation inside added.
 */
export function logRequest(
  method: string,
  path: string,
  status: number,
  durationMs: number,
  address: string | undefined,
  record: AccessRecord | undefined,
): void {
  log.info("{method} {path} {status} {durationMs} ms", {
    method,
    path: clip(path),
    status,
    durationMs: Math.round(durationMs * 1000) / 1000,
    ...(address !== undefined && { address }),
    ...record,
  });
}

/**
 * Writes the line of one capnweb operation (or of any operation outside an HTTP request).
 *
 * @param binding The binding.
 * @param operation The A2A method.
 * @param userId The authenticated user.
 * @param taskId The task, when known.
 * @param code 0 for success, else the A2A error code.
 * @param durationMs How long it took.
 */
export function logOperation(
  binding: string,
  operation: string,
  userId: string,
  taskId: string | undefined,
  code: number,
  durationMs: number,
): void {
  log.info("{binding} {operation} {code} {durationMs} ms", {
    binding,
    operation,
    userId: clip(userId),
    ...(taskId !== undefined && { taskId }),
    code,
    durationMs: Math.round(durationMs * 1000) / 1000,
  });
}
