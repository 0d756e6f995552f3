// Bearer authentication as both JSON bindings do it: the token from `Authorization`, the
// application's check, and the HTTP status each refusal gets. Each binding writes the refusal in
// its own error body.

import type { Principal } from "../auth/tokens.ts";
import { AuthenticationError, RateLimitedError } from "../errors/errors.ts";

/**
 * Checks a bearer token (the JSON bindings' `verifyToken` option); `undefined` when the request
 * carried none, which an open agent answers with its anonymous principal and any other check
 * refuses with AuthenticationError.
 */
export type VerifyToken = (token: string | undefined, req: Request) => Promise<Principal>;

/** An error answered at the HTTP layer: the error, its HTTP status and extra headers. */
export interface HttpFailure {
  /** What went wrong (an A2AError, or anything a verifier threw). */
  error: unknown;
  /** The HTTP status. */
  status: number;
  /** Headers the status calls for (`WWW-Authenticate`, `Retry-After`, `Allow`). */
  headers: Record<string, string>;
}

/** The challenge on a 401 without a token, and the one after a refused token (RFC 6750). */
const CHALLENGE = 'Bearer realm="a2a"';
const INVALID_TOKEN = 'Bearer realm="a2a", error="invalid_token"';

/**
 * Authenticates a request by its bearer token: a missing token is 401 with a challenge, a
 * refused one 401 with `error="invalid_token"`, a throttled address 429 with `Retry-After`, and a
 * verifier that fails some other way 500 (the binding logs it and reveals nothing).
 *
 * @param req The request.
 * @param verifyToken The application's check.
 * @returns The principal, or the failure to answer with.
 */
export async function authenticateBearer(
  req: Request,
  verifyToken: VerifyToken,
): Promise<{ principal: Principal } | { failure: HttpFailure }> {
  const token = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.get("authorization") ?? "")?.[1];
  try {
    return { principal: await verifyToken(token, req) };
  } catch (error) {
    if (error instanceof RateLimitedError) {
      const headers = { "retry-after": String(error.retryAfterSeconds) };
      return { failure: { error, status: 429, headers } };
    }
    if (error instanceof AuthenticationError) {
      const challenge = token === undefined ? CHALLENGE : INVALID_TOKEN;
      return { failure: { error, status: 401, headers: { "www-authenticate": challenge } } };
    }
    return { failure: { error, status: 500, headers: {} } };
  }
}
