// One-time tickets for clients that cannot send headers (browsers opening a WebSocket), and the
// bookkeeping of live sessions and the capabilities each one holds.

import {
  AuthenticationError,
  InvalidParamsError,
  ServiceUnavailableError,
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

/** The credentials `authenticate` accepts: a one-time ticket or a bearer token. */
export type Credentials = { ticket: string } | { token: string };

/** Options of a SessionManager. */
export interface SessionManagerOptions {
  /** Checks bearer tokens. */
  verifier: TokenVerifier;
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
  #verifier: TokenVerifier;
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
    this.#ttl = options.ticketTtlMs ?? 30_000;
    this.#maxTickets = options.maxTickets ?? 100_000;
    this.#maxPerUser = options.maxTicketsPerUser ?? 100;
    this.#throttle = options.throttle ?? new AuthThrottle();
    this.#shared = options.tickets;
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
   * Verifies a bearer token.
   *
   * @param token The token.
   * @param address The client's address, for the failed-login throttle (unknown when absent).
   * @returns The principal.
   * @throws {AuthenticationError} When the token is not valid.
   * @throws {RateLimitedError} When the address made too many failed attempts.
   */
  async verifyToken(token: string, address?: string): Promise<Principal> {
    this.#throttle.check(address);
    let principal: Principal | undefined;
    try {
      principal = await this.#verifier.verify(token);
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
   */
  async issueTicket(token: string, address?: string): Promise<Ticket> {
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
   * Authenticates with a ticket (consumed, whatever the outcome) or a bearer token.
   *
   * @param credentials `{ ticket }` or `{ token }`.
   * @param address The client's address, for the failed-login throttle.
   * @returns The principal.
   * @throws {AuthenticationError} When the credentials are not valid.
   * @throws {RateLimitedError} When the address made too many failed attempts.
   */
  async authenticate(credentials: unknown, address?: string): Promise<Principal> {
    if (typeof credentials !== "object" || credentials === null) {
      throw new InvalidParamsError("Invalid params: expected { ticket } or { token }", [
        { field: "(params)", description: "expected { ticket } or { token }" },
      ]);
    }
    const { ticket, token } = credentials as { ticket?: unknown; token?: unknown };
    if (typeof ticket === "string" && token === undefined) {
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
    if (typeof token === "string" && ticket === undefined) {
      return await this.verifyToken(token, address);
    }
    throw new InvalidParamsError("Invalid params: expected exactly one of ticket or token", [
      { field: "(params)", description: "expected exactly one of ticket or token" },
    ]);
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
