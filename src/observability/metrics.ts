// The server's Prometheus metrics: one registry per handler (never prom-client's global one, so
// that two handlers in one process keep apart), counters fed by the hooks the server wires in, and
// gauges read from the live counts only when scraped.

import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** The live counts the gauges read at scrape time. */
export interface MetricsSources {
  /** Open capnweb WebSocket connections. */
  sockets(): number;
  /** capnweb HTTP batches in progress. */
  batches(): number;
  /** Open capnweb sessions (WebSockets and batches). */
  sessions(): number;
  /** Open SSE streams of a JSON binding. */
  sseStreams(binding: "jsonrpc" | "rest"): number;
  /** Tasks executing or subscribed to. */
  activeTasks(): number;
  /** Open subscriptions in the task core (the bindings' streams and the core's own waits). */
  subscriptions(): number;
  /** Streams ended since the start because their consumer fell behind. */
  overflows(): number;
  /** Push notification events waiting for delivery. */
  pushPending(): number;
}

/** Latency buckets, in seconds: from a fast in-memory call (~0.1 ms) to a long SendMessage. */
const CALL_BUCKETS = [
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
];

/** One label set's counter child, as prom-client hands it out. */
interface CounterChild {
  inc(value?: number): void;
}

/** One label set's histogram child. */
interface HistogramChild {
  observe(value: number): void;
}

/** The children of one (binding, operation): its latency, and a counter per result code. */
interface OperationChildren {
  duration: HistogramChild;
  byCode: Map<number, CounterChild>;
}

/**
 * The metrics of one handler. Each hook caches the prom-client child of its label set, so a call
 * allocates no label object; gauges are computed only when `/metrics` is scraped.
 */
export class HandlerMetrics {
  /** The registry `/metrics` renders. */
  readonly registry: Registry;
  #calls: Counter<"binding" | "operation" | "code">;
  #callDuration: Histogram<"binding" | "operation">;
  #operations = new Map<string, Map<string, OperationChildren>>();
  #authFailures: Counter<"binding" | "reason">;
  #streamEvents: Counter<"binding">;
  #streamEventChildren = new Map<string, CounterChild>();
  #streamsOpen: Gauge<"binding">;
  #transitions: Counter<"state">;
  #transitionChildren = new Map<string, CounterChild>();
  #push: Counter<"kind" | "outcome">;
  #storeDuration: Histogram<"operation" | "result">;
  #storeChildren = new Map<string, [ok: HistogramChild, error: HistogramChild]>();
  #limits: Counter<"limit">;

  /**
   * Creates the metrics in a fresh registry.
   *
   * @param sources The live counts behind the gauges.
   */
  constructor(sources: MetricsSources) {
    const registry = this.registry = new Registry();
    const registers = [registry];
    new Gauge({
      name: "a2a_connections",
      help: "Open long-lived connections by transport (capnweb WebSockets, SSE streams)",
      labelNames: ["transport"],
      registers,
      collect() {
        this.set({ transport: "capnweb_websocket" }, sources.sockets());
        this.set({ transport: "jsonrpc_sse" }, sources.sseStreams("jsonrpc"));
        this.set({ transport: "rest_sse" }, sources.sseStreams("rest"));
      },
    });
    new Gauge({
      name: "a2a_sessions",
      help: "Open capnweb sessions by transport",
      labelNames: ["transport"],
      registers,
      collect() {
        const batches = sources.batches();
        this.set({ transport: "websocket" }, Math.max(0, sources.sessions() - batches));
        this.set({ transport: "batch" }, batches);
      },
    });
    new Gauge({
      name: "a2a_active_tasks",
      help: "Tasks executing or subscribed to in this process",
      registers,
      collect() {
        this.set(sources.activeTasks());
      },
    });
    new Gauge({
      name: "a2a_subscriptions",
      help: "Open subscriptions in the task core (client streams and the core's own waits)",
      registers,
      collect() {
        this.set(sources.subscriptions());
      },
    });
    new Gauge({
      name: "a2a_push_pending",
      help: "Push notification events waiting for delivery",
      registers,
      collect() {
        this.set(sources.pushPending());
      },
    });
    this.#calls = new Counter({
      name: "a2a_calls_total",
      help: "A2A operations by binding, operation and result code (0 for success)",
      labelNames: ["binding", "operation", "code"],
      registers,
    });
    this.#callDuration = new Histogram({
      name: "a2a_call_duration_seconds",
      help: "Time to answer an A2A operation (for streams: until the stream starts)",
      labelNames: ["binding", "operation"],
      buckets: CALL_BUCKETS,
      registers,
    });
    this.#authFailures = new Counter({
      name: "a2a_auth_failures_total",
      help: "Failed authentication attempts by binding and reason",
      labelNames: ["binding", "reason"],
      registers,
    });
    this.#streamEvents = new Counter({
      name: "a2a_stream_events_delivered_total",
      help: "Stream events handed to a binding for delivery to its client",
      labelNames: ["binding"],
      registers,
    });
    this.#streamsOpen = new Gauge({
      name: "a2a_streams_open",
      help: "Open client streams (SendStreamingMessage, SubscribeToTask) by binding",
      labelNames: ["binding"],
      registers,
    });
    this.#transitions = new Counter({
      name: "a2a_task_transitions_total",
      help: "Tasks entering each state, as this process recorded them",
      labelNames: ["state"],
      registers,
    });
    this.#push = new Counter({
      name: "a2a_push_deliveries_total",
      help: "Push notification delivery attempts by kind (webhook, callback) and outcome",
      labelNames: ["kind", "outcome"],
      registers,
    });
    this.#storeDuration = new Histogram({
      name: "a2a_store_operation_duration_seconds",
      help: "Task store operations by method and result (ok, error)",
      labelNames: ["operation", "result"],
      buckets: CALL_BUCKETS,
      registers,
    });
    this.#limits = new Counter({
      name: "a2a_limits_hit_total",
      help: "Requests, calls and streams refused or ended by a limit, by limit",
      labelNames: ["limit"],
      registers,
    });
    // The core counts overflows itself; the counter follows it at scrape time.
    let overflowsSeen = 0;
    const limits = this.#limits;
    new Gauge({
      name: "a2a_stream_overflows",
      help: "Streams ended since the start because their consumer fell behind (-31002)",
      registers,
      collect() {
        const now = sources.overflows();
        if (now > overflowsSeen) limits.inc({ limit: "subscriber_buffer" }, now - overflowsSeen);
        overflowsSeen = now;
        this.set(now);
      },
    });
  }

  /** The content type of `render()`'s text. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * Renders every metric in the Prometheus text format.
   *
   * @returns The exposition text.
   */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  /**
   * Counts one operation and its latency.
   *
   * @param binding The binding it came on.
   * @param operation The A2A method.
   * @param code The result code: 0 for success, else the error's A2A code.
   * @param seconds How long it took.
   */
  call(binding: string, operation: string, code: number, seconds: number): void {
    let byOp = this.#operations.get(binding);
    if (byOp === undefined) this.#operations.set(binding, byOp = new Map());
    let children = byOp.get(operation);
    if (children === undefined) {
      children = {
        duration: this.#callDuration.labels(binding, operation),
        byCode: new Map(),
      };
      byOp.set(operation, children);
    }
    let counter = children.byCode.get(code);
    if (counter === undefined) {
      children.byCode.set(code, counter = this.#calls.labels(binding, operation, String(code)));
    }
    counter.inc();
    children.duration.observe(seconds);
  }

  /**
   * Counts a failed authentication.
   *
   * @param binding Where: `capnweb`, `jsonrpc`, `rest` or `ticket` (`POST /a2a/auth`).
   * @param reason `missing_credentials`, `invalid_credentials` or `rate_limited`.
   */
  authFailure(binding: string, reason: string): void {
    this.#authFailures.inc({ binding, reason });
  }

  /**
   * Counts a refusal by a limit.
   *
   * @param limit The limit's name, e.g. `connections_per_address`.
   */
  limitHit(limit: string): void {
    this.#limits.inc({ limit });
  }

  /**
   * Counts a push delivery attempt.
   *
   * @param kind `webhook` or `callback`.
   * @param outcome `delivered`, `retry`, `failed` or `dropped`.
   */
  push(kind: string, outcome: string): void {
    this.#push.inc({ kind, outcome });
  }

  /**
   * Counts a task entering a state.
   *
   * @param state The `TASK_STATE_*` name.
   */
  taskState(state: string): void {
    let child = this.#transitionChildren.get(state);
    if (child === undefined) {
      this.#transitionChildren.set(state, child = this.#transitions.labels(state));
    }
    child.inc();
  }

  /**
   * A counter of the stream events one binding delivers.
   *
   * @param binding The binding.
   * @returns The counter child to `inc()` per event.
   */
  streamEvents(binding: string): CounterChild {
    let child = this.#streamEventChildren.get(binding);
    if (child === undefined) {
      this.#streamEventChildren.set(binding, child = this.#streamEvents.labels(binding));
    }
    return child;
  }

  /**
   * Counts a client stream open until `close` is called.
   *
   * @param binding The binding.
   * @returns Call once when the stream ends.
   */
  streamOpened(binding: string): () => void {
    this.#streamsOpen.inc({ binding });
    return () => this.#streamsOpen.dec({ binding });
  }

  /**
   * Records one store operation.
   *
   * @param operation The TaskStore method.
   * @param ok Whether it succeeded.
   * @param seconds How long it took.
   */
  storeOperation(operation: string, ok: boolean, seconds: number): void {
    let children = this.#storeChildren.get(operation);
    if (children === undefined) {
      children = [
        this.#storeDuration.labels(operation, "ok"),
        this.#storeDuration.labels(operation, "error"),
      ];
      this.#storeChildren.set(operation, children);
    }
    children[ok ? 0 : 1].observe(seconds);
  }
}

/** How `/metrics` is served: not at all, to anyone, or to holders of a bearer token. */
export type MetricsOption = boolean | { readonly token: string };

/**
 * Checks a scrape's credentials against the option, in constant time for a token.
 *
 * @param option The handler's `metrics` option (not `false`).
 * @param request The scrape.
 * @returns True when the request may read the metrics.
 */
export function metricsAllowed(
  option: true | { readonly token: string },
  request: Request,
): boolean {
  if (option === true) return true;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.get("authorization") ?? "");
  if (!match) return false;
  const a = new TextEncoder().encode(match[1]!);
  const b = new TextEncoder().encode(option.token);
  // Unequal lengths leak only the length; the loop below does not stop at the first difference.
  let diff = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) diff |= (a[i] ?? 0) ^ b[i]!;
  return diff === 0;
}
