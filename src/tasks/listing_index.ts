// One user's tasks kept in the order ListTasks returns them (status timestamp, newest first, then
// id), so that a page is a binary search and a slice, not a sort of every task.

/** A task's place in the listing order. */
export interface ListingKey {
  /** The status timestamp, ISO 8601, or `""` when the task has none. */
  ts: string;
  /** The task id. */
  id: string;
}

/** True when `a` comes before `b`: later timestamp first, then the larger id. */
function before(a: ListingKey, b: ListingKey): boolean {
  return a.ts !== b.ts ? a.ts > b.ts : a.id > b.id;
}

/** A sorted array of listing keys with O(log n) search (and a memmove on insert and delete). */
export class ListingIndex {
  readonly #keys: ListingKey[] = [];

  /** How many tasks are indexed. */
  get size(): number {
    return this.#keys.length;
  }

  /** The position of the first key that does not come before `key`. */
  #search(key: ListingKey): number {
    let lo = 0;
    let hi = this.#keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (before(this.#keys[mid]!, key)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Adds a key; a key already there is not added twice. */
  insert(key: ListingKey): void {
    const at = this.#search(key);
    const there = this.#keys[at];
    if (there && there.ts === key.ts && there.id === key.id) return;
    this.#keys.splice(at, 0, key);
  }

  /** Removes a key, if it is there. */
  delete(key: ListingKey): void {
    const at = this.#search(key);
    const there = this.#keys[at];
    if (there && there.ts === key.ts && there.id === key.id) this.#keys.splice(at, 1);
  }

  /**
   * Returns up to `count` keys in order, starting right after `cursor` (from the start without
   * one), and whether more follow.
   */
  page(cursor: ListingKey | undefined, count: number): { keys: ListingKey[]; more: boolean } {
    let start = 0;
    if (cursor) {
      start = this.#search(cursor);
      const there = this.#keys[start];
      if (there && there.ts === cursor.ts && there.id === cursor.id) start++;
    }
    return {
      keys: this.#keys.slice(start, start + count),
      more: start + count < this.#keys.length,
    };
  }

  /** Every key, in order. */
  values(): IterableIterator<ListingKey> {
    return this.#keys.values();
  }
}
