// One subscriber's view of a task's events: a bounded queue between the task core, which must
// never wait on a slow consumer, and the binding that delivers the events.

import { StreamOverflowError } from "../errors/errors.ts";

export { StreamOverflowError };
import type { StreamEvent } from "./store.ts";

/**
 * A bounded, single-consumer queue of events. The producer never waits: when more than `limit`
 * events are waiting, the subscription fails with StreamOverflowError.
 */
export class Subscription implements AsyncIterableIterator<StreamEvent> {
  #queue: StreamEvent[] = [];
  #head = 0;
  #limit: number;
  #waiter: ((r: IteratorResult<StreamEvent>) => void) | undefined;
  #failWaiter: ((err: unknown) => void) | undefined;
  #ended = false;
  #error: unknown = undefined;
  #closed = false;
  #onClose: (() => void) | undefined;
  #lastSeq: number;
  #overflowed = false;
  #notified = false;
  #closeListeners: Array<() => void> = [];

  /**
   * Creates an empty subscription.
   *
   * @param limit How many events may wait before the subscription overflows.
   * @param afterSeq The sequence number the subscriber already has.
   * @param onClose Called once when the subscription ends for any reason.
   */
  constructor(limit: number, afterSeq: number, onClose?: () => void) {
    this.#limit = limit;
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
   * Sets the buffer limit, counted from the events already queued, so that a replay of many
   * logged events does not count against a subscriber that has only just joined.
   */
  setLimit(limit: number): void {
    this.#limit = limit + (this.#queue.length - this.#head);
  }

  /** Queues an event; overflows the subscription when too many are waiting. */
  push(event: StreamEvent): void {
    if (this.#ended || this.#closed) return;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = this.#failWaiter = undefined;
      this.#lastSeq = event.seq;
      w({ value: event, done: false });
      return;
    }
    if (this.#queue.length - this.#head >= this.#limit) {
      this.#overflowed = !this.#ended;
      this.fail(new StreamOverflowError(this.#lastSeq, this.#limit));
      return;
    }
    this.#queue.push(event);
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
    if (!drain) {
      this.#queue = [];
      this.#head = 0;
    }
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
      this.#queue[this.#head++] = undefined as unknown as StreamEvent;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      this.#lastSeq = value.seq;
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
    this.#queue = [];
    this.#head = 0;
    this.#settleIfDrained();
    this.#notifyClose();
  }

  /** Iterates the events. */
  [Symbol.asyncIterator](): AsyncIterableIterator<StreamEvent> {
    return this;
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
   * Calls `listener` once when the subscription ends for any reason (at once if it has).
   *
   * @param listener The callback.
   */
  whenClosed(listener: () => void): void {
    if (this.#notified) listener();
    else this.#closeListeners.push(listener);
  }
}
