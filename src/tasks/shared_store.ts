// What a store that several server processes share adds to a TaskStore: tailing a task's log as
// other processes write it, a lease per running task, and cancel requests that reach the
// process running the task. The task core uses these when `store.shared` is true.

import type { PushConfigRecord, StreamEvent, TaskRecord, TaskStore } from "./store.ts";

/** Stops a watch. */
export type Unwatch = () => void;

/** One webhook delivery claimed from the shared queue: an event for one push config. */
export interface PushDelivery {
  /** The config, as stored, with its owner. */
  record: PushConfigRecord;
  /** The event to POST: the oldest one the config has not had yet. */
  event: StreamEvent;
  /** Attempts made so far at this event (0 for the first). */
  attempts: number;
  /** Identifies the claim; settling with a claim that was lost (it lapsed) changes nothing. */
  claim: string;
}

/** What became of a claimed delivery. */
export type DeliveryOutcome =
  /** Delivered, or given up: the config's cursor moves past the event. */
  | { done: true }
  /** To be tried again at `retryAt` (milliseconds since the epoch), with one more attempt counted. */
  | { done: false; retryAt: number };

/** A TaskStore that several server processes use at once (PostgresTaskStore). */
export interface SharedTaskStore extends TaskStore {
  /** Marks the store as shared: the task core then caches no task between calls. */
  readonly shared: true;
  /**
   * This process's id, unique per store instance. Each commit of an event of a task that is
   * SUBMITTED or WORKING records this id as the task's runner: the process that holds its lease.
   */
  readonly processId: string;
  /**
   * Delivers a task's events with `seq > afterSeq`, in order and each exactly once, as any
   * process commits them, until the returned function is called. A notification from the
   * committing process only rings the doorbell: the watcher then reads `seq > last` from the log,
   * and reads again periodically, so a lost notification costs latency, never an event.
   *
   * @param taskId The task.
   * @param afterSeq The last seq the caller already has.
   * @param onEvents Called with each batch of new events, consecutive and in order.
   * @param onError Called once if the watch cannot go on (the store closed or failed); no
   * further calls follow.
   * @returns A function that stops the watch.
   */
  watch(
    taskId: string,
    afterSeq: number,
    onEvents: (events: StreamEvent[]) => void,
    onError: (err: unknown) => void,
  ): Unwatch;
  /**
   * Asks the process that runs a task to cancel it (its executor's `ctx.signal` aborts there).
   * Resolves once the request is recorded; the cancellation shows as a CANCELED event in the log.
   *
   * @param taskId The task.
   */
  requestCancel(taskId: string): Promise<void>;
  /**
   * Registers the listener for cancel requests addressed to this process: called with the id of
   * a task whose runner is this process when any process calls `requestCancel` for it (also for
   * requests made before the listener was set, which are read back once).
   *
   * @param listener Called with the task id.
   */
  onCancelRequest(listener: (taskId: string) => void): void;
  /**
   * Lists the tasks that are SUBMITTED or WORKING whose runner's lease has lapsed: the process
   * stopped renewing it (it died) at least the lapse time ago, or is gone. Tasks whose runner is
   * alive, this process included, are never listed.
   */
  lapsed(): Promise<TaskRecord[]>;
  /** Whether a task's runner is alive (this process counts as alive); false when it has none. */
  runnerAlive(taskId: string): Promise<boolean>;
  /**
   * Claims the next webhook delivery that is due, from any task and any process's events: for a
   * webhook config whose cursor is behind its task's log, the event after the cursor, unless
   * another live claim holds that config or its retry is not due yet. One config is delivered
   * by one claim at a time, so its events go out in order; a claim lapses after `lockMs`
   * (its process died mid-delivery), and the event is claimed again.
   *
   * A new config's cursor starts at its task's latest seq when it is created: it gets the events
   * logged after it. Replacing a config keeps its cursor; deleting it drops it.
   *
   * @param lockMs How long the claim holds.
   * @returns The delivery, or undefined when none is due.
   */
  claimDelivery(lockMs: number): Promise<PushDelivery | undefined>;
  /**
   * Records what became of a claimed delivery.
   *
   * @param delivery The claim.
   * @param outcome Done (the cursor moves past the event), or a retry time.
   */
  settleDelivery(delivery: PushDelivery, outcome: DeliveryOutcome): Promise<void>;
  /**
   * Registers the listener called when deliveries may have become due: an event was committed
   * by any process (the log's doorbell), or periodically as a backstop.
   *
   * @param listener Called with no arguments.
   */
  onDeliveriesDue(listener: () => void): void;
  /**
   * Stops renewing this process's lease, drops it at once (another process may then fail the
   * tasks this process still ran), and closes the connections.
   */
  close(): Promise<void>;
}

/**
 * Tells whether a store is shared by several processes.
 *
 * @param store The store.
 * @returns True for a {@linkcode SharedTaskStore}.
 */
export function isShared(store: TaskStore): store is SharedTaskStore {
  return (store as Partial<SharedTaskStore>).shared === true;
}
