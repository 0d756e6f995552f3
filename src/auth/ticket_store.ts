// Where one-time tickets live when several server processes share them: a ticket issued by one
// process is redeemed exactly once, by any process.

/** A ticket as a TicketStore keeps it. */
export interface StoredTicket {
  /** The user it authenticates as. */
  userId: string;
  /** When it stops being accepted, in milliseconds since the epoch. */
  expiresAt: number;
}

/** Storage of unused tickets, shared by the processes that accept them. */
export interface TicketStore {
  /**
   * Saves a new unused ticket. Afterwards the user holds at most `maxPerUser` unused, unexpired
   * tickets: the user's oldest are dropped (never another user's).
   *
   * @param ticket The ticket (random, 256 bits).
   * @param entry Its user and expiry.
   * @param maxPerUser How many unused tickets the user may hold.
   */
  put(ticket: string, entry: StoredTicket, maxPerUser: number): Promise<void>;
  /**
   * Takes a ticket: removes it and returns what was stored, or undefined when there is no such
   * ticket. Atomic: of any number of concurrent takes of one ticket, on any process, exactly one
   * gets it. Expired tickets may be returned (the caller checks `expiresAt`) or dropped.
   *
   * @param ticket The ticket.
   * @returns The stored entry, or undefined.
   */
  take(ticket: string): Promise<StoredTicket | undefined>;
  /** How many unused, unexpired tickets exist in all. */
  count(): Promise<number>;
}
