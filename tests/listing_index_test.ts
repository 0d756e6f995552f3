import assert from "node:assert/strict";
import fc from "fast-check";
import { ListingIndex, type ListingKey } from "../src/tasks/listing_index.ts";
import { FifoMap } from "../src/util/fifo_map.ts";

/** The listing order written out plainly: later timestamp first, then the larger id. */
function sorted(keys: Iterable<ListingKey>): ListingKey[] {
  return [...keys].sort((a, b) =>
    a.ts !== b.ts ? (a.ts > b.ts ? -1 : 1) : a.id === b.id ? 0 : a.id > b.id ? -1 : 1
  );
}

const keyArb = fc.record({
  ts: fc.constantFrom("", "2026-01-01T00:00:00.000Z", "2026-01-02T00:00:00.000Z"),
  id: fc.constantFrom("a", "b", "c", "d", "e", "f"),
});

Deno.test("ListingIndex keeps the listing order through inserts and deletes, and pages it", () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.boolean(), keyArb), { maxLength: 60 }),
      fc.integer({ min: 1, max: 5 }),
      (ops, pageSize) => {
        const index = new ListingIndex();
        const model = new Map<string, ListingKey>();
        for (const [add, key] of ops) {
          const name = `${key.ts}|${key.id}`;
          if (add) {
            index.insert({ ...key });
            model.set(name, { ts: key.ts, id: key.id });
          } else {
            index.delete({ ...key });
            model.delete(name);
          }
        }
        const expected = sorted(model.values());
        assert.equal(index.size, expected.length);
        assert.deepEqual([...index.values()], expected);
        // Paging from each cursor gives the keys after it, and says whether more follow.
        const pages: ListingKey[] = [];
        let cursor: ListingKey | undefined;
        for (let guard = 0; guard <= expected.length; guard++) {
          const { keys, more } = index.page(cursor, pageSize);
          pages.push(...keys);
          if (!more) break;
          cursor = keys.at(-1);
        }
        assert.deepEqual(pages, expected);
      },
    ),
  );
});

Deno.test("ListingIndex pages after a cursor that is no longer indexed", () => {
  const index = new ListingIndex();
  for (const id of ["a", "b", "c", "d"]) index.insert({ ts: "t", id });
  index.delete({ ts: "t", id: "c" });
  assert.deepEqual(index.page({ ts: "t", id: "c" }, 10), {
    keys: [{ ts: "t", id: "b" }, { ts: "t", id: "a" }],
    more: false,
  });
});

Deno.test("FifoMap hands out its oldest live entry, whatever was deleted or set again", () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.record({ op: fc.constant("set" as const), key: fc.nat(20), value: fc.nat() }),
          fc.record({ op: fc.constant("delete" as const), key: fc.nat(20) }),
          fc.record({ op: fc.constant("shift" as const) }),
        ),
        { maxLength: 3000 },
      ),
      (ops) => {
        const fifo = new FifoMap<number, number>();
        // A Map keeps insertion order, and `set` on a present key keeps its place: the model.
        const model = new Map<number, number>();
        for (const step of ops) {
          if (step.op === "set") {
            fifo.set(step.key, step.value);
            model.set(step.key, step.value);
          } else if (step.op === "delete") {
            assert.equal(fifo.delete(step.key), model.delete(step.key));
          } else {
            const first = model.entries().next();
            assert.deepEqual(fifo.shift(), first.done ? undefined : first.value);
            if (!first.done) model.delete(first.value[0]);
          }
          assert.equal(fifo.size, model.size);
          const first = model.entries().next();
          assert.deepEqual(fifo.first(), first.done ? undefined : first.value);
        }
        for (const [k, v] of model) assert.equal(fifo.get(k), v);
      },
    ),
  );
});
