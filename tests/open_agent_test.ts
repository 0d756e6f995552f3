// An open agent (no token verifier): one anonymous principal on every binding, a card without
// security requirements, and the per-address and per-user limits still in force. Then the other
// side: with a verifier, a card that declares nothing gets the bearer scheme the server enforces.

import assert from "node:assert/strict";
import { newWebSocketRpcSession } from "capnweb";
import { WebSocket as WsWebSocket } from "ws";
import { A2AClient } from "../client.ts";
import {
  AuthenticationError,
  createHandler,
  ErrorCode,
  QuotaExceededError,
  SessionManager,
  type TokenVerifier,
} from "../mod.ts";
import { demoAgent, demoAgentCard } from "../src/demo/agent.ts";
import type { AgentCardInput, ServeOptions } from "../server.ts";
import { startServer, type TestServer, TOKENS, userMessage } from "./helpers.ts";

const DEADLINE_MS = 10_000;

/** A verifier that accepts nothing; unlike StaticTokenVerifier it starts no work of its own. */
const NO_TOKENS: TokenVerifier = { verify: () => Promise.resolve(undefined) };

/** The demo card without its bearer scheme, as an open agent's card must be. */
const { securitySchemes: _schemes, securityRequirements: _requirements, ...openCard } =
  demoAgentCard;

/** Starts the demo agent with no verifier. */
function startOpen(options: Partial<ServeOptions> = {}): TestServer {
  // startServer passes a verifier unless told otherwise: an explicit undefined is "none".
  return startServer({
    agentCard: openCard,
    extendedAgentCard: { ...openCard, description: "extended" },
    verifier: undefined,
    ...options,
  } as Partial<
    ServeOptions
  >);
}

function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", "a2a-version": "1.0", ...headers },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(DEADLINE_MS),
  });
}

Deno.test("an open agent's card declares no security scheme or requirement", async () => {
  await using server = startOpen();
  const res = await fetch(`${server.url}/.well-known/agent-card.json`, {
    signal: AbortSignal.timeout(DEADLINE_MS),
  });
  const card = await res.json();
  assert.equal(card.securitySchemes, undefined);
  assert.equal(card.securityRequirements, undefined);
  assert.equal(server.handler.sessions.anonymous?.userId, "anonymous");
});

for (const transport of ["websocket", "batch"] as const) {
  Deno.test(`A2AClient.connect() without a token works with an open agent over ${transport}`, async () => {
    await using server = startOpen();
    await using client = await A2AClient.connect(server.url, { transport });
    const { task } = await client.sendMessage({ message: userMessage("hello, open agent") });
    assert.equal(task?.status.state, "TASK_STATE_COMPLETED");
    const listed = await client.listTasks();
    assert.deepEqual(listed.tasks.map((t) => t.id), [task.id]);
    assert.equal((await client.getExtendedAgentCard()).securityRequirements, undefined);
  });
}

Deno.test("A2AClient.connect() without a token streams from an open agent over a WebSocket", async () => {
  await using server = startOpen();
  await using client = await A2AClient.connect(server.url);
  const kinds: string[] = [];
  for await (const event of client.sendStreamingMessage({ message: userMessage("stream it") })) {
    kinds.push(Object.keys(event).find((k) => k !== "seq")!);
  }
  assert.equal(kinds[0], "task");
  assert.equal(kinds.at(-1), "statusUpdate");
});

Deno.test("an open agent's callers all share the anonymous user's tasks, on every binding", async () => {
  await using server = startOpen({ anonymousUserId: "guest" });
  await using first = await A2AClient.connect(server.url);
  await using second = await A2AClient.connect(server.url, { transport: "batch" });
  const { task } = await first.sendMessage({ message: userMessage("mine and yours") });
  assert.ok(task);
  assert.deepEqual((await second.listTasks()).tasks.map((t) => t.id), [task.id]);
  // JSON-RPC with no Authorization header acts as the same user.
  const res = await post(`${server.url}/a2a/jsonrpc`, {
    jsonrpc: "2.0",
    id: 1,
    method: "ListTasks",
    params: {},
  });
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.deepEqual(body.result.tasks.map((t: { id: string }) => t.id), [task.id]);
  assert.equal(server.handler.sessions.anonymous?.userId, "guest");
});

Deno.test("an open agent serves JSON-RPC without Authorization and ignores a token sent anyway", async () => {
  await using server = startOpen();
  for (const headers of [{}, { authorization: "Bearer whatever" }, { authorization: "Basic x" }]) {
    const res = await post(`${server.url}/a2a/jsonrpc`, {
      jsonrpc: "2.0",
      id: 7,
      method: "SendMessage",
      params: { message: userMessage("over json-rpc") },
    }, headers);
    assert.equal(res.status, 200, JSON.stringify(headers));
    const body = await res.json();
    assert.equal(body.id, 7);
    assert.equal(body.result.task.status.state, "TASK_STATE_COMPLETED");
  }
});

Deno.test("A2AClient.connect() over jsonrpc without a token works with an open agent", async () => {
  await using server = startOpen();
  await using client = await A2AClient.connect(server.url, { transport: "jsonrpc" });
  const { task } = await client.sendMessage({ message: userMessage("plain json-rpc") });
  assert.equal(task?.status.state, "TASK_STATE_COMPLETED");
});

Deno.test("authenticate() on an open agent takes no argument, {} or null; a ticket or token is ignored", async () => {
  await using server = startOpen();
  const url = `${server.url.replace(/^http/, "ws")}/a2a/capnweb`;
  const ws = new WsWebSocket(url) as unknown as WebSocket;
  // capnweb's stub types are not worth spelling out here.
  // deno-lint-ignore no-explicit-any
  const root: any = newWebSocketRpcSession(ws);
  try {
    for (const args of [[], [{}], [null], [{ token: "nope" }], [{ ticket: "nope" }]]) {
      using cap = root.authenticate(...args);
      const listed = await cap.listTasks({});
      assert.equal(listed.totalSize, 0, JSON.stringify(args));
    }
    // The shape is still checked.
    await assert.rejects(Promise.resolve(root.authenticate("token")), (e: unknown) => {
      assert.equal((e as { code?: number }).code, ErrorCode.InvalidParams);
      return true;
    });
    await assert.rejects(
      Promise.resolve(root.authenticate({ ticket: "a", token: "b" })),
      (e: unknown) => {
        assert.equal((e as { code?: number }).code, ErrorCode.InvalidParams);
        return true;
      },
    );
  } finally {
    root[Symbol.dispose]();
    ws.close();
  }
  await server.settled();
});

Deno.test("POST /a2a/auth on an open agent answers 404 and says to call authenticate({})", async () => {
  await using server = startOpen();
  for (const headers of [{}, { authorization: `Bearer ${TOKENS.alice}` }]) {
    const res = await fetch(`${server.url}/a2a/auth`, {
      method: "POST",
      headers,
      signal: AbortSignal.timeout(DEADLINE_MS),
    });
    assert.equal(res.status, 404);
    const body = await res.json();
    assert.match(body.error.message, /this agent is open and issues no tickets/);
    assert.match(body.error.message, /authenticate\(\{\}\)/);
  }
  // A client given a token anyway falls back to sending it, which an open agent ignores.
  await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
  const { task } = await client.sendMessage({ message: userMessage("with a token") });
  assert.equal(task?.status.state, "TASK_STATE_COMPLETED");
});

Deno.test("an open agent still applies maxConnectionsPerAddress", async () => {
  await using server = startOpen({ limits: { maxConnectionsPerAddress: 1 } });
  await using first = await A2AClient.connect(server.url, { reconnect: false });
  const refused = await fetch(`${server.url}/a2a/capnweb`, {
    headers: {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-version": "13",
    },
    signal: AbortSignal.timeout(DEADLINE_MS),
  });
  assert.equal(refused.status, 429);
  assert.match((await refused.json()).error.message, /Too many open connections/);
  await assert.rejects(A2AClient.connect(server.url, { reconnect: false }));
  // A JSON-RPC stream from the same address is refused too.
  const sse = await post(`${server.url}/a2a/jsonrpc`, {
    jsonrpc: "2.0",
    id: 1,
    method: "SendStreamingMessage",
    params: { message: userMessage("hi") },
  });
  assert.equal(sse.status, 429);
  assert.equal((await sse.json()).error.code, ErrorCode.QuotaExceeded);
  // The first connection goes on.
  assert.ok(await first.ping());
});

Deno.test("an open agent's anonymous user has the per-user task quota, shared by every caller", async () => {
  await using server = startOpen({ limits: { maxUnfinishedTasksPerUser: 1 } });
  await using a = await A2AClient.connect(server.url);
  await using b = await A2AClient.connect(server.url, { transport: "batch" });
  const { task } = await a.sendMessage({ message: userMessage("input: anyone there?") });
  assert.equal(task?.status.state, "TASK_STATE_INPUT_REQUIRED");
  await assert.rejects(
    b.sendMessage({ message: userMessage("input: me too?") }),
    QuotaExceededError,
  );
  await a.cancelTask({ id: task.id });
});

Deno.test("createHandler() refuses an open agent whose card declares security requirements", () => {
  assert.throws(
    () => createHandler({ agentCard: demoAgentCard, executor: demoAgent }),
    /Invalid agent card: it declares securityRequirements but no verifier enforces them/,
  );
  const skillCard: AgentCardInput = {
    ...openCard,
    skills: [{
      id: "s",
      name: "s",
      description: "s",
      tags: [],
      securityRequirements: [{ schemes: { bearer: { list: [] } } }],
    }],
  };
  assert.throws(
    () => createHandler({ agentCard: skillCard, executor: demoAgent }),
    /\(skill s\)/,
  );
  assert.throws(
    () =>
      createHandler({
        agentCard: openCard,
        executor: demoAgent,
        extendedAgentCard: demoAgentCard,
      }),
    /Invalid extended agent card/,
  );
  assert.throws(
    () =>
      createHandler({
        agentCard: demoAgentCard,
        executor: demoAgent,
        verifier: NO_TOKENS,
        anonymousUserId: "guest",
      }),
    /anonymousUserId is for open agents/,
  );
});

Deno.test("with a verifier, a card without securitySchemes gets the bearer scheme it enforces", async () => {
  await using server = startServer({ agentCard: openCard, noExtendedCard: true });
  const card = await (await fetch(`${server.url}/.well-known/agent-card.json`, {
    signal: AbortSignal.timeout(DEADLINE_MS),
  })).json();
  assert.deepEqual(Object.keys(card.securitySchemes), ["bearer"]);
  assert.equal(card.securitySchemes.bearer.httpAuthSecurityScheme.scheme, "Bearer");
  assert.deepEqual(card.securityRequirements, [{ schemes: { bearer: { list: [] } } }]);
  // And the server enforces it: no token, no capability.
  await assert.rejects(A2AClient.connect(server.url), (e: unknown) => {
    assert.ok(e instanceof AuthenticationError, String(e));
    assert.equal(e.code, -31001);
    assert.match(e.message, /Missing credentials/);
    return true;
  });
  await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
  assert.ok(await client.ping());
});

Deno.test("with a verifier, a card that declares its own security schemes is left as it is", async () => {
  const own: AgentCardInput = {
    ...openCard,
    securitySchemes: {
      oidc: { openIdConnectSecurityScheme: { openIdConnectUrl: "https://id.example.com" } },
    },
    securityRequirements: [{ schemes: { oidc: { list: ["a2a"] } } }],
  };
  await using server = startServer({ agentCard: own });
  const card = await (await fetch(`${server.url}/.well-known/agent-card.json`, {
    signal: AbortSignal.timeout(DEADLINE_MS),
  })).json();
  assert.deepEqual(card.securitySchemes, own.securitySchemes);
  assert.deepEqual(card.securityRequirements, own.securityRequirements);
});

Deno.test("SessionManager without a verifier is open: every credential is the anonymous principal", async () => {
  const sessions = new SessionManager({ anonymousUserId: "guest" });
  for (const credentials of [undefined, null, {}, { token: "x" }, { ticket: "y" }]) {
    assert.deepEqual(await sessions.authenticate(credentials), { userId: "guest" });
  }
  assert.deepEqual(await sessions.verifyToken(undefined), { userId: "guest" });
  await assert.rejects(sessions.issueTicket("x"), /this agent is open/);
  // A verifier's manager refuses the absence of credentials as an authentication failure.
  const closed = new SessionManager({ verifier: NO_TOKENS });
  assert.equal(closed.anonymous, undefined);
  for (const credentials of [undefined, null, {}]) {
    await assert.rejects(closed.authenticate(credentials), AuthenticationError);
  }
  await assert.rejects(closed.verifyToken(undefined), /Missing bearer token/);
});
