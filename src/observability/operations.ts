// The observer the server hands the RequestHandler: it times, traces, counts and logs each
// operation, each part only when it is switched on, and the whole of it in one place.

import { context } from "@opentelemetry/api";
import { A2AError } from "../errors/errors.ts";
import type { TraceContext } from "../tasks/executor.ts";
import type { OperationObserver } from "../tasks/observer.ts";
import type { CallContext } from "../tasks/request_handler.ts";
import { Subscription } from "../tasks/subscription.ts";
import { accessLogEnabled, type AccessRecord, logOperation } from "./access_log.ts";
import type { HandlerMetrics } from "./metrics.ts";
import type { OperationTracer } from "./tracing.ts";

/** The JSON-RPC code of an error that is not an A2A error: what the client gets for it. */
const INTERNAL_ERROR = -32603;

/** Options of {@link OperationInstruments}. */
export interface OperationInstrumentsOptions {
  /** Counts and times the operations. */
  metrics?: HandlerMetrics;
  /** Traces them. */
  tracer?: OperationTracer;
  /** Writes access log lines. */
  accessLog?: boolean;
  /**
   * The access record of each HTTP request in progress, by its headers object: an operation that
   * came in one fills it in for the request's line instead of writing a line of its own.
   */
  records?: WeakMap<object, AccessRecord>;
}

/**
 * The task an operation was about, from its result or its parameters (not yet validated, so
 * only strings, cut short).
 */
function taskIdOf(params: unknown, result: unknown): string | undefined {
  const r = result as { id?: unknown; status?: unknown; task?: { id?: unknown } } | undefined;
  if (r !== undefined && r !== null && typeof r === "object") {
    if (typeof r.task?.id === "string") return r.task.id;
    if (r.status !== undefined && typeof r.id === "string") return r.id;
  }
  if (typeof params !== "object" || params === null) return undefined;
  const p = params as { id?: unknown; taskId?: unknown; message?: { taskId?: unknown } };
  const id = typeof p.taskId === "string"
    ? p.taskId
    : typeof p.message?.taskId === "string"
    ? p.message.taskId
    : typeof p.id === "string"
    ? p.id
    : undefined;
  return id === undefined || id === "" ? undefined : id.slice(0, 100);
}

/** The code of QuotaExceededError, whose message says which quota. */
const QUOTA_EXCEEDED = -31005;

/**
 * Names the limit behind a QuotaExceededError from its message ("Too many open streams: ...").
 *
 * @param message The error's message.
 * @returns The limit's name for `a2a_limits_hit_total`.
 */
export function limitOfQuota(message: string): string {
  if (message.startsWith("Too many open streams")) return "streams_per_user";
  if (message.startsWith("Too many unfinished tasks")) return "unfinished_tasks_per_user";
  if (message.startsWith("Too many push configs")) return "push_configs_per_user";
  if (message.startsWith("Too many open connections")) return "connections_per_address";
  if (message.startsWith("Too many calls in flight")) return "calls_in_flight";
  return "quota";
}

/** The result code of an outcome: 0, the A2A code, or -32603 for anything else. */
function codeOf(err: unknown): number {
  return err instanceof A2AError ? err.code : INTERNAL_ERROR;
}

/** Metrics, tracing and the access log of the A2A operations, behind one observer. */
export class OperationInstruments implements OperationObserver {
  #metrics: HandlerMetrics | undefined;
  #tracer: OperationTracer | undefined;
  #accessLog: boolean;
  #records: WeakMap<object, AccessRecord> | undefined;

  /**
   * Creates the observer.
   *
   * @param options What is switched on.
   */
  constructor(options: OperationInstrumentsOptions) {
    this.#metrics = options.metrics;
    this.#tracer = options.tracer;
    this.#accessLog = options.accessLog ?? false;
    this.#records = options.records;
  }

  /**
   * Runs one operation under observation.
   *
   * @param operation The A2A method.
   * @param call The caller.
   * @param params The raw parameters.
   * @param run Performs the operation.
   * @returns What `run` returns.
   */
  async observe<T>(
    operation: string,
    call: CallContext,
    params: unknown,
    run: (traceContext?: TraceContext) => Promise<T>,
  ): Promise<T> {
    const metrics = this.#metrics;
    const logging = this.#accessLog && accessLogEnabled();
    const traced = this.#tracer?.start(operation, call.binding ?? "unknown", call.headers);
    // Nothing on: the operation runs as if unobserved.
    if (metrics === undefined && !logging && traced === undefined) return await run();
    const start = performance.now();
    let code = 0;
    let result: T | undefined;
    let message: string | undefined;
    try {
      result = traced === undefined
        ? await run()
        : await context.with(traced.context, run, undefined, traced.context);
      return result;
    } catch (err) {
      code = codeOf(err);
      message = err instanceof A2AError ? err.message : "Internal error";
      throw err;
    } finally {
      const ms = performance.now() - start;
      const binding = call.binding ?? "unknown";
      const taskId = taskIdOf(params, result);
      if (metrics !== undefined) {
        metrics.call(binding, operation, code, ms / 1000);
        if (code === QUOTA_EXCEEDED) metrics.limitHit(limitOfQuota(message!));
        if (result instanceof Subscription) {
          const events = metrics.streamEvents(binding);
          result.onTake(() => events.inc());
          result.whenClosed(metrics.streamOpened(binding));
        }
      }
      if (traced !== undefined) this.#tracer!.end(traced.span, code, taskId, message);
      if (logging) {
        const record = call.headers === undefined ? undefined : this.#records?.get(call.headers);
        if (record !== undefined) {
          record.operation = operation;
          record.userId = call.userId;
          if (taskId !== undefined) record.taskId = taskId;
          record.code = code;
        } else logOperation(binding, operation, call.userId, taskId, code, ms);
      }
    }
  }
}
