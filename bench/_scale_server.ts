// One server process of the scale-out bench (bench/scale_out_bench.ts): `serve()` on a free port
// with a PostgresTaskStore and an agent that streams timestamped chunks; prints one JSON line.
//
//   deno run -A bench/_scale_server.ts <postgres://url> [--buffer N] [--no-notify] [--no-retention]
//     [--pool N]
//
// --buffer sets subscriberBufferLimit (default 1024); --no-notify turns the store's doorbells off
// (`notify: false`: other processes see commits only on their periodic reads); --no-retention
// keeps every ended task (no eviction rounds); --pool N sets the store's pool size (default 10).

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
 * "stream N [paceMs] [startMs] [await]": WORKING, a pause of `startMs` (for subscribers elsewhere
 * to attach), then N chunks of one artifact, each carrying the wall-clock time (milliseconds, from
 * `performance.timeOrigin`) of its `artifact()` call, `paceMs` apart (0: each as soon as the last
 * is stored), then COMPLETED. With `await` 0 the chunks are published without awaiting each
 * `artifact()` (all are awaited before COMPLETED). "echo ...": a task that completes at once.
 */
const scaleAgent: AgentExecutor = {
  async execute(ctx, events) {
    const [verb, ...args] = textOf(ctx.message).split(" ");
    if (verb !== "stream") {
      await events.status("TASK_STATE_COMPLETED", { message: textOf(ctx.message) });
      return;
    }
    const [n = 0, paceMs = 0, startMs = 0, awaitEach = 1] = args.map(Number);
    await events.status("TASK_STATE_WORKING");
    if (startMs > 0) await sleep(startMs, ctx.signal);
    const pending: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      if (i > 0 && paceMs > 0) await sleep(paceMs, ctx.signal);
      const published = events.artifact(
        {
          artifactId: "a",
          parts: [{ text: String(performance.timeOrigin + performance.now()) }],
        },
        { append: i > 0 },
      );
      if (awaitEach) await published;
      else pending.push(published);
    }
    await Promise.all(pending);
    await events.status("TASK_STATE_COMPLETED");
  },
};

const [url, ...flags] = Deno.args;
if (!url) {
  console.error(
    "Usage: deno run -A bench/_scale_server.ts <postgres://url> [--buffer N] [--no-notify] " +
      "[--no-retention] [--pool N]",
  );
  Deno.exit(2);
}
const bufferAt = flags.indexOf("--buffer");
const subscriberBufferLimit = bufferAt < 0 ? 1024 : Number(flags[bufferAt + 1]);
const poolAt = flags.indexOf("--pool");
const store = await PostgresTaskStore.connect(url, {
  notify: !flags.includes("--no-notify"),
  ...(poolAt >= 0 && { max: Number(flags[poolAt + 1]) }),
  ...(flags.includes("--no-retention") && {
    retention: { maxTerminalTasks: Infinity, terminalTtlMs: Infinity },
  }),
});
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
    subscriberBufferLimit,
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
