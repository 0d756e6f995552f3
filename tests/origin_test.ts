// The origin policy (`allowedOrigins`): browser origins on WebSocket upgrades and CORS requests,
// against a real server on 127.0.0.1, with raw `npm:ws` sockets that set an `Origin` header.

import assert from "node:assert/strict";
import { WebSocket as WsWebSocket } from "ws";
import { A2AClient, type WebSocketConstructor } from "../client.ts";
import { createHandler, StaticTokenVerifier } from "../mod.ts";
import { demoAgent, demoAgentCard } from "../src/demo/agent.ts";
import { startServer, TOKENS, userMessage } from "./helpers.ts";

const APP = "https://app.example.com";
const EVIL = "https://evil.example";

/** A WebSocket class for the client that sends the given `Origin`, as a browser page would. */
function webSocketFrom(origin: string): WebSocketConstructor {
  return class extends WsWebSocket {
    constructor(url: string) {
      super(url, { origin });
    }
  } as unknown as WebSocketConstructor;
}

/** Tries a raw WebSocket upgrade; resolves with "open" or the refusing HTTP status and body. */
function tryUpgrade(
  baseUrl: string,
  origin: string,
): Promise<{ open: true } | { open: false; status: number; body: string }> {
  const ws = new WsWebSocket(`${baseUrl.replace("http", "ws")}/a2a/capnweb`, { origin });
  return new Promise((resolve, reject) => {
    ws.once("open", () => {
      ws.once("close", () => resolve({ open: true }));
      ws.close(1000);
    });
    // deno-lint-ignore no-explicit-any
    ws.once("unexpected-response", (req: any, res: any) => {
      const chunks: Uint8Array[] = [];
      res.on("data", (c: Uint8Array) => chunks.push(c));
      res.on("end", () => {
        req.destroy();
        const body = new TextDecoder().decode(
          chunks.reduce((a, b) => new Uint8Array([...a, ...b]), new Uint8Array()),
        );
        resolve({ open: false, status: res.statusCode, body });
      });
    });
    ws.once("error", (err: Error) => {
      if (ws.readyState !== ws.CLOSED) reject(err);
    });
  });
}

function preflight(baseUrl: string, path: string, origin: string): Promise<Response> {
  return fetch(baseUrl + path, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type",
    },
  });
}

function corsHeaders(res: Response): string[] {
  return [...res.headers.keys()].filter((k) => k.startsWith("access-control-"));
}

Deno.test("a WebSocket upgrade from an allowed origin opens a session that answers ping()", async () => {
  await using server = startServer({ allowedOrigins: [APP] });
  assert.deepEqual(await tryUpgrade(server.url, APP), { open: true });
  await using client = await A2AClient.connect(server.url, {
    token: TOKENS.alice,
    webSocket: webSocketFrom(APP),
  });
  const { time } = await client.ping();
  assert.ok(!Number.isNaN(Date.parse(time)));
});

Deno.test("a WebSocket upgrade from a disallowed origin gets 403 with a JSON error, before upgrading", async () => {
  await using server = startServer({ allowedOrigins: [APP] });
  const result = await tryUpgrade(server.url, EVIL);
  assert.equal(result.open, false);
  if (result.open) return;
  assert.equal(result.status, 403);
  const body = JSON.parse(result.body);
  assert.equal(body.error.status, 403);
  assert.equal(body.error.message, `Origin not allowed: ${EVIL}`);
  assert.equal(server.handler.stats().sockets, server.baseline.sockets);
  assert.equal(server.handler.stats().sessions, server.baseline.sessions);
});

Deno.test("a preflight from an allowed origin echoes it with Vary: Origin", async () => {
  await using server = startServer({ allowedOrigins: [APP, "https://other.example.com"] });
  for (const path of ["/a2a/auth", "/a2a/jsonrpc", "/a2a/capnweb"]) {
    const res = await preflight(server.url, path, APP);
    await res.body?.cancel();
    assert.equal(res.status, 204);
    assert.equal(res.headers.get("access-control-allow-origin"), APP);
    assert.match(res.headers.get("vary") ?? "", /\bOrigin\b/);
    assert.match(res.headers.get("access-control-allow-headers") ?? "", /authorization/);
  }
  // Responses to the real requests carry the echoed origin too.
  const res = await fetch(`${server.url}/a2a/auth`, {
    method: "POST",
    headers: { origin: APP, authorization: `Bearer ${TOKENS.alice}` },
  });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).userId, "alice");
  assert.equal(res.headers.get("access-control-allow-origin"), APP);
  assert.match(res.headers.get("vary") ?? "", /\bOrigin\b/);
});

Deno.test("a preflight from a disallowed origin gets 403 and no CORS headers", async () => {
  await using server = startServer({ allowedOrigins: [APP] });
  const res = await preflight(server.url, "/a2a/jsonrpc", EVIL);
  assert.equal(res.status, 403);
  assert.equal((await res.json()).error.message, `Origin not allowed: ${EVIL}`);
  assert.deepEqual(corsHeaders(res), []);
});

Deno.test("a POST from a disallowed origin is refused even without a preflight", async () => {
  await using server = startServer({ allowedOrigins: [APP] });
  // A "simple request" (text/plain) skips the preflight; an HTTP batch carries its ticket inside.
  for (const path of ["/a2a/capnweb", "/a2a/auth", "/a2a/jsonrpc"]) {
    const res = await fetch(server.url + path, {
      method: "POST",
      headers: { origin: EVIL, "content-type": "text/plain" },
      body: "[]",
    });
    await res.body?.cancel();
    assert.equal(res.status, 403, path);
    assert.deepEqual(corsHeaders(res), [], path);
  }
});

Deno.test("a GET from a disallowed origin is served without CORS headers", async () => {
  await using server = startServer({ allowedOrigins: [APP] });
  const res = await fetch(`${server.url}/.well-known/agent-card.json`, {
    headers: { origin: EVIL },
  });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).name, demoAgentCard.name);
  assert.deepEqual(corsHeaders(res), []);
  assert.match(res.headers.get("vary") ?? "", /\bOrigin\b/);
});

Deno.test("requests without an Origin header are always allowed", async () => {
  await using server = startServer({ allowedOrigins: [APP] });
  const res = await fetch(`${server.url}/a2a/auth`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKENS.alice}` },
  });
  assert.equal(res.status, 200);
  assert.equal((await res.json()).userId, "alice");
  await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
  const { task } = await client.sendMessage({ message: userMessage("no origin") });
  assert.equal(task?.status.state, "TASK_STATE_COMPLETED");
});

Deno.test("the server's own origin is allowed whatever the list (the demo page)", async () => {
  await using server = startServer({ allowedOrigins: [APP] });
  assert.deepEqual(await tryUpgrade(server.url, server.url), { open: true });
  const res = await preflight(server.url, "/a2a/auth", server.url);
  await res.body?.cancel();
  assert.equal(res.status, 204);
  assert.equal(res.headers.get("access-control-allow-origin"), server.url);
});

Deno.test("the default policy allows every origin with access-control-allow-origin: *", async () => {
  await using server = startServer();
  assert.deepEqual(await tryUpgrade(server.url, EVIL), { open: true });
  const res = await preflight(server.url, "/a2a/jsonrpc", EVIL);
  await res.body?.cancel();
  assert.equal(res.status, 204);
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  const health = await fetch(`${server.url}/health`);
  await health.body?.cancel();
  assert.equal(health.headers.get("access-control-allow-origin"), "*");
});

Deno.test("a well-behaved client is served while disallowed origins keep trying", async () => {
  await using server = startServer({ allowedOrigins: [APP] });
  await using client = await A2AClient.connect(server.url, {
    token: TOKENS.alice,
    webSocket: webSocketFrom(APP),
  });
  let stop = false;
  const attacker = (async () => {
    let refused = 0;
    while (!stop) {
      const [upgrade, pre] = await Promise.all([
        tryUpgrade(server.url, EVIL),
        preflight(server.url, "/a2a/capnweb", EVIL),
      ]);
      await pre.body?.cancel();
      assert.equal(upgrade.open, false);
      assert.equal(pre.status, 403);
      refused += 2;
    }
    return refused;
  })();
  const served: string[] = [];
  for (let i = 0; i < 10; i++) {
    const { task } = await client.sendMessage({ message: userMessage(`served ${i}`) });
    assert.equal(task?.status.state, "TASK_STATE_COMPLETED");
    served.push(task!.id);
  }
  stop = true;
  const refused = await attacker;
  assert.equal(served.length, 10);
  assert.ok(refused >= 2, `expected refused attempts, got ${refused}`);
});

Deno.test("createHandler() rejects an allowedOrigins entry that is not an origin", () => {
  for (const entry of ["app.example.com", "https://app.example.com/path", "null", ""]) {
    assert.throws(
      () =>
        createHandler({
          agentCard: demoAgentCard,
          executor: demoAgent,
          verifier: StaticTokenVerifier.fromList(`alice=${TOKENS.alice}`),
          allowedOrigins: [entry],
        }),
      { name: "TypeError", message: `Invalid allowed origin: ${entry}` },
    );
  }
});
