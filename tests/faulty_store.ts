// A TaskStore wrapper that fails on command, for the failure-path tests of the task core, and the
// stores every core test runs on (PostgreSQL too when its binaries are installed).

import { InternalError } from "../src/errors/errors.ts";
import { KvTaskStore } from "../src/tasks/kv_store.ts";
import { PostgresTaskStore } from "../src/tasks/pg_store.ts";
import {
  InMemoryTaskStore,
  type PushConfigRecord,
  type StoredMessage,
  type StreamEvent,
  type TaskChange,
  type TaskPage,
  type TaskQuery,
  type TaskRecord,
  type TaskStore,
  type TaskView,
} from "../src/tasks/store.ts";
import { freshDatabase, PG_TEST } from "./pg_cluster.ts";

/** Decides whether one commit fails: true fails it with an injected InternalError. */
export type CommitFault = (record: TaskRecord, change: TaskChange) => boolean;

/** A store that delegates to another and fails commits that a rule picks. */
export class FaultyStore implements TaskStore {
  readonly inner: TaskStore;
  /** The rule in force; none fails nothing. */
  fault: CommitFault | undefined;
  /** How many commits were failed on purpose. */
  injected = 0;
  /** When true, `ping` fails as an unreachable database would. */
  unreachable = false;

  constructor(inner: TaskStore) {
    this.inner = inner;
  }

  get(taskId: string, view?: TaskView): Promise<TaskRecord | undefined> {
    return this.inner.get(taskId, view);
  }

  commit(record: TaskRecord, change: TaskChange): Promise<void> {
    if (this.fault?.(record, change)) {
      this.injected++;
      return Promise.reject(new InternalError(`Cannot store task ${record.task.id}: injected`));
    }
    return this.inner.commit(record, change);
  }

  findMessage(owner: string, messageId: string): Promise<StoredMessage | undefined> {
    return this.inner.findMessage(owner, messageId);
  }

  events(taskId: string, afterSeq: number): Promise<StreamEvent[]> {
    return this.inner.events(taskId, afterSeq);
  }

  list(owner: string, query: TaskQuery): Promise<TaskPage> {
    return this.inner.list(owner, query);
  }

  putPushConfig(record: PushConfigRecord): Promise<void> {
    return this.inner.putPushConfig(record);
  }

  getPushConfig(taskId: string, id: string): Promise<PushConfigRecord | undefined> {
    return this.inner.getPushConfig(taskId, id);
  }

  listPushConfigs(taskId: string): Promise<PushConfigRecord[]> {
    return this.inner.listPushConfigs(taskId);
  }

  deletePushConfig(taskId: string, id: string): Promise<boolean> {
    return this.inner.deletePushConfig(taskId, id);
  }

  unfinished(): Promise<TaskRecord[]> {
    return this.inner.unfinished?.() ?? Promise.resolve([]);
  }

  ping(): Promise<void> {
    if (this.unreachable) return Promise.reject(new Error("connection refused: injected"));
    return this.inner.ping?.() ?? Promise.resolve();
  }
}

/** A store for one test, closed on disposal. */
export interface TestStore extends AsyncDisposable {
  readonly store: TaskStore;
}

/** The stores the core's tests run on: by name, a factory of a fresh, empty store. */
export const STORES: ReadonlyArray<[string, () => Promise<TestStore>]> = [
  ["in memory", () => {
    const store = new InMemoryTaskStore();
    return Promise.resolve({ store, [Symbol.asyncDispose]: () => Promise.resolve() });
  }],
  ["Deno KV", async () => {
    const store = new KvTaskStore(await Deno.openKv(":memory:"));
    return {
      store,
      [Symbol.asyncDispose]: () => {
        store.close();
        return Promise.resolve();
      },
    };
  }],
  // A fresh database per test: the store is shared (`store.shared`), so the task core runs as one
  // process of several would.
  ...(PG_TEST.ignore ? [] : [
    ["PostgreSQL", async (): Promise<TestStore> => {
      const url = await freshDatabase();
      if (url === undefined) throw new Error("PostgreSQL is not available");
      const store = await PostgresTaskStore.connect(url);
      return { store, [Symbol.asyncDispose]: () => store.close() };
    }] satisfies [string, () => Promise<TestStore>],
  ]),
];
