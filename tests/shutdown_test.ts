// Graceful shutdown as docs/BINDING.md section 12 says, seen from a raw capnweb client of a real
// `server.ts` process that gets SIGTERM: the exact order of what reaches the client.

import assert from "node:assert/strict";
import { openRawSession, RecordingSink, type Seen } from "./raw_capnweb.ts";
import { startServerProcess } from "./server_process.ts";
import { postJsonRpc, TOKENS, userMessage, waitFor, withDeadline } from "./helpers.ts";

const words = (n: number) => Array.from({ length: n }, (_, i) => `w${i}`).join(" ");

Deno.test("SIGTERM drains: requests get 503, streams get their end, then sockets close with 1001", async () => {
  await using server = await startServerProcess({ memory: true }, {
    A2A_SHUTDOWN_TIMEOUT_MS: "8000",
  });
  const log: Seen[] = [];
  const raw = openRawSession(server.url, log);
  try {
    const cap = raw.root.authenticate({ token: TOKENS.alice }, { version: "1.0" });
    // A task that runs through the shutdown: the core fails it.
    const running = new RecordingSink("running", log);
    using _a = await withDeadline<Disposable>(
      cap.sendStreamingMessage({ message: userMessage(`slow: ${words(100)}`) }, running),
      10_000,
      "sendStreamingMessage",
    );
    // A paused task's stream: it stays open until the shutdown ends it with -31003.
    const { task } = await withDeadline<{ task: { id: string; status: { state: string } } }>(
      cap.sendMessage({ message: userMessage("input: your name?") }),
      10_000,
      "sendMessage of input:",
    );
    assert.equal(task.status.state, "TASK_STATE_INPUT_REQUIRED");
    const paused = new RecordingSink("paused", log);
    using _b = await withDeadline<Disposable>(
      cap.subscribeToTask({ id: task.id }, paused),
      10_000,
      "subscribeToTask",
    );
    await waitFor(() => running.events.length >= 3 && paused.events.length === 1);
    // A call in progress when SIGTERM arrives: the drain waits for it (about 1.6 s).
    const blocking = cap.sendMessage({ message: userMessage(`slow: ${words(9)}`) }).then(
      (r: { task: { status: { state: string } } }) => {
        log.push({ who: "send", what: "resolve", state: r.task.status.state, at: 0 });
      },
    );
    await new Promise((r) => setTimeout(r, 100));

    const stopped = server.stop("SIGTERM");
    // During the drain the listener is open and answers new work with 503.
    const rpc = await withDeadline(
      (async () => {
        for (;;) {
          const res = await postJsonRpc(server.url, "GetTask", { id: "none" });
          if (res.status === 503) return res;
          await res.body?.cancel();
          await new Promise((r) => setTimeout(r, 10));
        }
      })(),
      5000,
      "a 503 from JSON-RPC after SIGTERM",
    );
    const { error } = await rpc.json();
    assert.equal(error.code, -31003);
    assert.equal(error.message, "The server is shutting down");
    assert.equal(error.data[0].reason, "UNAVAILABLE");
    assert.equal(rpc.headers.get("retry-after"), "5");
    const batch = await withDeadline(
      fetch(`${server.url}/a2a/capnweb`, {
        method: "POST",
        body: '["push",["pipeline",0,["ping"],[]]]\n["pull",1]',
      }),
      5000,
      "an HTTP batch after SIGTERM",
    );
    assert.equal(batch.status, 503);
    assert.deepEqual(await batch.json(), {
      error: { status: 503, message: "Server is shutting down" },
    });
    assert.ok(!log.some((s) => s.who === "close"), "the socket stays open during the drain");

    await withDeadline(blocking, 10_000, "the call in progress at SIGTERM");
    const close = await withDeadline(raw.closed, 15_000, "the 1001 close");
    const status = await withDeadline(stopped, 15_000, "the process to exit");
    assert.equal(status.code, 0, server.output());

    assert.deepEqual(close, { code: 1001, reason: "Server shutting down" });
    // The close comes last: after the call in progress, both streams' last events and ends.
    assert.equal(log.at(-1)?.who, "close", JSON.stringify(log.slice(-5)));
    const send = log.findIndex((s) => s.who === "send");
    assert.ok(send >= 0);
    assert.equal(log[send]!.state, "TASK_STATE_COMPLETED", "calls in progress finish first");

    const r = running.calls(log);
    assert.deepEqual(r.slice(-2).map((s) => [s.what, s.state]), [
      ["onEvent", "TASK_STATE_FAILED"],
      ["onEnd", undefined],
    ]);
    const failed = running.events.at(-1)!;
    assert.match(failed.statusUpdate?.status.message?.parts[0]?.text ?? "", /shut down/);
    const seqs = running.events.map((e) => e.seq);
    assert.deepEqual(seqs, seqs.map((_, i) => i + 1), "every event once, in order");

    const p = paused.calls(log);
    assert.deepEqual(p.map((s) => s.what), ["onEvent", "onError"]);
    assert.equal(p[0]!.state, "TASK_STATE_INPUT_REQUIRED");
    assert.equal(p[1]!.code, -31003);
    assert.equal(p[1]!.reason, "UNAVAILABLE");
    assert.match(p[1]!.message!, /^The server is shutting down; resume the stream after/);
  } finally {
    await raw.close();
  }
});
