// The push notification dispatcher: keeps each task's push configs (webhooks in the TaskStore,
// live callbacks in memory) and delivers every event of the task to each of them, in order.

import { getLogger } from "@logtape/logtape";
import {
  InvalidParamsError,
  QuotaExceededError,
  ServiceUnavailableError,
  TaskNotFoundError,
} from "../errors/errors.ts";
import type { PushConfigRecord, StreamEvent, TaskStore } from "../tasks/store.ts";
import type { TaskManager } from "../tasks/task_manager.ts";
import { isShared, type PushDelivery, type SharedTaskStore } from "../tasks/shared_store.ts";
import { isTerminalState } from "../types/core.ts";
import type {
  ListTaskPushNotificationConfigsResponse,
  TaskPushNotificationConfig,
} from "../types/requests.ts";
import {
  checkDestination,
  type DestinationPolicy,
  type HostResolver,
  resolveHost,
} from "./address.ts";
import { type CallbackPushConfig, PUSH_CALLBACK_URL, type PushReceiver } from "./types.ts";
import { attemptDelivery, type AttemptResult } from "./webhook.ts";
import { sleep } from "../util/sleep.ts";
import { FifoMap } from "../util/fifo_map.ts";

/** How many tasks without webhook configs the dispatcher remembers as such. */
const WITHOUT_CONFIGS_KEPT = 10_000;

const log = getLogger(["a2a-capnweb", "push"]);

/** What a PushDispatcher reports of its deliveries, for metrics. */
export interface PushHooks {
  /**
   * One outcome: an event `delivered`, an attempt that failed and will be `retry`-ed, an event
   * given up (`failed`), or one `dropped` because its config's queue was full.
   */
  outcome(
    kind: "webhook" | "callback",
    outcome: "delivered" | "retry" | "failed" | "dropped",
  ): void;
}

/**
 * How push notifications are delivered, and where webhooks may point. Webhooks may reach
 * public addresses only, unless `allowLoopback` or `allowPrivateDestinations` says otherwise;
 * link-local (cloud metadata), unspecified, multicast and reserved addresses are always
 * refused.
 */
export interface PushOptions extends DestinationPolicy {
  /** Time limit of one webhook request, DNS lookup included, in milliseconds (default 10 000). */
  timeoutMs?: number;
  /** Attempts per event before it is given up, the first included (default 5). */
  maxAttempts?: number;
  /** Delay before the first retry, in milliseconds; doubled for each further retry (default 1000). */
  retryBaseMs?: number;
  /** Longest delay between retries, in milliseconds, `Retry-After` included (default 60 000). */
  retryMaxMs?: number;
  /**
   * Events that may wait per config (default 1000). A webhook config that falls further behind
   * loses its oldest waiting events; a callback config that does is removed.
   */
  maxQueuedEvents?: number;
  /** Push configs per task, webhooks and callbacks together (default 16). */
  maxConfigsPerTask?: number;
  /**
   * Push configs one user may have over all tasks, webhooks and callbacks together (default
   * 1000). Creating one more (replacing a config by its id is not creating one) fails with
   * QuotaExceededError (-31005); deleting one makes room, and so does the store's eviction of an
   * ended task with its configs. Webhook configs are counted by the store's `countPushConfigs`;
   * with a store that lacks it, by this dispatcher, from the configs created since it started.
   */
  maxPushConfigsPerUser?: number;
  /** Callback deliveries in flight per config (default 32). */
  callbackWindow?: number;
  /**
   * With a store that several processes share: webhook deliveries this process makes at once,
   * taken from the shared queue (default 8).
   */
  sharedDeliveries?: number;
  /** Resolves webhook host names (default: A and AAAA records through `Deno.resolveDns`). */
  resolveHost?: HostResolver;
  /** The fetch used for webhooks (default: the global one). */
  fetch?: typeof fetch;
}

/** Options of {@linkcode PushDispatcher.create}. */
export interface CreatePushConfigOptions {
  /** Deliver to this live receiver instead of a webhook; the config then has no `url`. */
  receiver?: PushReceiver;
  /** Prefix of field names in errors, e.g. `configuration.taskPushNotificationConfig`. */
  fieldPrefix?: string;
}

/** Paging of {@linkcode PushDispatcher.list}. */
export interface PushConfigPage {
  /** Configs per page; all of them when absent or 0. */
  pageSize?: number;
  /** The `nextPageToken` of the previous page. */
  pageToken?: string;
}

/** A webhook config's queue of events waiting for delivery. */
class WebhookQueue {
  readonly events: StreamEvent[] = [];
  readonly controller = new AbortController();
  running = false;

  constructor(readonly key: string, readonly taskId: string, readonly id: string) {}
}

/** A callback config: held in memory only, with its own ordered delivery. */
class CallbackEntry {
  readonly queue: StreamEvent[] = [];
  inflight = 0;
  ending = false;
  closed = false;
  /** With a shared store: stops following the task's log. */
  unwatch: (() => void) | undefined;
  /** With a shared store: the seq of the last event handed over (from here or from the log). */
  lastSeq: number | undefined;

  constructor(
    readonly owner: string,
    readonly config: TaskPushNotificationConfig & { id: string; taskId: string },
    readonly receiver: PushReceiver,
  ) {}
}

const HEADER_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

function taskIdOf(event: StreamEvent): string | undefined {
  return event.task?.id ?? event.statusUpdate?.taskId ?? event.artifactUpdate?.taskId ??
    event.message?.taskId;
}

function isTerminalEvent(event: StreamEvent): boolean {
  const state = event.statusUpdate?.status.state ?? event.task?.status.state;
  return state !== undefined && isTerminalState(state);
}

function sameTarget(a: TaskPushNotificationConfig, b: TaskPushNotificationConfig): boolean {
  return a.url === b.url && a.token === b.token &&
    a.authentication?.scheme === b.authentication?.scheme &&
    a.authentication?.credentials === b.authentication?.credentials;
}

function encodeToken(id: string): string {
  const bytes = new TextEncoder().encode(id);
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

function decodeToken(token: string): string | undefined {
  try {
    const text = atob(token.replace(/-/g, "+").replace(/_/g, "/"));
    return new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(text, (c) => c.charCodeAt(0)),
    );
  } catch {
    return undefined;
  }
}

function invalid(field: string, description: string): InvalidParamsError {
  return new InvalidParamsError(`Invalid params: ${field} ${description}`, [
    { field, description },
  ]);
}

/**
 * Delivers push notifications for the tasks of one TaskManager. It listens to every event the
 * manager logs and hands each one, in order, to every push config of its task:
 *
 * - webhook configs (kept in the TaskStore) get an HTTP POST per event, one at a time per
 *   config, retried with exponential backoff and jitter; a failing webhook holds back only its
 *   own later events. Delivery is at least once: a receiver may see an event twice;
 * - callback configs (held in memory, e.g. a capnweb callback) get `deliver(event)` calls in
 *   order, and are let go once the task reaches a terminal state.
 *
 * It also registers the `configuration.taskPushNotificationConfig` of SendMessage requests for
 * their task before the agent starts. Call `close()` to stop it.
 *
 * @example Deliver a task's events to a live receiver
 * ```ts
 * import { PushDispatcher, type StreamEvent, TaskManager } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * const manager = new TaskManager({
 *   executor: {
 *     async execute(_ctx, events) {
 *       await events.status("TASK_STATE_INPUT_REQUIRED", { message: "Name?" });
 *     },
 *   },
 * });
 * const push = new PushDispatcher(manager);
 * const { task } = await manager.sendMessage("alice", {
 *   message: { messageId: "m1", role: "ROLE_USER", parts: [{ text: "hi" }] },
 * });
 * const seen: StreamEvent[] = [];
 * await push.create("alice", task!.id, {}, {
 *   receiver: { deliver: async (e) => void seen.push(e), close() {} },
 * });
 * await manager.cancelTask("alice", { id: task!.id });
 * assert.equal(seen.at(-1)?.statusUpdate?.status.state, "TASK_STATE_CANCELED");
 * await push.close();
 * await manager.close();
 * ```
 */
export class PushDispatcher {
  #store: TaskStore;
  #policy: DestinationPolicy;
  #resolve: HostResolver;
  #fetch: typeof fetch;
  #timeoutMs: number;
  #maxAttempts: number;
  #retryBaseMs: number;
  #retryMaxMs: number;
  #maxQueued: number;
  #hooks: PushHooks | undefined;
  #maxConfigs: number;
  #maxPerUser: number;
  #window: number;
  /** Each user's callback configs (those are never stored). */
  #liveByOwner = new Map<string, number>();
  /**
   * Each user's webhook configs by task, as created here since the start: the count when the
   * store cannot count them (see `#storedCount`).
   */
  #storedByOwner = new Map<string, Map<string, number>>();
  /** Creates in progress, by user: one at a time, so that none slips past a quota. */
  #creating = new Map<string, Promise<void>>();
  #queues = new Map<string, WebhookQueue>();
  #routes = new Map<string, { owner: string; events: StreamEvent[]; running: boolean }>();
  /**
   * Tasks whose store held no webhook config when last read, so that their next events cost no
   * read (most tasks have none: without this, every event of every task read the store). A
   * config stored here bumps `#puts` and forgets the task, before and after the write, and a read
   * during which `#puts` moved remembers nothing.
   */
  #withoutConfigs = new FifoMap<string, true>();
  #puts = 0;
  #callbacks = new Map<string, Map<string, CallbackEntry>>();
  #byReceiver = new Map<PushReceiver, CallbackEntry>();
  #work = new Set<Promise<void>>();
  #routing = 0;
  #unsubscribe: (() => void)[];
  #closed = false;
  /** The store, when other processes share it: webhooks then go through its durable queue. */
  #shared: SharedTaskStore | undefined;
  #sharedSlots: number;
  #sharedRunning = 0;
  #sharedAgain = false;

  /**
   * Creates the dispatcher and attaches it to a task manager.
   *
   * @param manager The task core whose events are delivered (its store keeps webhook configs).
   * @param options Delivery and destination settings.
   * @param hooks Told of each delivery's outcome.
   */
  constructor(manager: TaskManager, options: PushOptions = {}, hooks?: PushHooks) {
    this.#hooks = hooks;
    this.#store = manager.store;
    this.#policy = {
      allowLoopback: options.allowLoopback === true,
      allowPrivateDestinations: options.allowPrivateDestinations === true,
      requireHttps: options.requireHttps === true,
    };
    this.#resolve = options.resolveHost ?? resolveHost;
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#maxAttempts = Math.max(1, options.maxAttempts ?? 5);
    this.#retryBaseMs = options.retryBaseMs ?? 1000;
    this.#retryMaxMs = options.retryMaxMs ?? 60_000;
    this.#maxQueued = Math.max(1, options.maxQueuedEvents ?? 1000);
    this.#maxConfigs = options.maxConfigsPerTask ?? 16;
    this.#maxPerUser = options.maxPushConfigsPerUser ?? 1000;
    this.#window = Math.max(1, options.callbackWindow ?? 32);
    this.#sharedSlots = Math.max(1, options.sharedDeliveries ?? 8);
    if (isShared(this.#store)) {
      this.#shared = this.#store;
      this.#shared.onDeliveriesDue(() => this.#pumpShared());
    }
    this.#unsubscribe = [
      manager.onEvent((owner, event) => this.#onEvent(owner, event)),
      manager.beforeExecute(async (userId, taskId, request) => {
        const config = request.configuration?.taskPushNotificationConfig;
        if (config === undefined) return;
        await this.create(userId, taskId, config, {
          fieldPrefix: "configuration.taskPushNotificationConfig",
        });
      }),
    ];
  }

  /** Events waiting for (or in) delivery, over all configs. */
  get pendingCount(): number {
    let n = this.#routing;
    for (const r of this.#routes.values()) n += r.events.length;
    for (const q of this.#queues.values()) n += q.events.length;
    for (const e of this.#byReceiver.values()) n += e.queue.length + e.inflight;
    return n;
  }

  /** Callback configs currently registered. */
  get callbackCount(): number {
    return this.#byReceiver.size;
  }

  /**
   * Creates or replaces a push config of a task. The caller has checked that the task belongs
   * to `owner`. A webhook URL must pass the destination policy (its host is resolved); a config
   * without `id` gets a new one, unless it is identical to an existing webhook config of the
   * task, which is then returned instead of a duplicate.
   *
   * @param owner The user the task belongs to.
   * @param taskId The task.
   * @param input The config: a webhook config, or a config without `url` when `receiver` is set.
   * @param options The live receiver, if any, and the field prefix for errors.
   * @returns The config as stored, with `id` and `taskId` (and `url` = PUSH_CALLBACK_URL for a
   * live receiver).
   * @throws {InvalidParamsError} When the URL or a header value is not acceptable, or the task
   * has too many configs.
   * @throws {QuotaExceededError} When the user has `maxPushConfigsPerUser` configs already.
   */
  async create(
    owner: string,
    taskId: string,
    input: TaskPushNotificationConfig | CallbackPushConfig,
    options: CreatePushConfigOptions = {},
  ): Promise<TaskPushNotificationConfig> {
    const prefix = options.fieldPrefix ? `${options.fieldPrefix}.` : "";
    const receiver = options.receiver;
    if (this.#closed) throw new ServiceUnavailableError("The server is shutting down");
    const url = (input as { url?: unknown }).url;
    if (input.token !== undefined && !HEADER_VALUE.test(input.token)) {
      throw invalid(`${prefix}token`, "must be printable text without line breaks");
    }
    const auth = input.authentication;
    if (auth !== undefined) {
      if (!HEADER_TOKEN.test(auth.scheme)) {
        throw invalid(`${prefix}authentication.scheme`, "must be an HTTP authentication scheme");
      }
      if (auth.credentials !== undefined && !HEADER_VALUE.test(auth.credentials)) {
        throw invalid(
          `${prefix}authentication.credentials`,
          "must be printable text without line breaks",
        );
      }
    }
    if (receiver !== undefined) {
      if (url !== undefined) {
        throw invalid(`${prefix}url`, "must be absent when the config delivers to a callback");
      }
    } else {
      if (typeof url !== "string") throw invalid(`${prefix}url`, "is required");
      await this.#checkUrl(url, `${prefix}url`);
    }

    return await this.#oneAtATime(owner, () => this.#put(owner, taskId, input, options, url));
  }

  /** The part of `create` that counts configs and writes one, one call per user at a time. */
  async #put(
    owner: string,
    taskId: string,
    input: TaskPushNotificationConfig | CallbackPushConfig,
    options: CreatePushConfigOptions,
    url: unknown,
  ): Promise<TaskPushNotificationConfig> {
    const prefix = options.fieldPrefix ? `${options.fieldPrefix}.` : "";
    const receiver = options.receiver;
    const stored = (await this.#store.listPushConfigs(taskId)).filter((r) => r.owner === owner);
    const live = [...this.#callbacks.get(taskId)?.values() ?? []].filter((e) => e.owner === owner);
    const id = input.id !== undefined && input.id !== "" ? input.id : undefined;
    if (id === undefined && receiver === undefined) {
      const same = stored.find((r) => sameTarget(r.config, input as TaskPushNotificationConfig));
      if (same) return same.config;
    }
    const others = stored.filter((r) => r.config.id !== id).length +
      live.filter((e) => e.config.id !== id).length;
    if (others >= this.#maxConfigs) {
      throw invalid(`${prefix}taskId`, `already has the most push configs a task may have`);
    }
    const replacesStored = id !== undefined && stored.some((r) => r.config.id === id);
    const replacesLive = id !== undefined && live.some((e) => e.config.id === id);
    if (!replacesStored && !replacesLive) {
      const callbacks = this.#liveByOwner.get(owner) ?? 0;
      const room = this.#maxPerUser - callbacks;
      if (room <= 0 || await this.#storedCount(owner, room) >= room) {
        throw new QuotaExceededError(
          `Too many push configs: at most ${this.#maxPerUser} per user; delete one first`,
        );
      }
    }
    if (this.#closed) throw new ServiceUnavailableError("The server is shutting down");

    const config: TaskPushNotificationConfig & { id: string; taskId: string } = {
      ...(input.tenant !== undefined && { tenant: input.tenant }),
      id: id ?? crypto.randomUUID(),
      taskId,
      url: receiver ? PUSH_CALLBACK_URL : url as string,
      ...(input.token !== undefined && { token: input.token }),
      ...(input.authentication !== undefined && { authentication: input.authentication }),
    };
    const replaced = this.#callbacks.get(taskId)?.get(config.id);
    if (replaced) this.#removeCallback(replaced);
    if (receiver) {
      if (replacesStored) {
        await this.#store.deletePushConfig(taskId, config.id);
        this.#dropQueue(taskId, config.id);
        this.#countStored(owner, taskId, -1);
      }
      const entry = new CallbackEntry(owner, config, receiver);
      let forTask = this.#callbacks.get(taskId);
      if (!forTask) this.#callbacks.set(taskId, forTask = new Map());
      forTask.set(config.id, entry);
      this.#byReceiver.set(receiver, entry);
      this.#liveByOwner.set(owner, (this.#liveByOwner.get(owner) ?? 0) + 1);
      if (this.#shared) await this.#follow(entry);
    } else {
      // Before and after: a read that overlaps the write, or ran inside it, remembers nothing.
      this.#puts++;
      this.#withoutConfigs.delete(taskId);
      try {
        await this.#store.putPushConfig({ owner, config });
      } finally {
        this.#puts++;
        this.#withoutConfigs.delete(taskId);
      }
      if (!replacesStored) this.#countStored(owner, taskId, 1);
    }
    return config;
  }

  /** Runs `fn` when no other `create` of the same user is in progress. */
  async #oneAtATime<T>(owner: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#creating.get(owner);
    const { promise, resolve } = Promise.withResolvers<void>();
    const mine = previous ? previous.then(() => promise) : promise;
    this.#creating.set(owner, mine);
    try {
      await previous;
      return await fn();
    } finally {
      resolve();
      if (this.#creating.get(owner) === mine) this.#creating.delete(owner);
    }
  }

  /**
   * How many webhook configs a user has: the store's count, or else this dispatcher's. That one
   * misses the store's eviction of ended tasks with their configs, so when it reaches `room` the
   * tasks it counts are read again.
   */
  async #storedCount(owner: string, room: number): Promise<number> {
    if (this.#store.countPushConfigs) return await this.#store.countPushConfigs(owner);
    const tasks = this.#storedByOwner.get(owner);
    if (!tasks) return 0;
    let n = 0;
    for (const c of tasks.values()) n += c;
    if (n < room) return n;
    n = 0;
    for (const taskId of [...tasks.keys()]) {
      const c = (await this.#store.listPushConfigs(taskId)).filter((r) => r.owner === owner).length;
      if (c > 0) tasks.set(taskId, c);
      else tasks.delete(taskId);
      n += c;
    }
    if (tasks.size === 0 && this.#storedByOwner.get(owner) === tasks) {
      this.#storedByOwner.delete(owner);
    }
    return n;
  }

  /** Keeps this dispatcher's count of a user's webhook configs, for a store that cannot count. */
  #countStored(owner: string, taskId: string, delta: number): void {
    if (this.#store.countPushConfigs) return;
    let tasks = this.#storedByOwner.get(owner);
    if (!tasks) this.#storedByOwner.set(owner, tasks = new Map());
    const n = (tasks.get(taskId) ?? 0) + delta;
    if (n > 0) tasks.set(taskId, n);
    else tasks.delete(taskId);
    if (tasks.size === 0) this.#storedByOwner.delete(owner);
  }

  /**
   * Reads one push config of a task.
   *
   * @param owner The user the task belongs to.
   * @param taskId The task.
   * @param id The config's id.
   * @returns The config.
   * @throws {TaskNotFoundError} When the task has no such config of this user.
   */
  async get(owner: string, taskId: string, id: string): Promise<TaskPushNotificationConfig> {
    const entry = this.#callbacks.get(taskId)?.get(id);
    if (entry && entry.owner === owner) return entry.config;
    const record = await this.#store.getPushConfig(taskId, id);
    if (!record || record.owner !== owner) {
      throw new TaskNotFoundError(taskId, `Push notification config not found: ${id}`);
    }
    return record.config;
  }

  /**
   * Lists the push configs of a task, ordered by id.
   *
   * @param owner The user the task belongs to.
   * @param taskId The task.
   * @param page Page size and token.
   * @returns One page of configs.
   * @throws {InvalidParamsError} When the page token is not one this server issued.
   */
  async list(
    owner: string,
    taskId: string,
    page: PushConfigPage = {},
  ): Promise<ListTaskPushNotificationConfigsResponse> {
    const all: TaskPushNotificationConfig[] = (await this.#store.listPushConfigs(taskId))
      .filter((r) => r.owner === owner).map((r) => r.config);
    for (const e of this.#callbacks.get(taskId)?.values() ?? []) {
      if (e.owner === owner) all.push(e.config);
    }
    all.sort((a, b) => (a.id! < b.id! ? -1 : a.id! > b.id! ? 1 : 0));
    let start = 0;
    if (page.pageToken !== undefined && page.pageToken !== "") {
      const after = decodeToken(page.pageToken);
      if (after === undefined) throw invalid("pageToken", "is not a token this server issued");
      while (start < all.length && all[start]!.id! <= after) start++;
    }
    const size = page.pageSize !== undefined && page.pageSize > 0 ? page.pageSize : all.length;
    const configs = all.slice(start, start + size);
    const more = start + size < all.length && configs.length > 0;
    return { configs, nextPageToken: more ? encodeToken(configs.at(-1)!.id!) : "" };
  }

  /**
   * Deletes a push config; nothing more is sent to it. Deleting a config that does not exist
   * succeeds, so that the operation is idempotent.
   *
   * @param owner The user the task belongs to.
   * @param taskId The task.
   * @param id The config's id.
   */
  async delete(owner: string, taskId: string, id: string): Promise<void> {
    const entry = this.#callbacks.get(taskId)?.get(id);
    if (entry && entry.owner === owner) {
      this.#removeCallback(entry);
      return;
    }
    const record = await this.#store.getPushConfig(taskId, id);
    if (!record) return;
    if (record.owner !== owner) {
      throw new TaskNotFoundError(taskId, `Push notification config not found: ${id}`);
    }
    this.#dropQueue(taskId, id);
    if (await this.#store.deletePushConfig(taskId, id)) this.#countStored(owner, taskId, -1);
  }

  /**
   * Removes the callback config of a live receiver (when its connection closes), and closes
   * the receiver.
   *
   * @param receiver The receiver passed to `create`.
   * @returns True when it was registered.
   */
  removeReceiver(receiver: PushReceiver): boolean {
    const entry = this.#byReceiver.get(receiver);
    if (!entry) return false;
    this.#removeCallback(entry);
    return true;
  }

  /**
   * Stops delivering: detaches from the task manager, cancels webhook requests and retries in
   * progress, and closes every live receiver. Events not yet delivered are dropped, except with a
   * shared store, whose queue keeps them for the other processes (or the next start); there the
   * deliveries in progress finish first, up to `timeoutMs`.
   */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      for (const off of this.#unsubscribe) off();
      for (const q of this.#queues.values()) q.controller.abort();
      for (const e of [...this.#byReceiver.values()]) this.#removeCallback(e);
      if (this.#sharedRunning > 0) {
        // Deliveries from the shared queue in progress finish and are recorded (up to one request
        // time limit): cut off, a POST that the receiver got would be claimed and sent again.
        const timer = setTimeout(() => this.#stopShared.abort(), this.#timeoutMs);
        while (this.#work.size > 0) await Promise.allSettled([...this.#work]);
        clearTimeout(timer);
      }
      this.#stopShared.abort();
    }
    while (this.#work.size > 0) await Promise.allSettled([...this.#work]);
    this.#queues.clear();
    this.#routes.clear();
  }

  // -------------------------------------------------------------------------------------------

  async #checkUrl(url: string, field: string): Promise<void> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw invalid(field, "must be an absolute URL");
    }
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), this.#timeoutMs);
    try {
      const dest = await checkDestination(parsed, this.#policy, {
        resolve: this.#resolve,
        signal: timeout.signal,
      });
      if (!dest.ok) throw invalid(field, dest.reason);
    } finally {
      clearTimeout(timer);
    }
  }

  #track(work: Promise<void>): void {
    this.#work.add(work);
    work.finally(() => this.#work.delete(work));
  }

  #onEvent(owner: string, event: StreamEvent): void {
    if (this.#closed) return;
    const taskId = taskIdOf(event);
    if (taskId === undefined) return;
    for (const entry of [...this.#callbacks.get(taskId)?.values() ?? []]) {
      if (entry.owner !== owner) continue;
      // With a shared store the log feeds callbacks too; this process's own event goes at once
      // when it is the next one, else the log brings it in order.
      if (this.#shared && (entry.lastSeq === undefined || event.seq !== entry.lastSeq + 1)) {
        continue;
      }
      this.#pushCallback(entry, event);
    }
    // With a shared store, webhooks go through its durable queue instead.
    if (this.#shared) return;
    if (this.#withoutConfigs.has(taskId) && !this.#routes.has(taskId)) {
      if (isTerminalEvent(event)) this.#withoutConfigs.delete(taskId);
      return;
    }
    let route = this.#routes.get(taskId);
    if (!route) this.#routes.set(taskId, route = { owner, events: [], running: false });
    route.events.push(event);
    if (!route.running) this.#track(this.#route(taskId, route));
  }

  /** Hands a task's events, in order, to the queues of its webhook configs. */
  async #route(
    taskId: string,
    route: { owner: string; events: StreamEvent[]; running: boolean },
  ): Promise<void> {
    route.running = true;
    try {
      while (route.events.length > 0 && !this.#closed) {
        const batch = route.events.splice(0);
        let records: PushConfigRecord[];
        this.#routing += batch.length;
        const puts = this.#puts;
        try {
          records = await this.#store.listPushConfigs(taskId);
          if (records.length === 0 && puts === this.#puts && !batch.some(isTerminalEvent)) {
            this.#withoutConfigs.set(taskId, true);
            if (this.#withoutConfigs.size > WITHOUT_CONFIGS_KEPT) this.#withoutConfigs.shift();
          }
        } catch (err) {
          log.error("Cannot read the push configs of task {taskId}: {error}", {
            taskId,
            error: err,
          });
          continue;
        } finally {
          this.#routing -= batch.length;
        }
        for (const record of records) {
          if (record.owner !== route.owner) continue;
          for (const event of batch) this.#enqueue(record, event);
        }
      }
    } finally {
      route.running = false;
      if (route.events.length === 0 && this.#routes.get(taskId) === route) {
        this.#routes.delete(taskId);
      }
    }
  }

  #enqueue(record: PushConfigRecord, event: StreamEvent): void {
    if (this.#closed) return;
    const { taskId, id } = record.config;
    const key = `${taskId}\n${id}`;
    let q = this.#queues.get(key);
    if (!q) this.#queues.set(key, q = new WebhookQueue(key, taskId, id));
    if (q.events.length >= this.#maxQueued) {
      // Keep the event in flight; drop the oldest one waiting behind it.
      const [dropped] = q.events.splice(q.running ? 1 : 0, 1);
      this.#hooks?.outcome("webhook", "dropped");
      log.warn("Push queue of config {id} of task {taskId} is full: dropped event {seq}", {
        id,
        taskId,
        seq: dropped?.seq,
      });
    }
    q.events.push(event);
    if (!q.running) this.#track(this.#drain(q, record.owner));
  }

  #dropQueue(taskId: string, id: string): void {
    const key = `${taskId}\n${id}`;
    const q = this.#queues.get(key);
    if (!q) return;
    q.controller.abort();
    q.events.length = 0;
    this.#queues.delete(key);
  }

  /** Delivers a webhook queue's events one at a time, in order. */
  async #drain(q: WebhookQueue, owner: string): Promise<void> {
    q.running = true;
    try {
      while (q.events.length > 0 && !q.controller.signal.aborted) {
        const event = q.events[0]!;
        try {
          await this.#deliver(q, owner, event);
        } catch (err) {
          log.error("Push of event {seq} of task {taskId} failed: {error}", {
            seq: event.seq,
            taskId: q.taskId,
            error: err,
          });
        }
        if (q.events[0] === event) q.events.shift();
      }
    } finally {
      q.running = false;
      if (this.#queues.get(q.key) === q) this.#queues.delete(q.key);
    }
  }

  async #deliver(q: WebhookQueue, owner: string, event: StreamEvent): Promise<void> {
    const signal = q.controller.signal;
    for (let attempt = 1; !signal.aborted; attempt++) {
      let result: AttemptResult;
      try {
        // Read the config on every attempt: it may have been replaced or deleted meanwhile.
        const record = await this.#store.getPushConfig(q.taskId, q.id);
        if (record === undefined || record.owner !== owner) {
          q.controller.abort();
          return;
        }
        result = await attemptDelivery(record.config, event, {
          policy: this.#policy,
          resolve: this.#resolve,
          fetch: this.#fetch,
          timeoutMs: this.#timeoutMs,
          signal,
        });
      } catch (err) {
        result = { ok: false, retryable: true, reason: `cannot read the config: ${err}` };
      }
      if (signal.aborted) return;
      if (result.ok) return this.#hooks?.outcome("webhook", "delivered");
      if (!result.retryable || attempt >= this.#maxAttempts) {
        this.#hooks?.outcome("webhook", "failed");
        log.warn(
          "Gave up push of event {seq} of task {taskId} to config {id} after {attempts} attempts: {reason}",
          { seq: event.seq, taskId: q.taskId, id: q.id, attempts: attempt, reason: result.reason },
        );
        return;
      }
      const delay = this.#backoff(attempt, result.retryAfterMs);
      this.#hooks?.outcome("webhook", "retry");
      log.debug("Push of event {seq} of task {taskId} failed ({reason}); retrying in {delay} ms", {
        seq: event.seq,
        taskId: q.taskId,
        reason: result.reason,
        delay,
      });
      await sleep(delay, signal);
    }
  }

  /** Exponential backoff with jitter: between half and all of base·2^(attempt-1), capped. */
  #backoff(attempt: number, retryAfterMs: number | undefined): number {
    const exp = Math.min(this.#retryMaxMs, this.#retryBaseMs * 2 ** (attempt - 1));
    const jittered = exp / 2 + Math.random() * (exp / 2);
    return Math.round(Math.min(this.#retryMaxMs, Math.max(jittered, retryAfterMs ?? 0)));
  }

  #pushCallback(entry: CallbackEntry, event: StreamEvent): void {
    if (entry.closed || entry.ending) return;
    if (this.#shared) entry.lastSeq = event.seq;
    if (entry.queue.length >= this.#maxQueued) {
      this.#hooks?.outcome("callback", "dropped");
      log.warn("Push callback {id} of task {taskId} fell too far behind; removing it", {
        id: entry.config.id,
        taskId: entry.config.taskId,
      });
      this.#removeCallback(entry);
      return;
    }
    entry.queue.push(event);
    if (isTerminalEvent(event)) entry.ending = true;
    this.#pumpCallback(entry);
  }

  #pumpCallback(entry: CallbackEntry): void {
    while (!entry.closed && entry.inflight < this.#window && entry.queue.length > 0) {
      const event = entry.queue.shift()!;
      entry.inflight++;
      let call: Promise<void>;
      try {
        call = entry.receiver.deliver(event);
      } catch (err) {
        call = Promise.reject(err);
      }
      // Not tracked for close(): a receiver that never answers must not hold up shutdown.
      call.then(
        () => {
          entry.inflight--;
          this.#hooks?.outcome("callback", "delivered");
          this.#pumpCallback(entry);
        },
        (err) => {
          entry.inflight--;
          this.#hooks?.outcome("callback", "failed");
          log.debug("Push callback {id} failed; removing it: {error}", {
            id: entry.config.id,
            error: err,
          });
          this.#removeCallback(entry);
        },
      );
    }
    if (!entry.closed && entry.ending && entry.inflight === 0 && entry.queue.length === 0) {
      this.#removeCallback(entry);
    }
  }

  /**
   * With a shared store, feeds a callback config from its task's log, wherever the task runs:
   * the events logged after the config was created.
   */
  async #follow(entry: CallbackEntry): Promise<void> {
    const record = await this.#store.get(entry.config.taskId, {
      historyLength: 0,
      artifacts: false,
    });
    if (entry.closed || !record) return;
    entry.lastSeq = record.lastSeq;
    if (isTerminalState(record.task.status.state)) {
      // Nothing more will come: let it go as at the end of a task.
      this.#removeCallback(entry);
      return;
    }
    entry.unwatch = this.#shared!.watch(
      entry.config.taskId,
      record.lastSeq,
      (events) => {
        for (const e of events) {
          if (entry.lastSeq === undefined || e.seq > entry.lastSeq) this.#pushCallback(entry, e);
        }
      },
      (err) => {
        log.debug("Push callback {id} lost its task's log; removing it: {error}", {
          id: entry.config.id,
          error: err,
        });
        this.#removeCallback(entry);
      },
    );
  }

  #stopShared = new AbortController();

  /** Takes due webhook deliveries from the shared queue, up to `sharedDeliveries` at once. */
  #pumpShared(): void {
    if (this.#closed) return;
    if (this.#sharedRunning >= this.#sharedSlots) {
      this.#sharedAgain = true;
      return;
    }
    this.#sharedRunning++;
    this.#track((async () => {
      try {
        while (!this.#closed) {
          this.#sharedAgain = false;
          const delivery = await this.#shared!.claimDelivery(this.#timeoutMs + 10_000);
          if (!delivery) break;
          // More may be due: let another slot look while this one delivers.
          if (this.#sharedRunning < this.#sharedSlots) this.#pumpShared();
          await this.#deliverShared(delivery);
        }
      } catch (err) {
        if (!this.#closed) log.error("Shared push queue failed: {error}", { error: err });
      } finally {
        this.#sharedRunning--;
        if (this.#sharedAgain && !this.#closed) this.#pumpShared();
      }
    })());
  }

  /** Makes one attempt at a claimed delivery and records the outcome in the shared queue. */
  async #deliverShared(delivery: PushDelivery): Promise<void> {
    const { record, event } = delivery;
    const result = await attemptDelivery(record.config, event, {
      policy: this.#policy,
      resolve: this.#resolve,
      fetch: this.#fetch,
      timeoutMs: this.#timeoutMs,
      signal: this.#stopShared.signal,
    }).catch((err): AttemptResult => ({ ok: false, retryable: true, reason: String(err) }));
    if (this.#stopShared.signal.aborted) return; // the claim lapses; another process retries
    const attempt = delivery.attempts + 1;
    if (result.ok) {
      this.#hooks?.outcome("webhook", "delivered");
      return await this.#shared!.settleDelivery(delivery, { done: true });
    }
    if (!result.retryable || attempt >= this.#maxAttempts) {
      this.#hooks?.outcome("webhook", "failed");
      log.warn(
        "Gave up push of event {seq} of task {taskId} to config {id} after {attempts} attempts: {reason}",
        {
          seq: event.seq,
          taskId: record.config.taskId,
          id: record.config.id,
          attempts: attempt,
          reason: result.reason,
        },
      );
      return await this.#shared!.settleDelivery(delivery, { done: true });
    }
    const retryAt = Date.now() + this.#backoff(attempt, result.retryAfterMs);
    this.#hooks?.outcome("webhook", "retry");
    await this.#shared!.settleDelivery(delivery, { done: false, retryAt });
  }

  #removeCallback(entry: CallbackEntry): void {
    if (entry.closed) return;
    entry.closed = true;
    entry.unwatch?.();
    const callbacks = (this.#liveByOwner.get(entry.owner) ?? 1) - 1;
    if (callbacks > 0) this.#liveByOwner.set(entry.owner, callbacks);
    else this.#liveByOwner.delete(entry.owner);
    entry.queue.length = 0;
    const forTask = this.#callbacks.get(entry.config.taskId);
    if (forTask?.get(entry.config.id) === entry) {
      forTask.delete(entry.config.id);
      if (forTask.size === 0) this.#callbacks.delete(entry.config.taskId);
    }
    this.#byReceiver.delete(entry.receiver);
    try {
      entry.receiver.close();
    } catch (err) {
      log.debug("Closing a push receiver failed: {error}", { error: err });
    }
  }
}
