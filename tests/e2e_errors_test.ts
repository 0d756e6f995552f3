// End-to-end: every A2A error code reaches the client intact, as the matching error class,
// over both capnweb transports; bad input never harms the session.

import assert from "node:assert/strict";
import { newWebSocketRpcSession } from "capnweb";
import { WebSocket as WsWebSocket } from "ws";
import { A2AClient } from "../client.ts";
import {
  A2AError,
  type AgentExecutor,
  ContentTypeNotSupportedError,
  ErrorCode,
  ExtendedAgentCardNotConfiguredError,
  ExtensionSupportRequiredError,
  fromWireError,
  InvalidParamsError,
  TaskNotCancelableError,
  TaskNotFoundError,
  textOf,
  UnsupportedOperationError,
  VersionNotSupportedError,
} from "../mod.ts";
import { demoAgent, demoAgentCard } from "../src/demo/agent.ts";
import { startServer, STEP_MS, TOKENS, userMessage, withDeadline } from "./helpers.ts";

/** Throws the A2A error whose code is the message text ("-32005"), else acts as the demo. */
const throwing: AgentExecutor = {
  execute(ctx, events) {
    const code = Number(textOf(ctx.message));
    if (Number.isInteger(code) && code < 0) {
      throw fromWireError({ code, message: `agent says ${code}` });
    }
    return demoAgent.execute(ctx, events);
  },
};

const A2A_CODES = [-32001, -32002, -32003, -32004, -32005, -32006, -32007, -32008, -32009];

for (const transport of ["websocket", "batch"] as const) {
  Deno.test(`every A2A error code an agent raises arrives intact over ${transport}`, async () => {
    await using server = startServer({ executor: throwing });
    await using client = await withDeadline(
      A2AClient.connect(server.url, { token: TOKENS.alice, transport }),
    );
    for (const code of A2A_CODES) {
      await assert.rejects(
        withDeadline(client.sendMessage({ message: userMessage(String(code)) })),
        (e: unknown) => {
          assert.ok(e instanceof A2AError, `code ${code}: ${e}`);
          assert.equal(e.code, code);
          assert.equal(e.message, `agent says ${code}`);
          assert.equal(e.constructor, (fromWireError({ code, message: "" }) as object).constructor);
          assert.equal(e.data[0]?.["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
          return true;
        },
      );
    }
    // A refused message creates no task.
    assert.equal((await withDeadline(client.listTasks())).totalSize, 0);
    await assert.rejects(
      withDeadline(client.sendMessage({ message: userMessage("-32005") })),
      ContentTypeNotSupportedError,
    );
  });

  Deno.test(`protocol errors carry their codes over ${transport}`, async () => {
    await using server = startServer();
    await using client = await withDeadline(
      A2AClient.connect(server.url, { token: TOKENS.alice, transport }),
    );
    const { task } = await withDeadline(client.sendMessage({ message: userMessage("done") }));
    assert.ok(task);

    await assert.rejects(withDeadline(client.getTask({ id: "missing" })), TaskNotFoundError);
    await assert.rejects(withDeadline(client.cancelTask({ id: task.id })), TaskNotCancelableError);
    await assert.rejects(
      withDeadline(client.sendMessage({ message: userMessage("more", { taskId: task.id }) })),
      (e: unknown) => e instanceof UnsupportedOperationError && e.code === -32004,
    );
    await assert.rejects(
      withDeadline(
        client.sendMessage({ message: { messageId: "m", role: "ROLE_USER", parts: [] } }),
      ),
      (e: unknown) => {
        assert.ok(e instanceof InvalidParamsError);
        assert.equal(e.code, ErrorCode.InvalidParams);
        assert.match(e.message, /message\.parts/);
        const bad = e.data.find((d) => d["@type"].endsWith("BadRequest"));
        assert.ok(bad && "fieldViolations" in bad);
        assert.equal(bad.fieldViolations[0]?.field, "message.parts");
        return true;
      },
    );
    await assert.rejects(
      withDeadline(client.listTasks({ pageSize: 1000 })),
      (e: unknown) => e instanceof InvalidParamsError && /pageSize/.test(e.message),
    );
    // The session survives bad input.
    assert.equal((await withDeadline(client.getTask({ id: task.id }))).id, task.id);
  });

  Deno.test(`authenticate() refuses an unsupported A2A version over ${transport}`, async () => {
    await using server = startServer();
    await assert.rejects(
      withDeadline(
        A2AClient.connect(server.url, { token: TOKENS.alice, transport, version: "0.3" }),
      ),
      (e: unknown) => e instanceof VersionNotSupportedError && e.code === -32009,
    );
  });

  Deno.test(`a required extension the client did not declare gives -32008 over ${transport}`, async () => {
    const uri = "https://example.com/ext/required/v1";
    await using server = startServer({
      agentCard: {
        ...demoAgentCard,
        capabilities: { ...demoAgentCard.capabilities, extensions: [{ uri, required: true }] },
      },
    });
    await assert.rejects(
      withDeadline(A2AClient.connect(server.url, { token: TOKENS.alice, transport })),
      (e: unknown) => e instanceof ExtensionSupportRequiredError && e.code === -32008,
    );
    await using client = await withDeadline(A2AClient.connect(server.url, {
      token: TOKENS.alice,
      transport,
      extensions: [uri],
    }));
    assert.equal((await withDeadline(client.listTasks())).totalSize, 0);
  });

  Deno.test(`getExtendedAgentCard() over ${transport}: the card, or -32007 when none is configured`, async () => {
    {
      await using server = startServer();
      await using client = await withDeadline(
        A2AClient.connect(server.url, { token: TOKENS.alice, transport }),
      );
      const card = await withDeadline(client.getExtendedAgentCard());
      assert.equal(card.description, "extended");
      assert.equal(card.supportedInterfaces[0]?.url, `${server.url}/a2a/capnweb`);
    }
    {
      await using server = startServer({ noExtendedCard: true });
      await using client = await withDeadline(
        A2AClient.connect(server.url, { token: TOKENS.alice, transport }),
      );
      await assert.rejects(
        withDeadline(client.getExtendedAgentCard()),
        ExtendedAgentCardNotConfiguredError,
      );
    }
  });
}

Deno.test("errors cross capnweb without the server's stack, and unknown methods give -32601", async () => {
  await using server = startServer();
  const ws = new WsWebSocket(`${server.url.replace("http", "ws")}/a2a/capnweb`);
  const closed = new Promise((r) => ws.addEventListener("close", r));
  // deno-lint-ignore no-explicit-any
  const root: any = newWebSocketRpcSession(ws as unknown as WebSocket);
  try {
    const cap = await withDeadline<typeof root>(root.authenticate({ token: TOKENS.alice }));
    const notFound = await withDeadline<never>(cap.getTask({ id: "nope" })).catch((e) => e);
    assert.equal(notFound.code, -32001);
    assert.ok(!String(notFound.stack).includes("task_manager.ts"), notFound.stack);
    const missing = await withDeadline<never>(cap.noSuchMethod({})).catch((e) => e);
    assert.equal(missing.code, -32601);
    assert.match(missing.message, /noSuchMethod/);
    cap[Symbol.dispose]();
  } finally {
    root[Symbol.dispose]();
    ws.close(1000);
    await withDeadline(closed, STEP_MS, "the socket to close");
  }
});

Deno.test("authenticate() accepts a patch version and ProtoJSON nulls mean unset", async () => {
  await using server = startServer();
  await using client = await withDeadline(A2AClient.connect(server.url, {
    token: TOKENS.alice,
    version: "1.0.3",
  }));
  const { task } = await withDeadline(client.sendMessage({
    message: userMessage("nulls", { contextId: null, taskId: null } as never),
    configuration: null,
  } as never));
  assert.equal(task?.status.state, "TASK_STATE_COMPLETED");
  assert.ok(task.contextId);
});

Deno.test("an HTTP batch whose chunked body exceeds the limit gets 413", async () => {
  await using server = startServer({ limits: { maxMessageBytes: 1024 } });
  // Written by hand over TCP: fetch's own upload of a streamed body may still be running when the
  // 413 arrives, which the op sanitizer would report as a leak of this test.
  const conn = await withDeadline(Deno.connect({ hostname: "127.0.0.1", port: server.addr.port }));
  const chunk = `200\r\n${"x".repeat(512)}\r\n`;
  await conn.write(new TextEncoder().encode(
    "POST /a2a/capnweb HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n" +
      "Connection: close\r\n\r\n" + chunk.repeat(4) + "0\r\n\r\n",
  ));
  let response = "";
  const buf = new Uint8Array(4096);
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
    response += new TextDecoder().decode(buf.subarray(0, n));
  }
  conn.close();
  assert.match(response, /^HTTP\/1\.1 413 /);
  assert.match(response, /Request body is larger than 1024 bytes/);
});
