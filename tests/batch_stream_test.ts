// Batched stream delivery over capnweb, seen on the wire from a raw capnweb client: a client that
// announces `batchEvents` gets `onEvents` batches within its credit, and one that does not (an
// older client) still gets one `onEvent` per event.

import assert from "node:assert/strict";
import { newWebSocketRpcSession, RpcTarget } from "capnweb";
import { WebSocket as WsWebSocket } from "ws";
import type { AgentExecutor, StreamEvent } from "../mod.ts";
import {
  startServer,
  type TestServer,
  TOKENS,
  userMessage,
  waitFor,
  withDeadline,
} from "./helpers.ts";

/** Publishes WORKING, then `n` artifact events once the gate opens, then COMPLETED. */
function burstAgent(n: number): { executor: AgentExecutor; open: () => void } {
  const gate = Promise.withResolvers<void>();
  return {
    open: () => gate.resolve(),
    executor: {
      async execute(_ctx, events) {
        await events.status("TASK_STATE_WORKING");
        await gate.promise;
        for (let i = 0; i < n; i++) {
          await events.artifact({ artifactId: "a", parts: [{ text: `${i}` }] });
        }
        await events.status("TASK_STATE_COMPLETED");
      },
    },
  };
}

/** A sink of an older client: `onEvent` only. */
class EventSink extends RpcTarget {
  events: StreamEvent[] = [];
  ended = Promise.withResolvers<void>();
  onEvent(event: StreamEvent): void {
    this.events.push(event);
  }
  onEnd(): void {
    this.ended.resolve();
  }
  onError(error: unknown): void {
    this.ended.reject(error);
  }
}

/** A sink that takes batches; `hold` keeps every `onEvents` call unresolved until `release`. */
class BatchSink extends EventSink {
  batches: number[] = [];
  hold = false;
  #held: Array<() => void> = [];
  onEvents(events: StreamEvent[]): Promise<void> | void {
    this.batches.push(events.length);
    this.events.push(...events);
    if (this.hold) return new Promise((resolve) => this.#held.push(resolve));
  }
  release(): void {
    this.hold = false;
    for (const r of this.#held.splice(0)) r();
  }
}

/** A raw capnweb session that records the frames the server sends. */
function rawSession(server: TestServer) {
  const ws = new WsWebSocket(`${server.url.replace("http", "ws")}/a2a/capnweb`);
  const frames: string[] = [];
  ws.addEventListener("message", (e: { data: unknown }) => frames.push(String(e.data)));
  const closed = new Promise((r) => ws.addEventListener("close", r));
  // deno-lint-ignore no-explicit-any
  const root: any = newWebSocketRpcSession(ws as unknown as WebSocket);
  return {
    root,
    frames,
    async [Symbol.asyncDispose]() {
      root[Symbol.dispose]();
      ws.close(1000);
      await closed;
    },
  };
}

function assertWhole(events: StreamEvent[], from = 1): void {
  events.forEach((e, i) => assert.equal(e.seq, from + i, `event ${i}: every event once, in order`));
}

Deno.test("a client that announces batchEvents gets onEvents batches, in order and whole", async () => {
  const agent = burstAgent(500);
  await using server = startServer({ executor: agent.executor });
  await using raw = rawSession(server);
  const cap = await raw.root.authenticate({ token: TOKENS.alice }, { batchEvents: true });
  const sink = new BatchSink();
  using handle = await cap.sendStreamingMessage({ message: userMessage("go") }, sink);
  await waitFor(() => sink.events.length >= 2);
  agent.open();
  await sink.ended.promise;
  assertWhole(sink.events);
  assert.equal(sink.events.length, 503);
  assert.equal(sink.events.at(-1)?.statusUpdate?.status.state, "TASK_STATE_COMPLETED");
  assert.ok(sink.batches.some((n) => n > 1), `a burst goes in batches: ${sink.batches}`);
  assert.ok(sink.batches.every((n) => n >= 1 && n <= 256), `${sink.batches}`);
  assert.ok(
    raw.frames.some((f) => /^\["push",\["pipeline",-1,\["onEvents"\],\[\[\[\{"seq":/.test(f)),
    "the wire carries onEvents with one array argument",
  );
  assert.ok(!raw.frames.some((f) => f.includes('["onEvent"]')), "no onEvent call");
  handle[Symbol.dispose]();
  cap[Symbol.dispose]();
});

Deno.test("a client without batchEvents still gets one onEvent per event", async () => {
  const agent = burstAgent(300);
  await using server = startServer({ executor: agent.executor });
  await using raw = rawSession(server);
  const cap = await raw.root.authenticate({ token: TOKENS.alice }, { version: "1.0" });
  const sink = new EventSink();
  using handle = await cap.sendStreamingMessage({ message: userMessage("go") }, sink);
  agent.open();
  await sink.ended.promise;
  assertWhole(sink.events);
  assert.equal(sink.events.length, 303);
  assert.ok(!raw.frames.some((f) => f.includes('["onEvents"]')), "no onEvents call");
  assert.equal(raw.frames.filter((f) => f.includes('["onEvent"]')).length, 303);
  handle[Symbol.dispose]();
  cap[Symbol.dispose]();
});

Deno.test("a sink that holds its onEvents calls stops the stream at its credit, then overflows with -31002", async () => {
  const agent = burstAgent(400);
  // streamWindow 2: at most 2 calls and 2 × 32 = 64 events unacknowledged.
  await using server = startServer({
    executor: agent.executor,
    limits: { streamWindow: 2, subscriberBufferLimit: 16 },
  });
  const baseline = server.handler.stats();
  await using raw = rawSession(server);
  const cap = await raw.root.authenticate({ token: TOKENS.alice }, { batchEvents: true });
  const sink = new BatchSink();
  const handle = await cap.sendStreamingMessage({ message: userMessage("go") }, sink);
  await waitFor(() => sink.events.length >= 2);
  sink.release();
  sink.hold = true;
  // onError(-31002) comes while the sink still holds its calls (docs/BINDING.md section 9.6).
  const ended = sink.ended.promise.then(() => undefined, (e) => e);
  agent.open();
  await waitFor(() => server.handler.stats().overflows > baseline.overflows);
  const delivered = sink.events.length;
  assert.ok(delivered <= 2 + 64, `${delivered} events: no more than the credit unacknowledged`);
  const error = await withDeadline(ended, 5000, "onError(-31002) to a sink that holds its calls");
  sink.release();
  assert.equal(error?.code, -31002);
  // The overflow's lastSeq is the last event handed to the sink: resuming there loses nothing.
  assert.equal(error.lastSeq, sink.events.at(-1)!.seq);
  assertWhole(sink.events);
  const id = sink.events[0]!.task!.id;
  const rest = new BatchSink();
  using resumed = await cap.subscribeToTask({ id, afterSeq: error.lastSeq }, rest);
  await rest.ended.promise;
  assertWhole([...sink.events, ...rest.events]);
  assert.equal(sink.events.length + rest.events.length, 403);
  handle[Symbol.dispose]();
  resumed[Symbol.dispose]();
  cap[Symbol.dispose]();
});

Deno.test("authenticate() refuses a batchEvents that is not a boolean with -32602", async () => {
  await using server = startServer();
  await using raw = rawSession(server);
  const refused = await raw.root.authenticate({ token: TOKENS.alice }, { batchEvents: "yes" })
    .then(() => undefined, (e: unknown) => e);
  assert.equal((refused as { code?: number })?.code, -32602);
  assert.match(String((refused as Error).message), /batchEvents/);
});
