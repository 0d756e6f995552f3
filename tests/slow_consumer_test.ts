// Slow consumers over capnweb: a reader that lags or stops for a while gets every event of a
// 50,000-event task exactly once and in order, through the server's overflow and the client's
// resume from the event log, and leaves nothing behind on the server.

import assert from "node:assert/strict";
import { A2AClient, type StreamEvent } from "../client.ts";
import type { AgentExecutor } from "../mod.ts";
import { startServer, TOKENS, userMessage } from "./helpers.ts";

const EVENTS = 50_000;

/**
 * Publishes WORKING, EVENTS - 3 artifact events as fast as the core takes them, COMPLETED. Each
 * event replaces the artifact: appending 50,000 parts would spend the time in the core's copy of a
 * growing parts list instead.
 */
const burst: AgentExecutor = {
  async execute(_ctx, events) {
    await events.status("TASK_STATE_WORKING");
    for (let i = 0; i < EVENTS - 3; i++) {
      await events.artifact({ artifactId: "a", parts: [{ text: `${i}` }] });
    }
    await events.status("TASK_STATE_COMPLETED");
  },
};

/** Reads a stream, calling `pause(n)` after every event, and checks it is whole and in order. */
async function read(
  stream: AsyncIterable<StreamEvent>,
  pause: (n: number) => Promise<void> | undefined,
): Promise<number> {
  let n = 0;
  for await (const e of stream) {
    n++;
    assert.equal(e.seq, n, `event ${n} has seq ${e.seq}: every event once, in order`);
    await pause(n);
  }
  return n;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Fails instead of hanging: a stalled stream is the bug this file is about. */
async function bounded<T>(promise: Promise<T>, ms = 120_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new Error(`The streams stalled for ${ms} ms`)), ms)
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("a slow reader and a paused reader of a 50,000-event stream get every event once, in order", async () => {
  await using server = startServer({ executor: burst });
  const baseline = server.handler.stats();
  await using slow = await A2AClient.connect(server.url, { token: TOKENS.alice });
  await using paused = await A2AClient.connect(server.url, { token: TOKENS.bob });
  await using healthy = await A2AClient.connect(server.url, { token: TOKENS.alice });
  const sent = await slow.sendMessage({
    message: userMessage("go"),
    configuration: { returnImmediately: true },
  });
  const id = sent.task!.id;
  const [a, b] = await bounded(Promise.all([
    // Pauses 1 ms every 25 events.
    read(slow.subscribeToTask({ id, afterSeq: 0 }), (n) => n % 25 === 0 ? sleep(1) : undefined),
    // Stops for 2 s after 1,000 events, then reads on.
    read(
      paused.sendStreamingMessage({ message: userMessage("go") }),
      (n) => n === 1000 ? sleep(2000) : undefined,
    ),
    (async () => {
      // A well-behaved client is served meanwhile.
      await sleep(500);
      const task = await healthy.getTask({ id });
      assert.equal(task.id, id);
    })(),
  ]));
  assert.equal(a, EVENTS);
  assert.equal(b, EVENTS);
  assert.ok(
    server.handler.stats().overflows > baseline.overflows,
    "the server's overflow path was exercised, and the client resumed from the log",
  );
});
