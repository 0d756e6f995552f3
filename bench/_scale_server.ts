// One server process of the scale-out bench (bench/scale_out_bench.ts): `serve()` on a free port
// with a PostgresTaskStore and an agent that streams timestamped chunks; prints one JSON line.
//
//   deno run -A bench/_scale_server.ts <postgres://url> [subscriberBufferLimit]

// deno-lint-ignore-file no-console

import { type AgentExecutor, demoAgentCard, StaticTokenVerifier, textOf } from "../mod.ts";
import { serve } from "../server.ts";
import { PostgresTaskStore } from "../src/tasks/pg_store.ts";
import { sleep } from "../src/util/sleep.ts";

/** What the process prints once it listens. */
export interface ScaleServerInfo {
  url: string;
  pid: number;
  processId: string;
}

/**
 * "stream N [paceMs] [startMs]": WORKING, a pause of `startMs` (for subscribers elsewhere to
 * attach), then N chunks of one artifact, each carrying the wall-clock time (milliseconds, from
 * `performance.timeOrigin`) of its `artifact()` call, `paceMs` apart (0: each as soon as the last
 * is stored), then COMPLETED. "echo ...": a task that completes at once with the text.
 */
const scaleAgent: AgentExecutor = {
  async execute(ctx, events) {
    const [verb, ...args] = textOf(ctx.message).split(" ");
    if (verb !== "stream") {
      await events.status("TASK_STATE_COMPLETED", { message: textOf(ctx.message) });
      return;
    }
    const [n = 0, paceMs = 0, startMs = 0] = args.map(Number);
    await events.status("TASK_STATE_WORKING");
    if (startMs > 0) await sleep(startMs, ctx.signal);
    for (let i = 0; i < n; i++) {
      if (i > 0 && paceMs > 0) await sleep(paceMs, ctx.signal);
      await events.artifact(
        {
          artifactId: "a",
          parts: [{ text: String(performance.timeOrigin + performance.now()) }],
        },
        { append: i > 0 },
      );
    }
    await events.status("TASK_STATE_COMPLETED");
  },
};

const url = Deno.args[0];
if (!url) {
  console.error("Usage: deno run -A bench/_scale_server.ts <postgres://url> [bufferLimit]");
  Deno.exit(2);
}
const store = await PostgresTaskStore.connect(url);
const server = serve({
  port: 0,
  hostname: "127.0.0.1",
  agentCard: demoAgentCard,
  executor: scaleAgent,
  verifier: StaticTokenVerifier.fromList("alice=token-alice"),
  store,
  tickets: store.tickets,
  // The bench's load comes from one user, on more streams and tasks than a user may hold.
  limits: {
    subscriberBufferLimit: Number(Deno.args[1] ?? 1024),
    maxStreamsPerUser: 10_000,
    maxUnfinishedTasksPerUser: 10_000,
  },
});
const info: ScaleServerInfo = { url: server.url, pid: Deno.pid, processId: store.processId };
console.log(JSON.stringify(info));

const stop = async () => {
  Deno.removeSignalListener("SIGTERM", stop);
  await server.shutdown();
  await store.close();
};
Deno.addSignalListener("SIGTERM", stop);
