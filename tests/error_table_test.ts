// Every row of docs/BINDING.md's error table, provoked against the demo server (`server.ts` as a
// process, with the flags its usage lists for this) over capnweb and over JSON-RPC, checking the
// code, the message and the ErrorInfo that reach the client. -31003 is provoked by a shutdown, in
// tests/shutdown_test.ts.

import assert from "node:assert/strict";
import { openRawSession, RecordingSink, type Remote, type Seen } from "./raw_capnweb.ts";
import { startServerProcess } from "./server_process.ts";
import { TOKENS, userMessage, withDeadline } from "./helpers.ts";

const REQUIRED = "urn:example:required-extension";
const FLAGS = [
  "--stream-buffer",
  "4",
  "--no-push",
  "--no-extended-card",
  "--require-extension",
  REQUIRED,
  "--allowed-origins",
  "https://app.example.com",
];

/** An error as it arrives: capnweb's Error with own `code` and `data`, or a JSON-RPC error. */
interface WireError {
  code?: number;
  message?: string;
  data?: Array<Record<string, unknown>>;
  lastSeq?: number;
}

/** Checks code, message, and the ErrorInfo (reason, domain, metadata) of an error. */
function assertError(
  error: WireError | undefined,
  code: number,
  reason: string,
  message: RegExp,
  metadata?: Record<string, string>,
): void {
  assert.ok(error, `expected error ${code}`);
  assert.equal(error.code, code, JSON.stringify(error));
  assert.match(error.message ?? "", message);
  const info = error.data?.find((d) => d["@type"] === "type.googleapis.com/google.rpc.ErrorInfo");
  assert.ok(info, `ErrorInfo in ${JSON.stringify(error.data)}`);
  assert.equal(info.reason, reason);
  assert.equal(info.domain, "a2a-protocol.org");
  if (metadata) assert.deepEqual(info.metadata, metadata);
}

/** The field violations of an error's BadRequest detail. */
function badRequestFields(error: WireError | undefined): string[] {
  const bad = error?.data?.find((d) => d["@type"] === "type.googleapis.com/google.rpc.BadRequest");
  return ((bad?.fieldViolations ?? []) as { field: string }[]).map((v) => v.field);
}

/** A capnweb call that must fail: its error. */
async function refused(call: PromiseLike<unknown>, what: string): Promise<WireError> {
  const outcome = await withDeadline(
    Promise.resolve(call).then(() => undefined, (e: WireError) => e),
    10_000,
    what,
  );
  assert.ok(outcome, `${what} succeeded`);
  return outcome;
}

/** Posts a JSON-RPC request; resolves with the HTTP status and the error member. */
async function jsonRpc(
  url: string,
  method: string,
  params: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; error: WireError | undefined }> {
  const res = await withDeadline(
    fetch(`${url}/a2a/jsonrpc`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${TOKENS.alice}`,
        "a2a-version": "1.0",
        "a2a-extensions": REQUIRED,
        ...headers,
      },
      body: typeof params === "string"
        ? params
        : JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    }),
    10_000,
    `JSON-RPC ${method}`,
  );
  const text = await withDeadline(res.text(), 10_000, `the body of JSON-RPC ${method}`);
  // A streaming method answers in SSE: the error is the first event's data.
  const json = text.startsWith("data:") || text.startsWith(":")
    ? JSON.parse(/^data: ?(.*)$/m.exec(text)![1]!)
    : JSON.parse(text);
  return { status: res.status, error: json.error };
}

Deno.test("every row of the error table is reachable on the demo server, over both bindings", async (t) => {
  await using server = await startServerProcess({ memory: true }, {}, 0, FLAGS);
  const url = server.url;
  const log: Seen[] = [];
  const raw = openRawSession(url, log);
  try {
    const cap: Remote = raw.root.authenticate(
      { token: TOKENS.alice },
      { version: "1.0", extensions: [REQUIRED] },
    );
    const done = await withDeadline<{ task: { id: string } }>(
      cap.sendMessage({ message: userMessage("done") }),
      10_000,
      "sendMessage",
    );
    const taskId = done.task.id;

    await t.step("-32001 TaskNotFoundError, with metadata taskId", async () => {
      const e = await refused(cap.getTask({ id: "nope" }), "getTask");
      assertError(e, -32001, "TASK_NOT_FOUND", /^Task not found: nope$/, { taskId: "nope" });
      const j = await jsonRpc(url, "GetTask", { id: "nope" });
      assertError(j.error, -32001, "TASK_NOT_FOUND", /^Task not found: nope$/, { taskId: "nope" });
    });

    await t.step("-32002 TaskNotCancelableError: cancelTask of a completed task", async () => {
      const e = await refused(cap.cancelTask({ id: taskId }), "cancelTask");
      assertError(e, -32002, "TASK_NOT_CANCELABLE", /cancel/i, { taskId });
      const j = await jsonRpc(url, "CancelTask", { id: taskId });
      assertError(j.error, -32002, "TASK_NOT_CANCELABLE", /cancel/i, { taskId });
    });

    await t.step("-32003 PushNotificationNotSupportedError: push with --no-push", async () => {
      const config = { taskId, url: "https://93.184.216.34/hook" };
      const e = await refused(cap.createTaskPushNotificationConfig(config), "createTPNC");
      const message = /^This agent does not support push notifications$/;
      assertError(e, -32003, "PUSH_NOTIFICATION_NOT_SUPPORTED", message);
      const j = await jsonRpc(url, "CreateTaskPushNotificationConfig", config);
      assertError(j.error, -32003, "PUSH_NOTIFICATION_NOT_SUPPORTED", message);
    });

    await t.step("-32004 UnsupportedOperationError: a message to a terminal task", async () => {
      const message = userMessage("more", { taskId });
      const e = await refused(cap.sendMessage({ message }), "sendMessage");
      assertError(e, -32004, "UNSUPPORTED_OPERATION", /terminal|completed/i);
      const j = await jsonRpc(url, "SendMessage", { message: userMessage("more", { taskId }) });
      assertError(j.error, -32004, "UNSUPPORTED_OPERATION", /terminal|completed/i);
    });

    await t.step(
      "-32005 ContentTypeNotSupportedError: acceptedOutputModes without text",
      async () => {
        const request = () => ({
          message: userMessage("a picture, please"),
          configuration: { acceptedOutputModes: ["image/png"] },
        });
        const text = /^Content type not supported: this agent answers in text\/plain; .*image\/png/;
        const e = await refused(cap.sendMessage(request()), "sendMessage");
        assertError(e, -32005, "CONTENT_TYPE_NOT_SUPPORTED", text);
        const j = await jsonRpc(url, "SendMessage", request());
        assertError(j.error, -32005, "CONTENT_TYPE_NOT_SUPPORTED", text);
      },
    );

    await t.step("-32006 InvalidAgentResponseError: the demo's broken: prefix", async () => {
      const e = await refused(
        cap.sendMessage({ message: userMessage("broken: on purpose") }),
        "sendMessage",
      );
      assertError(
        e,
        -32006,
        "INVALID_AGENT_RESPONSE",
        /^An artifact needs an artifactId and at least one part$/,
      );
      const j = await jsonRpc(url, "SendMessage", { message: userMessage("broken: again") });
      assertError(
        j.error,
        -32006,
        "INVALID_AGENT_RESPONSE",
        /^An artifact needs an artifactId and at least one part$/,
      );
    });

    await t.step("-32007 ExtendedAgentCardNotConfiguredError with --no-extended-card", async () => {
      const e = await refused(cap.getExtendedAgentCard({}), "getExtendedAgentCard");
      const text = /^Extended agent card is not configured$/;
      assertError(e, -32007, "EXTENDED_AGENT_CARD_NOT_CONFIGURED", text);
      const j = await jsonRpc(url, "GetExtendedAgentCard", {});
      assertError(j.error, -32007, "EXTENDED_AGENT_CARD_NOT_CONFIGURED", text);
    });

    await t.step("-32008 ExtensionSupportRequiredError with --require-extension", async () => {
      const text = new RegExp(`^This agent requires the extension ${REQUIRED}`);
      const e = await refused(
        raw.root.authenticate({ token: TOKENS.alice }, { version: "1.0" }),
        "authenticate",
      );
      assertError(e, -32008, "EXTENSION_SUPPORT_REQUIRED", text);
      const j = await jsonRpc(url, "GetTask", { id: taskId }, { "a2a-extensions": "" });
      assertError(j.error, -32008, "EXTENSION_SUPPORT_REQUIRED", text);
    });

    await t.step("-32009 VersionNotSupportedError, an explicit 0.3 included", async () => {
      const e = await refused(
        raw.root.authenticate({ token: TOKENS.alice }, { version: "0.3", extensions: [REQUIRED] }),
        "authenticate",
      );
      const text = /^A2A version not supported: 0\.3/;
      assertError(e, -32009, "VERSION_NOT_SUPPORTED", text, { version: "0.3" });
      // An explicit 0.3 is refused like a missing header, which means 0.3 (A2A 3.6.2).
      for (const headers of [{ "a2a-version": "0.3" }, { "a2a-version": "" }]) {
        const j = await jsonRpc(url, "GetTask", { id: taskId }, headers);
        assertError(j.error, -32009, "VERSION_NOT_SUPPORTED", text, { version: "0.3" });
      }
      const two = await jsonRpc(url, "GetTask", { id: taskId }, { "a2a-version": "2.0" });
      assertError(two.error, -32009, "VERSION_NOT_SUPPORTED", /2\.0/, { version: "2.0" });
    });

    await t.step("-32600 invalid request: a message over the 4 MiB limit", async () => {
      const big = "x".repeat(5 * 1024 * 1024);
      const e = await refused(cap.sendMessage({ message: userMessage(big) }), "sendMessage");
      const text = /^Message is larger than the 4194304-byte limit: \d+ bytes$/;
      assertError(e, -32600, "INVALID_REQUEST", text);
      const j = await jsonRpc(url, "SendMessage", JSON.stringify({ big }));
      assert.equal(j.status, 413);
      assertError(j.error, -32600, "INVALID_REQUEST", /^Request body is larger than 4194304/);
      // The session goes on.
      assert.equal((await withDeadline<{ id: string }>(cap.getTask({ id: taskId }))).id, taskId);
    });

    await t.step("-32602 invalid params, with BadRequest field violations", async () => {
      const message = { messageId: "m", role: "ROLE_USER", parts: [] };
      const e = await refused(cap.sendMessage({ message }), "sendMessage");
      assertError(e, -32602, "INVALID_PARAMS", /^Invalid params: message\.parts/);
      assert.deepEqual(badRequestFields(e), ["message.parts"]);
      const j = await jsonRpc(url, "SendMessage", { message });
      assertError(j.error, -32602, "INVALID_PARAMS", /^Invalid params: message\.parts/);
      assert.deepEqual(badRequestFields(j.error), ["message.parts"]);
      // Malformed credentials name the member at fault (docs/BINDING.md section 4.1).
      const token = await refused(
        raw.root.authenticate({ token: 42 }, { extensions: [REQUIRED] }),
        "authenticate",
      );
      assertError(token, -32602, "INVALID_PARAMS", /^Invalid params: ticket and token/);
      assert.deepEqual(badRequestFields(token), ["token"]);
      const both = await refused(
        raw.root.authenticate({ token: "a", ticket: "b" }, { extensions: [REQUIRED] }),
        "authenticate",
      );
      assert.deepEqual(badRequestFields(both), ["(params)"]);
      const version = await refused(
        raw.root.authenticate({ token: TOKENS.alice }, { version: 1 }),
        "authenticate",
      );
      assert.deepEqual(badRequestFields(version), ["options.version"]);
    });

    await t.step("-31001 AuthenticationError: a refused token", async () => {
      const e = await refused(
        raw.root.authenticate({ token: "wrong" }, { extensions: [REQUIRED] }),
        "authenticate",
      );
      assertError(e, -31001, "UNAUTHENTICATED", /token/i);
      const missing = await refused(
        raw.root.authenticate({}, { extensions: [REQUIRED] }),
        "authenticate",
      );
      assertError(missing, -31001, "UNAUTHENTICATED", /^Missing credentials/);
      const j = await jsonRpc(url, "GetTask", { id: taskId }, { authorization: "Bearer wrong" });
      assert.equal(j.status, 401);
      assertError(j.error, -31001, "UNAUTHENTICATED", /token/i);
    });

    await t.step(
      "-31002 StreamOverflowError with --stream-buffer 4, lastSeq included",
      async () => {
        // The sink never answers: the stream's window fills, then its small buffer overflows.
        const sink = new RecordingSink("held", log, { hold: true });
        using _handle = await withDeadline<Disposable>(
          cap.sendStreamingMessage({ message: userMessage("y".repeat(2000)) }, sink),
          10_000,
          "sendStreamingMessage",
        );
        await withDeadline(
          (async () => {
            while (!sink.calls(log).some((s) => s.what === "onError")) {
              await new Promise((r) => setTimeout(r, 10));
            }
          })(),
          10_000,
          "onError(-31002)",
        );
        const error = sink.calls(log).at(-1)!;
        const lastSeq = sink.events.at(-1)!.seq;
        assert.equal(error.code, -31002);
        assert.equal(error.reason, "STREAM_OVERFLOW");
        assert.equal(error.lastSeq, lastSeq);
        assert.match(error.message!, new RegExp(`resume with afterSeq ${lastSeq}$`));
      },
    );

    await t.step("-31005 QuotaExceededError: one stream past 100 of one user", async () => {
      const paused = await withDeadline<{ task: { id: string } }>(
        cap.sendMessage({ message: userMessage("input: stay open") }),
      );
      const handles: Disposable[] = [];
      try {
        for (let i = 0; i < 100; i++) {
          const sink = new RecordingSink(`quota${i}`, []);
          handles.push(
            await withDeadline<Disposable>(
              cap.subscribeToTask({ id: paused.task.id }, sink),
            ),
          );
        }
        const e = await refused(
          cap.subscribeToTask({ id: paused.task.id }, new RecordingSink("over", [])),
          "subscribeToTask",
        );
        assertError(e, -31005, "QUOTA_EXCEEDED", /stream/i);
        // The quota counts every binding's streams together.
        const j = await jsonRpc(url, "SubscribeToTask", { id: paused.task.id });
        assertError(j.error, -31005, "QUOTA_EXCEEDED", /stream/i);
      } finally {
        for (const h of handles) h[Symbol.dispose]();
      }
    });

    await t.step("403 from the ticket endpoint for an Origin not allowed", async () => {
      const post = (origin: string) =>
        withDeadline(
          fetch(`${url}/a2a/auth`, {
            method: "POST",
            headers: { authorization: `Bearer ${TOKENS.alice}`, origin },
          }),
          10_000,
          "POST /a2a/auth",
        );
      const refused = await post("https://evil.example");
      assert.equal(refused.status, 403);
      assert.deepEqual(await refused.json(), {
        error: { status: 403, message: "Origin not allowed: https://evil.example" },
      });
      const allowed = await post("https://app.example.com");
      assert.equal(allowed.status, 200);
      assert.equal(typeof (await allowed.json()).ticket, "string");
    });

    // Last: it blocks this address for every later login.
    await t.step("-31006 RateLimitedError: failed logins past the address's burst", async () => {
      let j;
      for (let i = 0; i < 12; i++) {
        j = await jsonRpc(url, "GetTask", { id: taskId }, { authorization: `Bearer bad${i}` });
      }
      assert.equal(j!.status, 429);
      assertError(j!.error, -31006, "RATE_LIMITED", /[Tt]oo many failed/);
      const e = await refused(
        raw.root.authenticate({ token: TOKENS.alice }, { extensions: [REQUIRED] }),
        "authenticate",
      );
      assertError(e, -31006, "RATE_LIMITED", /[Tt]oo many failed/);
    });

    cap[Symbol.dispose]();
  } finally {
    await raw.close();
  }
});
