// One-time tickets for clients that cannot send headers (browsers opening a WebSocket), and the
// bookkeeping of live sessions and the capabilities each one holds.

import {
  AuthenticationError,
  InvalidParamsError,
  ServiceUnavailableError,
  UnsupportedOperationError,
} from "../errors/errors.ts";
import { AuthThrottle } from "./throttle.ts";
import type { TicketStore } from "./ticket_store.ts";
import type { Principal, TokenVerifier } from "./tokens.ts";

/** A one-time ticket, as `POST /a2a/auth` returns it. */
export interface Ticket {
  /** The ticket to pass to `authenticate({ ticket })`. */
  ticket: string;
  /** The user it authenticates as. */
  userId: string;
  /** When it stops being accepted (ISO 8601). */
  expiresAt: string;
}

/**
 * The credentials `authenticate` accepts: a one-time ticket or a bearer token, or none (`{}`) on
 * an open agent.
 */
export type Credentials = { ticket: string } | { token: string } | Record<never, never>;

/** The user id of every caller of an open agent, unless `anonymousUserId` names another. */
export const DEFAULT_ANONYMOUS_USER_ID: string = "anonymous";

/** Options of a SessionManager. */
export interface SessionManagerOptions {
  /**
   * Checks bearer tokens. Without one the agent is open: every caller is the one anonymous
   * principal, whatever credentials it sends, and no tickets are issued.
   */
  verifier?: TokenVerifier;
  /**
   * The user id of the anonymous principal of an open agent (default `"anonymous"`); not allowed
   * with a verifier.
   */
  anonymousUserId?: string;
  /** How long a ticket stays valid, in milliseconds (default 30 000). */
  ticketTtlMs?: number;
  /**
   * How many unused tickets one user may have (default 100); a new one drops that user's oldest,
   * never another user's.
   */
  maxTicketsPerUser?: number;
  /**
   * How many unused tickets may exist in all (default 100 000); past that a new ticket is
   * refused with ServiceUnavailableError until some are used or expire.
   */
  maxTickets?: number;
  /**
   * Counts failed attempts per client address and refuses an address that made too many
   * (default: an {@linkcode AuthThrottle} with its defaults, 10 in a burst, then 30 a minute).
   */
  throttle?: AuthThrottle;
  /**
   * Where unused tickets live when several processes share them (a ticket issued by one is
   * redeemed once, by any); in this process's memory when absent.
   */
  tickets?: TicketStore;
}

/**
 * One connection's session: the user it authenticated as and the capabilities it holds. Closing
 * it releases them all.
 */
export class Session {
  /** A random id, for logs. */
  readonly id: string = crypto.randomUUID();
  #principal: Principal | undefined;
  #resources = new Set<Disposable>();
  #closed = false;
  #onClose: (s: Session) => void;

  /**
   * Creates a session for one connection.
   *
   * @param onClose Called once when the session closes.
   */
  constructor(onClose: (s: Session) => void) {
    this.#onClose = onClose;
  }

  /** The user this session authenticated as, if it has. */
  get principal(): Principal | undefined {
    return this.#principal;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** How many resources the session holds. */
  get resourceCount(): number {
    return this.#resources.size;
  }

  /** Records the authenticated user. */
  setPrincipal(principal: Principal): void {
    this.#principal = principal;
  }

  /**
   * Tracks a resource that must be released when the session closes.
   *
   * @param resource The resource.
   * @returns A function that stops tracking it (call it when the resource is released early).
   */
  track(resource: Disposable): () => void {
    if (this.#closed) {
      resource[Symbol.dispose]();
      return () => {};
    }
    this.#resources.add(resource);
    return () => this.#resources.delete(resource);
  }

  /** Releases every tracked resource. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const resources = [...this.#resources];
    this.#resources.clear();
    for (const r of resources) {
      try {
        r[Symbol.dispose]();
      } catch {
        // A resource that fails to release must not keep the others alive.
      }
    }
    this.#onClose(this);
  }
}

/**
 * Issues and redeems one-time tickets, verifies tokens, and keeps count of live sessions.
 *
 * @example Issue a ticket and redeem it once
 * ```ts
 * import { SessionManager, StaticTokenVerifier } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * const sessions = new SessionManager({ verifier: StaticTokenVerifier.fromList("alice=t-a") });
 * const { ticket } = await sessions.issueTicket("t-a");
 * assert.equal((await sessions.authenticate({ ticket })).userId, "alice");
 * await assert.rejects(sessions.authenticate({ ticket }));
 * ```
 */
export class SessionManager {
  #verifier: TokenVerifier | undefined;
  #anonymous: Principal | undefined;
  #ttl: number;
  #maxTickets: number;
  #maxPerUser: number;
  // Insertion order is issue order, so the oldest tickets come first.
  #tickets = new Map<string, { userId: string; expires: number }>();
  /** Each user's tickets in issue order; used and expired ones are dropped lazily. */
  #byUser = new Map<string, string[]>();
  #sessions = new Set<Session>();
  #throttle: AuthThrottle;
  #shared: TicketStore | undefined;

  /**
   * Creates a session manager with no tickets and no sessions.
   *
   * @param options The verifier and ticket settings.
   */
  constructor(options: SessionManagerOptions) {
    this.#verifier = options.verifier;
    if (options.verifier !== undefined && options.anonymousUserId !== undefined) {
      throw new TypeError(
        "Invalid options: anonymousUserId is for open agents, without a verifier",
      );
    }
    if (options.verifier === undefined) {
      const userId = options.anonymousUserId ?? DEFAULT_ANONYMOUS_USER_ID;
      if (typeof userId !== "string" || userId === "") {
        throw new TypeError("Invalid anonymousUserId: expected a non-empty string");
      }
      this.#anonymous = { userId };
    }
    this.#ttl = options.ticketTtlMs ?? 30_000;
    this.#maxTickets = options.maxTickets ?? 100_000;
    this.#maxPerUser = options.maxTicketsPerUser ?? 100;
    this.#throttle = options.throttle ?? new AuthThrottle();
    this.#shared = options.tickets;
  }

  /**
   * The principal every caller is on an open agent (one without a verifier); undefined when a
   * verifier checks credentials.
   */
  get anonymous(): Principal | undefined {
    return this.#anonymous && { ...this.#anonymous };
  }

  /** The failed-login throttle every way of authenticating goes through. */
  get throttle(): AuthThrottle {
    return this.#throttle;
  }

  /** How many sessions are open. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** How many resources (capabilities, streams) the open sessions hold together. */
  get resourceCount(): number {
    let n = 0;
    for (const s of this.#sessions) n += s.resourceCount;
    return n;
  }

  /** How many unused, unexpired tickets this process's memory holds (0 with a shared store). */
  get ticketCount(): number {
    this.#purge(Date.now());
    return this.#tickets.size;
  }

  /**
   * Verifies a bearer token. On an open agent any token, or none, is the anonymous principal: the
   * server has nothing to check a token against, and a client that sends one anyway (an SDK set
   * up with a token for many agents) is still served.
   *
   * @param token The token; undefined when the request carried none.
   * @param address The client's address, for the failed-login throttle (unknown when absent).
   * @returns The principal.
   * @throws {AuthenticationError} When the token is missing or not valid.
   * @throws {RateLimitedError} When the address made too many failed attempts.
   */
  async verifyToken(token: string | undefined, address?: string): Promise<Principal> {
    if (this.#anonymous) {
      // Refused addresses stay refused (bad tickets, say), as on every way in.
      this.#throttle.check(address);
      return { ...this.#anonymous };
    }
    // No credential is no guess: it is not counted against the address.
    if (token === undefined) throw new AuthenticationError("Missing bearer token");
    this.#throttle.check(address);
    let principal: Principal | undefined;
    try {
      principal = await this.#verifier!.verify(token);
    } catch (err) {
      // A verifier that throws on a bad token (rather than returning undefined) is a failure too.
      if (err instanceof AuthenticationError) this.#throttle.fail(address);
      throw err;
    }
    if (!principal) {
      this.#throttle.fail(address);
      throw new AuthenticationError("Invalid bearer token");
    }
    return principal;
  }

  /**
   * Issues a one-time ticket for the holder of a valid token.
   *
   * @param token The bearer token.
   * @param address The client's address, for the failed-login throttle.
   * @returns The ticket.
   * @throws {AuthenticationError} When the token is not valid.
   * @throws {RateLimitedError} When the address made too many failed attempts.
   * @throws {UnsupportedOperationError} On an open agent, which needs no tickets: its callers all
   *   share one user, whose ticket bound any caller could use up to drop the others' tickets.
   */
  async issueTicket(token: string, address?: string): Promise<Ticket> {
    if (this.#anonymous) {
      throw new UnsupportedOperationError(
        "Tickets are not issued: this agent is open, call authenticate({}) without credentials",
      );
    }
    const { userId } = await this.verifyToken(token, address);
    const now = Date.now();
    if (this.#shared) return await this.#issueShared(userId, now);
    this.#purge(now);
    const mine = (this.#byUser.get(userId) ?? []).filter((t) => this.#tickets.has(t));
    while (mine.length >= this.#maxPerUser) this.#tickets.delete(mine.shift()!);
    if (this.#tickets.size >= this.#maxTickets) {
      throw new ServiceUnavailableError(
        `Too many unused tickets (${this.#maxTickets}); try again in a few seconds`,
      );
    }
    const ticket = newTicket();
    const expires = now + this.#ttl;
    this.#tickets.set(ticket, { userId, expires });
    mine.push(ticket);
    this.#byUser.set(userId, mine);
    return { ticket, userId, expiresAt: new Date(expires).toISOString() };
  }

  /**
   * Authenticates with a ticket (consumed, whatever the outcome) or a bearer token. On an open
   * agent (no verifier) every well-formed credential, `{}` and none included, is the anonymous
   * principal.
   *
   * @param credentials `{ ticket }`, `{ token }`, or `{}`, `null` or `undefined` for none.
   * @param address The client's address, for the failed-login throttle.
   * @returns The principal.
   * @throws {InvalidParamsError} When the credentials are not of one of those shapes.
   * @throws {AuthenticationError} When the credentials are missing or not valid.
   * @throws {RateLimitedError} When the address made too many failed attempts.
   */
  async authenticate(credentials: unknown, address?: string): Promise<Principal> {
    if (
      credentials !== undefined && credentials !== null &&
      (typeof credentials !== "object" || Array.isArray(credentials))
    ) {
      throw new InvalidParamsError("Invalid params: expected { ticket }, { token } or {}", [
        { field: "(params)", description: "expected { ticket }, { token } or {}" },
      ]);
    }
    const { ticket, token } = (credentials ?? {}) as { ticket?: unknown; token?: unknown };
    if (
      ticket !== undefined && typeof ticket !== "string" ||
      token !== undefined && typeof token !== "string"
    ) {
      throw new InvalidParamsError("Invalid params: ticket and token must be strings", [
        {
          field: ticket !== undefined && typeof ticket !== "string" ? "ticket" : "token",
          description: "must be a string",
        },
      ]);
    }
    if (ticket !== undefined && token !== undefined) {
      throw new InvalidParamsError("Invalid params: expected exactly one of ticket or token", [
        { field: "(params)", description: "expected exactly one of ticket or token" },
      ]);
    }
    if (this.#anonymous) {
      this.#throttle.check(address);
      return { ...this.#anonymous };
    }
    if (ticket === undefined && token === undefined) {
      throw new AuthenticationError(
        "Missing credentials: this agent needs { ticket } or { token }",
      );
    }
    if (typeof ticket === "string") {
      this.#throttle.check(address);
      if (this.#shared) {
        const taken = await this.#shared.take(ticket);
        if (!taken || taken.expiresAt <= Date.now()) {
          this.#throttle.fail(address);
          throw new AuthenticationError("Invalid, expired or already used ticket");
        }
        return { userId: taken.userId };
      }
      const entry = this.#tickets.get(ticket);
      this.#tickets.delete(ticket);
      if (entry) {
        const left = this.#byUser.get(entry.userId)?.filter((t) => t !== ticket) ?? [];
        if (left.length === 0) this.#byUser.delete(entry.userId);
        else this.#byUser.set(entry.userId, left);
      }
      if (!entry || entry.expires <= Date.now()) {
        this.#throttle.fail(address);
        throw new AuthenticationError("Invalid, expired or already used ticket");
      }
      return { userId: entry.userId };
    }
    return await this.verifyToken(token as string, address);
  }

  /**
   * Opens a session for a new connection.
   *
   * @returns The session; close it when the connection ends.
   */
  open(): Session {
    const session = new Session((s) => this.#sessions.delete(s));
    this.#sessions.add(session);
    return session;
  }

  /** Closes every open session. */
  closeAll(): void {
    for (const s of [...this.#sessions]) s.close();
  }

  async #issueShared(userId: string, now: number): Promise<Ticket> {
    const store = this.#shared!;
    if (await store.count() >= this.#maxTickets) {
      throw new ServiceUnavailableError(
        `Too many unused tickets (${this.#maxTickets}); try again in a few seconds`,
      );
    }
    const ticket = newTicket();
    const expires = now + this.#ttl;
    await store.put(ticket, { userId, expiresAt: expires }, this.#maxPerUser);
    return { ticket, userId, expiresAt: new Date(expires).toISOString() };
  }

  #purge(now: number): void {
    // Every ticket has the same lifetime, so issue order is expiry order: stop at the first live one.
    const touched = new Set<string>();
    for (const [t, e] of this.#tickets) {
      if (e.expires > now) break;
      this.#tickets.delete(t);
      touched.add(e.userId);
    }
    for (const user of touched) {
      const live = (this.#byUser.get(user) ?? []).filter((t) => this.#tickets.has(t));
      if (live.length === 0) this.#byUser.delete(user);
      else this.#byUser.set(user, live);
    }
  }
}

/** 256 random bits, base64url. */
function newTicket(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}
