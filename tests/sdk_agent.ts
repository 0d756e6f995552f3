// A test fixture: an A2A agent built with the official JS SDK's server side (its express-free
// JsonRpcTransportHandler and DefaultRequestHandler) behind Deno.serve on 127.0.0.1, port 0.
// Its card lists only a JSONRPC interface, so our client has to pick the JSON-RPC binding.
// `startSdkRestAgent()` also serves the SDK's HTTP+JSON binding: the SDK has it only as an
// express router (`restHandler`), so express runs it on a second port, over the same
// DefaultRequestHandler, and the card lists it too.

import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
// @ts-types="./sdk_express_types.d.ts"
import express, { type Handler } from "express";

import { AgentCard, TaskState } from "@a2a-js/sdk";
import {
  AgentEvent,
  type AgentExecutor,
  DefaultRequestHandler,
  type ExecutionEventBus,
  InMemoryTaskStore,
  JsonRpcTransportHandler,
  type RequestContext,
  ServerCallContext,
  validateVersion,
} from "@a2a-js/sdk/server";
// @ts-types="./sdk_express_types.d.ts"
import { restHandler, UserBuilder } from "@a2a-js/sdk/server/express";

/** The bearer token the SDK agent accepts. */
export const SDK_AGENT_TOKEN = "sdk-token";

/** A running SDK agent. */
export interface SdkAgent extends AsyncDisposable {
  /** Its base URL. */
  readonly url: string;
  /** The headers of every JSON-RPC request it received. */
  readonly requests: Headers[];
  /** How many SSE streams are open right now. */
  readonly openStreams: number;
}

const encoder = new TextEncoder();

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function now(): string {
  return new Date().toISOString();
}

/** Echoes text back as a chunked artifact; `slow:` waits 100 ms between words. */
class EchoExecutor implements AgentExecutor {
  readonly running = new Set<Promise<void>>();
  #canceled = new Set<string>();

  execute = (ctx: RequestContext, bus: ExecutionEventBus): Promise<void> => {
    const run = this.#run(ctx, bus);
    this.running.add(run);
    return run.finally(() => this.running.delete(run));
  };

  async #run(ctx: RequestContext, bus: ExecutionEventBus): Promise<void> {
    const { taskId, contextId } = ctx;
    const text = ctx.userMessage.parts
      .map((p) => p.content?.$case === "text" ? p.content.value : "").join("");
    const slow = text.startsWith("slow:");
    const rest = slow ? text.slice(5).trim() : text;
    bus.publish(AgentEvent.task({
      id: taskId,
      contextId,
      status: { state: TaskState.TASK_STATE_SUBMITTED, message: undefined, timestamp: now() },
      artifacts: [],
      history: [ctx.userMessage],
      metadata: undefined,
    }));
    const status = (state: TaskState) =>
      bus.publish(AgentEvent.statusUpdate({
        taskId,
        contextId,
        status: { state, message: undefined, timestamp: now() },
        metadata: undefined,
      }));
    status(TaskState.TASK_STATE_WORKING);
    const chunks = slow
      ? rest.split(/(?<= )/)
      : [rest.slice(0, rest.length >> 1), rest.slice(rest.length >> 1)];
    for (let i = 0; i < chunks.length; i++) {
      if (slow && i > 0) await sleep(100);
      if (this.#canceled.has(taskId)) return;
      bus.publish(AgentEvent.artifactUpdate({
        taskId,
        contextId,
        artifact: {
          artifactId: "echo",
          name: "echo",
          description: "",
          parts: [{
            content: { $case: "text", value: chunks[i]! },
            metadata: undefined,
            filename: "",
            mediaType: "text/plain",
          }],
          metadata: undefined,
          extensions: [],
        },
        append: i > 0,
        lastChunk: i === chunks.length - 1,
        metadata: undefined,
      }));
    }
    status(TaskState.TASK_STATE_COMPLETED);
  }

  cancelTask = (taskId: string, bus: ExecutionEventBus): Promise<void> => {
    this.#canceled.add(taskId);
    bus.publish(AgentEvent.statusUpdate({
      taskId,
      contextId: "",
      status: { state: TaskState.TASK_STATE_CANCELED, message: undefined, timestamp: now() },
      metadata: undefined,
    }));
    return Promise.resolve();
  };
}

/** The SDK's HTTP+JSON binding, served by express: its base URL and its server. */
interface RestFace {
  url: string;
  server: Server;
  /** Set once the request handler exists (the card carries both ports). */
  handler?: DefaultRequestHandler;
}

/**
 * Starts the SDK agent.
 *
 * @returns The agent; `await using` stops it after its executions have finished.
 */
export function startSdkAgent(): SdkAgent {
  return launch(undefined);
}

/**
 * Starts the SDK agent with its HTTP+JSON binding as well, at `/a2a/rest` of a second port, and
 * an extended card (description `extended`).
 *
 * @returns The agent; `await using` stops it after its executions have finished.
 */
export async function startSdkRestAgent(): Promise<SdkAgent> {
  const face = {} as RestFace;
  const app = express();
  app.use((req, res, next) => {
    if (req.headers.authorization === `Bearer ${SDK_AGENT_TOKEN}`) return next();
    res.status(401).set("www-authenticate", "Bearer").json({
      error: { code: 401, status: "UNAUTHENTICATED", message: "Unauthorized", details: [] },
    });
  });
  // The router needs the request handler, which needs the card, which needs this port.
  const router: { handle?: Handler } = {};
  app.use("/a2a/rest", (req, res, next) => router.handle!(req, res, next));
  face.server = await new Promise<Server>((resolve) => {
    const server = app.listen(0, "127.0.0.1", () => resolve(server));
  });
  face.url = `http://127.0.0.1:${(face.server.address() as AddressInfo).port}`;
  const agent = launch(face);
  router.handle = restHandler({
    requestHandler: face.handler!,
    userBuilder: UserBuilder.noAuthentication,
  });
  return agent;
}

function launch(rest: RestFace | undefined): SdkAgent {
  const executor = new EchoExecutor();
  const requests: Headers[] = [];
  let openStreams = 0;
  // Filled in once the server listens, since the card carries the bound port.
  const live = {} as {
    card: AgentCard;
    cardJson: Record<string, unknown>;
    handler: JsonRpcTransportHandler;
  };

  const serveRpc = async (req: Request): Promise<Response> => {
    requests.push(req.headers);
    const auth = req.headers.get("authorization");
    if (auth !== `Bearer ${SDK_AGENT_TOKEN}`) {
      await req.body?.cancel();
      return new Response("Unauthorized", {
        status: 401,
        headers: { "www-authenticate": "Bearer" },
      });
    }
    const context = new ServerCallContext({
      requestedVersion: req.headers.get("a2a-version") || "0.3",
    });
    const text = await req.text();
    const id = (() => {
      try {
        return JSON.parse(text)?.id ?? null;
      } catch {
        return null;
      }
    })();
    try {
      validateVersion(context.requestedVersion, live.card, "JSONRPC");
    } catch (err) {
      return Response.json({
        jsonrpc: "2.0",
        id,
        error: JsonRpcTransportHandler.mapToJSONRPCError(err),
      });
    }
    const result = await live.handler.handle(text, context);
    if (!(Symbol.asyncIterator in result)) return Response.json(result);
    const events = result[Symbol.asyncIterator]();
    let first: IteratorResult<unknown>;
    try {
      first = await events.next();
    } catch (err) {
      return Response.json({
        jsonrpc: "2.0",
        id,
        error: JsonRpcTransportHandler.mapToJSONRPCError(err),
      });
    }
    openStreams++;
    let closed = false;
    const close = () => {
      if (!closed) openStreams--;
      closed = true;
    };
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        if (!first.done) c.enqueue(encoder.encode(`data: ${JSON.stringify(first.value)}\n\n`));
      },
      async pull(c) {
        try {
          const next = await events.next();
          if (next.done) {
            close();
            return c.close();
          }
          c.enqueue(encoder.encode(`data: ${JSON.stringify(next.value)}\n\n`));
        } catch (err) {
          const error = JsonRpcTransportHandler.mapToJSONRPCError(err);
          c.enqueue(
            encoder.encode(
              `event: error\ndata: ${JSON.stringify({ jsonrpc: "2.0", id, error })}\n\n`,
            ),
          );
          close();
          c.close();
        }
      },
      async cancel() {
        close();
        await events.return?.(undefined);
      },
    });
    return new Response(body, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
    });
  };

  const ac = new AbortController();
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", signal: ac.signal, onListen() {} },
    (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/.well-known/agent-card.json") return Response.json(live.cardJson);
      if (path === "/a2a/jsonrpc" && req.method === "POST") return serveRpc(req);
      return new Response("Not found", { status: 404 });
    },
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  live.cardJson = {
    name: "SDK echo agent",
    description: "Built with @a2a-js/sdk",
    version: "1.0.0",
    supportedInterfaces: [
      { url: `${url}/a2a/jsonrpc`, protocolBinding: "JSONRPC", protocolVersion: "1.0" },
      ...(rest
        ? [{ url: `${rest.url}/a2a/rest`, protocolBinding: "HTTP+JSON", protocolVersion: "1.0" }]
        : []),
    ],
    capabilities: { streaming: true, pushNotifications: true, extendedAgentCard: !!rest },
    defaultInputModes: ["text/plain"],
    defaultOutputModes: ["text/plain"],
    skills: [{ id: "echo", name: "Echo", description: "Echoes", tags: ["echo"] }],
  };
  live.card = AgentCard.fromJSON(live.cardJson);
  const extended = { ...live.card, description: "extended" };
  const requestHandler = new DefaultRequestHandler(
    live.card,
    new InMemoryTaskStore(),
    executor,
    undefined,
    undefined,
    undefined,
    rest ? () => Promise.resolve(extended) : undefined,
  );
  live.handler = new JsonRpcTransportHandler(requestHandler);
  if (rest) rest.handler = requestHandler;
  return {
    url,
    requests,
    get openStreams() {
      return openStreams;
    },
    async [Symbol.asyncDispose]() {
      await Promise.all(executor.running);
      ac.abort();
      await server.finished;
      if (rest) {
        rest.server.closeAllConnections();
        await new Promise((resolve) => rest.server.close(resolve));
      }
    },
  };
}
