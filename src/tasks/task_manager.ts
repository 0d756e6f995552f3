// The task core: creates tasks, runs the executor, applies its events to the task in order,
// logs them with sequence numbers, and fans them out to subscribers. Every binding calls this.

import { getLogger } from "@logtape/logtape";
import {
  A2AError,
  InvalidAgentResponseError,
  InvalidParamsError,
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
} from "./executor.ts";
import { InMemoryTaskStore, type StreamEvent, type TaskRecord, type TaskStore } from "./store.ts";
import { Subscription } from "./subscription.ts";

const log = getLogger(["a2a-capnweb", "tasks"]);

/** Options of a TaskManager. */
export interface TaskManagerOptions {
  /** The agent logic. */
  executor: AgentExecutor;
  /** Where tasks and event logs live; in memory when absent. */
  store?: TaskStore;
  /** How many events may wait for one subscriber before its stream is ended (default 1024). */
  subscriberBufferLimit?: number;
}

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

/** A task that is executing, being subscribed to, or being changed right now. */
class ActiveTask {
  record: TaskRecord | undefined;
  readonly subscribers = new Set<Subscription>();
  chain: Promise<void> = Promise.resolve();
  executing = false;
  /** Settles when the latest execution has finished, including its bookkeeping. */
  finished: Promise<void> = Promise.resolve();
  controller = new AbortController();
  context: RequestContext | undefined;
  replied = false;

  constructor(readonly id: string, readonly owner: string, record?: TaskRecord) {
    this.record = record;
  }

  get state(): TaskState | undefined {
    return this.record?.task.status.state;
  }
}

function now(): string {
  return new Date().toISOString();
}

function isFinal(state: TaskState | undefined): boolean {
  return state !== undefined && (TERMINAL_STATES.has(state) || INTERRUPTED_STATES.has(state));
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
  if (includeArtifacts && task.artifacts) out.artifacts = task.artifacts;
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

function mergeArtifact(existing: Artifact[] | undefined, artifact: Artifact, append: boolean) {
  const list = existing ? [...existing] : [];
  const i = list.findIndex((a) => a.artifactId === artifact.artifactId);
  if (i < 0) list.push(artifact);
  else if (append) {
    const prev = list[i]!;
    list[i] = { ...prev, ...artifact, parts: [...prev.parts, ...artifact.parts] };
  } else list[i] = artifact;
  return list;
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
  #bufferLimit: number;
  #active = new Map<string, ActiveTask>();
  #listeners = new Set<TaskEventListener>();
  #hooks = new Set<MessageHook>();
  #closed = false;

  /**
   * Creates a task core with no tasks running.
   *
   * @param options The executor, the store and limits.
   */
  constructor(options: TaskManagerOptions) {
    this.#executor = options.executor;
    this.#store = options.store ?? new InMemoryTaskStore();
    this.#bufferLimit = options.subscriberBufferLimit ?? 1024;
  }

  /** The store this manager writes to. */
  get store(): TaskStore {
    return this.#store;
  }

  /** How many tasks are executing or have subscribers right now. */
  get activeCount(): number {
    return this.#active.size;
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
   * @returns The task, or the agent's direct reply.
   */
  async sendMessage(userId: string, request: SendMessageRequest): Promise<SendMessageResponse> {
    const { active, sub } = await this.#start(userId, request);
    const historyLength = request.configuration?.historyLength;
    const immediate = request.configuration?.returnImmediately === true;
    try {
      for await (const event of sub) {
        if (event.message) return { message: event.message };
        if (immediate && active.record) break;
      }
    } finally {
      sub.close();
    }
    if (!active.record) throw new InvalidAgentResponseError("The agent produced no task");
    return { task: trimTask(active.record.task, historyLength) };
  }

  /**
   * Handles SendStreamingMessage: creates or continues a task and returns its event stream,
   * which ends after a terminal or interrupted state (or after a direct reply).
   *
   * @param userId The authenticated user.
   * @param request The validated request.
   * @returns The subscription; close it to stop receiving.
   */
  async sendStreamingMessage(userId: string, request: SendMessageRequest): Promise<Subscription> {
    return (await this.#start(userId, request, this.#bufferLimit)).sub;
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
    const active = await this.#activate(userId, request.id);
    const opened = this.#serialize(active, async () => {
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
      const sub = this.#subscriber(active, afterSeq ?? record.lastSeq, Infinity);
      if (afterSeq === undefined) {
        sub.push({ seq: record.lastSeq, task: trimTask(record.task, undefined) });
      } else {
        for (const e of await this.#store.events(active.id, afterSeq)) sub.push(e);
        if (TERMINAL_STATES.has(state)) sub.end();
      }
      sub.setLimit(this.#bufferLimit);
      return sub;
    });
    return await opened.catch((err) => {
      this.#release(active);
      throw err;
    });
  }

  /**
   * Handles GetTask.
   *
   * @param userId The authenticated user.
   * @param request The validated request.
   * @returns The task, with history trimmed to `historyLength`.
   */
  async getTask(userId: string, request: GetTaskRequest): Promise<Task> {
    const record = await this.#load(userId, request.id);
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
    try {
      const state = active.state!;
      if (TERMINAL_STATES.has(state)) throw new TaskNotCancelableError(request.id);
      const ctx = active.context;
      if (!active.controller.signal.aborted) {
        active.controller.abort(new UnsupportedOperationError("The task was canceled"));
      }
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
        if (!TERMINAL_STATES.has(active.state!)) {
          await this.#applyStatus(active, "TASK_STATE_CANCELED", {});
        }
      });
      if (active.state !== "TASK_STATE_CANCELED") {
        throw new TaskNotCancelableError(request.id);
      }
      return trimTask(active.record!.task, undefined);
    } finally {
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
    for (const stale of await this.#store.unfinished?.() ?? []) {
      const id = stale.task.id;
      let active = this.#active.get(id);
      if (active?.executing) continue;
      if (!active) {
        active = new ActiveTask(id, stale.owner, stale);
        this.#active.set(id, active);
      }
      const current = active;
      try {
        await this.#serialize(current, async () => {
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

  async #load(userId: string, taskId: string): Promise<TaskRecord> {
    const active = this.#active.get(taskId);
    const record = active?.record ?? await this.#store.get(taskId);
    if (!record || record.owner !== userId) throw new TaskNotFoundError(taskId);
    return record;
  }

  /** Returns the one ActiveTask of an existing task, creating it from the store if needed. */
  async #activate(userId: string, taskId: string): Promise<ActiveTask> {
    let active = this.#active.get(taskId);
    if (!active) {
      const record = await this.#store.get(taskId);
      active = this.#active.get(taskId);
      if (!active && record) {
        active = new ActiveTask(taskId, record.owner, record);
        this.#active.set(taskId, active);
      }
    }
    if (!active || !active.record || active.owner !== userId) {
      if (active) this.#release(active);
      throw new TaskNotFoundError(taskId);
    }
    return active;
  }

  /** Forgets an ActiveTask that is neither executing nor subscribed to. */
  #release(active: ActiveTask): void {
    if (
      !active.executing && active.subscribers.size === 0 && this.#active.get(active.id) === active
    ) {
      this.#active.delete(active.id);
    }
  }

  #subscriber(active: ActiveTask, afterSeq: number, limit: number): Subscription {
    const sub = new Subscription(limit, afterSeq, () => {
      active.subscribers.delete(sub);
      this.#release(active);
    });
    active.subscribers.add(sub);
    return sub;
  }

  #serialize<T>(active: ActiveTask, fn: () => Promise<T>): Promise<T> {
    const run = active.chain.then(fn);
    active.chain = run.then(() => {}, () => {});
    return run;
  }

  async #start(
    userId: string,
    request: SendMessageRequest,
    limit = Infinity,
  ): Promise<{ active: ActiveTask; sub: Subscription }> {
    if (this.#closed) throw new ServiceUnavailableError("The server is shutting down");
    const message = request.message;
    let active: ActiveTask;
    let contextId: string;
    let previous: Task | undefined;
    if (message.taskId !== undefined && message.taskId !== "") {
      active = await this.#activate(userId, message.taskId);
      if (active.executing && INTERRUPTED_STATES.has(active.state!)) {
        // The caller has seen the interrupted state, but the execution that set it may still be
        // returning: let it finish rather than refuse an immediate follow-up.
        await active.finished;
        active = await this.#activate(userId, message.taskId);
      }
      try {
        const task = active.record!.task;
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
      } catch (err) {
        this.#release(active);
        throw err;
      }
      previous = active.record!.task;
      contextId = previous.contextId;
      active.controller = new AbortController();
    } else {
      const id = crypto.randomUUID();
      active = new ActiveTask(id, userId);
      this.#active.set(id, active);
      contextId = message.contextId || crypto.randomUUID();
    }
    const msg: Message = { ...message, taskId: active.id, contextId };
    const ctx: RequestContext = {
      userId,
      taskId: active.id,
      contextId,
      message: msg,
      task: previous,
      configuration: request.configuration,
      metadata: request.metadata,
      signal: active.controller.signal,
    };
    active.context = ctx;
    active.executing = true;
    try {
      for (const hook of this.#hooks) await hook(userId, active.id, request);
    } catch (err) {
      active.executing = false;
      this.#release(active);
      throw err;
    }

    let sub: Subscription;
    if (previous) {
      // A continuation: record the message, then stream from a snapshot of the task.
      sub = await this.#serialize(active, async () => {
        const record = active.record!;
        const task = { ...record.task, history: [...record.task.history ?? [], msg] };
        active.record = { ...record, task };
        await this.#store.commit(active.record);
        const s = this.#subscriber(active, record.lastSeq, limit);
        s.push({ seq: record.lastSeq, task: trimTask(task, request.configuration?.historyLength) });
        return s;
      });
    } else {
      sub = this.#subscriber(active, 0, limit);
    }
    this.#run(active, ctx);
    return { active, sub };
  }

  #run(active: ActiveTask, ctx: RequestContext): void {
    const publisher = this.#publisher(active);
    let outcome: unknown = undefined;
    let failed = false;
    // A continuation starts in an interrupted state: only one this execution set counts as final.
    const startSeq = active.record?.lastSeq ?? 0;
    active.finished = Promise.resolve()
      .then(() => this.#executor.execute(ctx, publisher))
      .catch((err) => {
        failed = true;
        outcome = err;
      })
      .then(() =>
        this.#serialize(active, async () => {
          if (active.replied) {
            for (const s of active.subscribers) s.end();
            return;
          }
          const state = active.state;
          if (
            state !== undefined && (TERMINAL_STATES.has(state) ||
              (INTERRUPTED_STATES.has(state) && active.record!.lastSeq > startSeq))
          ) {
            return;
          }
          if (failed && state === undefined && outcome instanceof A2AError) {
            // The agent refused the message before creating a task (e.g. an unsupported content
            // type): the caller gets that error and no task exists.
            for (const s of active.subscribers) s.fail(outcome);
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
          await this.#applyStatus(active, "TASK_STATE_FAILED", { message: reason });
        })
      )
      .catch((err) =>
        log.error("Could not finish task {taskId}: {error}", { taskId: active.id, error: err })
      )
      .finally(() => {
        active.executing = false;
        this.#release(active);
      });
  }

  #publisher(active: ActiveTask): EventPublisher {
    return {
      status: (state, options = {}) =>
        this.#serialize(active, () => this.#applyStatus(active, state, options)),
      artifact: (artifact, options = {}) =>
        this.#serialize(active, () => this.#applyArtifact(active, artifact, options)),
      reply: (value) =>
        this.#serialize(active, () => {
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
    const ctx = active.context!;
    const task: Task = {
      id: active.id,
      contextId: ctx.contextId,
      status: { state: "TASK_STATE_SUBMITTED", timestamp: now() },
      history: [ctx.message],
    };
    const record: TaskRecord = { owner: active.owner, task, lastSeq: 1 };
    await this.#commit(active, record, { seq: 1, task: trimTask(task, undefined) });
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
      seq,
      statusUpdate: options.metadata
        ? { ...statusUpdate, metadata: options.metadata }
        : statusUpdate,
    });
  }

  async #applyArtifact(
    active: ActiveTask,
    artifact: Artifact,
    options: ArtifactOptions,
  ): Promise<void> {
    const record = await this.#ensureCreated(active);
    const task = record.task;
    if (TERMINAL_STATES.has(task.status.state)) {
      throw new UnsupportedOperationError(
        `Task ${task.id} is already in terminal state ${task.status.state}`,
      );
    }
    if (!artifact.artifactId || artifact.parts.length === 0) {
      throw new InvalidAgentResponseError("An artifact needs an artifactId and at least one part");
    }
    const next: Task = {
      ...task,
      artifacts: mergeArtifact(task.artifacts, artifact, options.append === true),
    };
    const seq = record.lastSeq + 1;
    const update: NonNullable<StreamEvent["artifactUpdate"]> = {
      taskId: task.id,
      contextId: task.contextId,
      artifact,
    };
    if (options.append !== undefined) update.append = options.append;
    if (options.lastChunk !== undefined) update.lastChunk = options.lastChunk;
    if (options.metadata) update.metadata = options.metadata;
    await this.#commit(active, { ...record, task: next, lastSeq: seq }, {
      seq,
      artifactUpdate: update,
    });
  }

  /** Stores the new state with its event, then hands the event to every subscriber. */
  async #commit(active: ActiveTask, record: TaskRecord, event: StreamEvent): Promise<void> {
    await this.#store.commit(record, event);
    active.record = record;
    for (const s of active.subscribers) s.push(event);
    for (const l of this.#listeners) {
      try {
        l(record.owner, event);
      } catch (err) {
        log.error("Task event listener failed: {error}", { error: err });
      }
    }
    if (isFinal(record.task.status.state)) {
      for (const s of active.subscribers) s.end();
    }
  }
}
