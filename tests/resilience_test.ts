// Fault injection: a TCP proxy between the real client and the real server cuts, stalls and
// delays connections; the client reconnects, retries reads and resumes its streams.

import assert from "node:assert/strict";
import { A2AClient, type ConnectionState, type StreamEvent } from "../client.ts";
import type { SendMessageResponse } from "../mod.ts";
import {
  startServer,
  STEP_MS,
  TOKENS,
  userMessage,
  waitFor,
  withDeadline,
  within,
} from "./helpers.ts";
import { startServerProcess } from "./process.ts";
import { TcpProxy } from "./tcp_proxy.ts";

const FAST_RECONNECT = { initialDelayMs: 10, maxDelayMs: 100, maxAttempts: 50 };

function assertExactlyOnce(events: StreamEvent[]): void {
  assert.equal(events[0]?.seq, 1);
  for (let i = 1; i < events.length; i++) {
    assert.equal(events[i]!.seq, events[i - 1]!.seq + 1, `seq ${events[i]!.seq} at ${i}`);
  }
}

function text(events: StreamEvent[]): string {
  return events.flatMap((e) => e.artifactUpdate?.artifact.parts ?? []).map((p) => p.text).join("");
}

Deno.test("a stream through a proxy that cuts every few events delivers each event once, in order", async () => {
  await using server = startServer();
  await using proxy = new TcpProxy(server.addr);
  const states: ConnectionState[] = [];
  await using client = await withDeadline(A2AClient.connect(proxy.url, {
    token: TOKENS.alice,
    reconnect: FAST_RECONNECT,
    onStateChange: (s) => states.push(s),
  }));
  const words = "one two three four five six seven eight nine ten eleven twelve";
  const events: StreamEvent[] = [];
  let cuts = 0;
  for await (
    const e of within(client.sendStreamingMessage({ message: userMessage(`slow: ${words}`) }))
  ) {
    events.push(e);
    if (events.length % 3 === 0) {
      cuts++;
      await proxy.cut();
    }
  }
  assert.ok(cuts >= 4, `only ${cuts} cuts`);
  assertExactlyOnce(events);
  assert.equal(text(events), words);
  assert.equal(events.at(-1)?.statusUpdate?.status.state, "TASK_STATE_COMPLETED");
  assert.ok(proxy.accepted > cuts, "the client opened a new connection after each cut");
  assert.ok(states.includes("reconnecting") && states.at(-1) === "open", states.join());
  await withDeadline(client.close());
  await server.settled();
});

Deno.test("a read and a send in flight when the connection drops are retried; the send runs once", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  let runs = 0;
  await using server = startServer({
    executor: {
      async execute(_ctx, events) {
        runs++;
        await events.status("TASK_STATE_WORKING");
        await gate;
        await events.status("TASK_STATE_COMPLETED");
      },
    },
  });
  await using proxy = new TcpProxy(server.addr);
  await using client = await withDeadline(A2AClient.connect(proxy.url, {
    token: TOKENS.alice,
    reconnect: FAST_RECONNECT,
  }));
  const { task } = await withDeadline(client.sendMessage({
    message: userMessage("first"),
    configuration: { returnImmediately: true },
  }));
  assert.ok(task);
  proxy.delayMs = 50; // keep the next calls in flight long enough to be cut
  const send = client.sendMessage({ message: userMessage("second") });
  const read = client.getTask({ id: task.id });
  await new Promise((r) => setTimeout(r, 10));
  proxy.delayMs = 0;
  await proxy.cut();
  const got = await withDeadline(read, STEP_MS, "the retried read");
  assert.equal(got.id, task.id);
  release();
  const sent = await withDeadline(send, STEP_MS, "the retried send");
  assert.equal(sent.task?.status.state, "TASK_STATE_COMPLETED");
  assert.equal(runs, 2, "the cut send ran once, however many times it was sent");
  const { tasks } = await withDeadline(client.listTasks({}));
  assert.equal(tasks.length, 2);
});

Deno.test("a stalled connection is detected by ping on the client, which reconnects and resumes", async () => {
  await using server = startServer({ limits: { idleTimeoutSeconds: 1 } });
  await using proxy = new TcpProxy(server.addr);
  await using client = await withDeadline(A2AClient.connect(proxy.url, {
    token: TOKENS.alice,
    reconnect: FAST_RECONNECT,
    liveness: { pingIntervalMs: 100, pingTimeoutMs: 200, connectTimeoutMs: 500 },
  }));
  const events: StreamEvent[] = [];
  for await (
    const e of within(client.sendStreamingMessage({ message: userMessage("slow: a b c d e f") }))
  ) {
    events.push(e);
    if (events.length === 3) proxy.stall();
  }
  assertExactlyOnce(events);
  assert.equal(text(events), "a b c d e f");
  assert.ok(proxy.accepted >= 2);
  // The server's heartbeat finds the vanished peer of the stalled connection and drops it.
  await withDeadline(client.close());
  await waitFor(
    () => server.handler.stats().sessions === server.baseline.sessions,
    () => JSON.stringify(server.handler.stats()),
    10_000,
  );
  proxy.resume();
});

Deno.test("the server drops a connection whose peer stops answering heartbeats", async () => {
  await using server = startServer({ limits: { idleTimeoutSeconds: 1 } });
  await using proxy = new TcpProxy(server.addr);
  const client = await withDeadline(A2AClient.connect(proxy.url, {
    token: TOKENS.alice,
    reconnect: false,
    liveness: { pingIntervalMs: 0 },
  }));
  try {
    await withDeadline(client.listTasks());
    assert.equal(server.handler.stats().sessions, server.baseline.sessions + 1);
    proxy.stall();
    await waitFor(
      () => server.handler.stats().sessions === server.baseline.sessions,
      () => JSON.stringify(server.handler.stats()),
      10_000,
    );
    assert.equal(server.handler.stats().resources, server.baseline.resources);
  } finally {
    proxy.resume();
    await withDeadline(client.close());
  }
});

Deno.test("a delayed connection still delivers every event in order", async () => {
  await using server = startServer();
  await using proxy = new TcpProxy(server.addr);
  await using client = await withDeadline(A2AClient.connect(proxy.url, { token: TOKENS.alice }));
  proxy.delayMs = 20;
  const events: StreamEvent[] = [];
  const sent = "delays do not reorder anything at all, ever";
  for await (const e of within(client.sendStreamingMessage({ message: userMessage(sent) }))) {
    events.push(e);
  }
  assertExactlyOnce(events);
  assert.equal(text(events), sent);
});

Deno.test("a graceful shutdown tells clients to reconnect; their paused-task streams resume elsewhere", async () => {
  const first = startServer();
  const port = first.addr.port;
  const states: ConnectionState[] = [];
  const client = await withDeadline(A2AClient.connect(first.url, {
    token: TOKENS.alice,
    reconnect: { initialDelayMs: 20, maxDelayMs: 50, maxAttempts: 100 },
    onStateChange: (s) => states.push(s),
  }));
  try {
    const { task } = await withDeadline(
      client.sendMessage({ message: userMessage("input: name?") }),
    );
    assert.equal(task?.status.state, "TASK_STATE_INPUT_REQUIRED");
    // With a shared store, another instance on the same address takes over.
    const store = first.handler.manager.store;
    const events: StreamEvent[] = [];
    let second: ReturnType<typeof startServer> | undefined;
    for await (const e of within(client.subscribeToTask({ id: task.id }))) {
      events.push(e);
      if (events.length === 1) {
        await first.shutdown();
        second = startServer({ port, store });
        await waitFor(() => states.includes("reconnecting") && client.state === "open");
        // Answering the question on the new instance completes the task.
        const reply: SendMessageResponse = await withDeadline(client.sendMessage({
          message: userMessage("Ada", { taskId: task.id }),
        }));
        assert.equal(reply.task?.status.state, "TASK_STATE_COMPLETED");
      }
    }
    assert.ok(states.includes("reconnecting"));
    assert.ok(events[0]?.task);
    assert.equal(events.at(-1)?.statusUpdate?.status.state, "TASK_STATE_COMPLETED");
    for (let i = 2; i < events.length; i++) assert.equal(events[i]!.seq, events[i - 1]!.seq + 1);
    await withDeadline(client.close());
    await second?.[Symbol.asyncDispose]();
  } finally {
    await withDeadline(client.close());
    await first.shutdown();
  }
});

Deno.test("a client streaming a task resumes after the server is killed and restarted on the same data", async () => {
  const dir = await Deno.makeTempDir();
  const data = `${dir}/tasks.db`;
  let server = await startServerProcess(data);
  const port = Number(new URL(server.url).port);
  const states: ConnectionState[] = [];
  const client = await withDeadline(A2AClient.connect(server.url, {
    token: TOKENS.alice,
    reconnect: { initialDelayMs: 50, maxDelayMs: 200, maxAttempts: 100 },
    onStateChange: (s) => states.push(s),
  }));
  try {
    const events: StreamEvent[] = [];
    const stream = client.sendStreamingMessage({
      message: userMessage("slow: one two three four five six seven eight"),
    });
    for await (const e of stream) {
      events.push(e);
      if (events.length === 4) {
        await server.kill();
        server = await startServerProcess(data, port);
      }
    }
    assertExactlyOnce(events);
    const last = events.at(-1)?.statusUpdate?.status;
    assert.equal(last?.state, "TASK_STATE_FAILED");
    assert.match(last?.message?.parts[0]?.text ?? "", /restarted/);
    assert.ok(states.includes("reconnecting"));
    const task = await withDeadline(client.getTask({ id: events[0]!.task!.id }));
    assert.equal(task.status.state, "TASK_STATE_FAILED");
  } finally {
    await withDeadline(client.close());
    await server.kill();
    await Deno.remove(dir, { recursive: true });
  }
});
