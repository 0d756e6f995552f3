// A stream subscriber's buffer is bounded in bytes as well as in events: a slow consumer of large
// events is ended with StreamOverflowError (-31002) long before 1024 of them wait, resumes with
// afterSeq, and other subscribers are served meanwhile.

import assert from "node:assert/strict";
import { ErrorCode, StreamOverflowError } from "../src/errors/errors.ts";
import type { AgentExecutor } from "../src/tasks/executor.ts";
import { textOf } from "../src/tasks/executor.ts";
import type { StreamEvent } from "../src/tasks/store.ts";
import { eventBytes, eventBytesBound, Subscription } from "../src/tasks/subscription.ts";
import { TaskManager } from "../src/tasks/task_manager.ts";
import { userMessage } from "./helpers.ts";

const KIB = 1024;
const MIB = 1024 * KIB;

/** An artifact chunk event whose JSON is a little over `bytes` long. */
function chunk(seq: number, bytes: number, text = "x"): StreamEvent {
  return {
    seq,
    artifactUpdate: {
      taskId: "t",
      contextId: "c",
      artifact: { artifactId: "a", parts: [{ text: text.repeat(bytes / text.length) }] },
      append: true,
    },
  };
}

function utf8(value: unknown): number {
  return new TextEncoder().encode(JSON.stringify(value)).length;
}

Deno.test("eventBytes() is the UTF-8 size of the event's JSON, and eventBytesBound() never less", () => {
  const texts = [
    "plain",
    "é and ü",
    "日本語のテキスト",
    "emoji 😀 and 👍🏽",
    "lone \ud800 high and \udc00 low surrogates",
    'quotes " and \\ backslashes',
    "control \u0000\u0001\n\t characters",
    "\ud83d".repeat(70_000) + "\ude00".repeat(70_000),
    // Text longer than one measuring chunk, at both parities: a pair straddles a chunk's end.
    "😀".repeat(70_000),
    "a" + "😀".repeat(70_000),
  ];
  for (const text of texts) {
    const event: StreamEvent = {
      seq: 7,
      statusUpdate: {
        taskId: "t",
        contextId: "c",
        status: {
          state: "TASK_STATE_WORKING",
          message: { messageId: "m", role: "ROLE_AGENT", parts: [{ text }] },
        },
        metadata: { n: -0.0000012345678901234567, big: 1e300, list: [1, true, null, "x"] },
      },
    };
    assert.equal(eventBytes(event), utf8(event), JSON.stringify(text.slice(0, 20)));
    assert.ok(eventBytesBound(event) >= eventBytes(event));
  }
  // A value that is not plain data is measured rather than bounded.
  const dated = {
    seq: 1,
    task: { id: "t", contextId: "c", status: { state: "TASK_STATE_WORKING" } },
    metadata: { at: new Date(0) },
  };
  assert.equal(eventBytesBound(dated as unknown as StreamEvent), utf8(dated));
});

Deno.test("a Subscription overflows past maxBytes with StreamOverflowError and its lastSeq", async () => {
  const sub = new Subscription(1024, 0, undefined, { maxBytes: 100 * KIB });
  sub.push(chunk(1, 40 * KIB));
  assert.equal((await sub.next()).value?.seq, 1);
  sub.push(chunk(2, 40 * KIB));
  sub.push(chunk(3, 40 * KIB));
  assert.equal(sub.pendingBytes, eventBytes(chunk(2, 40 * KIB)) * 2);
  assert.equal(sub.done, false);
  sub.push(chunk(4, 40 * KIB));
  assert.equal(sub.overflowed, true);
  const err = await sub.next().then(() => assert.fail("expected an overflow"), (e: unknown) => e);
  assert.ok(err instanceof StreamOverflowError);
  assert.equal(err.code, ErrorCode.StreamOverflow);
  assert.equal(err.lastSeq, 1);
  assert.match(err.message, /more than 102400 bytes of events were waiting.*afterSeq 1/);
  assert.equal((await sub.next()).done, true);
});

Deno.test("a Subscription lets one event wait whatever its size, and frees bytes as they are taken", async () => {
  const sub = new Subscription(1024, 0, undefined, { maxBytes: 10 * KIB });
  sub.push(chunk(1, 64 * KIB));
  assert.equal(sub.done, false, "one event bigger than the bound waits in an empty buffer");
  assert.equal(sub.pendingBytes, eventBytes(chunk(1, 64 * KIB)));
  assert.equal((await sub.next()).value?.seq, 1);
  assert.equal(sub.pendingBytes, 0);
  // Small events fit again once the big one is taken.
  for (let seq = 2; seq < 12; seq++) sub.push(chunk(seq, 512));
  assert.equal(sub.done, false);
  assert.equal(sub.pending, 10);
  sub.close();
});

Deno.test("a Subscription counts multi-byte text by its UTF-8 size, not its length", () => {
  // 20,000 units of three-byte text each: 60 KB of UTF-8, 20 K of UTF-16.
  const big = chunk(2, 20_000, "日");
  const sub = new Subscription(1024, 0, undefined, { maxBytes: 100 * KIB });
  sub.push(chunk(1, 10));
  sub.push(big);
  assert.equal(sub.done, false);
  sub.push(chunk(3, 20_000, "日"));
  assert.equal(sub.overflowed, true, "120 KB of UTF-8 is over the 100 KiB bound");
});

Deno.test("a Subscription does not count the replay queued before setLimit() against its bytes", () => {
  const sub = new Subscription(Infinity, 0);
  for (let seq = 1; seq <= 20; seq++) sub.push(chunk(seq, 16 * KIB));
  sub.setLimit(1024, 64 * KIB);
  assert.equal(sub.pendingBytes, 0);
  sub.push(chunk(21, 16 * KIB));
  sub.push(chunk(22, 16 * KIB));
  sub.push(chunk(23, 16 * KIB));
  assert.equal(sub.done, false, "three new 16 KiB events fit in 64 KiB");
  sub.push(chunk(24, 16 * KIB));
  sub.push(chunk(25, 16 * KIB));
  assert.equal(sub.overflowed, true);
});

Deno.test("a Subscription does not count the replay queued before setLimit() against its events", async () => {
  const sub = new Subscription(Infinity, 0);
  for (let seq = 1; seq <= 20; seq++) sub.push(chunk(seq, 8));
  sub.setLimit(2);
  // Taking replayed events does not make room for more new ones than the limit.
  for (let seq = 1; seq <= 10; seq++) assert.equal((await sub.next()).value?.seq, seq);
  sub.push(chunk(21, 8));
  sub.push(chunk(22, 8));
  assert.equal(sub.done, false);
  sub.push(chunk(23, 8));
  assert.equal(sub.overflowed, true);
  assert.equal(sub.lastSeq, 10);
});

/** A small seeded generator (mulberry32), so that a failure can be replayed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("a Subscription overflows exactly when the UTF-8 sizes of its waiting events pass maxBytes", async () => {
  const alphabet = ["a", "é", "日", "😀", '"', "\n"];
  let overflows = 0;
  for (let seed = 1; seed <= 50; seed++) {
    const next = random(seed);
    const maxBytes = 1000 + Math.floor(next() * 20_000);
    const sub = new Subscription(1024, 0, undefined, { maxBytes });
    // The model: the exact sizes of the events waiting.
    const waiting: number[] = [];
    for (let seq = 1; seq <= 400; seq++) {
      if (waiting.length > 0 && next() < 0.3) {
        assert.equal((await sub.next()).value?.seq, seq - waiting.length);
        waiting.shift();
      }
      const text = Array.from(
        { length: Math.floor(next() * 600) },
        () => alphabet[Math.floor(next() * alphabet.length)],
      ).join("");
      const event: StreamEvent = {
        seq,
        statusUpdate: {
          taskId: "t",
          contextId: "c",
          status: {
            state: "TASK_STATE_WORKING",
            message: { messageId: `${seq}`, role: "ROLE_AGENT", parts: [{ text }] },
          },
        },
      };
      const size = utf8(event);
      const over = waiting.length > 0 && waiting.reduce((a, b) => a + b, 0) + size > maxBytes;
      sub.push(event);
      assert.equal(sub.overflowed, over, `seed ${seed}, seq ${seq}`);
      if (over) {
        overflows++;
        break;
      }
      waiting.push(size);
      if (next() < 0.2) assert.equal(sub.pendingBytes, waiting.reduce((a, b) => a + b, 0));
    }
    sub.close();
  }
  assert.ok(overflows >= 25, `${overflows} of 50 runs overflowed`);
});

/**
 * Sets WORKING, waits for `go`, then streams 300 artifact chunks (of 64 KiB, about 19 MiB, for
 * `big`; of one character otherwise) and completes: seq 1 is the task, 303 COMPLETED. `done` is
 * called once the COMPLETED event has been handed to the task's subscribers.
 */
function agent(go: Promise<void>, done: (text: string) => void = () => {}): AgentExecutor {
  return {
    async execute(ctx, events) {
      const text = textOf(ctx.message) === "big" ? "x".repeat(64 * KIB) : "y";
      await events.status("TASK_STATE_WORKING");
      await go;
      for (let i = 0; i < 300; i++) {
        await events.artifact({ artifactId: "a", parts: [{ text }] }, { append: i > 0 });
      }
      await events.status("TASK_STATE_COMPLETED");
      done(textOf(ctx.message));
    },
  };
}

Deno.test("a slow consumer of large artifact chunks overflows by bytes before 1024 events while another task's subscriber is served", async () => {
  const go = Promise.withResolvers<void>();
  const bigDone = Promise.withResolvers<void>();
  const manager = new TaskManager({
    executor: agent(go.promise, (text) => text === "big" && bigDone.resolve()),
  });
  try {
    const slow = await manager.sendStreamingMessage("alice", { message: userMessage("big") });
    const normal = await manager.sendStreamingMessage("bob", { message: userMessage("small") });
    const first = await slow.next();
    const taskId = first.value!.task!.id;
    go.resolve();
    // The normal subscriber reads every event of its task, while the slow one reads nothing.
    const seen: StreamEvent[] = [];
    for await (const e of normal) seen.push(e);
    assert.equal(seen.at(-1)?.statusUpdate?.status.state, "TASK_STATE_COMPLETED");
    assert.deepEqual(seen.map((e) => e.seq), Array.from({ length: 303 }, (_, i) => i + 1));

    // The big task finishes although its subscriber read nothing: the core never waits on it.
    await bigDone.promise;
    let queued = 0;
    const err = await (async () => {
      while (!(await slow.next()).done) queued++;
    })().then(() => assert.fail("expected an overflow"), (e: unknown) => e);
    assert.ok(err instanceof StreamOverflowError);
    assert.equal(err.lastSeq, 1);
    assert.match(err.message, /bytes of events/);
    assert.equal(queued, 0, "an overflow drops what was queued");
    assert.equal(manager.overflowCount, 1);
    assert.equal(manager.subscriberCount, 0, "the overflowed subscriber is forgotten");

    // It resumes after the last seq it had and gets the rest from the log.
    const rest = await manager.subscribeToTask("alice", { id: taskId, afterSeq: err.lastSeq });
    const seqs: number[] = [];
    for await (const e of rest) seqs.push(e.seq);
    assert.deepEqual(seqs, Array.from({ length: 302 }, (_, i) => i + 2));
  } finally {
    await manager.close();
  }
});

Deno.test("subscriberBufferBytes sets the byte bound of a stream", async () => {
  const go = Promise.withResolvers<void>();
  const done = Promise.withResolvers<void>();
  const manager = new TaskManager({
    executor: agent(go.promise, () => done.resolve()),
    subscriberBufferBytes: MIB,
  });
  try {
    const slow = await manager.sendStreamingMessage("alice", { message: userMessage("big") });
    await slow.next();
    go.resolve();
    await done.promise;
    await assert.rejects(
      slow.next(),
      (e: unknown) => e instanceof StreamOverflowError && /more than 1048576 bytes/.test(e.message),
    );
    assert.equal(manager.overflowCount, 1);
  } finally {
    await manager.close();
  }
});
