// Shared test fixtures: a real server on 127.0.0.1 port 0, and polling for counts to settle.

import assert from "node:assert/strict";
import { StaticTokenVerifier } from "../mod.ts";
import { demoAgent, demoAgentCard } from "../src/demo/agent.ts";
import type { HandlerStats } from "../src/http/handler.ts";
import type { StreamEvent } from "../client.ts";
import type { Message } from "../src/types/core.ts";
import { type A2AServer, serve, type ServeOptions } from "../server.ts";

/** The tokens every test server accepts. */
export const TOKENS = { alice: "token-alice", bob: "token-bob" } as const;

/** A server for one test, which checks on disposal that nothing leaked. */
export interface TestServer extends A2AServer, AsyncDisposable {
  /** The stats right after start. */
  readonly baseline: HandlerStats;
  /** Waits until sessions, resources, sockets and subscribers are back to the baseline. */
  settled(): Promise<void>;
}

/**
 * Starts the demo agent (or the given executor) on 127.0.0.1, port 0.
 *
 * @param options Overrides of the serve options; `noExtendedCard` leaves the extended card out.
 * @returns The server; `await using` shuts it down after checking for leaks.
 */
export function startServer(
  options: Partial<ServeOptions> & { noExtendedCard?: boolean } = {},
): TestServer {
  const { noExtendedCard, ...rest } = options;
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    agentCard: demoAgentCard,
    executor: demoAgent,
    verifier: StaticTokenVerifier.fromList(`alice=${TOKENS.alice},bob=${TOKENS.bob}`),
    ...(!noExtendedCard && { extendedAgentCard: { ...demoAgentCard, description: "extended" } }),
    ...rest,
  });
  const baseline = server.handler.stats();
  const settled = async () => {
    await waitFor(() => {
      const s = server.handler.stats();
      return s.sessions === baseline.sessions && s.resources === baseline.resources &&
        s.sockets === baseline.sockets && s.subscribers === baseline.subscribers;
    }, () => JSON.stringify(server.handler.stats()));
  };
  return Object.assign(server, {
    baseline,
    settled,
    async [Symbol.asyncDispose]() {
      try {
        await settled();
      } finally {
        await server.shutdown();
      }
    },
  });
}

/**
 * Polls a condition until it holds or the time runs out (then fails the test).
 *
 * @param cond The condition.
 * @param describe Describes the state when the condition never held.
 * @param timeoutMs How long to wait.
 */
export async function waitFor(
  cond: () => boolean,
  describe: () => string = () => "",
  timeoutMs = 5000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`Condition not met in ${timeoutMs} ms ${describe()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Builds a user text message.
 *
 * @param text The text.
 * @param extra Other message fields.
 * @returns The message.
 */
export function userMessage(text: string, extra: Partial<Message> = {}): Message {
  return { messageId: crypto.randomUUID(), role: "ROLE_USER", parts: [{ text }], ...extra };
}

/**
 * Posts one raw JSON-RPC request to a server as alice (or another user's token), for tests that
 * check what the wire answers: status, headers and body.
 *
 * @param url The server's base URL.
 * @param method The A2A method, e.g. `SendMessage`.
 * @param params The params object.
 * @param token The bearer token (alice's by default).
 * @returns The HTTP response; read its body.
 */
export function postJsonRpc(
  url: string,
  method: string,
  params: unknown,
  token: string = TOKENS.alice,
): Promise<Response> {
  return fetch(`${url}/a2a/jsonrpc`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${token}`,
      "a2a-version": "1.0",
    },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });
}

/** How long one awaited network step of a test may take by default before the test fails. */
export const STEP_MS = 15_000;

/**
 * Fails with an error naming `what` when `promise` has not settled within `ms`: `deno test` has
 * no per-test timeout, so a regression that leaves a network call waiting would otherwise hang
 * the whole run instead of failing one test by name.
 *
 * @param promise What the test awaits.
 * @param ms The deadline in milliseconds.
 * @param what What is awaited, for the failure message.
 * @returns What `promise` resolves to.
 */
export async function withDeadline<T>(
  promise: PromiseLike<T>,
  ms: number = STEP_MS,
  what = "a network step",
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Collects the events of a stream, failing when it does not end within `ms`.
 *
 * @param stream The stream.
 * @param ms The deadline for the whole stream in milliseconds.
 * @param what What is read, for the failure message.
 * @param each Called with each event as it arrives (it may break off the stream by throwing).
 * @returns The events.
 */
export function collectWithin<T>(
  stream: AsyncIterable<T>,
  ms: number = STEP_MS,
  what = "a stream",
  each?: (event: T, events: T[]) => unknown,
): Promise<T[]> {
  return withDeadline(
    (async () => {
      const events: T[] = [];
      for await (const e of stream) {
        events.push(e);
        await each?.(e, events);
      }
      return events;
    })(),
    ms,
    what,
  );
}

/**
 * Reads a stream with a deadline on each event: a stream that stops short of its end fails the
 * test by name instead of hanging it.
 *
 * @param stream The stream.
 * @param ms How long to wait for each event (and for the end).
 * @param what What is read, for the failure message.
 * @returns The same events.
 */
export async function* within<T>(
  stream: AsyncIterable<T>,
  ms: number = STEP_MS,
  what = "the next event of a stream",
): AsyncGenerator<T, void, undefined> {
  const it = stream[Symbol.asyncIterator]();
  let finished = false;
  try {
    for (;;) {
      const r = await withDeadline(it.next(), ms, what);
      if (r.done) {
        finished = true;
        return;
      }
      yield r.value;
    }
  } finally {
    if (!finished) await withDeadline(Promise.resolve(it.return?.()), ms, `closing ${what}`);
  }
}

/**
 * Words `w0 w1 …`, which the demo agent streams back one artifact chunk each.
 *
 * @param n How many.
 * @returns The text.
 */
export function words(n: number): string {
  return Array.from({ length: n }, (_, i) => `w${i}`).join(" ");
}

/**
 * Checks a stream's events: contiguous seqs, none twice.
 *
 * @param events The events, as delivered.
 * @returns The text of their artifact chunks, joined.
 */
export function checkStream(events: StreamEvent[]): string {
  for (let i = 1; i < events.length; i++) {
    assert.equal(events[i]!.seq, events[i - 1]!.seq + 1, `seq after ${events[i - 1]!.seq}`);
  }
  return events.flatMap((e) => e.artifactUpdate?.artifact.parts ?? [])
    .map((p) => ("text" in p ? p.text : "")).join("");
}
