// Counts calls in progress, so that a graceful shutdown can wait for them to finish.

/** A counter of calls in progress that can be awaited until it drops to zero. */
export class Inflight {
  #count = 0;
  #waiters: (() => void)[] = [];

  /** How many calls are in progress. */
  get count(): number {
    return this.#count;
  }

  /**
   * Runs a call, counting it while it is in progress.
   *
   * @param fn The call.
   * @returns The call's result.
   */
  async track<T>(fn: () => Promise<T>): Promise<T> {
    this.#count++;
    try {
      return await fn();
    } finally {
      if (--this.#count === 0) {
        const waiters = this.#waiters;
        this.#waiters = [];
        for (const w of waiters) w();
      }
    }
  }

  /**
   * Waits until no call is in progress, or until the deadline passes.
   *
   * @param timeoutMs The deadline in milliseconds.
   * @returns True when every call finished in time.
   */
  async idle(timeoutMs: number): Promise<boolean> {
    if (this.#count === 0) return true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = await Promise.race([
      new Promise<boolean>((resolve) => this.#waiters.push(() => resolve(true))),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), timeoutMs)),
    ]);
    clearTimeout(timer);
    return done;
  }
}
