// Unit tests of bearer-token verification, one-time tickets and session bookkeeping.

import assert from "node:assert/strict";
import {
  AuthenticationError,
  InvalidParamsError,
  ServiceUnavailableError,
} from "../src/errors/errors.ts";
import { parseTokenList, StaticTokenVerifier } from "../src/auth/tokens.ts";
import { SessionManager } from "../src/auth/sessions.ts";

const verifier = StaticTokenVerifier.fromList("alice=token-a,bob=token-b");

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A resource that counts how often it was disposed. */
function resource(): Disposable & { disposed: number } {
  const r = {
    disposed: 0,
    [Symbol.dispose]() {
      r.disposed++;
    },
  };
  return r;
}

Deno.test("parseTokenList() maps each token to its user", () => {
  const tokens = parseTokenList("alice=token-a,bob=token-b");
  assert.deepEqual([...tokens], [["token-a", "alice"], ["token-b", "bob"]]);
});

Deno.test("parseTokenList() trims whitespace and skips empty entries", () => {
  const tokens = parseTokenList(" alice = token-a ,, bob=token-b , ");
  assert.deepEqual([...tokens], [["token-a", "alice"], ["token-b", "bob"]]);
  assert.equal(parseTokenList("").size, 0);
  assert.equal(parseTokenList(" , ").size, 0);
});

Deno.test("parseTokenList() keeps an equals sign inside a token", () => {
  const tokens = parseTokenList("alice=dG9rZW4=,bob=a=b");
  assert.equal(tokens.get("dG9rZW4="), "alice");
  assert.equal(tokens.get("a=b"), "bob");
});

Deno.test("parseTokenList() allows one user several tokens", () => {
  const tokens = parseTokenList("alice=t1,alice=t2");
  assert.equal(tokens.get("t1"), "alice");
  assert.equal(tokens.get("t2"), "alice");
});

Deno.test("parseTokenList() rejects malformed entries with TypeError", () => {
  for (const spec of ["alice", "alice=", "=token", " = ", "alice=t1,bob", "=", "bob =  "]) {
    assert.throws(() => parseTokenList(spec), TypeError, spec);
  }
});

Deno.test("parseTokenList() does not echo a token in its error message", () => {
  assert.throws(
    () => parseTokenList("alice=secret-token,bob=secret-token"),
    (e: unknown) => {
      assert.ok(e instanceof TypeError);
      assert.match(e.message, /listed twice/);
      assert.doesNotMatch(e.message, /secret-token/);
      return true;
    },
  );
});

Deno.test("parseTokenList() rejects a token listed twice", () => {
  assert.throws(() => parseTokenList("alice=t,bob=t"), TypeError);
  assert.throws(() => parseTokenList("alice=t, alice=t"), TypeError);
});

Deno.test("StaticTokenVerifier.verify() returns the user of a known token", async () => {
  assert.deepEqual(await verifier.verify("token-a"), { userId: "alice" });
  assert.deepEqual(await verifier.verify("token-b"), { userId: "bob" });
});

Deno.test("StaticTokenVerifier.verify() returns undefined for unknown, empty or huge tokens", async () => {
  for (const token of ["token-c", "token-", "token-aa", "TOKEN-A", "", "x".repeat(5000)]) {
    assert.equal(await verifier.verify(token), undefined, token.slice(0, 20));
  }
  assert.equal(await verifier.verify(undefined as unknown as string), undefined);
});

Deno.test("StaticTokenVerifier accepts a record or a map of tokens", async () => {
  const fromRecord = new StaticTokenVerifier({ "t-1": "carol" });
  assert.deepEqual(await fromRecord.verify("t-1"), { userId: "carol" });
  const fromMap = new StaticTokenVerifier(new Map([["t-2", "dave"]]));
  assert.deepEqual(await fromMap.verify("t-2"), { userId: "dave" });
  assert.equal(await fromMap.verify("t-1"), undefined);
});

Deno.test("StaticTokenVerifier.fromList() rejects a malformed list", () => {
  assert.throws(() => StaticTokenVerifier.fromList("alice"), TypeError);
});

Deno.test("SessionManager.issueTicket() issues a ticket for a valid token", async () => {
  const sessions = new SessionManager({ verifier });
  const before = Date.now();
  const ticket = await sessions.issueTicket("token-a");
  assert.equal(ticket.userId, "alice");
  assert.match(ticket.ticket, /^[A-Za-z0-9_-]{43}$/);
  assert.ok(Date.parse(ticket.expiresAt) >= before + 30_000);
  assert.equal(sessions.ticketCount, 1);
});

Deno.test("SessionManager.issueTicket() rejects an invalid token with AuthenticationError", async () => {
  const sessions = new SessionManager({ verifier });
  await assert.rejects(sessions.issueTicket("wrong"), AuthenticationError);
  assert.equal(sessions.ticketCount, 0);
});

Deno.test("SessionManager issues a different ticket each time", async () => {
  const sessions = new SessionManager({ verifier });
  const a = await sessions.issueTicket("token-a");
  const b = await sessions.issueTicket("token-a");
  assert.notEqual(a.ticket, b.ticket);
  assert.equal(sessions.ticketCount, 2);
});

Deno.test("SessionManager.authenticate() accepts a ticket only once", async () => {
  const sessions = new SessionManager({ verifier });
  const { ticket } = await sessions.issueTicket("token-b");
  assert.deepEqual(await sessions.authenticate({ ticket }), { userId: "bob" });
  assert.equal(sessions.ticketCount, 0);
  await assert.rejects(sessions.authenticate({ ticket }), AuthenticationError);
});

Deno.test("SessionManager.authenticate() rejects an unknown ticket with AuthenticationError", async () => {
  const sessions = new SessionManager({ verifier });
  await assert.rejects(sessions.authenticate({ ticket: "made-up" }), AuthenticationError);
  await assert.rejects(sessions.authenticate({ ticket: "" }), AuthenticationError);
});

Deno.test("SessionManager.authenticate() rejects a ticket after ticketTtlMs", async () => {
  const sessions = new SessionManager({ verifier, ticketTtlMs: 1 });
  const { ticket } = await sessions.issueTicket("token-a");
  await sleep(5);
  await assert.rejects(sessions.authenticate({ ticket }), AuthenticationError);
});

Deno.test("SessionManager.ticketCount does not count expired tickets", async () => {
  const sessions = new SessionManager({ verifier, ticketTtlMs: 1 });
  await sessions.issueTicket("token-a");
  await sessions.issueTicket("token-b");
  await sleep(5);
  assert.equal(sessions.ticketCount, 0);
});

Deno.test("SessionManager drops a user's own oldest ticket beyond maxTicketsPerUser, never another user's", async () => {
  const sessions = new SessionManager({ verifier, maxTicketsPerUser: 2 });
  const alice = await sessions.issueTicket("token-a");
  // bob fetches far more tickets than his share: only his own old ones go.
  const bobs = [];
  for (let i = 0; i < 50; i++) bobs.push(await sessions.issueTicket("token-b"));
  assert.equal(sessions.ticketCount, 3);
  assert.deepEqual(await sessions.authenticate({ ticket: alice.ticket }), { userId: "alice" });
  await assert.rejects(sessions.authenticate({ ticket: bobs[0]!.ticket }), AuthenticationError);
  assert.deepEqual(await sessions.authenticate({ ticket: bobs[49]!.ticket }), { userId: "bob" });
});

Deno.test("SessionManager refuses a ticket with ServiceUnavailableError beyond maxTickets in all", async () => {
  const sessions = new SessionManager({ verifier, maxTickets: 2 });
  const first = await sessions.issueTicket("token-a");
  await sessions.issueTicket("token-b");
  await assert.rejects(
    sessions.issueTicket("token-a"),
    (e: unknown) =>
      e instanceof ServiceUnavailableError && /Too many unused tickets/.test(e.message),
  );
  assert.deepEqual(await sessions.authenticate({ ticket: first.ticket }), { userId: "alice" });
  assert.ok(await sessions.issueTicket("token-a"), "a used ticket makes room");
});

Deno.test("SessionManager.authenticate() accepts a valid bearer token", async () => {
  const sessions = new SessionManager({ verifier });
  assert.deepEqual(await sessions.authenticate({ token: "token-a" }), { userId: "alice" });
  // A token is not consumed.
  assert.deepEqual(await sessions.authenticate({ token: "token-a" }), { userId: "alice" });
});

Deno.test("SessionManager.authenticate() rejects a wrong token with AuthenticationError", async () => {
  const sessions = new SessionManager({ verifier });
  await assert.rejects(sessions.authenticate({ token: "token-x" }), (e: unknown) => {
    assert.ok(e instanceof AuthenticationError);
    assert.equal(e.code, -31001);
    return true;
  });
  await assert.rejects(sessions.authenticate({ token: "" }), AuthenticationError);
});

Deno.test("SessionManager.authenticate() refuses both a ticket and a token with InvalidParamsError", async () => {
  const sessions = new SessionManager({ verifier });
  const { ticket } = await sessions.issueTicket("token-a");
  await assert.rejects(
    sessions.authenticate({ ticket, token: "token-a" }),
    InvalidParamsError,
  );
  // The refused call did not use up the ticket.
  assert.deepEqual(await sessions.authenticate({ ticket }), { userId: "alice" });
});

Deno.test("SessionManager.authenticate() refuses a ticket or token that is not a string with InvalidParamsError", async () => {
  const sessions = new SessionManager({ verifier });
  for (const credentials of [{ ticket: 1 }, { token: null }, { token: ["token-a"] }]) {
    await assert.rejects(
      sessions.authenticate(credentials),
      InvalidParamsError,
      JSON.stringify(credentials),
    );
  }
});

Deno.test("SessionManager.authenticate() refuses no credentials with AuthenticationError when a verifier is set", async () => {
  const sessions = new SessionManager({ verifier });
  for (const credentials of [undefined, null, {}, { user: "alice" }]) {
    await assert.rejects(sessions.authenticate(credentials), (e: unknown) => {
      assert.ok(e instanceof AuthenticationError, JSON.stringify(credentials));
      assert.match(e.message, /^Missing credentials: this agent needs \{ ticket \} or \{ token \}/);
      return true;
    });
  }
});

Deno.test("SessionManager.authenticate() refuses credentials that are not an object with InvalidParamsError", async () => {
  const sessions = new SessionManager({ verifier });
  for (const credentials of ["token-a", 42, true, ["token-a"]]) {
    await assert.rejects(sessions.authenticate(credentials), (e: unknown) => {
      assert.ok(e instanceof InvalidParamsError, String(credentials));
      assert.equal(e.code, -32602);
      return true;
    });
  }
});

Deno.test("SessionManager.verifyToken() returns the principal or throws AuthenticationError", async () => {
  const sessions = new SessionManager({ verifier });
  assert.deepEqual(await sessions.verifyToken("token-b"), { userId: "bob" });
  await assert.rejects(sessions.verifyToken("nope"), AuthenticationError);
});

Deno.test("SessionManager.open() counts sessions until they close", () => {
  const sessions = new SessionManager({ verifier });
  const a = sessions.open();
  const b = sessions.open();
  assert.notEqual(a.id, b.id);
  assert.equal(sessions.sessionCount, 2);
  a.close();
  assert.equal(a.closed, true);
  assert.equal(sessions.sessionCount, 1);
  a.close();
  assert.equal(sessions.sessionCount, 1);
  b.close();
  assert.equal(sessions.sessionCount, 0);
});

Deno.test("Session.setPrincipal() records the authenticated user", () => {
  const sessions = new SessionManager({ verifier });
  const session = sessions.open();
  assert.equal(session.principal, undefined);
  session.setPrincipal({ userId: "alice" });
  assert.deepEqual(session.principal, { userId: "alice" });
  session.close();
});

Deno.test("Session.close() releases every tracked resource once", () => {
  const sessions = new SessionManager({ verifier });
  const session = sessions.open();
  const r1 = resource();
  const r2 = resource();
  session.track(r1);
  session.track(r2);
  assert.equal(session.resourceCount, 2);
  assert.equal(sessions.resourceCount, 2);
  session.close();
  session.close();
  assert.equal(r1.disposed, 1);
  assert.equal(r2.disposed, 1);
  assert.equal(session.resourceCount, 0);
  assert.equal(sessions.resourceCount, 0);
  assert.equal(sessions.sessionCount, 0);
});

Deno.test("Session.track() returns a function that stops tracking the resource", () => {
  const sessions = new SessionManager({ verifier });
  const session = sessions.open();
  const early = resource();
  const late = resource();
  const untrack = session.track(early);
  session.track(late);
  untrack();
  assert.equal(session.resourceCount, 1);
  session.close();
  assert.equal(early.disposed, 0);
  assert.equal(late.disposed, 1);
});

Deno.test("Session.track() on a closed session releases the resource at once", () => {
  const sessions = new SessionManager({ verifier });
  const session = sessions.open();
  session.close();
  const r = resource();
  session.track(r);
  assert.equal(r.disposed, 1);
  assert.equal(session.resourceCount, 0);
  assert.equal(sessions.resourceCount, 0);
});

Deno.test("Session.close() releases the other resources when one fails to release", () => {
  const sessions = new SessionManager({ verifier });
  const session = sessions.open();
  const before = resource();
  const after = resource();
  session.track(before);
  session.track({
    [Symbol.dispose]() {
      throw new Error("cannot release");
    },
  });
  session.track(after);
  session.close();
  assert.equal(before.disposed, 1);
  assert.equal(after.disposed, 1);
  assert.equal(sessions.sessionCount, 0);
});

Deno.test("SessionManager.closeAll() closes every session and releases their resources", () => {
  const sessions = new SessionManager({ verifier });
  const resources = [resource(), resource(), resource()];
  for (const r of resources) sessions.open().track(r);
  assert.equal(sessions.sessionCount, 3);
  assert.equal(sessions.resourceCount, 3);
  sessions.closeAll();
  assert.equal(sessions.sessionCount, 0);
  assert.equal(sessions.resourceCount, 0);
  assert.deepEqual(resources.map((r) => r.disposed), [1, 1, 1]);
});
