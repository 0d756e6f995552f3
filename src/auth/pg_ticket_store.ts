// One-time tickets in PostgreSQL, on the connections of a PostgresTaskStore: a ticket issued by
// one server process is redeemed exactly once, by any of them.

import { sharedPool, type Sql } from "../tasks/pg_schema.ts";
import type { PostgresTaskStore } from "../tasks/pg_store.ts";
import type { StoredTicket, TicketStore } from "./ticket_store.ts";

/** How many expired tickets one call deletes at most. */
const EXPIRED_BATCH = 100;
/** The class id of the per-user advisory locks that serialize one user's puts. */
const USER_LOCK = 4242;

/**
 * A {@linkcode TicketStore} in the `a2a_tickets` table of a {@linkcode PostgresTaskStore}'s
 * database, sharing its connection pool (and closed with it). `take` is one `DELETE ...
 * RETURNING`, so of any number of concurrent takes of a ticket, on any process, one gets it;
 * `put` drops the user's oldest tickets beyond the limit in the same transaction; expired
 * tickets are deleted as tickets are put and counted, at most 100 at a time.
 *
 * @example Share tickets between server processes
 * ```ts ignore
 * import { PostgresTaskStore, PostgresTicketStore, SessionManager } from "@a2a-capnweb/core";
 *
 * const store = await PostgresTaskStore.connect("postgres://a2a@127.0.0.1:5432/a2a");
 * const sessions = new SessionManager({ verifier, tickets: new PostgresTicketStore(store) });
 * ```
 */
export class PostgresTicketStore implements TicketStore {
  #sql: Sql;

  /**
   * Makes a ticket store on a task store's connections.
   *
   * @param store A connected task store (its schema holds the tickets table).
   * @throws {TypeError} When the store is closed.
   */
  constructor(store: PostgresTaskStore) {
    const sql = sharedPool(store);
    if (sql === undefined) throw new TypeError("Cannot share the task store's pool: it is closed");
    this.#sql = sql;
  }

  /**
   * Saves a ticket, then drops the user's oldest unexpired tickets beyond `maxPerUser` and some
   * expired ones, in one transaction that holds the user's advisory lock: concurrent puts of one
   * user, on any process, leave at most `maxPerUser`.
   */
  async put(ticket: string, entry: StoredTicket, maxPerUser: number): Promise<void> {
    const now = Date.now();
    const keep = Math.max(0, Math.floor(maxPerUser));
    await this.#sql.begin((tx) => [
      tx`SELECT pg_advisory_xact_lock(${USER_LOCK}::integer, hashtext(${entry.userId}))`,
      tx`
        INSERT INTO a2a_tickets (ticket, user_id, expires_at)
        VALUES (${ticket}, ${entry.userId}, ${entry.expiresAt}::float8)`,
      tx`
        DELETE FROM a2a_tickets WHERE ticket IN (
          SELECT ticket FROM a2a_tickets
          WHERE user_id = ${entry.userId} AND expires_at > ${now}::float8
          ORDER BY created DESC OFFSET ${keep}
        )`,
      this.#dropExpired(tx, now),
    ]);
  }

  /** Takes a ticket with one `DELETE ... RETURNING`: exactly one concurrent take gets it. */
  async take(ticket: string): Promise<StoredTicket | undefined> {
    if (ticket.includes("\u0000")) return undefined;
    const rows = await this.#sql<{ user_id: string; expires_at: number }[]>`
      DELETE FROM a2a_tickets WHERE ticket = ${ticket} RETURNING user_id, expires_at`;
    const row = rows[0];
    return row ? { userId: row.user_id, expiresAt: row.expires_at } : undefined;
  }

  /** Counts the unexpired tickets (an index scan), after deleting some expired ones. */
  async count(): Promise<number> {
    const now = Date.now();
    await this.#dropExpired(this.#sql, now);
    const rows = await this.#sql<{ n: number }[]>`
      SELECT count(*)::integer AS n FROM a2a_tickets WHERE expires_at > ${now}::float8`;
    return rows[0]?.n ?? 0;
  }

  #dropExpired(sql: Pick<Sql, "unsafe">, now: number): Promise<unknown> {
    return sql.unsafe(
      `DELETE FROM a2a_tickets WHERE ticket IN (
        SELECT ticket FROM a2a_tickets WHERE expires_at <= $1::float8
        ORDER BY expires_at LIMIT ${EXPIRED_BATCH}
        FOR UPDATE SKIP LOCKED
      )`,
      [now],
      { prepare: true },
    );
  }
}
