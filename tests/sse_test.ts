// The SSE parser of the JSON-RPC client: line endings, comments, fields and chunk boundaries.

import assert from "node:assert/strict";
import { formatSseEvent, parseSse, type SseEvent } from "../src/json_http/sse.ts";

function body(...chunks: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const chunk of chunks) c.enqueue(encoder.encode(chunk));
      c.close();
    },
  });
}

async function parse(...chunks: string[]): Promise<SseEvent[]> {
  const out = [];
  for await (const e of parseSse(body(...chunks))) out.push(e);
  return out;
}

Deno.test("parseSse() reads ids, event types and multi-line data, and skips comments", async () => {
  assert.deepEqual(
    await parse(': keep-alive\n\nid: 7\ndata: {"a":1}\n\nevent: error\ndata: x\ndata: y\n\n'),
    [
      { event: "message", data: '{"a":1}', id: "7" },
      { event: "error", data: "x\ny", id: undefined },
    ],
  );
});

Deno.test("parseSse() handles CRLF and CR line ends split across chunks", async () => {
  assert.deepEqual(await parse("id: 1\r", "\ndata: a\r\n\r", "\ndata: b\r\rdata:c\n\n"), [
    { event: "message", data: "a", id: "1" },
    { event: "message", data: "b", id: undefined },
    { event: "message", data: "c", id: undefined },
  ]);
});

Deno.test("parseSse() splits UTF-8 across chunks and drops an unfinished last event", async () => {
  const bytes = new TextEncoder().encode("data: héllo\n\ndata: lost");
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(bytes.slice(0, 8));
      c.enqueue(bytes.slice(8));
      c.close();
    },
  });
  const out = [];
  for await (const e of parseSse(stream)) out.push(e.data);
  assert.deepEqual(out, ["héllo"]);
});

Deno.test("parseSse() refuses an event over maxEventBytes with a RangeError naming the limit", async () => {
  await assert.rejects(
    async () => {
      for await (
        const _ of parseSse(body(`data: ${"x".repeat(6)}\ndata: ${"x".repeat(4)}\n\n`), {
          maxEventBytes: 10,
        })
      ) {
        // unreachable: the data is 11 characters with the line break that joins them
      }
    },
    (e: unknown) => {
      assert.ok(e instanceof RangeError);
      assert.equal(e.message, "SSE event is larger than the 10-byte limit");
      return true;
    },
  );
});

Deno.test("parseSse() refuses a line that cannot end within maxEventBytes, before it ends", async () => {
  const chunks = Array.from({ length: 10 }, () => "x".repeat(100));
  await assert.rejects(
    async () => {
      for await (const _ of parseSse(body("data: ", ...chunks), { maxEventBytes: 500 })) {
        // unreachable
      }
    },
    (e: unknown) => {
      assert.ok(e instanceof RangeError);
      assert.equal(e.message, "SSE event is larger than the 500-byte limit");
      return true;
    },
  );
});

Deno.test("parseSse() accepts an event of exactly maxEventBytes", async () => {
  const events = [];
  for await (
    const e of parseSse(body(`id: 1\ndata: ${"x".repeat(10)}\n\n`), { maxEventBytes: 10 })
  ) {
    events.push(e);
  }
  assert.equal(events[0]?.data.length, 10);
});

Deno.test("parseSse() reads a 20 MB event that arrives in 64 KiB chunks, by default", async () => {
  const size = 20_000_000;
  const line = new TextEncoder().encode(`id: 9\r\ndata: ${"x".repeat(size)}\r\n\r\ndata: next\n\n`);
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (let at = 0; at < line.length; at += 65536) c.enqueue(line.subarray(at, at + 65536));
      c.close();
    },
  });
  const events = [];
  for await (const e of parseSse(stream)) events.push(e);
  assert.equal(events.length, 2);
  assert.equal(events[0]!.data.length, size);
  assert.equal(events[0]!.id, "9");
  assert.equal(events[1]!.data, "next");
});

Deno.test("parseSse() ends a line at a CR whose LF comes after a chunk of the next line", async () => {
  assert.deepEqual(await parse("data: a\r", "b", "\n", "\n"), [
    { event: "message", data: "a", id: undefined },
  ]);
});

Deno.test("formatSseEvent() writes the id line only when there is an id", () => {
  assert.equal(formatSseEvent("{}", 3), "id: 3\ndata: {}\n\n");
  assert.equal(formatSseEvent("{}"), "data: {}\n\n");
});
