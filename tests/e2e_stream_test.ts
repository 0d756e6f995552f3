// End-to-end streaming over capnweb: stream shape and ordering, several subscribers, resume with
// afterSeq, early break, cancel while streaming and slow consumers.

import assert from "node:assert/strict";
import { A2AClient, type StreamEvent } from "../client.ts";
import {
  type AgentExecutor,
  StreamOverflowError,
  TaskManager,
  UnsupportedOperationError,
} from "../mod.ts";
import {
  startServer,
  STEP_MS,
  TOKENS,
  userMessage,
  waitFor,
  withDeadline,
  within,
} from "./helpers.ts";

function kinds(events: StreamEvent[]): string[] {
  return events.map((e) =>
    e.task
      ? `task:${e.task.status.state}`
      : e.statusUpdate
      ? `status:${e.statusUpdate.status.state}`
      : e.artifactUpdate
      ? "artifact"
      : "message"
  );
}

function artifactText(events: StreamEvent[]): string {
  return events.flatMap((e) => e.artifactUpdate?.artifact.parts ?? []).map((p) => p.text ?? "")
    .join("");
}

function assertConsecutive(events: StreamEvent[]): void {
  for (let i = 1; i < events.length; i++) {
    assert.equal(events[i]!.seq, events[i - 1]!.seq + 1, `seq gap at ${i}: ${kinds(events)}`);
  }
}

Deno.test("sendStreamingMessage() yields the task, artifact chunks and COMPLETED, seq by one", async () => {
  await using server = startServer();
  await using client = await withDeadline(A2AClient.connect(server.url, { token: TOKENS.alice }));
  const text = "streaming over capnweb is one socket";
  const events: StreamEvent[] = [];
  for await (const e of within(client.sendStreamingMessage({ message: userMessage(text) }))) {
    events.push(e);
  }
  assert.equal(events[0]?.seq, 1);
  assert.equal(events[0]?.task?.status.state, "TASK_STATE_SUBMITTED");
  assertConsecutive(events);
  const k = kinds(events);
  assert.equal(k[1], "status:TASK_STATE_WORKING");
  assert.ok(k.filter((x) => x === "artifact").length >= 2, k.join());
  assert.equal(k.at(-1), "status:TASK_STATE_COMPLETED");
  assert.equal(artifactText(events), text);
  const task = await withDeadline(client.getTask({ id: events[0]!.task!.id }));
  assert.equal(task.status.state, "TASK_STATE_COMPLETED");
});

Deno.test("a direct reply streams exactly one message and no task", async () => {
  await using server = startServer();
  await using client = await withDeadline(A2AClient.connect(server.url, { token: TOKENS.alice }));
  const events: StreamEvent[] = [];
  for await (
    const e of within(client.sendStreamingMessage({ message: userMessage("reply: hi") }))
  ) {
    events.push(e);
  }
  assert.deepEqual(kinds(events), ["message"]);
  assert.equal(events[0]?.message?.parts[0]?.text, "hi");
  assert.equal((await withDeadline(client.listTasks())).totalSize, 0);
});

Deno.test("a second subscriber mid-stream gets a snapshot, then the same later events", async () => {
  await using server = startServer();
  await using client = await withDeadline(A2AClient.connect(server.url, { token: TOKENS.alice }));
  const first: StreamEvent[] = [];
  const second: StreamEvent[] = [];
  let subscribed: Promise<void> | undefined;
  for await (
    const e of within(client.sendStreamingMessage({ message: userMessage("slow: a b c d") }))
  ) {
    first.push(e);
    if (e.artifactUpdate && !subscribed) {
      subscribed = (async () => {
        for await (const s of within(client.subscribeToTask({ id: e.artifactUpdate!.taskId }))) {
          second.push(s);
        }
      })();
    }
  }
  await withDeadline(Promise.resolve(subscribed), STEP_MS, "the second subscriber");
  assert.ok(second[0]?.task, "the first event of a subscription is a task snapshot");
  const snapSeq = second[0]!.seq;
  assertConsecutive(second);
  const later = first.filter((e) => e.seq > snapSeq);
  assert.deepEqual(second.slice(1), later);
  assert.equal(kinds(second).at(-1), "status:TASK_STATE_COMPLETED");
  // The snapshot reflects every event up to its seq.
  const seenText = artifactText(first.filter((e) => e.seq <= snapSeq));
  assert.equal(second[0]!.task!.artifacts?.[0]?.parts.map((p) => p.text).join("") ?? "", seenText);
});

Deno.test("resuming with afterSeq after a break delivers every later event exactly once", async () => {
  await using server = startServer();
  await using client = await withDeadline(A2AClient.connect(server.url, { token: TOKENS.alice }));
  const seen: StreamEvent[] = [];
  for await (
    const e of within(
      client.sendStreamingMessage({ message: userMessage("slow: one two three four") }),
    )
  ) {
    seen.push(e);
    if (seen.length === 3) break;
  }
  const taskId = seen[0]!.task!.id;
  const lastSeq = seen.at(-1)!.seq;
  for await (const e of within(client.subscribeToTask({ id: taskId, afterSeq: lastSeq }))) {
    seen.push(e);
  }
  assert.equal(seen[0]!.seq, 1);
  assertConsecutive(seen);
  assert.equal(artifactText(seen), "one two three four");
  assert.equal(kinds(seen).at(-1), "status:TASK_STATE_COMPLETED");
  // A finished task can still be replayed from the log with afterSeq, but not subscribed live.
  const replay: StreamEvent[] = [];
  for await (const e of within(client.subscribeToTask({ id: taskId, afterSeq: 0 }))) replay.push(e);
  assert.deepEqual(replay, seen);
  await assert.rejects(
    (async () => {
      for await (const _ of within(client.subscribeToTask({ id: taskId }))) { /* nothing */ }
    })(),
    (e: unknown) => e instanceof UnsupportedOperationError && e.code === -32004,
  );
});

Deno.test("leaving a stream early releases the subscription and callback on the server", async () => {
  await using server = startServer();
  await using client = await withDeadline(A2AClient.connect(server.url, { token: TOKENS.alice }));
  const base = server.handler.stats();
  for await (
    const e of within(client.sendStreamingMessage({ message: userMessage("slow: x y z w") }))
  ) {
    assert.ok(e.task);
    const during = server.handler.stats();
    assert.ok(during.subscribers > base.subscribers);
    assert.ok(during.resources > base.resources);
    break;
  }
  await waitFor(
    () => {
      const s = server.handler.stats();
      return s.subscribers === base.subscribers && s.resources === base.resources;
    },
    () => JSON.stringify(server.handler.stats()),
  );
  // The task itself goes on without subscribers.
  assert.equal((await withDeadline(client.listTasks())).totalSize, 1);
});

Deno.test("cancelTask() while streaming: every subscriber sees CANCELED and its stream ends", async () => {
  await using server = startServer();
  await using client = await withDeadline(A2AClient.connect(server.url, { token: TOKENS.alice }));
  await using other = await withDeadline(A2AClient.connect(server.url, { token: TOKENS.alice }));
  const a: StreamEvent[] = [];
  const b: StreamEvent[] = [];
  let watcher: Promise<void> | undefined;
  for await (
    const e of within(
      client.sendStreamingMessage({ message: userMessage("slow: 1 2 3 4 5 6 7 8") }),
    )
  ) {
    a.push(e);
    if (e.artifactUpdate && !watcher) {
      const id = e.artifactUpdate.taskId;
      watcher = (async () => {
        for await (const s of within(other.subscribeToTask({ id }))) b.push(s);
      })();
      await waitFor(() => b.length > 0);
      const canceled = await withDeadline(client.cancelTask({ id }));
      assert.equal(canceled.status.state, "TASK_STATE_CANCELED");
    }
  }
  await withDeadline(Promise.resolve(watcher), STEP_MS, "the other stream");
  assert.equal(kinds(a).at(-1), "status:TASK_STATE_CANCELED");
  assert.equal(kinds(b).at(-1), "status:TASK_STATE_CANCELED");
  assert.ok(artifactText(a).length < "1 2 3 4 5 6 7 8".length);
});

Deno.test("a consumer that falls behind overflows its server buffer and the client resumes from the log", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const burst: AgentExecutor = {
    async execute(_ctx, events) {
      await events.status("TASK_STATE_WORKING");
      await gate;
      for (let i = 0; i < 400; i++) {
        await events.artifact({ artifactId: "n", parts: [{ text: `${i},` }] }, { append: i > 0 });
      }
      await events.status("TASK_STATE_COMPLETED");
    },
  };
  await using server = startServer({
    executor: burst,
    limits: { subscriberBufferLimit: 8, streamWindow: 4 },
  });
  await using client = await withDeadline(A2AClient.connect(server.url, { token: TOKENS.alice }));
  const seen: StreamEvent[] = [];
  const it = client.sendStreamingMessage({ message: userMessage("go") })[Symbol.asyncIterator]();
  try {
    seen.push((await it.next()).value); // the task
    release();
    // Read nothing while the agent bursts: far more than 8 events pile up for this subscriber,
    // so the server ends its subscription with StreamOverflowError (-31002).
    const taskId = seen[0]!.task!.id;
    let state = "";
    for (let i = 0; i < 1000 && state !== "TASK_STATE_COMPLETED"; i++) {
      state = (await withDeadline(client.getTask({ id: taskId }))).status.state;
      await new Promise((r) => setTimeout(r, 5));
    }
    // The agent finished although this subscriber read nothing: it never waits on consumers.
    assert.equal(state, "TASK_STATE_COMPLETED");
    while (true) {
      const r = await it.next();
      if (r.done) break;
      seen.push(r.value);
    }
  } finally {
    await it.return?.();
  }
  // The client subscribed again after the last event it had and read the rest from the log.
  assertConsecutive(seen);
  assert.equal(kinds(seen).at(-1), "status:TASK_STATE_COMPLETED");
  assert.equal(seen.filter((e) => e.artifactUpdate).length, 400);
});

Deno.test("subscribeToTask() with afterSeq after an overflow replays exactly the missed events", async () => {
  const manager = new TaskManager({
    executor: {
      async execute(_ctx, events) {
        for (let i = 0; i < 50; i++) {
          await events.artifact({ artifactId: `a${i}`, parts: [{ text: "x" }] });
        }
        await events.status("TASK_STATE_COMPLETED");
      },
    },
    subscriberBufferLimit: 4,
  });
  try {
    const sub = await manager.sendStreamingMessage("alice", { message: userMessage("go") });
    const first = await sub.next();
    const taskId = first.value!.task!.id;
    await new Promise((r) => setTimeout(r, 20));
    await assert.rejects(
      (async () => {
        while (!(await sub.next()).done) { /* drain */ }
      })(),
      (e: unknown) => e instanceof StreamOverflowError && e.lastSeq === 1,
    );
    const rest = await manager.subscribeToTask("alice", { id: taskId, afterSeq: 1 });
    const seqs: number[] = [];
    for await (const e of rest) seqs.push(e.seq);
    assert.deepEqual(seqs, Array.from({ length: 51 }, (_, i) => i + 2));
  } finally {
    await manager.close();
  }
});

Deno.test("streaming over the batch transport is refused with UnsupportedOperationError", async () => {
  await using server = startServer();
  await using client = await withDeadline(A2AClient.connect(server.url, {
    token: TOKENS.alice,
    transport: "batch",
  }));
  await assert.rejects(
    (async () => {
      for await (const _ of within(client.sendStreamingMessage({ message: userMessage("x") }))) {
        // nothing
      }
    })(),
    UnsupportedOperationError,
  );
});
