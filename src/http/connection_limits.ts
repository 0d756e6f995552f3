// Counts the long-lived connections the server holds (WebSockets, SSE streams), in all and per
// client address, so that one address cannot take every socket the process can open.

import { QuotaExceededError, ServiceUnavailableError } from "../errors/errors.ts";

/** Options of {@linkcode ConnectionLimiter}. */
export interface ConnectionLimiterOptions {
  /** Connections open at once in all (default 10 000). */
  maxConnections?: number;
  /** Connections open at once from one client address (default 256). */
  maxPerAddress?: number;
}

/**
 * Admits a connection or refuses it: past the total with ServiceUnavailableError (-31003, the
 * server is full: HTTP 503), past the per-address limit with QuotaExceededError (-31005, this
 * client has enough: HTTP 429). A connection whose address is unknown counts only in the total.
 */
export class ConnectionLimiter {
  #max: number;
  #maxPerAddress: number;
  #total = 0;
  #byAddress = new Map<string, number>();

  /**
   * Creates a limiter with no connection open.
   *
   * @param options The limits.
   */
  constructor(options: ConnectionLimiterOptions = {}) {
    this.#max = options.maxConnections ?? 10_000;
    this.#maxPerAddress = options.maxPerAddress ?? 256;
    for (
      const [name, v] of [["maxConnections", this.#max], ["maxPerAddress", this.#maxPerAddress]]
    ) {
      if (!Number.isInteger(v) || (v as number) < 1) {
        throw new RangeError(`Invalid ${name}: expected a positive integer`);
      }
    }
  }

  /** How many connections are open. */
  get count(): number {
    return this.#total;
  }

  /**
   * Counts a new connection, or refuses it.
   *
   * @param address The client's address, when known.
   * @returns A function that uncounts the connection (call it once, when it closes).
   * @throws {ServiceUnavailableError} When the server holds its maximum of connections.
   * @throws {QuotaExceededError} When the address holds its maximum.
   */
  admit(address: string | undefined): () => void {
    if (this.#total >= this.#max) {
      throw new ServiceUnavailableError(
        `Too many open connections: the server's limit is ${this.#max}`,
      );
    }
    const mine = address === undefined ? 0 : this.#byAddress.get(address) ?? 0;
    if (address !== undefined && mine >= this.#maxPerAddress) {
      throw new QuotaExceededError(
        `Too many open connections from this address: the limit is ${this.#maxPerAddress}`,
      );
    }
    this.#total++;
    if (address !== undefined) this.#byAddress.set(address, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#total--;
      if (address === undefined) return;
      const left = (this.#byAddress.get(address) ?? 1) - 1;
      if (left === 0) this.#byAddress.delete(address);
      else this.#byAddress.set(address, left);
    };
  }
}
