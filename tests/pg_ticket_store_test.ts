// PostgresTicketStore: one-time tickets shared by server processes, on a throwaway PostgreSQL
// cluster. A ticket is taken once however many processes race for it; a user's oldest go first.

import assert from "node:assert/strict";
import { PostgresTicketStore } from "../src/auth/pg_ticket_store.ts";
import { SessionManager } from "../src/auth/sessions.ts";
import { StaticTokenVerifier } from "../src/auth/tokens.ts";
import { PostgresTaskStore } from "../src/tasks/pg_store.ts";
import { freshDatabase, PG_TEST } from "./pg_cluster.ts";

/** Two task stores on one fresh database (two processes), with a ticket store on each. */
async function twoProcesses() {
  const url = await freshDatabase();
  if (url === undefined) throw new Error("PostgreSQL is not available");
  const stores = await Promise.all([
    PostgresTaskStore.connect(url),
    PostgresTaskStore.connect(url),
  ]);
  return {
    tickets: stores.map((s) => new PostgresTicketStore(s)) as [
      PostgresTicketStore,
      PostgresTicketStore,
    ],
    async [Symbol.asyncDispose]() {
      await Promise.all(stores.map((s) => s.close()));
    },
  };
}

function pgTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name: `PostgresTicketStore ${name}`, ...PG_TEST, fn });
}

const HOUR = 3_600_000;

pgTest("take() returns a ticket put on another process, once", async () => {
  await using p = await twoProcesses();
  const [a, b] = p.tickets;
  const expiresAt = Date.now() + HOUR;
  await a.put("t1", { userId: "alice", expiresAt }, 10);
  assert.equal(await b.count(), 1);
  assert.deepEqual(await b.take("t1"), { userId: "alice", expiresAt });
  assert.equal(await a.take("t1"), undefined);
  assert.equal(await b.take("never"), undefined);
  assert.equal(await b.take("nul\u0000"), undefined);
  assert.equal(await a.count(), 0);
});

pgTest("a ticket taken concurrently by 20 takers on two processes is taken once", async () => {
  await using p = await twoProcesses();
  const [a, b] = p.tickets;
  for (let round = 0; round < 5; round++) {
    const ticket = `ticket-${round}`;
    await a.put(ticket, { userId: "alice", expiresAt: Date.now() + HOUR }, 10);
    const takes = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).take(ticket)),
    );
    assert.equal(takes.filter((t) => t !== undefined).length, 1, `round ${round}`);
  }
});

pgTest("put() keeps a user's newest maxPerUser tickets, never another user's", async () => {
  await using p = await twoProcesses();
  const [a, b] = p.tickets;
  const expiresAt = Date.now() + HOUR;
  await a.put("bob-1", { userId: "bob", expiresAt }, 3);
  for (let i = 0; i < 5; i++) {
    await (i % 2 === 0 ? a : b).put(`alice-${i}`, { userId: "alice", expiresAt }, 3);
  }
  assert.equal(await a.count(), 4);
  for (const gone of ["alice-0", "alice-1"]) assert.equal(await b.take(gone), undefined, gone);
  for (const kept of ["alice-2", "alice-3", "alice-4", "bob-1"]) {
    assert.ok(await b.take(kept), kept);
  }
  // Concurrent puts of one user on both processes still leave at most maxPerUser.
  await Promise.all(
    Array.from(
      { length: 20 },
      (_, i) => (i % 2 === 0 ? a : b).put(`c-${i}`, { userId: "carol", expiresAt }, 4),
    ),
  );
  assert.equal(await a.count(), 4);
});

pgTest("expired tickets are not counted, and are deleted as tickets are put", async () => {
  await using p = await twoProcesses();
  const [a, b] = p.tickets;
  for (let i = 0; i < 5; i++) {
    await a.put(`old-${i}`, { userId: `u${i}`, expiresAt: Date.now() - 1 }, 10);
  }
  assert.equal(await b.count(), 0);
  await b.put("new", { userId: "alice", expiresAt: Date.now() + HOUR }, 10);
  assert.equal(await a.count(), 1);
  // The expired ones are gone, not just uncounted: a take finds none.
  for (let i = 0; i < 5; i++) assert.equal(await a.take(`old-${i}`), undefined);
});

pgTest("a SessionManager on it redeems a ticket issued by another process once", async () => {
  await using p = await twoProcesses();
  const verifier = StaticTokenVerifier.fromList("alice=token-a");
  const issuer = new SessionManager({ verifier, tickets: p.tickets[0] });
  const redeemer = new SessionManager({ verifier, tickets: p.tickets[1] });
  const { ticket, userId } = await issuer.issueTicket("token-a");
  assert.equal(userId, "alice");
  assert.deepEqual(await redeemer.authenticate({ ticket }), { userId: "alice" });
  await assert.rejects(() => issuer.authenticate({ ticket }), /already used ticket/);
});

pgTest("the constructor refuses a closed task store with TypeError", async () => {
  const url = (await freshDatabase())!;
  const store = await PostgresTaskStore.connect(url);
  await store.close();
  assert.throws(() => new PostgresTicketStore(store), TypeError);
});
