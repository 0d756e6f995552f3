// Per-user quotas: unfinished tasks and open streams. A user past a quota gets QuotaExceededError
// (-31005; HTTP 429 with Retry-After on JSON-RPC), and another user is served meanwhile.

import assert from "node:assert/strict";
import { A2AClient } from "../client.ts";
import { A2AError, ErrorCode, QuotaExceededError } from "../src/errors/errors.ts";
import type { AgentExecutor } from "../src/tasks/executor.ts";
import { textOf } from "../src/tasks/executor.ts";
import { TaskManager } from "../src/tasks/task_manager.ts";
import { postJsonRpc, startServer, TOKENS, userMessage } from "./helpers.ts";

/** `ask` pauses for input (a task that has not ended); anything else completes. */
const agent: AgentExecutor = {
  async execute(ctx, events) {
    await events.status(
      textOf(ctx.message) === "ask" ? "TASK_STATE_INPUT_REQUIRED" : "TASK_STATE_COMPLETED",
    );
  },
};

Deno.test("a user past maxUnfinishedTasksPerUser gets QuotaExceededError; ending a task makes room", async () => {
  const manager = new TaskManager({ executor: agent, maxUnfinishedTasksPerUser: 3 });
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    ids.push((await manager.sendMessage("alice", { message: userMessage("ask") })).task!.id);
  }
  await assert.rejects(
    manager.sendMessage("alice", { message: userMessage("ask") }),
    (e) => e instanceof QuotaExceededError && /at most 3 per user/.test(e.message),
  );
  // Completed tasks do not count, and bob has his own quota.
  const bob = await manager.sendMessage("bob", { message: userMessage("ask") });
  assert.equal(bob.task?.status.state, "TASK_STATE_INPUT_REQUIRED");
  await manager.cancelTask("alice", { id: ids[0]! });
  const again = await manager.sendMessage("alice", { message: userMessage("ask") });
  assert.equal(again.task?.status.state, "TASK_STATE_INPUT_REQUIRED");
  await manager.close();
});

Deno.test("a user past maxStreamsPerUser gets QuotaExceededError over capnweb and 429 over JSON-RPC while another user streams", async () => {
  await using server = startServer({ executor: agent, limits: { maxStreamsPerUser: 100 } });
  await using alice = await A2AClient.connect(server.url, { token: TOKENS.alice });
  await using bob = await A2AClient.connect(server.url, { token: TOKENS.bob });
  const paused = await alice.sendMessage({ message: userMessage("ask") });
  const id = paused.task!.id;
  const limit = 100;
  const streams: AsyncIterator<unknown>[] = [];
  for (let i = 0; i < limit; i++) {
    const it = alice.subscribeToTask({ id })[Symbol.asyncIterator]();
    await it.next(); // the snapshot: the stream is open
    streams.push(it);
  }
  const over = alice.subscribeToTask({ id })[Symbol.asyncIterator]();
  await assert.rejects(
    over.next(),
    (e) => e instanceof A2AError && e.code === ErrorCode.QuotaExceeded,
  );
  const res = await postJsonRpc(server.url, "SubscribeToTask", { id });
  assert.equal(res.status, 429);
  assert.equal(res.headers.get("retry-after"), "1");
  assert.equal((await res.json()).error.code, ErrorCode.QuotaExceeded);
  // bob is served meanwhile.
  const bobs = await bob.sendMessage({ message: userMessage("done") });
  assert.equal(bobs.task?.status.state, "TASK_STATE_COMPLETED");
  for (const it of streams) await it.return?.();
  const after = alice.subscribeToTask({ id })[Symbol.asyncIterator]();
  assert.ok((await after.next()).value, "a closed stream gave its slot back");
  await after.return?.();
});
