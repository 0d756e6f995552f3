// The demo agent that `deno task start` runs: it echoes text back as a chunked artifact, with a
// few prefixes to try the other paths of the protocol by hand.

import { ContentTypeNotSupportedError } from "../errors/errors.ts";
import type { AgentCardInput } from "../http/handler.ts";
import type { AgentExecutor, EventPublisher, RequestContext } from "../tasks/executor.ts";
import { textOf } from "../tasks/executor.ts";

/** Milliseconds between chunks in slow mode. */
export const SLOW_CHUNK_MS = 200;

/**
 * Splits text into at least two chunks that join back to it: words (with the space after
 * them) when `byWord`, otherwise pieces of about 16 characters.
 *
 * @param text The text.
 * @param byWord Split at word boundaries.
 * @returns The chunks.
 */
export function chunkText(text: string, byWord = false): string[] {
  let chunks: string[];
  if (byWord) chunks = text.match(/\S+\s*|\s+/g) ?? [];
  else {
    const count = Math.min(64, Math.max(2, Math.ceil(text.length / 16)));
    const size = Math.max(1, Math.ceil(text.length / count));
    chunks = [];
    for (let i = 0; i < text.length; i += size) chunks.push(text.slice(i, i + size));
  }
  while (chunks.length < 2) chunks.push("");
  return chunks;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

async function streamBack(
  ctx: RequestContext,
  events: EventPublisher,
  text: string,
  delayMs: number,
): Promise<void> {
  const chunks = chunkText(text, delayMs > 0);
  for (let i = 0; i < chunks.length; i++) {
    if (i > 0 && delayMs > 0) await sleep(delayMs, ctx.signal);
    await events.artifact(
      { artifactId: "echo", name: "echo", parts: [{ text: chunks[i]! }] },
      { append: i > 0, lastChunk: i === chunks.length - 1 },
    );
  }
}

/**
 * The demo agent. For a text message it goes SUBMITTED → WORKING, streams the text back as
 * the `echo` artifact in several chunks, then COMPLETED. Prefixes change what it does:
 *
 * - `slow: <text>` streams one word every 200 ms (to try streaming, resuming and cancelling);
 * - `input: <question>` asks for more input (INPUT_REQUIRED); the next message on the same
 *   task is echoed and completes it;
 * - `fail: <reason>` ends in FAILED with the reason as the status message;
 * - `reply: <text>` answers with a direct message and creates no task;
 * - `broken: <text>` breaks the executor contract (its first event is an artifact without
 *   parts), which the core answers with InvalidAgentResponseError (-32006) and no task.
 *
 * It answers in `text/plain` only: a message whose `configuration.acceptedOutputModes` lists
 * media types and none that takes `text/plain` is refused with ContentTypeNotSupportedError
 * (-32005), before a task exists.
 *
 * @example Run the demo agent in the task core
 * ```ts
 * import { demoAgent, TaskManager } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * const manager = new TaskManager({ executor: demoAgent });
 * const { task } = await manager.sendMessage("alice", {
 *   message: { messageId: "m1", role: "ROLE_USER", parts: [{ text: "hello" }] },
 * });
 * assert.equal(task?.artifacts?.[0]?.parts.map((p) => p.text).join(""), "hello");
 * await manager.close();
 * ```
 */
export const demoAgent: AgentExecutor = {
  async execute(ctx: RequestContext, events: EventPublisher): Promise<void> {
    const accepted = (ctx.configuration?.acceptedOutputModes ?? []).filter((m) => m.trim() !== "");
    if (accepted.length > 0 && !accepted.some(takesPlainText)) {
      throw new ContentTypeNotSupportedError(
        `Content type not supported: this agent answers in text/plain; acceptedOutputModes ` +
          `lists ${accepted.slice(0, 4).join(", ").slice(0, 200)}`,
      );
    }
    const text = textOf(ctx.message);
    const continuing = ctx.task?.status.state === "TASK_STATE_INPUT_REQUIRED";
    const m = continuing ? null : /^(slow|input|fail|reply|broken):\s*/i.exec(text);
    const mode = m?.[1]?.toLowerCase();
    const rest = m ? text.slice(m[0].length) : text;
    if (mode === "broken") {
      // Deliberately wrong, so that clients can see -32006: an artifact without parts.
      await events.artifact({ artifactId: "echo", parts: [] });
      return;
    }
    if (mode === "reply") {
      await events.reply(rest);
      return;
    }
    await events.status("TASK_STATE_WORKING");
    if (mode === "input") {
      await events.status("TASK_STATE_INPUT_REQUIRED", {
        message: rest || "What should I echo?",
      });
      return;
    }
    if (mode === "fail") {
      await events.status("TASK_STATE_FAILED", { message: rest || "Failed on request" });
      return;
    }
    await streamBack(ctx, events, rest, mode === "slow" ? SLOW_CHUNK_MS : 0);
    await events.status("TASK_STATE_COMPLETED");
  },

  async cancel(_ctx: RequestContext, events: EventPublisher): Promise<void> {
    await events.status("TASK_STATE_CANCELED", { message: "Canceled by the client" });
  },
};

/** Whether a media range of `acceptedOutputModes` takes `text/plain`. */
function takesPlainText(range: string): boolean {
  const type = range.split(";")[0]!.trim().toLowerCase();
  return type === "text/plain" || type === "text/*" || type === "*/*";
}

/** The demo agent's card. */
export const demoAgentCard: AgentCardInput = {
  name: "a2a-capnweb demo agent",
  description:
    "Echoes text back as a streamed artifact. Prefixes: 'slow:', 'input:', 'fail:', 'reply:', 'broken:'.",
  version: "0.1.0",
  capabilities: { streaming: true, pushNotifications: true, extendedAgentCard: true },
  defaultInputModes: ["text/plain"],
  defaultOutputModes: ["text/plain"],
  skills: [{
    id: "echo",
    name: "Echo",
    description: "Streams the text of your message back to you in chunks",
    tags: ["demo", "echo"],
    examples: ["hello world", "slow: one word at a time", "input: what is your name?"],
  }],
  securitySchemes: {
    bearer: { httpAuthSecurityScheme: { scheme: "Bearer" } },
  },
  securityRequirements: [{ schemes: { bearer: { list: [] } } }],
};
