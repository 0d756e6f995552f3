// A TaskStore on Deno KV, so that tasks, their event logs and push configs outlive the process.
// Every commit of the task core is one atomic KV operation; large tasks are split into chunks.

import { InternalError } from "../errors/errors.ts";
import type { TaskState } from "../types/core.ts";
import {
  decodePageToken,
  encodePageToken,
  isUnfinishedState,
  type PushConfigRecord,
  type StreamEvent,
  type TaskPage,
  type TaskQuery,
  type TaskRecord,
  type TaskStore,
} from "./store.ts";

/** What the task key holds: everything but the task itself, whose JSON is in chunks. */
interface TaskHead {
  owner: string;
  lastSeq: number;
  contextId: string;
  state: TaskState;
  /** The status timestamp, `""` when the task has none; part of the owner index key. */
  timestamp: string;
  /** How many `task_chunk` keys hold the task's JSON. */
  chunks: number;
}

/** What an owner index entry holds: the fields `list` filters on without reading the task. */
interface IndexEntry {
  contextId: string;
  state: TaskState;
}

const ROOT = "a2a";
/** Deno KV refuses values over 64 KiB. */
const CHUNK_BYTES = 65_536;
/** At most this many chunks, so that the head and every chunk fit one `getMany` (10 keys). */
const MAX_CHUNKS = 9;
/** The largest task JSON: 576 KiB. */
const MAX_TASK_BYTES = CHUNK_BYTES * MAX_CHUNKS;
/** Deno KV refuses an atomic operation whose keys and values add up to more than this. */
const MAX_COMMIT_BYTES = 819_200;
/** The latest timestamp whose ISO form still sorts correctly (year 9999). */
const MAX_ISO_MS = 253_402_300_799_999;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const taskKey = (id: string): Deno.KvKey => [ROOT, "task", id];
const chunkKey = (id: string, i: number): Deno.KvKey => [ROOT, "task_chunk", id, i];
const eventPrefix = (id: string): Deno.KvKey => [ROOT, "events", id];
const eventKey = (id: string, seq: number, part: number): Deno.KvKey => [
  ROOT,
  "events",
  id,
  seq,
  part,
];
const ownerPrefix = (owner: string): Deno.KvKey => [ROOT, "by_owner", owner];
const ownerKey = (owner: string, ts: string, id: string): Deno.KvKey => [
  ROOT,
  "by_owner",
  owner,
  ts,
  id,
];
const unfinishedPrefix: Deno.KvKey = [ROOT, "unfinished"];
const unfinishedKey = (id: string): Deno.KvKey => [ROOT, "unfinished", id];
const pushPrefix = (taskId: string): Deno.KvKey => [ROOT, "push", taskId];
const pushKey = (taskId: string, id: string): Deno.KvKey => [ROOT, "push", taskId, id];

function split(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += CHUNK_BYTES) out.push(bytes.subarray(i, i + CHUNK_BYTES));
  if (out.length === 0) out.push(bytes);
  return out;
}

function join(parts: Uint8Array[]): unknown {
  if (parts.length === 1) return JSON.parse(decoder.decode(parts[0]));
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return JSON.parse(decoder.decode(all));
}

/** An upper bound of a key's encoded size, as Deno KV counts it against the commit limit. */
function keyBytes(key: Deno.KvKey): number {
  let n = 0;
  for (const part of key) {
    if (typeof part === "string") n += encoder.encode(part).length * 2 + 2;
    else if (part instanceof Uint8Array) n += part.length * 2 + 2;
    else n += 18;
  }
  return n;
}

/** An upper bound of a small structured value's serialized size. */
function valueBytes(value: unknown): number {
  return encoder.encode(JSON.stringify(value)).length * 2 + 64;
}

function taskTooLarge(taskId: string, bytes: number): InternalError {
  return new InternalError(
    `Cannot store task ${taskId}: its JSON of ${bytes} bytes exceeds the ${MAX_TASK_BYTES} ` +
      `bytes a task can have in Deno KV`,
  );
}

function tooLarge(taskId: string, bytes: number, cause?: unknown): InternalError {
  return new InternalError(
    `Cannot store task ${taskId}: its commit of about ${bytes} bytes exceeds the ` +
      `${MAX_COMMIT_BYTES} bytes one Deno KV atomic operation can hold`,
    cause,
  );
}

/**
 * A {@linkcode TaskStore} on Deno KV: tasks, their event logs and push configs survive a restart.
 * Deno KV is unstable: run with `--unstable-kv` (or `"unstable": ["kv"]` in deno.json).
 *
 * Key layout, all under `"a2a"`:
 *
 * - `["a2a", "task", taskId]`: the owner, `lastSeq`, state, context, status timestamp and the
 *   number of chunks of the task's JSON;
 * - `["a2a", "task_chunk", taskId, i]`: the task's JSON (UTF-8) in pieces of at most 64 KiB,
 *   the most a Deno KV value can hold;
 * - `["a2a", "events", taskId, seq, i]`: the event log, one event per `seq` (usually one piece
 *   `i = 0`), so a replay after a `seq` is one range read;
 * - `["a2a", "by_owner", owner, statusTimestamp, taskId]`: the listing index, with the context
 *   and state for the filters; `list` reads it newest first and pages by key;
 * - `["a2a", "unfinished", taskId]`: tasks in SUBMITTED or WORKING, for recovery at start;
 * - `["a2a", "push", taskId, configId]`: push notification configs.
 *
 * Size limits. A task's JSON can be at most 576 KiB (589 824 bytes: nine chunks, so that `get`
 * reads the head and every chunk in one consistent `getMany` of ten keys). Each `commit` is one
 * atomic operation (task, chunks, index entries and event together), which Deno KV caps at
 * 819 200 bytes of keys and values (and 1000 mutations; a commit makes a few dozen at most), so the
 * task's JSON plus the JSON of the event committed with it must also stay under that: a task's
 * first event is a snapshot of it, so the first message of a task can be at most about 400 KiB.
 * Beyond either limit `commit` throws an {@linkcode InternalError} and the task keeps its
 * previous state; in the task core, the agent's event is refused and the task ends FAILED. Every
 * commit rewrites the whole task, so very large tasks are also slow ones.
 *
 * @example Keep tasks in Deno KV
 * ```ts
 * import { KvTaskStore, TaskManager } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * const store = new KvTaskStore(await Deno.openKv(":memory:"));
 * const manager = new TaskManager({
 *   store,
 *   executor: {
 *     async execute(_ctx, events) {
 *       await events.status("TASK_STATE_COMPLETED");
 *     },
 *   },
 * });
 * const { task } = await manager.sendMessage("alice", {
 *   message: { messageId: "m1", role: "ROLE_USER", parts: [{ text: "hi" }] },
 * });
 * assert.equal((await store.get(task!.id))?.task.status.state, "TASK_STATE_COMPLETED");
 * assert.equal((await store.events(task!.id, 0)).length, 2);
 * await manager.close();
 * store.close();
 * ```
 */
export class KvTaskStore implements TaskStore, Disposable {
  #kv: Deno.Kv;
  #closed = false;

  /**
   * Opens a Deno KV database and makes a store on it.
   *
   * @param path The database file, `":memory:"` for a store that lives as long as the process,
   * or undefined for Deno's default database of the script.
   * @returns The store; `close()` closes the database.
   * @throws {TypeError} When Deno KV is not enabled (`--unstable-kv`).
   */
  static async open(path?: string): Promise<KvTaskStore> {
    if (typeof Deno.openKv !== "function") {
      throw new TypeError("Cannot open Deno KV: run with --unstable-kv");
    }
    return new KvTaskStore(await Deno.openKv(path));
  }

  /**
   * Makes a store on an open database. The store owns it from now on: `close()` closes it.
   *
   * @param kv The database.
   */
  constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  /** Reads a task, with one consistent read (two when it has more than one chunk). */
  async get(taskId: string): Promise<TaskRecord | undefined> {
    let [head, ...chunks] = await this.#kv.getMany<[TaskHead, ...Uint8Array[]]>([
      taskKey(taskId),
      chunkKey(taskId, 0),
    ]);
    if (head?.value && head.value.chunks > 1) {
      // Read the head again with every chunk in one snapshot: never pieces of two versions.
      const keys: [Deno.KvKey, ...Deno.KvKey[]] = [taskKey(taskId)];
      for (let i = 0; i < MAX_CHUNKS; i++) keys.push(chunkKey(taskId, i));
      [head, ...chunks] = await this.#kv.getMany<[TaskHead, ...Uint8Array[]]>(keys);
    }
    if (!head?.value) return undefined;
    const parts = chunks.slice(0, head.value.chunks).map((c) => c.value);
    if (parts.length !== head.value.chunks || parts.some((p) => p === null)) {
      throw new InternalError(`Cannot read task ${taskId}: a chunk of it is missing`);
    }
    return {
      owner: head.value.owner,
      lastSeq: head.value.lastSeq,
      task: join(parts as Uint8Array[]) as TaskRecord["task"],
    };
  }

  /** Saves a task and appends its event, in one atomic operation. */
  async commit(record: TaskRecord, event?: StreamEvent): Promise<void> {
    const task = record.task;
    const id = task.id;
    const body = encoder.encode(JSON.stringify(task));
    if (body.length > MAX_TASK_BYTES) throw taskTooLarge(id, body.length);
    const chunks = split(body);
    const eventChunks = event ? split(encoder.encode(JSON.stringify(event))) : [];
    const timestamp = task.status.timestamp ?? "";
    const head: TaskHead = {
      owner: record.owner,
      lastSeq: record.lastSeq,
      contextId: task.contextId,
      state: task.status.state,
      timestamp,
      chunks: chunks.length,
    };
    const entry: IndexEntry = { contextId: task.contextId, state: task.status.state };
    for (let attempt = 0; attempt < 10; attempt++) {
      const old = await this.#kv.get<TaskHead>(taskKey(id));
      const op = this.#kv.atomic().check(old);
      let bytes = keyBytes(taskKey(id));
      const set = (key: Deno.KvKey, value: unknown, size: number) => {
        op.set(key, value);
        bytes += keyBytes(key) + size;
      };
      const del = (key: Deno.KvKey) => {
        op.delete(key);
        bytes += keyBytes(key);
      };
      set(taskKey(id), head, valueBytes(head));
      chunks.forEach((c, i) => set(chunkKey(id, i), c, c.length));
      for (let i = chunks.length; i < (old.value?.chunks ?? 0); i++) del(chunkKey(id, i));
      if (old.value && (old.value.owner !== record.owner || old.value.timestamp !== timestamp)) {
        del(ownerKey(old.value.owner, old.value.timestamp, id));
      }
      set(ownerKey(record.owner, timestamp, id), entry, valueBytes(entry));
      if (isUnfinishedState(task.status.state)) {
        set(unfinishedKey(id), record.owner, valueBytes(record.owner));
      } else del(unfinishedKey(id));
      if (event) {
        // The log is append-only: a seq is written once.
        op.check({ key: eventKey(id, event.seq, 0), versionstamp: null });
        bytes += keyBytes(eventKey(id, event.seq, 0));
        eventChunks.forEach((c, i) => set(eventKey(id, event.seq, i), c, c.length));
      }
      if (bytes > MAX_COMMIT_BYTES) throw tooLarge(id, bytes);
      let result: Deno.KvCommitResult | Deno.KvCommitError;
      try {
        result = await op.commit();
      } catch (err) {
        if (err instanceof TypeError && /too large/i.test(err.message)) {
          throw tooLarge(id, bytes, err);
        }
        throw err;
      }
      if (result.ok) return;
      if (event && (await this.#kv.get(eventKey(id, event.seq, 0))).versionstamp !== null) {
        throw new InternalError(`Cannot log event ${event.seq} of task ${id}: it is logged`);
      }
      // Another writer changed the task between our read and our commit: redo with its state.
    }
    throw new InternalError(`Cannot store task ${id}: it kept changing under other writers`);
  }

  /** Reads logged events after a sequence number, with one range read. */
  async events(taskId: string, afterSeq: number): Promise<StreamEvent[]> {
    const out: StreamEvent[] = [];
    let seq: number | undefined;
    let parts: Uint8Array[] = [];
    const rows = this.#kv.list<Uint8Array>({
      prefix: eventPrefix(taskId),
      start: [...eventPrefix(taskId), Math.max(0, Math.floor(afterSeq)) + 1],
    });
    for await (const row of rows) {
      const rowSeq = row.key[3] as number;
      if (seq !== undefined && rowSeq !== seq) {
        out.push(join(parts) as StreamEvent);
        parts = [];
      }
      seq = rowSeq;
      parts.push(row.value);
    }
    if (parts.length > 0) out.push(join(parts) as StreamEvent);
    return out;
  }

  /**
   * Lists a user's tasks, newest first, from the owner index: it reads the user's index keys
   * (not their tasks, and nothing of other users) to filter and count, then the page's tasks.
   */
  async list(owner: string, query: TaskQuery): Promise<TaskPage> {
    let cursor: [string, string] | undefined;
    if (query.pageToken !== "") {
      cursor = decodePageToken(query.pageToken);
      if (cursor === undefined) throw new RangeError("pageToken is not a token this server issued");
    }
    const after = query.statusTimestampAfter;
    const prefix = ownerPrefix(owner);
    // ISO timestamps sort as they compare, so a lower bound skips older entries; the exact
    // comparison below still decides.
    const selector = after !== undefined && after >= 0 && after <= MAX_ISO_MS
      ? { prefix, start: [...prefix, new Date(after).toISOString()] }
      : { prefix };
    let totalSize = 0;
    const page: Array<{ ts: string; id: string; state: TaskState }> = [];
    let more = false;
    for await (const row of this.#kv.list<IndexEntry>(selector, { reverse: true })) {
      const ts = row.key[3] as string;
      const id = row.key[4] as string;
      if (query.contextId !== undefined && row.value.contextId !== query.contextId) continue;
      if (query.status !== undefined && row.value.state !== query.status) continue;
      if (after !== undefined && !(Date.parse(ts) > after)) continue;
      totalSize++;
      if (cursor && (ts > cursor[0] || (ts === cursor[0] && id >= cursor[1]))) continue;
      if (page.length < query.pageSize) page.push({ ts, id, state: row.value.state });
      else more = true;
    }
    const records: TaskRecord[] = [];
    for (const r of await Promise.all(page.map((p) => this.get(p.id)))) {
      if (r) records.push(r);
    }
    const last = page.at(-1);
    return {
      records,
      nextPageToken: more && last
        ? encodePageToken({
          owner,
          lastSeq: 0,
          task: { id: last.id, contextId: "", status: { state: last.state, timestamp: last.ts } },
        })
        : "",
      totalSize,
    };
  }

  /** Creates or replaces a push config. */
  async putPushConfig(record: PushConfigRecord): Promise<void> {
    await this.#kv.set(pushKey(record.config.taskId, record.config.id), record);
  }

  /** Reads a push config. */
  async getPushConfig(taskId: string, id: string): Promise<PushConfigRecord | undefined> {
    return (await this.#kv.get<PushConfigRecord>(pushKey(taskId, id))).value ?? undefined;
  }

  /** Lists a task's push configs. */
  async listPushConfigs(taskId: string): Promise<PushConfigRecord[]> {
    const out: PushConfigRecord[] = [];
    for await (const row of this.#kv.list<PushConfigRecord>({ prefix: pushPrefix(taskId) })) {
      out.push(row.value);
    }
    return out;
  }

  /** Deletes a push config. */
  async deletePushConfig(taskId: string, id: string): Promise<boolean> {
    const key = pushKey(taskId, id);
    const existing = await this.#kv.get(key);
    if (existing.versionstamp === null) return false;
    const result = await this.#kv.atomic().check(existing).delete(key).commit();
    return result.ok;
  }

  /** Lists the tasks left SUBMITTED or WORKING, from the `unfinished` index. */
  async unfinished(): Promise<TaskRecord[]> {
    const ids: string[] = [];
    for await (const row of this.#kv.list({ prefix: unfinishedPrefix })) {
      ids.push(row.key[2] as string);
    }
    const out: TaskRecord[] = [];
    for (const r of await Promise.all(ids.map((id) => this.get(id)))) {
      if (r && isUnfinishedState(r.task.status.state)) out.push(r);
    }
    return out;
  }

  /** Closes the database; calling it again does nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#kv.close();
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
