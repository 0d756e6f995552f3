// Failed-login throttling: a token bucket per client address, shared by every way in (tickets,
// JSON-RPC bearer tokens, capnweb `authenticate`), so that guessing costs the guesser time.

import { RateLimitedError } from "../errors/errors.ts";

/** Options of {@linkcode AuthThrottle}. */
export interface AuthThrottleOptions {
  /** Failed attempts an address may make in a burst before it is refused (default 10). */
  burst?: number;
  /** Failed attempts per minute an address earns back, after a burst (default 30). */
  perMinute?: number;
  /**
   * Addresses tracked at once (default 100 000); past it the address seen longest ago is
   * forgotten, so memory stays bounded whatever the number of addresses.
   */
  maxAddresses?: number;
  /** The clock, in milliseconds (default `Date.now`); tests pass their own. */
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Counts failed authentication attempts per client address in a token bucket. Each failure takes
 * a token; an address with no token left is refused with {@linkcode RateLimitedError} before its
 * credentials are even checked, until it has earned one back. Successful attempts take nothing,
 * so a well-behaved client is never slowed down by its own logins.
 *
 * @example Refuse an address after its burst of failures
 * ```ts
 * import { AuthThrottle, RateLimitedError } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * const throttle = new AuthThrottle({ burst: 2, perMinute: 6 });
 * throttle.fail("192.0.2.1");
 * throttle.fail("192.0.2.1");
 * assert.throws(() => throttle.check("192.0.2.1"), RateLimitedError);
 * throttle.check("198.51.100.7"); // another address is not affected
 * ```
 */
export class AuthThrottle {
  #burst: number;
  #perMs: number;
  #max: number;
  #now: () => number;
  // Insertion order is last-touched order: the first entry is the one to forget first.
  #buckets = new Map<string, Bucket>();

  /**
   * Creates a throttle that tracks no address yet.
   *
   * @param options The burst, the refill rate and the number of addresses tracked.
   */
  constructor(options: AuthThrottleOptions = {}) {
    this.#burst = positive(options.burst ?? 10, "burst");
    this.#perMs = positive(options.perMinute ?? 30, "perMinute") / 60_000;
    this.#max = positive(options.maxAddresses ?? 100_000, "maxAddresses");
    this.#now = options.now ?? Date.now;
  }

  /** How many addresses are tracked (those with failures not yet earned back). */
  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Refuses an address that has used up its failed attempts.
   *
   * @param address The client's address; `undefined` (unknown) is never refused.
   * @throws {RateLimitedError} When the address has no attempt left, with the seconds to wait.
   */
  check(address: string | undefined): void {
    if (address === undefined) return;
    const bucket = this.#refill(address);
    if (bucket === undefined || bucket.tokens >= 1) return;
    throw new RateLimitedError(Math.max(1, Math.ceil((1 - bucket.tokens) / this.#perMs / 1000)));
  }

  /**
   * Records a failed attempt.
   *
   * @param address The client's address; `undefined` (unknown) is not counted.
   */
  fail(address: string | undefined): void {
    if (address === undefined) return;
    const bucket = this.#refill(address) ?? { tokens: this.#burst, at: this.#now() };
    bucket.tokens = Math.max(0, bucket.tokens - 1);
    this.#buckets.delete(address);
    this.#buckets.set(address, bucket);
    while (this.#buckets.size > this.#max) {
      this.#buckets.delete(this.#buckets.keys().next().value!);
    }
  }

  /** Brings an address's bucket up to date; a full bucket is forgotten (undefined). */
  #refill(address: string): Bucket | undefined {
    const bucket = this.#buckets.get(address);
    if (bucket === undefined) return undefined;
    const now = this.#now();
    bucket.tokens = Math.min(this.#burst, bucket.tokens + (now - bucket.at) * this.#perMs);
    bucket.at = now;
    if (bucket.tokens >= this.#burst) {
      this.#buckets.delete(address);
      return undefined;
    }
    return bucket;
  }
}

function positive(value: number, name: string): number {
  if (!(value > 0) || !Number.isFinite(value)) {
    throw new RangeError(`Invalid throttle option ${name}: expected a positive number`);
  }
  return value;
}
