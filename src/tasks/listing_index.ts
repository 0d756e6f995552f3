// One user's tasks kept in the order ListTasks returns them (status timestamp, newest first, then
// id), so that a page is a search and a short walk, not a sort of every task.

import sortedBtree from "sorted-btree";

/** A task's place in the listing order. */
export interface ListingKey {
  /** The status timestamp, ISO 8601, or `""` when the task has none. */
  ts: string;
  /** The task id. */
  id: string;
}

// The package is CommonJS: its default import is `module.exports`, whose `default` is the class.
const BTree = sortedBtree.default;

/** Listing order: later timestamp first, then the larger id. */
function compare(a: ListingKey, b: ListingKey): number {
  if (a.ts !== b.ts) return a.ts > b.ts ? -1 : 1;
  return a.id === b.id ? 0 : a.id > b.id ? -1 : 1;
}

/**
 * The keys in a B+ tree (npm:sorted-btree): O(log n) insert and delete. A sorted array needs a
 * memmove of the whole array for each of them, since a task whose status changes moves to the
 * front: at 20,000 tasks that was 35 µs an operation and 10% of the server's CPU under load.
 */
export class ListingIndex {
  readonly #keys = new BTree<ListingKey, undefined>(undefined, compare);

  /** How many tasks are indexed. */
  get size(): number {
    return this.#keys.size;
  }

  /** Adds a key; a key already there is not added twice. */
  insert(key: ListingKey): void {
    this.#keys.set(key, undefined, false);
  }

  /** Removes a key, if it is there. */
  delete(key: ListingKey): void {
    this.#keys.delete(key);
  }

  /**
   * Returns up to `count` keys in order, starting right after `cursor` (from the start without
   * one), and whether more follow.
   */
  page(cursor: ListingKey | undefined, count: number): { keys: ListingKey[]; more: boolean } {
    const keys: ListingKey[] = [];
    for (const key of this.#keys.keys(cursor)) {
      if (cursor && compare(key, cursor) === 0) continue;
      if (keys.length === count) return { keys, more: true };
      keys.push(key);
    }
    return { keys, more: false };
  }

  /** Every key, in order. */
  values(): IterableIterator<ListingKey> {
    return this.#keys.keys();
  }
}
