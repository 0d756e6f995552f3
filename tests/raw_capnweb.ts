// A client written from docs/BINDING.md alone: capnweb's own session over an npm:ws socket, with
// sinks that record every call the server makes, in order, so tests can check the exact sequence.

import { RpcSession, RpcTarget, WebSocketTransport } from "capnweb";
import { WebSocket as WsWebSocket } from "ws";
import type { StreamEvent } from "../client.ts";

/** One thing the client saw: a sink call, a call's result, or the socket's close. */
export interface Seen {
  /** The sink's name, or what else it was (`close`, a call's name). */
  who: string;
  /** `onEvent`, `onEvents`, `onEnd`, `onError`, `resolve`, `close`. */
  what: string;
  /** The events' seqs, for `onEvent` and `onEvents`. */
  seqs?: number[];
  /** The task state an event moved to, or a snapshot's state. */
  state?: string;
  /** The error's code, for `onError`. */
  code?: number;
  /** The error's message, or the close reason. */
  message?: string;
  /** The error's ErrorInfo reason. */
  reason?: string;
  /** The error's `lastSeq`, for `-31002`. */
  lastSeq?: number;
  /** The close code. */
  closeCode?: number;
  /** `performance.now()` when it was seen. */
  at: number;
}

/** The state a stream event moved its task to, if any. */
function stateOf(event: StreamEvent): string | undefined {
  return event.statusUpdate?.status.state ?? event.task?.status.state;
}

/** A StreamSink that records its calls; with `hold`, it never answers an event call. */
export class RecordingSink extends RpcTarget {
  #name: string;
  #log: Seen[];
  #hold: boolean;
  /** Every event received, in order. */
  readonly events: StreamEvent[] = [];

  /**
   * Creates a sink.
   *
   * @param name Its name in the log.
   * @param log Where it records.
   * @param options `hold`: never resolve `onEvent`/`onEvents` (a consumer that is stuck).
   */
  constructor(name: string, log: Seen[], options: { hold?: boolean } = {}) {
    super();
    this.#name = name;
    this.#log = log;
    this.#hold = options.hold ?? false;
  }

  #events(events: StreamEvent[], what: string): Promise<void> | undefined {
    this.events.push(...events);
    const state = events.map(stateOf).findLast((s) => s !== undefined);
    this.#log.push({
      who: this.#name,
      what,
      seqs: events.map((e) => e.seq),
      ...(state !== undefined && { state }),
      at: performance.now(),
    });
    return this.#hold ? new Promise<void>(() => {}) : undefined;
  }

  /** Records one event. */
  onEvent(event: StreamEvent): Promise<void> | undefined {
    return this.#events([event], "onEvent");
  }

  /** Records a batch of events. */
  onEvents(events: StreamEvent[]): Promise<void> | undefined {
    return this.#events(events, "onEvents");
  }

  /** Records the end. */
  onEnd(): void {
    this.#log.push({ who: this.#name, what: "onEnd", at: performance.now() });
  }

  /** Records the error with its code, message, reason and lastSeq. */
  onError(error: { code?: number; message?: string; data?: unknown; lastSeq?: number }): void {
    const data = Array.isArray(error.data) ? error.data as { reason?: string }[] : [];
    this.#log.push({
      who: this.#name,
      what: "onError",
      ...(error.code !== undefined && { code: error.code }),
      ...(error.message !== undefined && { message: error.message }),
      ...(data[0]?.reason !== undefined && { reason: data[0].reason }),
      ...(error.lastSeq !== undefined && { lastSeq: error.lastSeq }),
      at: performance.now(),
    });
  }

  /** The calls of this sink in the log. */
  calls(log: Seen[]): Seen[] {
    return log.filter((s) => s.who === this.#name);
  }
}

/** A stub of a server object: any method, answered over the wire. */
// deno-lint-ignore no-explicit-any
export type Remote = any;

/** A raw capnweb session over a WebSocket. */
export interface RawSession {
  /** The server's root object (`A2AService`). */
  // deno-lint-ignore no-explicit-any
  readonly root: any;
  /** capnweb's session: `getStats()` counts its imports and exports. */
  readonly session: RpcSession;
  /** Resolves with the close code and reason once the socket has closed. */
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Closes the socket (code 1000) and waits until it is closed. */
  close(): Promise<void>;
}

/**
 * Opens a capnweb session to `${baseUrl}/a2a/capnweb` over an npm:ws socket (no-delay, unlike
 * Deno's own WebSocket client). A close is recorded in `log` as `{ who: "close" }`.
 *
 * @param baseUrl The server's base URL (`http://…`).
 * @param log Where the close is recorded.
 * @returns The session.
 */
export function openRawSession(baseUrl: string, log: Seen[] = []): RawSession {
  const ws = new WsWebSocket(`${baseUrl.replace(/^http/, "ws")}/a2a/capnweb`);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.addEventListener("close", (e: { code: number; reason: string }) => {
      log.push({
        who: "close",
        what: "close",
        closeCode: e.code,
        message: e.reason,
        at: performance.now(),
      });
      resolve({ code: e.code, reason: e.reason });
    });
  });
  const session = new RpcSession(new WebSocketTransport(ws as unknown as WebSocket));
  const root = session.getRemoteMain();
  return {
    root,
    session,
    closed,
    async close() {
      root[Symbol.dispose]();
      if (ws.readyState !== ws.CLOSED) ws.close(1000);
      await closed;
    },
  };
}
