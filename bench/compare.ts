// Side by side with the official SDK: our server (capnweb and JSON-RPC) and @a2a-js/sdk on Node
// with express, each in its own process on 127.0.0.1, measured in interleaved rounds from this
// one client process. Writes its table into BENCHMARKS.md and its chart to docs/bench/compare.svg.
//
//   deno run -A bench/compare.ts          (about 4 minutes)
//   deno run -A bench/compare.ts quick    (about 1 minute, smaller counts, no memory rows)
//
// bench/sdk/node_modules is installed with npm on first run.

// deno-lint-ignore-file no-console

import {
  type Client as SdkClient,
  ClientFactory,
  ClientFactoryOptions,
  JsonRpcTransportFactory,
} from "@a2a-js/sdk/client";
import { type Message as SdkMessage, Role } from "@a2a-js/sdk";
import { A2AClient, type StreamEvent } from "../client.ts";
import { EchoClient } from "./_server.ts";
import { quantile, userMessage } from "./_util.ts";
import { type Report, writeReport } from "./_compare_report.ts";

const QUICK = Deno.args.includes("quick");
const TOKEN = "token-alice";
const ROOT = new URL("../", import.meta.url);

/** The counts of one run. */
const SIZE = QUICK
  ? {
    rounds: 3,
    seq: 100,
    seconds: 1,
    chunks: 2000,
    bigChunks: 5000,
    sdkCapSeconds: 15,
    streamRounds: 1,
    fanChunks: 200,
    fanRounds: 1,
  }
  : {
    rounds: 5,
    seq: 300,
    seconds: 2,
    chunks: 2000,
    bigChunks: 10_000,
    sdkCapSeconds: 60,
    streamRounds: 3,
    fanChunks: 1000,
    fanRounds: 2,
  };
const IN_FLIGHT = 100;
const CLIENTS = 50;
const SUBSCRIBERS = 100;
const SESSIONS = QUICK ? [200] : [1000, 5000];

// --- processes -------------------------------------------------------------------------------

interface Child {
  info: Record<string, string>;
  process: Deno.ChildProcess;
}

async function spawn(cmd: string, args: string[]): Promise<Child> {
  const process = new Deno.Command(cmd, {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  while (!buf.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Cannot start ${cmd}: it exited before it listened`);
    buf += value;
  }
  // Keep draining so the child never blocks on a full pipe.
  (async () => {
    while (!(await reader.read()).done);
  })();
  return { info: JSON.parse(buf.slice(0, buf.indexOf("\n"))), process };
}

async function ensureSdkInstalled(): Promise<void> {
  const dir = new URL("bench/sdk/", ROOT);
  try {
    await Deno.stat(new URL("node_modules/@a2a-js/sdk/package.json", dir));
    return;
  } catch {
    // Not installed yet.
  }
  console.log("Installing bench/sdk (npm ci)...");
  const out = await new Deno.Command("npm", {
    args: ["ci", "--no-audit", "--no-fund"],
    cwd: dir,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("Cannot install bench/sdk: npm ci failed");
}

// --- clients ---------------------------------------------------------------------------------

async function sdkClient(url: string): Promise<{ client: SdkClient; http: Deno.HttpClient }> {
  // One connection pool per SDK client, as separate processes would have.
  const http = Deno.createHttpClient({});
  const fetchImpl = (input: RequestInfo | URL, init?: RequestInit) => {
    const headers = new Headers(init?.headers);
    headers.set("authorization", `Bearer ${TOKEN}`);
    return fetch(input, { ...init, headers, client: http });
  };
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ fetchImpl })],
    }),
  );
  return { client: await factory.createFromUrl(url), http };
}

function sdkMessage(text: string): SdkMessage {
  return {
    messageId: crypto.randomUUID(),
    contextId: "",
    taskId: "",
    role: Role.ROLE_USER,
    parts: [{
      content: { $case: "text", value: text },
      metadata: undefined,
      filename: "",
      mediaType: "",
    }],
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
  };
}

function sdkSend(text: string, returnImmediately = false) {
  return {
    tenant: "",
    message: sdkMessage(text),
    configuration: {
      acceptedOutputModes: [],
      taskPushNotificationConfig: undefined,
      returnImmediately,
    },
    metadata: undefined,
  };
}

/** The calls each side is measured with, whatever client it takes. */
interface Side {
  name: string;
  send(text: string): Promise<unknown>;
  getTask(): Promise<unknown>;
  /** Starts `text` and yields its events to the end. */
  stream(text: string, signal?: AbortSignal): AsyncIterable<unknown>;
  /** Starts a gated task without waiting; returns its id. */
  start(text: string): Promise<string>;
  subscribe(id: string, signal?: AbortSignal): AsyncIterable<unknown>;
  close(): Promise<void>;
}

async function ourSide(url: string, transport: "websocket" | "jsonrpc"): Promise<Side> {
  const c = await A2AClient.connect(url, { token: TOKEN, transport });
  const sent = await c.sendMessage({ message: userMessage("hello world") });
  const id = sent.task!.id;
  return {
    name: transport,
    send: (text) => c.sendMessage({ message: userMessage(text) }),
    getTask: () => c.getTask({ id }),
    stream: (text) => c.sendStreamingMessage({ message: userMessage(text) }),
    async start(text) {
      const r = await c.sendMessage({
        message: userMessage(text),
        configuration: { returnImmediately: true },
      });
      return r.task!.id;
    },
    subscribe: (taskId): AsyncIterable<StreamEvent> => c.subscribeToTask({ id: taskId }),
    close: () => c.close(),
  };
}

async function sdkSide(url: string): Promise<Side> {
  const { client: c, http } = await sdkClient(url);
  const sent = await c.sendMessage(sdkSend("hello world"));
  const id = (sent as { id: string }).id;
  return {
    name: "sdk",
    send: (text) => c.sendMessage(sdkSend(text)),
    getTask: () => c.getTask({ tenant: "", id }),
    stream: (text, signal) => c.sendMessageStream(sdkSend(text), signal ? { signal } : undefined),
    async start(text) {
      return ((await c.sendMessage(sdkSend(text, true))) as { id: string }).id;
    },
    subscribe: (taskId, signal) =>
      c.resubscribeTask({ tenant: "", id: taskId }, signal ? { signal } : undefined),
    close() {
      http.close();
      return Promise.resolve();
    },
  };
}

// --- measurements ----------------------------------------------------------------------------

/** Runs each batch once per round, rotating the order, so load hits every side alike. */
async function interleave(rounds: number, batches: (() => Promise<void>)[]): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < batches.length; i++) await batches[(r + i) % batches.length]!();
  }
}

function pct(values: number[]): { p50: number; p99: number } {
  const s = [...values].sort((a, b) => a - b);
  return { p50: quantile(s, 0.5), p99: quantile(s, 0.99) };
}

function median(values: number[]): number {
  return quantile([...values].sort((a, b) => a - b), 0.5);
}

async function sequential(samples: number[], n: number, call: () => Promise<unknown>) {
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await call();
    samples.push(performance.now() - t0);
  }
}

/** Calls per second with `workers` loops calling back to back for `seconds`. */
async function closedLoop(seconds: number, calls: (() => Promise<unknown>)[]): Promise<number> {
  const deadline = performance.now() + seconds * 1000;
  let done = 0;
  const t0 = performance.now();
  await Promise.all(calls.map(async (call) => {
    while (performance.now() < deadline) {
      await call();
      done++;
    }
  }));
  return done / ((performance.now() - t0) / 1000);
}

async function count(stream: AsyncIterable<unknown>, onFirst?: () => void): Promise<number> {
  let n = 0;
  for await (const _ of stream) if (n++ === 0) onFirst?.();
  return n;
}

async function post(url: string): Promise<void> {
  await (await fetch(url, { method: "POST" })).body?.cancel();
}

async function mem(url: string): Promise<{ rss: number; heapUsed: number }> {
  return await (await fetch(url)).json();
}

// --- the run ---------------------------------------------------------------------------------

await ensureSdkInstalled();
const ours = await spawn(Deno.execPath(), [
  "run",
  "-A",
  "--v8-flags=--expose-gc",
  "bench/_compare_ours.ts",
]);
const sdk = await spawn("node", ["--expose-gc", "bench/sdk/server.mjs"]);
const oursUrl = ours.info.url!;
const oursSide = ours.info.side!;
const sdkUrl = sdk.info.url!;
const sdkSideUrl = sdkUrl;
console.log(`ours: ${oursUrl} (side ${oursSide}), sdk: ${sdkUrl}${QUICK ? ", quick mode" : ""}`);

const report: Report = {
  quick: QUICK,
  date: new Date().toISOString(),
  size: { ...SIZE, inFlight: IN_FLIGHT, clients: CLIENTS, subscribers: SUBSCRIBERS },
  latency: [],
  throughput: [],
  streaming: [],
  memory: [],
};

try {
  const capnweb = await ourSide(oursUrl, "websocket");
  const jsonrpc = await ourSide(oursUrl, "jsonrpc");
  const official = await sdkSide(sdkUrl);
  const sdkOnOurs = { ...(await sdkSide(oursUrl)), name: "sdk-on-ours" };
  const echo = await EchoClient.open(`${oursSide.replace("http", "ws")}/echo`);
  const payload = JSON.stringify(await capnweb.getTask());

  // Warm-up: JIT and connection pools on every path.
  for (const s of [capnweb, jsonrpc, official]) {
    await sequential([], 200, () => s.send("warm"));
    await sequential([], 200, () => s.getTask());
  }
  await sequential([], 500, () => echo.roundTrip(payload));

  // 1. Sequential latency.
  console.log("latency...");
  const lat: Record<string, number[]> = {};
  const batch = (key: string, call: () => Promise<unknown>) => () =>
    sequential(lat[key] ??= [], SIZE.seq, call);
  await interleave(SIZE.rounds, [
    batch("echo", () => echo.roundTrip(payload)),
    batch("capnweb send", () => capnweb.send("hello world")),
    batch("jsonrpc send", () => jsonrpc.send("hello world")),
    batch("sdk send", () => official.send("hello world")),
    batch("capnweb get", () => capnweb.getTask()),
    batch("jsonrpc get", () => jsonrpc.getTask()),
    batch("sdk get", () => official.getTask()),
  ]);
  const floor = pct(lat["echo"]!);
  for (const op of ["send", "get"]) {
    report.latency.push({
      op: op === "send" ? "sendMessage" : "getTask",
      floor,
      capnweb: pct(lat[`capnweb ${op}`]!),
      jsonrpc: pct(lat[`jsonrpc ${op}`]!),
      sdk: pct(lat[`sdk ${op}`]!),
    });
  }

  // 2. sendMessage/s: 100 in flight on one client, and 50 clients one call at a time each.
  console.log("throughput...");
  const many = {
    capnweb: await Promise.all(
      Array.from({ length: CLIENTS }, () => ourSide(oursUrl, "websocket")),
    ),
    jsonrpc: await Promise.all(Array.from({ length: CLIENTS }, () => ourSide(oursUrl, "jsonrpc"))),
    sdk: await Promise.all(Array.from({ length: CLIENTS }, () => sdkSide(sdkUrl))),
  };
  const tput: Record<string, number[]> = {};
  const loop = (key: string, calls: (() => Promise<unknown>)[]) => async () => {
    (tput[key] ??= []).push(await closedLoop(SIZE.seconds, calls));
  };
  const fan = (s: Side) => Array.from({ length: IN_FLIGHT }, () => () => s.send("hello world"));
  const each = (ss: Side[]) => ss.map((s) => () => s.send("hello world"));
  await interleave(SIZE.rounds, [
    loop("capnweb inflight", fan(capnweb)),
    loop("jsonrpc inflight", fan(jsonrpc)),
    loop("sdk inflight", fan(official)),
    loop("capnweb clients", each(many.capnweb)),
    loop("jsonrpc clients", each(many.jsonrpc)),
    loop("sdk clients", each(many.sdk)),
  ]);
  for (
    const [mode, label] of [["inflight", `${IN_FLIGHT} in flight, 1 client`], [
      "clients",
      `${CLIENTS} clients, 1 in flight each`,
    ]] as const
  ) {
    report.throughput.push({
      label,
      capnweb: median(tput[`capnweb ${mode}`]!),
      jsonrpc: median(tput[`jsonrpc ${mode}`]!),
      sdk: median(tput[`sdk ${mode}`]!),
    });
  }
  await Promise.all([...many.capnweb, ...many.jsonrpc, ...many.sdk].map((s) => s.close()));

  // 3. One subscriber: events/s of a task of SIZE.chunks chunks.
  console.log("streaming, 1 subscriber...");
  const one: Record<string, number[]> = {};
  const streamBatch = (key: string, s: Side, chunks: number) => async () => {
    const t0 = performance.now();
    const n = await count(s.stream(`stream:${chunks}`));
    const s1 = (performance.now() - t0) / 1000;
    if (n < chunks) throw new Error(`${key}: got ${n} events of at least ${chunks}`);
    (one[`${key} ${chunks}`] ??= []).push(n / s1);
  };
  await interleave(SIZE.streamRounds, [
    streamBatch("capnweb", capnweb, SIZE.chunks),
    streamBatch("jsonrpc", jsonrpc, SIZE.chunks),
    streamBatch("sdk-on-ours", sdkOnOurs, SIZE.chunks),
    streamBatch("sdk", official, SIZE.chunks),
  ]);
  // The SDK server's cost per event grows with the artifact (2000 chunks take 9 s, 4000 take
  // 34 s), so at bigChunks only ours run in rounds; the SDK gets one capped attempt at the end.
  await interleave(SIZE.streamRounds, [
    streamBatch("capnweb", capnweb, SIZE.bigChunks),
    streamBatch("jsonrpc", jsonrpc, SIZE.bigChunks),
    streamBatch("sdk-on-ours", sdkOnOurs, SIZE.bigChunks),
  ]);

  // 4. 100 subscribers of one task: total events/s from the gate opening to the last end.
  console.log("streaming, 100 subscribers...");
  const hundred: Record<string, number[]> = {};
  const subs = {
    capnweb: await Promise.all(
      Array.from({ length: SUBSCRIBERS }, () => ourSide(oursUrl, "websocket")),
    ),
    jsonrpc: await Promise.all(
      Array.from({ length: SUBSCRIBERS }, () => ourSide(oursUrl, "jsonrpc")),
    ),
    sdk: await Promise.all(Array.from({ length: SUBSCRIBERS }, () => sdkSide(sdkUrl))),
  };
  const fanBatch =
    (key: "capnweb" | "jsonrpc" | "sdk", publisher: Side, gateUrl: string) => async () => {
      await post(`${gateUrl}/bench/close-gate`);
      const id = await publisher.start(`gate:${SIZE.fanChunks}`);
      let ready = 0;
      let allReady = () => {};
      const readyP = new Promise<void>((r) => allReady = r);
      const runs = subs[key].map((s) =>
        count(s.subscribe(id), () => {
          if (++ready === SUBSCRIBERS) allReady();
        })
      );
      await readyP;
      const t0 = performance.now();
      await post(`${gateUrl}/bench/gate`);
      const counts = await Promise.all(runs);
      const s1 = (performance.now() - t0) / 1000;
      const total = counts.reduce((a, b) => a + b, 0) - SUBSCRIBERS; // Snapshots came before t0.
      if (counts.some((n) => n < SIZE.fanChunks)) {
        throw new Error(
          `${key}: a subscriber got ${Math.min(...counts)} of ${SIZE.fanChunks} chunks`,
        );
      }
      (hundred[key] ??= []).push(total / s1);
    };
  await interleave(SIZE.fanRounds, [
    fanBatch("capnweb", capnweb, oursSide),
    fanBatch("jsonrpc", jsonrpc, oursSide),
    fanBatch("sdk", official, sdkSideUrl),
  ]);
  await Promise.all([...subs.capnweb, ...subs.jsonrpc, ...subs.sdk].map((s) => s.close()));
  for (const chunks of [SIZE.chunks, SIZE.bigChunks]) {
    report.streaming.push({
      label: `1 subscriber, ${chunks} chunks`,
      capnweb: median(one[`capnweb ${chunks}`]!),
      jsonrpc: median(one[`jsonrpc ${chunks}`]!),
      sdkOnOurs: median(one[`sdk-on-ours ${chunks}`]!),
      sdk: one[`sdk ${chunks}`] ? median(one[`sdk ${chunks}`]!) : NaN,
    });
  }
  report.streaming.push({
    label: `${SUBSCRIBERS} subscribers, ${SIZE.fanChunks} chunks`,
    capnweb: median(hundred["capnweb"]!),
    jsonrpc: median(hundred["jsonrpc"]!),
    sdkOnOurs: NaN,
    sdk: median(hundred["sdk"]!),
  });

  // 5. Idle sessions: server RSS and heap (after a GC) with N sessions open and idle.
  for (const n of SESSIONS) {
    console.log(`idle sessions, ${n}...`);
    const base = {
      ours: await mem(`${oursSide}/bench/mem`),
      sdk: await mem(`${sdkUrl}/bench/mem`),
    };
    if (report.memory.length === 0) {
      report.memory.push({ sessions: 0, what: "(baseline)", ours: base.ours, sdk: base.sdk });
    }
    const clients: A2AClient[] = [];
    for (let i = 0; i < n; i += 100) {
      clients.push(
        ...await Promise.all(
          Array.from(
            { length: Math.min(100, n - i) },
            () => A2AClient.connect(oursUrl, { token: TOKEN }),
          ),
        ),
      );
    }
    await new Promise((r) => setTimeout(r, 500));
    report.memory.push({
      sessions: n,
      what: "capnweb WebSockets",
      ours: await mem(`${oursSide}/bench/mem`),
      sdk: null,
    });
    for (let i = 0; i < clients.length; i += 500) {
      await Promise.all(clients.slice(i, i + 500).map((c) => c.close()));
    }
    const held = async (publisher: Side, gateUrl: string) => {
      await post(`${gateUrl}/bench/close-gate`);
      const id = await publisher.start("gate:0");
      const ac = new AbortController();
      let ready = 0;
      let allReady = () => {};
      const readyP = new Promise<void>((r) => allReady = r);
      const runs: Promise<number>[] = [];
      for (let i = 0; i < n; i++) {
        runs.push(
          count(publisher.subscribe(id, ac.signal), () => {
            if (++ready === n) allReady();
          }).catch(() => 0),
        );
        if (i % 100 === 99) await new Promise((r) => setTimeout(r, 20));
      }
      await readyP;
      await new Promise((r) => setTimeout(r, 500));
      const m = await mem(`${gateUrl}/bench/mem`);
      await post(`${gateUrl}/bench/gate`);
      await Promise.all(runs);
      return m;
    };
    report.memory.push({
      sessions: n,
      what: "SSE subscriptions",
      ours: await held(jsonrpc, oursSide),
      sdk: await held(official, sdkUrl),
    });
  }

  // 6. Last, since it may leave the SDK server busy: one capped try at bigChunks on the SDK.
  console.log(
    `streaming, 1 subscriber, ${SIZE.bigChunks} chunks on the SDK (cap ${SIZE.sdkCapSeconds} s)...`,
  );
  {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), SIZE.sdkCapSeconds * 1000);
    const t0 = performance.now();
    const capped = new Promise<number>((r) => ac.signal.addEventListener("abort", () => r(-1)));
    const n = await Promise.race([
      count(official.stream(`stream:${SIZE.bigChunks}`, ac.signal)).catch(() => -1),
      capped,
    ]);
    clearTimeout(timer);
    const row = report.streaming.find((r) => r.label === `1 subscriber, ${SIZE.bigChunks} chunks`)!;
    if (n >= SIZE.bigChunks) row.sdk = n / ((performance.now() - t0) / 1000);
    else row.sdkBound = SIZE.bigChunks / SIZE.sdkCapSeconds;
  }
  await Promise.all([capnweb, jsonrpc, sdkOnOurs].map((s) => s.close()));
  echo.close();
} finally {
  for (const c of [ours, sdk]) {
    try {
      // SIGKILL: a capped SDK run leaves Node in a synchronous loop that would not see SIGTERM.
      c.process.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    await c.process.status;
  }
}

await writeReport(ROOT, report);
// Clients of the memory rows may still hold timers; the report is written.
Deno.exit(0);
