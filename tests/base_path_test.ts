// A server mounted under a base path: every endpoint under the prefix, nothing outside it, card
// URLs that follow it, clients (ours and the official SDK's) that connect through it, and the 404
// of an unknown path under an interface in that binding's own error shape.

import assert from "node:assert/strict";
import { ClientFactory, ClientFactoryOptions, JsonRpcTransportFactory } from "@a2a-js/sdk/client";
import { A2AClient } from "../client.ts";
import { createHandler, type TokenVerifier } from "../mod.ts";
import { demoAgent, demoAgentCard } from "../src/demo/agent.ts";
import { startServer, TOKENS, userMessage } from "./helpers.ts";

const DEADLINE_MS = 10_000;

/** A verifier that accepts nothing; unlike StaticTokenVerifier it starts no work of its own. */
const NO_TOKENS: TokenVerifier = { verify: () => Promise.resolve(undefined) };
const BASE = "/agents/echo";

function get(url: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { ...init, signal: AbortSignal.timeout(DEADLINE_MS) });
}

function rpc(url: string, method = "ListTasks"): Promise<Response> {
  return get(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${TOKENS.alice}`,
      "a2a-version": "1.0",
    },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params: {} }),
  });
}

Deno.test("basePath serves the card, auth, capnweb, jsonrpc and health under the prefix", async () => {
  await using server = startServer({ basePath: `${BASE}/` });
  assert.ok(server.url.endsWith(BASE), server.url);
  const root = server.url.slice(0, -BASE.length);
  for (const suffix of ["", "/"]) {
    const card = await get(`${server.url}/.well-known/agent-card.json${suffix}`);
    assert.equal(card.status, 200);
    const body = await card.json();
    assert.deepEqual(
      body.supportedInterfaces.slice(0, 2).map((i: { url: string }) => i.url),
      [`${server.url}/a2a/capnweb`, `${server.url}/a2a/jsonrpc`],
    );
    const health = await get(`${server.url}/health${suffix}`);
    assert.deepEqual(await health.json(), { status: "ok" });
    const jsonrpc = await rpc(`${server.url}/a2a/jsonrpc${suffix}`);
    assert.equal(jsonrpc.status, 200);
    assert.deepEqual((await jsonrpc.json()).result.tasks, []);
    const auth = await get(`${server.url}/a2a/auth${suffix}`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKENS.alice}` },
    });
    assert.equal(auth.status, 200);
    assert.equal((await auth.json()).userId, "alice");
  }
  // The prefix alone is the handler's `/`, which serves nothing.
  const bare = await get(server.url);
  assert.equal(bare.status, 404);
  await bare.body?.cancel();
  // Nothing is served outside the prefix, the root's agent card included.
  for (const path of ["/.well-known/agent-card.json", "/a2a/jsonrpc", "/health", "/agents"]) {
    const res = await get(`${root}${path}`);
    assert.equal(res.status, 404, path);
    assert.equal((await res.json()).error.message, `Not found: ${path}`);
  }
  // A prefix of the prefix is not the prefix.
  const near = await get(`${root}${BASE}x/health`);
  assert.equal(near.status, 404);
  await near.body?.cancel();
});

for (const transport of ["websocket", "batch", "jsonrpc"] as const) {
  Deno.test(`A2AClient.connect() through a base URL with the base path works over ${transport}`, async () => {
    await using server = startServer({ basePath: BASE });
    for (const url of [server.url, `${server.url}/`]) {
      await using client = await A2AClient.connect(url, { token: TOKENS.alice, transport });
      const { task } = await client.sendMessage({ message: userMessage("under a prefix") });
      assert.equal(task?.status.state, "TASK_STATE_COMPLETED");
    }
  });
}

Deno.test("A2AClient.connect() also takes the card's own URL under a base path", async () => {
  await using server = startServer({ basePath: BASE });
  await using client = await A2AClient.connect(`${server.url}/.well-known/agent-card.json`, {
    token: TOKENS.alice,
  });
  assert.equal(client.transport, "websocket");
  assert.ok(await client.ping());
});

Deno.test("the official SDK client connects through a base URL with the base path", async () => {
  await using server = startServer({ basePath: BASE });
  const fetchImpl = (input: RequestInfo | URL, init?: RequestInit) => {
    const headers = new Headers(init?.headers);
    headers.set("authorization", `Bearer ${TOKENS.alice}`);
    return fetch(input, { ...init, headers, signal: AbortSignal.timeout(DEADLINE_MS) });
  };
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ fetchImpl })],
    }),
  );
  // The SDK resolves `.well-known/agent-card.json` against the base URL: the slash matters.
  const client = await factory.createFromUrl(`${server.url}/`);
  const list = await client.listTasks({
    tenant: "",
    contextId: "",
    status: 0,
    pageToken: "",
    statusTimestampAfter: undefined,
  });
  assert.deepEqual(list.tasks, []);
});

for (const basePath of [undefined, BASE]) {
  Deno.test(`an unknown path under an interface gets that binding's 404 (basePath ${basePath ?? "none"})`, async () => {
    await using server = startServer(basePath === undefined ? {} : { basePath });
    const jsonrpc = await rpc(`${server.url}/a2a/jsonrpc/foo`);
    assert.equal(jsonrpc.status, 404);
    const rpcBody = await jsonrpc.json();
    assert.equal(rpcBody.jsonrpc, "2.0");
    assert.equal(rpcBody.id, null);
    assert.equal(rpcBody.error.code, -32600);
    assert.equal(
      rpcBody.error.message,
      `Not found: ${basePath ?? ""}/a2a/jsonrpc/foo; the JSON-RPC endpoint is ${
        basePath ?? ""
      }/a2a/jsonrpc`,
    );
    const capnweb = await get(`${server.url}/a2a/capnweb/x`, { method: "POST", body: "[]" });
    assert.equal(capnweb.status, 404);
    const capBody = await capnweb.json();
    assert.equal(capBody.error.status, 404);
    assert.equal(capBody.error.code, -32600);
    assert.match(
      capBody.error.message,
      /^Not found: .*\/a2a\/capnweb\/x; the capnweb endpoint is /,
    );
    const other = await get(`${server.url}/a2a/nothing`);
    assert.equal(other.status, 404);
    assert.deepEqual(await other.json(), {
      error: { status: 404, message: `Not found: ${basePath ?? ""}/a2a/nothing` },
    });
  });
}

Deno.test("createHandler() refuses a basePath that is not a plain path", () => {
  const base = {
    agentCard: demoAgentCard,
    executor: demoAgent,
    verifier: NO_TOKENS,
  };
  for (const basePath of ["agents", "/a b", "/a/../b", "/a?x", "//a", "/a/./b", "/%2e"]) {
    assert.throws(() => createHandler({ ...base, basePath }), /Invalid basePath/, basePath);
  }
});
