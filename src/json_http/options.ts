// What a JSON binding over HTTP (JSON-RPC, HTTP+JSON) is configured with: the shared request
// handler, the token check, the limits and the server's state. Each binding adds its own.

import type { RequestHandler } from "../tasks/request_handler.ts";
import type { VerifyToken } from "./auth.ts";

/** Options shared by {@link createJsonRpcHandler} and {@link createRestHandler}. */
export interface JsonBindingOptions {
  /** The request handler shared by every binding. */
  handler: RequestHandler;
  /**
   * Verifies a bearer token (undefined when the request carried none); throws
   * AuthenticationError when it is not valid (HTTP 401), or RateLimitedError when its sender made
   * too many failed attempts (HTTP 429).
   */
  verifyToken: VerifyToken;
  /** The A2A versions served (`Major.Minor`); default `["1.0"]`. */
  versions?: readonly string[];
  /** Largest request body accepted, in bytes (default 4 MiB). */
  maxBodyBytes?: number;
  /**
   * Largest SSE event sent, in bytes of its `data` (default 64 MiB, `DEFAULT_MAX_EVENT_BYTES`,
   * which is what this module's client accepts). A larger event is not sent: the stream ends
   * with an error event (-32603) that names the limit.
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
