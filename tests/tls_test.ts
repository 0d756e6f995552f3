// TLS in the server and the client: a CA and a server certificate made for the test, the server
// on Deno.serve's own TLS, the client trusting the CA through `caCerts` over wss, https batches
// and JSON-RPC, HTTP/2 for the JSON bindings, and clients that do not trust it refused.

import assert from "node:assert/strict";
import { A2AClient } from "../client.ts";
import type { StreamEvent } from "../mod.ts";
import { serve } from "../server.ts";
import { demoAgent, demoAgentCard } from "../src/demo/agent.ts";
import { caFetch } from "../src/client/tls.ts";
import { startServer, TOKENS, userMessage, withDeadline } from "./helpers.ts";
import { startServerProcess } from "./server_process.ts";
import { makeCertificates, REQUIRE_TLS, TLS_TEST } from "./tls_fixtures.ts";

async function collect(stream: AsyncIterable<StreamEvent>): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  for await (const e of stream) events.push(e);
  return events;
}

function artifactText(events: StreamEvent[]): string {
  return events.flatMap((e) => e.artifactUpdate?.artifact.parts ?? [])
    .map((p) => ("text" in p ? p.text : "")).join("");
}

function jsonRpcBody(method: string, params: unknown): string {
  return JSON.stringify({ jsonrpc: "2.0", id: 1, method, params });
}

const JSONRPC_HEADERS = {
  "content-type": "application/json",
  authorization: `Bearer ${TOKENS.alice}`,
  "a2a-version": "1.0",
};

function hasCurl(): boolean {
  try {
    return new Deno.Command("curl", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "serve() with cert and key advertises https URLs and serves capnweb over wss",
  ...TLS_TEST,
  fn: async () => {
    await using certs = await makeCertificates();
    await using server = startServer({ cert: certs.cert, key: certs.key });
    assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const ca = caFetch([certs.ca]);
    try {
      const res = await withDeadline(ca.fetch(`${server.url}/.well-known/agent-card.json`));
      const card = await res.json();
      const urls = card.supportedInterfaces.map((i: { url: string }) => i.url);
      assert.ok(urls.length >= 3);
      for (const url of urls) assert.ok(url.startsWith(`${server.url}/`), url);
    } finally {
      ca.close();
    }
    await using client = await withDeadline(
      A2AClient.connect(server.url, { token: TOKENS.alice, caCerts: [certs.ca] }),
    );
    assert.equal(client.transport, "websocket");
    const events = await withDeadline(collect(client.sendStreamingMessage({
      message: userMessage("hello over wss"),
    })));
    assert.match(artifactText(events), /hello over wss/);
    assert.equal(events.at(-1)?.statusUpdate?.status.state, "TASK_STATE_COMPLETED");
  },
});

Deno.test({
  name: "a client that trusts the CA calls over https with HTTP batches and JSON-RPC",
  ...TLS_TEST,
  fn: async () => {
    await using certs = await makeCertificates();
    await using server = startServer({ cert: certs.cert, key: certs.key });
    {
      await using batch = await withDeadline(A2AClient.connect(server.url, {
        token: TOKENS.alice,
        transport: "batch",
        caCerts: [certs.ca],
      }));
      const { task } = await withDeadline(
        batch.sendMessage({ message: userMessage("batch over https") }),
      );
      assert.ok(task);
      const got = await withDeadline(batch.getTask({ id: task.id }));
      assert.equal(got.id, task.id);
    }
    await using jsonrpc = await withDeadline(A2AClient.connect(server.url, {
      token: TOKENS.alice,
      transport: "jsonrpc",
      caCerts: [certs.ca],
    }));
    assert.equal(jsonrpc.transport, "jsonrpc");
    const events = await withDeadline(collect(jsonrpc.sendStreamingMessage({
      message: userMessage("sse over https"),
    })));
    assert.match(artifactText(events), /sse over https/);
    assert.equal(events.at(-1)?.statusUpdate?.status.state, "TASK_STATE_COMPLETED");
  },
});

Deno.test({
  name: "the JSON bindings speak HTTP/2 to a client that negotiates it, SSE included",
  ...TLS_TEST,
  fn: async () => {
    await using certs = await makeCertificates();
    await using server = startServer({ cert: certs.cert, key: certs.key });
    // Deno's fetch restricted to HTTP/2: a server without h2 in its ALPN fails the handshake.
    const client = Deno.createHttpClient({ caCerts: [certs.ca], http1: false, http2: true });
    try {
      const h2 = (input: string, init: RequestInit) => fetch(input, { ...init, client });
      const res = await withDeadline(h2(`${server.url}/a2a/jsonrpc`, {
        method: "POST",
        headers: JSONRPC_HEADERS,
        body: jsonRpcBody("SendStreamingMessage", { message: userMessage("slow: a b c") }),
      }));
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
      const text = await withDeadline(res.text());
      assert.match(text, /TASK_STATE_COMPLETED/);
      assert.ok(text.split("\n\n").filter((e) => e.includes("data:")).length >= 4, text);
    } finally {
      client.close();
    }
  },
});

Deno.test({
  name: "curl --http2 gets HTTP/2 answers from the JSON-RPC and HTTP+JSON bindings",
  ...TLS_TEST,
  ignore: TLS_TEST.ignore || (!REQUIRE_TLS && !hasCurl()),
  fn: async () => {
    await using certs = await makeCertificates();
    await using server = startServer({ cert: certs.cert, key: certs.key });
    const curl = async (args: string[]) => {
      // Asynchronous: the server answers on this same event loop.
      const out = await withDeadline(
        new Deno.Command("curl", {
          args: ["-sS", "--http2", "--cacert", certs.files.ca, "--max-time", "10", ...args],
          stdout: "piped",
          stderr: "piped",
        }).output(),
      );
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      return new TextDecoder().decode(out.stdout);
    };
    const rpc = await curl([
      "-w",
      "\n%{http_version} %{http_code}",
      ...Object.entries(JSONRPC_HEADERS).flatMap(([k, v]) => ["-H", `${k}: ${v}`]),
      "--data",
      jsonRpcBody("SendMessage", { message: userMessage("h2") }),
      `${server.url}/a2a/jsonrpc`,
    ]);
    assert.match(rpc, /"result"/);
    assert.match(rpc, /\n2 200$/);
    const rest = await curl([
      "-o",
      "/dev/null",
      "-w",
      "%{http_version} %{http_code}",
      "-H",
      `authorization: Bearer ${TOKENS.alice}`,
      "-H",
      "a2a-version: 1.0",
      `${server.url}/a2a/rest/tasks`,
    ]);
    assert.equal(rest, "2 200");
  },
});

Deno.test({
  name: "a client that does not trust the server's CA is refused with a certificate error",
  ...TLS_TEST,
  fn: async () => {
    await using certs = await makeCertificates();
    await using server = startServer({ cert: certs.cert, key: certs.key });
    for (const options of [{ caCerts: [certs.otherCa] }, {}]) {
      await assert.rejects(
        withDeadline(A2AClient.connect(server.url, { token: TOKENS.alice, ...options })),
        (err: Error) => {
          assert.match(err.message, /^Cannot read agent card: https:\/\/127\.0\.0\.1:\d+\//);
          assert.match(err.message, /certificate/i);
          return true;
        },
      );
    }
    // The card read with a trusting fetch, the WebSocket with the wrong CA: refused, not retried.
    const good = caFetch([certs.ca]);
    try {
      await assert.rejects(
        withDeadline(A2AClient.connect(server.url, {
          token: TOKENS.alice,
          fetch: good.fetch,
          caCerts: [certs.otherCa],
          reconnect: false,
        })),
        (err: Error) => {
          assert.match(err.message, /certificate/i);
          return true;
        },
      );
    } finally {
      good.close();
    }
  },
});

Deno.test({
  name: "serve() refuses a certificate without its key",
  ...TLS_TEST,
  fn: async () => {
    await using certs = await makeCertificates();
    assert.throws(
      () => serve({ port: 0, agentCard: demoAgentCard, executor: demoAgent, cert: certs.cert }),
      /^TypeError: Invalid TLS options: cert and key go together/,
    );
  },
});

Deno.test({
  name: "server.ts --cert and --key (or A2A_TLS_CERT and A2A_TLS_KEY) listens on https",
  ...TLS_TEST,
  fn: async () => {
    await using certs = await makeCertificates();
    const starts = [
      () =>
        startServerProcess({ memory: true }, {}, 0, [
          "--cert",
          certs.files.cert,
          "--key",
          certs.files.key,
        ]),
      () =>
        startServerProcess({ memory: true }, {
          A2A_TLS_CERT: certs.files.cert,
          A2A_TLS_KEY: certs.files.key,
        }),
    ];
    for (const start of starts) {
      await using proc = await start();
      assert.match(proc.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      await using client = await withDeadline(
        A2AClient.connect(proc.url, { token: TOKENS.alice, caCerts: [certs.ca] }),
      );
      const { task } = await withDeadline(client.sendMessage({ message: userMessage("hi") }));
      assert.equal(task?.status.state, "TASK_STATE_COMPLETED");
    }
  },
});
