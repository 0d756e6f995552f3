// A capnweb transport wrapper that holds every message to a size limit without ending the session:
// an oversized call, or an oversized answer to one, fails alone with an error that names the limit.

import { type RpcTransport, serialize } from "capnweb";
import { getLogger } from "@logtape/logtape";
import { InternalError, InvalidRequestError, QuotaExceededError } from "../errors/errors.ts";
import { exceedsUtf8, utf8Length } from "../http/limits.ts";

const log = getLogger(["a2a-capnweb", "rpc"]);

/** The WebSocket close code for a message over the size limit (RFC 6455: Message Too Big). */
export const CLOSE_MESSAGE_TOO_BIG = 1009;

/** The WebSocket close code for a session ended by a limit or policy (RFC 6455: Policy Violation). */
export const CLOSE_POLICY_VIOLATION = 1008;

/**
 * The close code of a session that capnweb aborted (a malformed or out-of-order message): the
 * code capnweb's own transport uses. The reason is always {@linkcode ABORT_REASON}, never
 * capnweb's text, which can quote the peer's message or name internal tables.
 */
export const CLOSE_ABORTED = 3000;

/** The close reason of a session that capnweb aborted. */
export const ABORT_REASON = "RPC session aborted: protocol error";

/** What a session may do before it has authenticated; past any of these it is ended. */
export interface PreAuthLimits {
  /** Whether the session has authenticated; the limits apply until it has. */
  authenticated: () => boolean;
  /** Calls (pushes) outstanding at once (default 16). */
  maxCalls?: number;
  /** Capabilities (`export` expressions) the peer may send us in all (default 16). */
  maxImports?: number;
  /** Bytes the peer may send in all (default 1 MiB). */
  maxBytes?: number;
}

/** Options of {@linkcode SizeLimitedTransport}. */
export interface SizeLimitOptions {
  /** The largest message accepted from the peer, in bytes of UTF-8. */
  maxIncomingBytes: number;
  /** The largest message sent to the peer, in bytes of UTF-8. */
  maxOutgoingBytes: number;
  /**
   * The error an oversized incoming message is refused with (default: -32600
   * InvalidRequestError, "Message is larger than the N-byte limit: M bytes").
   */
  incomingError?: (limit: number, bytes: number) => Error;
  /**
   * The error that replaces an oversized outgoing message (default: -32603 InternalError,
   * "Message to the client is larger than the N-byte limit: M bytes").
   */
  outgoingError?: (limit: number, bytes: number) => Error;
  /**
   * Closes the connection with a code and reason. Used, with code 1009, for an oversized message
   * that cannot be refused alone; without it the inner transport's `abort` ends the session.
   */
  close?: (code: number, reason: string) => void;
  /**
   * Limits of a session that has not authenticated. Past any, the session is aborted and, given
   * `close`, closed with code 1008 and a reason naming the limit.
   */
  preAuth?: PreAuthLimits;
  /**
   * Calls the peer may have outstanding at once (a `push` not yet released), authenticated or
   * not; one more fails alone with QuotaExceededError (-31005). Unlimited when absent.
   */
  maxCallsInFlight?: number;
}

// The kind of a capnweb message and its id, read from its first characters: `["push",`,
// `["resolve",-3,`, with the JSON whitespace a peer other than capnweb's own may put between the
// tokens (within the first 4 KiB).
const HEAD =
  /^[ \t\n\r]*\[[ \t\n\r]*"((?:[^"\\]|\\.){1,64}?)"[ \t\n\r]*(?:,[ \t\n\r]*(-?\d+)[ \t\n\r]*,)?/;

interface Head {
  kind: string | undefined;
  id: number | undefined;
}

function headOf(text: string): Head {
  const m = HEAD.exec(text.length > 4096 ? text.slice(0, 4096) : text);
  let kind = m?.[1];
  if (kind?.includes("\\")) {
    // An escaped kind (`"pu\u0073h"`) is the same kind to capnweb's JSON.parse.
    try {
      kind = JSON.parse(`"${kind}"`) as string;
    } catch {
      kind = undefined;
    }
  }
  return { kind, id: m?.[2] === undefined ? undefined : Number(m[2]) };
}

/**
 * The head of a message written in another form than capnweb's own (spaces, escapes such as
 * `"pu\u0073h"`): read as capnweb reads it, by parsing the JSON. Only for messages within the size
 * limit; anything unreadable has no kind (capnweb then aborts the session over it).
 */
function parsedHead(text: string): Head {
  try {
    const value: unknown = JSON.parse(text);
    if (!Array.isArray(value) || typeof value[0] !== "string") {
      return { kind: undefined, id: undefined };
    }
    const id = typeof value[1] === "number" && Number.isInteger(value[1]) ? value[1] : undefined;
    return { kind: value[0], id };
  } catch {
    return { kind: undefined, id: undefined };
  }
}

/** Messages that take the next id: the sender's next import, the receiver's next export. */
function allocatesId(kind: string | undefined): boolean {
  return kind === "push" || kind === "stream" || kind === "pipe";
}

/**
 * Wraps a capnweb transport so that no message over the limits is read or sent, and the session
 * survives one. capnweb's own `limits.maxMessageSize` ends the whole session instead, and counts
 * UTF-16 code units rather than bytes; keep it at or above `maxIncomingBytes` so that it never
 * fires first.
 *
 * Every `push` (and `stream`) message takes the next id in the receiver's export table, and the
 * sender numbers its import the same way, so an oversized one cannot simply be dropped. Instead:
 *
 * - an incoming oversized `push` or `stream` is replaced by one of `null`, which keeps the ids in
 *   step, and the peer is sent a `reject` of that id, so exactly that call fails (by default with
 *   -32600);
 * - an incoming oversized `resolve` or `reject` (the peer's answer to one of our calls) becomes a
 *   `reject` of the same id, and an oversized `abort` an `abort`, with that error;
 * - an outgoing oversized `resolve` or `reject` becomes a `reject` (by default with -32603), and
 *   an outgoing oversized `push` becomes a `push` of `null` while our session is handed a
 *   `reject` of its id, so the call fails on our side;
 * - any other oversized incoming message (a huge `pull`, `release`, or something that is not
 *   capnweb) ends the session: an `abort` with the incoming error and, given `close`, close code
 *   1009 with a reason naming the limit.
 *
 * A call pipelined on a refused call's result, sent before the refusal arrived, fails too, with
 * an error about calling a method of `null`.
 */
export class SizeLimitedTransport implements RpcTransport {
  #inner: RpcTransport;
  #maxIn: number;
  #maxOut: number;
  #close: ((code: number, reason: string) => void) | undefined;
  #incomingError: (limit: number, bytes: number) => Error;
  #outgoingError: (limit: number, bytes: number) => Error;
  // The id the peer's next push takes in our export table, and our next push in our imports.
  #peerNextId = 1;
  #ownNextId = 1;
  // Messages for our session that did not come from the peer, and the read they interrupt.
  #injected: string[] = [];
  // The session's read in progress, the inner transport's read in progress, and what that read
  // brought while nobody was waiting (an injected message answered the session's read first).
  #waiter: { resolve: (message: string) => void; reject: (err: unknown) => void } | undefined;
  #reading = false;
  #arrived: { raw: string } | { error: unknown } | undefined;
  #fatal: Error | undefined;
  #fatalCode = CLOSE_MESSAGE_TOO_BIG;
  // The peer's pushes that we have not been told to release: its calls in flight.
  #inFlight = new Set<number>();
  #maxInFlight: number;
  #preAuth: Required<PreAuthLimits> | undefined;
  #preAuthBytes = 0;
  #preAuthImports = 0;

  /**
   * Wraps a transport.
   *
   * @param inner The transport that carries the messages (e.g. capnweb's WebSocketTransport).
   * @param options The limits, and how to close the connection.
   */
  constructor(inner: RpcTransport, options: SizeLimitOptions) {
    this.#inner = inner;
    this.#maxIn = options.maxIncomingBytes;
    this.#maxOut = options.maxOutgoingBytes;
    this.#close = options.close;
    this.#maxInFlight = options.maxCallsInFlight ?? Infinity;
    this.#preAuth = options.preAuth && {
      maxCalls: 16,
      maxImports: 16,
      maxBytes: 1024 * 1024,
      ...options.preAuth,
    };
    this.#incomingError = options.incomingError ??
      ((limit, bytes) =>
        new InvalidRequestError(`Message is larger than the ${limit}-byte limit: ${bytes} bytes`));
    this.#outgoingError = options.outgoingError ??
      ((limit, bytes) =>
        new InternalError(
          `Message to the client is larger than the ${limit}-byte limit: ${bytes} bytes`,
        ));
  }

  /**
   * Sends a message, or a small stand-in when it is over the outgoing limit.
   *
   * @param message One capnweb message.
   * @returns What the inner transport returns.
   */
  send(message: string): void | Promise<void> {
    const { kind, id } = headOf(message);
    const ownId = allocatesId(kind) ? this.#ownNextId++ : id;
    if (!exceedsUtf8(message, this.#maxOut)) return this.#inner.send(message);
    const error = serialize(this.#outgoingError(this.#maxOut, utf8Length(message)));
    switch (kind) {
      case "resolve":
      case "reject":
        if (ownId !== undefined) return this.#inner.send(`["reject",${ownId},${error}]`);
        break;
      case "push":
      case "stream":
        this.#inject(`["reject",${ownId},${error}]`);
        return this.#inner.send(`["${kind}",null]`);
      case "abort":
        return this.#inner.send(`["abort",${error}]`);
    }
    // Nothing else capnweb sends can be this large; let the peer judge it.
    return this.#inner.send(message);
  }

  /**
   * Receives the next message, replacing one over the incoming limit.
   *
   * @returns One capnweb message.
   */
  receive(): Promise<string> {
    const next = this.#injected.shift();
    if (next !== undefined) return Promise.resolve(next);
    const arrived = this.#arrived;
    if (arrived) {
      this.#arrived = undefined;
      return new Promise((resolve, reject) => this.#deliver(arrived, { resolve, reject }));
    }
    // No async function and no race: an idle session holds one promise here, not five.
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
      if (!this.#reading) this.#read();
    });
  }

  #read(): void {
    this.#reading = true;
    this.#inner.receive().then(
      (raw) => this.#arrive({ raw }),
      (error: unknown) => this.#arrive({ error }),
    );
  }

  #arrive(arrived: { raw: string } | { error: unknown }): void {
    this.#reading = false;
    const waiter = this.#waiter;
    if (!waiter) {
      this.#arrived = arrived;
      return;
    }
    this.#waiter = undefined;
    this.#deliver(arrived, waiter);
  }

  #deliver(
    arrived: { raw: string } | { error: unknown },
    to: { resolve: (message: string) => void; reject: (err: unknown) => void },
  ): void {
    if ("error" in arrived) return to.reject(arrived.error);
    try {
      to.resolve(this.#incoming(arrived.raw));
    } catch (err) {
      to.reject(err);
    }
  }

  /**
   * Ends the connection: with close code 1009 when the session ends over a message that broke
   * the limit, otherwise as the inner transport does.
   *
   * @param reason Why the session ended.
   */
  abort(reason: unknown): void {
    if (reason !== undefined && reason === this.#fatal && this.#close) {
      this.#close(this.#fatalCode, this.#fatal.message.slice(0, 120));
      return;
    }
    if (this.#close) {
      // capnweb's reason can quote the peer's whole message: log it cut short, send a fixed one.
      const detail = reason instanceof Error ? reason.message : String(reason);
      log.debug("capnweb session aborted: {detail}", { detail: truncate(detail, 200) });
      this.#close(CLOSE_ABORTED, ABORT_REASON);
      return;
    }
    this.#inner.abort?.(reason);
  }

  /** How many calls the peer has outstanding (its pushes we were not told to release). */
  get callsInFlight(): number {
    return this.#inFlight.size;
  }

  #inject(message: string): void {
    const waiter = this.#waiter;
    if (!waiter) {
      this.#injected.push(message);
      return;
    }
    // The inner read stays in progress; what it brings is kept for the next receive().
    this.#waiter = undefined;
    waiter.resolve(message);
  }

  #incoming(raw: string | ArrayBuffer): string {
    // capnweb text frames only; a binary frame is read as UTF-8, as its JSON would be.
    const text = typeof raw === "string" ? raw : new TextDecoder().decode(raw);
    const over = exceedsUtf8(text, this.#maxIn);
    let { kind, id } = headOf(text);
    // A message in an unusual form (an escaped kind, say) is read the way capnweb will read it, so
    // that the ids stay in step; an oversized one in such a form has no kind and ends the session.
    if (kind === undefined && !over) ({ kind, id } = parsedHead(text));
    const peerId = allocatesId(kind) ? this.#peerNextId++ : id;
    if (!over) {
      // An oversized message is refused below whatever the session's state; it costs nothing.
      if (this.#preAuth && !this.#preAuth.authenticated()) this.#checkPreAuth(text, kind);
      return this.#track(text, kind, peerId);
    }
    const refusal = this.#incomingError(this.#maxIn, utf8Length(text));
    const error = serialize(refusal);
    switch (kind) {
      case "push":
      case "stream":
        try {
          this.#inner.send(`["reject",${peerId},${error}]`);
        } catch {
          // The connection is closing; the session will notice.
        }
        return `["${kind}",null]`;
      case "resolve":
      case "reject":
        if (peerId !== undefined) return `["reject",${peerId},${error}]`;
        break;
      case "abort":
        return `["abort",${error}]`;
    }
    this.#fatal = refusal;
    this.#fatalCode = CLOSE_MESSAGE_TOO_BIG;
    throw refusal;
  }

  /** Keeps count of the peer's calls in flight, refusing one past the limit. */
  #track(text: string, kind: string | undefined, peerId: number | undefined): string {
    if (kind === "release") {
      if (peerId !== undefined) this.#inFlight.delete(peerId);
      return text;
    }
    if (!allocatesId(kind) || peerId === undefined) return text;
    if (this.#inFlight.size >= this.#maxInFlight) {
      const error = serialize(
        new QuotaExceededError(
          `Too many calls in flight on this connection: the limit is ${this.#maxInFlight}`,
        ),
      );
      try {
        this.#inner.send(`["reject",${peerId},${error}]`);
      } catch {
        // The connection is closing; the session will notice.
      }
      return `["${kind}",null]`;
    }
    this.#inFlight.add(peerId);
    return text;
  }

  /** Ends a session that has not authenticated once it sends more than it may. */
  #checkPreAuth(text: string, kind: string | undefined): void {
    const limits = this.#preAuth!;
    this.#preAuthBytes += text.length;
    let broken: string | undefined;
    if (this.#preAuthBytes > limits.maxBytes) {
      broken = `more than ${limits.maxBytes} bytes`;
    } else if (allocatesId(kind) && this.#inFlight.size >= limits.maxCalls) {
      broken = `more than ${limits.maxCalls} calls outstanding`;
    } else if ((this.#preAuthImports += countExports(text)) > limits.maxImports) {
      broken = `more than ${limits.maxImports} capabilities`;
    }
    if (broken === undefined) return;
    const refusal = new InvalidRequestError(`Sent ${broken} before authenticating`);
    this.#fatal = refusal;
    this.#fatalCode = CLOSE_POLICY_VIOLATION;
    throw refusal;
  }
}

/**
 * Counts the capabilities (`["export", id]` expressions) in a message, as capnweb will read them:
 * parsed, so that no spelling of the JSON hides one. Only used before authentication, where the
 * bytes a peer may send are few.
 */
function countExports(text: string): number {
  if (!text.includes("export") && !text.includes("\\u")) return 0;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 0; // capnweb aborts the session over it
  }
  let n = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (Array.isArray(v)) {
      if (v[0] === "export" && typeof v[1] === "number") n++;
      for (const item of v) stack.push(item);
    } else if (v !== null && typeof v === "object") {
      for (const item of Object.values(v)) stack.push(item);
    }
  }
  return n;
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}… (${text.length} characters)` : text;
}
