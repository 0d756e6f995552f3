// deno-lint-ignore-file no-console
// What slow-loris connections (request headers never completed) cost the server: RSS and the
// healthy client's call latency, with 0 and N such sockets open. The server (the demo agent) runs
// in a child process, so the RSS measured is its own.
//
//   deno run --allow-net --allow-env --allow-read --allow-run bench/slowloris.ts [sockets]

import { A2AClient } from "../client.ts";
import { demoAgent, demoAgentCard, StaticTokenVerifier } from "../mod.ts";
import { serve } from "../server.ts";
import { formatMs, quantile, userMessage } from "./_util.ts";

if (Deno.args[0] === "--serve") {
  serve({
    port: 0,
    agentCard: demoAgentCard,
    executor: demoAgent,
    verifier: StaticTokenVerifier.fromList("alice=token-alice"),
    onListen: ({ port }) => console.log(JSON.stringify({ port, pid: Deno.pid })),
  });
} else {
  await main(Number(Deno.args[0] ?? 2000));
}

async function main(SOCKETS: number): Promise<void> {
  const CALLS = 300;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-env",
      "--allow-read",
      new URL(import.meta.url).pathname,
      "--serve",
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let line = "";
  while (!line.includes("\n")) line += (await reader.read()).value ?? "";
  reader.releaseLock();
  const { port, pid } = JSON.parse(line.split("\n")[0]!) as { port: number; pid: number };
  const url = `http://127.0.0.1:${port}`;

  function rssKiB(): number {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    return Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
  }

  async function latencies(client: A2AClient): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < CALLS; i++) {
      const t0 = performance.now();
      await client.sendMessage({ message: userMessage("hi") });
      out.push(performance.now() - t0);
    }
    return out.sort((a, b) => a - b);
  }

  const client = await A2AClient.connect(url, { token: "token-alice" });
  await latencies(client); // warm up
  const before = { rss: rssKiB(), lat: await latencies(client) };
  const conns: Deno.Conn[] = [];
  for (let i = 0; i < SOCKETS; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("POST /a2a/jsonrpc HTTP/1.1\r\nHost: x\r\nX-Slow: "));
    conns.push(conn);
  }
  await new Promise((r) => setTimeout(r, 500));
  const after = { rss: rssKiB(), lat: await latencies(client) };
  // Are they still open? A read would block on an open socket; a closed one returns null.
  let closed = 0;
  await Promise.all(conns.map(async (c) => {
    const r = await Promise.race([
      c.read(new Uint8Array(64)),
      new Promise<"open">((res) => setTimeout(() => res("open"), 200)),
    ]);
    if (r !== "open") closed++;
  }));
  console.log(`slow-loris sockets: ${SOCKETS}, closed by the server after 0.7 s: ${closed}`);
  console.log(
    `server RSS: ${(before.rss / 1024).toFixed(1)} MiB -> ${(after.rss / 1024).toFixed(1)} MiB (${
      ((after.rss - before.rss) / SOCKETS).toFixed(1)
    } KiB per socket)`,
  );
  for (const [name, s] of [["without", before], ["with", after]] as const) {
    console.log(
      `sendMessage ${name} them: p50 ${formatMs(quantile(s.lat, 0.5))}, p99 ${
        formatMs(quantile(s.lat, 0.99))
      }`,
    );
  }
  for (const c of conns) c.close();
  await client.close();
  child.kill("SIGTERM");
  await child.status;
  await child.stdout.cancel().catch(() => {});
}
