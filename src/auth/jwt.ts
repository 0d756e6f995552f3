// A TokenVerifier for signed JWTs (on npm:jose): keys from a JWKS URL or given public keys,
// a fixed issuer and audience, an allow-list of asymmetric algorithms, and a required expiry.

import { getLogger } from "@logtape/logtape";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  type JWK,
  jwtVerify,
  type JWTVerifyGetKey,
  type KeyObject,
} from "jose";
import { AuthenticationError, ServiceUnavailableError } from "../errors/errors.ts";
import type { Principal, TokenVerifier } from "./tokens.ts";

const log = getLogger(["a2a-capnweb", "auth"]);

// The asymmetric JWS algorithms a JwtVerifier can allow.
const JWT_ALGORITHMS: readonly string[] = Object.freeze([
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
]);

const DEFAULT_ALGORITHMS = ["RS256", "ES256", "EdDSA"];
const DEFAULT_MAX_TOKEN_LENGTH = 8192;
const MAX_USER_ID_LENGTH = 256;

/** A public JSON Web Key (RFC 7517), as a JWKS lists it; `kid` picks it out of several. */
export interface PublicJwk {
  /** The key type: `RSA`, `EC` or `OKP`. */
  kty: string;
  /** The key id that tokens name in their header. */
  kid?: string;
  /** The one algorithm this key is for. */
  alg?: string;
  /** `sig` when given. */
  use?: string;
  /** The key's parameters (`n`, `e`, `crv`, `x`, `y`, ...). */
  [member: string]: unknown;
}

/** Options of a {@link JwtVerifier}. Give exactly one of `jwksUrl` and `keys`. */
export interface JwtVerifierOptions {
  /** The JSON Web Key Set URL (https, or http on a loopback host). Keys are cached. */
  jwksUrl?: string | URL;
  /** Public keys instead of a JWKS URL: JWKs or `CryptoKey`s of type `public`. */
  keys?: PublicJwk | CryptoKey | (PublicJwk | CryptoKey)[];
  /** The expected `iss`; a token from another issuer is refused. */
  issuer: string | string[];
  /** The expected `aud` (one of them must match). */
  audience: string | string[];
  /** Allowed `alg` values (default `["RS256", "ES256", "EdDSA"]`); asymmetric only. */
  algorithms?: string[];
  /** Leeway for `exp` and `nbf`, in seconds (default 30). */
  clockSkewSeconds?: number;
  /** The claim that holds the user id (default `sub`); it must be a non-empty string. */
  userClaim?: string;
  /** How long a JWKS fetch may take, in ms (default 5000). */
  jwksTimeoutMs?: number;
  /** After a fetch, how long an unknown `kid` does not trigger another, in ms (default 30000). */
  jwksCooldownMs?: number;
  /** How long fetched keys are used before a refetch, in ms (default 600000). */
  jwksCacheMaxAgeMs?: number;
  /** Longer tokens are refused unparsed (default 8192 characters). */
  maxTokenLength?: number;
}

type KeyInput = CryptoKey | KeyObject | JWK | JWTVerifyGetKey;

// A key-set fetch failure: the token may be fine, so it is not an authentication failure.
class KeySetUnavailable extends Error {}

function list(value: string | string[], name: string): string[] {
  const out = Array.isArray(value) ? value : [value];
  if (out.length === 0 || out.some((v) => typeof v !== "string" || v === "")) {
    throw new TypeError(`Cannot create JwtVerifier: ${name} is required`);
  }
  return out;
}

function checkAlgorithms(algorithms: string[]): string[] {
  if (algorithms.length === 0) {
    throw new TypeError("Cannot create JwtVerifier: algorithms is empty");
  }
  for (const alg of algorithms) {
    if (!JWT_ALGORITHMS.includes(alg)) {
      // Covers `none` and HS*: a symmetric algorithm with a public key lets anyone sign.
      throw new TypeError(
        `Cannot create JwtVerifier: algorithm not allowed: ${String(alg).slice(0, 20)}`,
      );
    }
  }
  return [...algorithms];
}

function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

function checkKey(key: PublicJwk | CryptoKey): void {
  if (typeof CryptoKey !== "undefined" && key instanceof CryptoKey) {
    if (key.type !== "public") {
      throw new TypeError("Cannot create JwtVerifier: keys must be public keys");
    }
    return;
  }
  const jwk = key as PublicJwk;
  if (typeof jwk !== "object" || jwk === null || typeof jwk.kty !== "string") {
    throw new TypeError("Cannot create JwtVerifier: a key is not a JWK or CryptoKey");
  }
  if (jwk.kty === "oct" || "d" in jwk) {
    throw new TypeError("Cannot create JwtVerifier: keys must be public keys");
  }
}

async function toJwk(key: PublicJwk | CryptoKey): Promise<JWK> {
  if (typeof CryptoKey !== "undefined" && key instanceof CryptoKey) {
    return await crypto.subtle.exportKey("jwk", key) as JWK;
  }
  return key as JWK;
}

function refusal(err: unknown, userClaim: string): Error {
  if (err instanceof KeySetUnavailable) {
    return new ServiceUnavailableError("Cannot verify token: the key set is unavailable");
  }
  if (err instanceof errors.JWTExpired) return new AuthenticationError("Invalid token: expired");
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case "iss":
        return new AuthenticationError("Invalid token: wrong issuer");
      case "aud":
        return new AuthenticationError("Invalid token: wrong audience");
      case "exp":
        return new AuthenticationError("Invalid token: no expiry");
      case "nbf":
        return new AuthenticationError("Invalid token: not yet valid");
      case userClaim:
        return new AuthenticationError(`Invalid token: no ${userClaim} claim`);
      default:
        return new AuthenticationError("Invalid token: a claim is not valid");
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
    return new AuthenticationError("Invalid token: algorithm not allowed");
  }
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) {
    return new AuthenticationError("Invalid token: unknown signing key");
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return new AuthenticationError("Invalid token: bad signature");
  }
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) {
    return new AuthenticationError("Invalid token: malformed");
  }
  return new AuthenticationError("Invalid token");
}

/**
 * A TokenVerifier for JWTs signed with asymmetric keys. Every refusal throws an
 * {@link AuthenticationError} with a short message that names what was wrong, never the token;
 * a key set that cannot be fetched throws a {@link ServiceUnavailableError} instead.
 *
 * @example Verify a token signed with a local key
 * ```ts
 * import { AuthenticationError, JwtVerifier } from "@a2a-capnweb/core";
 * import { generateKeyPair, SignJWT } from "jose";
 * import assert from "node:assert/strict";
 *
 * const { publicKey, privateKey } = await generateKeyPair("ES256");
 * const verifier = new JwtVerifier({
 *   keys: publicKey,
 *   issuer: "https://issuer.example",
 *   audience: "my-agent",
 * });
 * const token = await new SignJWT({ sub: "alice" })
 *   .setProtectedHeader({ alg: "ES256" })
 *   .setIssuer("https://issuer.example")
 *   .setAudience("my-agent")
 *   .setExpirationTime("5m")
 *   .sign(privateKey);
 * assert.deepEqual(await verifier.verify(token), { userId: "alice" });
 * await assert.rejects(verifier.verify("not-a-jwt"), AuthenticationError);
 * ```
 */
export class JwtVerifier implements TokenVerifier {
  #key: KeyInput | Promise<KeyInput>;
  #issuer: string[];
  #audience: string[];
  #algorithms: string[];
  #clockSkew: number;
  #userClaim: string;
  #maxTokenLength: number;

  /**
   * Creates a verifier.
   *
   * @param options Where the keys come from, the expected issuer and audience, and the limits.
   * @throws {TypeError} When an option is missing or unsafe (`none` or an HS* algorithm, a
   *   private or symmetric key, a plain-http JWKS URL on a non-loopback host).
   */
  constructor(options: JwtVerifierOptions) {
    this.#issuer = list(options.issuer, "issuer");
    this.#audience = list(options.audience, "audience");
    this.#algorithms = checkAlgorithms(options.algorithms ?? DEFAULT_ALGORITHMS);
    this.#clockSkew = options.clockSkewSeconds ?? 30;
    if (!(this.#clockSkew >= 0 && this.#clockSkew <= 300)) {
      throw new TypeError("Cannot create JwtVerifier: clockSkewSeconds must be 0 to 300");
    }
    this.#userClaim = options.userClaim ?? "sub";
    if (this.#userClaim === "") {
      throw new TypeError("Cannot create JwtVerifier: userClaim is empty");
    }
    this.#maxTokenLength = options.maxTokenLength ?? DEFAULT_MAX_TOKEN_LENGTH;
    if ((options.jwksUrl === undefined) === (options.keys === undefined)) {
      throw new TypeError("Cannot create JwtVerifier: give exactly one of jwksUrl and keys");
    }
    if (options.jwksUrl !== undefined) {
      this.#key = remoteKeys(options);
    } else {
      const keys = Array.isArray(options.keys) ? options.keys : [options.keys!];
      if (keys.length === 0) throw new TypeError("Cannot create JwtVerifier: keys is empty");
      keys.forEach(checkKey);
      // One key is used as it is (a token's `kid` then need not match); several form a set.
      this.#key = keys.length === 1
        ? keys[0] as CryptoKey | JWK
        : Promise.all(keys.map(toJwk)).then((jwks) => createLocalJWKSet({ keys: jwks }));
    }
  }

  /**
   * Verifies a JWT: signature, algorithm, issuer, audience, expiry and the user claim.
   *
   * @param token The compact JWT, without the `Bearer ` prefix.
   * @returns The principal named by the user claim.
   * @throws {AuthenticationError} When the token is refused.
   * @throws {ServiceUnavailableError} When the key set cannot be fetched.
   */
  async verify(token: string): Promise<Principal> {
    if (typeof token !== "string" || token === "" || token.length > this.#maxTokenLength) {
      throw new AuthenticationError("Invalid token: malformed");
    }
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, await this.#key, {
        issuer: this.#issuer,
        audience: this.#audience,
        algorithms: this.#algorithms,
        clockTolerance: this.#clockSkew,
        requiredClaims: ["exp"],
      }));
    } catch (err) {
      throw refusal(err, this.#userClaim);
    }
    const userId = payload[this.#userClaim];
    if (typeof userId !== "string" || userId === "" || userId.length > MAX_USER_ID_LENGTH) {
      throw new AuthenticationError(`Invalid token: no ${this.#userClaim} claim`);
    }
    return { userId };
  }
}

function remoteKeys(options: JwtVerifierOptions): KeyInput {
  let url: URL;
  try {
    url = new URL(options.jwksUrl!);
  } catch {
    throw new TypeError("Cannot create JwtVerifier: jwksUrl is not a URL");
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopback(url.hostname))) {
    throw new TypeError("Cannot create JwtVerifier: jwksUrl must use https");
  }
  const remote = createRemoteJWKSet(url, {
    timeoutDuration: options.jwksTimeoutMs ?? 5000,
    cooldownDuration: options.jwksCooldownMs ?? 30_000,
    cacheMaxAge: options.jwksCacheMaxAgeMs ?? 600_000,
  });
  const href = url.href;
  const getKey: JWTVerifyGetKey = (header, token) =>
    remote(header, token).catch((err: unknown) => {
      if (
        err instanceof errors.JWKSNoMatchingKey ||
        err instanceof errors.JWKSMultipleMatchingKeys ||
        err instanceof errors.JOSENotSupported
      ) throw err;
      log.warn("Cannot fetch the JSON Web Key Set {url}: {error}", {
        url: href,
        error: String((err as Error)?.message ?? err).slice(0, 200),
      });
      throw new KeySetUnavailable();
    });
  return getKey;
}
