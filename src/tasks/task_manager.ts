// The task core: creates tasks, runs the executor, applies its events to the task in order,
// logs them with sequence numbers, and fans them out to subscribers. Every binding calls this.

import { getLogger } from "@logtape/logtape";
import {
  A2AError,
  InternalError,
  InvalidAgentResponseError,
  InvalidParamsError,
  QuotaExceededError,
  ServiceUnavailableError,
  TaskNotCancelableError,
  TaskNotFoundError,
  UnsupportedOperationError,
} from "../errors/errors.ts";
import {
  type Artifact,
  INTERRUPTED_STATES,
  type Message,
  type Part,
  type Task,
  type TaskState,
  TERMINAL_STATES,
} from "../types/core.ts";
import type {
  CancelTaskRequest,
  GetTaskRequest,
  ListTasksRequest,
  ListTasksResponse,
  SendMessageRequest,
  SendMessageResponse,
} from "../types/requests.ts";
import type {
  AgentExecutor,
  ArtifactOptions,
  EventPublisher,
  RequestContext,
  StatusOptions,
  TraceContext,
} from "./executor.ts";
import {
  contextTakenError,
  InMemoryTaskStore,
  isUnfinishedState,
  type StreamEvent,
  type TaskChange,
  type TaskRecord,
  type TaskStore,
} from "./store.ts";
import { isShared, type SharedTaskStore, type Unwatch } from "./shared_store.ts";
import { Subscription } from "./subscription.ts";
import { sleep } from "../util/sleep.ts";

const log = getLogger(["a2a-capnweb", "tasks"]);

/** How many times the end of an execution is written before the core gives up on it. */
const SETTLE_ATTEMPTS = 10;
/** The first wait between those attempts; it doubles each time, up to 5 s. */
const SETTLE_BACKOFF_MS = 100;

/** Options of a TaskManager. */
export interface TaskManagerOptions {
  /** The agent logic. */
  executor: AgentExecutor;
  /** Where tasks and event logs live; in memory when absent. */
  store?: TaskStore;
  /** How many events may wait for one subscriber before its stream is ended (default 1024). */
  subscriberBufferLimit?: number;
  /**
   * How many bytes of events (the UTF-8 size of each event's JSON) may wait for one subscriber
   * before its stream is ended (default 8 MiB), as `subscriberBufferLimit` ends it: with
   * StreamOverflowError (-31002), to resume with `afterSeq`. One event always may wait, whatever
   * its size: the message size limits bound it.
   */
  subscriberBufferBytes?: number;
  /**
   * How many idle tasks stay in memory after their last operation, most recent first, so that the
   * next turn or read of a task does not load it from the store again (default 64). Set 0 when
   * other processes write the same store: the copy kept here would not see their writes.
   */
  idleTasks?: number;
  /**
   * How many tasks one user may have that have not ended (SUBMITTED, WORKING or interrupted),
   * counted since this manager started (default 100). A new task past it is refused with
   * QuotaExceededError (-31005); finishing or canceling one makes room.
   */
  maxUnfinishedTasksPerUser?: number;
  /**
   * How many streams (SendStreamingMessage and SubscribeToTask, on every binding) one user may
   * have open at once (default 100); one more is refused with QuotaExceededError (-31005).
   */
  maxStreamsPerUser?: number;
  /**
   * With a store that several processes share: how often this process looks for tasks whose
   * runner's lease lapsed, to fail them (default 3000 ms).
   */
  leaseCheckMs?: number;
  /**
   * With a shared store: how long `cancelTask` waits for the process that runs the task to cancel
   * it (default 10 000 ms); then it fails with ServiceUnavailableError.
   */
  remoteCancelTimeoutMs?: number;
}

/** Per-call options of the operations that run the executor. */
export interface CallOptions {
  /** The caller's trace context, handed to the executor as `RequestContext.traceContext`. */
  traceContext?: TraceContext;
}

/** How much may wait for one subscriber: events, and bytes of them. */
interface BufferBounds {
  events: number;
  bytes: number;
}

/** The bounds of a subscriber inside the core, which reads as fast as events come. */
const UNBOUNDED: BufferBounds = { events: Infinity, bytes: Infinity };

/** A listener that sees every event of every task, with the task's owner. */
export type TaskEventListener = (owner: string, event: StreamEvent) => void;

/**
 * A hook that runs once a message is accepted for a task (new or continued), before the
 * executor starts: with the sender, the task's id and the request.
 */
export type MessageHook = (
  userId: string,
  taskId: string,
  request: SendMessageRequest,
) => Promise<void>;

/**
 * A task that is executing, being subscribed to, or being changed right now: the one in-memory
 * copy of it, kept until nothing holds it, so that every operation on the task sees the same
 * state and writes through the same serialized chain.
 */
class ActiveTask {
  record: TaskRecord | undefined;
  readonly subscribers = new Set<Subscription>();
  chain: Promise<void> = Promise.resolve();
  /** How many operations in progress hold this copy (see `#activate` and `#release`). */
  holds = 0;
  executing = false;
  /** The seq of the latest status event into a terminal or interrupted state. */
  finalSeq = 0;
  /** How many cancelTask calls are between their abort and their CANCELED write. */
  canceling = 0;
  /** The `lastSeq` the current (or latest) execution started from. */
  startSeq = 0;
  /** The agent's direct reply, for a retried send that joins after it was sent. */
  reply: StreamEvent | undefined;
  /**
   * Drops the first message from the manager's `#accepted`, and the task's claim on its context
   * from `#contexts`, once the store has the task (or once it will never have it).
   */
  accepted: (() => void) | undefined;
  /** Why the store refused to create the task: the execution's end reports it, once. */
  refused: A2AError | undefined;
  /** Settles when the latest execution has finished, including its bookkeeping. */
  finished: Promise<void> = Promise.resolve();
  controller = new AbortController();
  context: RequestContext | undefined;
  replied = false;

  /** Settles when the record has been read from the store (for a copy made by `#activate`). */
  loading: Promise<void> | undefined;
  /** With a shared store: the watch that feeds subscribers events other processes commit. */
  unwatch: Unwatch | undefined;
  /**
   * With a shared store: the seq up to which subscribers have every event, from this process's
   * commits or from the watch. Events go out strictly in order from it.
   */
  fanned = 0;
  /** Events from the watch ahead of the record while this process executes the task. */
  readonly early = new Map<number, StreamEvent>();

  constructor(readonly id: string, public owner: string, record?: TaskRecord) {
    this.record = record;
  }

  get state(): TaskState | undefined {
    return this.record?.task.status.state;
  }
}

let lastMs = NaN;
let lastIso = "";

/** The time as ISO 8601; the text is reused within a millisecond, as bursts of events share it. */
function now(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

function isFinal(state: TaskState | undefined): boolean {
  return state !== undefined && (TERMINAL_STATES.has(state) || INTERRUPTED_STATES.has(state));
}

/** JSON with object keys sorted, so that two equal values give the same text. */
function canonical(value: unknown): string {
  return JSON.stringify(
    value,
    (_, v) =>
      v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : v,
  );
}

/**
 * Tells whether a retried message is the one accepted before: equal but for the `taskId` and
 * `contextId` the server filled in.
 */
function sameMessage(original: Message, retry: Message): boolean {
  return canonical(original) === canonical({
    ...retry,
    taskId: retry.taskId || original.taskId,
    contextId: retry.contextId || original.contextId,
  });
}

function messageKey(userId: string, messageId: string): string {
  return `${userId}\u0000${messageId}`;
}

/**
 * Returns a copy of a task fit for a response: history cut to the last `historyLength`
 * messages (none for 0, all when undefined) and artifacts dropped unless asked for.
 *
 * @param task The stored task.
 * @param historyLength How many recent messages to keep.
 * @param includeArtifacts Keep the artifacts.
 * @returns The trimmed copy.
 */
export function trimTask(
  task: Task,
  historyLength: number | undefined,
  includeArtifacts = true,
): Task {
  const out: Task = { id: task.id, contextId: task.contextId, status: task.status };
  // The core extends its artifacts' parts arrays in place: hand out copies of them.
  if (includeArtifacts && task.artifacts) {
    out.artifacts = task.artifacts.map((a) => ({ ...a, parts: [...a.parts] }));
  }
  if (task.history && historyLength !== 0) {
    out.history = historyLength === undefined ? task.history : task.history.slice(-historyLength);
  }
  if (task.metadata) out.metadata = task.metadata;
  return out;
}

function agentMessage(value: string | Message | Part[], task: { id: string; contextId: string }) {
  if (typeof value === "string" || Array.isArray(value)) {
    return {
      messageId: crypto.randomUUID(),
      role: "ROLE_AGENT" as const,
      parts: typeof value === "string" ? [{ text: value }] : value,
      taskId: task.id,
      contextId: task.contextId,
    } satisfies Message;
  }
  return {
    ...value,
    taskId: value.taskId ?? task.id,
    contextId: value.contextId ?? task.contextId,
  };
}

/**
 * Adds or extends an artifact in a copy of the list; returns the list with where the artifact
 * is, the index of its first new part (for a store that writes only what changed), and how to
 * take the change back if the store refuses it.
 *
 * An append extends the artifact's parts array in place, so that a chunk costs the same whatever
 * the artifact's size: the core's record owns its parts arrays, and everything handed out of the
 * core is a copy (`trimTask`), so no one else sees them grow.
 */
function mergeArtifact(
  existing: Artifact[] | undefined,
  artifact: Artifact,
  append: boolean,
): { artifacts: Artifact[]; index: number; fromPart: number; undo: () => void } {
  const artifacts = existing ? [...existing] : [];
  const index = artifacts.findIndex((a) => a.artifactId === artifact.artifactId);
  // The event keeps the agent's object; the task gets its own parts array.
  const own = { ...artifact, parts: [...artifact.parts] };
  if (index < 0) {
    artifacts.push(own);
    return { artifacts, index: artifacts.length - 1, fromPart: 0, undo: () => {} };
  }
  if (!append) {
    artifacts[index] = own;
    return { artifacts, index, fromPart: 0, undo: () => {} };
  }
  const prev = artifacts[index]!;
  const fromPart = prev.parts.length;
  prev.parts.push(...artifact.parts);
  artifacts[index] = { ...prev, ...artifact, parts: prev.parts };
  return { artifacts, index, fromPart, undo: () => void (prev.parts.length = fromPart) };
}

/**
 * The task core shared by every binding. Methods take the authenticated user's id first; a
 * task is visible only to the user who created it.
 *
 * @example Send a message and get the completed task back
 * ```ts
 * import { TaskManager, textOf } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * const manager = new TaskManager({
 *   executor: {
 *     async execute(ctx, events) {
 *       await events.artifact({ artifactId: "a", parts: [{ text: textOf(ctx.message) }] });
 *       await events.status("TASK_STATE_COMPLETED");
 *     },
 *   },
 * });
 * const res = await manager.sendMessage("alice", {
 *   message: { messageId: "m1", role: "ROLE_USER", parts: [{ text: "hi" }] },
 * });
 * assert.equal(res.task?.status.state, "TASK_STATE_COMPLETED");
 * await manager.close();
 * ```
 */
export class TaskManager {
  #executor: AgentExecutor;
  #store: TaskStore;
  #bounds: BufferBounds;
  #idleLimit: number;
  #maxUnfinished: number;
  #maxStreams: number;
  /** Each user's tasks that have not ended, as far as this manager has seen. */
  #unfinished = new Map<string, Set<string>>();
  /** How many streams each user has open. */
  #streams = new Map<string, number>();
  /** Tasks recently forgotten, as last committed: least recently used first. */
  #idle = new Map<string, TaskRecord>();
  #active = new Map<string, ActiveTask>();
  #listeners = new Set<TaskEventListener>();
  #hooks = new Set<MessageHook>();
  #closed = false;
  #overflows = 0;
  #closing = new AbortController();
  /** First messages of tasks the store cannot find by them yet (see `#duplicate`). */
  #accepted = new Map<string, { active: ActiveTask; message: Message }>();
  /** Sends in progress, by user and messageId (see `#locked`). */
  #locks = new Map<string, Promise<void>>();
  /**
   * Client-supplied contexts of new tasks that the store has not created yet: whose they are,
   * and by how many such tasks. The store cannot tell their owner before the task's first event.
   */
  #contexts = new Map<string, { owner: string; tasks: number }>();
  /** The store, when other processes share it. */
  #shared: SharedTaskStore | undefined;
  #leaseTimer: ReturnType<typeof setInterval> | undefined;
  #remoteCancelMs: number;
  /** The trace context of each request in progress that has one, for its RequestContext. */
  #traces = new WeakMap<SendMessageRequest, TraceContext>();

  /**
   * Creates a task core with no tasks running.
   *
   * @param options The executor, the store and limits.
   */
  constructor(options: TaskManagerOptions) {
    this.#executor = options.executor;
    this.#store = options.store ?? new InMemoryTaskStore();
    this.#bounds = {
      events: options.subscriberBufferLimit ?? 1024,
      bytes: options.subscriberBufferBytes ?? 8 * 1024 * 1024,
    };
    this.#idleLimit = options.idleTasks ?? 64;
    this.#maxUnfinished = options.maxUnfinishedTasksPerUser ?? 100;
    this.#maxStreams = options.maxStreamsPerUser ?? 100;
    this.#remoteCancelMs = options.remoteCancelTimeoutMs ?? 10_000;
    if (isShared(this.#store)) {
      // Other processes write the same tasks: no copy may outlive the operation that read it.
      const shared = this.#shared = this.#store;
      this.#idleLimit = 0;
      shared.onCancelRequest((taskId) => this.#cancelRequested(taskId));
      this.#leaseTimer = setInterval(() => {
        this.recover().catch((err) => log.warn("Lease check failed: {error}", { error: err }));
      }, options.leaseCheckMs ?? 3000);
      Deno.unrefTimer(this.#leaseTimer);
    }
  }

  /** The store this manager writes to. */
  get store(): TaskStore {
    return this.#store;
  }

  /** How many tasks are executing or have subscribers right now. */
  get activeCount(): number {
    return this.#active.size;
  }

  /** How many subscriptions have ended because their consumer fell behind, since the start. */
  get overflowCount(): number {
    return this.#overflows;
  }

  /** How many subscriptions are open across all tasks. */
  get subscriberCount(): number {
    let n = 0;
    for (const a of this.#active.values()) n += a.subscribers.size;
    return n;
  }

  /**
   * Registers a listener for every event of every task (used for push notifications).
   *
   * @param listener Called synchronously after each event is logged.
   * @returns A function that removes the listener.
   */
  onEvent(listener: TaskEventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Registers a hook that runs once a message is accepted for a task and before the executor
   * starts (used to register a SendMessage's push notification config before the task's first
   * event). When a hook throws, the send fails with that error and the executor does not run.
   *
   * @param hook The hook.
   * @returns A function that removes the hook.
   */
  beforeExecute(hook: MessageHook): () => void {
    this.#hooks.add(hook);
    return () => this.#hooks.delete(hook);
  }

  /**
   * Handles SendMessage: creates or continues a task and, unless `returnImmediately` is set,
   * waits until the task is finished or interrupted.
   *
   * @param userId The authenticated user.
   * @param request The validated request.
   * @param options The caller's trace context, for the executor.
   * @returns The task, or the agent's direct reply.
   */
  async sendMessage(
    userId: string,
    request: SendMessageRequest,
    options: CallOptions = {},
  ): Promise<SendMessageResponse> {
    if (options.traceContext !== undefined) this.#traces.set(request, options.traceContext);
    const { active, sub } = await this.#start(userId, request);
    const historyLength = request.configuration?.historyLength;
    const immediate = request.configuration?.returnImmediately === true;
    let record: TaskRecord | undefined;
    try {
      for await (const event of sub) {
        if (event.message) return { message: event.message };
        if (immediate && active.record) break;
      }
      record = active.record;
    } finally {
      sub.close();
    }
    if (!record) throw new InvalidAgentResponseError("The agent produced no task");
    return { task: trimTask(record.task, historyLength) };
  }

  /**
   * Handles SendStreamingMessage: creates or continues a task and returns its event stream,
   * which ends after a terminal or interrupted state (or after a direct reply).
   *
   * @param userId The authenticated user.
   * @param request The validated request.
   * @param options The caller's trace context, for the executor.
   * @returns The subscription; close it to stop receiving.
   */
  async sendStreamingMessage(
    userId: string,
    request: SendMessageRequest,
    options: CallOptions = {},
  ): Promise<Subscription> {
    if (options.traceContext !== undefined) this.#traces.set(request, options.traceContext);
    const giveBack = this.#takeStream(userId);
    try {
      const { sub } = await this.#start(userId, request, this.#bounds);
      sub.whenClosed(giveBack);
      return sub;
    } catch (err) {
      giveBack();
      throw err;
    }
  }

  /**
   * Handles SubscribeToTask. Without `afterSeq` the first event is a snapshot of the task
   * (carrying the `seq` of the latest event it reflects); with `afterSeq` every logged event
   * after it is replayed first. Live events follow with no gap and no duplicate.
   *
   * @param userId The authenticated user.
   * @param request The task id and, optionally, the last `seq` the caller has.
   * @returns The subscription; close it to stop receiving.
   */
  async subscribeToTask(
    userId: string,
    request: { id: string; afterSeq?: number },
  ): Promise<Subscription> {
    const giveBack = this.#takeStream(userId);
    try {
      const sub = await this.#subscribe(userId, request);
      sub.whenClosed(giveBack);
      return sub;
    } catch (err) {
      giveBack();
      throw err;
    }
  }

  /**
   * Takes one of the user's stream slots, before the stream opens, and returns the function that
   * gives it back (once) when the stream ends or fails to open.
   */
  #takeStream(userId: string): () => void {
    const open = this.#streams.get(userId) ?? 0;
    if (open >= this.#maxStreams) {
      throw new QuotaExceededError(
        `Too many open streams: at most ${this.#maxStreams} per user; close one first`,
      );
    }
    this.#streams.set(userId, open + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const n = (this.#streams.get(userId) ?? 1) - 1;
      if (n <= 0) this.#streams.delete(userId);
      else this.#streams.set(userId, n);
    };
  }

  async #subscribe(
    userId: string,
    request: { id: string; afterSeq?: number },
  ): Promise<Subscription> {
    const active = await this.#activate(userId, request.id);
    const opened = this.#serialize(active, async () => {
      await this.#fresh(active);
      const record = active.record!;
      const state = record.task.status.state;
      const afterSeq = request.afterSeq;
      if (afterSeq === undefined && TERMINAL_STATES.has(state)) {
        throw new UnsupportedOperationError(
          `Task ${request.id} is in terminal state ${state} and cannot be subscribed to`,
        );
      }
      if (afterSeq !== undefined && afterSeq > record.lastSeq) {
        throw new InvalidParamsError(
          `Invalid params: afterSeq ${afterSeq} is beyond the task's latest seq ${record.lastSeq}`,
          [{ field: "afterSeq", description: `must be at most ${record.lastSeq}` }],
        );
      }
      if (afterSeq !== undefined) {
        return await this.#replay(active, afterSeq, this.#bounds, TERMINAL_STATES.has(state));
      }
      const sub = this.#subscriber(active, record.lastSeq, this.#bounds);
      sub.push({ seq: record.lastSeq, task: trimTask(record.task, undefined) });
      return sub;
    });
    try {
      return await opened;
    } finally {
      this.#release(active);
    }
  }

  /**
   * Handles GetTask.
   *
   * @param userId The authenticated user.
   * @param request The validated request.
   * @returns The task, with history trimmed to `historyLength`.
   */
  async getTask(userId: string, request: GetTaskRequest): Promise<Task> {
    const local = this.#active.get(request.id);
    // With a shared store, only a task executing here is known here better than in the store.
    const record = (this.#shared && !local?.executing ? undefined : local?.record) ??
      this.#idle.get(request.id) ??
      await this.#store.get(
        request.id,
        request.historyLength === undefined ? undefined : { historyLength: request.historyLength },
      );
    if (!record || record.owner !== userId) throw new TaskNotFoundError(request.id);
    return trimTask(record.task, request.historyLength);
  }

  /**
   * Handles ListTasks: the user's tasks, most recently updated first.
   *
   * @param userId The authenticated user.
   * @param request The validated request.
   * @returns One page of tasks.
   */
  async listTasks(userId: string, request: ListTasksRequest): Promise<ListTasksResponse> {
    const pageSize = request.pageSize ?? 50;
    let after: number | undefined;
    if (request.statusTimestampAfter !== undefined) {
      after = Date.parse(request.statusTimestampAfter);
    }
    let page;
    try {
      page = await this.#store.list(userId, {
        ...(request.contextId !== undefined && { contextId: request.contextId }),
        ...(request.status !== undefined && { status: request.status }),
        ...(after !== undefined && { statusTimestampAfter: after }),
        pageSize,
        pageToken: request.pageToken ?? "",
        view: {
          ...(request.historyLength !== undefined && { historyLength: request.historyLength }),
          artifacts: request.includeArtifacts === true,
        },
      });
    } catch (err) {
      if (err instanceof RangeError) {
        throw new InvalidParamsError(`Invalid params: ${err.message}`, [
          { field: "pageToken", description: err.message },
        ]);
      }
      throw err;
    }
    return {
      tasks: page.records.map((r) =>
        trimTask(r.task, request.historyLength, request.includeArtifacts === true)
      ),
      nextPageToken: page.nextPageToken,
      pageSize,
      totalSize: page.totalSize,
    };
  }

  /**
   * Handles CancelTask: asks the executor to stop and marks the task CANCELED.
   *
   * @param userId The authenticated user.
   * @param request The validated request.
   * @returns The task after cancellation.
   */
  async cancelTask(userId: string, request: CancelTaskRequest): Promise<Task> {
    const active = await this.#activate(userId, request.id);
    let canceling = false;
    try {
      if (this.#shared) {
        const elsewhere = await this.#serialize(active, async () => {
          await this.#fresh(active);
          return !active.executing && isUnfinishedState(active.state!) &&
            await this.#shared!.runnerAlive(active.id);
        });
        if (elsewhere) return await this.#cancelElsewhere(active);
      }
      const ctx = await this.#serialize(active, async () => {
        await this.#fresh(active);
        if (TERMINAL_STATES.has(active.state!)) throw new TaskNotCancelableError(request.id);
        // The execution may now end before the CANCELED write below: it leaves that to us.
        active.canceling++;
        canceling = true;
        this.#abort(active);
        return active.context;
      });
      if (this.#executor.cancel && ctx) {
        try {
          await this.#executor.cancel(ctx, this.#publisher(active));
        } catch (err) {
          log.warn("Executor cancel failed for task {taskId}: {error}", {
            taskId: request.id,
            error: err,
          });
        }
      }
      await this.#serialize(active, async () => {
        active.canceling--;
        canceling = false;
        if (TERMINAL_STATES.has(active.state!)) return;
        // A follow-up may have started a new execution since the first step: it is canceled too.
        this.#abort(active);
        try {
          await this.#applyStatus(active, "TASK_STATE_CANCELED", {});
        } catch (err) {
          // The execution may have settled already, leaving the end to this write: streams must not
          // wait for an end that no one will record.
          for (const s of [...active.subscribers]) s.fail(err, true);
          throw err;
        }
      });
      if (active.state !== "TASK_STATE_CANCELED") {
        throw new TaskNotCancelableError(request.id);
      }
      return trimTask(active.record!.task, undefined);
    } finally {
      if (canceling) active.canceling--;
      this.#release(active);
    }
  }

  /**
   * Shuts the core down: refuses new messages, aborts running executions (their tasks end
   * FAILED with a message saying the server shut down), waits for them up to `timeoutMs`, then
   * ends the remaining subscriptions with ServiceUnavailableError, which clients treat as
   * "resume elsewhere".
   *
   * @param options How long to wait for executors to stop (default 5000 ms).
   */
  async close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#closed = true;
    this.#closing.abort();
    clearInterval(this.#leaseTimer);
    const pending: Promise<unknown>[] = [];
    for (const active of this.#active.values()) {
      active.controller.abort(new ServiceUnavailableError("The server is shutting down"));
      pending.push(active.finished);
      pending.push(active.chain);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled(pending),
      new Promise((resolve) => timer = setTimeout(resolve, options.timeoutMs ?? 5000)),
    ]);
    clearTimeout(timer);
    for (const active of [...this.#active.values()]) {
      active.unwatch?.();
      active.unwatch = undefined;
      for (const s of [...active.subscribers]) {
        s.fail(
          new ServiceUnavailableError(
            "The server is shutting down; resume the stream after the last seq you received",
          ),
          true,
        );
      }
    }
  }

  /**
   * Fails the tasks that a previous process left SUBMITTED or WORKING: their executions died
   * with it. Each gets a FAILED status event (seq `lastSeq + 1`, with a status message saying
   * the server restarted) through the normal path, so the store, listeners and subscribers
   * resuming with `afterSeq` see it. Call it once at start, with a store that implements
   * `unfinished()`; tasks executing in this manager are left alone.
   *
   * @returns How many tasks were failed.
   */
  async recover(): Promise<number> {
    let failed = 0;
    if (this.#closed) return 0;
    // With a shared store, only tasks whose runner's lease lapsed are dead: others run elsewhere.
    const dead = this.#shared ? await this.#shared.lapsed() : await this.#store.unfinished?.();
    for (const stale of dead ?? []) {
      let current: ActiveTask;
      try {
        current = await this.#activate(stale.owner, stale.task.id);
      } catch (err) {
        log.warn("Cannot recover task {taskId}: {error}", { taskId: stale.task.id, error: err });
        continue;
      }
      try {
        await this.#serialize(current, async () => {
          await this.#fresh(current);
          if (!current.record || isFinal(current.state) || current.executing) return;
          await this.#applyStatus(current, "TASK_STATE_FAILED", {
            message: "The server restarted while the task was running",
          });
          failed++;
        });
      } finally {
        this.#release(current);
      }
    }
    return failed;
  }

  // -------------------------------------------------------------------------------------------

  /**
   * Returns the one ActiveTask of an existing task, loading it from the store if needed, and
   * holds it: the caller must `#release` it when done.
   */
  async #activate(userId: string, taskId: string): Promise<ActiveTask> {
    let active = this.#active.get(taskId);
    const idle = active ? undefined : this.#idle.get(taskId);
    if (idle) {
      this.#idle.delete(taskId);
      this.#active.set(taskId, active = new ActiveTask(taskId, idle.owner, idle));
    }
    if (!active) {
      // The copy goes into the map before the store is read, so that a call arriving meanwhile
      // waits for this read instead of making a second copy, possibly from a read that a write
      // through this one has made stale.
      const loading = new ActiveTask(taskId, "");
      loading.loading = this.#store.get(taskId).then((record) => {
        loading.loading = undefined;
        if (record) {
          loading.record = record;
          loading.owner = record.owner;
        }
      });
      this.#active.set(taskId, active = loading);
    }
    active.holds++;
    try {
      if (active.loading) await active.loading;
    } catch (err) {
      this.#release(active);
      throw err;
    }
    if (!active.record || active.owner !== userId) {
      this.#release(active);
      throw new TaskNotFoundError(taskId);
    }
    return active;
  }

  /** Drops a hold taken by `#activate` (or by creating the task). */
  #release(active: ActiveTask): void {
    active.holds--;
    this.#forget(active);
  }

  /** Forgets an ActiveTask that nothing holds, executes or subscribes to. */
  #forget(active: ActiveTask): void {
    if (
      active.holds <= 0 && !active.executing && active.subscribers.size === 0 &&
      this.#active.get(active.id) === active
    ) {
      this.#active.delete(active.id);
      if (active.record && this.#idleLimit > 0) {
        this.#idle.delete(active.id);
        this.#idle.set(active.id, active.record);
        if (this.#idle.size > this.#idleLimit) this.#idle.delete(this.#idle.keys().next().value!);
      }
    }
  }

  /** Adds a task to, or takes it from, its user's count of tasks that have not ended. */
  #countUnfinished(userId: string, taskId: string, add: boolean): void {
    let mine = this.#unfinished.get(userId);
    if (add) {
      if (!mine) this.#unfinished.set(userId, mine = new Set());
      mine.add(taskId);
    } else if (mine) {
      mine.delete(taskId);
      if (mine.size === 0) this.#unfinished.delete(userId);
    }
  }

  /** Aborts the current execution's signal, once. */
  #abort(active: ActiveTask): void {
    if (!active.controller.signal.aborted) {
      active.controller.abort(new UnsupportedOperationError("The task was canceled"));
    }
  }

  /**
   * Opens a subscription that replays the logged events after `afterSeq`, then follows live;
   * with `end`, it ends after the replay. Call it inside the task's serialized chain.
   */
  async #replay(
    active: ActiveTask,
    afterSeq: number,
    bounds: BufferBounds,
    end: boolean,
  ): Promise<Subscription> {
    const sub = this.#subscriber(active, afterSeq, UNBOUNDED);
    if (active.record) {
      for (const e of await this.#store.events(active.id, afterSeq)) sub.push(e);
    } else if (active.reply) sub.push(active.reply);
    if (end) sub.end();
    sub.setLimit(bounds.events, bounds.bytes);
    return sub;
  }

  /**
   * Finds the task a message with this `messageId` was already accepted for, from this user:
   * a retry, whose outcome is that task's instead of a second execution. The result is held.
   *
   * @throws {InvalidParamsError} When the messageId was used for a different message.
   */
  async #duplicate(userId: string, message: Message): Promise<ActiveTask | undefined> {
    // Asked in this order, no message is missed: an entry leaves `#accepted` only once the store
    // has the message.
    let found = this.#accepted.get(messageKey(userId, message.messageId));
    if (!found) {
      const stored = await this.#store.findMessage(userId, message.messageId);
      if (!stored) return undefined;
      const active = await this.#activate(userId, stored.taskId).catch(() => undefined);
      if (!active) return undefined;
      found = { active, message: stored.message };
      active.holds--;
    }
    if (!sameMessage(found.message, message)) {
      throw new InvalidParamsError(
        `Invalid params: messageId ${message.messageId} was already used for a different message`,
        [{ field: "message.messageId", description: "must be new for a new message" }],
      );
    }
    found.active.holds++;
    return found.active;
  }

  /** The outcome of a retried send: its task's events from the start, live until final. */
  async #rejoin(active: ActiveTask, bounds: BufferBounds): Promise<Subscription> {
    try {
      return await this.#serialize(active, () => {
        const state = active.state;
        // Nothing more comes for the retried turn once the task is final and the execution that
        // made it so has finished or got there.
        const over = !active.executing ||
          (isFinal(state) && (TERMINAL_STATES.has(state!) || active.finalSeq > active.startSeq));
        return this.#replay(active, 0, bounds, over);
      });
    } finally {
      this.#release(active);
    }
  }

  /**
   * Remembers a new task's first message until the store can find the task by it, and then
   * drops the task's claim on its context (see `#claimContext`).
   */
  #accept(userId: string, active: ActiveTask, message: Message, unclaim?: () => void): void {
    const key = messageKey(userId, message.messageId);
    const entry = { active, message };
    this.#accepted.set(key, entry);
    active.accepted = () => {
      if (this.#accepted.get(key) === entry) this.#accepted.delete(key);
      unclaim?.();
    };
  }

  /**
   * Runs `fn` while no other call holds `key`: sends of one user's messageId go one at a time
   * from their duplicate check until the message is recorded.
   */
  async #locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    while (this.#locks.has(key)) await this.#locks.get(key);
    let unlock!: () => void;
    this.#locks.set(key, new Promise<void>((resolve) => unlock = resolve));
    try {
      return await fn();
    } finally {
      this.#locks.delete(key);
      unlock();
    }
  }

  #subscriber(active: ActiveTask, afterSeq: number, bounds: BufferBounds): Subscription {
    const sub = new Subscription(bounds.events, afterSeq, () => {
      if (sub.overflowed) this.#overflows++;
      active.subscribers.delete(sub);
      if (active.subscribers.size === 0 && active.unwatch) {
        active.unwatch();
        active.unwatch = undefined;
      }
      this.#forget(active);
    }, { maxBytes: bounds.bytes });
    if (this.#shared && active.subscribers.size === 0 && active.record) {
      // Nobody was waiting for events: the first subscriber starts where the record is.
      active.fanned = active.record.lastSeq;
    }
    active.subscribers.add(sub);
    // A task that does not execute here may be executing elsewhere: follow its log.
    if (this.#shared && !active.executing && active.record) this.#follow(active);
    return sub;
  }

  /** With a shared store, feeds the task's subscribers from its log as well, from `fanned`. */
  #follow(active: ActiveTask): void {
    if (active.unwatch || !this.#shared) return;
    {
      active.unwatch = this.#shared.watch(
        active.id,
        active.fanned,
        (events) => this.#remoteEvents(active, events),
        (err) => {
          log.warn("Watch of task {taskId} failed: {error}", { taskId: active.id, error: err });
          active.unwatch = undefined;
          for (const s of [...active.subscribers]) {
            s.fail(
              new ServiceUnavailableError(
                "Lost the task's event log; resume the stream after the last seq you received",
              ),
              true,
            );
          }
        },
      );
    }
  }

  /**
   * Hands subscribers the events the log shows. While this process executes the task, an event
   * ahead of the record waits for the commit that wrote it to be applied here (`#commit`), so that
   * a caller woken by a final event reads a record that has it.
   */
  #remoteEvents(active: ActiveTask, events: StreamEvent[]): void {
    for (const event of events) {
      if (event.seq <= active.fanned) continue;
      if (active.executing && event.seq > (active.record?.lastSeq ?? 0)) {
        active.early.set(event.seq, event);
        continue;
      }
      this.#fanOut(active, event);
    }
  }

  /**
   * Hands subscribers the next event, if it is the next one (`fanned + 1`); with a store that is
   * not shared every event is. Returns whether it went out.
   */
  #fanOut(active: ActiveTask, event: StreamEvent): boolean {
    if (this.#shared && event.seq !== active.fanned + 1) return false;
    active.fanned = event.seq;
    active.early.delete(event.seq);
    for (const s of active.subscribers) s.push(event);
    if (event.statusUpdate && isFinal(event.statusUpdate.status.state)) {
      active.finalSeq = event.seq;
      for (const s of [...active.subscribers]) s.end();
    }
    return true;
  }

  /**
   * With a shared store, reads a task that does not execute here again: another process may
   * have changed it. Call it inside the task's serialized chain, before reading the record.
   */
  async #fresh(active: ActiveTask): Promise<void> {
    if (!this.#shared || active.executing) return;
    const record = await this.#store.get(active.id);
    if (record) active.record = record;
  }

  /**
   * Cancels a task that another, live process runs: asks that process, then waits for the
   * task's final event in the log.
   */
  async #cancelElsewhere(active: ActiveTask): Promise<Task> {
    const sub = await this.#serialize(active, () => {
      return Promise.resolve(this.#subscriber(active, active.record!.lastSeq, UNBOUNDED));
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await this.#shared!.requestCancel(active.id);
      const timeout = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), this.#remoteCancelMs);
      });
      const drained = (async () => {
        for await (const _ of sub) {
          // Only the end matters: the final event is in the log.
        }
      })().catch(() => {});
      if (await Promise.race([drained, timeout]) === "timeout") {
        throw new ServiceUnavailableError(
          `The process running task ${active.id} did not cancel it in time; try again`,
        );
      }
    } finally {
      clearTimeout(timer);
      sub.close();
    }
    const record = await this.#store.get(active.id);
    if (record?.task.status.state !== "TASK_STATE_CANCELED") {
      throw new TaskNotCancelableError(active.id);
    }
    return trimTask(record.task, undefined);
  }

  /** Another process asked to cancel a task: cancel it if it executes here. */
  #cancelRequested(taskId: string): void {
    const active = this.#active.get(taskId);
    if (!active?.executing) return;
    this.cancelTask(active.owner, { id: taskId }).catch((err) => {
      log.debug("Cancel requested by another process failed for {taskId}: {error}", {
        taskId,
        error: err,
      });
    });
  }

  #serialize<T>(active: ActiveTask, fn: () => Promise<T>): Promise<T> {
    const run = active.chain.then(fn);
    active.chain = run.then(() => {}, () => {});
    return run;
  }

  async #start(
    userId: string,
    request: SendMessageRequest,
    bounds: BufferBounds = UNBOUNDED,
  ): Promise<{ active: ActiveTask; sub: Subscription }> {
    if (this.#closed) throw new ServiceUnavailableError("The server is shutting down");
    const message = request.message;
    return await this.#locked(messageKey(userId, message.messageId), async () => {
      const duplicate = await this.#duplicate(userId, message);
      if (duplicate) return { active: duplicate, sub: await this.#rejoin(duplicate, bounds) };
      if (message.taskId !== undefined && message.taskId !== "") {
        return await this.#continue(userId, message.taskId, request, bounds);
      }
      // A context belongs to the user who created it. Asked before the quota, which is checked
      // and taken with no wait in between, and before anything is created or counted.
      const named = message.contextId || undefined;
      if (named !== undefined && this.#store.contextOwner !== undefined) {
        const stored = await this.#store.contextOwner(named);
        const claimed = this.#contexts.get(named)?.owner;
        if ((stored ?? userId) !== userId || (claimed ?? userId) !== userId) {
          throw contextTakenError();
        }
      }
      const mine = this.#unfinished.get(userId);
      if (mine && mine.size >= this.#maxUnfinished) {
        throw new QuotaExceededError(
          `Too many unfinished tasks: at most ${this.#maxUnfinished} per user; ` +
            `finish or cancel one first`,
        );
      }
      const id = crypto.randomUUID();
      const active = new ActiveTask(id, userId);
      active.holds = 1;
      this.#active.set(id, active);
      this.#countUnfinished(userId, id, true);
      const unclaim = named !== undefined && this.#store.contextOwner !== undefined
        ? this.#claimContext(userId, named)
        : undefined;
      let started = false;
      try {
        const contextId = named ?? crypto.randomUUID();
        const msg: Message = { ...message, taskId: id, contextId };
        const ctx = this.#context(active, userId, request, msg);
        for (const hook of this.#hooks) await hook(userId, id, request);
        this.#accept(userId, active, msg, unclaim);
        const sub = this.#subscriber(active, 0, bounds);
        this.#run(active, ctx, 0);
        started = true;
        return { active, sub };
      } finally {
        if (!started) {
          // Nothing runs for this message (a hook refused it): it holds no quota and no context.
          this.#countUnfinished(userId, id, false);
          active.accepted?.();
          active.accepted = undefined;
          unclaim?.();
        }
        this.#release(active);
      }
    });
  }

  /**
   * Records that a new task of `userId` names a context the store does not have yet, until the
   * returned function (called once) says the store has the task or never will.
   */
  #claimContext(userId: string, contextId: string): () => void {
    let claim = this.#contexts.get(contextId);
    if (!claim) this.#contexts.set(contextId, claim = { owner: userId, tasks: 0 });
    claim.tasks++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (--claim.tasks === 0 && this.#contexts.get(contextId) === claim) {
        this.#contexts.delete(contextId);
      }
    };
  }

  /**
   * Continues a task with a follow-up message. Every check and change happens inside the task's
   * serialized chain, so a cancel or another follow-up cannot slip in between them.
   */
  async #continue(
    userId: string,
    taskId: string,
    request: SendMessageRequest,
    bounds: BufferBounds,
  ): Promise<{ active: ActiveTask; sub: Subscription }> {
    const message = request.message;
    const active = await this.#activate(userId, taskId);
    try {
      if (active.executing && INTERRUPTED_STATES.has(active.state!)) {
        // The caller has seen the interrupted state, but the execution that set it may still be
        // returning: let it finish rather than refuse an immediate follow-up.
        await active.finished;
      }
      const sub = await this.#serialize(active, async () => {
        if (this.#closed) throw new ServiceUnavailableError("The server is shutting down");
        await this.#fresh(active);
        const record = active.record!;
        const task = record.task;
        if (TERMINAL_STATES.has(task.status.state)) {
          throw new UnsupportedOperationError(
            `Task ${task.id} is in terminal state ${task.status.state} and accepts no more messages`,
          );
        }
        if (message.contextId && message.contextId !== task.contextId) {
          throw new InvalidParamsError(
            `Invalid params: message.contextId ${message.contextId} does not match the context of task ${task.id}`,
            [{ field: "message.contextId", description: "must match the task's contextId" }],
          );
        }
        if (active.executing) {
          throw new UnsupportedOperationError(
            `Task ${task.id} is still processing an earlier message`,
          );
        }
        for (const hook of this.#hooks) await hook(userId, active.id, request);
        const msg: Message = { ...message, taskId: active.id, contextId: task.contextId };
        const next: TaskRecord = {
          ...record,
          task: { ...task, history: [...task.history ?? [], msg] },
        };
        // Stored first: a follow-up the store refuses changes nothing, here or there.
        await this.#store.commit(next, { historyAppended: 1 });
        active.record = next;
        active.controller = new AbortController();
        const ctx = this.#context(active, userId, request, msg, trimTask(task, undefined));
        const s = this.#subscriber(active, record.lastSeq, bounds);
        s.push({
          seq: record.lastSeq,
          task: trimTask(next.task, request.configuration?.historyLength),
        });
        this.#run(active, ctx, record.lastSeq);
        return s;
      });
      return { active, sub };
    } finally {
      this.#release(active);
    }
  }

  #context(
    active: ActiveTask,
    userId: string,
    request: SendMessageRequest,
    message: Message,
    previous?: Task,
  ): RequestContext {
    const trace = this.#traces.get(request);
    const ctx: RequestContext = {
      userId,
      taskId: active.id,
      contextId: message.contextId!,
      message,
      task: previous,
      configuration: request.configuration,
      metadata: request.metadata,
      signal: active.controller.signal,
      ...(trace !== undefined && { traceContext: trace }),
    };
    active.context = ctx;
    return ctx;
  }

  /**
   * Runs one execution of the task. However it ends, the task is released: it is left in a
   * final state, or (when even that cannot be stored) its subscribers end with the error.
   */
  #run(active: ActiveTask, ctx: RequestContext, startSeq: number): void {
    active.executing = true;
    active.startSeq = startSeq;
    const publisher = this.#publisher(active);
    active.finished = (async () => {
      let failed = false;
      let outcome: unknown = undefined;
      try {
        await Promise.resolve();
        await this.#executor.execute(ctx, publisher);
      } catch (err) {
        failed = true;
        outcome = err;
      }
      try {
        await this.#end(active, startSeq, failed, outcome);
      } finally {
        active.executing = false;
        // A first message that made no task is neither counted nor remembered.
        if (!active.record) this.#countUnfinished(active.owner, active.id, false);
        active.accepted?.();
        active.accepted = undefined;
        this.#forget(active);
      }
    })();
  }

  /**
   * Records how an execution ended. When the store refuses that write, the waiting callers and
   * streams get InternalError at once (nobody waits on a store that may never recover), and the
   * write is retried with backoff, logged once, until it lands, the task ends otherwise, the
   * core closes or the attempts run out (a restart's `recover()` then fails the task).
   */
  async #end(active: ActiveTask, startSeq: number, failed: boolean, outcome: unknown) {
    for (let attempt = 1;; attempt++) {
      try {
        await this.#serialize(active, () => this.#settle(active, startSeq, failed, outcome));
        if (attempt > 1) {
          log.info("Recorded the end of task {taskId} after {attempts} attempts", {
            taskId: active.id,
            attempts: attempt,
          });
        }
        return;
      } catch (err) {
        const last = attempt >= SETTLE_ATTEMPTS || this.#closed;
        if (attempt === 1 || last) {
          log.error(
            last
              ? "Cannot record the end of task {taskId}; giving up after {attempts} attempts: {error}"
              : "Cannot record the end of task {taskId}; retrying with backoff: {error}",
            { taskId: active.id, attempts: attempt, error: err },
          );
          // Streams that joined while the write was retried must not wait for it either.
          const error = new InternalError(
            `Cannot record the end of task ${active.id}: ${
              err instanceof A2AError ? err.message : "the task store refused the write"
            }`,
            err,
          );
          for (const s of [...active.subscribers]) s.fail(error, true);
        }
        if (last) return;
        await sleep(Math.min(SETTLE_BACKOFF_MS * 2 ** (attempt - 1), 5000), this.#closing.signal);
      }
    }
  }

  /** Decides how an execution ended and, unless it left the task final, fails the task. */
  async #settle(
    active: ActiveTask,
    startSeq: number,
    failed: boolean,
    outcome: unknown,
  ): Promise<void> {
    if (active.replied) {
      for (const s of [...active.subscribers]) s.end();
      return;
    }
    if (active.refused && !active.record) {
      // The store refused the task: the caller gets that error and no task exists.
      for (const s of [...active.subscribers]) s.fail(active.refused);
      return;
    }
    const state = active.state;
    if (
      state !== undefined &&
      (TERMINAL_STATES.has(state) || (INTERRUPTED_STATES.has(state) && active.finalSeq > startSeq))
    ) {
      return;
    }
    // A cancel in progress writes CANCELED next (or lets the executor's cancel() do it).
    if (state !== undefined && active.canceling > 0) return;
    if (failed && state === undefined && outcome instanceof A2AError) {
      // The agent refused the message before creating a task (e.g. an unsupported content type):
      // the caller gets that error and no task exists.
      for (const s of [...active.subscribers]) s.fail(outcome);
      return;
    }
    let reason: string;
    if (failed && this.#closed) {
      reason = "The server shut down while the task was running";
    } else if (failed) {
      log.error("Executor failed for task {taskId}: {error}", {
        taskId: active.id,
        error: outcome,
      });
      reason = "The agent failed while processing the task";
    } else {
      reason = state === undefined
        ? "The agent returned without producing a task or a reply"
        : "The agent returned without reaching a final state";
    }
    try {
      await this.#applyStatus(active, "TASK_STATE_FAILED", { message: reason });
    } catch (err) {
      if (active.state === undefined || TERMINAL_STATES.has(active.state)) throw err;
      // The store refused the failure with its message (a store with a size limit refuses a task
      // that grows): the bare FAILED status does not grow the task, so try that once.
      log.warn(
        "Could not store the failure of task {taskId}, retrying without a message: {error}",
        {
          taskId: active.id,
          error: err,
        },
      );
      await this.#applyStatus(active, "TASK_STATE_FAILED", {});
    }
  }

  #publisher(active: ActiveTask): EventPublisher {
    return {
      status: (state, options = {}) =>
        this.#serialize(active, () => this.#applyStatus(active, state, options)),
      artifact: (artifact, options = {}) =>
        this.#serialize(active, () => this.#applyArtifact(active, artifact, options)),
      reply: (value) =>
        this.#serialize(active, () => {
          if (active.refused) throw active.refused;
          if (active.record || active.replied) {
            throw new InvalidAgentResponseError(
              "reply() must be the executor's first and only event",
            );
          }
          active.replied = true;
          const { taskId: _, ...message } = agentMessage(value, {
            id: "",
            contextId: active.context!.contextId,
          });
          const event: StreamEvent = { seq: 1, message };
          active.reply = event;
          for (const s of active.subscribers) s.push(event);
          return Promise.resolve();
        }),
    };
  }

  /** Creates the task on its first event: logged as seq 1, a `task` snapshot in SUBMITTED. */
  async #ensureCreated(active: ActiveTask): Promise<TaskRecord> {
    if (active.replied) {
      throw new InvalidAgentResponseError("The agent already replied with a direct message");
    }
    if (active.record) return active.record;
    if (active.refused) throw active.refused;
    const ctx = active.context!;
    const task: Task = {
      id: active.id,
      contextId: ctx.contextId,
      status: { state: "TASK_STATE_SUBMITTED", timestamp: now() },
      history: [ctx.message],
    };
    const record: TaskRecord = { owner: active.owner, task, lastSeq: 1 };
    try {
      await this.#commit(active, record, {
        created: true,
        event: { seq: 1, task: trimTask(task, undefined) },
      });
    } catch (err) {
      // The store refuses to create this task at all (its context is another user's, taken by a
      // send in another process or in a race with this one): no retry can succeed.
      if (err instanceof InvalidParamsError) active.refused = err;
      throw err;
    }
    // The store now finds the task by its first message.
    active.accepted?.();
    active.accepted = undefined;
    return record;
  }

  async #applyStatus(active: ActiveTask, state: TaskState, options: StatusOptions): Promise<void> {
    const record = await this.#ensureCreated(active);
    const task = record.task;
    if (TERMINAL_STATES.has(task.status.state)) {
      throw new UnsupportedOperationError(
        `Task ${task.id} is already in terminal state ${task.status.state}`,
      );
    }
    const status: Task["status"] = { state, timestamp: now() };
    let history = task.history;
    if (options.message !== undefined) {
      status.message = agentMessage(options.message, task);
      history = [...history ?? [], status.message];
    }
    const next: Task = { ...task, status };
    if (history) next.history = history;
    const seq = record.lastSeq + 1;
    const statusUpdate = { taskId: task.id, contextId: task.contextId, status };
    await this.#commit(active, { ...record, task: next, lastSeq: seq }, {
      historyAppended: options.message === undefined ? 0 : 1,
      event: {
        seq,
        statusUpdate: options.metadata
          ? { ...statusUpdate, metadata: options.metadata }
          : statusUpdate,
      },
    });
  }

  async #applyArtifact(
    active: ActiveTask,
    artifact: Artifact,
    options: ArtifactOptions,
  ): Promise<void> {
    // Checked before the task is created: a first event that breaks the contract creates no
    // task, and the caller gets InvalidAgentResponseError.
    if (!artifact.artifactId || artifact.parts.length === 0) {
      throw new InvalidAgentResponseError("An artifact needs an artifactId and at least one part");
    }
    const record = await this.#ensureCreated(active);
    const task = record.task;
    if (TERMINAL_STATES.has(task.status.state)) {
      throw new UnsupportedOperationError(
        `Task ${task.id} is already in terminal state ${task.status.state}`,
      );
    }
    const merged = mergeArtifact(task.artifacts, artifact, options.append === true);
    const next: Task = { ...task, artifacts: merged.artifacts };
    const seq = record.lastSeq + 1;
    const update: NonNullable<StreamEvent["artifactUpdate"]> = {
      taskId: task.id,
      contextId: task.contextId,
      artifact,
    };
    if (options.append !== undefined) update.append = options.append;
    if (options.lastChunk !== undefined) update.lastChunk = options.lastChunk;
    if (options.metadata) update.metadata = options.metadata;
    try {
      await this.#commit(active, { ...record, task: next, lastSeq: seq }, {
        artifact: { index: merged.index, fromPart: merged.fromPart },
        event: { seq, artifactUpdate: update },
      });
    } catch (err) {
      merged.undo();
      throw err;
    }
  }

  /** Stores the new state with its event, then hands the event to every subscriber. */
  async #commit(active: ActiveTask, record: TaskRecord, change: TaskChange): Promise<void> {
    const event = change.event!;
    await this.#store.commit(record, change);
    active.record = record;
    if (this.#shared && active.subscribers.size === 0) active.fanned = event.seq;
    else if (!this.#fanOut(active, event)) {
      // Subscribers still wait for events another process wrote before this one: the log has
      // them all, in order.
      active.early.set(event.seq, event);
      this.#follow(active);
    }
    // Events the watch brought ahead of the record may follow now.
    for (
      let next = active.early.get(active.fanned + 1);
      next;
      next = active.early.get(active.fanned + 1)
    ) {
      if (next.seq > record.lastSeq) break;
      this.#fanOut(active, next);
    }
    for (const l of this.#listeners) {
      try {
        l(record.owner, event);
      } catch (err) {
        log.error("Task event listener failed: {error}", { error: err });
      }
    }
    // Streams end on a transition into a final state (in `#fanOut`), not on any event while in
    // one: an agent may publish an artifact on a continuation before it sets WORKING.
    if (event.statusUpdate && TERMINAL_STATES.has(event.statusUpdate.status.state)) {
      this.#countUnfinished(record.owner, record.task.id, false);
    }
  }
}
