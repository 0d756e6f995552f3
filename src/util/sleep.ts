// Waiting that an AbortSignal cuts short, with its timer always cleared.

/**
 * Waits `ms` milliseconds, or until `signal` aborts, whichever comes first. Never rejects.
 *
 * @param ms How long to wait.
 * @param signal Cuts the wait short.
 */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
