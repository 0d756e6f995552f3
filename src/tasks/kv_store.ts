// A TaskStore on Deno KV, so that tasks, their event logs and push configs outlive the process.
// A task is kept in pieces and its log append-only, so that a commit writes what it changed.

import { getLogger } from "@logtape/logtape";
import { InternalError, TaskNotFoundError } from "../errors/errors.ts";
import { KvLease, type KvLeaseOptions } from "./kv_lease.ts";
import {
  type Artifact,
  type Message,
  type Part,
  type Task,
  type TaskState,
  type TaskStatus,
  TERMINAL_STATES,
} from "../types/core.ts";
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
  type TaskStore,
  type TaskView,
} from "./store.ts";

/** Where a value too large for one Deno KV value lives: `n` chunks of `b` bytes in all. */
interface BlobRef {
  /** The key prefix of the chunks; chunk `i` is at `[...k, i]`. */
  k: Deno.KvKey;
  /** How many chunks. */
  n: number;
  /** The value's length in bytes (its JSON, UTF-8). */
  b: number;
}

/** What the head key of a task holds: everything but its history and artifacts. */
interface Head {
  owner: string;
  lastSeq: number;
  /** Incremented by every commit; an artifact head records the `ver` that wrote it. */
  ver: number;
  contextId: string;
  state: TaskState;
  /** The status timestamp, `""` when the task has none; part of the owner index key. */
  timestamp: string;
  /** The generation of the task's pieces: the stage id of the commit that created it. */
  gen: string;
  /** How many history messages. */
  hc: number;
  /** How many artifacts. */
  ac: number;
  /** Whether the task has a `history` (possibly empty), and `artifacts`. */
  hh: boolean;
  ha: boolean;
  /** The status, inline when its JSON is small, else in a blob. */
  status?: TaskStatus;
  statusRef?: BlobRef;
  /** The task's other fields (`metadata`, ...), inline or in a blob; written on creation only. */
  rest?: Record<string, unknown>;
  restRef?: BlobRef;
  /** When the task reached a terminal state, by the store's clock: its `term` key. */
  end?: number;
}

/** What a `term` entry holds: the key part of the task's context. */
interface TermEntry {
  c: string | Uint8Array;
}

/** What an `evict` entry holds: what deleting the rest of an evicted task needs. */
interface EvictEntry {
  owner: string;
}

/** What an artifact key holds: the artifact but its parts, and where its parts are. */
interface ArtifactHead {
  /** The artifact without `parts`, inline or in a blob. */
  f?: Record<string, unknown>;
  fRef?: BlobRef;
  /** The stage id and index that name this version's parts: new when the artifact is replaced. */
  s: string;
  k: number;
  /** How many parts, in how many part slots, and whether any slot is a blob. */
  n: number;
  g: number;
  x: boolean;
  /** The head's `ver` of the commit that wrote this artifact head. */
  w: number;
}

/** Something to delete: every key under a prefix (following blob references), or one blob. */
type Drop = { p: Deno.KvKey } | { b: BlobRef };

/** A `gc` entry: what a commit staged (until it commits) or made unreachable (after it). */
interface GcEntry {
  at: number;
  drop: Drop[];
}

/**
 * What a message index entry holds: where the message is in its task's history (task, generation,
 * slot and position in the slot), not the message itself.
 */
interface MessageEntry {
  t: string;
  g: string;
  i: number;
  o: number;
}

/** What an owner index entry holds: the fields `list` filters on without reading the task. */
interface IndexEntry {
  contextId: string;
  state: TaskState;
}

/** A head this store wrote, with its versionstamp and the artifact heads it wrote with it. */
interface Known {
  versionstamp: string;
  head: Head;
  artifacts: Map<number, ArtifactHead>;
}

/** One key and value to set, with the value's size as Deno KV counts it. */
interface Write {
  key: Deno.KvKey;
  value: unknown;
  size: number;
}

/** One counter to add to (a negative `n` subtracts: a KvU64 sum wraps around). */
interface Sum {
  key: Deno.KvKey;
  n: number;
}

const ROOT = "a2a";
/** Deno KV refuses a value over 64 KiB. */
const VALUE_BYTES = 65_536;
/** A status, the task's other fields or an artifact's fields stay in their head up to this. */
const FIELD_BYTES = 16_384;
/** Deno KV refuses a key over 2 KiB. */
const KEY_BYTES = 2048;
/** Deno KV caps an atomic operation at 819 200 bytes of keys and values: keep a margin. */
const OP_BYTES = 800_000;
/** ... at 81 920 bytes of keys. */
const OP_KEY_BYTES = 80_000;
/** ... at 1000 mutations and 100 checks. */
const OP_MUTATIONS = 1000;
const OP_CHECKS = 100;
/** `getMany` reads at most ten keys. */
const GET_MANY_KEYS = 10;
/** A read that meets a concurrent commit starts over, this many times at most. */
const READ_ATTEMPTS = 20;
/** A commit that meets a concurrent writer starts over, this many times at most. */
const COMMIT_ATTEMPTS = 10;
/**
 * How many tasks' heads a store keeps in memory, how many artifact heads of each, and the
 * largest one it keeps (a head with a large inline status is read again instead): at most
 * about 36 MB, typically 1 KB a task.
 */
const KNOWN_TASKS = 1000;
const KNOWN_ARTIFACTS = 8;
const KNOWN_BYTES = 4096;
/** The latest timestamp whose ISO form still sorts correctly (year 9999). */
const MAX_ISO_MS = 253_402_300_799_999;
/** The blob scope of event values, which outlive any generation of the task's pieces. */
const LOG_SCOPE = "log";
/** How many terminal tasks one eviction round looks at. */
const EVICT_BATCH = 100;
/** Eviction's own atomic operations check at most this many keys (Deno Deploy's old limit). */
const EVICT_CHECKS = 10;
/** The longest pause between eviction rounds when no task ends, in milliseconds. */
const EVICT_EVERY_MS = 60_000;
/** What a read returns when it met a piece that a later commit deleted: read again. */
const STALE: unique symbol = Symbol("stale");
type Stale = typeof STALE;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const headKey = (id: string): Deno.KvKey => [ROOT, "head", id];
const msgPrefix = (id: string, gen: string): Deno.KvKey => [ROOT, "msg", id, gen];
const artPrefix = (id: string, gen: string): Deno.KvKey => [ROOT, "art", id, gen];
const partPrefix = (id: string, gen: string, s: string, k: number): Deno.KvKey => [
  ROOT,
  "part",
  id,
  gen,
  s,
  k,
];
const eventPrefix = (id: string): Deno.KvKey => [ROOT, "event", id];
const blobPrefix = (id: string, scope: string, stage: string, n: number): Deno.KvKey => [
  ROOT,
  "blob",
  id,
  scope,
  stage,
  n,
];
const gcPrefix: Deno.KvKey = [ROOT, "gc"];
const gcKey = (id: string, stage: string): Deno.KvKey => [ROOT, "gc", id, stage];
const ownerPrefix = (owner: string): Deno.KvKey => [ROOT, "by_owner", owner];
const ownerKey = (owner: string, ts: string, id: string): Deno.KvKey => [
  ROOT,
  "by_owner",
  owner,
  ts,
  id,
];
/** Message ids up to this many bytes are key parts as they are; longer ones by their SHA-256. */
const MESSAGE_ID_BYTES = 512;
/** The message index key: a long id (clients choose them) is hashed to keep the key short. */
async function messageKey(owner: string, messageId: string): Promise<Deno.KvKey> {
  const bytes = encoder.encode(messageId);
  if (bytes.length <= MESSAGE_ID_BYTES) return [ROOT, "message", owner, messageId];
  // A byte string is never equal to a string in a key, so a hash cannot meet a plain id.
  return [ROOT, "message", owner, new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))];
}
/** Context ids up to this many bytes are key parts as they are; longer ones by their SHA-256. */
const CONTEXT_ID_BYTES = 512;
/** The key part that names a context: a long id (clients choose them) is hashed. */
async function contextPart(contextId: string): Promise<string | Uint8Array> {
  const bytes = encoder.encode(contextId);
  if (bytes.length <= CONTEXT_ID_BYTES) return contextId;
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}
const contextKey = (part: string | Uint8Array): Deno.KvKey => [ROOT, "ctx", part];
const contextCountKey = (part: string | Uint8Array): Deno.KvKey => [ROOT, "ctx_n", part];
const termPrefix: Deno.KvKey = [ROOT, "term"];
const termKey = (end: number, id: string): Deno.KvKey => [ROOT, "term", end, id];
const TERM_COUNT: Deno.KvKey = [ROOT, "term_n"];
const evictPrefix: Deno.KvKey = [ROOT, "evict"];
const evictKey = (id: string): Deno.KvKey => [ROOT, "evict", id];
const pushCountKey = (owner: string): Deno.KvKey => [ROOT, "push_n", owner];
/** What an evicted task leaves under its id besides the head and the push configs. */
const PIECES = ["msg", "art", "part", "blob", "event"] as const;
const unfinishedPrefix: Deno.KvKey = [ROOT, "unfinished"];
const unfinishedKey = (id: string): Deno.KvKey => [ROOT, "unfinished", id];
const pushPrefix = (taskId: string): Deno.KvKey => [ROOT, "push", taskId];
const pushKey = (taskId: string, id: string): Deno.KvKey => [ROOT, "push", taskId, id];

/** Whether two context key parts are the same. */
function samePart(a: string | Uint8Array, b: string | Uint8Array): boolean {
  if (typeof a === "string" || typeof b === "string") return a === b;
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The number a KvU64 counter holds; 0 when absent, or below 0 after a wrap. */
function counted(entry: Deno.KvEntryMaybe<unknown>): number {
  const v = entry.value instanceof Deno.KvU64 ? entry.value.value : 0n;
  return v >= 1n << 63n ? 0 : Number(v);
}

/** A counter's addend as Deno KV takes it: modulo 2^64, so that a sum subtracts. */
function u64(n: number): bigint {
  return BigInt.asUintN(64, BigInt(n));
}

function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

function decodeJson<T>(bytes: Uint8Array): T {
  return JSON.parse(decoder.decode(bytes)) as T;
}

/**
 * A slot holding a blob reference: a 0 byte, then the reference's JSON. Inline JSON never starts
 * with a 0 byte (JSON text has no raw NUL), so the first byte tells the two apart.
 */
function refSlot(ref: BlobRef): Uint8Array {
  const json = encodeJson(ref);
  const out = new Uint8Array(json.length + 1);
  out.set(json, 1);
  return out;
}

function refOf(value: unknown): BlobRef | undefined {
  if (!(value instanceof Uint8Array) || value.length === 0 || value[0] !== 0) return undefined;
  return decodeJson<BlobRef>(value.subarray(1));
}

/** A key's encoded size as Deno KV counts it (rounded up: strings may escape NUL bytes). */
function keySize(key: Deno.KvKey): number {
  let n = 0;
  for (const part of key) {
    if (typeof part === "string") n += encoder.encode(part).length + 2;
    else if (part instanceof Uint8Array) n += part.length + 2;
    else if (typeof part === "bigint") n += 18;
    else n += 9;
    if (typeof part === "string") n += part.split("\0").length - 1;
  }
  return n;
}

/** An upper bound of a small structured value's serialized size. */
function valueSize(value: unknown): number {
  return value instanceof Uint8Array
    ? value.length
    : encoder.encode(JSON.stringify(value)).length * 2 + 64;
}

/** A short random id, unique per commit: names the pieces and blobs that commit writes. */
function newStageId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_");
}

function limitError(id: string, what: string, cause?: unknown): InternalError {
  return new InternalError(`Cannot store task ${id}: ${what}`, cause);
}

function loggedError(id: string, seq: number): InternalError {
  return new InternalError(`Cannot log event ${seq} of task ${id}: it is logged`);
}

/**
 * One atomic operation being filled, and what it counts against Deno KV's limits. It is built
 * only on commit, so that a plan can be measured first.
 */
class Batch {
  readonly checks: Deno.AtomicCheck[] = [];
  readonly sets: Write[] = [];
  readonly deletes: Deno.KvKey[] = [];
  readonly sums: Sum[] = [];
  bytes = 0;
  keyBytes = 0;
  mutations = 0;

  /** Whether a mutation of this key and value size still fits. */
  fits(key: Deno.KvKey, size: number): boolean {
    const k = keySize(key);
    return this.mutations < OP_MUTATIONS && this.keyBytes + k <= OP_KEY_BYTES &&
      this.bytes + k + size <= OP_BYTES;
  }

  check(key: Deno.KvKey, versionstamp: string | null): void {
    this.checks.push({ key, versionstamp });
    this.#count(key, 0);
  }

  set(w: Write): void {
    this.sets.push(w);
    this.#count(w.key, w.size);
    this.mutations++;
  }

  delete(key: Deno.KvKey): void {
    this.deletes.push(key);
    this.#count(key, 0);
    this.mutations++;
  }

  sum(s: Sum): void {
    this.sums.push(s);
    this.#count(s.key, 8);
    this.mutations++;
  }

  /** Whether the operation stays within every limit. */
  ok(): boolean {
    return this.mutations <= OP_MUTATIONS && this.checks.length <= OP_CHECKS &&
      this.keyBytes <= OP_KEY_BYTES && this.bytes <= OP_BYTES;
  }

  commit(kv: Deno.Kv): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
    const op = kv.atomic();
    for (const c of this.checks) op.check(c);
    for (const w of this.sets) op.set(w.key, w.value);
    for (const key of this.deletes) op.delete(key);
    for (const s of this.sums) op.sum(s.key, u64(s.n));
    return op.commit();
  }

  #count(key: Deno.KvKey, size: number): void {
    const k = keySize(key);
    this.keyBytes += k;
    this.bytes += k + size;
  }
}

/** What one commit writes, worked out from the change and the stored head before it. */
class Plan {
  readonly id: string;
  readonly stage: string;
  /** Writes under keys that earlier commits also write: they go in the final operation. */
  readonly fixed: Write[] = [];
  /** Writes under keys only this commit uses: in the final operation when they fit, else before. */
  readonly movable: Write[] = [];
  /** Blob chunks: always written before the final operation, which makes them reachable. */
  readonly chunks: Write[] = [];
  readonly deletes: Deno.KvKey[] = [];
  /** Checks and counters of the indexes: in the final operation. */
  readonly checks: Deno.AtomicCheck[] = [];
  readonly sums: Sum[] = [];
  /** Whether this commit ends the task: an eviction round follows it. */
  ends = false;
  /** What this commit makes unreachable, deleted after it. */
  readonly garbage: Drop[] = [];
  /** Where this commit stages writes, deleted when it does not happen. */
  readonly staged: Drop[] = [];
  /** The artifact heads this commit writes, by index; undefined for one too large to cache. */
  readonly artifactHeads = new Map<number, ArtifactHead | undefined>();
  #blobs = 0;

  constructor(id: string, stage: string) {
    this.id = id;
    this.stage = stage;
  }

  /** Stores a value's JSON in chunks under a key prefix no other commit uses. */
  blob(json: Uint8Array, scope: string): BlobRef {
    const k = blobPrefix(this.id, scope, this.stage, this.#blobs++);
    const n = Math.ceil(json.length / VALUE_BYTES);
    for (let i = 0; i < n; i++) {
      const value = json.subarray(i * VALUE_BYTES, (i + 1) * VALUE_BYTES);
      this.chunks.push({ key: [...k, i], value, size: value.length });
    }
    return { k, n, b: json.length };
  }

  /** Encodes a slot value: its JSON inline when it fits one Deno KV value, else a blob. */
  slot(value: unknown, scope: string): { bytes: Uint8Array; blob: boolean } {
    const json = encodeJson(value);
    if (json.length <= VALUE_BYTES) return { bytes: json, blob: false };
    return { bytes: refSlot(this.blob(json, scope)), blob: true };
  }

  /** Encodes a field kept in a head: inline when small, else a blob reference. */
  field<T>(value: T, scope: string): { inline?: T; ref?: BlobRef } {
    const json = encodeJson(value);
    return json.length <= FIELD_BYTES ? { inline: value } : { ref: this.blob(json, scope) };
  }
}

/** Options of {@linkcode KvTaskStore.open}. */
export interface KvTaskStoreOptions {
  /** The lease that keeps a data file to one process (file databases only; `open` takes it). */
  lease?: KvLeaseOptions;
  /**
   * Eviction of ended tasks, as in the in-memory store: at most `maxTerminalTasks` (10 000) tasks
   * in a terminal state are kept, each for at most `terminalTtlMs` (24 hours) after it ended, with
   * everything stored for them; tasks that have not ended are never evicted.
   */
  retention?: RetentionOptions;
}

const log = getLogger(["a2a-capnweb", "kv"]);

/**
 * A {@linkcode TaskStore} on Deno KV: tasks, their event logs and push configs survive a restart.
 * Deno KV is unstable: run with `--unstable-kv` (or `"unstable": ["kv"]` in deno.json).
 *
 * A task is stored in pieces, so that a commit writes what it changed (a status, one history
 * message, the new parts of one artifact, one event) and costs in proportion to that, not to the
 * task. Key layout, all under `"a2a"`, values JSON in UTF-8 unless said otherwise:
 *
 * - `["a2a", "head", taskId]`: owner, `lastSeq`, state, context, status (inline up to 16 KiB),
 *   the task's other fields, the generation `gen` of its pieces and how many messages and
 *   artifacts it has. Every commit rewrites it, checked against its versionstamp.
 * - `["a2a", "msg", taskId, gen, i]`: history messages from position `i` (a JSON array, usually
 *   of one message); `get` with `historyLength: n` reads the last `n` of them only.
 * - `["a2a", "art", taskId, gen, i]`: artifact `i` without its parts, and which parts it has.
 * - `["a2a", "part", taskId, gen, s, k, j]`: that artifact's parts from position `j` (a JSON
 *   array: what one commit appended). `s, k` name one version: a replaced artifact gets new ones,
 *   so its old parts are unreachable at once.
 * - `["a2a", "event", taskId, seq]`: the event log, append-only; a replay is one range read.
 * - `["a2a", "blob", taskId, scope, stage, n, i]`: a value over 64 KiB (the most one Deno KV value
 *   holds) in 64 KiB chunks, under ids of the commit that wrote it; a piece holds a reference.
 * - `["a2a", "gc", taskId, stage]`: what a commit staged, or what it made unreachable.
 * - `["a2a", "by_owner", owner, statusTimestamp, taskId]`: the listing index, with the context
 *   and state for the filters; `list` reads it newest first and pages by key.
 * - `["a2a", "message", owner, messageId]`: where each user message is in its task's history,
 *   for `findMessage` (an id over 512 bytes by its SHA-256).
 * - `["a2a", "unfinished", taskId]`: tasks in SUBMITTED or WORKING, for recovery at start.
 * - `["a2a", "push", taskId, configId]`: push notification configs; `["a2a", "push_n", owner]`
 *   counts each user's (a KvU64, for `countPushConfigs`).
 * - `["a2a", "ctx", contextId]`: the owner of a context (a long id by its SHA-256), claimed by
 *   the commit that creates its first task, and `["a2a", "ctx_n", contextId]`, how many kept tasks
 *   it has (a KvU64): evicting the last one forgets the context.
 * - `["a2a", "term", endedAtMs, taskId]`: the tasks in a terminal state, oldest first, written by
 *   the commit that ends a task, naming its context; `["a2a", "term_n"]` counts them (a KvU64).
 * - `["a2a", "evict", taskId]`: an eviction under way (its head is gone, its pieces not yet).
 *
 * Large values and atomicity. No value, event or commit has a size limit of its own: a value
 * larger than 64 KiB goes to a blob, written in preliminary atomic operations (each under Deno KV's
 * 800 KiB and 1000 mutations) before the final one, which writes the head, the event and the
 * pieces' references together. Until then the blob is unreachable, so a reader sees a commit whole
 * or not at all. The final operation checks the head's versionstamp: a seq is logged once, and two
 * writers cannot interleave one task's log; a commit whose `lastSeq` is behind the stored one is
 * refused, so the head never falls behind its log. The store keeps in memory the heads it wrote
 * last (1000 tasks at most), so that an event usually costs that one operation and no read; the
 * versionstamp check catches a head another writer changed, which is then read. A read takes the
 * head and the artifact heads from one
 * snapshot (`getMany`) and the rest from pieces that are never rewritten; when it meets a piece that
 * a later commit deleted, it reads again.
 *
 * Leftovers. A commit that stages blobs first writes a `gc` entry saying where; the final
 * operation removes it, or turns it into the list of what the commit made unreachable (a replaced
 * artifact's parts, the blob of an overwritten status), which the commit then deletes in batches
 * before it returns. Deletion is best effort: when it fails, or the process dies before it, the
 * data stays unreachable and the entry stays. `unfinished()` (called by `TaskManager.recover()` at
 * start) sweeps every entry this store is not working on: run it when no other process is
 * committing to the database (a commit whose staging it sweeps starts over).
 *
 * Retention. Ended tasks are evicted beyond `retention.maxTerminalTasks` and after
 * `retention.terminalTtlMs`, oldest first, by rounds that run after each commit that ends a task
 * and on a timer (cleared by `close()`), never in the commit itself; a round reads the count and
 * the oldest `term` entries, not the whole store. An eviction first deletes, in one atomic
 * operation checked against the head's versionstamp (so it never races a commit), the head, the
 * listing entry and the `term` entry, and writes an `evict` entry; readers then find no task.
 * Then it deletes the message index entries, push configs, history, artifacts, blobs and event
 * log in bounded operations, and last the `evict` entry. A round finishes what an `evict` entry
 * says was left half done (the process died), so nothing stays behind. `evict()` runs a round at
 * once. A database written before retention existed has no `term` entries for its ended tasks,
 * nor context owners for its contexts: they are written as such tasks are committed again.
 *
 * Limits that remain: a key (task id, owner, timestamp) of at most 2 KiB, and a head (owner,
 * context id, timestamp) of at most 64 KiB; beyond them `commit` throws an
 * {@linkcode InternalError} and the task keeps its previous state. A task's other fields
 * (`metadata`) are written when it is created only. The layout is not the one of earlier versions,
 * whose tasks this store does not read.
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
 *       await events.artifact({ artifactId: "a", parts: [{ text: "x".repeat(200_000) }] });
 *       await events.status("TASK_STATE_COMPLETED");
 *     },
 *   },
 * });
 * const { task } = await manager.sendMessage("alice", {
 *   message: { messageId: "m1", role: "ROLE_USER", parts: [{ text: "hi" }] },
 * });
 * const stored = await store.get(task!.id, { historyLength: 1, artifacts: false });
 * assert.equal(stored?.task.status.state, "TASK_STATE_COMPLETED");
 * assert.equal(stored?.task.artifacts, undefined);
 * assert.equal((await store.get(task!.id))?.task.artifacts?.[0]?.parts[0]?.text?.length, 200_000);
 * assert.equal((await store.events(task!.id, 0)).length, 3);
 * await manager.close();
 * store.close();
 * ```
 */
export class KvTaskStore implements TaskStore, Disposable, AsyncDisposable {
  #kv: Deno.Kv;
  #closed = false;
  /** Stage ids of this store's commits in progress, which a sweep leaves alone. */
  #busy = new Set<string>();
  /** The heads this store wrote last, least recently written first. */
  #known = new Map<string, Known>();
  #retention: Retention;
  /** Eviction rounds, one after another; a round is queued when one is asked and none waits. */
  #rounds: Promise<unknown> = Promise.resolve();
  #queued = false;
  /** Set by `release()`: rounds stop between tasks. */
  #stopping = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** The ids of the tasks this store evicted last, oldest first. */
  #evicted = new Set<string>();
  /**
   * What the last round saw (the terminal count, the oldest end, and how many tasks this store
   * had ended by then), so that a commit that ends a task asks for a round only when one can
   * have work. The timer's rounds read the database whatever the hint says.
   */
  #hint: { count: number; oldest: number; ended: number } | undefined;
  /** How many commits of this store ended a task. */
  #ended = 0;
  /** Whether the next round looks for evictions left half done (the first, and the timer's). */
  #leftovers = true;

  /**
   * Opens a Deno KV database and makes a store on it.
   *
   * A database file is used by one process at a time: the store takes an exclusive lease in it
   * (the key `["a2a", "lease"]`, naming a random holder id, the pid and the host), renewed every
   * `lease.beatMs` (500 ms). Opening a file that a live process holds fails within about a second,
   * naming that process; a lease left by a process that died without closing lapses after
   * `lease.leaseMs` (10 s), and the open waits for that. A store whose lease another process took
   * (or that could not renew it in time) refuses every write with an `InternalError` rather than
   * write beside the new holder. Recovery at start (`unfinished()`, which marks SUBMITTED and
   * WORKING tasks FAILED) thus only touches tasks whose process is gone: with a single holder,
   * a second process never gets as far as recovering the first one's running tasks.
   *
   * @param path The database file, `":memory:"` for a store that lives as long as the process
   * (no lease), or undefined for Deno's default database of the script.
   * @param options The lease settings and the retention of ended tasks.
   * @returns The store; `release()` (or `close()`) closes the database.
   * @throws {TypeError} When Deno KV is not enabled (`--unstable-kv`).
   * @throws {Error} When another live process holds the file:
   * `Cannot open PATH: it is in use by process PID on HOST (its lease runs until ...)`.
   * @throws {RangeError} When the lease or retention options are out of range.
   */
  static async open(path?: string, options: KvTaskStoreOptions = {}): Promise<KvTaskStore> {
    if (typeof Deno.openKv !== "function") {
      throw new TypeError("Cannot open Deno KV: run with --unstable-kv");
    }
    retentionOf(options.retention);
    const kv = await Deno.openKv(path);
    if (path === ":memory:") return new KvTaskStore(kv, options);
    let lease: KvLease;
    try {
      lease = await KvLease.acquire(kv, path ?? "the default Deno KV database", options.lease);
    } catch (err) {
      kv.close();
      throw err;
    }
    const store = new KvTaskStore(kv, options);
    store.#lease = lease;
    // Ended tasks of an earlier run may be past their time: a round looks at once.
    store.#startTimer();
    store.#schedule();
    return store;
  }

  /**
   * Makes a store on an open database. The store owns it from now on: `close()` closes it. Its
   * eviction timer starts with its first commit (or `unfinished()`).
   *
   * @param kv The database.
   * @param options The retention of ended tasks (`lease` is for `open` only).
   * @throws {RangeError} When a retention limit is negative or not a number.
   */
  constructor(kv: Deno.Kv, options: KvTaskStoreOptions = {}) {
    this.#kv = kv;
    this.#retention = retentionOf(options.retention);
  }

  #lease: KvLease | undefined;

  /**
   * Reads a task, or the part of it a view asks for: the head, then only the messages and
   * artifacts the view returns.
   */
  async get(taskId: string, view: TaskView = {}): Promise<TaskRecord | undefined> {
    for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
      const read = await this.#read(taskId, view);
      if (read !== STALE) return read;
    }
    throw new InternalError(`Cannot read task ${taskId}: it kept changing while it was read`);
  }

  /**
   * Saves a task's change and appends its event: blobs first, then one atomic operation that
   * makes the head, the event and the new pieces visible together. A commit that creates a task
   * in a context another user owns fails with an `InvalidParamsError`, changing nothing; one
   * that ends a task is followed by an eviction round, which it does not wait for.
   */
  async commit(record: TaskRecord, change: TaskChange): Promise<void> {
    this.#lease?.check();
    this.#startTimer();
    const id = record.task.id;
    const event = change.event;
    // A commit on a task that is gone does not bring back part of it; creating it again may.
    const evicted = () => new InternalError(`Cannot store task ${id}: it was evicted`);
    if (!change.created && this.#evicted.has(id)) throw evicted();
    // What this store wrote last saves reading it again; the final check on the head's
    // versionstamp catches a cache that another writer made stale, and then it is read.
    let known = this.#known.get(id);
    let seen = known !== undefined;
    for (let attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
      let versionstamp: string | null;
      let old: Head | undefined;
      let held: Deno.KvEntryMaybe<string> | undefined;
      if (known) ({ versionstamp, head: old } = known);
      else {
        // A created task claims its context: its owner is read with the head, in one round trip.
        const context = contextKey(await contextPart(record.task.contextId));
        const [entry, evicting, owner] = await this.#kv.getMany<[Uint8Array, EvictEntry, string]>(
          [headKey(id), evictKey(id), context],
        );
        // An eviction under way deletes everything under the id, whatever this writes.
        if (evicting.versionstamp !== null) throw evicted();
        versionstamp = entry.versionstamp;
        old = entry.value ? decodeJson<Head>(entry.value) : undefined;
        held = owner;
        if (old) seen = true;
        else if (seen && !change.created) throw evicted();
      }
      // A cached lastSeq can only be behind the stored one, so both refusals hold for both.
      if (event && old && event.seq <= old.lastSeq) throw loggedError(id, event.seq);
      if (old && record.lastSeq < old.lastSeq) {
        // A state older than the stored one would put the head behind its own log.
        throw new InternalError(
          `Cannot store task ${id}: its state at seq ${record.lastSeq} is older than the ` +
            `stored one at seq ${old.lastSeq}`,
        );
      }
      const plan = new Plan(id, newStageId());
      const head = await this.#plan(plan, record, change, old, known, held);
      this.#busy.add(plan.stage);
      try {
        const written = await this.#write(plan, head, versionstamp, event);
        if (written !== undefined) {
          this.#remember(id, written, head, plan, known);
          this.#evicted.delete(id);
          if (plan.garbage.length > 0) await this.#dropQuietly(plan.stage, id, plan.garbage);
          if (plan.ends) this.#ending(head.end!);
          return;
        }
      } catch (err) {
        this.#known.delete(id);
        throw err;
      } finally {
        this.#busy.delete(plan.stage);
      }
      // Another writer changed the task since we read or wrote it: redo on its state, unless it
      // logged this seq (then the head may say so only after the retry, or never, if it
      // fell behind its log).
      this.#known.delete(id);
      known = undefined;
      if (event && (await this.#kv.get([...eventPrefix(id), event.seq])).versionstamp !== null) {
        throw loggedError(id, event.seq);
      }
    }
    throw new InternalError(`Cannot store task ${id}: it kept changing under other writers`);
  }

  /**
   * Finds a user's message by its id, from the message index: the entry, then the task's head and
   * the history slot in one snapshot, so that only a committed message is found.
   */
  async findMessage(owner: string, messageId: string): Promise<StoredMessage | undefined> {
    const entry = await this.#kv.get<Uint8Array>(await messageKey(owner, messageId));
    if (!entry.value) return undefined;
    const at = decodeJson<MessageEntry>(entry.value);
    const [head, slot] = await this.#kv.getMany<[Uint8Array, Uint8Array]>([
      headKey(at.t),
      [...msgPrefix(at.t, at.g), at.i],
    ]);
    if (!head?.value || !slot?.value) return undefined;
    const h = decodeJson<Head>(head.value);
    // An entry that a commit wrote but did not finish, or of pieces replaced since, is no answer.
    if (h.owner !== owner || h.gen !== at.g || at.i >= h.hc) return undefined;
    const messages = await this.#slot<Message[]>(slot.value);
    const message = messages === STALE ? undefined : messages[at.o];
    return message?.messageId === messageId ? { taskId: at.t, message } : undefined;
  }

  /** Reads logged events after a sequence number, with one range read. */
  async events(taskId: string, afterSeq: number): Promise<StreamEvent[]> {
    const out: StreamEvent[] = [];
    const rows = this.#kv.list<Uint8Array>({
      prefix: eventPrefix(taskId),
      start: [...eventPrefix(taskId), Math.max(0, Math.floor(afterSeq)) + 1],
    }, { batchSize: 500 });
    for await (const row of rows) {
      const event = await this.#slot<StreamEvent>(row.value);
      if (event === STALE) {
        throw new InternalError(
          `Cannot read event ${String(row.key[3])} of task ${taskId}: a chunk is missing`,
        );
      }
      out.push(event);
    }
    return out;
  }

  /**
   * Lists a user's tasks, newest first, from the owner index: it reads the user's index keys
   * (not their tasks, and nothing of other users) to filter and count, then the page's tasks,
   * whole, or with `query.view` when the caller passes one (the task core trims them anyway).
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
    for (const r of await Promise.all(page.map((p) => this.get(p.id, query.view)))) {
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

  /**
   * Creates or replaces a push config, and counts a new one for its owner in the same atomic
   * operation. A config of a task this store is evicting, or has just evicted, is refused with
   * `TaskNotFoundError`: nothing would delete it.
   */
  async putPushConfig(record: PushConfigRecord): Promise<void> {
    this.#lease?.check();
    const { taskId, id } = record.config;
    const key = pushKey(taskId, id);
    let seen = false;
    for (let attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
      const [head, existing, evicting] = await this.#kv.getMany<
        [Uint8Array, PushConfigRecord, EvictEntry]
      >([headKey(taskId), key, evictKey(taskId)]);
      if (head.versionstamp !== null) seen = true;
      // A config may come before its task's first commit, so only a task known gone is refused.
      const gone = evicting.versionstamp !== null ||
        (head.versionstamp === null && (seen || this.#evicted.has(taskId)));
      if (gone) throw new TaskNotFoundError(taskId);
      // The eviction writes its `evict` entry before it lists the configs it deletes: a config
      // written before that entry is deleted with the task, and none is written after it.
      const op = this.#kv.atomic().check(existing).check(evicting).set(key, record);
      const before = existing.value?.owner;
      if (before !== record.owner) {
        op.sum(pushCountKey(record.owner), u64(1));
        if (before !== undefined) op.sum(pushCountKey(before), u64(-1));
      }
      if ((await op.commit()).ok) return;
    }
    throw new InternalError(`Cannot store push config ${id} of task ${taskId}: it kept changing`);
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

  /**
   * Deletes a push config and counts it off its owner, in one atomic operation checked against
   * the config, so that a delete racing another (or an eviction) counts it off once.
   */
  async deletePushConfig(taskId: string, id: string): Promise<boolean> {
    this.#lease?.check();
    const key = pushKey(taskId, id);
    const existing = await this.#kv.get<PushConfigRecord>(key);
    if (existing.value === null) return false;
    const result = await this.#kv.atomic()
      .check(existing)
      .delete(key)
      .sum(pushCountKey(existing.value.owner), u64(-1))
      .commit();
    return result.ok;
  }

  /** Counts a user's push configs: one read of their counter. */
  async countPushConfigs(owner: string): Promise<number> {
    return counted(await this.#kv.get(pushCountKey(owner)));
  }

  /** Tells who owns a context: one read of its `ctx` key. */
  async contextOwner(contextId: string): Promise<string | undefined> {
    return (await this.#kv.get<string>(contextKey(await contextPart(contextId)))).value ??
      undefined;
  }

  /**
   * Lists the tasks left SUBMITTED or WORKING, from the `unfinished` index. First it sweeps what
   * dead commits left behind: staged blobs that never became reachable, and pieces that a commit
   * made unreachable but did not get to delete.
   */
  async unfinished(): Promise<TaskRecord[]> {
    this.#lease?.check();
    this.#startTimer();
    this.#schedule();
    await this.#sweep();
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

  /** Checks that the database answers: one read of a key that need not exist. */
  async ping(): Promise<void> {
    if (this.#closed) throw new Error("The store is closed");
    await this.#kv.get(["ping"]);
  }

  /**
   * Closes the database and stops the eviction timer; calling it again does nothing. An eviction
   * round under way stops where it is, and the next store on the database finishes it.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#lease?.drop();
    this.#kv.close();
  }

  /**
   * Lets an eviction round under way finish the task it is on, gives up the file's lease, so
   * that the next process opens it at once, then closes the database. Prefer it to `close()`
   * when the process goes on or another will start.
   */
  async release(): Promise<void> {
    if (this.#closed) return;
    this.#stopping = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#rounds;
    await this.#lease?.release().catch(() => {});
    this.#lease = undefined;
    this.close();
  }

  /** Same as `release()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  /** Same as `close()`. */
  [Symbol.dispose](): void {
    this.close();
  }

  // -------------------------------------------------------------------------------------------
  // Writing

  /** Keeps what a commit wrote, for the next commit of the task; at most KNOWN_TASKS tasks. */
  #remember(id: string, versionstamp: string, head: Head, plan: Plan, known?: Known): void {
    this.#known.delete(id);
    if (encodeJson(head).length > KNOWN_BYTES) return;
    const artifacts = known && known.head.gen === head.gen ? known.artifacts : new Map();
    for (const [i, a] of plan.artifactHeads) {
      // Deleted first so that the map stays in the order of writing, oldest first.
      artifacts.delete(i);
      if (a) artifacts.set(i, a);
    }
    for (const i of artifacts.keys()) {
      if (artifacts.size <= KNOWN_ARTIFACTS) break;
      artifacts.delete(i);
    }
    this.#known.set(id, { versionstamp, head, artifacts });
    for (const key of this.#known.keys()) {
      if (this.#known.size <= KNOWN_TASKS) break;
      this.#known.delete(key);
    }
  }

  /** Works out the writes of one commit into `plan`, and returns the new head. */
  async #plan(
    plan: Plan,
    record: TaskRecord,
    change: TaskChange,
    old: Head | undefined,
    known: Known | undefined,
    held: Deno.KvEntryMaybe<string> | undefined,
  ): Promise<Head> {
    const task = record.task;
    const id = task.id;
    const fresh = old === undefined || change.created === true;
    const gen = fresh ? plan.stage : old.gen;
    const ver = (old?.ver ?? 0) + 1;
    const timestamp = task.status.timestamp ?? "";
    const head: Head = {
      owner: record.owner,
      lastSeq: record.lastSeq,
      ver,
      contextId: task.contextId,
      state: task.status.state,
      timestamp,
      gen,
      hc: fresh ? task.history?.length ?? 0 : old.hc,
      ac: fresh ? task.artifacts?.length ?? 0 : old.ac,
      hh: task.history !== undefined || (!fresh && old.hh),
      ha: task.artifacts !== undefined || (!fresh && old.ha),
    };
    const status = plan.field(task.status, gen);
    if (status.ref) head.statusRef = status.ref;
    else head.status = task.status;
    if (old?.statusRef) plan.garbage.push({ b: old.statusRef });

    if (fresh) {
      const { id: _id, contextId: _c, status: _s, history, artifacts, ...rest } = task;
      if (Object.keys(rest).length > 0) {
        const field = plan.field(rest, gen);
        if (field.ref) head.restRef = field.ref;
        else head.rest = rest;
      }
      // One message per slot, so that reading the last few reads only those.
      for (const [i, m] of (history ?? []).entries()) {
        const slot = plan.slot([m], gen);
        plan.movable.push({
          key: [...msgPrefix(id, gen), i],
          value: slot.bytes,
          size: slot.bytes.length,
        });
        // Staged with the slots when they are many: findMessage checks the head, so an entry is
        // found only once its commit is.
        if (m.role === "ROLE_USER") {
          plan.movable.push(await this.#messageWrite(record.owner, m, { t: id, g: gen, i, o: 0 }));
        }
      }
      (artifacts ?? []).forEach((a, i) => this.#planArtifact(plan, gen, ver, i, a, plan.movable));
      plan.staged.push(
        { p: msgPrefix(id, gen) },
        { p: artPrefix(id, gen) },
        { p: [ROOT, "part", id, gen] },
        { p: [ROOT, "blob", id, gen] },
      );
      if (old) {
        // Created again over an existing task: its earlier pieces go, its log stays.
        plan.garbage.push(
          { p: msgPrefix(id, old.gen) },
          { p: artPrefix(id, old.gen) },
          { p: [ROOT, "part", id, old.gen] },
          { p: [ROOT, "blob", id, old.gen] },
        );
      }
    } else {
      if (old.restRef) head.restRef = old.restRef;
      else if (old.rest) head.rest = old.rest;
      const appended = change.historyAppended ?? 0;
      if (appended > 0) {
        const history = task.history ?? [];
        if (appended > history.length) {
          throw limitError(id, `${appended} messages appended to a history of ${history.length}`);
        }
        const added = history.slice(history.length - appended);
        const slot = plan.slot(added, gen);
        plan.fixed.push({
          key: [...msgPrefix(id, gen), old.hc],
          value: slot.bytes,
          size: slot.bytes.length,
        });
        for (const [o, m] of added.entries()) {
          if (m.role !== "ROLE_USER") continue;
          plan.fixed.push(
            await this.#messageWrite(record.owner, m, { t: id, g: gen, i: old.hc, o }),
          );
        }
        head.hc = old.hc + appended;
      }
      if (change.artifact) {
        await this.#planChange(plan, task, old, head, change.artifact, known);
      }
      plan.staged.push({ p: [ROOT, "blob", id, gen, plan.stage] });
    }

    if (change.event) {
      const slot = plan.slot(change.event, LOG_SCOPE);
      plan.fixed.push({
        key: [...eventPrefix(id), change.event.seq],
        value: slot.bytes,
        size: slot.bytes.length,
      });
      plan.staged.push({ p: [ROOT, "blob", id, LOG_SCOPE, plan.stage] });
    }

    // The indexes, written only when what they hold changed.
    const entry: IndexEntry = { contextId: task.contextId, state: task.status.state };
    const ownerEntry = {
      key: ownerKey(record.owner, timestamp, id),
      value: entry,
      size: valueSize(entry),
    };
    if (!old || old.owner !== record.owner || old.timestamp !== timestamp) {
      if (old) plan.deletes.push(ownerKey(old.owner, old.timestamp, id));
      plan.fixed.push(ownerEntry);
    } else if (old.state !== head.state || old.contextId !== head.contextId) {
      plan.fixed.push(ownerEntry);
    }
    await this.#planContext(plan, record, change, old, held);
    // The terminal index: a task is dated when it first ends, and undated if it comes back.
    const terminal = TERMINAL_STATES.has(head.state);
    const dated = old !== undefined && TERMINAL_STATES.has(old.state) && old.end !== undefined;
    if (terminal && dated) head.end = old.end!;
    else if (terminal) {
      head.end = this.#retention.now();
      // The entry names the context, so that the eviction reads its count with the head.
      const mark: TermEntry = { c: await contextPart(task.contextId) };
      plan.fixed.push({ key: termKey(head.end, id), value: mark, size: valueSize(mark) });
      plan.sums.push({ key: TERM_COUNT, n: 1 });
      plan.ends = true;
    } else if (dated) {
      plan.deletes.push(termKey(old.end!, id));
      plan.sums.push({ key: TERM_COUNT, n: -1 });
    }
    const unfinished = isUnfinishedState(head.state);
    const wasUnfinished = old !== undefined && isUnfinishedState(old.state);
    if (unfinished && (!wasUnfinished || old.owner !== record.owner)) {
      plan.fixed.push({
        key: unfinishedKey(id),
        value: record.owner,
        size: valueSize(record.owner),
      });
    } else if (!unfinished && wasUnfinished) {
      plan.deletes.push(unfinishedKey(id));
    }
    return head;
  }

  /**
   * Plans the context index: a task that joins a context (is created, or moves) claims it when it
   * has no owner, and checks that it still has the same one when it has; a task that leaves one
   * counts down, forgetting it with its last task.
   *
   * @param prefetched The context's owner entry, when it was read with the head.
   */
  async #planContext(
    plan: Plan,
    record: TaskRecord,
    change: TaskChange,
    old: Head | undefined,
    prefetched: Deno.KvEntryMaybe<string> | undefined,
  ): Promise<void> {
    const contextId = record.task.contextId;
    const joins = old === undefined || old.contextId !== contextId;
    if (!joins && !change.created) return;
    const part = await contextPart(contextId);
    const held = prefetched ?? await this.#kv.get<string>(contextKey(part));
    if (held.value !== null && held.value !== record.owner) throw contextTakenError();
    // Absent: the claim fails if another commit claims it first. Present: it fails if the
    // context is forgotten (its last task evicted) meanwhile, and the retry claims it again.
    plan.checks.push({ key: contextKey(part), versionstamp: held.versionstamp });
    if (held.value === null) {
      plan.fixed.push({
        key: contextKey(part),
        value: record.owner,
        size: valueSize(record.owner),
      });
    }
    if (!joins) return;
    plan.sums.push({ key: contextCountKey(part), n: 1 });
    if (old) {
      const from = await contextPart(old.contextId);
      const count = await this.#kv.get(contextCountKey(from));
      if (counted(count) > 1) plan.sums.push({ key: contextCountKey(from), n: -1 });
      else {
        plan.checks.push(count);
        plan.deletes.push(contextKey(from), contextCountKey(from));
      }
    }
  }

  async #messageWrite(owner: string, message: Message, at: MessageEntry): Promise<Write> {
    const value = encodeJson(at);
    return { key: await messageKey(owner, message.messageId), value, size: value.length };
  }

  /** Plans the artifact of a non-creating commit: a new, replaced or appended-to artifact. */
  async #planChange(
    plan: Plan,
    task: Task,
    old: Head,
    head: Head,
    change: { index: number; fromPart: number },
    known: Known | undefined,
  ): Promise<void> {
    const id = task.id;
    const { index, fromPart } = change;
    const artifact = task.artifacts?.[index];
    if (!artifact) {
      throw limitError(id, `the change names artifact ${index}, which it does not have`);
    }
    if (index > old.ac) {
      throw limitError(id, `artifact ${index} would leave a gap after the ${old.ac} stored`);
    }
    let prev = index < old.ac ? known?.artifacts.get(index) : undefined;
    if (index < old.ac && !prev) {
      const entry = await this.#kv.get<Uint8Array>([...artPrefix(id, old.gen), index]);
      if (!entry.value) throw limitError(id, `artifact ${index} is missing from the store`);
      prev = decodeJson<ArtifactHead>(entry.value);
      // The artifact head is read outside the head's snapshot: the final check on the head's
      // versionstamp makes sure no commit came between.
    }
    if (fromPart === 0) {
      if (prev) {
        if (prev.g === 1 && !prev.x) {
          // The common case, one inline slot: deleted in the commit itself.
          plan.deletes.push([...partPrefix(id, old.gen, prev.s, prev.k), 0]);
        } else plan.garbage.push({ p: partPrefix(id, old.gen, prev.s, prev.k) });
        if (prev.fRef) plan.garbage.push({ b: prev.fRef });
      }
      this.#planArtifact(plan, old.gen, head.ver, index, artifact, plan.fixed);
    } else {
      if (!prev || prev.n !== fromPart) {
        throw limitError(
          id,
          `artifact ${index} is appended to from part ${fromPart}, but the store has ${
            prev?.n ?? 0
          } parts of it`,
        );
      }
      if (prev.fRef) plan.garbage.push({ b: prev.fRef });
      const slot = plan.slot(artifact.parts.slice(fromPart), old.gen);
      plan.fixed.push({
        key: [...partPrefix(id, old.gen, prev.s, prev.k), fromPart],
        value: slot.bytes,
        size: slot.bytes.length,
      });
      plan.fixed.push(this.#artifactHead(plan, old.gen, head.ver, index, artifact, {
        s: prev.s,
        k: prev.k,
        n: artifact.parts.length,
        g: prev.g + 1,
        x: prev.x || slot.blob,
      }));
    }
    head.ac = Math.max(old.ac, index + 1);
  }

  /**
   * Plans a whole artifact under new part ids (this commit's stage id and the artifact's
   * index): its head into `into`, and its parts in one slot.
   */
  #planArtifact(
    plan: Plan,
    gen: string,
    ver: number,
    index: number,
    artifact: Artifact,
    into: Write[],
  ): void {
    const slot = plan.slot(artifact.parts, gen);
    const parts = partPrefix(plan.id, gen, plan.stage, index);
    // Parts under this commit's stage id are new keys: they can be staged with the blobs.
    plan.movable.push({ key: [...parts, 0], value: slot.bytes, size: slot.bytes.length });
    into.push(this.#artifactHead(plan, gen, ver, index, artifact, {
      s: plan.stage,
      k: index,
      n: artifact.parts.length,
      g: 1,
      x: slot.blob,
    }));
    if (into !== plan.movable) plan.staged.push({ p: parts });
  }

  #artifactHead(
    plan: Plan,
    gen: string,
    ver: number,
    index: number,
    artifact: Artifact,
    where: Omit<ArtifactHead, "f" | "fRef" | "w">,
  ): Write {
    const { parts: _, ...fields } = artifact;
    const value: ArtifactHead = { ...where, w: ver };
    const field = plan.field(fields, gen);
    if (field.ref) value.fRef = field.ref;
    else value.f = fields;
    const bytes = encodeJson(value);
    plan.artifactHeads.set(index, bytes.length <= KNOWN_BYTES ? value : undefined);
    return { key: [...artPrefix(plan.id, gen), index], value: bytes, size: bytes.length };
  }

  /**
   * Writes a plan: staged batches, then the final operation. Returns the head's new
   * versionstamp, or undefined when the head or the staging entry changed meanwhile (another
   * writer, or a sweep), having undone the staging.
   */
  async #write(
    plan: Plan,
    head: Head,
    headVersionstamp: string | null,
    event: StreamEvent | undefined,
  ): Promise<string | undefined> {
    const id = plan.id;
    const headBytes = encodeJson(head);
    if (headBytes.length > VALUE_BYTES) {
      throw limitError(
        id,
        `its head of ${headBytes.length} bytes (owner, context id, timestamp) exceeds the ` +
          `${VALUE_BYTES} bytes one Deno KV value can hold`,
      );
    }
    const headWrite: Write = { key: headKey(id), value: headBytes, size: headBytes.length };
    for (const w of [headWrite, ...plan.fixed, ...plan.movable, ...plan.chunks.slice(0, 1)]) {
      const size = keySize(w.key);
      if (size > KEY_BYTES) {
        throw limitError(
          id,
          `a key of ${size} bytes exceeds the ${KEY_BYTES} bytes Deno KV allows`,
        );
      }
    }

    const gc = gcKey(id, plan.stage);
    const final = (withMovable: boolean, gcVersionstamp: string | null | undefined): Batch => {
      const b = new Batch();
      b.check(headKey(id), headVersionstamp);
      if (event) b.check([...eventPrefix(id), event.seq], null);
      if (gcVersionstamp !== undefined) b.check(gc, gcVersionstamp);
      for (const c of plan.checks) b.check(c.key, c.versionstamp);
      b.set(headWrite);
      for (const w of plan.fixed) b.set(w);
      if (withMovable) { for (const w of plan.movable) b.set(w); }
      for (const key of plan.deletes) b.delete(key);
      for (const sum of plan.sums) b.sum(sum);
      if (plan.garbage.length > 0) {
        const value = encodeJson({ at: Date.now(), drop: plan.garbage } satisfies GcEntry);
        b.set({ key: gc, value, size: value.length });
      } else if (gcVersionstamp !== undefined) b.delete(gc);
      return b;
    };

    // Stage what does not fit the final operation: always the blobs, and the new pieces of a
    // created task when there are too many for one operation.
    let stagedWrites = plan.chunks;
    if (!final(true, plan.chunks.length > 0 ? null : undefined).ok()) {
      stagedWrites = [...plan.chunks, ...plan.movable];
    }
    const stagesMovable = stagedWrites !== plan.chunks;
    let gcVersionstamp: string | undefined;
    if (stagedWrites.length > 0) {
      const entry = encodeJson({ at: Date.now(), drop: plan.staged } satisfies GcEntry);
      try {
        gcVersionstamp = await this.#stage(gc, entry, stagedWrites);
      } catch (err) {
        await this.#dropQuietly(plan.stage, id, plan.staged);
        throw this.#sizeError(id, err);
      }
      if (gcVersionstamp === undefined) {
        await this.#dropQuietly(plan.stage, id, plan.staged);
        return undefined;
      }
    }
    const op = final(!stagesMovable, gcVersionstamp);
    if (!op.ok()) {
      if (gcVersionstamp !== undefined) await this.#dropQuietly(plan.stage, id, plan.staged);
      throw limitError(
        id,
        `its final commit of about ${op.bytes} bytes in ${op.mutations} mutations exceeds what ` +
          `one Deno KV atomic operation can hold (819200 bytes, 1000 mutations)`,
      );
    }
    let result: Deno.KvCommitResult | Deno.KvCommitError;
    try {
      result = await op.commit(this.#kv);
    } catch (err) {
      if (gcVersionstamp !== undefined) await this.#dropQuietly(plan.stage, id, plan.staged);
      throw this.#sizeError(id, err);
    }
    if (result.ok) return result.versionstamp;
    if (gcVersionstamp !== undefined) await this.#dropQuietly(plan.stage, id, plan.staged);
    return undefined;
  }

  /**
   * Writes staged data in batches, the first with the `gc` entry that says where it is; each
   * later batch checks that entry, so that after a sweep claimed it nothing more lands.
   *
   * @returns The entry's versionstamp, for the final operation to check; undefined when a sweep
   * claimed the entry meanwhile.
   */
  async #stage(gc: Deno.KvKey, entry: Uint8Array, writes: Write[]): Promise<string | undefined> {
    let versionstamp: string | null = null;
    let i = 0;
    while (i < writes.length) {
      const b = new Batch();
      b.check(gc, versionstamp);
      if (versionstamp === null) b.set({ key: gc, value: entry, size: entry.length });
      // Every write fits an operation of its own (values are at most 64 KiB), so this advances.
      do b.set(writes[i++]!); while (i < writes.length && b.fits(writes[i]!.key, writes[i]!.size));
      const result = await b.commit(this.#kv);
      if (!result.ok) return undefined;
      versionstamp ??= result.versionstamp;
    }
    return versionstamp ?? undefined;
  }

  #sizeError(id: string, err: unknown): unknown {
    if (err instanceof TypeError && /too large|too many/i.test(err.message)) {
      return limitError(id, `Deno KV refused the commit (${err.message})`, err);
    }
    return err;
  }

  /** Deletes what a `gc` entry lists, then the entry; failures leave them for the next sweep. */
  async #dropQuietly(stage: string, id: string, drops: Drop[]): Promise<void> {
    try {
      await this.#drop(stage, id, drops);
    } catch {
      // Best effort: the entry stays, and unfinished() sweeps it.
    }
  }

  async #drop(stage: string, id: string, drops: Drop[]): Promise<void> {
    let batch = new Batch();
    const flush = async () => {
      if (batch.mutations > 0) await batch.commit(this.#kv);
      batch = new Batch();
    };
    const remove = async (key: Deno.KvKey) => {
      if (!batch.fits(key, 0)) await flush();
      batch.delete(key);
    };
    for (const d of drops) {
      if ("b" in d) {
        for (let i = 0; i < d.b.n; i++) await remove([...d.b.k, i]);
        continue;
      }
      for await (const row of this.#kv.list({ prefix: d.p }, { batchSize: 100 })) {
        await remove(row.key);
        const ref = refOf(row.value);
        if (ref) { for (let i = 0; i < ref.n; i++) await remove([...ref.k, i]); }
      }
    }
    await remove(gcKey(id, stage));
    await flush();
  }

  /**
   * Deletes what dead commits left: for each `gc` entry no commit of this store is working on,
   * it first rewrites the entry (so that a commit still staging under it fails its check and
   * starts over), then deletes what it lists, then the entry.
   */
  async #sweep(): Promise<number> {
    const entries: Deno.KvEntry<Uint8Array>[] = [];
    for await (const row of this.#kv.list<Uint8Array>({ prefix: gcPrefix })) entries.push(row);
    let swept = 0;
    for (const row of entries) {
      const id = row.key[2] as string;
      const stage = row.key[3] as string;
      if (this.#busy.has(stage)) continue;
      const claim = await this.#kv.atomic().check(row).set(row.key, row.value).commit();
      if (!claim.ok) continue; // its commit finished meanwhile, and deals with it
      await this.#dropQuietly(stage, id, decodeJson<GcEntry>(row.value).drop);
      swept++;
    }
    return swept;
  }

  // -------------------------------------------------------------------------------------------
  // Eviction

  /**
   * Runs an eviction round now, after the one under way: finishes the evictions a dead process
   * left half done, then evicts the ended tasks beyond `retention.maxTerminalTasks` and past
   * `retention.terminalTtlMs`, oldest first. The store runs rounds by itself, after commits that
   * end tasks and on a timer; this is for tests and tools that want one to have happened.
   *
   * @returns How many tasks this round evicted.
   */
  evict(): Promise<number> {
    this.#leftovers = true;
    return this.#queue();
  }

  #queue(): Promise<number> {
    const round = this.#rounds.then(() => {
      this.#queued = false;
      return this.#round();
    });
    this.#rounds = round.catch(() => {});
    return round;
  }

  /** After a commit that ended a task at `end`: a round, when the hint says one can have work. */
  #ending(end: number): void {
    this.#ended++;
    const hint = this.#hint;
    if (hint) {
      hint.oldest = Math.min(hint.oldest, end);
      const { maxTerminalTasks, terminalTtlMs, now } = this.#retention;
      const count = hint.count + this.#ended - hint.ended;
      if (count <= maxTerminalTasks && hint.oldest > now() - terminalTtlMs) return;
    }
    this.#schedule();
  }

  /** Queues a round unless one is waiting to start (it will see what was committed by then). */
  #schedule(): void {
    if (this.#queued || this.#closed || this.#stopping) return;
    const { maxTerminalTasks, terminalTtlMs } = this.#retention;
    if (maxTerminalTasks === Infinity && terminalTtlMs === Infinity) return;
    this.#queued = true;
    this.#queue().catch((err) => {
      if (!this.#closed) log.warn("Cannot evict ended tasks: {error}", { error: err });
    });
  }

  /** Starts the timer that runs rounds while no task ends (an unref'd one, cleared on close). */
  #startTimer(): void {
    if (this.#timer !== undefined || this.#closed || this.#stopping) return;
    const { maxTerminalTasks, terminalTtlMs } = this.#retention;
    if (maxTerminalTasks === Infinity && terminalTtlMs === Infinity) return;
    const every = Math.min(EVICT_EVERY_MS, Math.max(10, terminalTtlMs / 2));
    this.#timer = setInterval(() => {
      this.#leftovers = true;
      this.#schedule();
    }, every);
    Deno.unrefTimer(this.#timer);
  }

  /** One round: leftovers first, then the oldest terminal tasks while any is due. */
  async #round(): Promise<number> {
    // A store whose lease was lost or lapsed writes nothing more (commits say why); nor does a
    // closing one.
    const stopped = () => {
      if (this.#closed || this.#stopping) return true;
      try {
        this.#lease?.check();
        return false;
      } catch {
        return true;
      }
    };
    if (stopped()) return 0;
    if (this.#leftovers) {
      this.#leftovers = false;
      const rows: Deno.KvEntry<EvictEntry>[] = [];
      for await (const row of this.#kv.list<EvictEntry>({ prefix: evictPrefix })) rows.push(row);
      for (const row of rows) {
        if (stopped()) return 0;
        await this.#finishEviction(row.key[2] as string, row.value.owner);
      }
    }
    let evicted = 0;
    for (;;) {
      if (stopped()) return evicted;
      const { maxTerminalTasks, terminalTtlMs, now } = this.#retention;
      const expired = now() - terminalTtlMs;
      // The count and the oldest entries: a round costs the same in a store of any size.
      const ended = this.#ended;
      const count = counted(await this.#kv.get(TERM_COUNT));
      const over = count - maxTerminalTasks;
      const due: Array<{ end: number; id: string; mark: TermEntry }> = [];
      let next = Infinity;
      const rows = this.#kv.list<TermEntry>({ prefix: termPrefix }, { limit: EVICT_BATCH });
      for await (const row of rows) {
        const end = row.key[2] as number;
        if (due.length >= over && end > expired) {
          next = end;
          break;
        }
        due.push({ end, id: row.key[3] as string, mark: row.value });
      }
      let removed = 0;
      for (const { end, id, mark } of due) {
        if (stopped()) return evicted;
        const result = await this.#evictOne(end, id, mark);
        if (result === "evicted") evicted++;
        if (result !== "kept") removed++;
      }
      // A short list was all that was due: what is left is known without reading it again.
      if (due.length < EVICT_BATCH && removed === due.length) {
        this.#hint = { count: count - removed, oldest: next, ended };
        return evicted;
      }
      if (removed === 0) return evicted;
    }
  }

  /**
   * Evicts one task named by a `term` entry. The first operation, checked against the head and
   * the entry, makes the task unreadable (head, listing entry, `term` entry, counts) and records
   * the eviction; a commit that came between makes it fail, and the task is looked at again.
   *
   * @returns "evicted"; "dropped" when the entry was gone or named no terminal task (it is then
   * deleted alone); "kept" when the task kept changing.
   */
  async #evictOne(
    end: number,
    id: string,
    listed: TermEntry,
  ): Promise<"evicted" | "dropped" | "kept"> {
    const term = termKey(end, id);
    for (let attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
      const [entry, mark, listedCount] = await this.#kv.getMany<[Uint8Array, unknown, unknown]>([
        headKey(id),
        term,
        contextCountKey(listed.c),
      ]);
      if (mark.versionstamp === null) return "dropped";
      const head = entry.value ? decodeJson<Head>(entry.value) : undefined;
      const b = new Batch();
      b.check(entry.key, entry.versionstamp);
      b.check(term, mark.versionstamp);
      b.delete(term);
      b.sum({ key: TERM_COUNT, n: -1 });
      if (!head || head.end !== end || !TERMINAL_STATES.has(head.state)) {
        if ((await b.commit(this.#kv)).ok) return "dropped";
        continue;
      }
      const part = await contextPart(head.contextId);
      // The context the entry named is the task's unless a commit moved the task since.
      const count = samePart(part, listed.c)
        ? listedCount
        : await this.#kv.get(contextCountKey(part));
      b.delete(headKey(id));
      b.delete(ownerKey(head.owner, head.timestamp, id));
      b.delete(unfinishedKey(id));
      if (counted(count) > 1) b.sum({ key: contextCountKey(part), n: -1 });
      else {
        // The context's last task: forgotten, unless a task joins it meanwhile (then this fails).
        b.check(count.key, count.versionstamp);
        b.delete(contextKey(part));
        b.delete(contextCountKey(part));
      }
      const mine: EvictEntry = { owner: head.owner };
      b.set({ key: evictKey(id), value: mine, size: valueSize(mine) });
      if (!(await b.commit(this.#kv)).ok) continue;
      this.#known.delete(id);
      this.#evicted.add(id);
      if (this.#evicted.size > RECENTLY_EVICTED) {
        this.#evicted.delete(this.#evicted.values().next().value!);
      }
      await this.#finishEviction(id, head.owner);
      return "evicted";
    }
    return "kept";
  }

  /**
   * Deletes what an evicted task left once its head is gone: its message index entries (found
   * from the history, and deleted with the history slots they point into), its push configs with
   * their counts, every other piece under its id, and last its `evict` entry. All of a small task
   * goes in one operation; a large one in as many as Deno KV's limits ask. Each operation checks
   * the entries it deletes, so one that meets a concurrent change fails and the whole runs again
   * (what was deleted stays deleted: every step can be run again).
   */
  async #finishEviction(id: string, owner: string): Promise<void> {
    for (let attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
      if (await this.#finishOnce(id, owner)) return;
    }
    throw new InternalError(`Cannot evict task ${id}: its index entries kept changing`);
  }

  /** One attempt of {@linkcode KvTaskStore.#finishEviction}; false when an operation failed. */
  async #finishOnce(id: string, owner: string): Promise<boolean> {
    let batch = new Batch();
    const flush = async (): Promise<boolean> => {
      const ok = batch.mutations === 0 || (await batch.commit(this.#kv)).ok;
      batch = new Batch();
      return ok;
    };
    /** Makes room for `keys` deleted under `checks` checks; false when a flush failed. */
    const room = async (keys: Deno.KvKey[], checks: number): Promise<boolean> => {
      let bytes = 0;
      for (const key of keys) bytes += keySize(key);
      const fits = batch.mutations + keys.length <= OP_MUTATIONS &&
        batch.checks.length + checks <= EVICT_CHECKS &&
        batch.keyBytes + 2 * bytes <= OP_KEY_BYTES && batch.bytes + 2 * bytes <= OP_BYTES;
      return fits || await flush();
    };

    // History slots, with the message index entries of their user messages.
    let slots: Deno.KvKey[] = [];
    let messages: Deno.KvKey[] = [];
    /** Deletes the entries of the slots read so far, then the slots: never a slot first. */
    const group = async (): Promise<boolean> => {
      for (let i = 0; i < messages.length; i += GET_MANY_KEYS) {
        const chunk = messages.slice(i, i + GET_MANY_KEYS);
        const mine = (await this.#kv.getMany<Uint8Array[]>(chunk)).filter((e) =>
          e.value !== null && decodeJson<MessageEntry>(e.value).t === id
        );
        if (!await room(mine.map((e) => e.key), mine.length)) return false;
        for (const e of mine) {
          batch.check(e.key, e.versionstamp);
          batch.delete(e.key);
        }
      }
      if (!await room(slots, 0)) return false;
      for (const key of slots) batch.delete(key);
      slots = [];
      messages = [];
      return true;
    };
    const rows = this.#kv.list<Uint8Array>({ prefix: [ROOT, "msg", id] }, { batchSize: 500 });
    for await (const row of rows) {
      const slot = await this.#slot<Message[]>(row.value);
      for (const m of slot === STALE ? [] : slot) {
        if (m.role === "ROLE_USER") messages.push(await messageKey(owner, m.messageId));
      }
      slots.push(row.key);
      if ((messages.length >= GET_MANY_KEYS || slots.length >= 100) && !await group()) {
        return false;
      }
    }
    if (!await group()) return false;

    // Push configs, each counted off its owner once: the check fails a delete that raced it.
    const configs = this.#kv.list<PushConfigRecord>({ prefix: pushPrefix(id) }, { batchSize: 100 });
    for await (const row of configs) {
      if (!await room([row.key, pushCountKey(row.value.owner)], 1)) return false;
      batch.check(row.key, row.versionstamp);
      batch.delete(row.key);
      batch.sum({ key: pushCountKey(row.value.owner), n: -1 });
    }

    // Everything else under the id, and what a commit of the task left for the sweep (unless a
    // commit of this store is staging it).
    for (const kind of PIECES) {
      for await (const row of this.#kv.list({ prefix: [ROOT, kind, id] }, { batchSize: 500 })) {
        if (!await room([row.key], 0)) return false;
        batch.delete(row.key);
      }
    }
    for await (const row of this.#kv.list({ prefix: [ROOT, "gc", id] })) {
      if (this.#busy.has(row.key[3] as string)) continue;
      if (!await room([row.key], 0)) return false;
      batch.delete(row.key);
    }
    if (!await room([evictKey(id)], 0)) return false;
    batch.delete(evictKey(id));
    return await flush();
  }

  // -------------------------------------------------------------------------------------------
  // Reading

  /** One attempt at a consistent read; STALE when a piece it needed was deleted meanwhile. */
  async #read(id: string, view: TaskView): Promise<TaskRecord | undefined | Stale> {
    const entry = await this.#kv.get<Uint8Array>(headKey(id));
    if (entry.value === null) return undefined;
    let head = decodeJson<Head>(entry.value);
    let artifactHeads: ArtifactHead[] = [];
    if (view.artifacts !== false && head.ha && head.ac > 0) {
      const heads = await this.#artifactHeads(id, head);
      if (heads === STALE) return STALE;
      [head, artifactHeads] = heads;
    }
    const wantHistory = !head.hh || view.historyLength === 0
      ? undefined
      : Math.min(head.hc, Math.max(0, view.historyLength ?? head.hc));
    const [status, rest, history, artifacts] = await Promise.all([
      head.statusRef ? this.#blobJson<TaskStatus>(head.statusRef) : head.status!,
      head.restRef ? this.#blobJson<Record<string, unknown>>(head.restRef) : head.rest ?? {},
      wantHistory === undefined ? undefined : this.#history(id, head, wantHistory),
      Promise.all(artifactHeads.map((a) => this.#artifact(id, head.gen, a))),
    ]);
    if (status === STALE || rest === STALE || history === STALE) return STALE;
    const task: Task = { id, contextId: head.contextId, status, ...rest };
    if (history !== undefined) task.history = history;
    if (view.artifacts !== false && head.ha) {
      const list: Artifact[] = [];
      for (const a of artifacts) {
        if (a === STALE) return STALE;
        list.push(a);
      }
      task.artifacts = list;
    }
    return { owner: head.owner, lastSeq: head.lastSeq, task };
  }

  /**
   * Reads the artifact heads with the task head they belong to. The last nine come in one
   * `getMany` with the head, one snapshot; the others (of a task with more than nine artifacts)
   * are read after it and must not have been written by a later commit.
   */
  async #artifactHeads(id: string, first: Head): Promise<[Head, ArtifactHead[]] | Stale> {
    const tail = Math.max(0, first.ac - (GET_MANY_KEYS - 1));
    const keys: Deno.KvKey[] = [headKey(id)];
    for (let i = tail; i < first.ac; i++) keys.push([...artPrefix(id, first.gen), i]);
    const [h, ...rows] = await this.#kv.getMany<Uint8Array[]>(keys);
    if (!h?.value) return STALE;
    const head = decodeJson<Head>(h.value);
    // The keys asked for are right as long as the generation and the count are.
    if (head.gen !== first.gen || head.ac !== first.ac) return STALE;
    const out: ArtifactHead[] = [];
    if (tail > 0) {
      const rows = this.#kv.list<Uint8Array>(
        { prefix: artPrefix(id, head.gen), end: [...artPrefix(id, head.gen), tail] },
        { batchSize: Math.min(tail, 500) },
      );
      for await (const row of rows) {
        const a = decodeJson<ArtifactHead>(row.value);
        if (row.key[4] !== out.length || a.w > head.ver) return STALE;
        out.push(a);
      }
      if (out.length !== tail) return STALE;
    }
    for (const row of rows) {
      if (!row.value) return STALE;
      out.push(decodeJson<ArtifactHead>(row.value));
    }
    return [head, out];
  }

  /** Reads the last `want` history messages: from the end, only as many slots as needed. */
  async #history(id: string, head: Head, want: number): Promise<Message[] | Stale> {
    if (want === 0) return [];
    const slots: Message[][] = [];
    let got = 0;
    let end = head.hc;
    const rows = this.#kv.list<Uint8Array>(
      { prefix: msgPrefix(id, head.gen), end: [...msgPrefix(id, head.gen), head.hc] },
      { reverse: true, batchSize: Math.min(want, 500) },
    );
    for await (const row of rows) {
      const messages = await this.#slot<Message[]>(row.value);
      if (messages === STALE || (row.key[4] as number) + messages.length !== end) return STALE;
      slots.push(messages);
      got += messages.length;
      end = row.key[4] as number;
      if (got >= want) break;
    }
    if (got < want) return STALE;
    const all = slots.reverse().flat();
    return all.length === want ? all : all.slice(all.length - want);
  }

  /** Reads one artifact's fields and parts. */
  async #artifact(id: string, gen: string, a: ArtifactHead): Promise<Artifact | Stale> {
    const fields = a.fRef ? await this.#blobJson<Record<string, unknown>>(a.fRef) : a.f!;
    if (fields === STALE) return STALE;
    const parts: Part[] = [];
    const prefix = partPrefix(id, gen, a.s, a.k);
    const rows = this.#kv.list<Uint8Array>(
      { prefix, end: [...prefix, a.n] },
      { batchSize: Math.min(Math.max(a.g, 1), 500) },
    );
    for await (const row of rows) {
      const slot = await this.#slot<Part[]>(row.value);
      if (slot === STALE || row.key[6] !== parts.length) return STALE;
      for (const p of slot) parts.push(p);
    }
    if (parts.length !== a.n) return STALE;
    return { ...fields, parts } as Artifact;
  }

  /** Decodes a slot: inline JSON, or a reference to a blob. */
  #slot<T>(value: Uint8Array): T | Stale | Promise<T | Stale> {
    const ref = refOf(value);
    return ref ? this.#blobJson<T>(ref) : decodeJson<T>(value);
  }

  /** Reads a blob's chunks with one range read and decodes its JSON. */
  async #blobJson<T>(ref: BlobRef): Promise<T | Stale> {
    const bytes = new Uint8Array(ref.b);
    let at = 0;
    let next = 0;
    for await (const row of this.#kv.list<Uint8Array>({ prefix: ref.k }, { batchSize: 64 })) {
      if (row.key[row.key.length - 1] !== next || at + row.value.length > ref.b) return STALE;
      bytes.set(row.value, at);
      at += row.value.length;
      next++;
    }
    if (next !== ref.n || at !== ref.b) return STALE;
    return decodeJson<T>(bytes);
  }
}
