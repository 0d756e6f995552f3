// Types of the capnweb binding that clients and servers share.

import type { StreamEvent } from "../tasks/store.ts";

/**
 * The callback a client passes to a streaming method. The server calls `onEvent` for each
 * event in order, then exactly one of `onEnd` or `onError`.
 */
export interface StreamSink {
  /** Receives one event. The server keeps a bounded number of these calls in flight. */
  onEvent(event: StreamEvent): void | Promise<void>;
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
