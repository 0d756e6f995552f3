// Server-Sent Events, both ends: a small parser for `text/event-stream` bodies (browser-safe, for
// the JSON-RPC client) and the encoder the server uses.

/** One dispatched SSE event. */
export interface SseEvent {
  /** The event type (`message` when the stream named none). */
  event: string;
  /** The data lines joined with `\n`. */
  data: string;
  /** The `id` field of this event, when it had one. */
  id: string | undefined;
}

/** Options of {@link parseSse}. */
export interface ParseSseOptions {
  /** The largest event (or line) accepted, in characters (default 16 MiB). */
  maxEventSize?: number;
}

/**
 * Parses a `text/event-stream` body into events, as the HTML standard's event stream
 * interpretation does: LF, CRLF and CR end lines, `:` starts a comment, an empty line dispatches
 * the event, and an event without data is dropped. An unfinished event at the end is dropped.
 * The body is cancelled when the consumer stops early.
 *
 * @param body The response body.
 * @param options Limits.
 * @returns The events, in order.
 * @throws {RangeError} When an event or line exceeds `maxEventSize`.
 */
export async function* parseSse(
  body: ReadableStream<Uint8Array>,
  options: ParseSseOptions = {},
): AsyncGenerator<SseEvent> {
  const max = options.maxEventSize ?? 16 * 1024 * 1024;
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  let afterCR = false;
  let data: string[] = [];
  let size = 0;
  let event = "";
  let id: string | undefined;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let start = 0;
      for (let i = 0; i < buf.length; i++) {
        const c = buf.charCodeAt(i);
        if (c !== 10 && c !== 13) continue;
        if (c === 10 && afterCR && i === start) {
          // The LF of a CRLF whose CR ended the previous line.
          afterCR = false;
          start = i + 1;
          continue;
        }
        const line = buf.slice(start, i);
        start = i + 1;
        afterCR = c === 13;
        if (line === "") {
          if (data.length > 0) {
            const out: SseEvent = { event: event || "message", data: data.join("\n"), id };
            data = [];
            size = 0;
            event = "";
            id = undefined;
            yield out;
          } else {
            event = "";
            id = undefined;
          }
          continue;
        }
        if (line.charCodeAt(0) === 58) continue; // ":" starts a comment (keep-alives)
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let fieldValue = colon < 0 ? "" : line.slice(colon + 1);
        if (fieldValue.charCodeAt(0) === 32) fieldValue = fieldValue.slice(1);
        if (field === "data") {
          size += fieldValue.length + 1;
          if (size > max) throw new RangeError(`SSE event is larger than ${max} characters`);
          data.push(fieldValue);
        } else if (field === "event") {
          event = fieldValue;
        } else if (field === "id" && !fieldValue.includes("\0")) {
          id = fieldValue;
        }
      }
      buf = buf.slice(start);
      if (buf.length > max) throw new RangeError(`SSE line is longer than ${max} characters`);
    }
  } finally {
    await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}

/**
 * Encodes one SSE event whose data is a single line (as JSON text is).
 *
 * @param data The data; must not contain line breaks.
 * @param id The event id, if any.
 * @returns The event's text, ending with the blank line that dispatches it.
 */
export function formatSseEvent(data: string, id?: string | number): string {
  return id === undefined ? `data: ${data}\n\n` : `id: ${id}\ndata: ${data}\n\n`;
}

/** The SSE comment the server sends on idle streams so that proxies keep them open. */
export const SSE_KEEP_ALIVE = ": keep-alive\n\n";
