// The -31002 row of the error table on the two SSE bindings. Over a socket, a reader that stops
// reading only backs its stream up once the kernel's buffers are full, which no test can size;
// here the handler is called in-process and the response body is left unread, so the stream's
// own queue (16 events) and the subscriber buffer (4) fill exactly, and then overflow.

import assert from "node:assert/strict";
import { type AgentExecutor, createHandler, demoAgentCard, StaticTokenVerifier } from "../mod.ts";
import { parseSse } from "../src/json_http/sse.ts";
import { userMessage } from "./helpers.ts";

const CHUNKS = 200;
let release = () => {};
const done = new Promise<void>((resolve) => release = resolve);

/** Publishes CHUNKS artifact chunks as fast as it can, then waits for the test to let it end. */
const burst: AgentExecutor = {
  async execute(_ctx, events) {
    await events.status("TASK_STATE_WORKING");
    for (let i = 0; i < CHUNKS; i++) {
      await events.artifact(
        { artifactId: "a", parts: [{ text: `chunk ${i} ` }] },
        { append: i > 0, lastChunk: i === CHUNKS - 1 },
      );
    }
    await done;
    await events.status("TASK_STATE_COMPLETED");
  },
};

function request(path: string, body: unknown): Request {
  return new Request(`http://localhost${path}`, {
    method: "POST",
    headers: {
      authorization: "Bearer token-alice",
      "content-type": "application/json",
      "a2a-version": "1.0",
    },
    body: JSON.stringify(body),
  });
}

/** Reads every SSE event of a response body and its data parsed. */
async function events(res: Response): Promise<{ id: string | undefined; data: unknown }[]> {
  const out = [];
  for await (const e of parseSse(res.body!)) out.push({ id: e.id, data: JSON.parse(e.data) });
  return out;
}

for (
  const binding of [
    {
      name: "JSON-RPC",
      code: -31002,
      req: () =>
        request("/a2a/jsonrpc", {
          jsonrpc: "2.0",
          id: 1,
          method: "SendStreamingMessage",
          params: { message: userMessage("go") },
        }),
      // deno-lint-ignore no-explicit-any
      error: (data: any) => data.error,
      // deno-lint-ignore no-explicit-any
      reason: (error: any) => error.data[0].reason,
      // deno-lint-ignore no-explicit-any
      lastSeq: (error: any) => error.data[0].metadata.lastSeq,
    },
    {
      name: "HTTP+JSON",
      // The HTTP status in the body, as docs/REST.md maps -31002 (the reason names the error).
      code: 429,
      req: () => request("/a2a/rest/message:stream", { message: userMessage("go") }),
      // deno-lint-ignore no-explicit-any
      error: (data: any) => data.error,
      // deno-lint-ignore no-explicit-any
      reason: (error: any) => error.details[0].reason,
      // deno-lint-ignore no-explicit-any
      lastSeq: (error: any) => error.details[0].metadata.lastSeq,
    },
  ]
) {
  Deno.test(`a ${binding.name} stream nobody reads ends with -31002 StreamOverflowError and its lastSeq`, async () => {
    const handler = createHandler({
      agentCard: demoAgentCard,
      executor: burst,
      verifier: StaticTokenVerifier.fromList("alice=token-alice"),
      limits: { subscriberBufferLimit: 4 },
    });
    try {
      const res = await handler(binding.req());
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "text/event-stream");
      // Nothing reads the body until the agent has published everything.
      while (handler.stats().overflows === 0) await new Promise((r) => setTimeout(r, 5));
      const got = await events(res);
      const last = got.at(-1)!;
      const error = binding.error(last.data);
      assert.ok(error, `the last event is an error: ${JSON.stringify(last.data)}`);
      assert.equal(error.code, binding.code);
      assert.match(error.message, /^Stream ended: more than 4 events were waiting/);
      assert.equal(binding.reason(error), "STREAM_OVERFLOW");
      // The events before it are contiguous from seq 1, and lastSeq is the last one delivered.
      const seqs = got.slice(0, -1).map((e) => Number(e.id));
      assert.deepEqual(seqs, seqs.map((_, i) => i + 1));
      assert.equal(Number(binding.lastSeq(error)), seqs.at(-1));
      assert.ok(seqs.length < CHUNKS, `overflowed before the end: ${seqs.length} events`);
    } finally {
      release();
      await handler.close();
    }
  });
}
