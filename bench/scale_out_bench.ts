// Scale-out on PostgreSQL: three server processes (bench/_scale_server.ts) share one database.
// How fast, and how late, the events of a task running on process A reach subscribers connected
// to processes B and C, against subscribers on A itself; and SendMessage throughput of three
// processes against one. The agent stamps each chunk with the time of its `artifact()` call, so
// this process (same machine, same clock) takes each event's latency from A to its own loop.
//
//   deno run -A bench/scale_out_bench.ts [chunks=5000] [reps=3] [postgres://url]
//
// Without a URL it starts a throwaway cluster, as the tests do (tests/pg_cluster.ts: fsync,
// synchronous_commit and full_page_writes off, so no commit waits for a disk). Set
// SCALE_DENO_FLAGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") to pass flags to the servers.

// deno-lint-ignore-file no-console

import { A2AClient, type StreamEvent } from "../client.ts";
import { freshDatabase } from "../tests/pg_cluster.ts";
import type { ScaleServerInfo } from "./_scale_server.ts";
import { formatMs, quantile, userMessage } from "./_util.ts";
import postgres from "postgres";

const CHUNKS = Number(Deno.args[0] ?? 5000);
const REPS = Number(Deno.args[1] ?? 3);
const URL_ARG = Deno.args[2];
/** Chunks per task of the fan-out runs (100 subscribers each get every one). */
const FAN_CHUNKS = Math.min(CHUNKS, 2000);
const FAN_SUBSCRIBERS = 100;
/** Chunks of the paced runs, and the pause between two of them. */
const PACED_CHUNKS = 1000;
const PACE_MS = 2;
/** The echo runs: calls in flight, connections they share, and how long each run lasts. */
const ECHO_IN_FLIGHT = 100;
const ECHO_CONNECTIONS = 12;
const ECHO_RUN_MS = 4000;
const TOKEN = "token-alice";
const SERVER = new URL("./_scale_server.ts", import.meta.url).pathname;
const TICK_S = 1 / 100; // CLK_TCK of /proc/<pid>/stat on Linux

const lines: string[] = [];
function say(line: string): void {
  lines.push(line);
  console.log(line);
}
const began = performance.now();
/** Progress on stderr, with the seconds since the start. */
function progress(what: string): void {
  console.error(`[${((performance.now() - began) / 1000).toFixed(1)} s] ${what}`);
}

/** Wall-clock milliseconds, the agent's stamp's clock. */
function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

// -------------------------------------------------------------------------------------------
// Processes and their CPU time

interface ServerProc extends ScaleServerInfo {
  name: string;
  child: Deno.ChildProcess;
  output: () => string;
}

async function startServer(name: string, db: string, bufferLimit: number): Promise<ServerProc> {
  const flags = (Deno.env.get("SCALE_DENO_FLAGS") ?? "").split(/\s+/).filter((f) => f !== "");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...flags, SERVER, db, String(bufferLimit)],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const ready = Promise.withResolvers<ScaleServerInfo>();
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      const line = text.split("\n").find((l) => l.startsWith("{"));
      if (line) ready.resolve(JSON.parse(line));
    }
  };
  void drain(child.stdout);
  void drain(child.stderr);
  const info = await Promise.race([
    ready.promise,
    child.status.then(() => {
      throw new Error(`${name} exited before listening:\n${text.slice(-4000)}`);
    }),
  ]);
  return { ...info, name, child, output: () => text };
}

/** utime + stime of a process, in seconds; with `children`, also of its waited-for children. */
function cpuSeconds(pid: number | "self", children = false): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the command name, which is in parentheses and may hold spaces.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
    // f[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    const own = f[11]! + f[12]!;
    return (children ? own + f[13]! + f[14]! : own) * TICK_S;
  } catch {
    return 0;
  }
}

/** The PostgreSQL postmaster and its backends: CPU seconds in all, counted from /proc. */
function postgresSeconds(postmaster: number): number {
  let total = cpuSeconds(postmaster, true);
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === postmaster) total += cpuSeconds(Number(entry.name));
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

/** CPU use of every process of the bench over a stretch of wall time, in cores. */
class CpuMeter {
  #servers: ServerProc[];
  #postmaster: number;
  #start: number[] = [];
  #t0 = 0;

  constructor(servers: ServerProc[], postmaster: number) {
    this.#servers = servers;
    this.#postmaster = postmaster;
  }

  #sample(): number[] {
    return [
      ...this.#servers.map((s) => cpuSeconds(s.pid)),
      postgresSeconds(this.#postmaster),
      cpuSeconds("self"),
    ];
  }

  start(): void {
    this.#start = this.#sample();
    this.#t0 = performance.now();
  }

  /** "A 0.62, B 0.31, C 0.02, PostgreSQL 0.55, bench 0.40 cores". */
  stop(): string {
    const wall = (performance.now() - this.#t0) / 1000;
    const end = this.#sample();
    const names = [...this.#servers.map((s) => s.name), "PostgreSQL", "bench"];
    const used = end.map((v, i) => (v - this.#start[i]!) / wall);
    const total = used.reduce((a, b) => a + b, 0);
    return `${names.map((n, i) => `${n} ${used[i]!.toFixed(2)}`).join(", ")} ` +
      `(sum ${total.toFixed(2)} of 2 cores)`;
  }
}

// -------------------------------------------------------------------------------------------
// Streaming runs

/** What one subscriber saw of one streamed task. */
interface Followed {
  chunks: number;
  /** Milliseconds from each chunk's `artifact()` call on the runner to this loop. */
  latencies: Float64Array;
  attachedAt: number;
  /** The stamp of the first chunk and of the last, and when the last arrived. */
  firstStamp: number;
  lastStamp: number;
  lastAt: number;
  final: string | undefined;
  error: unknown;
}

async function follow(stream: AsyncIterable<StreamEvent>, n: number): Promise<Followed> {
  const r: Followed = {
    chunks: 0,
    latencies: new Float64Array(n),
    attachedAt: NaN,
    firstStamp: NaN,
    lastStamp: NaN,
    lastAt: NaN,
    final: undefined,
    error: undefined,
  };
  try {
    for await (const event of stream) {
      const now = wallNow();
      if (Number.isNaN(r.attachedAt)) r.attachedAt = now;
      const text = event.artifactUpdate?.artifact.parts[0]?.text;
      if (text !== undefined) {
        const stamp = Number(text);
        if (r.chunks === 0) r.firstStamp = stamp;
        if (r.chunks < n) r.latencies[r.chunks] = now - stamp;
        r.chunks++;
        r.lastStamp = stamp;
        r.lastAt = now;
      }
      const state = event.statusUpdate?.status.state;
      if (state !== undefined) r.final = state;
    }
  } catch (error) {
    r.error = error;
  }
  return r;
}

interface StreamRun {
  /** Chunks delivered to all subscribers per second, first chunk's stamp to the last arrival. */
  delivered: number;
  /** Chunks the runner published per second (first stamp to last stamp). */
  published: number;
  latencies: number[];
  /** The latest attach, in milliseconds before the first chunk (negative: late). */
  attachMargin: number;
}

/**
 * Starts "stream n pace start" on `runner` (returnImmediately), subscribes every client in
 * `subscribers` to it, and waits for every stream to end.
 */
async function streamRun(
  runner: A2AClient,
  subscribers: A2AClient[],
  n: number,
  paceMs: number,
  startMs: number,
): Promise<StreamRun> {
  const { task } = await runner.sendMessage({
    message: userMessage(`stream ${n} ${paceMs} ${startMs}`),
    configuration: { returnImmediately: true },
  });
  if (!task) throw new Error("The agent made no task");
  const results = await Promise.all(
    subscribers.map((c) => follow(c.subscribeToTask({ id: task.id }), n)),
  );
  for (const [i, r] of results.entries()) {
    if (r.error !== undefined || r.chunks !== n || r.final !== "TASK_STATE_COMPLETED") {
      const e = r.error as { code?: unknown; message?: unknown } | undefined;
      throw new Error(
        `Subscriber ${i}: ${r.chunks} of ${n} chunks, final ${r.final}` +
          (e ? `, error ${e.code}: ${e.message}` : ""),
      );
    }
  }
  const first = Math.min(...results.map((r) => r.firstStamp));
  const lastStamp = Math.max(...results.map((r) => r.lastStamp));
  const lastAt = Math.max(...results.map((r) => r.lastAt));
  const latencies: number[] = [];
  for (const r of results) for (const v of r.latencies) latencies.push(v);
  progress(`${n} chunks (pace ${paceMs} ms) to ${subscribers.length} subscribers`);
  return {
    delivered: (n * subscribers.length) / ((lastAt - first) / 1000),
    published: (n - 1) / ((lastStamp - first) / 1000),
    latencies,
    attachMargin: first - Math.max(...results.map((r) => r.attachedAt)),
  };
}

/** Median of runs' rates, and the latency quantiles of all their events together. */
function summarize(runs: StreamRun[]): {
  delivered: number;
  published: number;
  p50: number;
  p99: number;
  max: number;
  margin: number;
} {
  const median = (xs: number[]) => quantile([...xs].sort((a, b) => a - b), 0.5);
  const lat = runs.flatMap((r) => r.latencies).sort((a, b) => a - b);
  return {
    delivered: median(runs.map((r) => r.delivered)),
    published: median(runs.map((r) => r.published)),
    p50: quantile(lat, 0.5),
    p99: quantile(lat, 0.99),
    max: lat.at(-1) ?? NaN,
    margin: Math.min(...runs.map((r) => r.attachMargin)),
  };
}

const int = (x: number) => Math.round(x).toLocaleString("en-US");

function streamRow(label: string, runs: StreamRun[], cpu: string): string {
  const s = summarize(runs);
  return `| ${label} | ${int(s.delivered)} | ${int(s.published)} | ${formatMs(s.p50)} | ` +
    `${formatMs(s.p99)} | ${formatMs(s.max)} | ${cpu} |`;
}

/**
 * Runs each configuration `reps` times, interleaved (ABAB, then BABA), so that drift of the shared
 * machine falls on all of them alike; returns each configuration's runs and CPU use.
 */
async function interleaved(
  configs: Array<() => Promise<StreamRun>>,
  reps: number,
  meter: CpuMeter,
): Promise<{ runs: StreamRun[]; cpu: string }[]> {
  const out = configs.map(() => ({ runs: [] as StreamRun[], cpuParts: [] as string[] }));
  for (let rep = 0; rep < reps; rep++) {
    const order = configs.map((_, i) => i);
    if (rep % 2 === 1) order.reverse();
    for (const i of order) {
      meter.start();
      out[i]!.runs.push(await configs[i]!());
      // CPU of the last run of each configuration (the runs are alike).
      out[i]!.cpuParts = [meter.stop()];
    }
  }
  return out.map((o) => ({ runs: o.runs, cpu: o.cpuParts[0] ?? "" }));
}

// -------------------------------------------------------------------------------------------
// Echo runs

/** SendMessage calls completed per second with ECHO_IN_FLIGHT callers over `clients`. */
async function echoRun(clients: A2AClient[]): Promise<{ rate: number; p50: number; p99: number }> {
  const latencies: number[] = [];
  const end = performance.now() + ECHO_RUN_MS;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: ECHO_IN_FLIGHT }, async (_, i) => {
    const client = clients[i % clients.length]!;
    while (performance.now() < end) {
      const t = performance.now();
      const res = await client.sendMessage({ message: userMessage(`echo ${i}`) });
      if (res.task?.status.state !== "TASK_STATE_COMPLETED") {
        throw new Error(`echo ended in ${res.task?.status.state}`);
      }
      latencies.push(performance.now() - t);
    }
  }));
  const ms = performance.now() - t0;
  progress(`echo over ${clients.length} connections: ${latencies.length} calls`);
  latencies.sort((a, b) => a - b);
  return {
    rate: latencies.length / (ms / 1000),
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
  };
}

// -------------------------------------------------------------------------------------------
// Main

const db = URL_ARG ?? await freshDatabase();
if (!db) throw new Error("No PostgreSQL binaries found: pass a database URL");
const admin = postgres(db, { max: 1, onnotice: () => {} });
const [{ pid: backend, version }] = await admin<{ pid: number; version: string }[]>`
  SELECT pg_backend_pid() AS pid, current_setting('server_version') AS version`;
const backendStat = Deno.readTextFileSync(`/proc/${backend}/stat`);
const postmaster = Number(backendStat.slice(backendStat.lastIndexOf(")") + 2).split(" ")[1]);
const settings = await admin<{ name: string; setting: string }[]>`
  SELECT name, setting FROM pg_settings
  WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')`;
await admin.end();

// Room for a whole task's events per subscriber: the agent publishes without pausing.
const BUFFER = CHUNKS + 64;
const servers = await Promise.all(
  ["A", "B", "C"].map((name) => startServer(name, db, BUFFER)),
);
const [a, b, c] = servers as [ServerProc, ServerProc, ServerProc];
const meter = new CpuMeter(servers, postmaster);
const connect = (s: ServerProc) => A2AClient.connect(s.url, { token: TOKEN });

say(
  `scale_out_bench: 3 server processes, PostgreSQL ${version} (${
    settings.map((s) => `${s.name}=${s.setting}`).join(", ")
  }), ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}`,
);
say(`subscriberBufferLimit ${BUFFER}; CPU in cores (CPU seconds per wall second)`);

try {
  const runnerA = await connect(a);
  const subA = await connect(a);
  const subB = await connect(b);
  // Warm-up: code paths, pools and LISTEN on every process.
  await streamRun(runnerA, [subA, subB, await connect(c)], 200, 0, 100);

  say(
    `\n1. One task of ${CHUNKS} chunks on A, one subscriber; ${REPS} runs each, interleaved; ` +
      `rates are medians, latencies over all runs`,
  );
  say(
    "| subscriber | delivered events/s | published on A events/s | p50 | p99 | max | CPU (cores) |",
  );
  say("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
  const [same, cross] = await interleaved([
    () => streamRun(runnerA, [subA], CHUNKS, 0, 200),
    () => streamRun(runnerA, [subB], CHUNKS, 0, 200),
  ], REPS, meter);
  say(streamRow("on A (same process)", same!.runs, same!.cpu));
  say(streamRow("on B (other process)", cross!.runs, cross!.cpu));

  say(
    `\n3. One task of ${PACED_CHUNKS} chunks paced ${PACE_MS} ms apart on A, one subscriber; ` +
      `${REPS} runs each, interleaved`,
  );
  say(
    "| subscriber | delivered events/s | published on A events/s | p50 | p99 | max | CPU (cores) |",
  );
  say("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
  const [pacedSame, pacedCross] = await interleaved([
    () => streamRun(runnerA, [subA], PACED_CHUNKS, PACE_MS, 200),
    () => streamRun(runnerA, [subB], PACED_CHUNKS, PACE_MS, 200),
  ], REPS, meter);
  say(streamRow("on A (same process)", pacedSame!.runs, pacedSame!.cpu));
  say(streamRow("on B (other process)", pacedCross!.runs, pacedCross!.cpu));

  // One connection per subscriber, as separate clients would have.
  const spread = await Promise.all(
    Array.from({ length: FAN_SUBSCRIBERS }, (_, i) => connect(servers[i % 3]!)),
  );
  const allOnA = await Promise.all(Array.from({ length: FAN_SUBSCRIBERS }, () => connect(a)));
  say(
    `\n2. One task of ${FAN_CHUNKS} chunks on A, ${FAN_SUBSCRIBERS} subscribers; ` +
      `${REPS} runs each, interleaved; delivered = chunks to all subscribers per second`,
  );
  say(
    "| subscribers | delivered events/s | published on A events/s | p50 | p99 | max | CPU (cores) |",
  );
  say("| --- | ---: | ---: | ---: | ---: | ---: | --- |");
  const [fanA, fanSpread] = await interleaved([
    () => streamRun(runnerA, allOnA, FAN_CHUNKS, 0, 1000),
    () => streamRun(runnerA, spread, FAN_CHUNKS, 0, 1000),
  ], REPS, meter);
  say(streamRow(`${FAN_SUBSCRIBERS} on A`, fanA!.runs, fanA!.cpu));
  say(streamRow(`34 on A, 33 on B, 33 on C`, fanSpread!.runs, fanSpread!.cpu));
  const margins = [same, cross, pacedSame, pacedCross, fanA, fanSpread]
    .map((r) => summarize(r!.runs).margin);
  say(
    `every subscriber attached at least ${formatMs(Math.min(...margins))} before the first chunk`,
  );
  await Promise.all([...spread, ...allOnA].map((cl) => cl.close()));
  progress("fan-out clients closed");

  say(
    `\n4. SendMessage "echo" (a task completed at once: 2 commits), ${ECHO_IN_FLIGHT} calls in ` +
      `flight over ${ECHO_CONNECTIONS} connections, ${ECHO_RUN_MS / 1000} s per run, ${REPS} ` +
      `runs each, interleaved; rate is the median run, latencies of the median run`,
  );
  say("| processes | tasks/s | p50 | p99 | CPU (cores) |");
  say("| --- | ---: | ---: | ---: | --- |");
  const oneProc = await Promise.all(Array.from({ length: ECHO_CONNECTIONS }, () => connect(a)));
  const threeProc = await Promise.all(
    Array.from({ length: ECHO_CONNECTIONS }, (_, i) => connect(servers[i % 3]!)),
  );
  await echoRun(threeProc); // warm-up
  const echo: Array<Array<{ rate: number; p50: number; p99: number }>> = [[], []];
  const echoCpu = ["", ""];
  for (let rep = 0; rep < REPS; rep++) {
    for (const i of rep % 2 === 0 ? [0, 1] : [1, 0]) {
      meter.start();
      echo[i]!.push(await echoRun(i === 0 ? oneProc : threeProc));
      echoCpu[i] = meter.stop();
    }
  }
  for (const [i, label] of ["1 (A)", "3 (A, B, C round-robin)"].entries()) {
    const runs = [...echo[i]!].sort((x, y) => x.rate - y.rate);
    const mid = runs[Math.floor(runs.length / 2)]!;
    say(
      `| ${label} | ${int(mid.rate)} | ${formatMs(mid.p50)} | ${formatMs(mid.p99)} | ` +
        `${echoCpu[i]} |`,
    );
  }
  await Promise.all([...oneProc, ...threeProc, runnerA, subA, subB].map((cl) => cl.close()));
  progress("clients closed");
} finally {
  for (const s of servers) {
    try {
      s.child.kill("SIGTERM");
    } catch {
      // already gone
    }
  }
  const statuses = await Promise.all(servers.map((s) => s.child.status));
  progress("servers stopped");
  for (const [i, st] of statuses.entries()) {
    if (!st.success) console.error(`${servers[i]!.name} exited ${st.code}:\n${servers[i]!.output()}`);
  }
}
