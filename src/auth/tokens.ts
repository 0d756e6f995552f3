// Bearer-token verification: the TokenVerifier interface an application implements, and a
// verifier for a fixed set of tokens (the demo server's `A2A_TOKENS`).

/** The authenticated identity behind a credential. */
export interface Principal {
  /** A stable id of the user; tasks belong to it. */
  userId: string;
}

/** Checks a bearer token and tells who it belongs to. */
export interface TokenVerifier {
  /**
   * Verifies a bearer token.
   *
   * @param token The token, without the `Bearer ` prefix.
   * @returns The principal, or undefined when the token is not valid.
   */
  verify(token: string): Promise<Principal | undefined>;
}

async function digest(token: string): Promise<string> {
  const bytes = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Parses `user=token,user2=token2` as the `A2A_TOKENS` variable writes it.
 *
 * @param spec The comma-separated list.
 * @returns Token to user id.
 * @throws {TypeError} When an entry is not `user=token`, or a token is listed twice.
 */
export function parseTokenList(spec: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of spec.split(",")) {
    const entry = raw.trim();
    if (entry === "") continue;
    const eq = entry.indexOf("=");
    const user = entry.slice(0, eq).trim();
    const token = entry.slice(eq + 1).trim();
    if (eq <= 0 || user === "" || token === "") {
      throw new TypeError(`Cannot parse token list: expected user=token, got "${entry}"`);
    }
    if (out.has(token)) throw new TypeError(`Cannot parse token list: a token is listed twice`);
    out.set(token, user);
  }
  return out;
}

/**
 * A TokenVerifier for a fixed set of tokens. Tokens are kept only as SHA-256 digests, and a
 * lookup compares digests, so the time it takes does not depend on how much of a guess is right.
 *
 * @example Verify tokens from an `A2A_TOKENS`-style list
 * ```ts
 * import { StaticTokenVerifier } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * const verifier = StaticTokenVerifier.fromList("alice=token-alice,bob=token-bob");
 * assert.deepEqual(await verifier.verify("token-bob"), { userId: "bob" });
 * assert.equal(await verifier.verify("nope"), undefined);
 * ```
 */
export class StaticTokenVerifier implements TokenVerifier {
  #digests: Promise<Map<string, string>>;

  /**
   * Creates a verifier for a fixed token list.
   *
   * @param tokens Token to user id.
   */
  constructor(tokens: Map<string, string> | Record<string, string>) {
    const entries = tokens instanceof Map ? [...tokens] : Object.entries(tokens);
    this.#digests = Promise.all(
      entries.map(async ([token, user]) => [await digest(token), user] as const),
    ).then((pairs) => new Map(pairs));
  }

  /**
   * Builds a verifier from `user=token,user2=token2`.
   *
   * @param spec The list.
   * @returns The verifier.
   */
  static fromList(spec: string): StaticTokenVerifier {
    return new StaticTokenVerifier(parseTokenList(spec));
  }

  /** Verifies a token. */
  async verify(token: string): Promise<Principal | undefined> {
    if (typeof token !== "string" || token === "" || token.length > 4096) return undefined;
    const userId = (await this.#digests).get(await digest(token));
    return userId === undefined ? undefined : { userId };
  }
}
