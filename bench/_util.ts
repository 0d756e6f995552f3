// Helpers shared by the bench files: per-iteration samples kept beside deno bench's own
// statistics (which print no median), and a plain-text summary printed when a file ends.

import type { Message } from "../mod.ts";

/** Durations of one bench's iterations, in milliseconds, in the order they ran. */
export class Samples {
  readonly name: string;
  readonly values: number[] = [];

  constructor(name: string) {
    this.name = name;
  }

  /** Records one duration. */
  add(ms: number): void {
    this.values.push(ms);
  }

  /**
   * The samples without the first tenth, which deno bench spends warming up (its warmup
   * iterations also call the bench function, and their number is not exposed).
   */
  measured(): number[] {
    return this.values.slice(Math.floor(this.values.length / 10));
  }

  /** Median and 90th percentile of the measured samples, in milliseconds. */
  stats(): { n: number; median: number; p90: number } {
    const sorted = this.measured().sort((a, b) => a - b);
    return { n: sorted.length, median: quantile(sorted, 0.5), p90: quantile(sorted, 0.9) };
  }
}

/**
 * A quantile of sorted numbers, interpolating between neighbours.
 *
 * @param sorted Numbers in ascending order.
 * @param q The quantile, 0 to 1.
 * @returns The quantile, or NaN for no numbers.
 */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/**
 * Formats milliseconds the way deno bench does (µs below 1 ms).
 *
 * @param ms Milliseconds.
 * @returns E.g. `95.3 µs` or `12.4 ms`.
 */
export function formatMs(ms: number): string {
  return ms < 1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(2)} ms`;
}

/**
 * Prints a summary block; called when a bench file ends, so it lands under deno bench's table.
 *
 * @param title The block's first line.
 * @param lines The lines under it.
 */
export function printSummary(title: string, lines: string[]): void {
  // deno-lint-ignore no-console
  console.log([`\n${title}`, ...lines.map((l) => `  ${l}`)].join("\n"));
}

/**
 * A user text message with a fresh id.
 *
 * @param text The text.
 * @returns The message.
 */
export function userMessage(text: string): Message {
  return { messageId: crypto.randomUUID(), role: "ROLE_USER", parts: [{ text }] };
}
