// The browser bundle (src/client/browser_bundle.ts, from `deno task bundle`) and what the server
// serves to browsers: the bundle at /a2a/client.js and the demo page at /.

import assert from "node:assert/strict";
import { createHandler, StaticTokenVerifier } from "../mod.ts";
import { CLIENT_BUNDLE } from "../src/client/browser_bundle.ts";
import { demoAgent, demoAgentCard } from "../src/demo/agent.ts";
import type { HandlerOptions } from "../src/http/handler.ts";
import { buildClientBundle, gzippedSize } from "../scripts/bundle.ts";

/** The most the bundle may weigh, gzipped (issue 13). */
const MAX_GZIPPED_BYTES = 50 * 1024;

function handler(options: Partial<HandlerOptions> = {}) {
  return createHandler({
    agentCard: demoAgentCard,
    executor: demoAgent,
    verifier: StaticTokenVerifier.fromList("alice=token-alice"),
    ...options,
  });
}

Deno.test("the committed browser bundle is what deno task bundle builds from the sources", async () => {
  const fresh = await buildClientBundle();
  assert.ok(
    fresh.trimEnd() === CLIENT_BUNDLE,
    "src/client/browser_bundle.ts is out of date: run `deno task bundle`",
  );
});

Deno.test("the browser bundle is at most 50 KB gzipped, without zod and without the CLI", async () => {
  const size = await gzippedSize(CLIENT_BUNDLE);
  assert.ok(size <= MAX_GZIPPED_BYTES, `the bundle is ${size} bytes gzipped`);
  // zod's messages, which its locale files and schemas carry.
  assert.ok(!CLIENT_BUNDLE.includes("Invalid input"), "zod is in the bundle");
  assert.ok(!CLIENT_BUNDLE.includes("Usage: deno run"), "the CLI is in the bundle");
  assert.match(CLIENT_BUNDLE, /export\{[^}]*\bas A2AClient\b/);
});

Deno.test("GET /a2a/client.js serves the bundle gzipped, with an ETag, revalidated and CORS-open", async () => {
  const handle = handler();
  const res = await handle(
    new Request("http://localhost/a2a/client.js", {
      headers: { "accept-encoding": "gzip, deflate, br", origin: "http://elsewhere.test" },
    }),
  );
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/javascript; charset=utf-8");
  assert.equal(res.headers.get("content-encoding"), "gzip");
  assert.equal(res.headers.get("cache-control"), "public, no-cache");
  assert.equal(res.headers.get("access-control-allow-origin"), "*");
  assert.match(res.headers.get("vary") ?? "", /Accept-Encoding/);
  const etag = res.headers.get("etag");
  assert.match(etag ?? "", /^"[0-9a-f]{32}"$/);
  const body = res.body!.pipeThrough(new DecompressionStream("gzip"));
  assert.equal(await new Response(body).text(), CLIENT_BUNDLE);

  const plain = await handle(new Request("http://localhost/a2a/client.js"));
  assert.equal(plain.headers.get("content-encoding"), null);
  assert.equal(await plain.text(), CLIENT_BUNDLE);

  const again = await handle(
    new Request("http://localhost/a2a/client.js", { headers: { "if-none-match": etag! } }),
  );
  assert.equal(again.status, 304);
  assert.equal(again.body, null);

  const post = await handle(new Request("http://localhost/a2a/client.js", { method: "POST" }));
  assert.equal(post.status, 405);
  await post.body?.cancel();
  await handle.close();
});

Deno.test("GET / is the demo page only when demoPage is on, under the base path", async () => {
  const off = handler();
  const none = await off(new Request("http://localhost/"));
  assert.equal(none.status, 404);
  await none.body?.cancel();
  await off.close();

  const on = handler({ demoPage: { token: "token-alice" }, basePath: "/agents/echo" });
  for (const path of ["/agents/echo", "/agents/echo/"]) {
    const res = await on(new Request(`http://localhost${path}`));
    assert.equal(res.status, 200, path);
    assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
    assert.match(res.headers.get("content-security-policy") ?? "", /default-src 'none'/);
    const html = await res.text();
    assert.match(html, /from "\/agents\/echo\/a2a\/client\.js"/);
    assert.match(html, /value="token-alice"/);
  }
  const bundle = await on(new Request("http://localhost/agents/echo/a2a/client.js"));
  assert.equal(bundle.status, 200);
  await bundle.body?.cancel();
  await on.close();
});
