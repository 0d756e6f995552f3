// Where tasks, their event logs and their push configs live: the TaskStore interface that a
// persistent backend implements, and the in-memory store used by default.

import { InternalError, InvalidParamsError, TaskNotFoundError } from "../errors/errors.ts";
import { ListingIndex, type ListingKey } from "./listing_index.ts";
import { FifoMap } from "../util/fifo_map.ts";
import {
  INTERRUPTED_STATES,
  type Message,
  type StreamResponse,
  type Task,
  type TaskState,
  TERMINAL_STATES,
} from "../types/core.ts";
import type { TaskPushNotificationConfig } from "../types/requests.ts";

/** A StreamResponse with its position in its task's event log (1, 2, 3, ...). */
export type StreamEvent = StreamResponse & {
  /** The event's sequence number within its task; strictly increasing by one. */
  seq: number;
};

/** A task with the user it belongs to and the sequence number of its latest event. */
export interface TaskRecord {
  /** The id of the user who created the task. */
  owner: string;
  /** The task's current state, with its full history and artifacts. */
  task: Task;
  /** The `seq` of the latest event in the task's log. */
  lastSeq: number;
}

/**
 * What one commit changed, besides the task's status and `lastSeq`, so that a store can write
 * only that: the cost of a commit is then in proportion to the change, not to the task.
 */
export interface TaskChange {
  /** The event logged with this change; absent for a follow-up message, which logs none. */
  event?: StreamEvent;
  /** The commit creates the task: everything in it is new. */
  created?: boolean;
  /** How many messages this commit appended at the end of `task.history` (default 0). */
  historyAppended?: number;
  /**
   * The artifact this commit wrote: its position in `task.artifacts`, and the position of its
   * first new part. `fromPart` is 0 when the artifact is new or replaced, and the number of parts
   * it had before when the commit appended to it.
   */
  artifact?: { index: number; fromPart: number };
}

/** A user message as stored in a task's history, with the task's id. */
export interface StoredMessage {
  /** The task the message went into. */
  taskId: string;
  /** The message, with the `taskId` and `contextId` the server filled in. */
  message: Message;
}

/** Which parts of a task a read needs. */
export interface TaskView {
  /** Only the last this many history messages (0 for none); all when absent. */
  historyLength?: number;
  /** Read the artifacts (default true). */
  artifacts?: boolean;
}

/** Filters and paging of a task listing, already validated. */
export interface TaskQuery {
  /** Only tasks of this context. */
  contextId?: string;
  /** Only tasks in this state. */
  status?: TaskState;
  /** Only tasks whose status timestamp is later than this (milliseconds since the epoch). */
  statusTimestampAfter?: number;
  /** How many tasks per page. */
  pageSize: number;
  /** The cursor from the previous page, or `""` for the first page. */
  pageToken: string;
  /** What of each listed task the caller needs; the whole task when absent. */
  view?: TaskView;
}

/** One page of a task listing. */
export interface TaskPage {
  /** The tasks of this page, most recently updated first. */
  records: TaskRecord[];
  /** The cursor of the next page, or `""` on the last page. */
  nextPageToken: string;
  /** How many tasks match the filters. */
  totalSize: number;
}

/** A push notification config with the user it belongs to. */
export interface PushConfigRecord {
  /** The id of the user who created the config. */
  owner: string;
  /** The config, with `id` and `taskId` set. */
  config: TaskPushNotificationConfig & { id: string; taskId: string };
}

/**
 * Storage for tasks, their event logs and push configs. The task core serializes the writes for
 * one task, so an implementation only needs each call to be atomic on its own.
 */
export interface TaskStore {
  /**
   * Reads a task, or undefined when there is none with that id. With a view, the record's task
   * holds only what the view asks for (a store may read only that).
   */
  get(taskId: string, view?: TaskView): Promise<TaskRecord | undefined>;
  /**
   * Saves a task's new state and, atomically with it, appends the event of the change (whose
   * `seq` is `record.lastSeq`). A seq is written once: a commit whose event's seq is already
   * logged fails and changes nothing. `change` says what differs from the previous commit, so a
   * store need not rewrite the whole task.
   */
  commit(record: TaskRecord, change: TaskChange): Promise<void>;
  /**
   * Finds the task that a user's message went into, by the message's id: the task and the message
   * as stored. Every user message a commit adds to a history (the first message of a created task,
   * a follow-up) is found this way for as long as its task is kept; messages of other users are
   * not.
   */
  findMessage(owner: string, messageId: string): Promise<StoredMessage | undefined>;
  /** Reads a task's logged events with `seq` greater than `afterSeq`, in order. */
  events(taskId: string, afterSeq: number): Promise<StreamEvent[]>;
  /** Lists one user's tasks, most recently updated first. */
  list(owner: string, query: TaskQuery): Promise<TaskPage>;
  /**
   * Creates or replaces a push config. A config may come before its task's first commit; a store
   * that has just evicted the task refuses it with a `TaskNotFoundError` rather than keep a config
   * nothing will ever delete.
   */
  putPushConfig(record: PushConfigRecord): Promise<void>;
  /** Reads a push config. */
  getPushConfig(taskId: string, id: string): Promise<PushConfigRecord | undefined>;
  /** Lists a task's push configs. */
  listPushConfigs(taskId: string): Promise<PushConfigRecord[]>;
  /** Deletes a push config; true when it existed (false once its task was evicted with it). */
  deletePushConfig(taskId: string, id: string): Promise<boolean>;
  /**
   * Counts one user's push configs over every task the store keeps, in O(1) or O(log n): what a
   * per-user quota checks before it creates one. A replaced config counts once; the configs of an
   * evicted task stop counting with it. Optional: without it there is no per-user quota.
   */
  countPushConfigs?(owner: string): Promise<number>;
  /**
   * Tells who owns a context: the owner of the first task created in it, for as long as the store
   * keeps any task of that context (evicting the last one forgets the context). A store that has
   * it also refuses, with an `InvalidParamsError` (`contextId belongs to another user`), a commit
   * that creates a task in a context another user owns, atomically with the creation, so that of
   * two users racing for one new contextId only one wins. Optional: a store without it keeps no
   * context owners.
   */
  contextOwner?(contextId: string): Promise<string | undefined>;
  /**
   * Lists the tasks that are neither finished nor interrupted (SUBMITTED or WORKING): after a
   * restart, these are the tasks whose execution died with the old process. Optional: a store
   * without it is not recovered by `TaskManager.recover()`.
   */
  unfinished?(): Promise<TaskRecord[]>;
  /**
   * Checks that the store can be reached (a database round trip), for `GET /ready`: resolves
   * when it can, rejects with the reason when it cannot. Optional: a store without it counts as
   * reachable. The server bounds the wait and caches the answer briefly.
   */
  ping?(): Promise<void>;
}

/**
 * Tells whether a task in this state was still being worked on: not terminal and not waiting
 * for the client.
 *
 * @param state The task's state.
 * @returns True for SUBMITTED, WORKING (and UNSPECIFIED).
 */
export function isUnfinishedState(state: TaskState): boolean {
  return !TERMINAL_STATES.has(state) && !INTERRUPTED_STATES.has(state);
}

/** Orders records by status timestamp, newest first, then by id for a stable order. */
function compareRecords(a: TaskRecord, b: TaskRecord): number {
  const ta = a.task.status.timestamp ?? "";
  const tb = b.task.status.timestamp ?? "";
  if (ta !== tb) return ta < tb ? 1 : -1;
  return a.task.id < b.task.id ? 1 : a.task.id > b.task.id ? -1 : 0;
}

/**
 * Encodes the position after a record as an opaque page token.
 *
 * @param record The last record of a page.
 * @returns The token that starts the next page.
 */
export function encodePageToken(record: TaskRecord): string {
  return btoa(JSON.stringify([record.task.status.timestamp ?? "", record.task.id]));
}

/**
 * Decodes a page token made by {@linkcode encodePageToken}.
 *
 * @param token The token.
 * @returns The timestamp and id of the last record of the previous page, or undefined when the
 * token is malformed.
 */
export function decodePageToken(token: string): [string, string] | undefined {
  try {
    const v: unknown = JSON.parse(atob(token));
    if (
      Array.isArray(v) && v.length === 2 && typeof v[0] === "string" && typeof v[1] === "string"
    ) {
      return [v[0], v[1]];
    }
  } catch {
    // fall through: a malformed token
  }
  return undefined;
}

/**
 * Applies a task query to records in memory: filter, order, then cut one page.
 *
 * @param all Every record of the user.
 * @param query The validated query.
 * @returns The page.
 */
export function pageOf(all: Iterable<TaskRecord>, query: TaskQuery): TaskPage {
  const matching: TaskRecord[] = [];
  for (const r of all) {
    if (query.contextId !== undefined && r.task.contextId !== query.contextId) continue;
    if (query.status !== undefined && r.task.status.state !== query.status) continue;
    if (query.statusTimestampAfter !== undefined) {
      const ts = Date.parse(r.task.status.timestamp ?? "");
      if (!(ts > query.statusTimestampAfter)) continue;
    }
    matching.push(r);
  }
  matching.sort(compareRecords);
  let start = 0;
  if (query.pageToken !== "") {
    const cursor = decodePageToken(query.pageToken);
    if (cursor === undefined) throw new RangeError("pageToken is not a token this server issued");
    const [ts, id] = cursor;
    const pivot = {
      owner: "",
      lastSeq: 0,
      task: {
        id,
        contextId: "",
        status: { state: "TASK_STATE_UNSPECIFIED" as const, timestamp: ts },
      },
    };
    while (start < matching.length && compareRecords(matching[start]!, pivot) <= 0) start++;
  }
  const records = matching.slice(start, start + query.pageSize);
  const more = start + query.pageSize < matching.length;
  return {
    records,
    nextPageToken: more && records.length > 0 ? encodePageToken(records[records.length - 1]!) : "",
    totalSize: matching.length,
  };
}

/**
 * Lists the user messages a commit adds to the task's history: what `findMessage` must find.
 *
 * @param record The task after the commit.
 * @param change What the commit changed.
 * @returns The new messages whose role is ROLE_USER.
 */
export function userMessagesOf(record: TaskRecord, change: TaskChange): Message[] {
  const history = record.task.history ?? [];
  const added = change.created
    ? history
    : history.slice(history.length - (change.historyAppended ?? 0));
  return added.filter((m) => m.role === "ROLE_USER");
}

/**
 * Cuts a record down to a view: the last `historyLength` messages, artifacts only when asked.
 *
 * @param record The whole record.
 * @param view What to keep.
 * @returns A record whose task holds what the view asks for.
 */
export function viewOf(record: TaskRecord, view: TaskView): TaskRecord {
  const { history, artifacts, ...rest } = record.task;
  const task: Task = rest;
  if (artifacts && view.artifacts !== false) task.artifacts = artifacts;
  if (history && view.historyLength !== 0) {
    task.history = view.historyLength === undefined ? history : history.slice(-view.historyLength);
  }
  return { ...record, task };
}

/** How long a store keeps tasks that have ended. */
export interface RetentionOptions {
  /**
   * How many tasks in a terminal state are kept; beyond that the oldest to have ended are
   * evicted, with their event logs, push configs and messages (default 10 000).
   */
  maxTerminalTasks?: number;
  /** How long a task is kept after it ended, in milliseconds (default 24 hours). */
  terminalTtlMs?: number;
  /**
   * The clock that dates the end of a task and decides when its time is up, in milliseconds since
   * the epoch (default `Date.now`): for tests.
   */
  now?: () => number;
}

/** Retention options with their defaults filled in. */
export interface Retention {
  /** See {@linkcode RetentionOptions.maxTerminalTasks}. */
  maxTerminalTasks: number;
  /** See {@linkcode RetentionOptions.terminalTtlMs}. */
  terminalTtlMs: number;
  /** See {@linkcode RetentionOptions.now}. */
  now: () => number;
}

/**
 * Fills in the defaults of retention options and checks them.
 *
 * @param options The options, as given.
 * @returns The limits in force (`Infinity` turns one off).
 * @throws {RangeError} When a limit is negative or not a number.
 */
export function retentionOf(options: RetentionOptions = {}): Retention {
  const max = options.maxTerminalTasks ?? 10_000;
  if (!(max >= 0) || (Number.isFinite(max) && !Number.isInteger(max))) {
    throw new RangeError(`Invalid maxTerminalTasks: ${max} (a whole number, at least 0)`);
  }
  const ttl = options.terminalTtlMs ?? 24 * 60 * 60 * 1000;
  if (!(ttl >= 0)) throw new RangeError(`Invalid terminalTtlMs: ${ttl} (at least 0)`);
  return { maxTerminalTasks: max, terminalTtlMs: ttl, now: options.now ?? (() => Date.now()) };
}

/** The error of a commit that creates a task in a context another user owns. */
export function contextTakenError(): InvalidParamsError {
  return new InvalidParamsError("contextId belongs to another user", [
    { field: "message.contextId", description: "belongs to another user" },
  ]);
}

/** How many evicted task ids a store remembers, to refuse a push config that comes too late. */
export const RECENTLY_EVICTED: number = 10_000;

/** Options of an {@linkcode InMemoryTaskStore}. */
export interface InMemoryTaskStoreOptions {
  /** Eviction of ended tasks; tasks that have not ended are never evicted. */
  retention?: RetentionOptions;
}

/**
 * The default TaskStore: everything in memory, gone when the process ends. Ended tasks are
 * evicted beyond a count and after a time (see {@linkcode RetentionOptions}), so that a server
 * that runs for months stays flat; a task that has not ended stays until it does. Eviction runs
 * as tasks are written, so it needs no timer.
 *
 * @example Store and read a task
 * ```ts
 * import { InMemoryTaskStore } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * const store = new InMemoryTaskStore();
 * const task = { id: "t1", contextId: "c1", status: { state: "TASK_STATE_SUBMITTED" as const } };
 * await store.commit({ owner: "alice", task, lastSeq: 1 }, { created: true, event: { seq: 1, task } });
 * assert.equal((await store.get("t1"))?.owner, "alice");
 * assert.equal((await store.events("t1", 0)).length, 1);
 * assert.equal(await store.contextOwner("c1"), "alice");
 * ```
 */
export class InMemoryTaskStore implements TaskStore {
  #tasks = new Map<string, TaskRecord>();
  #byOwner = new Map<string, ListingIndex>();
  #events = new Map<string, StreamEvent[]>();
  #push = new Map<string, Map<string, PushConfigRecord>>();
  /** How many push configs each user has, over all tasks. */
  #pushCount = new Map<string, number>();
  #messages = new Map<string, StoredMessage>();
  /** The message ids of each task, to drop its idempotency records with it. */
  #messageIds = new Map<string, string[]>();
  /** Each context's owner and how many kept tasks are in it. */
  #contexts = new Map<string, { owner: string; tasks: number }>();
  /** Ended tasks by the time they ended, oldest first. */
  #ended = new FifoMap<string, number>();
  /** The ids of the tasks evicted last, oldest first. */
  #evicted = new FifoMap<string, true>();
  #retention: Retention;

  /**
   * Creates an empty store.
   *
   * @param options The retention of ended tasks.
   * @throws {RangeError} When a retention limit is negative or not a number.
   */
  constructor(options: InMemoryTaskStoreOptions = {}) {
    this.#retention = retentionOf(options.retention);
  }

  /** How many tasks the store holds. */
  get size(): number {
    return this.#tasks.size;
  }

  /** Reads a task. */
  get(taskId: string, view?: TaskView): Promise<TaskRecord | undefined> {
    const record = this.#tasks.get(taskId);
    return Promise.resolve(record && view ? viewOf(record, view) : record);
  }

  /**
   * Saves a task and appends its event. A task created in a context that another user owns is
   * refused with an `InvalidParamsError`, changing nothing.
   */
  commit(record: TaskRecord, change: TaskChange): Promise<void> {
    const id = record.task.id;
    const event = change.event;
    if (event) {
      const logged = this.#events.get(id)?.length ?? 0;
      if (event.seq <= logged) {
        return Promise.reject(
          new InternalError(`Cannot log event ${event.seq} of task ${id}: it is logged`),
        );
      }
    }
    const old = this.#tasks.get(id);
    if (!old && !change.created && this.#evicted.has(id)) {
      return Promise.reject(new InternalError(`Cannot store task ${id}: it was evicted`));
    }
    const contextId = record.task.contextId;
    const joins = !old || old.task.contextId !== contextId;
    if (joins || change.created) {
      const held = this.#contexts.get(contextId);
      if (held && held.owner !== record.owner) return Promise.reject(contextTakenError());
    }
    this.#evicted.delete(id);
    this.#tasks.set(id, record);
    if (joins) {
      if (old) this.#leaveContext(old.task.contextId);
      const held = this.#contexts.get(contextId);
      if (held) held.tasks++;
      else this.#contexts.set(contextId, { owner: record.owner, tasks: 1 });
    }
    const ts = record.task.status.timestamp ?? "";
    const oldTs = old?.task.status.timestamp ?? "";
    if (!old || oldTs !== ts || old.owner !== record.owner) {
      if (old) this.#byOwner.get(old.owner)?.delete({ ts: oldTs, id });
      let mine = this.#byOwner.get(record.owner);
      if (!mine) this.#byOwner.set(record.owner, mine = new ListingIndex());
      mine.insert({ ts, id });
    }
    for (const message of userMessagesOf(record, change)) {
      this.#messages.set(`${record.owner}\u0000${message.messageId}`, { taskId: id, message });
      let ids = this.#messageIds.get(id);
      if (!ids) this.#messageIds.set(id, ids = []);
      ids.push(message.messageId);
    }
    if (!TERMINAL_STATES.has(record.task.status.state)) {
      // Back from a terminal state (only a store's own tests do that): not evicted any more.
      this.#ended.delete(id);
    } else if (!this.#ended.has(id)) this.#ended.set(id, this.#retention.now());
    if (event) {
      let log = this.#events.get(id);
      if (!log) this.#events.set(id, log = []);
      log.push(event);
    }
    this.#evict();
    return Promise.resolve();
  }

  /** One task fewer in a context; the context is forgotten with its last task. */
  #leaveContext(contextId: string): void {
    const held = this.#contexts.get(contextId);
    if (held && --held.tasks <= 0) this.#contexts.delete(contextId);
  }

  #countPush(owner: string, delta: number): void {
    const n = (this.#pushCount.get(owner) ?? 0) + delta;
    if (n > 0) this.#pushCount.set(owner, n);
    else this.#pushCount.delete(owner);
  }

  /** Drops the ended tasks beyond the count and past the time limit, oldest first. */
  #evict(): void {
    const { maxTerminalTasks, terminalTtlMs, now } = this.#retention;
    const expired = now() - terminalTtlMs;
    for (let oldest = this.#ended.first(); oldest; oldest = this.#ended.first()) {
      const [id, at] = oldest;
      if (this.#ended.size <= maxTerminalTasks && at > expired) break;
      this.#ended.shift();
      const record = this.#tasks.get(id);
      this.#tasks.delete(id);
      this.#events.delete(id);
      for (const config of this.#push.get(id)?.values() ?? []) this.#countPush(config.owner, -1);
      this.#push.delete(id);
      for (const messageId of this.#messageIds.get(id) ?? []) {
        this.#messages.delete(`${record?.owner}\u0000${messageId}`);
      }
      this.#messageIds.delete(id);
      if (record) {
        this.#leaveContext(record.task.contextId);
        const index = this.#byOwner.get(record.owner);
        index?.delete({ ts: record.task.status.timestamp ?? "", id });
        if (index?.size === 0) this.#byOwner.delete(record.owner);
      }
      this.#evicted.set(id, true);
      if (this.#evicted.size > RECENTLY_EVICTED) this.#evicted.shift();
    }
  }

  /** Finds a user's message by its id. */
  findMessage(owner: string, messageId: string): Promise<StoredMessage | undefined> {
    return Promise.resolve(this.#messages.get(`${owner}\u0000${messageId}`));
  }

  /** Reads logged events after a sequence number. */
  events(taskId: string, afterSeq: number): Promise<StreamEvent[]> {
    const log = this.#events.get(taskId) ?? [];
    // seq starts at 1 and increases by one, so the index of seq n is n - 1.
    return Promise.resolve(log.slice(Math.max(0, afterSeq)));
  }

  /**
   * Lists a user's tasks from an index kept in the listing's order: without filters a page is a
   * binary search and a slice; filters scan the user's tasks.
   */
  list(owner: string, query: TaskQuery): Promise<TaskPage> {
    try {
      const index = this.#byOwner.get(owner) ?? new ListingIndex();
      const filtered = query.contextId !== undefined || query.status !== undefined ||
        query.statusTimestampAfter !== undefined;
      if (filtered) {
        const all = [...index.values()].map((k) => this.#tasks.get(k.id)!);
        return Promise.resolve(pageOf(all, query));
      }
      let cursor: ListingKey | undefined;
      if (query.pageToken !== "") {
        const decoded = decodePageToken(query.pageToken);
        if (decoded === undefined) {
          throw new RangeError("pageToken is not a token this server issued");
        }
        cursor = { ts: decoded[0], id: decoded[1] };
      }
      const { keys, more } = index.page(cursor, query.pageSize);
      const records = keys.map((k) => this.#tasks.get(k.id)!);
      const last = records.at(-1);
      return Promise.resolve({
        records,
        nextPageToken: more && last ? encodePageToken(last) : "",
        totalSize: index.size,
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Creates or replaces a push config; refuses one of a task it has just evicted. */
  putPushConfig(record: PushConfigRecord): Promise<void> {
    const taskId = record.config.taskId;
    if (!this.#tasks.has(taskId) && this.#evicted.has(taskId)) {
      return Promise.reject(new TaskNotFoundError(taskId));
    }
    let forTask = this.#push.get(taskId);
    if (!forTask) this.#push.set(taskId, forTask = new Map());
    const before = forTask.get(record.config.id);
    forTask.set(record.config.id, record);
    if (before?.owner !== record.owner) {
      if (before) this.#countPush(before.owner, -1);
      this.#countPush(record.owner, 1);
    }
    return Promise.resolve();
  }

  /** Reads a push config. */
  getPushConfig(taskId: string, id: string): Promise<PushConfigRecord | undefined> {
    return Promise.resolve(this.#push.get(taskId)?.get(id));
  }

  /** Lists a task's push configs. */
  listPushConfigs(taskId: string): Promise<PushConfigRecord[]> {
    return Promise.resolve([...this.#push.get(taskId)?.values() ?? []]);
  }

  /** Deletes a push config. */
  deletePushConfig(taskId: string, id: string): Promise<boolean> {
    const forTask = this.#push.get(taskId);
    const record = forTask?.get(id);
    if (!forTask || !record) return Promise.resolve(false);
    forTask.delete(id);
    if (forTask.size === 0) this.#push.delete(taskId);
    this.#countPush(record.owner, -1);
    return Promise.resolve(true);
  }

  /** Counts a user's push configs, from a counter kept by put, delete and eviction. */
  countPushConfigs(owner: string): Promise<number> {
    return Promise.resolve(this.#pushCount.get(owner) ?? 0);
  }

  /** Tells who owns a context, from a map kept by commit and eviction. */
  contextOwner(contextId: string): Promise<string | undefined> {
    return Promise.resolve(this.#contexts.get(contextId)?.owner);
  }

  /** Lists the tasks left SUBMITTED or WORKING. */
  unfinished(): Promise<TaskRecord[]> {
    return Promise.resolve(
      [...this.#tasks.values()].filter((r) => isUnfinishedState(r.task.status.state)),
    );
  }

  /** Always reachable: the tasks are in this process. */
  ping(): Promise<void> {
    return Promise.resolve();
  }
}
