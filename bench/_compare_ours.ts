// Our side of bench/compare.ts, run as its own `deno` process: serve() from server.ts with the
// same agent as bench/sdk/server.mjs, and a second listener with a raw WebSocket echo (the floor
// of the latency rows), the fan-out gate and a memory probe. Prints one JSON line when ready.

import { type AgentExecutor, demoAgentCard, StaticTokenVerifier, textOf } from "../mod.ts";
import { serve } from "../server.ts";

let openGate = () => {};
let gate: Promise<void> = Promise.resolve();

/**
 * `stream:N`: WORKING, N chunks of one artifact, COMPLETED. `gate:N`: the same, waiting on the
 * gate after WORKING. Anything else: WORKING, the text as one artifact, COMPLETED.
 */
const agent: AgentExecutor = {
  async execute(ctx, events) {
    const text = textOf(ctx.message);
    const m = /^(stream|gate):(\d+)$/.exec(text);
    await events.status("TASK_STATE_WORKING");
    if (m) {
      if (m[1] === "gate") await gate;
      const n = Number(m[2]);
      for (let i = 0; i < n; i++) {
        await events.artifact(
          { artifactId: "echo", parts: [{ text: `chunk ${i} ` }] },
          { append: i > 0, lastChunk: i === n - 1 },
        );
      }
    } else {
      await events.artifact({ artifactId: "echo", parts: [{ text }] }, { lastChunk: true });
    }
    await events.status("TASK_STATE_COMPLETED");
  },
};

// Generous limits: the bench opens up to 10k sessions from one address and bursts 10k chunks
// at subscribers that cannot keep up with an agent that never waits for I/O.
const server = serve({
  port: 0,
  hostname: "127.0.0.1",
  agentCard: demoAgentCard,
  executor: agent,
  verifier: StaticTokenVerifier.fromList("alice=token-alice"),
  limits: {
    subscriberBufferLimit: 32_768,
    subscriberBufferBytes: 256 * 1024 * 1024,
    maxStreamsPerUser: 20_000,
    maxConnections: 20_000,
    maxConnectionsPerAddress: 20_000,
    maxUnfinishedTasksPerUser: 100_000,
  },
});

const side = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
  const path = new URL(req.url).pathname;
  if (path === "/echo") {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onmessage = (e) => socket.send(e.data);
    return response;
  }
  if (path === "/bench/gate") {
    openGate();
    return Response.json({ ok: true });
  }
  if (path === "/bench/close-gate") {
    gate = new Promise((resolve) => openGate = resolve);
    return Response.json({ ok: true });
  }
  if (path === "/bench/mem") {
    // Started with --expose-gc, so that the heap is what the sessions hold.
    (globalThis as { gc?: () => void }).gc?.();
    const m = Deno.memoryUsage();
    return Response.json({ rss: m.rss, heapUsed: m.heapUsed, stats: server.handler.stats() });
  }
  return new Response("Not found", { status: 404 });
});

Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
// deno-lint-ignore no-console
console.log(JSON.stringify({ url: server.url, side: `http://127.0.0.1:${side.addr.port}` }));
