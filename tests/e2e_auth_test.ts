// End-to-end: authentication, tickets, per-user isolation and promise pipelining, with the real
// server and real sockets.

import assert from "node:assert/strict";
import { newWebSocketRpcSession } from "capnweb";
import { WebSocket as WsWebSocket } from "ws";
import { A2AClient } from "../client.ts";
import { AuthenticationError, TaskNotFoundError } from "../mod.ts";
import { startServer, STEP_MS, TOKENS, userMessage, withDeadline } from "./helpers.ts";

for (const transport of ["websocket", "batch"] as const) {
  Deno.test(`a second user cannot see or cancel the first user's task over ${transport}`, async () => {
    await using server = startServer();
    await using alice = await withDeadline(
      A2AClient.connect(server.url, { token: TOKENS.alice, transport }),
    );
    await using bob = await withDeadline(
      A2AClient.connect(server.url, { token: TOKENS.bob, transport }),
    );
    const { task } = await withDeadline(alice.sendMessage({
      message: userMessage("input: secret?"),
    }));
    assert.equal(task?.status.state, "TASK_STATE_INPUT_REQUIRED");
    const id = task.id;

    await assert.rejects(withDeadline(bob.getTask({ id })), (e: unknown) => {
      assert.ok(e instanceof TaskNotFoundError);
      assert.equal(e.code, -32001);
      return true;
    });
    await assert.rejects(withDeadline(bob.cancelTask({ id })), TaskNotFoundError);
    await assert.rejects(
      withDeadline(bob.sendMessage({ message: userMessage("hijack", { taskId: id }) })),
      TaskNotFoundError,
    );
    assert.deepEqual((await withDeadline(bob.listTasks())).tasks, []);
    assert.equal((await withDeadline(bob.listTasks())).totalSize, 0);
    // Alice still owns it, unchanged.
    assert.equal(
      (await withDeadline(alice.getTask({ id }))).status.state,
      "TASK_STATE_INPUT_REQUIRED",
    );
    assert.equal((await withDeadline(alice.listTasks())).totalSize, 1);
  });

  Deno.test(`connect() over ${transport} refuses a wrong token with AuthenticationError`, async () => {
    await using server = startServer();
    await assert.rejects(
      withDeadline(A2AClient.connect(server.url, { token: "wrong-token", transport })),
      (e: unknown) => {
        assert.ok(e instanceof AuthenticationError);
        assert.equal(e.code, -31001);
        return true;
      },
    );
  });
}

Deno.test("POST /a2a/auth answers 401 with WWW-Authenticate for a wrong or missing token", async () => {
  await using server = startServer();
  for (const headers of [{ authorization: "Bearer nope" }, {} as Record<string, string>]) {
    const res = await fetch(`${server.url}/a2a/auth`, { method: "POST", headers });
    assert.equal(res.status, 401);
    assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer realm="a2a"/);
    await res.body?.cancel();
  }
});

Deno.test("POST /a2a/auth issues a one-time ticket that authenticate() accepts once", async () => {
  await using server = startServer();
  const res = await fetch(`${server.url}/a2a/auth`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKENS.alice}` },
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.userId, "alice");
  assert.ok(Date.parse(body.expiresAt) > Date.now());
  assert.equal(typeof body.ticket, "string");

  const principal = await server.handler.sessions.authenticate({ ticket: body.ticket });
  assert.equal(principal.userId, "alice");
  await assert.rejects(
    server.handler.sessions.authenticate({ ticket: body.ticket }),
    AuthenticationError,
  );
});

Deno.test("authenticate() and sendMessage() pipeline: the call leaves before any answer arrives", async () => {
  await using server = startServer();
  const trace: string[] = [];
  const ws = new WsWebSocket(`${server.url.replace("http", "ws")}/a2a/capnweb`);
  const send = ws.send.bind(ws);
  ws.send = ((data: string) => {
    trace.push(`send ${String(data).slice(0, 40)}`);
    return send(data);
  }) as typeof ws.send;
  ws.addEventListener("message", () => trace.push("recv"));
  const closed = new Promise((r) => ws.addEventListener("close", r));
  // deno-lint-ignore no-explicit-any
  const root: any = newWebSocketRpcSession(ws as unknown as WebSocket);
  try {
    const cap = root.authenticate({ token: TOKENS.alice });
    const result = await withDeadline<{ task: { status: { state: string } } }>(
      cap.sendMessage({ message: userMessage("pipelined") }),
    );
    assert.equal(result.task.status.state, "TASK_STATE_COMPLETED");
    const firstRecv = trace.indexOf("recv");
    const pushes = trace.slice(0, firstRecv).filter((t) => t.startsWith('send ["push"'));
    assert.ok(pushes.length >= 2, `expected both calls before any answer: ${trace.join(" | ")}`);
    cap[Symbol.dispose]();
  } finally {
    root[Symbol.dispose]();
    ws.close(1000);
    await withDeadline(closed, STEP_MS, "the socket to close");
  }
});

Deno.test("closing the socket releases the session and its capability on the server", async () => {
  await using server = startServer();
  const client = await withDeadline(A2AClient.connect(server.url, { token: TOKENS.alice }));
  await withDeadline(client.sendMessage({ message: userMessage("x") }));
  const during = server.handler.stats();
  assert.equal(during.sessions, server.baseline.sessions + 1);
  assert.ok(during.resources >= 1);
  await withDeadline(client.close());
  await server.settled();
  assert.equal(server.handler.stats().sessions, server.baseline.sessions);
});
