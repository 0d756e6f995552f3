// Scale-out on PostgreSQL: three server processes (bench/_scale_server.ts) share one database.
// How fast, and how late, the events of a task running on process A reach subscribers connected
// to processes B and C, against subscribers on A itself; and SendMessage throughput of three
// processes against one. The agent stamps each chunk with the time of its `artifact()` call, so
// this process (same machine, same clock) takes each event's latency from A to its own loop.
//
//   deno run -A bench/scale_out_bench.ts [chunks=5000] [reps=3] [sections=1234] [postgres://url]
//
// Sections (about 2.5 minutes for 1234 on 2 cores): 1 one subscriber, burst; 2 fan-out to 100
// subscribers; 3 one subscriber, paced; 4 SendMessage throughput, also on three more processes
// without the NOTIFY in each commit and without eviction rounds (SCALE_DIAG_FLAGS); q queries per
// event and per task from PostgreSQL's statistics (about 90 s: each reading waits 11 s for the
// backends to report).
//
// Without a URL it starts a throwaway cluster, as the tests do (tests/pg_cluster.ts: fsync,
// synchronous_commit and full_page_writes off, so no commit waits for a disk). Set
// SCALE_DENO_FLAGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") to pass flags to the servers.

// deno-lint-ignore-file no-console

import postgres from "postgres";
import { A2AClient, type StreamEvent } from "../client.ts";
import { freshDatabase } from "../tests/pg_cluster.ts";
import type { ScaleServerInfo } from "./_scale_server.ts";
import { formatMs, quantile, userMessage } from "./_util.ts";

const CHUNKS = Number(Deno.args[0] ?? 5000);
const REPS = Number(Deno.args[1] ?? 3);
const SECTIONS = Deno.args[2] ?? "1234";
const URL_ARG = Deno.args[3];
/** Chunks per task of the fan-out runs (each of the 100 subscribers gets every one). */
const FAN_CHUNKS = Math.min(CHUNKS, 500);
const FAN_SUBSCRIBERS = 100;
/** Chunks of the paced runs, and the pause between two of them. */
const PACED_CHUNKS = 1000;
const PACE_MS = 2;
/** The echo runs: calls in flight, the connections they share, and how long each run lasts. */
const ECHO_IN_FLIGHT = 100;
const ECHO_CONNECTIONS = 12;
const ECHO_RUN_MS = 4000;
/** Flags of the servers D, E, F of section 4 (see _scale_server.ts). */
const DIAG_FLAGS = (Deno.env.get("SCALE_DIAG_FLAGS") ?? "--no-notify --no-retention").split(" ")
  .filter((f) => f !== "");
const TOKEN = "token-alice";
const SERVER = new URL("./_scale_server.ts", import.meta.url).pathname;
/** CLK_TCK of /proc/<pid>/stat on Linux. */
const TICK_S = 1 / 100;

const began = performance.now();
/** Progress on stderr, with the seconds since the start. */
function progress(what: string): void {
  console.error(`[${((performance.now() - began) / 1000).toFixed(1)} s] ${what}`);
}

/** Wall-clock milliseconds: the clock of the agent's stamps. */
function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

const int = (x: number) => Math.round(x).toLocaleString("en-US");
const median = (xs: number[]) => quantile([...xs].sort((a, b) => a - b), 0.5);

// -------------------------------------------------------------------------------------------
// Processes and their CPU time

interface ServerProc extends ScaleServerInfo {
  name: string;
  child: Deno.ChildProcess;
  output: () => string;
}

async function startServer(name: string, db: string, flags: string[]): Promise<ServerProc> {
  const denoFlags = (Deno.env.get("SCALE_DENO_FLAGS") ?? "").split(/\s+/).filter((f) => f !== "");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...denoFlags, SERVER, db, ...flags],
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

async function stopServers(servers: ServerProc[]): Promise<void> {
  for (const s of servers) {
    try {
      s.child.kill("SIGTERM");
    } catch {
      // already gone
    }
  }
  const statuses = await Promise.all(servers.map((s) => s.child.status));
  for (const [i, st] of statuses.entries()) {
    const s = servers[i]!;
    if (!st.success) console.error(`${s.name} exited with ${st.code}:\n${s.output().slice(-4000)}`);
  }
}

/** The fields of /proc/<pid>/stat after the command name (field 3, the state, is index 0). */
function statFields(pid: number | "self"): number[] {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
}

/** utime + stime of a process, in seconds; with `children`, also of its waited-for children. */
function cpuSeconds(pid: number | "self", children = false): number {
  try {
    const f = statFields(pid);
    // utime is field 14, stime 15, cutime 16, cstime 17.
    return (f[11]! + f[12]! + (children ? f[13]! + f[14]! : 0)) * TICK_S;
  } catch {
    return 0;
  }
}

/** The PostgreSQL postmaster and its backends: CPU seconds in all. */
function postgresSeconds(postmaster: number): number {
  let total = cpuSeconds(postmaster, true);
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      if (statFields(Number(entry.name))[1] === postmaster) total += cpuSeconds(Number(entry.name));
    } catch {
      // exited meanwhile
    }
  }
  return total;
}

/** Busy CPU seconds of the whole machine (every process, other users' too), from /proc/stat. */
function machineSeconds(): number {
  const f = Deno.readTextFileSync("/proc/stat").split("\n")[0]!.trim().split(/\s+/).slice(1)
    .map(Number);
  // user nice system idle iowait irq softirq steal
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!) * TICK_S;
}

/** CPU use of the bench's processes over the runs of one configuration, in cores. */
class CpuMeter {
  #names: string[];
  #sample: () => number[];
  #used: number[];
  #wall = 0;
  #start: number[] = [];
  #t0 = 0;

  constructor(servers: ServerProc[], postmaster: number) {
    this.#names = [...servers.map((s) => s.name), "PostgreSQL", "bench", "machine"];
    this.#sample = () => [
      ...servers.map((s) => cpuSeconds(s.pid)),
      postgresSeconds(postmaster),
      cpuSeconds("self"),
      machineSeconds(),
    ];
    this.#used = this.#names.map(() => 0);
  }

  start(): void {
    this.#start = this.#sample();
    this.#t0 = performance.now();
  }

  stop(): void {
    const end = this.#sample();
    this.#wall += (performance.now() - this.#t0) / 1000;
    end.forEach((v, i) => this.#used[i]! += v - this.#start[i]!);
  }

  /** E.g. "A 0.62, B 0.31, C 0.02, PostgreSQL 0.55, bench 0.40; machine 1.96". */
  toString(): string {
    const parts = this.#names.map((n, i) => `${n} ${(this.#used[i]! / this.#wall).toFixed(2)}`);
    return `${parts.slice(0, -1).join(", ")}; ${parts.at(-1)}`;
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
  /** The stamps of the first and of the last chunk, and when the last arrived. */
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
  /** Chunks delivered to all subscribers per second, from the first stamp to the last arrival. */
  delivered: number;
  /** Chunks the runner published per second (first stamp to last stamp). */
  published: number;
  latencies: Float64Array[];
  /** Milliseconds between the latest subscriber's attaching and the first chunk. */
  attachMargin: number;
}

/**
 * Starts "stream n pace start await" on the runner's process (returnImmediately), subscribes every
 * client in `subscribers` to the task, and waits for every stream to end.
 */
async function streamRun(
  runner: A2AClient,
  subscribers: A2AClient[],
  n: number,
  paceMs: number,
  startMs: number,
  awaitEach = true,
): Promise<StreamRun> {
  const { task } = await runner.sendMessage({
    message: userMessage(`stream ${n} ${paceMs} ${startMs} ${awaitEach ? 1 : 0}`),
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
  const run: StreamRun = {
    delivered: (n * subscribers.length) / ((lastAt - first) / 1000),
    published: (n - 1) / ((lastStamp - first) / 1000),
    latencies: results.map((r) => r.latencies),
    attachMargin: first - Math.max(...results.map((r) => r.attachedAt)),
  };
  progress(
    `${n} chunks (pace ${paceMs} ms) to ${subscribers.length} subscribers: ` +
      `${int(run.delivered)} delivered/s`,
  );
  return run;
}

/** Runs each configuration `reps` times, interleaved (ABAB, then BABA). */
async function interleaved<T>(
  configs: Array<() => Promise<T>>,
  reps: number,
  meters: CpuMeter[],
): Promise<T[][]> {
  const out = configs.map(() => [] as T[]);
  for (let rep = 0; rep < reps; rep++) {
    const order = configs.map((_, i) => i);
    if (rep % 2 === 1) order.reverse();
    for (const i of order) {
      meters[i]!.start();
      out[i]!.push(await configs[i]!());
      meters[i]!.stop();
    }
  }
  return out;
}

/** A table row: median rates, the rates of each run, latencies over every event of every run. */
function streamRow(label: string, runs: StreamRun[], cpu: CpuMeter, stamped = true): string {
  const lat: number[] = [];
  for (const r of runs) for (const a of r.latencies) for (const v of a) lat.push(v);
  lat.sort((x, y) => x - y);
  const delivered = `${int(median(runs.map((r) => r.delivered)))} (${
    runs.map((r) => int(r.delivered)).join(", ")
  })`;
  // Chunks stamped when queued, all at once, say nothing of the rate or of the delivery.
  const timing = stamped
    ? `${int(median(runs.map((r) => r.published)))} | ${formatMs(quantile(lat, 0.5))} | ${
      formatMs(quantile(lat, 0.99))
    } | ${formatMs(lat.at(-1) ?? NaN)}`
    : "— | — | — | —";
  return `| ${label} | ${delivered} | ${timing} | ${cpu} |`;
}

const STREAM_HEAD = [
  "| subscribers | delivered events/s, median (runs) | published on A, events/s | p50 | p99 | " +
  "max | CPU, cores |",
  "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
];

// -------------------------------------------------------------------------------------------
// Echo runs

interface EchoRun {
  rate: number;
  p50: number;
  p99: number;
}

/** SendMessage calls completed per second, ECHO_IN_FLIGHT callers sharing `clients`. */
async function echoRun(clients: A2AClient[], ms = ECHO_RUN_MS): Promise<EchoRun> {
  const latencies: number[] = [];
  const t0 = performance.now();
  const end = t0 + ms;
  await Promise.all(Array.from({ length: ECHO_IN_FLIGHT }, async (_, i) => {
    const client = clients[i % clients.length]!;
    while (performance.now() < end) {
      const t = performance.now();
      const res = await client.sendMessage({ message: userMessage(`echo ${i}`) });
      if (res.task?.status.state !== "TASK_STATE_COMPLETED") {
        throw new Error(`An echo task ended in ${res.task?.status.state}`);
      }
      latencies.push(performance.now() - t);
    }
  }));
  const rate = latencies.length / ((performance.now() - t0) / 1000);
  latencies.sort((a, b) => a - b);
  progress(`echo over ${clients.length} connections: ${int(rate)} tasks/s`);
  return { rate, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) };
}

function echoRow(label: string, runs: EchoRun[], cpu: CpuMeter, backends: object): string {
  const mid = [...runs].sort((x, y) => x.rate - y.rate)[Math.floor(runs.length / 2)]!;
  return `| ${label} | ${int(mid.rate)} (${runs.map((r) => int(r.rate)).join(", ")}) | ` +
    `${formatMs(mid.p50)} | ${formatMs(mid.p99)} | ${backends} | ${cpu} |`;
}

// -------------------------------------------------------------------------------------------
// PostgreSQL's counters

/**
 * Samples the database's client backends every 10 ms while a run goes on: how many run a query,
 * how many of those wait for the lock that every committing transaction with a NOTIFY takes (an
 * AccessExclusiveLock on "object 0 of pg_database", one holder in the whole cluster at a time),
 * and how many run an eviction round (its scans for the retention cutoff, or `a2a_evict`).
 */
class BackendSampler {
  #sql: postgres.Sql;
  #running: Promise<void> | undefined;
  #stop = false;
  #samples = 0;
  #sums = { active: 0, notifyWait: 0, evicting: 0 };

  constructor(sql: postgres.Sql) {
    this.#sql = sql;
  }

  start(): void {
    this.#stop = false;
    this.#running = (async () => {
      while (!this.#stop) {
        const [row] = await this.#sql<[{ active: number; wait: number; evict: number }]>`
          SELECT count(*) FILTER (WHERE a.state = 'active')::integer AS active,
            count(l.pid)::integer AS wait,
            count(*) FILTER (WHERE a.state = 'active'
              AND (a.query LIKE '%ORDER BY ended_seq%' OR a.query LIKE '%a2a_evict(%'))
              ::integer AS evict
          FROM pg_stat_activity a
          LEFT JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'object'
            AND l.classid = 'pg_database'::regclass AND l.objid = 0 AND NOT l.granted
          WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
            AND a.backend_type = 'client backend'`;
        this.#samples++;
        this.#sums.active += row.active;
        this.#sums.notifyWait += row.wait;
        this.#sums.evicting += row.evict;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#running;
  }

  /** Mean backends: "8.1 active, 6.2 waiting for the NOTIFY lock, 0.9 in eviction scans". */
  toString(): string {
    const mean = (v: number) => (v / Math.max(1, this.#samples)).toFixed(1);
    return `${mean(this.#sums.active)} / ${mean(this.#sums.notifyWait)} / ` +
      `${mean(this.#sums.evicting)}`;
  }
}

/** Counters of the database, once every backend has reported its statistics. */
async function pgCounters(sql: postgres.Sql): Promise<{ at: number; values: Map<string, number> }> {
  // An idle backend reports its pending statistics within 10 s (PGSTAT_IDLE_INTERVAL).
  await new Promise((resolve) => setTimeout(resolve, 11_000));
  await sql`SELECT pg_stat_clear_snapshot()`;
  const rows = await sql<{ k: string; v: string }[]>`
    SELECT 'transactions' AS k, xact_commit::text AS v FROM pg_stat_database
      WHERE datname = current_database()
    UNION ALL SELECT 'calls of ' || funcname, calls::text FROM pg_stat_user_functions
    UNION ALL SELECT 'scans of ' || indexrelname, idx_scan::text FROM pg_stat_user_indexes
    UNION ALL SELECT 'rows read by ' || indexrelname, idx_tup_read::text FROM pg_stat_user_indexes
    UNION ALL SELECT 'seq scans of ' || relname, seq_scan::text FROM pg_stat_user_tables
    UNION ALL SELECT 'rows read by seq scans of ' || relname, seq_tup_read::text
      FROM pg_stat_user_tables`;
  return { at: performance.now(), values: new Map(rows.map((r) => [r.k, Number(r.v)])) };
}

type Counters = Awaited<ReturnType<typeof pgCounters>>;

/** The counters that moved between two readings, less the background (per second), per unit. */
function perUnit(
  before: Counters,
  after: Counters,
  background: Map<string, number>,
  units: number,
): string {
  const seconds = (after.at - before.at) / 1000;
  const out: string[] = [];
  for (const [k, v] of after.values) {
    const d = (v - (before.values.get(k) ?? 0) - (background.get(k) ?? 0) * seconds) / units;
    if (d >= 0.01) out.push(`${k} ${d.toFixed(2)}`);
  }
  return out.join("; ");
}

// -------------------------------------------------------------------------------------------
// Main

const db = URL_ARG ?? await freshDatabase();
if (!db) throw new Error("No PostgreSQL binaries found: pass a database URL");
const admin = postgres(db, { max: 1, onnotice: () => {} });
const [{ pid: backend, version }] = await admin<[{ pid: number; version: string }]>`
  SELECT pg_backend_pid() AS pid, current_setting('server_version') AS version`;
const postmaster = statFields(backend)[1]!;
const settings = await admin<{ name: string; setting: string }[]>`
  SELECT name, setting FROM pg_settings
  WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes') ORDER BY name`;
if (SECTIONS.includes("q")) {
  // Calls of a2a_commit, for the per-event counts (superuser only; the test cluster's user is).
  await admin.unsafe(`ALTER DATABASE "${new URL(db).pathname.slice(1)}" SET track_functions = 'pl'`)
    .catch(() => {});
}

// Room for a whole task's events per subscriber: the agent publishes without pausing.
const BUFFER = CHUNKS + 64;
let servers: ServerProc[] = [];
let quiet: ServerProc[] = [];
const clients: A2AClient[] = [];
async function connect(s: ServerProc): Promise<A2AClient> {
  const client = await A2AClient.connect(s.url, { token: TOKEN });
  clients.push(client);
  return client;
}
async function closeClients(): Promise<void> {
  await Promise.all(clients.splice(0).map((c) => c.close()));
}
// A bench cut short (Ctrl-C, timeout) still stops its servers and, through its unload listener,
// the cluster.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, () => {
    for (const s of [...servers, ...quiet]) {
      try {
        s.child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
    Deno.exit(130);
  });
}

console.log(
  `scale_out_bench: 3 server processes, PostgreSQL ${version} (${
    settings.map((s) => `${s.name}=${s.setting}`).join(", ")
  }), ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}`,
);
console.log(
  `subscriberBufferLimit ${BUFFER}; CPU in cores (CPU seconds per wall second) of each ` +
    `process and of the whole machine (other users' processes included)`,
);

let failed = false;
try {
  servers = await Promise.all(
    ["A", "B", "C"].map((name) => startServer(name, db, ["--buffer", String(BUFFER)])),
  );
  const [a, b, c] = servers as [ServerProc, ServerProc, ServerProc];
  const meter = () => new CpuMeter(servers, postmaster);
  const runnerA = await connect(a);
  const subA = await connect(a);
  const subB = await connect(b);
  // Warm-up: code paths, pools and LISTEN on every process.
  await streamRun(runnerA, [subA, subB, await connect(c)], 200, 0, 100);
  const margins: number[] = [];

  if (SECTIONS.includes("1")) {
    console.log(
      `\n1. One task of ${CHUNKS} chunks on A, as fast as the agent can publish, one ` +
        `subscriber; ${REPS} runs each, interleaved; latency from artifact() on A to the loop`,
    );
    console.log(STREAM_HEAD.join("\n"));
    const m = [meter(), meter(), meter()];
    const [same, cross, unawaited] = await interleaved(
      [
        () => streamRun(runnerA, [subA], CHUNKS, 0, 200),
        () => streamRun(runnerA, [subB], CHUNKS, 0, 200),
        () => streamRun(runnerA, [subB], CHUNKS, 0, 200, false),
      ],
      REPS,
      m,
    );
    console.log(streamRow("1 on A (same process)", same!, m[0]!));
    console.log(streamRow("1 on B (other process)", cross!, m[1]!));
    console.log(
      streamRow("1 on B, agent not awaiting each artifact()", unawaited!, m[2]!, false),
    );
    margins.push(...[...same!, ...cross!, ...unawaited!].map((r) => r.attachMargin));
  }

  if (SECTIONS.includes("2")) {
    // One connection per subscriber, as separate clients would have.
    const spread = await Promise.all(
      Array.from({ length: FAN_SUBSCRIBERS }, (_, i) => connect(servers[i % 3]!)),
    );
    const allOnA = await Promise.all(Array.from({ length: FAN_SUBSCRIBERS }, () => connect(a)));
    console.log(
      `\n2. One task of ${FAN_CHUNKS} chunks on A, ${FAN_SUBSCRIBERS} subscribers, one ` +
        `connection each; ${REPS} runs each, interleaved; delivered = chunks to all ` +
        `subscribers per second`,
    );
    console.log(STREAM_HEAD.join("\n"));
    const m = [meter(), meter()];
    const [fanA, fanSpread] = await interleaved(
      [
        () => streamRun(runnerA, allOnA, FAN_CHUNKS, 0, 1000),
        () => streamRun(runnerA, spread, FAN_CHUNKS, 0, 1000),
      ],
      REPS,
      m,
    );
    console.log(streamRow(`${FAN_SUBSCRIBERS} on A`, fanA!, m[0]!));
    console.log(streamRow(`34 on A, 33 on B, 33 on C`, fanSpread!, m[1]!));
    margins.push(...[...fanA!, ...fanSpread!].map((r) => r.attachMargin));
    await Promise.all([...spread, ...allOnA].map((cl) => cl.close()));
  }

  if (SECTIONS.includes("3")) {
    console.log(
      `\n3. One task of ${PACED_CHUNKS} chunks on A, ${PACE_MS} ms apart (a timer between ` +
        `artifact() calls), one subscriber; ${REPS} runs each, interleaved`,
    );
    console.log(STREAM_HEAD.join("\n"));
    const m = [meter(), meter()];
    const [same, cross] = await interleaved(
      [
        () => streamRun(runnerA, [subA], PACED_CHUNKS, PACE_MS, 200),
        () => streamRun(runnerA, [subB], PACED_CHUNKS, PACE_MS, 200),
      ],
      REPS,
      m,
    );
    console.log(streamRow("1 on A (same process)", same!, m[0]!));
    console.log(streamRow("1 on B (other process)", cross!, m[1]!));
    margins.push(...[...same!, ...cross!].map((r) => r.attachMargin));
  }
  if (margins.length > 0) {
    console.log(
      `\nevery subscriber attached at least ${formatMs(Math.min(...margins))} before the ` +
        `first chunk`,
    );
  }

  if (SECTIONS.includes("4")) {
    // The same again on three more processes of the same database without the NOTIFY in every
    // commit and without eviction rounds: what those two cost.
    quiet = await Promise.all(
      ["D", "E", "F"].map((name) => startServer(name, db, DIAG_FLAGS)),
    );
    const [d] = quiet as [ServerProc];
    const all = [...servers, ...quiet];
    const m = [0, 1, 2, 3].map(() => new CpuMeter(all, postmaster));
    console.log(
      `\n4. SendMessage "echo" (a task completed at once: 2 commits), ${ECHO_IN_FLIGHT} calls ` +
        `in flight over ${ECHO_CONNECTIONS} connections, ${ECHO_RUN_MS / 1000} s per run, ` +
        `${REPS} runs each, interleaved; latencies of the median run. D, E, F run ` +
        `_scale_server.ts ${DIAG_FLAGS.join(" ")}`,
    );
    console.log(
      "| processes | tasks/s, median (runs) | p50 | p99 | backends: active / waiting for " +
        "the NOTIFY lock / in eviction scans (means) | CPU, cores |",
    );
    console.log("| --- | ---: | ---: | ---: | ---: | --- |");
    const pool = async (procs: ServerProc[]) =>
      await Promise.all(
        Array.from({ length: ECHO_CONNECTIONS }, (_, i) => connect(procs[i % procs.length]!)),
      );
    const configs = [await pool([a]), await pool(servers), await pool([d]), await pool(quiet)];
    // Warm-up, and a steady state: more tasks ended than the default retention keeps (10,000),
    // so that every run of A, B, C also pays for evicting as many tasks as it ends.
    await echoRun(configs[3]!, 1000);
    const counts = async () =>
      (await admin<[{ ended: number; evicted: number }]>`
        SELECT (SELECT count(*) FROM a2a_tasks WHERE ended_seq IS NOT NULL)::integer AS ended,
          (SELECT count(*) FROM a2a_evicted)::integer AS evicted`)[0];
    for (let i = 0; i < 40 && (await counts()).evicted < 1000; i++) {
      await echoRun(configs[1]!, 2000);
    }
    const { ended, evicted } = await counts();
    // The fill left tens of thousands of dead rows: vacuum them now rather than let autovacuum
    // do it in the middle of some run and not of others.
    await admin`VACUUM ANALYZE`;
    progress(`${ended} ended tasks kept, ${evicted} evicted`);
    const samplers = configs.map(() => new BackendSampler(admin));
    const runs = await interleaved(
      configs.map((cs, i) => async () => {
        samplers[i]!.start();
        try {
          return await echoRun(cs);
        } finally {
          await samplers[i]!.stop();
        }
      }),
      REPS,
      m,
    );
    const diag = DIAG_FLAGS.join(" ");
    const labels = ["1 (A)", "3 (A, B, C)", `1 (D), ${diag}`, `3 (D, E, F), ${diag}`];
    for (const [i, label] of labels.entries()) {
      console.log(echoRow(label, runs[i]!, m[i]!, samplers[i]!));
    }
    await stopServers(quiet.splice(0));
  }

  if (SECTIONS.includes("q")) {
    console.log("\nq. PostgreSQL's counters, per event (streams) or per task (echo)");
    const one = await Promise.all(Array.from({ length: ECHO_CONNECTIONS }, () => connect(a)));
    const three = await Promise.all(
      Array.from({ length: ECHO_CONNECTIONS }, (_, i) => connect(servers[i % 3]!)),
    );
    /** Each probe returns how many events or tasks it made. */
    const echoes = async (cs: A2AClient[]) => (await echoRun(cs)).rate * ECHO_RUN_MS / 1000;
    const probes: Array<[string, () => Promise<number>]> = [
      [`1 subscriber on B, burst of ${CHUNKS}`, async () => {
        await streamRun(runnerA, [subB], CHUNKS, 0, 200);
        return CHUNKS;
      }],
      [`1 subscriber on B, ${PACED_CHUNKS} paced ${PACE_MS} ms`, async () => {
        await streamRun(runnerA, [subB], PACED_CHUNKS, PACE_MS, 200);
        return PACED_CHUNKS;
      }],
      ["echo, 1 process", () => echoes(one)],
      ["echo, 3 processes", () => echoes(three)],
    ];
    // Heartbeats, lease checks, cancel and delivery polls of the three processes, per second.
    const idle0 = await pgCounters(admin);
    const idle1 = await pgCounters(admin);
    const background = new Map<string, number>();
    const idleSeconds = (idle1.at - idle0.at) / 1000;
    for (const [k, v] of idle1.values) {
      background.set(k, (v - (idle0.values.get(k) ?? 0)) / idleSeconds);
    }
    console.log(
      `idle (per second, subtracted below): ${
        [...background].filter(([, v]) => v >= 0.01).map(([k, v]) => `${k} ${v.toFixed(2)}`)
          .join("; ")
      }`,
    );
    let before = idle1;
    for (const [label, probe] of probes) {
      const units = await probe();
      const after = await pgCounters(admin);
      console.log(`${label}: ${perUnit(before, after, background, units)}`);
      before = after;
    }
  }
} catch (err) {
  failed = true;
  console.error(err);
} finally {
  await closeClients();
  await stopServers([...servers, ...quiet]);
  await admin.end();
  progress("done");
}
// Closed clients leave something that keeps the event loop alive for minutes (as in
// reconnect_time.ts); nothing is left to measure. Deno.exit still runs the cluster's unload.
Deno.exit(failed ? 1 : 0);
