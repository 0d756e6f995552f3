// Readiness for `GET /ready`: is the store reachable? The answer is cached briefly and one check
// at a time runs, so that a load balancer polling often cannot hammer the database.

import type { TaskStore } from "../tasks/store.ts";

/** The outcome of one readiness check. */
export interface Readiness {
  /** True when the store answered. */
  ok: boolean;
  /** Why not, when not. */
  reason?: string;
}

/** Options of {@link StoreProbe}. */
export interface StoreProbeOptions {
  /** How long a ping may take before the store counts as unreachable (default 2000 ms). */
  timeoutMs?: number;
  /** How long an answer is reused (default 1000 ms). */
  cacheMs?: number;
}

/** Pings a store, at most once per `cacheMs`. */
export class StoreProbe {
  #store: TaskStore;
  #timeoutMs: number;
  #cacheMs: number;
  #last: { at: number; result: Readiness } | undefined;
  #running: Promise<Readiness> | undefined;

  /**
   * Creates the probe.
   *
   * @param store The store; one without `ping` is always reachable.
   * @param options The timeout and the cache lifetime.
   */
  constructor(store: TaskStore, options: StoreProbeOptions = {}) {
    this.#store = store;
    this.#timeoutMs = options.timeoutMs ?? 2000;
    this.#cacheMs = options.cacheMs ?? 1000;
  }

  /**
   * Tells whether the store is reachable, from the cache when the last answer is recent.
   *
   * @returns The readiness.
   */
  check(): Promise<Readiness> {
    const last = this.#last;
    if (last !== undefined && performance.now() - last.at < this.#cacheMs) {
      return Promise.resolve(last.result);
    }
    return this.#running ??= this.#ping().then((result) => {
      this.#last = { at: performance.now(), result };
      this.#running = undefined;
      return result;
    });
  }

  async #ping(): Promise<Readiness> {
    const store = this.#store;
    if (store.ping === undefined) return { ok: true };
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        store.ping(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer in ${this.#timeoutMs} ms`)),
            this.#timeoutMs,
          );
        }),
      ]);
      return { ok: true };
    } catch (err) {
      const text = err instanceof Error ? err.message : String(err);
      return { ok: false, reason: `Store unreachable: ${text.slice(0, 200)}` };
    } finally {
      clearTimeout(timer);
    }
  }
}
