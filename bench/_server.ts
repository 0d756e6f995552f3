// The server the round-trip benches share: the A2A handler with the demo agent, plus two raw
// WebSocket routes on the same Deno.serve listener to compare against, and a raw ws client.

import { WebSocket as NodeWebSocket } from "ws";
import { A2AClient } from "../client.ts";
import { type A2AHandler, demoAgent, demoAgentCard, StaticTokenVerifier } from "../mod.ts";
import { createHandler } from "../server.ts";
import { userMessage } from "./_util.ts";

/** The part of an npm:ws socket used here (its event-emitter API). */
interface RawSocket {
  on(event: "open" | "message", listener: () => void): void;
  on(event: "error", listener: (err: Error) => void): void;
  send(data: string): void;
  close(code?: number): void;
  readonly readyState: number;
}

/**
 * A raw WebSocket client over npm:ws (Nagle off, like the A2A client's socket): one pending
 * round trip per frame that the server answers.
 */
export class EchoClient {
  #socket: RawSocket;
  #waiting: (() => void)[] = [];
  #head = 0;

  private constructor(socket: RawSocket) {
    this.#socket = socket;
    socket.on("message", () => {
      // Answers come back in the order the frames were sent.
      const resolve = this.#waiting[this.#head++];
      if (this.#head === this.#waiting.length) {
        this.#waiting = [];
        this.#head = 0;
      }
      resolve?.();
    });
  }

  /**
   * Opens a socket.
   *
   * @param url A `ws://` URL.
   * @returns The open client.
   */
  static open(url: string): Promise<EchoClient> {
    const socket = new NodeWebSocket(url) as unknown as RawSocket;
    return new Promise((resolve, reject) => {
      // Stays registered: ws throws on an "error" event that has no listener.
      socket.on("error", reject);
      socket.on("open", () => resolve(new EchoClient(socket)));
    });
  }

  /** Sends one text frame and resolves when the server's answer comes back. */
  roundTrip(payload: string): Promise<void> {
    return new Promise((resolve) => {
      this.#waiting.push(resolve);
      this.#socket.send(payload);
    });
  }

  /** Sends a frame that gets no answer. */
  post(payload: string): void {
    this.#socket.send(payload);
  }

  /** Starts the closing handshake. */
  close(): void {
    if (this.#socket.readyState <= 1) this.#socket.close(1000);
  }
}

/** The shared server with its clients, connected and ready. */
export interface BenchServer {
  /** The A2A handler (for stats). */
  handler: A2AHandler;
  /** A capnweb client over a WebSocket. */
  wsClient: A2AClient;
  /** A capnweb client over HTTP batches. */
  batchClient: A2AClient;
  /** A completed demo task to read. */
  taskId: string;
  /** The JSON of that task as getTask returns it: the echo payload. */
  taskJson: string;
  /** A raw client of `/echo`. */
  echo: EchoClient;
  /** A raw client of `/mimic`. */
  mimic: EchoClient;
  /** Sends the frames of one capnweb call to `/mimic` and waits for the answer. */
  mimicCall(): Promise<void>;
  /**
   * Closes the clients, then the server. Its first steps are synchronous, so that calling it
   * from an unload listener (which cannot wait) still starts every close.
   */
  close(): Promise<void>;
}

/**
 * Starts the A2A handler with the demo agent on 127.0.0.1, port 0, with two more routes:
 * `/echo` sends every text frame back; `/mimic` answers only frames that start with `["pull"`,
 * with the task's JSON, which is the frame pattern of one capnweb call (push and pull out,
 * resolve back, release out) without an RPC system behind it.
 *
 * @returns The server, its clients and a completed task.
 */
export async function startBenchServer(): Promise<BenchServer> {
  const handler = createHandler({
    agentCard: demoAgentCard,
    executor: demoAgent,
    verifier: StaticTokenVerifier.fromList("alice=token-alice"),
  });
  const rawSockets = new Set<WebSocket>();
  let reply = "";
  const raw = (req: Request, mimic: boolean): Response => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    rawSockets.add(socket);
    socket.onmessage = mimic
      ? (e) => {
        if ((e.data as string).startsWith('["pull"')) socket.send(reply);
      }
      : (e) => socket.send(e.data);
    socket.onclose = () => rawSockets.delete(socket);
    return response;
  };
  const ac = new AbortController();
  const server = Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    signal: ac.signal,
    onListen: () => {},
  }, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/echo") return raw(req, false);
    if (path === "/mimic") return raw(req, true);
    return handler(req);
  });
  const base = `http://127.0.0.1:${server.addr.port}`;
  const wsClient = await A2AClient.connect(base, { token: "token-alice" });
  const batchClient = await A2AClient.connect(base, { token: "token-alice", transport: "batch" });
  const sent = await wsClient.sendMessage({ message: userMessage("hello world") });
  if (sent.task?.status.state !== "TASK_STATE_COMPLETED") {
    throw new Error(`Cannot set up: the demo agent answered ${JSON.stringify(sent)}`);
  }
  const taskId = sent.task.id;
  const taskJson = JSON.stringify(await wsClient.getTask({ id: taskId }));
  reply = taskJson;
  const echo = await EchoClient.open(`ws://127.0.0.1:${server.addr.port}/echo`);
  const mimic = await EchoClient.open(`ws://127.0.0.1:${server.addr.port}/mimic`);
  let callId = 0;
  return {
    handler,
    wsClient,
    batchClient,
    taskId,
    taskJson,
    echo,
    mimic,
    async mimicCall() {
      const id = ++callId;
      mimic.post(`["push",["pipeline",1,["getTask"],[{"id":"${taskId}"}]]]`);
      await mimic.roundTrip(`["pull",${id}]`);
      mimic.post(`["release",${id},1]`);
    },
    async close() {
      echo.close();
      mimic.close();
      // An explicit code: when Deno.serve stops with WebSockets still open it sends them close
      // code 1005, which must never be sent on the wire and which ws reports as an error.
      for (const s of rawSockets) s.close(1000);
      // Clients first: closing the handler at the same time kept the process alive for another
      // 15 s (half the idle timeout) in one of our runs.
      await Promise.all([wsClient.close(), batchClient.close()]);
      await handler.close();
      ac.abort();
      await server.finished;
    },
  };
}
