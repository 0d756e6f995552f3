// Server-Sent Events, both ends: a small parser for `text/event-stream` bodies (browser-safe, for
// the JSON-RPC client) and the encoders both JSON bindings' servers use.

import { DEFAULT_MAX_EVENT_BYTES } from "../http/limits.ts";

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
  /**
   * The largest event accepted: its data, the `data` lines joined with `\n` (default 64 MiB,
   * `DEFAULT_MAX_EVENT_BYTES`, the most this module's server sends). Counted in UTF-16 code
   * units, which never outnumber the UTF-8 bytes, so every event within the limit in bytes is
   * accepted.
   */
  maxEventBytes?: number;
}

// Room on a line for the field name, colon and space around an event's data (`data: `).
const LINE_OVERHEAD = 64;

/**
 * Parses a `text/event-stream` body into events, as the HTML standard's event stream
 * interpretation does: LF, CRLF and CR end lines, `:` starts a comment, an empty line dispatches
 * the event, and an event without data is dropped. An unfinished event at the end is dropped.
 * The body is cancelled when the consumer stops early.
 *
 * @param body The response body.
 * @param options Limits.
 * @returns The events, in order.
 * @throws {RangeError} When an event's data exceeds `maxEventBytes`, or a line is longer than
 * that and a field name: `SSE event is larger than the N-byte limit`.
 */
export async function* parseSse(
  body: ReadableStream<Uint8Array>,
  options: ParseSseOptions = {},
): AsyncGenerator<SseEvent> {
  const max = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
  const maxLine = max + LINE_OVERHEAD;
  const reader = body.getReader();
  const decoder = new TextDecoder();
  // The start of a line that has not ended yet, in pieces: joining once at its end keeps a long
  // line linear in its length, however many chunks it comes in.
  let partial: string[] = [];
  let partialLength = 0;
  let afterCR = false;
  let data: string[] = [];
  let size = 0;
  let event = "";
  let id: string | undefined;
  // A line that long cannot be part of an event within the limit: it is refused before it ends.
  const tooLarge = () => new RangeError(`SSE event is larger than the ${max}-byte limit`);
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) return;
      const text = decoder.decode(value, { stream: true });
      let start = 0;
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c !== 10 && c !== 13) continue;
        if (c === 10 && afterCR && i === start && partialLength === 0) {
          // The LF of a CRLF whose CR ended the previous line.
          afterCR = false;
          start = i + 1;
          continue;
        }
        let line = text.slice(start, i);
        if (partialLength > 0) {
          partial.push(line);
          line = partial.join("");
          partial = [];
          partialLength = 0;
        }
        if (line.length > maxLine) throw tooLarge();
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
          size += (data.length > 0 ? 1 : 0) + fieldValue.length;
          if (size > max) throw tooLarge();
          data.push(fieldValue);
        } else if (field === "event") {
          event = fieldValue;
        } else if (field === "id" && !fieldValue.includes("\0")) {
          id = fieldValue;
        }
      }
      if (start < text.length) {
        const rest = start === 0 ? text : text.slice(start);
        partial.push(rest);
        partialLength += rest.length;
        afterCR = false;
        if (partialLength > maxLine) throw tooLarge();
      }
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

/**
 * Encodes the `error` event that ends a stream, as the HTTP+JSON binding sends it (and the
 * official SDK's REST client reads it): `event: error` and no id, since it is not one of the task's
 * events and resuming must not skip past it.
 *
 * @param data The data; must not contain line breaks.
 * @returns The event's text, ending with the blank line that dispatches it.
 */
export function formatSseErrorEvent(data: string): string {
  return `event: error\ndata: ${data}\n\n`;
}

/** The SSE comment the server sends on idle streams so that proxies keep them open. */
export const SSE_KEEP_ALIVE = ": keep-alive\n\n";
