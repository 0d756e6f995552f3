// The A2A service parameters (spec 3.2.6) as both JSON bindings read them from HTTP: the header
// names, the `A2A-Version` check, `A2A-Extensions` and `Last-Event-ID`. Browser-safe: the JSON-RPC
// client sends the same headers.

import { InvalidParamsError, VersionNotSupportedError } from "../errors/errors.ts";
import { isSupportedVersion } from "../types/version.ts";

/** The service parameter headers of A2A 1.0 (section 3.2.6), lower-cased. */
export const HEADERS = {
  version: "a2a-version",
  extensions: "a2a-extensions",
  lastEventId: "last-event-id",
} as const;

/**
 * Parses an `A2A-Extensions` value: comma-separated URIs, trimmed, empty ones and duplicates
 * dropped.
 *
 * @param value The header value.
 * @returns The URIs.
 */
export function parseExtensions(value: string | null | undefined): string[] {
  if (!value) return [];
  return [...new Set(value.split(",").map((s) => s.trim()).filter((s) => s !== ""))];
}

/**
 * Tells whether a query parameter is the `A2A-Version` service parameter (matched without
 * regard to case), which is not a field of the request message.
 *
 * @param name The query parameter's name.
 * @returns True for `A2A-Version`.
 */
export function isVersionParam(name: string): boolean {
  return name.toLowerCase() === HEADERS.version;
}

/**
 * The version a request asks for: the `A2A-Version` header, else an `A2A-Version` query
 * parameter (spec 3.6.1), else the empty string, which means `0.3` (spec 3.6.2).
 *
 * @param req The request.
 * @param url Its parsed URL.
 * @returns The version asked for, or `""`.
 */
export function requestedVersion(req: Request, url: URL): string {
  const header = req.headers.get(HEADERS.version)?.trim();
  if (header) return header;
  for (const [k, v] of url.searchParams) {
    if (isVersionParam(k) && v.trim() !== "") return v.trim();
  }
  return "";
}

/**
 * Checks a requested version against the versions served.
 *
 * @param version What {@link requestedVersion} returned.
 * @param supported The versions served (`Major.Minor`).
 * @throws {VersionNotSupportedError} When it is not served; the message says that no header
 * means 0.3.
 */
export function checkVersion(version: string, supported: readonly string[]): void {
  if (isSupportedVersion(version, supported)) return;
  if (version === "") {
    const err = new VersionNotSupportedError("0.3");
    err.message = `A2A version not supported: 0.3 (a request without A2A-Version asks for 0.3); ` +
      `send A2A-Version: ${supported.join(", ")}`;
    throw err;
  }
  throw new VersionNotSupportedError(version);
}

/**
 * The `Last-Event-ID` a client resumes a stream after: the per-task sequence number that was
 * the `id` of the last event it received.
 *
 * @param req The request.
 * @returns The sequence number, or undefined without the header.
 * @throws {InvalidParamsError} When the value is not a non-negative integer.
 */
export function lastEventIdOf(req: Request): number | undefined {
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
