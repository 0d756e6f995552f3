// Spans through the OpenTelemetry API, which stays a no-op until the application registers an
// SDK, and the W3C trace context (`traceparent`, `tracestate`) read from HTTP request headers.

import {
  type Context,
  context,
  createTraceState,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
  type Tracer,
} from "@opentelemetry/api";

/** The instrumentation scope of this module's spans. */
export const TRACER_NAME = "@a2a-capnweb/core";

/** Headers as the bindings hand them over. */
interface HeaderSource {
  get(name: string): string | null;
}

const getter: TextMapGetter<HeaderSource> = {
  get: (carrier, key) => carrier.get(key) ?? undefined,
  // Only the propagator's own fields are read; listing every header is never needed.
  keys: () => [],
};

// W3C Trace Context level 1, section 3.2: version-traceid-parentid-flags, lowercase hex.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * Reads the caller's trace context from request headers. When the application registered a
 * propagator (an SDK does), it decides; otherwise the W3C `traceparent` and `tracestate` are read
 * here, since the API's default propagator is a no-op and a request's trace must not be lost to
 * an application that only registered a tracer provider.
 *
 * @param headers The request's headers.
 * @param base The context to add the remote span to.
 * @returns The context with the caller's span as the remote parent, or `base` when there is none.
 */
export function extractTraceContext(headers: HeaderSource, base: Context = ROOT_CONTEXT): Context {
  if (propagation.fields().length > 0) return propagation.extract(base, headers, getter);
  const header = headers.get("traceparent");
  if (header === null) return base;
  const m = TRACEPARENT.exec(header.trim());
  if (!m) return base;
  const [, version, traceId, spanId, flags, rest] = m;
  // Version ff is invalid; version 00 has exactly four fields; a later version may add more.
  if (version === "ff" || (version === "00" && rest !== undefined)) return base;
  if (/^0+$/.test(traceId!) || /^0+$/.test(spanId!)) return base;
  const state = headers.get("tracestate");
  return trace.setSpanContext(base, {
    traceId: traceId!,
    spanId: spanId!,
    traceFlags: parseInt(flags!, 16) & 1,
    isRemote: true,
    ...(state !== null && state !== "" && { traceState: createTraceState(state.slice(0, 512)) }),
  });
}

/** Attributes of an operation span, by their OpenTelemetry names. */
export const SPAN_ATTRIBUTES = {
  method: "a2a.method",
  binding: "a2a.binding",
  taskId: "a2a.task_id",
  resultCode: "a2a.result_code",
} as const;

/** Starts and ends the span of each A2A operation. */
export class OperationTracer {
  #tracer: Tracer = trace.getTracer(TRACER_NAME);

  /**
   * Starts the span of one operation, under the caller's trace context when the request carried
   * one (HTTP bindings), else under the active context.
   *
   * @param operation The A2A method.
   * @param binding The binding.
   * @param headers The request's headers, when it has some.
   * @returns The span and the context to run the operation in, or undefined when the span is
   *   not recorded (no SDK registered, or not sampled): then nothing more is done for it.
   */
  start(
    operation: string,
    binding: string,
    headers: HeaderSource | undefined,
  ): { span: Span; context: Context } | undefined {
    const active = context.active();
    const parent = headers === undefined ? active : extractTraceContext(headers, active);
    const span = this.#tracer.startSpan(`A2AService/${operation}`, {
      kind: SpanKind.SERVER,
      attributes: {
        "rpc.system": "a2a",
        "rpc.service": "A2AService",
        "rpc.method": operation,
        [SPAN_ATTRIBUTES.method]: operation,
        [SPAN_ATTRIBUTES.binding]: binding,
      },
    }, parent);
    if (!span.isRecording()) return undefined;
    return { span, context: trace.setSpan(parent, span) };
  }

  /**
   * Ends an operation's span with its outcome.
   *
   * @param span The span.
   * @param code 0 for success, else the A2A error code.
   * @param taskId The task the operation was about, when known.
   * @param message The error's message, for the span status.
   */
  end(span: Span, code: number, taskId: string | undefined, message?: string): void {
    span.setAttribute(SPAN_ATTRIBUTES.resultCode, code);
    if (taskId !== undefined) span.setAttribute(SPAN_ATTRIBUTES.taskId, taskId);
    if (code !== 0) {
      span.setStatus({ code: SpanStatusCode.ERROR, ...(message !== undefined && { message }) });
    }
    span.end();
  }
}
