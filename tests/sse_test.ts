// The SSE parser of the JSON-RPC client: line endings, comments, fields and chunk boundaries.

import assert from "node:assert/strict";
import { formatSseEvent, parseSse, type SseEvent } from "../src/jsonrpc/sse.ts";

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

Deno.test("parseSse() refuses an event over maxEventSize", async () => {
  await assert.rejects(async () => {
    for await (const _ of parseSse(body(`data: ${"x".repeat(100)}\n\n`), { maxEventSize: 10 })) {
      // unreachable
    }
  }, RangeError);
});

Deno.test("formatSseEvent() writes the id line only when there is an id", () => {
  assert.equal(formatSseEvent("{}", 3), "id: 3\ndata: {}\n\n");
  assert.equal(formatSseEvent("{}"), "data: {}\n\n");
});
