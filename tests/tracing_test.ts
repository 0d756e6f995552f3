// Tracing over real sockets, with a small recording tracer provider registered in the test: one
// span per operation, parented by the request's W3C traceparent, and the agent's spans under it.

import assert from "node:assert/strict";
import { AsyncLocalStorage } from "node:async_hooks";
import {
  type Context,
  context,
  type ContextManager,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  type SpanOptions,
  type SpanStatus,
  trace,
  type Tracer,
  type TracerProvider,
} from "@opentelemetry/api";
import { A2AClient } from "../client.ts";
import { type AgentExecutor, TaskNotFoundError } from "../mod.ts";
import { postJsonRpc, startServer, TOKENS, userMessage } from "./helpers.ts";

/** A span as the test provider records it. */
interface Recorded {
  name: string;
  context: SpanContext;
  parentSpanId: string | undefined;
  attributes: Record<string, unknown>;
  status: SpanStatus | undefined;
  ended: boolean;
}

function hex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/** Records every span; implements just what the API asks of a provider. */
class RecordingProvider implements TracerProvider {
  readonly spans: Recorded[] = [];

  getTracer(): Tracer {
    const spans = this.spans;
    const startSpan = (
      name: string,
      options: SpanOptions = {},
      ctx: Context = context.active(),
    ) => {
      const parent = trace.getSpanContext(ctx);
      const record: Recorded = {
        name,
        context: { traceId: parent?.traceId ?? hex(16), spanId: hex(8), traceFlags: 1 },
        parentSpanId: parent?.spanId,
        attributes: { ...options.attributes },
        status: undefined,
        ended: false,
      };
      spans.push(record);
      const span: Span = {
        spanContext: () => record.context,
        setAttribute(key, value) {
          record.attributes[key] = value;
          return span;
        },
        setAttributes(attributes) {
          Object.assign(record.attributes, attributes);
          return span;
        },
        addEvent: () => span,
        addLink: () => span,
        addLinks: () => span,
        setStatus(status) {
          record.status = status;
          return span;
        },
        updateName(n) {
          record.name = n;
          return span;
        },
        end() {
          record.ended = true;
        },
        isRecording: () => !record.ended,
        recordException() {},
      };
      return span;
    };
    const startActiveSpan = ((name: string, ...rest: unknown[]) => {
      const fn = rest.at(-1) as (span: Span) => unknown;
      const span = startSpan(name);
      return context.with(trace.setSpan(context.active(), span), fn, undefined, span);
    }) as Tracer["startActiveSpan"];
    return { startSpan, startActiveSpan };
  }
}

/** `context.active()` across awaits, as an SDK's AsyncLocalStorage context manager gives it. */
class AlsContextManager implements ContextManager {
  #storage = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.#storage.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.#storage.run(ctx, () => fn.call(thisArg, ...args));
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.#storage.disable();
    return this;
  }
}

/** Registers the provider (and optionally the context manager) for one test. */
function recording(withContextManager = false): RecordingProvider & Disposable {
  const provider = new RecordingProvider();
  trace.setGlobalTracerProvider(provider);
  if (withContextManager) context.setGlobalContextManager(new AlsContextManager());
  return Object.assign(provider, {
    [Symbol.dispose]() {
      trace.disable();
      context.disable();
    },
  });
}

/** An agent that opens a span of its own under the request's context, then completes. */
const tracedAgent: AgentExecutor = {
  async execute(ctx, events) {
    const tracer = trace.getTracer("test-agent");
    tracer.startSpan("agent.explicit", {}, ctx.traceContext).end();
    await events.status("TASK_STATE_WORKING");
    // After an await inside the core: only a context manager carries the active context here.
    tracer.startSpan("agent.active").end();
    await events.status("TASK_STATE_COMPLETED");
  },
};

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID = "00f067aa0ba902b7";

Deno.test("a JSON-RPC traceparent parents the operation span, and the agent's span nests under it", async () => {
  using provider = recording();
  await using server = startServer({ executor: tracedAgent });
  const res = await fetch(`${server.url}/a2a/jsonrpc`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${TOKENS.alice}`,
      "a2a-version": "1.0",
      traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`,
      tracestate: "vendor=value",
    },
    body: JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "SendMessage",
      params: { message: userMessage("traced") },
    }),
    signal: AbortSignal.timeout(5000),
  });
  const body = await res.json();
  const taskId = body.result.task.id;
  const op = provider.spans.find((s) => s.name === "A2AService/SendMessage");
  assert.ok(op, provider.spans.map((s) => s.name).join());
  assert.equal(op.context.traceId, TRACE_ID);
  assert.equal(op.parentSpanId, PARENT_ID);
  assert.ok(op.ended);
  assert.equal(op.attributes["a2a.method"], "SendMessage");
  assert.equal(op.attributes["a2a.binding"], "jsonrpc");
  assert.equal(op.attributes["a2a.task_id"], taskId);
  assert.equal(op.attributes["a2a.result_code"], 0);
  const agent = provider.spans.find((s) => s.name === "agent.explicit");
  assert.ok(agent);
  assert.equal(agent.context.traceId, TRACE_ID);
  assert.equal(agent.parentSpanId, op.context.spanId);
});

Deno.test("a REST traceparent parents its span, and with a context manager context.active() nests too", async () => {
  using provider = recording(true);
  await using server = startServer({ executor: tracedAgent });
  const res = await fetch(`${server.url}/a2a/rest/message:send`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${TOKENS.alice}`,
      "a2a-version": "1.0",
      traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`,
    },
    body: JSON.stringify({ message: userMessage("traced") }),
    signal: AbortSignal.timeout(5000),
  });
  assert.equal(res.status, 200);
  await res.body?.cancel();
  const op = provider.spans.find((s) => s.name === "A2AService/SendMessage");
  assert.ok(op);
  assert.equal(op.attributes["a2a.binding"], "rest");
  assert.equal(op.parentSpanId, PARENT_ID);
  const active = provider.spans.find((s) => s.name === "agent.active");
  assert.ok(active);
  assert.equal(active.parentSpanId, op.context.spanId);
  assert.equal(active.context.traceId, TRACE_ID);
});

Deno.test("a malformed traceparent is ignored: the operation starts a trace of its own", async () => {
  using provider = recording();
  await using server = startServer();
  for (const header of [`00-${"0".repeat(32)}-${PARENT_ID}-01`, "not a traceparent"]) {
    const res = await fetch(`${server.url}/a2a/jsonrpc`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${TOKENS.alice}`,
        "a2a-version": "1.0",
        traceparent: header,
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ListTasks", params: {} }),
      signal: AbortSignal.timeout(5000),
    });
    await res.body?.cancel();
  }
  const ops = provider.spans.filter((s) => s.name === "A2AService/ListTasks");
  assert.equal(ops.length, 2);
  for (const op of ops) assert.equal(op.parentSpanId, undefined);
});

Deno.test("capnweb operations get spans with their binding and error code", async () => {
  using provider = recording();
  await using server = startServer();
  await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
  await assert.rejects(client.getTask({ id: "missing" }), TaskNotFoundError);
  const op = provider.spans.find((s) => s.name === "A2AService/GetTask");
  assert.ok(op);
  assert.equal(op.attributes["a2a.binding"], "capnweb");
  assert.equal(op.attributes["a2a.result_code"], -32001);
  assert.equal(op.attributes["a2a.task_id"], "missing");
  assert.equal(op.status?.code, 2); // SpanStatusCode.ERROR
});

Deno.test("tracing: false starts no spans", async () => {
  using provider = recording();
  await using server = startServer({ tracing: false });
  const res = await postJsonRpc(server.url, "ListTasks", {});
  await res.body?.cancel();
  assert.deepEqual(provider.spans, []);
});
