// A Map that also hands out its oldest entry in O(1), for retention queues. A Map's own first
// entry is found by skipping the slots its deletions left behind, so taking the oldest after many
// deletions from the front costs O(deleted) each time: 7.6% of the server's CPU when the
// in-memory store evicted one task per commit at 10,000 ended tasks (BENCHMARKS.md).

interface Entry<K, V> {
  readonly key: K;
  value: V;
}

/** A map in insertion order with O(1) access to its oldest entry. */
export class FifoMap<K, V> {
  readonly #map = new Map<K, Entry<K, V>>();
  /** Every entry in insertion order; one no longer in the map (deleted, or set anew) is stale. */
  #queue: Entry<K, V>[] = [];
  #head = 0;

  /** How many entries there are. */
  get size(): number {
    return this.#map.size;
  }

  /** Whether the key is there. */
  has(key: K): boolean {
    return this.#map.has(key);
  }

  /** The key's value. */
  get(key: K): V | undefined {
    return this.#map.get(key)?.value;
  }

  /** Adds a key as the newest entry; a key already there keeps its place and takes the value. */
  set(key: K, value: V): void {
    const there = this.#map.get(key);
    if (there) {
      there.value = value;
      return;
    }
    const entry = { key, value };
    this.#map.set(key, entry);
    this.#queue.push(entry);
    // Deletions leave stale entries behind; keep them at most as many as the live ones.
    if (this.#queue.length - this.#head > 2 * this.#map.size + 1024) {
      this.#queue = this.#queue.slice(this.#head).filter((e) => this.#map.get(e.key) === e);
      this.#head = 0;
    }
  }

  /** Removes a key; returns whether it was there. */
  delete(key: K): boolean {
    return this.#map.delete(key);
  }

  /** The oldest entry, as `[key, value]`. */
  first(): [K, V] | undefined {
    const entry = this.#front();
    return entry && [entry.key, entry.value];
  }

  /** Removes the oldest entry and returns it, as `[key, value]`. */
  shift(): [K, V] | undefined {
    const entry = this.#front();
    if (!entry) return undefined;
    this.#map.delete(entry.key);
    this.#head++;
    return [entry.key, entry.value];
  }

  #front(): Entry<K, V> | undefined {
    while (this.#head < this.#queue.length) {
      const entry = this.#queue[this.#head]!;
      if (this.#map.get(entry.key) === entry) return entry;
      this.#head++;
    }
    this.#queue = [];
    this.#head = 0;
    return undefined;
  }
}
