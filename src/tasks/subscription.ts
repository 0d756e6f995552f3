// One subscriber's view of a task's events: a bounded queue between the task core, which must
// never wait on a slow consumer, and the binding that delivers the events.

import { StreamOverflowError } from "../errors/errors.ts";

export { StreamOverflowError };
import type { StreamEvent } from "./store.ts";

/** Exact sizes of events, measured once for all the subscribers an event fans out to. */
const exactBytes = new WeakMap<StreamEvent, number>();
/** Upper bounds of sizes of events, for the same reason. */
const boundBytes = new WeakMap<StreamEvent, number>();

/** The longest JSON text of a finite number, e.g. `-0.0000012345678901234567`. */
const NUMBER_CHARS = 25;
/** Deeper than this, the cheap bound gives up and the event is measured. */
const BOUND_DEPTH = 64;

const encoder = new TextEncoder();
/** Room for the UTF-8 of one chunk of `CHUNK_UNITS` UTF-16 code units. */
const CHUNK_UNITS = 64 * 1024;
const scratch = new Uint8Array(3 * CHUNK_UNITS);

/** The UTF-8 length of a well-formed string, encoded chunk by chunk into a scratch buffer. */
function utf8Bytes(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length;) {
    let end = Math.min(text.length, i + CHUNK_UNITS);
    // Never split a surrogate pair: each half alone would count as a three-byte U+FFFD.
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last < 0xdc00) end--;
    bytes += encoder.encodeInto(text.slice(i, end), scratch).written;
    i = end;
  }
  return bytes;
}

/**
 * The size of an event's JSON in UTF-8 bytes, measured once per event. An event without a JSON
 * form (a cycle, a BigInt) counts 0: no binding can deliver it, which is not this buffer's to
 * decide.
 *
 * @param event The event.
 * @returns The byte length of `JSON.stringify(event)`.
 */
export function eventBytes(event: StreamEvent): number {
  let bytes = exactBytes.get(event);
  if (bytes === undefined) {
    try {
      // JSON.stringify escapes lone surrogates, so its output is well-formed.
      bytes = utf8Bytes(JSON.stringify(event) ?? "");
    } catch {
      bytes = 0;
    }
    exactBytes.set(event, bytes);
  }
  return bytes;
}

/**
 * An upper bound of {@linkcode eventBytes}, from the event's structure and string lengths
 * only: it costs the number of values in the event, not its bytes. It is the exact size when
 * that is known already.
 *
 * @param event The event.
 * @returns At least the byte length of the event's JSON.
 */
export function eventBytesBound(event: StreamEvent): number {
  const exact = exactBytes.get(event);
  if (exact !== undefined) return exact;
  let bound = boundBytes.get(event);
  if (bound === undefined) {
    bound = jsonBound(event, 0);
    if (Number.isNaN(bound)) bound = eventBytes(event);
    boundBytes.set(event, bound);
  }
  return bound;
}

/**
 * Bounds the UTF-8 size of a value's JSON: a UTF-16 code unit takes at most six bytes (`\u001f`,
 * or a lone surrogate's `\udXXX`), so a string takes at most six per unit and its quotes.
 * NaN when the value is not plain data (a `toJSON`, a class instance, a BigInt) or nests too
 * deep: the caller then measures it.
 */
function jsonBound(value: unknown, depth: number): number {
  switch (typeof value) {
    case "string":
      return 6 * value.length + 2;
    case "number":
      return NUMBER_CHARS;
    case "boolean":
    case "undefined":
    case "function":
    case "symbol":
      // `false` is the longest; the others are omitted or written as `null`.
      return 5;
    case "object": {
      if (value === null) return 4;
      if (depth >= BOUND_DEPTH || "toJSON" in value) return NaN;
      let n = 2;
      if (Array.isArray(value)) {
        for (const v of value) n += jsonBound(v, depth + 1) + 1;
        return n;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return NaN;
      for (const k in value) {
        if (!Object.hasOwn(value, k)) continue;
        n += 6 * k.length + 4 + jsonBound((value as Record<string, unknown>)[k], depth + 1);
      }
      return n;
    }
    default:
      return NaN;
  }
}

/** Options of a {@linkcode Subscription}. */
export interface SubscriptionOptions {
  /**
   * How many bytes of events (the UTF-8 size of each one's JSON) may wait before the
   * subscription overflows (default: no limit). One event is always let wait, whatever its size.
   */
  maxBytes?: number;
}

/**
 * A bounded, single-consumer queue of events. The producer never waits: when more than `limit`
 * events, or more than `maxBytes` bytes of them, are waiting, the subscription fails with
 * StreamOverflowError.
 */
export class Subscription implements AsyncIterableIterator<StreamEvent> {
  #queue: StreamEvent[] = [];
  /**
   * The bytes counted for each queued event, by its index in `#queue`: the exact size; the
   * negated upper bound while the event has not been measured; NaN while it has not even been
   * bounded (an event that waits alone, which may wait whatever its size); 0 for an event that
   * does not count (see `setLimit`).
   */
  #sizes: number[] = [];
  #head = 0;
  #limit: number;
  #maxBytes: number;
  /** The bytes counted for the queued events (upper bounds included). */
  #bytes = 0;
  /** How many queued events carry an upper bound, or nothing, rather than their size. */
  #unmeasured = 0;
  /** How many of the first queued events count against neither limit (see `setLimit`). */
  #free = 0;
  #waiter: ((r: IteratorResult<StreamEvent>) => void) | undefined;
  #failWaiter: ((err: unknown) => void) | undefined;
  #ended = false;
  #error: unknown = undefined;
  #closed = false;
  #onClose: (() => void) | undefined;
  #lastSeq: number;
  /** The highest seq pushed so far. */
  #pushed = -Infinity;
  #overflowed = false;
  #notified = false;
  #closeListeners: Array<() => void> = [];
  #onTake: (() => void) | undefined;

  /**
   * Creates an empty subscription.
   *
   * @param limit How many events may wait before the subscription overflows.
   * @param afterSeq The sequence number the subscriber already has.
   * @param onClose Called once when the subscription ends for any reason.
   * @param options The byte limit.
   */
  constructor(
    limit: number,
    afterSeq: number,
    onClose?: () => void,
    options: SubscriptionOptions = {},
  ) {
    this.#limit = limit;
    this.#maxBytes = options.maxBytes ?? Infinity;
    this.#lastSeq = afterSeq;
    this.#onClose = onClose;
  }

  /** The `seq` of the last event handed to the consumer. */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** How many events are queued and not yet taken. */
  get pending(): number {
    return this.#queue.length - this.#head;
  }

  /** True once the subscription ended because its consumer fell too far behind. */
  get overflowed(): boolean {
    return this.#overflowed;
  }

  /** True once the subscription has ended, failed or been closed. */
  get done(): boolean {
    return this.#ended || this.#closed;
  }

  /**
   * The UTF-8 bytes of the queued events that count against `maxBytes` (none while there is no
   * byte limit, nor for the events queued before `setLimit`). Reading it measures them.
   */
  get pendingBytes(): number {
    this.#measure();
    return this.#bytes;
  }

  /**
   * Sets the buffer limits. The events queued now count against neither, so that a replay of
   * many logged events does not count against a subscriber that has only just joined.
   *
   * @param limit How many more events may wait.
   * @param maxBytes How many more bytes of events may wait (default: unchanged).
   */
  setLimit(limit: number, maxBytes: number = this.#maxBytes): void {
    this.#limit = limit;
    this.#maxBytes = maxBytes;
    this.#free = this.#queue.length - this.#head;
    this.#sizes.fill(0, this.#head);
    this.#bytes = 0;
    this.#unmeasured = 0;
  }

  /** Queues an event; overflows the subscription when too many, or too many bytes, are waiting. */
  push(event: StreamEvent): void {
    if (this.#ended || this.#closed) return;
    // Two sources may hand over one event (this process's commit and the log of a shared
    // store): each seq is queued once, in order.
    if (event.seq <= this.#pushed) return;
    this.#pushed = event.seq;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = this.#failWaiter = undefined;
      this.#lastSeq = event.seq;
      this.#onTake?.();
      w({ value: event, done: false });
      return;
    }
    const counted = this.#queue.length - this.#head - this.#free;
    if (counted >= this.#limit) return this.#overflow(`${this.#limit} events`);
    let size = 0;
    if (this.#maxBytes !== Infinity) {
      if (counted === 0) {
        // Alone, it may wait whatever its size: it is sized only if another event queues behind.
        size = NaN;
      } else {
        // Most events are decided by their bounds: events are measured only near the limit.
        this.#boundFirst();
        size = exactBytes.get(event) ?? -eventBytesBound(event);
        if (this.#bytes + Math.abs(size) > this.#maxBytes) {
          size = eventBytes(event);
          this.#measure();
          if (this.#bytes + size > this.#maxBytes) {
            return this.#overflow(`${this.#maxBytes} bytes of events`);
          }
        }
        this.#bytes += Math.abs(size);
      }
      if (!(size >= 0)) this.#unmeasured++;
    }
    this.#queue.push(event);
    this.#sizes.push(size);
  }

  /** Bounds the first counted event, if it has waited alone so far. */
  #boundFirst(): void {
    const i = this.#head + this.#free;
    if (!Number.isNaN(this.#sizes[i])) return;
    const event = this.#queue[i]!;
    const size = exactBytes.get(event) ?? -eventBytesBound(event);
    this.#sizes[i] = size;
    this.#bytes += Math.abs(size);
    if (size >= 0) this.#unmeasured--;
  }

  /** Replaces the bounds of the queued events by their sizes. */
  #measure(): void {
    for (let i = this.#head; this.#unmeasured > 0 && i < this.#queue.length; i++) {
      const counted = this.#sizes[i]!;
      if (counted >= 0) continue;
      const size = eventBytes(this.#queue[i]!);
      this.#sizes[i] = size;
      // A bound is negated; NaN (not bounded yet) has counted nothing.
      this.#bytes += size + (Number.isNaN(counted) ? 0 : counted);
      this.#unmeasured--;
    }
  }

  /** Ends the subscription because its consumer fell behind by more than `what`. */
  #overflow(what: string): void {
    this.#overflowed = !this.#ended;
    const error = new StreamOverflowError(this.#lastSeq, this.#limit);
    error.message =
      `Stream ended: more than ${what} were waiting for this subscriber; resume with afterSeq ${this.#lastSeq}`;
    this.fail(error);
  }

  /** Ends the stream normally once the queued events are consumed. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#settleIfDrained();
    this.#notifyClose();
  }

  /**
   * Ends the stream with an error.
   *
   * @param error The error the consumer gets.
   * @param drain Deliver the queued events before the error (otherwise they are dropped).
   */
  fail(error: unknown, drain = false): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    if (!drain) this.#clear();
    if (this.#failWaiter && this.#head >= this.#queue.length) {
      const f = this.#failWaiter;
      this.#waiter = this.#failWaiter = undefined;
      this.#error = undefined;
      f(error);
    }
    this.#notifyClose();
  }

  /** Takes the next event, waiting for one if none is queued. */
  next(): Promise<IteratorResult<StreamEvent>> {
    if (this.#head < this.#queue.length) {
      const value = this.#queue[this.#head]!;
      const size = this.#sizes[this.#head]!;
      if (!Number.isNaN(size)) this.#bytes -= Math.abs(size);
      if (!(size >= 0)) this.#unmeasured--;
      if (this.#free > 0) this.#free--;
      this.#queue[this.#head++] = undefined as unknown as StreamEvent;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#sizes = this.#sizes.slice(this.#head);
        this.#head = 0;
      }
      this.#lastSeq = value.seq;
      this.#onTake?.();
      return Promise.resolve({ value, done: false });
    }
    if (this.#error !== undefined) {
      const err = this.#error;
      this.#error = undefined;
      return Promise.reject(err);
    }
    if (this.#ended || this.#closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.#waiter = resolve;
      this.#failWaiter = reject;
    });
  }

  /** Stops consuming: the producer forgets this subscriber. */
  return(): Promise<IteratorResult<StreamEvent>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Stops consuming: the producer forgets this subscriber. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clear();
    this.#settleIfDrained();
    this.#notifyClose();
  }

  /** Iterates the events. */
  [Symbol.asyncIterator](): AsyncIterableIterator<StreamEvent> {
    return this;
  }

  #clear(): void {
    this.#queue = [];
    this.#sizes = [];
    this.#head = 0;
    this.#bytes = 0;
    this.#unmeasured = 0;
    this.#free = 0;
  }

  #settleIfDrained(): void {
    if (this.#waiter && this.#head >= this.#queue.length) {
      const w = this.#waiter;
      this.#waiter = this.#failWaiter = undefined;
      w({ value: undefined, done: true });
    }
  }

  #notifyClose(): void {
    const cb = this.#onClose;
    this.#onClose = undefined;
    this.#notified = true;
    cb?.();
    const more = this.#closeListeners;
    this.#closeListeners = [];
    for (const l of more) l();
  }

  /**
   * Calls `listener` each time an event is handed to the consumer (for delivery metrics); a
   * second call replaces the first listener.
   *
   * @param listener The callback.
   */
  onTake(listener: () => void): void {
    this.#onTake = listener;
  }

  /**
   * Calls `listener` once when the subscription ends for any reason (at once if it has).
   *
   * @param listener The callback.
   */
  whenClosed(listener: () => void): void {
    if (this.#notified) listener();
    else this.#closeListeners.push(listener);
  }
}
