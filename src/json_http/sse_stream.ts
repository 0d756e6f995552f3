// The SSE response both JSON bindings stream a Subscription through: one event at a time, each
// with its per-task sequence number as `id`, keep-alive comments on idle streams, a bound on
// each event's size, and an error event that ends every open stream when the server shuts down.
// What an event's `data` looks like is the binding's: it passes the encoders.

import { InternalError, ServiceUnavailableError } from "../errors/errors.ts";
import { exceedsUtf8, utf8Length } from "../http/limits.ts";
import type { Subscription } from "../tasks/subscription.ts";
import type { StreamResponse } from "../types/core.ts";
import { formatSseEvent, SSE_KEEP_ALIVE } from "./sse.ts";

/** How one binding writes its stream events. */
export interface SseEncoding {
  /** The `data` of the event that carries one StreamResponse (a single line of JSON). */
  event(result: StreamResponse): string;
  /** The whole text of the event that ends the stream with an error. */
  error(err: unknown): string;
}

/** Options of {@link SseStreams}. */
export interface SseStreamsOptions {
  /** Milliseconds of silence before a `: keep-alive` comment (0 turns them off). */
  keepAliveMs: number;
  /** Largest event `data` sent, in bytes of UTF-8; a larger event ends the stream with -32603. */
  maxEventBytes: number;
  /** Headers added to every stream response (CORS). */
  headers: Record<string, string>;
}

/** The open SSE streams of one binding, and the way to start and end them. */
export class SseStreams {
  #options: SseStreamsOptions;
  // Each open stream's shutdown function.
  #open = new Set<() => void>();

  /**
   * Creates an empty set of streams.
   *
   * @param options Keep-alive, event size limit and headers.
   */
  constructor(options: SseStreamsOptions) {
    this.#options = options;
  }

  /** How many streams are open. */
  get size(): number {
    return this.#open.size;
  }

  /**
   * Streams a subscription as `text/event-stream`. The client going away cancels the body
   * stream, which closes the subscription. (Deno's request.signal is not used: it also aborts
   * after every successful response.)
   *
   * @param sub The subscription; closed when the stream ends, however it ends.
   * @param encoding How the binding writes events.
   * @param release Called once when the stream ends (the connection limiter's slot).
   * @returns The response.
   */
  open(sub: Subscription, encoding: SseEncoding, release: () => void): Response {
    const { keepAliveMs, maxEventBytes, headers } = this.#options;
    const open = this.#open;
    const encoder = new TextEncoder();
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let finished = false;
    const finish = (): boolean => {
      if (finished) return false;
      finished = true;
      clearTimeout(timer);
      open.delete(shutdown);
      sub.close();
      release();
      return true;
    };
    // The keep-alive timer restarts on every write, so only an idle stream gets comments.
    const arm = () => {
      clearTimeout(timer);
      if (keepAliveMs > 0) {
        timer = setTimeout(() => {
          if (!finished) write(SSE_KEEP_ALIVE);
        }, keepAliveMs);
      }
    };
    const write = (text: string) => {
      controller.enqueue(encoder.encode(text));
      arm();
    };
    const end = () => {
      if (finish()) controller.close();
    };
    const fail = (err: unknown) => {
      if (finished) return;
      write(encoding.error(err));
      end();
    };
    function shutdown() {
      fail(
        new ServiceUnavailableError(
          "The server is shutting down; subscribe again with Last-Event-ID to continue",
        ),
      );
    }
    open.add(shutdown);
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
        arm();
      },
      // Pulling one event at a time leaves a slow client's backlog in the Subscription, whose
      // bound protects the task core (it ends the stream with StreamOverflowError).
      async pull() {
        let next: IteratorResult<StreamResponse & { seq: number }>;
        try {
          next = await sub.next();
        } catch (err) {
          return fail(err);
        }
        if (finished) return;
        if (next.done) return end();
        const { seq, ...result } = next.value;
        const data = encoding.event(result);
        // A client may refuse anything larger, and would lose the whole stream to it; the task
        // itself can still be read with GetTask.
        if (exceedsUtf8(data, maxEventBytes)) {
          return fail(
            new InternalError(
              `Stream event ${seq} is larger than the ${maxEventBytes}-byte limit: ${
                utf8Length(data)
              } bytes`,
            ),
          );
        }
        write(formatSseEvent(data, seq));
      },
      cancel() {
        finish();
      },
    }, new CountQueuingStrategy({ highWaterMark: 16 }));
    return new Response(body, {
      headers: {
        ...headers,
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
      },
    });
  }

  /**
   * Ends every open stream with a -31003 error event (the client resubscribes, with
   * `Last-Event-ID`, elsewhere or later) and gives the server a turn to send it.
   */
  async close(): Promise<void> {
    if (this.#open.size === 0) return;
    for (const shutdown of [...this.#open]) shutdown();
    // Deno.serve drops a response whose last chunk is still unsent when it stops; one turn of
    // the event loop lets the final events go out.
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}
