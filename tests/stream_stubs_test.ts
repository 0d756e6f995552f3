// What a stream leaves behind on both ends of a capnweb session: the server duplicates the
// client's sink and must release it when the stream ends, is cancelled or overflows. Counted as
// capnweb's own tests do, with the sessions' import and export counts back to their baseline.

import assert from "node:assert/strict";
import { openRawSession, RecordingSink, type Remote, type Seen } from "./raw_capnweb.ts";
import {
  startServer,
  type TestServer,
  TOKENS,
  userMessage,
  waitFor,
  withDeadline,
} from "./helpers.ts";

type RawSession = ReturnType<typeof openRawSession>;
type Counts = ReturnType<typeof counts>;

/** Both ends' stub counts, as one comparable value. */
function counts(server: TestServer, raw: RawSession) {
  const { rpcImports, rpcExports } = server.handler.stats();
  const { imports, exports } = raw.session.getStats();
  return { server: { imports: rpcImports, exports: rpcExports }, client: { imports, exports } };
}

/** The counts once releases in flight have arrived: the same for 100 ms. */
async function steady(
  server: TestServer,
  raw: RawSession,
): Promise<Counts> {
  let last = JSON.stringify(counts(server, raw));
  for (let same = 0; same < 10;) {
    await new Promise((r) => setTimeout(r, 10));
    const now = JSON.stringify(counts(server, raw));
    same = now === last ? same + 1 : 0;
    last = now;
  }
  return JSON.parse(last);
}

async function backToBaseline(
  server: TestServer,
  raw: RawSession,
  baseline: Counts,
): Promise<void> {
  await waitFor(
    () => JSON.stringify(counts(server, raw)) === JSON.stringify(baseline),
    () => `${JSON.stringify(counts(server, raw))} vs baseline ${JSON.stringify(baseline)}`,
    3000,
  );
}

/**
 * Runs `body` on a raw session authenticated as alice, with the stub counts of both ends once
 * they are steady; closes the session and waits for the server to settle afterwards.
 */
async function withSession(
  batchEvents: boolean,
  body: (
    ctx: { server: TestServer; raw: RawSession; cap: Remote; log: Seen[]; baseline: Counts },
  ) => Promise<void>,
): Promise<void> {
  await using server = startServer();
  const log: Seen[] = [];
  const raw = openRawSession(server.url, log);
  try {
    const cap = await withDeadline<Remote>(
      raw.root.authenticate({ token: TOKENS.alice }, { batchEvents }),
      5000,
      "authenticate",
    );
    const baseline = await steady(server, raw);
    await body({ server, raw, cap, log, baseline });
    cap[Symbol.dispose]();
  } finally {
    await raw.close();
  }
  await server.settled();
}

for (const batchEvents of [false, true]) {
  const mode = batchEvents ? "onEvents" : "onEvent";

  Deno.test(`a stream that ends releases the sink the server kept (${mode})`, async () => {
    await withSession(batchEvents, async ({ server, raw, cap, log, baseline }) => {
      const sink = new RecordingSink("s", log);
      const handle = await withDeadline<Disposable>(
        cap.sendStreamingMessage({ message: userMessage("hello stubs") }, sink),
        5000,
        "sendStreamingMessage",
      );
      await waitFor(() => sink.calls(log).some((s) => s.what === "onEnd"));
      handle[Symbol.dispose]();
      await backToBaseline(server, raw, baseline);
    });
  });

  Deno.test(`a cancelled stream releases the sink the server kept (${mode})`, async () => {
    await withSession(batchEvents, async ({ server, raw, cap, log, baseline }) => {
      const sink = new RecordingSink("s", log);
      const handle = await withDeadline<Disposable & { cancel(): Promise<void> }>(
        cap.sendStreamingMessage({ message: userMessage("slow: a b c d e f g h i j") }, sink),
        5000,
        "sendStreamingMessage",
      );
      await waitFor(() => sink.events.length >= 2);
      await withDeadline(handle.cancel(), 5000, "cancel()");
      handle[Symbol.dispose]();
      await backToBaseline(server, raw, baseline);
      assert.ok(!sink.calls(log).some((s) => s.what === "onEnd" || s.what === "onError"));
    });
  });

  Deno.test(`a consumer that never answers still learns of its overflow (${mode})`, async () => {
    await using server = startServer({ limits: { subscriberBufferLimit: 4, streamCredit: 8 } });
    const log: Seen[] = [];
    const raw = openRawSession(server.url, log);
    try {
      const cap = raw.root.authenticate({ token: TOKENS.alice }, { batchEvents });
      // Never resolves an event call: with the old rule (onError after the calls in flight
      // resolve) it would never hear of the overflow.
      const sink = new RecordingSink("held", log, { hold: true });
      using _handle = await withDeadline<Disposable>(
        cap.sendStreamingMessage({ message: userMessage("x".repeat(2000)) }, sink),
        5000,
        "sendStreamingMessage",
      );
      await withDeadline(
        (async () => {
          while (!sink.calls(log).some((s) => s.what === "onError")) {
            await new Promise((r) => setTimeout(r, 10));
          }
        })(),
        5000,
        "onError(-31002) to a consumer that holds its calls",
      );
      const calls = sink.calls(log);
      const error = calls.at(-1)!;
      assert.equal(error.what, "onError");
      assert.equal(error.code, -31002);
      assert.equal(error.reason, "STREAM_OVERFLOW");
      // lastSeq is the last event handed to the sink: every event up to it arrived, before it.
      const seqs = sink.events.map((e) => e.seq);
      assert.equal(error.lastSeq, seqs.at(-1));
      assert.deepEqual(seqs, seqs.map((_, i) => i + 1));
      assert.match(error.message!, /resume with afterSeq \d+$/);
      assert.equal(calls.filter((s) => s.what === "onError" || s.what === "onEnd").length, 1);
    } finally {
      await raw.close();
    }
    await server.settled();
  });
}
