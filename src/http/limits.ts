// Size limits that every binding and both clients share, and the one cheap way to measure a
// message against them. It sits below the bindings (which import it), like body.ts.

/**
 * The largest message or request body the server accepts by default: 4 MiB, in bytes
 * (`limits.maxMessageBytes`).
 *
 * @example Halve the limit
 * ```ts
 * import { DEFAULT_MAX_MESSAGE_BYTES, type ServerLimits } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * const limits: ServerLimits = { maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES / 2 };
 * assert.equal(limits.maxMessageBytes, 2 * 1024 * 1024);
 * ```
 */
export const DEFAULT_MAX_MESSAGE_BYTES: number = 4 * 1024 * 1024;

/**
 * The largest single message the server sends and a conforming client accepts by default:
 * 64 MiB, in bytes of UTF-8. It bounds one SSE event's data (JSON-RPC streams) and one capnweb
 * message (a call's result or a stream event). The server never sends more; over it, the
 * call or stream fails with an error naming the limit. 64 MiB is also the largest WebSocket
 * frame Deno's server accepts, and below the 100 MiB default of `npm:ws`.
 *
 * @example The server's and the client's default agree
 * ```ts
 * import { DEFAULT_MAX_EVENT_BYTES } from "@a2a-capnweb/core";
 * import { DEFAULT_MAX_EVENT_BYTES as CLIENT_DEFAULT } from "@a2a-capnweb/core/client";
 * import assert from "node:assert/strict";
 *
 * assert.equal(DEFAULT_MAX_EVENT_BYTES, 64 * 1024 * 1024);
 * assert.equal(CLIENT_DEFAULT, DEFAULT_MAX_EVENT_BYTES);
 * ```
 */
export const DEFAULT_MAX_EVENT_BYTES: number = 64 * 1024 * 1024;

/**
 * The UTF-8 length of a string (a lone surrogate counts as U+FFFD, three bytes, as
 * TextEncoder encodes it).
 *
 * @param text The string.
 * @returns Its length in bytes.
 */
export function utf8Length(text: string): number {
  return countUtf8(text, Infinity);
}

/**
 * Tells whether a string's UTF-8 form is longer than `limit` bytes, cheaply: most strings are
 * decided by their length alone, since a UTF-16 code unit takes one to three bytes.
 *
 * @param text The string.
 * @param limit The most bytes allowed.
 * @returns True when the string is over the limit.
 */
export function exceedsUtf8(text: string, limit: number): boolean {
  if (text.length > limit) return true;
  if (text.length * 3 <= limit) return false;
  return countUtf8(text, limit) > limit;
}

/** Counts UTF-8 bytes, stopping once past `stop`. */
function countUtf8(text: string, stop: number): number {
  const units = text.length;
  let bytes = units;
  for (let i = 0; i < units && bytes <= stop; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      bytes += 1;
      continue;
    }
    bytes += 2;
    // A surrogate pair is four bytes for its two units.
    if (c >= 0xd800 && c < 0xdc00 && i + 1 < units) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d < 0xe000) i++;
    }
  }
  return bytes;
}
