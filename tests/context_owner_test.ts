// A contextId belongs to the user who created it: another user's new task in it is refused with
// InvalidParamsError (-32602) and is not created, over every store and binding, while the owner
// and other users go on being served.

import assert from "node:assert/strict";
import { A2AClient } from "../client.ts";
import { A2AError, ErrorCode, InvalidParamsError } from "../src/errors/errors.ts";
import type { AgentExecutor } from "../src/tasks/executor.ts";
import { textOf } from "../src/tasks/executor.ts";
import { InMemoryTaskStore, type TaskStore } from "../src/tasks/store.ts";
import { TaskManager } from "../src/tasks/task_manager.ts";
import { STORES } from "./faulty_store.ts";
import { postJsonRpc, startServer, TOKENS, userMessage } from "./helpers.ts";

/** How many times the agent ran for each user. */
const runs = new Map<string, number>();

/** `ask` pauses for input (a task that has not ended); anything else completes. */
const agent: AgentExecutor = {
  async execute(ctx, events) {
    runs.set(ctx.userId, (runs.get(ctx.userId) ?? 0) + 1);
    await events.status(
      textOf(ctx.message) === "ask" ? "TASK_STATE_INPUT_REQUIRED" : "TASK_STATE_COMPLETED",
    );
  },
};

function isContextTaken(e: unknown): boolean {
  return e instanceof A2AError && e.code === ErrorCode.InvalidParams &&
    /contextId belongs to another user/.test(e.message);
}

async function taskCount(store: TaskStore, owner: string): Promise<number> {
  return (await store.list(owner, { pageSize: 100, pageToken: "" })).totalSize;
}

for (const [name, open] of STORES) {
  Deno.test(`sendMessage() refuses another user's contextId and creates no task (${name})`, async () => {
    await using opened = await open();
    const store = opened.store;
    const manager = new TaskManager({ executor: agent, store });
    runs.clear();
    try {
      const first = await manager.sendMessage("alice", {
        message: userMessage("hi", { contextId: "ctx-a" }),
      });
      assert.equal(first.task?.contextId, "ctx-a");
      await assert.rejects(
        manager.sendMessage("bob", { message: userMessage("hi", { contextId: "ctx-a" }) }),
        isContextTaken,
      );
      await assert.rejects(
        manager.sendStreamingMessage("bob", { message: userMessage("hi", { contextId: "ctx-a" }) }),
        isContextTaken,
      );
      assert.equal(await taskCount(store, "bob"), 0, "no task of bob's was created");
      assert.equal(runs.get("bob"), undefined, "the agent never saw bob's message");
      // The owner adds to her context; bob is served in a context of his own.
      const second = await manager.sendMessage("alice", {
        message: userMessage("hi", { contextId: "ctx-a" }),
      });
      assert.equal(second.task?.contextId, "ctx-a");
      const bobs = await manager.sendMessage("bob", {
        message: userMessage("hi", { contextId: "ctx-b" }),
      });
      assert.equal(bobs.task?.status.state, "TASK_STATE_COMPLETED");
      const listed = await manager.listTasks("alice", { contextId: "ctx-a" });
      assert.equal(listed.tasks.length, 2);
    } finally {
      await manager.close();
    }
  });

  Deno.test(`of two users racing for a new contextId exactly one gets it (${name})`, async () => {
    await using opened = await open();
    const manager = new TaskManager({ executor: agent, store: opened.store });
    try {
      const results = await Promise.allSettled(
        ["alice", "bob", "alice", "bob"].map((user) =>
          manager.sendMessage(user, { message: userMessage("hi", { contextId: "race" }) })
        ),
      );
      const owners = new Set<string>();
      for (const [i, r] of results.entries()) {
        if (r.status === "fulfilled") owners.add(i % 2 === 0 ? "alice" : "bob");
        else assert.ok(isContextTaken(r.reason), String(r.reason));
      }
      assert.equal(owners.size, 1, "every task in the context is one user's");
      assert.equal(results.filter((r) => r.status === "fulfilled").length, 2);
    } finally {
      await manager.close();
    }
  });

  Deno.test(`a retried messageId keeps its outcome, and a refused send holds no quota (${name})`, async () => {
    await using opened = await open();
    const manager = new TaskManager({
      executor: agent,
      store: opened.store,
      maxUnfinishedTasksPerUser: 1,
    });
    try {
      const message = userMessage("ask", { contextId: "ctx-a" });
      const first = await manager.sendMessage("alice", { message });
      // The same message again from its sender is the same task, as before.
      const retry = await manager.sendMessage("alice", { message });
      assert.equal(retry.task?.id, first.task?.id);
      // The same messageId from another user is not a retry of alice's: it is refused.
      await assert.rejects(manager.sendMessage("bob", { message }), isContextTaken);
      await assert.rejects(
        manager.sendMessage("bob", { message: userMessage("ask", { contextId: "ctx-a" }) }),
        isContextTaken,
      );
      // Bob's refused sends took none of his one unfinished-task slot.
      const bobs = await manager.sendMessage("bob", { message: userMessage("ask") });
      assert.equal(bobs.task?.status.state, "TASK_STATE_INPUT_REQUIRED");
    } finally {
      await manager.close();
    }
  });
}

Deno.test("a new context is the first sender's while its first task is not stored yet", async () => {
  const gate = Promise.withResolvers<void>();
  const manager = new TaskManager({
    executor: {
      async execute(_ctx, events) {
        await gate.promise;
        await events.status("TASK_STATE_COMPLETED");
      },
    },
  });
  try {
    const alice = await manager.sendStreamingMessage("alice", {
      message: userMessage("hi", { contextId: "fresh" }),
    });
    await assert.rejects(
      manager.sendMessage("bob", { message: userMessage("hi", { contextId: "fresh" }) }),
      isContextTaken,
    );
    gate.resolve();
    const states: string[] = [];
    for await (const e of alice) {
      states.push(e.task?.status.state ?? e.statusUpdate?.status.state ?? "");
    }
    assert.deepEqual(states, ["TASK_STATE_SUBMITTED", "TASK_STATE_COMPLETED"]);
    assert.equal(await taskCount(manager.store, "bob"), 0);
  } finally {
    await manager.close();
  }
});

/** A store that cannot see the context's owner (another process wrote it), but refuses commits. */
class BlindStore extends InMemoryTaskStore {
  override contextOwner(): Promise<string | undefined> {
    return Promise.resolve(undefined);
  }
}

for (const swallow of [false, true]) {
  Deno.test(
    `a create the store refuses for its context fails the send with that error (${
      swallow ? "an agent that catches it" : "an agent that throws it"
    })`,
    async () => {
      const seen: unknown[] = [];
      const manager = new TaskManager({
        store: new BlindStore(),
        maxUnfinishedTasksPerUser: 1,
        executor: {
          async execute(_ctx, events) {
            try {
              await events.status("TASK_STATE_INPUT_REQUIRED");
            } catch (err) {
              seen.push(err);
              if (!swallow) throw err;
              // Nor can the agent reply instead, in a context that is not the sender's.
              await events.reply("hello").catch((e) => seen.push(e));
            }
          },
        },
      });
      try {
        await manager.sendMessage("alice", { message: userMessage("hi", { contextId: "ctx-a" }) });
        await assert.rejects(
          manager.sendMessage("bob", { message: userMessage("hi", { contextId: "ctx-a" }) }),
          (e) => e instanceof InvalidParamsError && isContextTaken(e),
        );
        assert.ok(seen.length >= 1 && seen.every(isContextTaken), "the agent saw the refusal");
        assert.equal(await taskCount(manager.store, "bob"), 0);
        // The refused task left bob's one unfinished-task slot free.
        const bobs = await manager.sendMessage("bob", { message: userMessage("hi") });
        assert.equal(bobs.task?.status.state, "TASK_STATE_INPUT_REQUIRED");
      } finally {
        await manager.close();
      }
    },
  );
}

Deno.test("another user's contextId is refused over capnweb and JSON-RPC while its owner and other users are served", async () => {
  await using server = startServer({ executor: agent });
  await using alice = await A2AClient.connect(server.url, { token: TOKENS.alice });
  await using bob = await A2AClient.connect(server.url, { token: TOKENS.bob });
  const { task } = await alice.sendMessage({ message: userMessage("hi", { contextId: "e2e" }) });
  assert.equal(task?.contextId, "e2e");

  for (const transport of ["websocket", "batch"] as const) {
    await using other = await A2AClient.connect(server.url, { token: TOKENS.bob, transport });
    await assert.rejects(
      other.sendMessage({ message: userMessage("hi", { contextId: "e2e" }) }),
      isContextTaken,
      transport,
    );
  }
  const res = await postJsonRpc(
    server.url,
    "SendMessage",
    { message: userMessage("hi", { contextId: "e2e" }) },
    TOKENS.bob,
  );
  const body = await res.json();
  assert.equal(body.error?.code, ErrorCode.InvalidParams);
  assert.match(body.error?.message, /contextId belongs to another user/);
  assert.equal((await bob.listTasks({})).tasks.length, 0, "bob has no task");

  // Alice goes on in her context over JSON-RPC; bob is served in his own.
  const mine = await postJsonRpc(server.url, "SendMessage", {
    message: userMessage("hi", { contextId: "e2e" }),
  });
  assert.equal((await mine.json()).result?.task?.contextId, "e2e");
  const bobs = await bob.sendMessage({ message: userMessage("hi", { contextId: "bobs" }) });
  assert.equal(bobs.task?.status.state, "TASK_STATE_COMPLETED");
});
