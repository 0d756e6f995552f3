// The agent card's cache validators: ETag, Last-Modified (stable for the card's content) and the
// 304 answers to If-None-Match and If-Modified-Since.

import assert from "node:assert/strict";
import { createHandler, StaticTokenVerifier } from "../mod.ts";
import { demoAgent, demoAgentCard } from "../src/demo/agent.ts";
import type { A2AHandler } from "../server.ts";

const CARD = "/.well-known/agent-card.json";

/** A bare handler (no sockets: the card needs none) that `await using` closes. */
function handler(): A2AHandler & AsyncDisposable {
  const h = createHandler({
    agentCard: demoAgentCard,
    executor: demoAgent,
    verifier: StaticTokenVerifier.fromList("alice=token-alice"),
  });
  return Object.assign(h, { [Symbol.asyncDispose]: () => h.close() });
}

async function getCard(
  h: A2AHandler,
  headers: Record<string, string> = {},
  { origin = "http://agent.example", method = "GET" } = {},
): Promise<Response> {
  return await h(new Request(`${origin}${CARD}`, { method, headers }));
}

Deno.test("the agent card has Last-Modified, the same for every origin and request", async () => {
  const before = Math.floor(Date.now() / 1000) * 1000;
  await using h = handler();
  const after = Date.now();
  const a = await getCard(h);
  const b = await getCard(h, {}, { origin: "http://other.example" });
  const c = await getCard(h, {}, { method: "HEAD" });
  for (const res of [a, b, c]) {
    assert.equal(res.status, 200);
    await res.body?.cancel();
  }
  const modified = a.headers.get("last-modified")!;
  assert.match(modified, /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
  assert.ok(Date.parse(modified) >= before && Date.parse(modified) <= after, modified);
  assert.equal(b.headers.get("last-modified"), modified);
  assert.equal(c.headers.get("last-modified"), modified);
  // The content differs by origin (its URLs), so the ETag does.
  assert.notEqual(a.headers.get("etag"), b.headers.get("etag"));
  assert.equal(a.headers.get("cache-control"), "public, max-age=300");
});

Deno.test("If-Modified-Since at or after Last-Modified gets 304, earlier or invalid gets the card", async () => {
  await using h = handler();
  const first = await getCard(h);
  await first.body?.cancel();
  const modified = first.headers.get("last-modified")!;
  const etag = first.headers.get("etag")!;
  const at = Date.parse(modified);
  const cases: [string, number][] = [
    [modified, 304],
    [new Date(at + 60_000).toUTCString(), 304],
    [new Date(at - 1000).toUTCString(), 200],
    ["not a date", 200],
  ];
  for (const [since, status] of cases) {
    const res = await getCard(h, { "if-modified-since": since });
    assert.equal(res.status, status, since);
    if (status === 304) {
      assert.equal(await res.text(), "");
      assert.equal(res.headers.get("etag"), etag);
      assert.equal(res.headers.get("last-modified"), modified);
      assert.equal(res.headers.get("cache-control"), "public, max-age=300");
    } else {
      assert.equal((await res.json()).name, demoAgentCard.name);
    }
  }
});

Deno.test("If-None-Match decides alone when it is sent, whatever If-Modified-Since says", async () => {
  await using h = handler();
  const first = await getCard(h);
  await first.body?.cancel();
  const modified = first.headers.get("last-modified")!;
  const etag = first.headers.get("etag")!;
  const stale = await getCard(h, { "if-none-match": '"other"', "if-modified-since": modified });
  assert.equal(stale.status, 200);
  await stale.body?.cancel();
  const fresh = await getCard(h, {
    "if-none-match": etag,
    "if-modified-since": new Date(0).toUTCString(),
  });
  assert.equal(fresh.status, 304);
  await fresh.body?.cancel();
});
