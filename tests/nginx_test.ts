// The server behind a real nginx running docs/deploy/nginx.conf, TLS at nginx: capnweb over
// WebSocket, HTTP batches and JSON-RPC through it, SSE arriving event by event, a stream resumed
// after `nginx -s reload` drops its connection, idle connections held past proxy_read_timeout by
// the heartbeats, per-address limits by the real client address, and nginx as the round-robin
// load balancer of three server processes on PostgreSQL.

import assert from "node:assert/strict";
import { A2AClient, type ConnectionState } from "../client.ts";
import { type AgentExecutor, type StreamEvent, textOf } from "../mod.ts";
import { demoAgent } from "../src/demo/agent.ts";
import { sleep } from "../src/util/sleep.ts";
import { checkStream, startServer, TOKENS, userMessage, withDeadline, words } from "./helpers.ts";
import { freePort, type Nginx, NGINX_TEST, startNginx } from "./nginx.ts";
import { freshDatabase, PG_TEST } from "./pg_cluster.ts";
import { type ServerProcess, startServerProcess } from "./server_process.ts";
import { makeCertificates, type TestCertificates } from "./tls_fixtures.ts";

/** The demo agent, plus `idle: <text>`: WORKING, five silent seconds, then the text back. */
const idleAgent: AgentExecutor = {
  async execute(ctx, events) {
    const text = textOf(ctx.message);
    if (!text.startsWith("idle:")) return await demoAgent.execute(ctx, events);
    await events.status("TASK_STATE_WORKING");
    await sleep(5000, ctx.signal);
    await events.artifact({ artifactId: "out", parts: [{ text: text.slice(5).trim() }] });
    await events.status("TASK_STATE_COMPLETED");
  },
  cancel: (ctx, events) => demoAgent.cancel?.(ctx, events) ?? Promise.resolve(),
};

/** A JSON-RPC request through `doFetch`. */
function jsonRpc(
  doFetch: (url: string, init: RequestInit) => Promise<Response>,
  base: string,
  method: string,
  params: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return doFetch(`${base}/a2a/jsonrpc`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${TOKENS.alice}`,
      "a2a-version": "1.0",
      ...headers,
    },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
}

/** A fetch that trusts the test CA and connects from `localAddress`, and its pool to close. */
function trustingFetch(certs: TestCertificates, localAddress?: string) {
  const client = Deno.createHttpClient({
    caCerts: [certs.ca],
    ...(localAddress !== undefined && { localAddress }),
  });
  return {
    fetch: (url: string, init: RequestInit) => fetch(url, { ...init, client }),
    [Symbol.dispose]: () => client.close(),
  };
}

/** One in-process server behind nginx; the card advertises nginx's URL. */
async function behindNginx(
  certs: TestCertificates,
  options: Parameters<typeof startServer>[0] = {},
  readTimeoutSeconds?: number,
) {
  const port = freePort();
  const server = startServer({
    executor: idleAgent,
    publicUrl: `https://127.0.0.1:${port}`,
    trustedProxies: ["127.0.0.1"],
    ...options,
  });
  let nginx: Nginx;
  try {
    nginx = await startNginx({
      upstreams: [server.addr.port],
      certFile: certs.files.cert,
      keyFile: certs.files.key,
      port,
      ...(readTimeoutSeconds !== undefined && { readTimeoutSeconds }),
    });
  } catch (err) {
    await server[Symbol.asyncDispose]();
    throw err;
  }
  return {
    server,
    nginx,
    async [Symbol.asyncDispose]() {
      try {
        await nginx[Symbol.asyncDispose]();
      } finally {
        await server[Symbol.asyncDispose]();
      }
    },
  };
}

Deno.test({
  name: "capnweb over WebSocket, HTTP batches and JSON-RPC work through nginx with TLS",
  ...NGINX_TEST,
  fn: async () => {
    await using certs = await makeCertificates();
    await using setup = await behindNginx(certs);
    const { nginx } = setup;
    using trusting = trustingFetch(certs);
    // The card names nginx, not the server behind it.
    const card = await withDeadline(
      (await trusting.fetch(`${nginx.url}/.well-known/agent-card.json`, {})).json(),
    );
    for (const i of card.supportedInterfaces) assert.ok(i.url.startsWith(`${nginx.url}/`), i.url);
    // Plain HTTP only redirects to https.
    const plain = await withDeadline(
      fetch(`http://127.0.0.1:${nginx.httpPort}/a2a/jsonrpc`, { redirect: "manual" }),
    );
    await plain.body?.cancel();
    assert.equal(plain.status, 308);
    assert.match(plain.headers.get("location") ?? "", /^https:\/\//);

    {
      await using ws = await withDeadline(
        A2AClient.connect(nginx.url, { token: TOKENS.alice, caCerts: [certs.ca] }),
      );
      assert.equal(ws.transport, "websocket");
      const events: StreamEvent[] = [];
      for await (const e of ws.sendStreamingMessage({ message: userMessage("through nginx") })) {
        events.push(e);
      }
      assert.match(checkStream(events), /through nginx/);
      assert.equal(events.at(-1)?.statusUpdate?.status.state, "TASK_STATE_COMPLETED");
    }
    {
      await using batch = await withDeadline(A2AClient.connect(nginx.url, {
        token: TOKENS.alice,
        transport: "batch",
        caCerts: [certs.ca],
      }));
      const { task } = await withDeadline(batch.sendMessage({ message: userMessage("batch") }));
      assert.equal(task?.status.state, "TASK_STATE_COMPLETED");
    }
    await using rpc = await withDeadline(A2AClient.connect(nginx.url, {
      token: TOKENS.alice,
      transport: "jsonrpc",
      caCerts: [certs.ca],
    }));
    const { task } = await withDeadline(rpc.sendMessage({ message: userMessage("json-rpc") }));
    assert.equal(task?.status.state, "TASK_STATE_COMPLETED");
  },
});

Deno.test({
  name: "a JSON-RPC SSE stream through nginx arrives event by event, not buffered",
  ...NGINX_TEST,
  fn: async () => {
    await using certs = await makeCertificates();
    await using setup = await behindNginx(certs);
    using trusting = trustingFetch(certs);
    const start = Date.now();
    const res = await withDeadline(
      jsonRpc(trusting.fetch, setup.nginx.url, "SendStreamingMessage", {
        message: userMessage(`slow: ${words(10)}`),
      }),
    );
    assert.equal(res.status, 200);
    // When each event's data arrived, in ms from the request.
    const arrivals: number[] = [];
    let buffer = "";
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const { value, done } = await withDeadline(reader.read());
        if (done) break;
        buffer += value;
        const parts = buffer.split("\n\n");
        buffer = parts.pop()!;
        for (const part of parts) if (part.includes("data:")) arrivals.push(Date.now() - start);
      }
    } finally {
      reader.releaseLock();
    }
    // 10 words at 200 ms each: buffered, they would all arrive at the end together.
    assert.ok(arrivals.length >= 12, `${arrivals.length} events`);
    const spread = arrivals.at(-1)! - arrivals[0]!;
    assert.ok(spread >= 1200, `events arrived within ${spread} ms: ${arrivals.join(", ")}`);
  },
});

Deno.test({
  name: "a stream resumes with every event once after nginx -s reload drops its connection",
  ...NGINX_TEST,
  fn: async () => {
    await using certs = await makeCertificates();
    await using setup = await behindNginx(certs);
    const states: ConnectionState[] = [];
    await using client = await withDeadline(A2AClient.connect(setup.nginx.url, {
      token: TOKENS.alice,
      caCerts: [certs.ca],
      reconnect: { initialDelayMs: 50 },
      onStateChange: (state) => states.push(state),
    }));
    const events: StreamEvent[] = [];
    let reloads = 0;
    await withDeadline(
      (async () => {
        for await (
          const e of client.sendStreamingMessage({ message: userMessage(`slow: ${words(25)}`) })
        ) {
          events.push(e);
          if ((events.length === 3 || events.length === 12) && reloads < 2) {
            reloads++;
            await setup.nginx.reload();
          }
        }
      })(),
      20_000,
      "the stream",
    );
    assert.equal(reloads, 2);
    assert.ok(states.filter((s) => s === "reconnecting").length >= 1, states.join(" "));
    assert.equal(checkStream(events).trim().split(/\s+/).length, 25);
    assert.equal(events.at(-1)?.statusUpdate?.status.state, "TASK_STATE_COMPLETED");
  },
});

Deno.test({
  name: "heartbeats hold an idle WebSocket and an idle SSE stream past nginx's read timeout",
  ...NGINX_TEST,
  fn: async () => {
    await using certs = await makeCertificates();
    // nginx gives up after 3 s of silence from the server; the server pings a WebSocket after 1 s
    // of silence and comments on an SSE stream every second.
    await using setup = await behindNginx(
      certs,
      { limits: { idleTimeoutSeconds: 1, sseKeepAliveMs: 1000 } },
      3,
    );
    const states: ConnectionState[] = [];
    await using client = await withDeadline(A2AClient.connect(setup.nginx.url, {
      token: TOKENS.alice,
      caCerts: [certs.ca],
      // No client pings: only the server's heartbeats cross the connection for five seconds.
      liveness: { pingIntervalMs: 0 },
      onStateChange: (state) => states.push(state),
    }));
    using trusting = trustingFetch(certs);
    const overWebSocket = (async () => {
      const events: StreamEvent[] = [];
      for await (const e of client.sendStreamingMessage({ message: userMessage("idle: ws") })) {
        events.push(e);
      }
      return events;
    })();
    const overSse = (async () => {
      const res = await jsonRpc(trusting.fetch, setup.nginx.url, "SendStreamingMessage", {
        message: userMessage("idle: sse"),
      });
      return await res.text();
    })();
    const [events, sse] = await withDeadline(Promise.all([overWebSocket, overSse]), 15_000);
    assert.match(checkStream(events), /ws/);
    assert.equal(events.at(-1)?.statusUpdate?.status.state, "TASK_STATE_COMPLETED");
    assert.deepEqual(states.filter((s) => s !== "open"), [], "the WebSocket never dropped");
    assert.match(sse, /TASK_STATE_COMPLETED/);
    assert.match(sse, /"text":"sse"/);
    assert.match(sse, /^:/m, "keep-alive comments");
    // The session is still the same connection, and answers.
    assert.ok((await withDeadline(client.ping())).time);
  },
});

Deno.test({
  name: "per-address limits behind nginx count each client's own address, not nginx's",
  ...NGINX_TEST,
  fn: async () => {
    await using certs = await makeCertificates();
    await using setup = await behindNginx(certs, { limits: { maxConnectionsPerAddress: 2 } });
    // Two clients on their own loopback addresses; nginx reaches the server from 127.0.0.1.
    using a = trustingFetch(certs, "127.0.0.2");
    using b = trustingFetch(certs, "127.0.0.3");
    const stream = (f: typeof a, headers: Record<string, string> = {}) =>
      withDeadline(
        jsonRpc(f.fetch, setup.nginx.url, "SendStreamingMessage", {
          message: userMessage(`slow: ${words(15)}`),
        }, headers),
      );
    const open: Response[] = [];
    try {
      open.push(await stream(a), await stream(a));
      for (const res of open) assert.equal(res.status, 200);
      const third = await stream(a);
      await third.body?.cancel();
      assert.equal(third.status, 429);
      // A forged X-Forwarded-For changes nothing: nginx appends what it saw, the server reads that.
      const forged = await stream(a, { "x-forwarded-for": "198.51.100.77" });
      await forged.body?.cancel();
      assert.equal(forged.status, 429);
      // The other client is not held to the first one's count.
      const other = await stream(b);
      open.push(other);
      assert.equal(other.status, 200);
    } finally {
      await Promise.all(open.map((r) => r.body?.cancel()));
    }
    // nginx logs a request when it ends: the refused ones have, from the first client's address.
    assert.match(await setup.nginx.accessLog(), /^127\.0\.0\.2 \S+ 429 /m);
  },
});

Deno.test({
  name: "nginx balances three server processes on PostgreSQL round robin, streams survive reloads",
  ...NGINX_TEST,
  ignore: NGINX_TEST.ignore || PG_TEST.ignore,
  fn: async () => {
    await using certs = await makeCertificates();
    const db = (await freshDatabase())!;
    const port = freePort();
    const flags = ["--public-url", `https://127.0.0.1:${port}`, "--trusted-proxy", "127.0.0.1"];
    const servers: ServerProcess[] = [];
    try {
      servers.push(...await Promise.all([0, 1, 2].map(() => startServerProcess(db, {}, 0, flags))));
      await using nginx = await startNginx({
        upstreams: servers.map((s) => s.port),
        certFile: certs.files.cert,
        keyFile: certs.files.key,
        port,
      });
      using trusting = trustingFetch(certs);
      for (let i = 0; i < 6; i++) {
        const res = await withDeadline(
          jsonRpc(trusting.fetch, nginx.url, "SendMessage", { message: userMessage(`m${i}`) }),
        );
        assert.equal(res.status, 200);
        assert.match(await res.text(), /TASK_STATE_COMPLETED/);
      }
      const upstreams = new Set(
        (await nginx.accessLog()).split("\n").filter((l) => l.includes("/a2a/jsonrpc"))
          .map((l) => l.split(" ")[1]),
      );
      assert.equal(upstreams.size, 3, [...upstreams].join(" "));

      await using client = await withDeadline(A2AClient.connect(nginx.url, {
        token: TOKENS.alice,
        caCerts: [certs.ca],
        reconnect: { initialDelayMs: 50 },
      }));
      const events: StreamEvent[] = [];
      let reloads = 0;
      await withDeadline(
        (async () => {
          for await (
            const e of client.sendStreamingMessage({ message: userMessage(`slow: ${words(25)}`) })
          ) {
            events.push(e);
            if ((events.length === 3 || events.length === 12) && reloads < 2) {
              reloads++;
              await nginx.reload();
            }
          }
        })(),
        25_000,
        "the stream",
      );
      assert.equal(checkStream(events).trim().split(/\s+/).length, 25);
      assert.equal(events.at(-1)?.statusUpdate?.status.state, "TASK_STATE_COMPLETED");
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  },
});
