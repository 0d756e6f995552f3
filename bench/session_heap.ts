// What one idle capnweb session costs the server, split between Deno's WebSocket, capnweb's
// session and this module: three servers in turn, each in a process of its own started with
// --expose-gc, measured before and after N idle connections (heap after a GC, and RSS).
//
//   deno run -A bench/session_heap.ts [sessions=1000] [rounds=3]
//
// - `deno`: Deno.upgradeWebSocket with the server's idle timeout and a message listener.
// - `capnweb`: the same socket carrying a capnweb RpcSession whose root object answers `ping`;
//   each client makes one call, so that the session has been used.
// - `ours`: serve() from server.ts; each client is an A2AClient that has authenticated (the
//   per-user capability is held), as in bench/compare.ts.

import { newWebSocketRpcSession, RpcSession, RpcTarget, WebSocketTransport } from "capnweb";
import { WebSocket as NodeWebSocket } from "ws";
import { A2AClient } from "../client.ts";
import { demoAgentCard, StaticTokenVerifier } from "../mod.ts";
import { serve } from "../server.ts";

type Variant = "deno" | "capnweb" | "ours";
const VARIANTS: Variant[] = ["deno", "capnweb", "ours"];

interface Memory {
  heapUsed: number;
  rss: number;
}

function memory(): Memory {
  (globalThis as { gc?: () => void }).gc?.();
  const m = Deno.memoryUsage();
  return { heapUsed: m.heapUsed, rss: m.rss };
}

class Root extends RpcTarget {
  ping(): string {
    return "pong";
  }
}

/** The server side: prints `{ url, mem }` and answers `GET /mem` on a listener of its own. */
function runServer(variant: Variant): void {
  const side = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    () => Response.json(memory()),
  );
  let url: string;
  if (variant === "ours") {
    const server = serve({
      port: 0,
      hostname: "127.0.0.1",
      agentCard: demoAgentCard,
      executor: {
        async execute(_ctx, events) {
          await events.status("TASK_STATE_COMPLETED");
        },
      },
      verifier: StaticTokenVerifier.fromList("alice=token-alice"),
      limits: { maxConnections: 100_000, maxConnectionsPerAddress: 100_000 },
    });
    url = server.url;
  } else {
    const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
      const { socket, response } = Deno.upgradeWebSocket(req, { idleTimeout: 30 });
      if (variant === "capnweb") new RpcSession(new WebSocketTransport(socket), new Root());
      else socket.addEventListener("message", () => {});
      return response;
    });
    url = `ws://127.0.0.1:${server.addr.port}`;
  }
  // deno-lint-ignore no-console
  console.log(JSON.stringify({ url, mem: `http://127.0.0.1:${side.addr.port}/mem` }));
}

interface Opened {
  close(): Promise<void> | void;
}

async function open(variant: Variant, url: string): Promise<Opened> {
  if (variant === "ours") return await A2AClient.connect(url, { token: "token-alice" });
  const socket = new NodeWebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.on("open", () => resolve());
    socket.on("error", reject);
  });
  if (variant === "deno") return { close: () => socket.close() };
  const root = newWebSocketRpcSession<Root>(socket as unknown as WebSocket);
  await root.ping();
  return {
    close: () => {
      root[Symbol.dispose]();
      socket.close();
    },
  };
}

async function measure(variant: Variant, n: number): Promise<{ heap: number; rss: number }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", import.meta.filename!, "server", variant],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`The ${variant} server exited before it was ready`);
    text += value;
  }
  const { url, mem } = JSON.parse(text.slice(0, text.indexOf("\n")));
  const read = async (): Promise<Memory> => await (await fetch(mem)).json();
  try {
    // Warm up the code paths, so that what is compiled for the first sessions is not counted.
    const warm = await Promise.all(Array.from({ length: 50 }, () => open(variant, url)));
    await Promise.all(warm.map((c) => c.close()));
    await new Promise((r) => setTimeout(r, 500));
    await read();
    const before = await read();
    const clients: Opened[] = [];
    for (let i = 0; i < n; i += 100) {
      const batch = Math.min(100, n - i);
      clients.push(...await Promise.all(Array.from({ length: batch }, () => open(variant, url))));
    }
    await new Promise((r) => setTimeout(r, 1000));
    await read();
    const after = await read();
    for (const c of clients) await c.close();
    return {
      heap: (after.heapUsed - before.heapUsed) / n,
      rss: (after.rss - before.rss) / n,
    };
  } finally {
    await lines.cancel();
    child.kill("SIGKILL");
    await child.status;
  }
}

if (Deno.args[0] === "server") {
  runServer(Deno.args[1] as Variant);
} else {
  const n = Number(Deno.args[0] ?? 1000);
  const rounds = Number(Deno.args[1] ?? 3);
  const results = new Map<Variant, { heap: number[]; rss: number[] }>(
    VARIANTS.map((v) => [v, { heap: [], rss: [] }]),
  );
  for (let round = 0; round < rounds; round++) {
    // Rotate the order, so that no variant always runs first.
    for (let k = 0; k < VARIANTS.length; k++) {
      const variant = VARIANTS[(round + k) % VARIANTS.length]!;
      const m = await measure(variant, n);
      results.get(variant)!.heap.push(m.heap);
      results.get(variant)!.rss.push(m.rss);
    }
  }
  const kib = (bytes: number) => `${(bytes / 1024).toFixed(2)} KiB`;
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const lines = [`${n} idle sessions, ${rounds} rounds; per session, median (rounds)`];
  lines.push("server | heap | RSS");
  for (const [variant, r] of results) {
    lines.push(
      `${variant} | ${kib(median(r.heap))} (${r.heap.map(kib).join(", ")}) | ${
        kib(median(r.rss))
      } (${r.rss.map(kib).join(", ")})`,
    );
  }
  // deno-lint-ignore no-console
  console.log(lines.join("\n"));
}
