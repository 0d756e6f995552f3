// Types of the capnweb binding that clients and servers share.

import type { StreamEvent } from "../tasks/store.ts";

/**
 * The callback a client passes to a streaming method. The server delivers the events in order,
 * then calls exactly one of `onEnd` or `onError`. It calls `onEvents` with batches when the
 * client passed `batchEvents: true` to `authenticate`, and `onEvent` per event otherwise.
 */
export interface StreamSink {
  /** Receives one event. The server keeps a bounded number of these calls in flight. */
  onEvent(event: StreamEvent): void | Promise<void>;
  /**
   * Receives the next events, consecutive and in order (at least one). The server keeps a
   * bounded number of events in unresolved calls: resolving later slows the stream.
   */
  onEvents?(events: StreamEvent[]): void | Promise<void>;
  /** The stream ended normally. */
  onEnd(): void | Promise<void>;
  /** The stream ended with an error (an A2A error with `code`). */
  onError(error: unknown): void | Promise<void>;
}

/** Options of `authenticate`: service parameters for the whole session. */
export interface AuthenticateOptions {
  /** The A2A version the client speaks (`A2A-Version`); `1.0` when absent. */
  version?: string;
  /** Extension URIs the client wants to use (`A2A-Extensions`). */
  extensions?: string[];
  /** The client's sinks take batches: the server calls `onEvents` instead of `onEvent`. */
  batchEvents?: boolean;
}

/**
 * The callback a client passes to `createTaskPushNotificationConfig` instead of a webhook URL.
 * The server calls `onPush` for each event of the task, in order, until the config is deleted,
 * the task reaches a terminal state, or the connection closes.
 */
export interface PushCallback {
  /** Receives one event; a rejection ends the config. */
  onPush(event: StreamEvent): void | Promise<void>;
}
