// Three ways to stream events over one capnweb WebSocket, without the task core: capnweb's own
// ReadableStream (which the server returns and capnweb pumps with its flow control), one call of
// the client's sink per event (the binding's `onEvent`), and one call per batch of up to 256
// events (`onEvents`, with the batches the server's queue holds when the client grants credit).
// Rounds are interleaved; client and server run in one process, so both ends' CPU is counted.
//
//   deno run -A bench/capnweb_stream.ts [events=10000] [rounds=5]

import { newWebSocketRpcSession, RpcSession, RpcTarget, WebSocketTransport } from "capnweb";
import { WebSocket as NodeWebSocket } from "ws";

const EVENTS = Number(Deno.args[0] ?? 10_000);
const ROUNDS = Number(Deno.args[1] ?? 5);
const BATCH = 256;
const WINDOW = 32;

/** An artifact update as the binding sends it: seq plus a StreamResponse. */
function event(seq: number): unknown {
  return {
    seq,
    artifactUpdate: {
      taskId: "0f8e2c1a-5b7d-4e39-9a61-3c2d4b5a6e7f",
      contextId: "4d3c2b1a-0f9e-4d8c-b7a6-958473625140",
      artifact: { artifactId: "echo", parts: [{ text: `chunk ${seq} ` }] },
      append: seq > 1,
      lastChunk: seq === EVENTS,
    },
  };
}

interface Sink {
  onEvent(e: unknown): Promise<void>;
  onEvents(es: unknown[]): Promise<void>;
  onEnd(): void;
}

class Root extends RpcTarget {
  readable(n: number): ReadableStream<unknown> {
    let seq = 0;
    return new ReadableStream({
      pull(controller) {
        if (seq === n) return controller.close();
        controller.enqueue(event(++seq));
      },
    });
  }

  /** One sink call per event, at most WINDOW unresolved, as the binding's streamWindow does. */
  async perEvent(n: number, sink: Sink): Promise<void> {
    const s = (sink as Sink & { dup(): Sink & Disposable }).dup();
    await windowed(function* () {
      for (let seq = 1; seq <= n; seq++) yield () => s.onEvent(event(seq));
    }());
    s.onEnd();
    s[Symbol.dispose]();
  }

  /**
   * Batches of up to BATCH events, at most WINDOW calls unresolved: a queue drained by whatever
   * credit is free, as the binding's batched delivery does under a backlog.
   */
  async batched(n: number, sink: Sink): Promise<void> {
    const s = (sink as Sink & { dup(): Sink & Disposable }).dup();
    await windowed(function* () {
      for (let seq = 0; seq < n;) {
        const batch: unknown[] = [];
        while (batch.length < BATCH && seq < n) batch.push(event(++seq));
        yield () => s.onEvents(batch);
      }
    }());
    s.onEnd();
    s[Symbol.dispose]();
  }
}

/** Makes the calls in order, with at most WINDOW of them unresolved, and waits for the last. */
async function windowed(calls: Iterable<() => Promise<void>>): Promise<void> {
  const inFlight = new Set<Promise<void>>();
  for (const call of calls) {
    const p = call();
    inFlight.add(p);
    p.finally(() => inFlight.delete(p));
    if (inFlight.size >= WINDOW) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
}

class ClientSink extends RpcTarget {
  count = 0;
  #done: () => void;
  constructor(done: () => void) {
    super();
    this.#done = done;
  }
  onEvent(_e: unknown): void {
    this.count++;
  }
  onEvents(es: unknown[]): void {
    this.count += es.length;
  }
  onEnd(): void {
    this.#done();
  }
}

const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
  const { socket, response } = Deno.upgradeWebSocket(req);
  new RpcSession(new WebSocketTransport(socket), new Root());
  return response;
});
const socket = new NodeWebSocket(`ws://127.0.0.1:${server.addr.port}`);
await new Promise<void>((resolve, reject) => {
  socket.on("open", () => resolve());
  socket.on("error", reject);
});
const root = newWebSocketRpcSession<Root>(socket as unknown as WebSocket);

const ways: Record<string, () => Promise<number>> = {
  "capnweb ReadableStream": async () => {
    const stream = await root.readable(EVENTS) as unknown as ReadableStream<unknown>;
    let n = 0;
    for await (const _ of stream) n++;
    return n;
  },
  "one sink call per event": async () => {
    let done!: () => void;
    const ended = new Promise<void>((r) => done = r);
    const sink = new ClientSink(done);
    await root.perEvent(EVENTS, sink as unknown as Sink);
    await ended;
    return sink.count;
  },
  "one sink call per batch": async () => {
    let done!: () => void;
    const ended = new Promise<void>((r) => done = r);
    const sink = new ClientSink(done);
    await root.batched(EVENTS, sink as unknown as Sink);
    await ended;
    return sink.count;
  },
};

const names = Object.keys(ways);
const rates = new Map<string, number[]>(names.map((n) => [n, []]));
for (let round = 0; round <= ROUNDS; round++) {
  for (let k = 0; k < names.length; k++) {
    const name = names[(round + k) % names.length]!;
    const t0 = performance.now();
    const got = await ways[name]!();
    const s = (performance.now() - t0) / 1000;
    if (got !== EVENTS) throw new Error(`${name}: got ${got} of ${EVENTS} events`);
    // Round 0 warms the JIT up and is not recorded.
    if (round > 0) rates.get(name)!.push(EVENTS / s);
  }
}
const lines = [`${EVENTS} events, ${ROUNDS} rounds, order rotated; events/s, median (rounds)`];
for (const [name, r] of rates) {
  const sorted = [...r].sort((a, b) => a - b);
  lines.push(
    `${name} | ${Math.round(sorted[Math.floor(sorted.length / 2)]!).toLocaleString("en-US")} (${
      r.map((x) => Math.round(x).toLocaleString("en-US")).join(", ")
    })`,
  );
}
// deno-lint-ignore no-console
console.log(lines.join("\n"));
root[Symbol.dispose]();
socket.close();
await server.shutdown();
