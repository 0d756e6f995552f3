// Reconnection after a half-open connection, with the client's default settings: from the moment
// every connection through a TCP proxy goes silent (nothing forwarded, nothing closed) to the
// first event the streaming client receives after it noticed, reconnected and resumed. The agent
// publishes one artifact chunk every 20 ms; the blackhole falls at a random point of the ping
// cycle.
//
//   deno run --allow-net --allow-env --allow-read bench/reconnect_halfopen.ts [repetitions]

import { A2AClient } from "../client.ts";
import { type AgentExecutor, demoAgentCard, StaticTokenVerifier } from "../mod.ts";
import { serve } from "../server.ts";
import { sleep } from "../src/util/sleep.ts";
import { TcpProxy } from "../tests/tcp_proxy.ts";
import { formatMs, quantile, userMessage } from "./_util.ts";

/** Blackholes to measure, one client each. */
const REPETITIONS = Number(Deno.args[0] ?? 7);
/** Milliseconds between two chunks of the agent. */
const PERIOD_MS = 20;
/** The default ping interval: the blackhole falls anywhere within one. */
const PING_INTERVAL_MS = 5_000;

/** Publishes WORKING, then one artifact chunk every PERIOD_MS until its task is canceled. */
const tickAgent: AgentExecutor = {
  async execute(ctx, events) {
    await events.status("TASK_STATE_WORKING");
    for (let i = 0; !ctx.signal.aborted; i++) {
      try {
        await events.artifact({ artifactId: `tick-${i}`, parts: [{ text: String(i) }] });
      } catch (err) {
        if (ctx.signal.aborted) return;
        throw err;
      }
      await sleep(PERIOD_MS, ctx.signal);
    }
  },
};

/** Milliseconds from the blackhole to each milestone. */
interface Sample {
  /** The client's state changed to "reconnecting": the ping went unanswered. */
  noticed: number;
  /** The state changed to "open" again. */
  open: number;
  /** The first event after that reached the for-await loop. */
  resumed: number;
  /** Whether the seqs went 1, 2, 3, … without gap or repeat. */
  exactlyOnce: boolean;
}

const server = serve({
  port: 0,
  hostname: "127.0.0.1",
  agentCard: demoAgentCard,
  executor: tickAgent,
  verifier: StaticTokenVerifier.fromList("alice=token-alice"),
});

async function measure(): Promise<Sample> {
  await using proxy = new TcpProxy(server.addr);
  let noticedAt = Infinity;
  let openedAt = -Infinity;
  const client = await A2AClient.connect(proxy.url, {
    token: "token-alice",
    onStateChange: (state) => {
      const now = performance.now();
      if (state === "reconnecting") noticedAt = Math.min(noticedAt, now);
      if (state === "open") openedAt = now;
    },
  });
  let blackholedAt = Infinity;
  let sample: Sample | undefined;
  let taskId: string | undefined;
  let seq = 0;
  let exactlyOnce = true;
  const delay = Math.random() * PING_INTERVAL_MS;
  for await (const event of client.sendStreamingMessage({ message: userMessage("go") })) {
    const now = performance.now();
    exactlyOnce &&= event.seq === ++seq;
    taskId ??= event.task?.id ?? event.statusUpdate?.taskId;
    if (seq === 1) {
      setTimeout(() => {
        blackholedAt = performance.now();
        proxy.blackhole();
      }, delay);
    }
    if (sample === undefined && openedAt > blackholedAt && now > openedAt) {
      sample = {
        noticed: noticedAt - blackholedAt,
        open: openedAt - blackholedAt,
        resumed: now - blackholedAt,
        exactlyOnce,
      };
      // Ends the stream with the CANCELED status update.
      void client.cancelTask({ id: taskId! });
    }
  }
  sample!.exactlyOnce &&= exactlyOnce;
  await client.close();
  return sample!;
}

const samples: Sample[] = [];
for (let i = 0; i < REPETITIONS; i++) {
  const s = await measure();
  samples.push(s);
  // deno-lint-ignore no-console
  console.log(
    `#${i + 1}: noticed ${formatMs(s.noticed)}, open ${formatMs(s.open)}, first resumed event ${
      formatMs(s.resumed)
    }, exactly once: ${s.exactlyOnce ? "yes" : "NO"}`,
  );
}
const stat = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return `median ${formatMs(quantile(s, 0.5))}, range ${formatMs(s[0]!)} to ${formatMs(s.at(-1)!)}`;
};
// deno-lint-ignore no-console
console.log(
  [
    `${REPETITIONS} blackholes, default settings; times from the blackhole`,
    `noticed (state "reconnecting"): ${stat(samples.map((s) => s.noticed))}`,
    `noticed to first resumed event: ${stat(samples.map((s) => s.resumed - s.noticed))}`,
    `first resumed event: ${stat(samples.map((s) => s.resumed))}`,
  ].join("\n"),
);
await server.shutdown();
// Blackholed connections on the server's side end only with its heartbeat; leave now.
Deno.exit(samples.every((s) => s.exactlyOnce) ? 0 : 1);
