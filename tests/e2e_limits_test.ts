// End-to-end size limits: an oversized request fails alone, with an error naming the limit, on
// every binding, while other calls, streams and clients go on; large results (a 20 MB artifact)
// arrive with default options; and nothing goes out that a client with the defaults must refuse.

import assert from "node:assert/strict";
import { RpcSession, RpcTarget, WebSocketTransport } from "capnweb";
import { WebSocket as WsWebSocket } from "ws";
import {
  A2AClient,
  type ConnectionState,
  DEFAULT_MAX_EVENT_BYTES,
  type StreamEvent,
  type WebSocketConstructor,
} from "../client.ts";
import {
  type A2AError,
  type AgentExecutor,
  DEFAULT_MAX_MESSAGE_BYTES,
  ErrorCode,
  InternalError,
  InvalidAgentResponseError,
  InvalidRequestError,
  textOf,
} from "../mod.ts";
import { demoAgent } from "../src/demo/agent.ts";
import { SizeLimitedTransport } from "../src/rpc/size_limited_transport.ts";
import {
  startServer,
  STEP_MS,
  TOKENS,
  userMessage,
  waitFor,
  withDeadline,
  within,
} from "./helpers.ts";

const LIMIT = DEFAULT_MAX_MESSAGE_BYTES;
const TRANSPORTS = ["websocket", "batch", "jsonrpc"] as const;
const BIG = 20_000_000;

/**
 * An agent for size tests: `big:N` publishes an N-character artifact, `hold` waits for
 * `release()` (or the task's end) before completing; anything else goes to the demo agent.
 */
function sizeAgent(): { executor: AgentExecutor; release: () => void } {
  const gate = Promise.withResolvers<void>();
  const executor: AgentExecutor = {
    async execute(ctx, events) {
      const text = textOf(ctx.message);
      const big = /\bbig:(\d+)\b/.exec(text);
      const hold = /\bhold\b/.test(text);
      if (!big && !hold) return demoAgent.execute(ctx, events);
      await events.status("TASK_STATE_WORKING");
      if (big) {
        await events.artifact({
          artifactId: "big",
          parts: [{ text: "x".repeat(Number(big[1])) }],
        }, { lastChunk: true });
      }
      if (hold) {
        const aborted = new Promise<void>((r) => ctx.signal.addEventListener("abort", () => r()));
        await Promise.race([gate.promise, aborted]);
      }
      await events.status("TASK_STATE_COMPLETED");
    },
  };
  return { executor, release: () => gate.resolve() };
}

function artifactLength(task: { artifacts?: { parts: { text?: string }[] }[] }): number {
  return (task.artifacts ?? []).flatMap((a) => a.parts).reduce(
    (n, p) => n + (p.text?.length ?? 0),
    0,
  );
}

function eventArtifactLength(events: StreamEvent[]): number {
  return events.reduce(
    (n, e) =>
      n + (e.task ? artifactLength(e.task) : 0) +
      (e.artifactUpdate?.artifact.parts ?? []).reduce((m, p) => m + (p.text?.length ?? 0), 0),
    0,
  );
}

/** Reads a stream in the background, keeping its events and how it ended. */
function drain(stream: AsyncIterable<StreamEvent>) {
  const events: StreamEvent[] = [];
  const done = (async () => {
    for await (const e of stream) events.push(e);
  })();
  return { events, done };
}

/**
 * Checks that a refused oversized call harmed no one: the same client's next call, another
 * client's call, and a stream left open across the refusal all complete.
 */
async function assertStillServed(
  same: { sendMessage: A2AClient["sendMessage"] },
  other: A2AClient,
  agent: { release: () => void },
  open: ReturnType<typeof drain>,
): Promise<void> {
  const { task } = await withDeadline(same.sendMessage({ message: userMessage("small is fine") }));
  assert.equal(task?.status.state, "TASK_STATE_COMPLETED");
  const { task: theirs } = await withDeadline(
    other.sendMessage({ message: userMessage("me too") }),
  );
  assert.equal(theirs?.status.state, "TASK_STATE_COMPLETED");
  agent.release();
  await withDeadline(open.done, STEP_MS, "the open stream to end");
  assert.equal(state(open.events.at(-1)!), "TASK_STATE_COMPLETED");
}

function state(e: StreamEvent): string | undefined {
  return e.statusUpdate?.status.state ?? e.task?.status.state;
}

function isSizeError(
  cls: new (...args: never[]) => A2AError,
  code: number,
  limit: number,
): (e: unknown) => boolean {
  return (e) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${e}`);
    assert.equal(e.code, code);
    assert.match(e.message, new RegExp(`\\b${limit}\\b`));
    return true;
  };
}

Deno.test("an oversized sendMessage over a WebSocket fails alone with -32600 naming the limit", async () => {
  const agent = sizeAgent();
  await using server = startServer({ executor: agent.executor });
  const states: ConnectionState[] = [];
  await using client = await withDeadline(A2AClient.connect(server.url, {
    token: TOKENS.alice,
    onStateChange: (s) => states.push(s),
  }));
  await using other = await withDeadline(A2AClient.connect(server.url, { token: TOKENS.bob }));
  const open = drain(client.sendStreamingMessage({ message: userMessage("hold") }));
  await waitFor(() => open.events.some((e) => state(e) === "TASK_STATE_WORKING"));

  await assert.rejects(
    withDeadline(client.sendMessage({ message: userMessage("x".repeat(LIMIT + 1)) })),
    (e: unknown) => {
      isSizeError(InvalidRequestError, ErrorCode.InvalidRequest, LIMIT)(e);
      assert.match(
        (e as Error).message,
        /^Message is larger than the 4194304-byte limit: \d+ bytes$/,
      );
      return true;
    },
  );
  // Just over the limit in bytes, though not in UTF-16 code units: the limit is in bytes.
  await assert.rejects(
    withDeadline(client.sendMessage({ message: userMessage("é".repeat(LIMIT / 2)) })),
    InvalidRequestError,
  );

  // The same session goes on: a call, the open stream, and another client.
  await assertStillServed(client, other, agent, open);
  assert.deepEqual(states, ["open"], "the client never reconnected");
  assert.equal(client.state, "open");
});

Deno.test("an oversized sendMessage over HTTP batch gets 413 and -32600 naming the limit", async () => {
  const agent = sizeAgent();
  await using server = startServer({ executor: agent.executor });
  await using batch = await withDeadline(A2AClient.connect(server.url, {
    token: TOKENS.alice,
    transport: "batch",
  }));
  await using streaming = await withDeadline(A2AClient.connect(server.url, { token: TOKENS.bob }));
  const open = drain(streaming.sendStreamingMessage({ message: userMessage("hold") }));
  await waitFor(() => open.events.some((e) => state(e) === "TASK_STATE_WORKING"));

  await assert.rejects(
    withDeadline(batch.sendMessage({ message: userMessage("x".repeat(LIMIT)) })),
    (e: unknown) => {
      isSizeError(InvalidRequestError, ErrorCode.InvalidRequest, LIMIT)(e);
      assert.equal((e as Error).message, `Request body is larger than ${LIMIT} bytes`);
      return true;
    },
  );
  const res = await fetch(`${server.url}/a2a/capnweb`, {
    method: "POST",
    body: "x".repeat(LIMIT + 1),
  });
  assert.equal(res.status, 413);
  const body = await res.json();
  assert.equal(body.error.status, 413);
  assert.equal(body.error.code, ErrorCode.InvalidRequest);
  assert.equal(body.error.message, `Request body is larger than ${LIMIT} bytes`);
  assert.equal(body.error.data[0].reason, "INVALID_REQUEST");

  await assertStillServed(batch, streaming, agent, open);
});

Deno.test("an oversized SendMessage over JSON-RPC gets 413 and -32600 naming the limit", async () => {
  const agent = sizeAgent();
  await using server = startServer({ executor: agent.executor });
  await using rpc = await withDeadline(A2AClient.connect(server.url, {
    token: TOKENS.alice,
    transport: "jsonrpc",
  }));
  const open = drain(rpc.sendStreamingMessage({ message: userMessage("hold") }));
  await waitFor(() => open.events.some((e) => state(e) === "TASK_STATE_WORKING"));
  await using other = await withDeadline(A2AClient.connect(server.url, { token: TOKENS.bob }));

  await assert.rejects(
    withDeadline(rpc.sendMessage({ message: userMessage("x".repeat(LIMIT)) })),
    (e: unknown) => {
      isSizeError(InvalidRequestError, ErrorCode.InvalidRequest, LIMIT)(e);
      assert.equal((e as Error).message, `Request body is larger than ${LIMIT} bytes`);
      return true;
    },
  );
  await assertStillServed(rpc, other, agent, open);
});

Deno.test("an oversized message that is not a call ends only its own session, with close code 1009", async () => {
  await using server = startServer();
  await using bystander = await withDeadline(A2AClient.connect(server.url, { token: TOKENS.bob }));
  const ws = new WsWebSocket(`${server.url.replace("http", "ws")}/a2a/capnweb`);
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once(
      "close",
      (code: number, reason: Uint8Array) =>
        resolve({ code, reason: new TextDecoder().decode(reason) }),
    )
  );
  const aborted = new Promise<string>((resolve) =>
    ws.once("message", (m: unknown) => resolve(String(m)))
  );
  ws.send(`["pull",${" ".repeat(LIMIT)}1]`);
  const { code, reason } = await withDeadline(closed, STEP_MS, "the socket to close");
  assert.equal(code, 1009);
  assert.match(reason, /^Message is larger than the 4194304-byte limit: \d+ bytes$/);
  const abort = JSON.parse(await withDeadline(aborted, STEP_MS, "the abort message"));
  assert.equal(abort[0], "abort");
  assert.equal(abort[1][4].code, ErrorCode.InvalidRequest);
  const { task } = await withDeadline(
    bystander.sendMessage({ message: userMessage("unaffected") }),
  );
  assert.equal(task?.status.state, "TASK_STATE_COMPLETED");
});

Deno.test("the client reports a session the server closed over the size limit as -32600, then reconnects", async () => {
  const agent = sizeAgent();
  await using server = startServer({ executor: agent.executor });
  // A WebSocket that can slip a frame the real client would never send into its connection.
  const sockets: WsWebSocket[] = [];
  class Spy extends WsWebSocket {
    constructor(url: string) {
      super(url);
      sockets.push(this);
    }
  }
  const states: ConnectionState[] = [];
  await using client = await withDeadline(A2AClient.connect(server.url, {
    token: TOKENS.alice,
    webSocket: Spy as unknown as WebSocketConstructor,
    reconnect: { initialDelayMs: 10 },
    onStateChange: (s) => states.push(s),
  }));
  const pending = client.sendMessage({ message: userMessage("hold") });
  await waitFor(() => server.handler.stats().activeTasks > 0);
  sockets[0]!.send(`["release",${" ".repeat(LIMIT)}1,1]`);
  await assert.rejects(pending, isSizeError(InvalidRequestError, ErrorCode.InvalidRequest, LIMIT));
  agent.release();
  await waitFor(() => client.state === "open" && states.includes("reconnecting"));
  const { task } = await withDeadline(
    client.sendMessage({ message: userMessage("after the close") }),
  );
  assert.equal(task?.status.state, "TASK_STATE_COMPLETED");
});

for (const transport of TRANSPORTS) {
  Deno.test(`getTask() of a task with a 20 MB artifact works over ${transport} with default options`, async () => {
    const agent = sizeAgent();
    await using server = startServer({ executor: agent.executor });
    await using client = await withDeadline(
      A2AClient.connect(server.url, { token: TOKENS.alice, transport }),
    );
    const { task } = await withDeadline(client.sendMessage({ message: userMessage(`big:${BIG}`) }));
    assert.ok(task);
    assert.equal(artifactLength(task), BIG);
    const got = await withDeadline(client.getTask({ id: task.id }));
    assert.equal(got.status.state, "TASK_STATE_COMPLETED");
    assert.equal(artifactLength(got), BIG);
  });
}

for (const transport of ["websocket", "jsonrpc"] as const) {
  Deno.test(`subscribeToTask() snapshots and replays a 20 MB artifact over ${transport}`, async () => {
    const agent = sizeAgent();
    await using server = startServer({ executor: agent.executor });
    await using client = await withDeadline(
      A2AClient.connect(server.url, { token: TOKENS.alice, transport }),
    );
    const { task } = await withDeadline(client.sendMessage({
      message: userMessage(`big:${BIG} hold`),
      configuration: { returnImmediately: true },
    }));
    assert.ok(task);
    await waitFor(() => server.handler.stats().activeTasks > 0);
    // Wait until the artifact is in the task, so that the snapshot carries it.
    while (artifactLength(await withDeadline(client.getTask({ id: task.id }))) < BIG) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const live = drain(client.subscribeToTask({ id: task.id }));
    await waitFor(() => live.events.length > 0, () => "no snapshot", 20_000);
    assert.equal(artifactLength(live.events[0]!.task!), BIG);
    agent.release();
    await withDeadline(live.done, STEP_MS, "the live stream to end");
    assert.equal(state(live.events.at(-1)!), "TASK_STATE_COMPLETED");

    const replay: StreamEvent[] = [];
    for await (const e of within(client.subscribeToTask({ id: task.id, afterSeq: 0 }))) {
      replay.push(e);
    }
    assert.equal(eventArtifactLength(replay), BIG);
    assert.equal(state(replay.at(-1)!), "TASK_STATE_COMPLETED");
  });
}

Deno.test("the server sends no event over maxEventBytes: the call or stream fails with -32603 naming it", async () => {
  const agent = sizeAgent();
  const max = 1024 * 1024;
  await using server = startServer({ executor: agent.executor, limits: { maxEventBytes: max } });
  for (const transport of ["websocket", "jsonrpc"] as const) {
    await using client = await withDeadline(
      A2AClient.connect(server.url, { token: TOKENS.alice, transport }),
    );
    const events: StreamEvent[] = [];
    await assert.rejects(async () => {
      for await (
        const e of within(client.sendStreamingMessage({ message: userMessage("big:2000000") }))
      ) {
        events.push(e);
      }
    }, isSizeError(InternalError, ErrorCode.Internal, max));
    // The events before the refused one arrived (over capnweb, events sent behind it within the
    // stream window may arrive too); the artifact did not.
    assert.ok(events.some((e) => state(e) === "TASK_STATE_WORKING"), transport);
    assert.ok(!events.some((e) => e.artifactUpdate), transport);
    const id = events[0]!.task!.id;
    if (transport === "websocket") {
      // A plain call's result is held to the same limit; the session goes on.
      await assert.rejects(
        withDeadline(client.getTask({ id })),
        isSizeError(InternalError, ErrorCode.Internal, max),
      );
    }
    const { task } = await withDeadline(client.sendMessage({ message: userMessage("small") }));
    assert.equal(task?.status.state, "TASK_STATE_COMPLETED");
  }
});

Deno.test("a client refuses a message over its maxEventBytes with -32006, and only that call", async () => {
  const agent = sizeAgent();
  const max = 1024 * 1024;
  await using server = startServer({ executor: agent.executor });
  assert.equal(DEFAULT_MAX_EVENT_BYTES, 64 * 1024 * 1024);
  for (const transport of TRANSPORTS) {
    await using client = await withDeadline(A2AClient.connect(server.url, {
      token: TOKENS.alice,
      transport,
      maxEventBytes: max,
    }));
    const refused = isSizeError(InvalidAgentResponseError, ErrorCode.InvalidAgentResponse, max);
    if (transport === "jsonrpc") {
      // Over JSON-RPC the limit is on SSE events; a plain response has none.
      await assert.rejects(async () => {
        for await (
          const _ of within(client.sendStreamingMessage({ message: userMessage("big:2000000") }))
        ) {
          // the artifact event fails the stream
        }
      }, refused);
    } else {
      await assert.rejects(
        withDeadline(client.sendMessage({ message: userMessage("big:2000000") })),
        refused,
      );
      if (transport === "websocket") {
        await assert.rejects(async () => {
          for await (
            const _ of within(client.sendStreamingMessage({ message: userMessage("big:2000000") }))
          ) {
            // the artifact event fails the stream
          }
        }, refused);
      }
    }
    const { task } = await withDeadline(client.sendMessage({ message: userMessage("small") }));
    assert.equal(task?.status.state, "TASK_STATE_COMPLETED");
  }
});

/** A root object whose calls the size limits get in the way of, both ways. */
class Echo extends RpcTarget {
  echo(text: string): string {
    return text;
  }
  repeat(n: number): string {
    return "x".repeat(n);
  }
  /** Calls the client back with `n` characters; reports how that went. */
  async callBack(callback: unknown, n: number): Promise<string> {
    const stub = callback as { take(text: string): Promise<unknown> };
    try {
      return `took ${await stub.take("x".repeat(n))}`;
    } catch (err) {
      return `refused ${(err as { code?: number }).code}: ${(err as Error).message}`;
    }
  }
}

class Taker extends RpcTarget {
  take(text: string): unknown {
    return text.length;
  }
}

class Giver extends RpcTarget {
  take(): unknown {
    return "y".repeat(1000);
  }
}

Deno.test("SizeLimitedTransport refuses oversized calls, results and callbacks alone and leaks no stub", async () => {
  const max = 1000;
  const ac = new AbortController();
  let serverSession: RpcSession | undefined;
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", signal: ac.signal, onListen() {} },
    (req) => {
      const { socket, response } = Deno.upgradeWebSocket(req);
      const transport = new SizeLimitedTransport(new WebSocketTransport(socket), {
        maxIncomingBytes: max,
        maxOutgoingBytes: max,
      });
      serverSession = new RpcSession(transport, new Echo());
      return response;
    },
  );
  const ws = new WsWebSocket(`ws://127.0.0.1:${server.addr.port}/`);
  const clientSession = new RpcSession<Echo>(
    new WebSocketTransport(ws as unknown as WebSocket),
    undefined,
  );
  const echo = clientSession.getRemoteMain();
  try {
    assert.equal(await echo.echo("hi"), "hi");

    await assert.rejects(
      async () => await echo.echo("x".repeat(max)),
      (e: unknown) =>
        (e as { code?: number }).code === ErrorCode.InvalidRequest &&
        /^Message is larger than the 1000-byte limit: \d+ bytes$/.test((e as Error).message),
    );
    await assert.rejects(
      async () => await echo.repeat(max),
      (e: unknown) =>
        (e as { code?: number }).code === ErrorCode.Internal &&
        /1000-byte limit/.test((e as Error).message),
    );
    const taker = new Taker();
    assert.equal(await echo.callBack(taker, 10), "took 10");
    // Our call to the client's object is over the limit: it fails here, and only it.
    assert.match(await echo.callBack(taker, max), /^refused -32603: .*1000-byte limit/);
    // The client's answer to our call is over the limit: that call fails here, and only it.
    assert.match(await echo.callBack(new Giver(), 1), /^refused -32600: .*1000-byte limit/);
    assert.equal(await echo.echo("still here"), "still here");

    // Both sides are back to their main objects alone: every refused call was released.
    const idle = JSON.stringify({ imports: 1, exports: 1 });
    await waitFor(
      () =>
        JSON.stringify(clientSession.getStats()) === idle &&
        JSON.stringify(serverSession!.getStats()) === idle,
      () => JSON.stringify({ client: clientSession.getStats(), server: serverSession!.getStats() }),
    );
  } finally {
    const closed = new Promise((resolve) => ws.once("close", resolve));
    echo[Symbol.dispose]();
    ws.close();
    await withDeadline(closed, STEP_MS, "the socket to close");
    ac.abort();
    await withDeadline(server.finished, STEP_MS, "the server to stop");
  }
});
