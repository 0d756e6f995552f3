// A TaskStore on PostgreSQL that several server processes share: the event log is the truth,
// NOTIFY only rings a doorbell, and each running task is leased to the process that runs it.

import postgres from "postgres";
import { getLogger } from "@logtape/logtape";
import { InternalError, TaskNotFoundError } from "../errors/errors.ts";
import { type Artifact, type Message, type Task, TERMINAL_STATES } from "../types/core.ts";
import {
  CANCEL_CHANNEL,
  EVENTS_CHANNEL,
  migrate,
  sharePool,
  type Sql,
  unsharePool,
} from "./pg_schema.ts";
import type { DeliveryOutcome, PushDelivery, SharedTaskStore, Unwatch } from "./shared_store.ts";
import { PostgresTicketStore } from "../auth/pg_ticket_store.ts";
import {
  contextTakenError,
  decodePageToken,
  encodePageToken,
  isUnfinishedState,
  type PushConfigRecord,
  RECENTLY_EVICTED,
  type Retention,
  retentionOf,
  type RetentionOptions,
  type StoredMessage,
  type StreamEvent,
  type TaskChange,
  type TaskPage,
  type TaskQuery,
  type TaskRecord,
  type TaskView,
  userMessagesOf,
} from "./store.ts";

const log = getLogger(["a2a-capnweb", "pg"]);

/** How many tasks one eviction transaction deletes at most. */
const EVICT_BATCH = 100;
/** The longest pause between eviction rounds when no task ends, in milliseconds. */
const EVICT_EVERY_MS = 60_000;
/**
 * The least time between two eviction rounds that commits ask for: a round reads up to
 * `maxTerminalTasks` index entries to find its cutoff, so one per ended task would cost more
 * than the commits under load. Tasks that end meanwhile wait for the next round (at most this long).
 */
const EVICT_MIN_GAP_MS = 1000;
/** How many events one watch read returns at most; a full batch is followed by another read. */
const WATCH_BATCH = 1000;
/** The least time between two reads of one task's log that doorbells start, in milliseconds. */
const READ_SPACING_MS = 2;
/** After this many reads of a task failed in a row, its watches end with the error. */
const WATCH_FAILURES = 5;
/** How many context ids' SHA-256 a store keeps, to save hashing on every commit. */
const CONTEXT_KEYS = 1000;
/** A process row whose heartbeat is older than this many lease times is deleted. */
const STALE_LEASES = 100;
/** The class id of the advisory lock on a task id (as the commit function takes it). */
const TASK_LOCK = 4243;
/** The longest pause between attempts to listen again after the connection dropped. */
const RELISTEN_MAX_MS = 5000;

/** Options of {@linkcode PostgresTaskStore.connect}. */
export interface PostgresTaskStoreOptions {
  /**
   * Eviction of ended tasks, as in the other stores: at most `maxTerminalTasks` (10 000) tasks in
   * a terminal state are kept in the database, each for at most `terminalTtlMs` (24 hours) after
   * it ended, with everything stored for them; tasks that have not ended are never evicted.
   */
  retention?: RetentionOptions;
  /**
   * How long this process's lease on the tasks it runs lasts without a renewal, in milliseconds
   * (default 15 000, at least 50). It is renewed every fifth of that; another process may fail the
   * tasks of a process that has not renewed it for this long (see `lapsed()`).
   */
  leaseMs?: number;
  /**
   * How often every watch reads its task's log whether or not a notification came, and how often
   * pending cancel requests are read back, in milliseconds (default 1000, at least 10): the
   * latency that a lost notification costs.
   */
  pollMs?: number;
  /** How many connections the pool opens at most (default 10), besides the listening one. */
  max?: number;
  /**
   * Whether commits and cancel requests notify other processes (default true). Without it they
   * learn of them only on their periodic reads: for tests of that path.
   */
  notify?: boolean;
  /**
   * Whether this process renews its lease (default true). Without it the lease taken at connect
   * lapses after `leaseMs`, as the lease of a hung process does: for tests of recovery.
   */
  heartbeat?: boolean;
}

/** One `watch()` call: where it is in the log, and where its events go. */
interface Watcher {
  last: number;
  onEvents: (events: StreamEvent[]) => void;
  onError: (err: unknown) => void;
}

/** The watches of one task, which share its reads: at most one in flight. */
interface Tail {
  taskId: string;
  watchers: Set<Watcher>;
  reading: boolean;
  /** A doorbell rang during the read (or while the next one waits): read again. */
  again: boolean;
  /** When the last read started (`performance.now()`), and the timer of the next one. */
  readAt: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** A read left out events of this store's commits in flight: their delivery reads again. */
  heldBack: boolean;
  failures: number;
}

/** A task row with the pieces a view asked for, as `recordColumns` selects it. */
interface RecordRow {
  owner: string;
  last_seq: number;
  status: Task["status"];
  fields: Omit<Task, "status" | "history" | "artifacts">;
  history: Message[] | null;
  artifacts: Array<[Omit<Artifact, "parts">, Artifact["parts"]]> | null;
}

const encoder = new TextEncoder();

function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** PostgreSQL text cannot hold a NUL character: such an id names nothing stored. */
function hasNul(s: string): boolean {
  return s.includes("\u0000");
}

/** JSON text for a json parameter (cast `::text::json`, so that the client sends it as is). */
function jsonText(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

function loggedError(id: string, seq: number): InternalError {
  return new InternalError(`Cannot log event ${seq} of task ${id}: it is logged`);
}

function closedError(): InternalError {
  return new InternalError("The PostgreSQL task store is closed");
}

/** The SQLSTATE of a PostgreSQL error, if it is one. */
function sqlState(err: unknown): string | undefined {
  return err instanceof postgres.PostgresError ? err.code : undefined;
}

/** Checks an option that is a whole number of milliseconds (or connections) from `min`. */
function whole(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new RangeError(`Invalid ${name}: ${value} (a whole number, at least ${min})`);
  }
  return value;
}

/**
 * A {@linkcode SharedTaskStore} on PostgreSQL: several server processes serve the same tasks,
 * each streaming the events any of them commits, each running the tasks it started under a lease
 * that another process can see lapse. Open it with {@linkcode PostgresTaskStore.connect}, which
 * creates or migrates its schema (tables prefixed `a2a_`), and `close()` it at shutdown.
 *
 * A task is stored in pieces, so that a commit writes what it changed: the task row (status,
 * counts, `lastSeq`), the messages it appended, the new parts of one artifact and its event. A
 * commit is one call of a server-side function, one round trip in one transaction: it locks the
 * task row, refuses a seq that is logged (the event table's primary key is `(task_id, seq)`, so
 * two processes can never log the same one), claims the context for the task's owner, writes
 * the pieces, queues the task's webhooks for delivery, and notifies channel `a2a_events` with
 * `seq:flags:taskId` (flag `p`: the task has webhooks; `*` for an id too long for a payload).
 *
 * Watching. One connection per store listens (to the log's channel once a watch or a delivery
 * listener needs it); a notification is a doorbell, after which the store reads the task's log
 * past what its watches have: one read per task at a time, doorbells that ring meanwhile make one
 * more, and under a stream of them reads start at most every 2 ms, each taking every event
 * committed since. Every `pollMs` it also checks every watched task's `lastSeq` and reads those
 * that moved, so a lost notification costs latency only; when the listening connection drops, it
 * listens again and reads for every watch. Events this store commits reach its own watches
 * without a read, right after the committing caller has the commit's answer.
 *
 * Webhooks. Each stored push config is a place in a durable queue: the seq it has had, whether
 * its task logged more, when it may be claimed next. `claimDelivery` takes the config due first
 * (with `FOR UPDATE SKIP LOCKED`, so processes never claim one config at once) and the event
 * after its cursor; `settleDelivery` moves the cursor or sets the retry time.
 *
 * Leases. Each store is a process with a random id in `a2a_processes`, whose heartbeat it renews
 * every `leaseMs / 5`; a commit of an event that leaves a task SUBMITTED or WORKING names this
 * process its runner. `lapsed()` lists the unfinished tasks whose runner stopped renewing (by the
 * database's clock, so hosts' clocks may differ) or is gone. `close()` drops this process's row.
 *
 * Retention. Ended tasks beyond `retention.maxTerminalTasks` (oldest to end first) and past
 * `retention.terminalTtlMs` are evicted in transactions of at most 100 tasks, by rounds that run
 * after commits that end tasks and on a timer, never in the commit itself.
 *
 * Values are stored as `json` (not `jsonb`, which cannot hold `\u0000`), ids that clients choose
 * (context ids, message ids) by their SHA-256. An id holding a NUL character names no task.
 *
 * @example Two processes share one database
 * ```ts ignore
 * import { PostgresTaskStore, TaskManager } from "@a2a-capnweb/core";
 *
 * const store = await PostgresTaskStore.connect("postgres://a2a@127.0.0.1:5432/a2a");
 * const manager = new TaskManager({ store, executor: myAgent });
 * // ... serve; at shutdown:
 * await manager.close();
 * await store.close();
 * ```
 */
export class PostgresTaskStore implements SharedTaskStore, AsyncDisposable {
  /** Marks the store as shared by several processes. */
  readonly shared: true = true;
  /** This store's process id (a random UUID): the runner of the tasks it commits. */
  readonly processId: string;
  #sql: Sql;
  #listener: Sql;
  #retention: Retention;
  #leaseMs: number;
  #pollMs: number;
  #notify: boolean;
  #closed = false;
  #closing: Promise<void> | undefined;
  #tails = new Map<string, Tail>();
  /** The seqs of this store's commits in flight, by task: reads hold them back from watches. */
  #committing = new Map<string, Set<number>>();
  #cancelListener: ((taskId: string) => void) | undefined;
  #deliveriesListener: (() => void) | undefined;
  #tickets: PostgresTicketStore | undefined;
  #contextKeys = new Map<string, Uint8Array>();
  #heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  #pollTimer: ReturnType<typeof setInterval> | undefined;
  #evictTimer: ReturnType<typeof setInterval> | undefined;
  #relistenTimer: ReturnType<typeof setTimeout> | undefined;
  #beating: Promise<void> | undefined;
  #beats = 0;
  #polling = false;
  #listening = false;
  /** Set once something needs the log's doorbells (a watch, a delivery listener): LISTEN done. */
  #eventsListen: Promise<void> | undefined;
  #rounds: Promise<unknown> = Promise.resolve();
  #queued = false;
  /** When the last round that a commit asked for started, and the timer of a deferred one. */
  #lastRoundAt = -Infinity;
  #deferred: ReturnType<typeof setTimeout> | undefined;

  private constructor(sql: Sql, listener: Sql, options: PostgresTaskStoreOptions) {
    this.#sql = sql;
    this.#listener = listener;
    this.processId = crypto.randomUUID();
    this.#retention = retentionOf(options.retention);
    this.#leaseMs = options.leaseMs ?? 15_000;
    this.#pollMs = options.pollMs ?? 1000;
    this.#notify = options.notify ?? true;
  }

  /**
   * Connects to a database and returns a ready store: its schema created or migrated (safe when
   * several processes start at once), this process's lease taken, its notifications listened to.
   *
   * @param url A PostgreSQL connection URL, `postgres://user:password@host:port/database`.
   * @param options Retention, lease, polling and pool settings.
   * @returns The store; `close()` ends its connections.
   * @throws {RangeError} When an option is out of range.
   * @throws {Error} When the database cannot be reached, or its schema is newer than this code's.
   */
  static async connect(
    url: string,
    options: PostgresTaskStoreOptions = {},
  ): Promise<PostgresTaskStore> {
    const leaseMs = whole("leaseMs", options.leaseMs ?? 15_000, 50);
    whole("pollMs", options.pollMs ?? 1000, 10);
    const max = whole("max", options.max ?? 10, 1);
    retentionOf(options.retention);
    const common = { onnotice: () => {}, connection: { application_name: "a2a-capnweb" } };
    // No max_lifetime: its timer outlives `end()` while a socket closes, and nothing here needs
    // connections replaced on a schedule.
    const sql = postgres(url, { ...common, max, max_lifetime: null });
    let store: PostgresTaskStore | undefined;
    const listener = postgres(url, {
      ...common,
      max: 1,
      max_lifetime: null,
      fetch_types: false,
      onclose: () => store && store.#listenerClosed(),
      // Not in the client's types, but an option it honours (its own `listen()` uses it).
      ...{
        onnotify: (channel: string, payload: string) => store && store.#onNotify(channel, payload),
      },
    });
    try {
      await migrate(sql);
      store = new PostgresTaskStore(sql, listener, options);
      await sql`
        INSERT INTO a2a_processes (id, heartbeat_at, lease_ms)
        VALUES (${store.processId}::uuid, now(), ${leaseMs})`;
      await listener.unsafe(`LISTEN ${CANCEL_CHANNEL}`);
      store.#listening = true;
    } catch (err) {
      store = undefined;
      await Promise.allSettled([sql.end({ timeout: 0 }), listener.end({ timeout: 0 })]);
      throw err;
    }
    sharePool(store, sql);
    if (options.heartbeat !== false) {
      store.#heartbeatTimer = setInterval(() => store.#heartbeat(), Math.max(10, leaseMs / 5));
      Deno.unrefTimer(store.#heartbeatTimer);
    }
    store.#pollTimer = setInterval(() => store.#backstop(), store.#pollMs);
    Deno.unrefTimer(store.#pollTimer);
    const { maxTerminalTasks, terminalTtlMs } = store.#retention;
    if (maxTerminalTasks !== Infinity || terminalTtlMs !== Infinity) {
      const every = Math.min(EVICT_EVERY_MS, Math.max(10, terminalTtlMs / 2));
      store.#evictTimer = setInterval(() => store.#schedule(), every);
      Deno.unrefTimer(store.#evictTimer);
      // Ended tasks of an earlier run may be past their time.
      store.#schedule();
    }
    return store;
  }

  // -------------------------------------------------------------------------------------------
  // TaskStore

  /** Reads a task, or the part of it a view asks for, in one query. */
  async get(taskId: string, view: TaskView = {}): Promise<TaskRecord | undefined> {
    if (hasNul(taskId)) return undefined;
    const rows = await this.#sql<RecordRow[]>`
      SELECT ${this.#recordColumns(view)} FROM a2a_tasks t WHERE t.id = ${taskId}`;
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /**
   * Saves a task's change and appends its event, in one transaction (one round trip): it fails,
   * changing nothing, when the event's seq is logged (by any process), when it creates a task in a
   * context another user owns (`InvalidParamsError`), or on a task this store's database evicted.
   */
  commit(record: TaskRecord, change: TaskChange): Promise<void> {
    const event = change.event;
    const eventJson = jsonText(event);
    const id = record.task.id;
    // Until the caller has this commit's answer, reads hold its event back from this store's
    // watches (a read can see the transaction before its answer arrives).
    if (event) {
      let seqs = this.#committing.get(id);
      if (!seqs) this.#committing.set(id, seqs = new Set());
      seqs.add(event.seq);
    }
    const written = this.#write(record, change, eventJson);
    if (event && eventJson !== null) {
      // The watches then get the event without a read: this reaction, registered before the
      // caller's, queues the delivery behind the caller's continuation.
      written.then(
        () =>
          Promise.resolve().then(() => {
            this.#committed(id, event.seq);
            this.#delivered(id, event.seq, eventJson);
          }),
        () => {
          this.#committed(id, event.seq);
          const tail = this.#tails.get(id);
          if (tail) this.#ring(tail);
        },
      );
    }
    return written;
  }

  #committed(taskId: string, seq: number): void {
    const seqs = this.#committing.get(taskId);
    seqs?.delete(seq);
    if (seqs?.size === 0) this.#committing.delete(taskId);
  }

  async #write(record: TaskRecord, change: TaskChange, eventJson: string | null): Promise<void> {
    const task = record.task;
    const id = task.id;
    if (hasNul(id) || hasNul(record.owner) || hasNul(task.status.timestamp ?? "")) {
      throw new InternalError(
        `Cannot store task ${id}: its id, owner or timestamp holds a NUL character`,
      );
    }
    const event = change.event;
    let ended: boolean;
    try {
      ended = await this.#commitOnce(record, change, eventJson, change.created === true);
    } catch (err) {
      if (sqlState(err) !== "A2A06") throw this.#commitError(id, event, err);
      // No row, and the commit is not a creation: store the task whole, as a creation would.
      try {
        ended = await this.#commitOnce(record, change, eventJson, true);
      } catch (again) {
        throw this.#commitError(id, event, again);
      }
    }
    if (ended) this.#scheduleSoon();
  }

  /** Asks for a round after a commit ended a task: now, or after the gap since the last one. */
  #scheduleSoon(): void {
    if (this.#deferred !== undefined || this.#closed) return;
    const wait = this.#lastRoundAt + EVICT_MIN_GAP_MS - Date.now();
    if (wait <= 0) {
      this.#lastRoundAt = Date.now();
      this.#schedule();
      return;
    }
    this.#deferred = setTimeout(() => {
      this.#deferred = undefined;
      this.#scheduleSoon();
    }, wait);
    Deno.unrefTimer(this.#deferred);
  }

  /**
   * Hands an event this store just logged to its own watches of the task, without a read: those
   * that have every event before it get it now (as the log holds it), the others read.
   */
  #delivered(taskId: string, seq: number, eventJson: string): void {
    const tail = this.#tails.get(taskId);
    if (!tail || this.#closed) return;
    let behind = false;
    for (const w of [...tail.watchers]) {
      if (!tail.watchers.has(w) || w.last >= seq) continue;
      if (w.last < seq - 1) {
        behind = true;
        continue;
      }
      w.last = seq;
      try {
        w.onEvents([JSON.parse(eventJson) as StreamEvent]);
      } catch (err) {
        tail.watchers.delete(w);
        w.onError(err);
      }
    }
    if (behind || (tail.heldBack && !this.#committing.has(taskId))) {
      tail.heldBack = false;
      this.#ring(tail);
    } else this.#dropIfIdle(tail);
  }

  async #commitOnce(
    record: TaskRecord,
    change: TaskChange,
    eventJson: string | null,
    whole: boolean,
  ): Promise<boolean> {
    const { status, history, artifacts, ...fields } = record.task;
    const id = fields.id;
    const owner = record.owner;
    let sent: Message[] | undefined;
    if (whole) sent = history;
    else {
      const appended = change.historyAppended ?? 0;
      const all = history ?? [];
      if (appended > all.length) {
        throw new InternalError(
          `Cannot store task ${id}: ${appended} messages appended to a history of ${all.length}`,
        );
      }
      if (appended > 0) sent = all.slice(all.length - appended);
    }
    const users = userMessagesOf(record, whole ? { ...change, created: true } : change);
    let keys: Array<[string, number]> | undefined;
    if (users.length > 0 && sent) {
      keys = [];
      for (const m of users) {
        keys.push([await messageKey(owner, m.messageId), sent.indexOf(m)]);
      }
    }
    let allArtifacts: Array<{ f: Omit<Artifact, "parts">; n: number }> | undefined;
    let allParts: Artifact["parts"][] | undefined;
    let artIndex: number | null = null;
    let artFrom: number | null = null;
    let artFields: Omit<Artifact, "parts"> | undefined;
    let parts: Artifact["parts"] | undefined;
    if (whole) {
      if (artifacts) {
        allArtifacts = artifacts.map(({ parts, ...f }) => ({ f, n: parts.length }));
        allParts = artifacts.map((a) => a.parts);
      }
    } else if (change.artifact) {
      const { index, fromPart } = change.artifact;
      const artifact = artifacts?.[index];
      if (!artifact) {
        throw new InternalError(
          `Cannot store task ${id}: the change names artifact ${index}, which it does not have`,
        );
      }
      const { parts: all, ...f } = artifact;
      artIndex = index;
      artFrom = fromPart;
      artFields = f;
      parts = all.slice(fromPart);
    }
    const event = change.event;
    const state = status.state;
    const ts = status.timestamp ?? "";
    const tsMs = Date.parse(ts);
    const head = {
      id,
      owner,
      last_seq: record.lastSeq,
      state,
      ts,
      ts_ms: Number.isNaN(tsMs) ? null : tsMs,
      unfinished: isUnfinishedState(state),
      terminal: TERMINAL_STATES.has(state),
      created: whole,
      has_history: history !== undefined,
      has_artifacts: artifacts !== undefined,
      art_index: artIndex,
      art_from: artFrom,
      event_seq: event ? event.seq : null,
      runner: this.processId,
      now: this.#retention.now(),
      notify: this.#notify,
    };
    const rows = await this.#sql<{ ended: boolean }[]>`
      SELECT a2a_commit(
        ${JSON.stringify(head)}::text::json, ${await this.#contextKey(fields.contextId)}::bytea,
        ${jsonText(status)}::text::json, ${jsonText(fields)}::text::json,
        ${jsonText(sent)}::text::json, ${jsonText(keys)}::text::json,
        ${jsonText(allArtifacts)}::text::json, ${jsonText(artFields)}::text::json,
        ${jsonText(allParts ?? parts)}::text::json, ${eventJson}::text::json
      ) AS ended`;
    return rows[0]?.ended === true;
  }

  #commitError(id: string, event: StreamEvent | undefined, err: unknown): unknown {
    const state = sqlState(err);
    const message = err instanceof Error ? err.message : String(err);
    switch (state) {
      case "A2A01":
        return loggedError(id, event!.seq);
      case "23505":
        // A commit of another process logged this seq (or created this task) meanwhile.
        return event
          ? loggedError(id, event.seq)
          : new InternalError(`Cannot store task ${id}: another process created it meanwhile`);
      case "A2A02":
        return contextTakenError();
      case "A2A03":
        return new InternalError(`Cannot store task ${id}: it was evicted`);
      case "A2A04":
        return new InternalError(
          `Cannot store task ${id}: its state is older than the stored one at seq ${message}`,
        );
      case "A2A05":
        return new InternalError(`Cannot store task ${id}: ${message}`);
      case undefined:
        return err;
      default:
        return new InternalError(`Cannot store task ${id}: ${message}`, err);
    }
  }

  /** Finds a user's message by its id, through the message index, in one query. */
  async findMessage(owner: string, messageId: string): Promise<StoredMessage | undefined> {
    if (hasNul(owner)) return undefined;
    const rows = await this.#sql<{ task_id: string; message: Message }[]>`
      SELECT k.task_id, m.message FROM a2a_message_ids k
      JOIN a2a_tasks t ON t.id = k.task_id AND t.owner = ${owner}
      JOIN a2a_messages m ON m.task_id = k.task_id AND m.idx = k.idx
      WHERE k.key = decode(${await messageKey(owner, messageId)}, 'hex')`;
    const row = rows[0];
    return row && row.message.messageId === messageId
      ? { taskId: row.task_id, message: row.message }
      : undefined;
  }

  /** Reads logged events after a sequence number, in order. */
  async events(taskId: string, afterSeq: number): Promise<StreamEvent[]> {
    if (hasNul(taskId)) return [];
    const rows = await this.#sql<{ event: StreamEvent }[]>`
      SELECT event FROM a2a_events WHERE task_id = ${taskId} AND seq > ${seqParam(afterSeq)}
      ORDER BY seq`;
    return rows.map((r) => r.event);
  }

  /**
   * Lists a user's tasks, newest first: the page from the owner index (one query that reads only
   * the page's tasks), and the count of matching tasks (an index scan of the user's tasks).
   */
  async list(owner: string, query: TaskQuery): Promise<TaskPage> {
    let cursor: [string, string] | undefined;
    if (query.pageToken !== "") {
      cursor = decodePageToken(query.pageToken);
      if (cursor === undefined) throw new RangeError("pageToken is not a token this server issued");
    }
    if (hasNul(owner)) return { records: [], nextPageToken: "", totalSize: 0 };
    const sql = this.#sql;
    const context = query.contextId === undefined
      ? undefined
      : await this.#contextKey(query.contextId);
    const after = query.statusTimestampAfter;
    const where = () =>
      sql`t.owner = ${owner}
        ${context === undefined ? sql`` : sql`AND t.context_key = ${context}::bytea`}
        ${query.status === undefined ? sql`` : sql`AND t.state = ${query.status}`}
        ${after === undefined ? sql`` : sql`AND t.ts_ms > ${after}::float8`}`;
    const [rows, counted] = await Promise.all([
      sql<RecordRow[]>`
        SELECT ${this.#recordColumns(query.view ?? {})} FROM a2a_tasks t WHERE ${where()}
        ${cursor === undefined ? sql`` : sql`AND (t.ts, t.id) < (${cursor[0]}, ${cursor[1]})`}
        ORDER BY t.ts DESC, t.id DESC LIMIT ${query.pageSize + 1}`,
      sql<{ n: number }[]>`SELECT count(*)::integer AS n FROM a2a_tasks t WHERE ${where()}`,
    ]);
    const more = rows.length > query.pageSize;
    const records = rows.slice(0, query.pageSize).map(toRecord);
    const last = records.at(-1);
    return {
      records,
      nextPageToken: more && last ? encodePageToken(last) : "",
      totalSize: counted[0]?.n ?? 0,
    };
  }

  /**
   * Creates or replaces a push config and counts a new one for its owner, in one transaction. A
   * config of a task that was just evicted is refused with `TaskNotFoundError`: nothing would
   * delete it. (An eviction locks the task row, which this transaction waits for.)
   */
  async putPushConfig(record: PushConfigRecord): Promise<void> {
    const { taskId, id } = record.config;
    if (hasNul(taskId) || hasNul(id) || hasNul(record.owner)) {
      throw new InternalError("Cannot store a push config whose ids hold a NUL character");
    }
    const config = jsonText(record.config);
    await this.#sql.begin(async (tx) => {
      // Locked against commits, so that a new config's cursor is the task's latest seq; before
      // the task exists, against its creation (an advisory lock on its id), which then sees
      // the config and queues it.
      let task = await tx<{ last_seq: number }[]>`
        SELECT last_seq FROM a2a_tasks WHERE id = ${taskId} FOR KEY SHARE`;
      if (task.length === 0) {
        await tx`SELECT pg_advisory_xact_lock(${TASK_LOCK}::integer, hashtext(${taskId}))`;
        task = await tx<{ last_seq: number }[]>`
          SELECT last_seq FROM a2a_tasks WHERE id = ${taskId} FOR KEY SHARE`;
      }
      if (task.length === 0) {
        const gone = await tx`SELECT 1 FROM a2a_evicted WHERE task_id = ${taskId}`;
        if (gone.length > 0) throw new TaskNotFoundError(taskId);
      }
      for (;;) {
        const before = await tx<{ owner: string }[]>`
          SELECT owner FROM a2a_push_configs WHERE task_id = ${taskId} AND id = ${id} FOR UPDATE`;
        if (before[0] === undefined) {
          const inserted = await tx`
            INSERT INTO a2a_push_configs (task_id, id, owner, config, cursor_seq)
            VALUES (${taskId}, ${id}, ${record.owner}, ${config}::text::json,
              ${task[0]?.last_seq ?? 0})
            ON CONFLICT (task_id, id) DO NOTHING RETURNING 1`;
          // A concurrent put created it first: replace it as an update instead.
          if (inserted.length === 0) continue;
        } else {
          await tx`
            UPDATE a2a_push_configs SET owner = ${record.owner}, config = ${config}::text::json
            WHERE task_id = ${taskId} AND id = ${id}`;
          if (before[0].owner === record.owner) return;
          await tx`UPDATE a2a_push_counts SET n = n - 1 WHERE owner = ${before[0].owner}`;
        }
        await tx`
          INSERT INTO a2a_push_counts AS c (owner, n) VALUES (${record.owner}, 1)
          ON CONFLICT (owner) DO UPDATE SET n = c.n + 1`;
        return;
      }
    });
  }

  /** Reads a push config. */
  async getPushConfig(taskId: string, id: string): Promise<PushConfigRecord | undefined> {
    if (hasNul(taskId) || hasNul(id)) return undefined;
    const rows = await this.#sql<{ owner: string; config: PushConfigRecord["config"] }[]>`
      SELECT owner, config FROM a2a_push_configs WHERE task_id = ${taskId} AND id = ${id}`;
    return rows[0] ? { owner: rows[0].owner, config: rows[0].config } : undefined;
  }

  /** Lists a task's push configs, by id. */
  async listPushConfigs(taskId: string): Promise<PushConfigRecord[]> {
    if (hasNul(taskId)) return [];
    const rows = await this.#sql<{ owner: string; config: PushConfigRecord["config"] }[]>`
      SELECT owner, config FROM a2a_push_configs WHERE task_id = ${taskId} ORDER BY id`;
    return rows.map((r) => ({ owner: r.owner, config: r.config }));
  }

  /** Deletes a push config and counts it off its owner, in one statement. */
  async deletePushConfig(taskId: string, id: string): Promise<boolean> {
    if (hasNul(taskId) || hasNul(id)) return false;
    const rows = await this.#sql<{ n: number }[]>`
      WITH d AS (
        DELETE FROM a2a_push_configs WHERE task_id = ${taskId} AND id = ${id} RETURNING owner
      ), u AS (
        UPDATE a2a_push_counts c SET n = c.n - 1 FROM d WHERE c.owner = d.owner
      )
      SELECT count(*)::integer AS n FROM d`;
    return (rows[0]?.n ?? 0) > 0;
  }

  /** Counts a user's push configs: one read of their counter. */
  async countPushConfigs(owner: string): Promise<number> {
    if (hasNul(owner)) return 0;
    const rows = await this.#sql<{ n: number }[]>`
      SELECT n FROM a2a_push_counts WHERE owner = ${owner}`;
    return Math.max(0, rows[0]?.n ?? 0);
  }

  /** Checks that the database answers: `SELECT 1`. */
  async ping(): Promise<void> {
    await this.#sql`SELECT 1`;
  }

  /** Tells who owns a context: one read of its row. */
  async contextOwner(contextId: string): Promise<string | undefined> {
    const rows = await this.#sql<{ owner: string }[]>`
      SELECT owner FROM a2a_contexts WHERE key = ${await this.#contextKey(contextId)}::bytea`;
    return rows[0]?.owner;
  }

  /**
   * Lists every task left SUBMITTED or WORKING, by any process. With several processes, recovery
   * should use `lapsed()`, which leaves out the tasks of processes that are alive.
   */
  async unfinished(): Promise<TaskRecord[]> {
    const rows = await this.#sql<RecordRow[]>`
      SELECT ${this.#recordColumns({})} FROM a2a_tasks t WHERE t.unfinished ORDER BY t.id`;
    return rows.map(toRecord);
  }

  // -------------------------------------------------------------------------------------------
  // SharedTaskStore

  /**
   * Delivers a task's events after `afterSeq` as any process commits them, each once and in
   * order: a read at once, then a read after each notification and every `pollMs` when the task
   * moved.
   */
  watch(
    taskId: string,
    afterSeq: number,
    onEvents: (events: StreamEvent[]) => void,
    onError: (err: unknown) => void,
  ): Unwatch {
    if (this.#closed) {
      queueMicrotask(() => onError(closedError()));
      return () => {};
    }
    let tail = this.#tails.get(taskId);
    if (!tail) {
      tail = {
        taskId,
        watchers: new Set(),
        reading: false,
        again: false,
        readAt: -Infinity,
        timer: undefined,
        heldBack: false,
        failures: 0,
      };
      this.#tails.set(taskId, tail);
    }
    const watcher: Watcher = { last: afterSeq, onEvents, onError };
    tail.watchers.add(watcher);
    this.#ring(tail);
    const mine = tail;
    return () => {
      mine.watchers.delete(watcher);
      this.#dropIfIdle(mine);
    };
  }

  /** Records a cancel request for a task and notifies the processes; its runner takes it. */
  async requestCancel(taskId: string): Promise<void> {
    if (hasNul(taskId)) return;
    await this.#sql`
      WITH r AS (
        INSERT INTO a2a_cancel_requests (task_id, requested_at) VALUES (${taskId}, now())
        ON CONFLICT (task_id) DO UPDATE SET requested_at = now()
        RETURNING task_id
      )
      SELECT pg_notify(${CANCEL_CHANNEL}, task_id) FROM r
      WHERE ${this.#notify} AND octet_length(task_id) <= 7000`;
  }

  /**
   * Sets the listener for cancel requests of the tasks this process runs, and reads back those
   * made before. A request is deleted once delivered, or once its task has ended.
   */
  onCancelRequest(listener: (taskId: string) => void): void {
    this.#cancelListener = listener;
    this.#claimCancels(undefined).catch((err) => this.#warn("Cannot read cancel requests", err));
  }

  /**
   * Lists the SUBMITTED or WORKING tasks whose runner has not renewed its lease for its lease time
   * (by the database's clock), or has no lease at all; never this process's own.
   */
  async lapsed(): Promise<TaskRecord[]> {
    const rows = await this.#sql<RecordRow[]>`
      SELECT ${this.#recordColumns({})} FROM a2a_tasks t
      LEFT JOIN a2a_processes p ON p.id = t.runner
      WHERE t.unfinished AND t.runner IS DISTINCT FROM ${this.processId}::uuid
        AND (p.id IS NULL OR p.heartbeat_at < now() - p.lease_ms * interval '1 millisecond')
      ORDER BY t.id`;
    return rows.map(toRecord);
  }

  /** Whether a task's runner is this process, or a process whose lease has not lapsed. */
  async runnerAlive(taskId: string): Promise<boolean> {
    if (hasNul(taskId)) return false;
    const rows = await this.#sql<{ alive: boolean | null }[]>`
      SELECT t.runner = ${this.processId}::uuid
        OR p.heartbeat_at >= now() - p.lease_ms * interval '1 millisecond' AS alive
      FROM a2a_tasks t LEFT JOIN a2a_processes p ON p.id = t.runner
      WHERE t.id = ${taskId}`;
    return rows[0]?.alive === true;
  }

  /**
   * Claims the webhook delivery due first, from the configs whose task logged events they have
   * not had (a queue kept by the commits, with an index of what is due): one query.
   */
  async claimDelivery(lockMs: number): Promise<PushDelivery | undefined> {
    const claim = crypto.randomUUID();
    const rows = await this.#sql<{
      o_task_id: string | null;
      o_owner: string;
      o_config: PushConfigRecord["config"];
      o_attempts: number;
      o_event: StreamEvent;
    }[]>`SELECT * FROM a2a_claim(${claim}::uuid, ${Math.max(0, lockMs)}::float8)`;
    const row = rows[0];
    if (!row || row.o_task_id === null) return undefined;
    return {
      record: { owner: row.o_owner, config: row.o_config },
      event: row.o_event,
      attempts: row.o_attempts,
      claim,
    };
  }

  /** Records what became of a claimed delivery: one query, a no-op for a claim that was lost. */
  async settleDelivery(delivery: PushDelivery, outcome: DeliveryOutcome): Promise<void> {
    const { taskId, id } = delivery.record.config;
    const delay = outcome.done ? 0 : Math.max(0, outcome.retryAt - Date.now());
    await this.#sql`
      SELECT a2a_settle(${taskId}, ${id}, ${delivery.claim}::uuid, ${delivery.event.seq}::integer,
        ${outcome.done}, ${delay}::float8)`;
  }

  /**
   * Sets the listener told that deliveries may be due: when a task with webhook configs logs an
   * event (on any process), every `pollMs`, and once now.
   */
  onDeliveriesDue(listener: () => void): void {
    this.#deliveriesListener = listener;
    this.#listenEvents().then(
      () => this.#deliveriesDue(),
      (err) => this.#warn("Cannot listen for events; deliveries wait for the periodic poll", err),
    );
  }

  /** The tickets of this database, on this store's connections (closed with it). */
  get tickets(): PostgresTicketStore {
    return this.#tickets ??= new PostgresTicketStore(this);
  }

  /**
   * Runs an eviction round now, after the one under way: evicts the ended tasks beyond
   * `retention.maxTerminalTasks` and past `retention.terminalTtlMs`, oldest first. The store runs
   * rounds by itself after commits that end tasks and on a timer; this is for tests and tools.
   *
   * @returns How many tasks this round evicted.
   */
  evict(): Promise<number> {
    const round = this.#rounds.then(() => {
      this.#queued = false;
      return this.#round();
    });
    this.#rounds = round.catch(() => {});
    return round;
  }

  /**
   * Stops the timers, ends every watch (`onError`), drops this process's lease at once and ends
   * the connections. Calling it again returns the same promise.
   */
  close(): Promise<void> {
    return this.#closing ??= this.#close();
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#heartbeatTimer);
    clearInterval(this.#pollTimer);
    clearInterval(this.#evictTimer);
    clearTimeout(this.#deferred);
    clearTimeout(this.#relistenTimer);
    const tails = [...this.#tails.values()];
    this.#tails.clear();
    for (const tail of tails) {
      clearTimeout(tail.timer);
      tail.timer = undefined;
      for (const w of tail.watchers) w.onError(closedError());
      tail.watchers.clear();
    }
    await this.#rounds;
    await this.#beating;
    try {
      await this.#sql`DELETE FROM a2a_processes WHERE id = ${this.processId}::uuid`;
    } catch (err) {
      this.#warn("Cannot drop this process's lease", err);
    }
    unsharePool(this);
    await Promise.allSettled([this.#listener.end({ timeout: 1 }), this.#sql.end({ timeout: 5 })]);
  }

  // -------------------------------------------------------------------------------------------
  // Watching

  /** A doorbell: reads the task's log now, or once more after the read in flight. */
  #ring(tail: Tail): void {
    if (this.#closed) return;
    if (tail.reading || tail.timer !== undefined) {
      tail.again = true;
      return;
    }
    // Under a stream of doorbells, reads start at most every READ_SPACING_MS: each then takes
    // every event committed meanwhile, instead of one read per event.
    const wait = tail.readAt + READ_SPACING_MS - performance.now();
    if (wait > 0) {
      tail.timer = setTimeout(() => {
        tail.timer = undefined;
        this.#ring(tail);
      }, wait);
      Deno.unrefTimer(tail.timer);
      return;
    }
    tail.reading = true;
    tail.again = false;
    tail.readAt = performance.now();
    this.#read(tail).finally(() => {
      tail.reading = false;
      if (tail.again && tail.watchers.size > 0) this.#ring(tail);
      else this.#dropIfIdle(tail);
    });
  }

  /**
   * Listens to the log's doorbells from now on. A process that only writes (no watch, no push
   * delivery) never does, and its listening connection is not woken by every commit.
   */
  #listenEvents(): Promise<void> {
    return this.#eventsListen ??= this.#listener.unsafe(`LISTEN ${EVENTS_CHANNEL}`).then(
      () => {},
      (err) => {
        this.#eventsListen = undefined;
        throw err;
      },
    );
  }

  /** One read of a task's log past its watches, handed to each watch that it covers. */
  async #read(tail: Tail): Promise<void> {
    if (this.#closed || tail.watchers.size === 0) return;
    let from = Infinity;
    for (const w of tail.watchers) from = Math.min(from, w.last);
    let rows: { seq: number; event: StreamEvent }[];
    try {
      // Doorbells first: whatever is committed after this read then rings.
      await this.#listenEvents();
      rows = await this.#sql<{ seq: number; event: StreamEvent }[]>`
        SELECT seq, event FROM a2a_events
        WHERE task_id = ${tail.taskId} AND seq > ${seqParam(from)}
        ORDER BY seq LIMIT ${WATCH_BATCH}`;
    } catch (err) {
      if (this.#closed) return;
      if (++tail.failures < WATCH_FAILURES) {
        log.debug("Cannot read the log of task {taskId}: {error}", {
          taskId: tail.taskId,
          error: err,
        });
        return; // the next doorbell or poll reads again
      }
      this.#fail(tail, err);
      return;
    }
    tail.failures = 0;
    if (rows.length === WATCH_BATCH) {
      // A backlog: the next read follows at once.
      tail.again = true;
      tail.readAt = -Infinity;
    }
    const held = this.#committing.get(tail.taskId);
    if (held) {
      const limit = Math.min(...held);
      const kept = rows.filter((r) => r.seq < limit);
      if (kept.length < rows.length) tail.heldBack = true;
      rows = kept;
    }
    for (const w of [...tail.watchers]) {
      if (this.#closed) return;
      // A watch that came during the read may need events before `from`: the next read has them.
      if (!tail.watchers.has(w) || w.last < from) continue;
      const fresh: StreamEvent[] = [];
      for (const r of rows) if (r.seq > w.last) fresh.push(r.event);
      if (fresh.length === 0) continue;
      w.last = rows[rows.length - 1]!.seq;
      try {
        w.onEvents(fresh);
      } catch (err) {
        tail.watchers.delete(w);
        w.onError(err);
      }
    }
  }

  #fail(tail: Tail, err: unknown): void {
    const error = new InternalError(`Cannot read the log of task ${tail.taskId}`, err);
    for (const w of tail.watchers) w.onError(error);
    tail.watchers.clear();
  }

  #dropIfIdle(tail: Tail): void {
    if (tail.watchers.size > 0 || tail.reading) return;
    clearTimeout(tail.timer);
    tail.timer = undefined;
    if (this.#tails.get(tail.taskId) === tail) this.#tails.delete(tail.taskId);
  }

  #onNotify(channel: string, payload: string): void {
    if (this.#closed) return;
    if (channel === CANCEL_CHANNEL) {
      if (this.#cancelListener) {
        this.#claimCancels(payload).catch((err) => this.#warn("Cannot take a cancel request", err));
      }
      return;
    }
    if (channel !== EVENTS_CHANNEL) return;
    if (payload === "*") {
      for (const tail of this.#tails.values()) this.#ring(tail);
      this.#deliveriesDue();
      return;
    }
    // `seq:flags:taskId`, where the flag `p` says the task has webhook configs.
    const colon = payload.indexOf(":");
    const second = payload.indexOf(":", colon + 1);
    const seq = Number(payload.slice(0, colon));
    if (payload.slice(colon + 1, second).includes("p")) this.#deliveriesDue();
    const tail = this.#tails.get(payload.slice(second + 1));
    if (!tail) return;
    // A watch that already has this seq (a poll got it first) needs no read.
    for (const w of tail.watchers) {
      if (!(w.last >= seq)) return this.#ring(tail);
    }
  }

  /** The listening connection closed: listen again until it works, then read for every watch. */
  #listenerClosed(): void {
    if (this.#closed || !this.#listening) return;
    this.#listening = false;
    log.info("The PostgreSQL notification connection closed; listening again");
    this.#relisten(50);
  }

  #relisten(delay: number): void {
    if (this.#closed) return;
    this.#relistenTimer = setTimeout(async () => {
      this.#relistenTimer = undefined;
      if (this.#closed) return;
      try {
        await this.#listener.unsafe(
          this.#eventsListen
            ? `LISTEN ${EVENTS_CHANNEL}; LISTEN ${CANCEL_CHANNEL}`
            : `LISTEN ${CANCEL_CHANNEL}`,
        );
      } catch (err) {
        if (this.#closed) return;
        log.debug("Cannot listen again: {error}", { error: err });
        this.#relisten(Math.min(RELISTEN_MAX_MS, delay * 2));
        return;
      }
      if (this.#closed) return;
      this.#listening = true;
      // Whatever was notified while nobody listened is read now.
      for (const tail of this.#tails.values()) this.#ring(tail);
      this.#deliveriesDue();
      if (this.#cancelListener) {
        this.#claimCancels(undefined).catch((e) => this.#warn("Cannot read cancel requests", e));
      }
    }, delay);
    Deno.unrefTimer(this.#relistenTimer);
  }

  /** Every `pollMs`: reads the watched tasks that moved, and the pending cancel requests. */
  async #backstop(): Promise<void> {
    if (this.#polling || this.#closed) return;
    this.#polling = true;
    try {
      if (this.#tails.size > 0) {
        const ids = [...this.#tails.keys()];
        const rows = await this.#sql<{ id: string; last_seq: number }[]>`
          SELECT id, last_seq FROM a2a_tasks
          WHERE id IN (SELECT json_array_elements_text(${JSON.stringify(ids)}::text::json))`;
        for (const row of rows) {
          const tail = this.#tails.get(row.id);
          if (!tail) continue;
          for (const w of tail.watchers) {
            if (w.last < row.last_seq) {
              this.#ring(tail);
              break;
            }
          }
        }
      }
      this.#deliveriesDue();
      if (this.#cancelListener && !this.#closed) await this.#claimCancels(undefined);
    } catch (err) {
      if (!this.#closed) log.debug("Cannot poll the task store: {error}", { error: err });
    } finally {
      this.#polling = false;
    }
  }

  #deliveriesDue(): void {
    if (this.#closed || !this.#deliveriesListener) return;
    try {
      this.#deliveriesListener();
    } catch (err) {
      this.#warn("A push delivery listener failed", err);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Leases and cancel requests

  #heartbeat(): void {
    if (this.#closed || this.#beating) return;
    const stale = this.#beats++ % 50 === 0;
    this.#beating = (async () => {
      try {
        await this.#sql`
          INSERT INTO a2a_processes (id, heartbeat_at, lease_ms)
          VALUES (${this.processId}::uuid, now(), ${this.#leaseMs})
          ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()`;
        if (stale) {
          // Rows of processes long dead: without one, a runner has lapsed all the same.
          await this.#sql`
            DELETE FROM a2a_processes
            WHERE heartbeat_at < now() - greatest(lease_ms * ${STALE_LEASES}, 3600000)
              * interval '1 millisecond'`;
        }
      } catch (err) {
        if (!this.#closed) this.#warn("Cannot renew this process's lease", err);
      } finally {
        this.#beating = undefined;
      }
    })();
  }

  /**
   * Takes the pending cancel requests of tasks this process runs (of one task, or all), deleting
   * them, and hands them to the listener; also deletes requests of tasks that ended.
   */
  async #claimCancels(taskId: string | undefined): Promise<void> {
    if (this.#closed || !this.#cancelListener) return;
    if (taskId !== undefined && hasNul(taskId)) return;
    const sql = this.#sql;
    const rows = await sql<{ task_id: string }[]>`
      DELETE FROM a2a_cancel_requests c USING a2a_tasks t
      WHERE t.id = c.task_id AND t.runner = ${this.processId}::uuid AND t.ended_seq IS NULL
        ${taskId === undefined ? sql`` : sql`AND c.task_id = ${taskId}`}
      RETURNING c.task_id`;
    if (taskId === undefined) {
      await sql`
        DELETE FROM a2a_cancel_requests c
        WHERE EXISTS (SELECT 1 FROM a2a_tasks t WHERE t.id = c.task_id AND t.ended_seq IS NOT NULL)
          OR (c.requested_at < now() - interval '1 hour'
            AND NOT EXISTS (SELECT 1 FROM a2a_tasks t WHERE t.id = c.task_id))`;
    }
    for (const row of rows) {
      try {
        this.#cancelListener?.(row.task_id);
      } catch (err) {
        this.#warn("A cancel request listener failed", err);
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Eviction

  /** Queues a round unless one is waiting to start (it will see what was committed by then). */
  #schedule(): void {
    if (this.#queued || this.#closed) return;
    this.#queued = true;
    this.evict().catch((err) => {
      if (!this.#closed) this.#warn("Cannot evict ended tasks", err);
    });
  }

  /** Evicts batches of the oldest ended tasks while any is due; a round reads O(max) rows. */
  async #round(): Promise<number> {
    let evicted = 0;
    const { maxTerminalTasks, terminalTtlMs, now } = this.#retention;
    if (maxTerminalTasks === Infinity && terminalTtlMs === Infinity) return 0;
    for (;;) {
      if (this.#closed) return evicted;
      const expired = now() - terminalTtlMs;
      // The end order of the newest task beyond the count: it and every older one are due.
      let cutoff: number | undefined;
      if (maxTerminalTasks !== Infinity) {
        const rows = await this.#sql<{ n: string }[]>`
          SELECT ended_seq::text AS n FROM a2a_tasks WHERE ended_seq IS NOT NULL
          ORDER BY ended_seq DESC OFFSET ${maxTerminalTasks} LIMIT 1`;
        if (rows[0]) cutoff = Number(rows[0].n);
      }
      const oldest = await this.#sql<{ id: string; n: string; at: number }[]>`
        SELECT id, ended_seq::text AS n, ended_at AS at FROM a2a_tasks
        WHERE ended_seq IS NOT NULL ORDER BY ended_seq LIMIT ${EVICT_BATCH}`;
      const due: Array<{ id: string; n: string }> = [];
      for (const row of oldest) {
        if (!((cutoff !== undefined && Number(row.n) <= cutoff) || row.at <= expired)) break;
        due.push({ id: row.id, n: row.n });
      }
      if (due.length === 0 || this.#closed) return evicted;
      const rows = await this.#sql<{ n: number }[]>`
        SELECT a2a_evict(${JSON.stringify(due)}::text::json, ${RECENTLY_EVICTED}::integer) AS n`;
      const n = rows[0]?.n ?? 0;
      evicted += n;
      // None could be taken (commits hold them): the next round tries again.
      if (n === 0) return evicted;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Helpers

  /** The columns of a record, with the history and artifacts a view asks for. */
  #recordColumns(view: TaskView): postgres.PendingQuery<postgres.Row[]> {
    const sql = this.#sql;
    const n = view.historyLength;
    const history = n === 0 ? sql`NULL::json AS history` : sql`
      CASE WHEN t.has_history THEN (
        SELECT coalesce(json_agg(m.message ORDER BY m.idx), '[]'::json) FROM a2a_messages m
        WHERE m.task_id = t.id
          ${n === undefined ? sql`` : sql`AND m.idx >= t.history_count - ${n}::integer`}
      ) END AS history`;
    const artifacts = view.artifacts === false ? sql`NULL::json AS artifacts` : sql`
      CASE WHEN t.has_artifacts THEN (
        SELECT coalesce(json_agg(json_build_array(a.fields, (
          SELECT coalesce(json_agg(p.part ORDER BY p.idx), '[]'::json) FROM a2a_artifact_parts p
          WHERE p.task_id = a.task_id AND p.artifact = a.idx
        )) ORDER BY a.idx), '[]'::json)
        FROM a2a_artifacts a WHERE a.task_id = t.id
      ) END AS artifacts`;
    return sql`t.owner, t.last_seq, t.status, t.fields, ${history}, ${artifacts}`;
  }

  /** The SHA-256 of a context id, the key of its row and of the listing filter. */
  async #contextKey(contextId: string): Promise<Uint8Array> {
    const known = this.#contextKeys.get(contextId);
    if (known) return known;
    const key = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(contextId)));
    if (this.#contextKeys.size >= CONTEXT_KEYS) {
      this.#contextKeys.delete(this.#contextKeys.keys().next().value!);
    }
    this.#contextKeys.set(contextId, key);
    return key;
  }

  #warn(what: string, err: unknown): void {
    log.warn(`${what}: {error}`, { error: err });
  }
}

/** The key of a user's message in the message index: SHA-256 of `[owner, messageId]`, in hex. */
async function messageKey(owner: string, messageId: string): Promise<string> {
  return hex(
    await crypto.subtle.digest("SHA-256", encoder.encode(JSON.stringify([owner, messageId]))),
  );
}

/** A seq bound as an integer parameter: whole, and within PostgreSQL's integer. */
function seqParam(afterSeq: number): number {
  if (!(afterSeq > 0)) return 0;
  return Math.min(2_147_483_647, Math.floor(afterSeq));
}

function toRecord(row: RecordRow): TaskRecord {
  const task = { ...row.fields, status: row.status } as Task;
  if (row.history !== null) task.history = row.history;
  if (row.artifacts !== null) {
    task.artifacts = row.artifacts.map(([fields, parts]) => ({ ...fields, parts }) as Artifact);
  }
  return { owner: row.owner, lastSeq: row.last_seq, task };
}
