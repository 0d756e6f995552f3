// The official SDK's side of bench/compare.ts: @a2a-js/sdk's DefaultRequestHandler behind its
// express JSON-RPC middleware, with the same agent as bench/_compare_ours.ts. Started by
// compare.ts with `node bench/sdk/server.mjs`; prints one JSON line with its URL when it listens.

import { AgentCard, TaskState } from "@a2a-js/sdk";
import { AgentEvent, DefaultRequestHandler, InMemoryTaskStore } from "@a2a-js/sdk/server";
import { agentCardHandler, jsonRpcHandler, UserBuilder } from "@a2a-js/sdk/server/express";
import { createRequire } from "node:module";

// Through require, so that `deno check bench/` (which has no express in its import map) does not
// try to resolve it; Node finds it in bench/sdk/node_modules.
const express = createRequire(import.meta.url)("express");

const TOKEN = process.env.BENCH_TOKEN ?? "token-alice";

// One gate for the fan-out measurement: a `gate:N` task waits on it after WORKING, and
// `POST /bench/gate` opens it once every subscriber has its snapshot.
let openGate = () => {};
let gate = Promise.resolve();
function closeGate() {
  gate = new Promise((resolve) => openGate = resolve);
}

function now() {
  return new Date().toISOString();
}

function textOf(message) {
  return message.parts.map((p) => p.content?.$case === "text" ? p.content.value : "").join("");
}

/**
 * `stream:N`: WORKING, N chunks of one artifact, COMPLETED. `gate:N`: the same, waiting on the
 * gate after WORKING. Anything else: WORKING, the text as one artifact, COMPLETED.
 */
const executor = {
  async execute(ctx, bus) {
    const { taskId, contextId } = ctx;
    const text = textOf(ctx.userMessage);
    const m = /^(stream|gate):(\d+)$/.exec(text);
    bus.publish(AgentEvent.task({
      id: taskId,
      contextId,
      status: {
        state: TaskState.TASK_STATE_SUBMITTED,
        message: undefined,
        timestamp: now(),
      },
      artifacts: [],
      history: [ctx.userMessage],
      metadata: undefined,
    }));
    const status = (state) =>
      bus.publish(AgentEvent.statusUpdate({
        taskId,
        contextId,
        status: { state, message: undefined, timestamp: now() },
        metadata: undefined,
      }));
    const chunk = (value, append, lastChunk) =>
      bus.publish(AgentEvent.artifactUpdate({
        taskId,
        contextId,
        artifact: {
          artifactId: "echo",
          name: "",
          description: "",
          parts: [{
            content: { $case: "text", value },
            metadata: undefined,
            filename: "",
            mediaType: "",
          }],
          metadata: undefined,
          extensions: [],
        },
        append,
        lastChunk,
        metadata: undefined,
      }));
    status(TaskState.TASK_STATE_WORKING);
    if (m) {
      if (m[1] === "gate") await gate;
      const n = Number(m[2]);
      for (let i = 0; i < n; i++) chunk(`chunk ${i} `, i > 0, i === n - 1);
    } else {
      chunk(text, false, true);
    }
    status(TaskState.TASK_STATE_COMPLETED);
    bus.finished();
  },
  cancelTask() {
    return Promise.resolve();
  },
};

const port = Number(process.argv[2] ?? 0);
const app = express();
const server = app.listen(port, "127.0.0.1", () => {
  const url = `http://127.0.0.1:${server.address().port}`;
  const card = AgentCard.fromJSON({
    name: "SDK bench agent",
    description: "Built with @a2a-js/sdk",
    version: "1.0.0",
    supportedInterfaces: [
      {
        url: `${url}/a2a/jsonrpc`,
        protocolBinding: "JSONRPC",
        protocolVersion: "1.0",
      },
    ],
    capabilities: {
      streaming: true,
      pushNotifications: false,
      extendedAgentCard: false,
    },
    defaultInputModes: ["text/plain"],
    defaultOutputModes: ["text/plain"],
    skills: [{
      id: "echo",
      name: "Echo",
      description: "Echoes",
      tags: ["echo"],
    }],
  });
  const requestHandler = new DefaultRequestHandler(
    card,
    new InMemoryTaskStore(),
    executor,
  );
  app.use(
    "/.well-known/agent-card.json",
    agentCardHandler({ agentCardProvider: requestHandler }),
  );
  app.post("/bench/gate", (_req, res) => {
    openGate();
    res.json({ ok: true });
  });
  app.post("/bench/close-gate", (_req, res) => {
    closeGate();
    res.json({ ok: true });
  });
  app.get("/bench/mem", (_req, res) => {
    globalThis.gc?.();
    const m = process.memoryUsage();
    res.json({ rss: m.rss, heapUsed: m.heapUsed });
  });
  // The same check our server makes of a static token, so both sides authenticate each call.
  app.use("/a2a/jsonrpc", (req, res, next) => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`) {
      res.status(401).set("www-authenticate", "Bearer").send("Unauthorized");
      return;
    }
    next();
  });
  app.use(
    "/a2a/jsonrpc",
    jsonRpcHandler({
      requestHandler,
      userBuilder: UserBuilder.noAuthentication,
    }),
  );
  process.stdout.write(JSON.stringify({ url }) + "\n");
});
server.keepAliveTimeout = 60_000;
server.headersTimeout = 61_000;
server.requestTimeout = 0;
process.on("SIGTERM", () => process.exit(0));
