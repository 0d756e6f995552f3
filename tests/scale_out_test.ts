// Three real server processes on one real PostgreSQL behave as one server: streams through a
// round-robin proxy that cuts connections, a task started on one process, followed on another and
// canceled through a third, a process killed mid-task, and tickets used across processes.

import assert from "node:assert/strict";
import { A2AClient } from "../client.ts";
import type { StreamEvent } from "../mod.ts";
import { freshDatabase, PG_TEST } from "./pg_cluster.ts";
import { type ServerProcess, startServerProcess } from "./server_process.ts";
import { TcpProxy } from "./tcp_proxy.ts";
import { EVENT_SEQ_HEADER } from "../src/push/webhook.ts";
import { checkStream, TOKENS, userMessage, words } from "./helpers.ts";

/** A short lease, so that a killed process's tasks are failed within a few seconds. */
const FAST_LEASE = { A2A_PG_LEASE_MS: "2000" };

async function threeProcesses(env: Record<string, string> = {}): Promise<{
  servers: ServerProcess[];
  proxy: TcpProxy;
  [Symbol.asyncDispose](): Promise<void>;
}> {
  const db = (await freshDatabase())!;
  const servers = await Promise.all([0, 1, 2].map(() => startServerProcess(db, env)));
  const proxy = new TcpProxy(servers.map((s) => ({ hostname: "127.0.0.1", port: s.port })));
  return {
    servers,
    proxy,
    async [Symbol.asyncDispose]() {
      await proxy[Symbol.asyncDispose]();
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}

Deno.test({
  name: "a stream through a round-robin proxy that cuts connections gets every event exactly once",
  ...PG_TEST,
  fn: async () => {
    await using cluster = await threeProcesses();
    await using client = await A2AClient.connect(cluster.proxy.url, { token: TOKENS.alice });
    const events: StreamEvent[] = [];
    let cuts = 0;
    for await (
      const event of client.sendStreamingMessage({ message: userMessage(`slow: ${words(20)}`) })
    ) {
      events.push(event);
      // Every few events the connection drops; the client resumes, maybe on another process.
      if (events.length % 4 === 0 && cuts < 4) {
        cuts++;
        await cluster.proxy.cut();
      }
    }
    assert.equal(cuts, 4);
    assert.ok(cluster.proxy.accepted >= 5, `${cluster.proxy.accepted} connections`);
    assert.equal(checkStream(events).trim().split(/\s+/).length, 20);
    assert.equal(events.at(-1)?.statusUpdate?.status.state, "TASK_STATE_COMPLETED");
  },
});

Deno.test({
  name: "a task started on A, followed on B, is canceled through C and its executor on A stops",
  ...PG_TEST,
  fn: async () => {
    await using cluster = await threeProcesses();
    const [a, b, c] = cluster.servers as [ServerProcess, ServerProcess, ServerProcess];
    await using onA = await A2AClient.connect(a.url, { token: TOKENS.alice });
    await using onB = await A2AClient.connect(b.url, { token: TOKENS.alice });
    await using onC = await A2AClient.connect(c.url, { token: TOKENS.alice });
    const started = onA.sendStreamingMessage({ message: userMessage(`slow: ${words(100)}`) });
    const iterator = started[Symbol.asyncIterator]();
    const first = (await iterator.next()).value as StreamEvent;
    const taskId = first.task!.id;
    const followed: StreamEvent[] = [];
    const following = (async () => {
      for await (const e of onB.subscribeToTask({ id: taskId })) followed.push(e);
    })();
    // Wait until B has seen a chunk that A produced.
    while (!followed.some((e) => e.artifactUpdate)) await new Promise((r) => setTimeout(r, 20));
    const canceled = await onC.cancelTask({ id: taskId });
    assert.equal(canceled.status.state, "TASK_STATE_CANCELED");
    await following;
    assert.equal(followed.at(-1)?.statusUpdate?.status.state, "TASK_STATE_CANCELED");
    checkStream(followed.slice(1));
    // A's stream ends with the same CANCELED event, and the agent stopped: no chunk after it.
    const rest: StreamEvent[] = [];
    for (let r = await iterator.next(); !r.done; r = await iterator.next()) rest.push(r.value);
    assert.equal(rest.at(-1)?.statusUpdate?.status.state, "TASK_STATE_CANCELED");
    const task = await onB.getTask({ id: taskId });
    assert.equal(task.status.state, "TASK_STATE_CANCELED");
    const chunks = task.artifacts?.[0]?.parts.length ?? 0;
    await new Promise((r) => setTimeout(r, 600));
    assert.equal((await onA.getTask({ id: taskId })).artifacts?.[0]?.parts.length ?? 0, chunks);
  },
});

Deno.test({
  name: "a process killed mid-task: another marks the task FAILED once the lease lapses",
  ...PG_TEST,
  fn: async () => {
    await using cluster = await threeProcesses(FAST_LEASE);
    const [a, b] = cluster.servers as [ServerProcess, ServerProcess, ServerProcess];
    await using onA = await A2AClient.connect(a.url, { token: TOKENS.alice });
    const iterator = onA.sendStreamingMessage({ message: userMessage(`slow: ${words(200)}`) })[
      Symbol.asyncIterator
    ]();
    const first = (await iterator.next()).value as StreamEvent;
    const taskId = first.task!.id;
    let lastSeq = first.seq;
    for (let i = 0; i < 3; i++) lastSeq = ((await iterator.next()).value as StreamEvent).seq;
    await using onB = await A2AClient.connect(b.url, { token: TOKENS.alice });
    // B sees the task WORKING while A lives.
    assert.equal((await onB.getTask({ id: taskId })).status.state, "TASK_STATE_WORKING");
    await a.stop("SIGKILL");
    // Resume through B from the last event seen: the rest, then FAILED, with no gap.
    const resumed: StreamEvent[] = [];
    for await (const e of onB.subscribeToTask({ id: taskId, afterSeq: lastSeq })) resumed.push(e);
    assert.equal(resumed[0]?.seq, lastSeq + 1);
    checkStream(resumed);
    const end = resumed.at(-1)?.statusUpdate?.status;
    assert.equal(end?.state, "TASK_STATE_FAILED");
    const text = end?.message?.parts.map((p) => ("text" in p ? p.text : "")).join("");
    assert.equal(text, "The server restarted while the task was running");
    await onA.close().catch(() => {});
  },
});

Deno.test({
  name: "a ticket fetched from A authenticates once on B, and never again anywhere",
  ...PG_TEST,
  fn: async () => {
    await using cluster = await threeProcesses();
    const [a, b, c] = cluster.servers as [ServerProcess, ServerProcess, ServerProcess];
    const res = await fetch(`${a.url}/a2a/auth`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKENS.alice}` },
    });
    const { ticket } = await res.json() as { ticket: string };
    const tryOn = async (server: ServerProcess) => {
      const r = await fetch(`${server.url}/a2a/capnweb`, {
        method: "POST",
        headers: { "content-type": "text/plain" },
        body: [
          JSON.stringify(["push", ["pipeline", 0, ["authenticate"], [{ ticket }]]]),
          JSON.stringify(["pull", 1]),
        ].join("\n"),
      });
      return await r.text();
    };
    const results = await Promise.all([tryOn(b), tryOn(c), tryOn(b)]);
    const accepted = results.filter((t) => t.includes('"resolve"'));
    assert.equal(accepted.length, 1, results.join("\n"));
    assert.match(await tryOn(a), /Invalid, expired or already used ticket/);
  },
});

/** A webhook receiver on 127.0.0.1 that records the events POSTed to it, or refuses them. */
function webhookReceiver() {
  const received: StreamEvent[] = [];
  let refusing = true;
  const ac = new AbortController();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    async (req) => {
      const body = await req.json() as StreamEvent;
      if (refusing) return new Response("not yet", { status: 503 });
      received.push({ ...body, seq: Number(req.headers.get(EVENT_SEQ_HEADER)) });
      return new Response(null, { status: 204 });
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}/hook`,
    received,
    accept() {
      refusing = false;
    },
    async [Symbol.asyncDispose]() {
      ac.abort();
      await server.finished;
    },
  };
}

Deno.test({
  name: "webhook events produced on A are POSTed once each, in order, across a restart of A",
  ...PG_TEST,
  fn: async () => {
    const db = (await freshDatabase())!;
    const env = { A2A_PUSH_ALLOW_LOOPBACK: "1" };
    await using hook = webhookReceiver();
    const servers = await Promise.all([0, 1, 2].map(() => startServerProcess(db, env)));
    let a = servers[0]!;
    try {
      let taskId: string;
      {
        await using onA = await A2AClient.connect(a.url, { token: TOKENS.alice });
        const res = await onA.sendMessage({
          message: userMessage(`slow: ${words(5)}`),
          configuration: { returnImmediately: true, taskPushNotificationConfig: { url: hook.url } },
        });
        taskId = res.task!.id;
        // The task completes on A while the receiver refuses every POST: nothing is delivered yet.
        while ((await onA.getTask({ id: taskId })).status.state !== "TASK_STATE_COMPLETED") {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      await a.stop();
      servers[0] = a = await startServerProcess(db, env);
      hook.accept();
      await using onB = await A2AClient.connect(servers[1]!.url, { token: TOKENS.alice });
      const task = await onB.getTask({ id: taskId });
      const deadline = Date.now() + 40_000;
      while (!hook.received.some((e) => e.statusUpdate?.status.state === "TASK_STATE_COMPLETED")) {
        assert.ok(Date.now() < deadline, `received ${hook.received.map((e) => e.seq)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      // A moment more, so that a second delivery of anything would show.
      await new Promise((r) => setTimeout(r, 1500));
      const seqs = hook.received.map((e) => e.seq);
      const first = seqs[0]!;
      // Every event after the config's creation, once, in order, ending with COMPLETED.
      assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => first + i));
      assert.ok(first <= 2, `first delivered seq ${first}`);
      assert.equal(hook.received.at(-1)?.statusUpdate?.status.state, "TASK_STATE_COMPLETED");
      assert.equal(task.status.state, "TASK_STATE_COMPLETED");
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  },
});

Deno.test({
  name: "a capnweb push callback registered on B gets the events of a task running on A",
  ...PG_TEST,
  fn: async () => {
    await using cluster = await threeProcesses();
    const [a, b] = cluster.servers as [ServerProcess, ServerProcess, ServerProcess];
    await using onA = await A2AClient.connect(a.url, { token: TOKENS.alice });
    await using onB = await A2AClient.connect(b.url, { token: TOKENS.alice });
    const res = await onA.sendMessage({
      message: userMessage("input: your name?"),
    });
    const taskId = res.task!.id;
    assert.equal(res.task!.status.state, "TASK_STATE_INPUT_REQUIRED");
    const pushed: StreamEvent[] = [];
    await onB.createTaskPushNotificationConfig({ taskId }, (e) => void pushed.push(e));
    // The follow-up runs on A; B's callback gets its events from the shared log.
    await onA.sendMessage({ message: userMessage(`slow: ${words(3)}`, { taskId }) });
    const deadline = Date.now() + 15_000;
    while (!pushed.some((e) => e.statusUpdate?.status.state === "TASK_STATE_COMPLETED")) {
      assert.ok(Date.now() < deadline, `pushed ${pushed.map((e) => e.seq)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    checkStream(pushed);
  },
});
