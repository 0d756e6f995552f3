// The client's address behind reverse proxies: X-Forwarded-For and Forwarded are believed only
// from trusted proxies, and only up to the right-most hop that is not one.

import assert from "node:assert/strict";
import { trustedProxyAddress } from "../mod.ts";
import { startServer, TOKENS } from "./helpers.ts";

function from(peer: string | undefined, headers: Record<string, string> = {}) {
  return {
    req: new Request("http://agent.example/", { headers }),
    info: peer === undefined ? undefined : { remoteAddr: { hostname: peer } },
  };
}

Deno.test("trustedProxyAddress() ignores the header of a request that is not from a proxy", () => {
  const address = trustedProxyAddress(["10.0.0.0/8"]);
  const { req, info } = from("203.0.113.5", { "x-forwarded-for": "198.51.100.1" });
  assert.equal(address(req, info), "203.0.113.5");
  assert.equal(address(from(undefined).req, undefined), undefined);
});

Deno.test("trustedProxyAddress() takes the right-most hop that is not a trusted proxy", () => {
  const address = trustedProxyAddress(["10.0.0.0/8", "192.168.1.1"]);
  // The client claims 1.1.1.1; the edge proxy saw 203.0.113.7; an inner proxy is 192.168.1.1.
  const { req, info } = from("10.1.2.3", {
    "x-forwarded-for": "1.1.1.1, 203.0.113.7, 192.168.1.1",
  });
  assert.equal(address(req, info), "203.0.113.7");
  // Several header lines are one list.
  const lines = new Headers();
  lines.append("x-forwarded-for", "1.1.1.1");
  lines.append("x-forwarded-for", "203.0.113.8");
  assert.equal(
    address(new Request("http://agent.example/", { headers: lines }), info),
    "203.0.113.8",
  );
});

Deno.test("trustedProxyAddress() falls back to the nearest trusted hop", () => {
  const address = trustedProxyAddress(["10.0.0.0/8"]);
  // No header: the proxy itself.
  assert.equal(address(from("10.0.0.9").req, from("10.0.0.9").info), "10.0.0.9");
  // Every hop trusted: the left-most.
  const all = from("10.0.0.9", { "x-forwarded-for": "10.0.0.1, 10.0.0.2" });
  assert.equal(address(all.req, all.info), "10.0.0.1");
  // A hop that is no address stops the walk at the hop that wrote it.
  const junk = from("10.0.0.9", { "x-forwarded-for": "198.51.100.1, unknown, 10.0.0.2" });
  assert.equal(address(junk.req, junk.info), "10.0.0.2");
  const empty = from("10.0.0.9", { "x-forwarded-for": "" });
  assert.equal(address(empty.req, empty.info), "10.0.0.9");
});

Deno.test("trustedProxyAddress() reads IPv6, ports and IPv4-mapped addresses canonically", () => {
  const address = trustedProxyAddress(["::1", "fd00::/8"]);
  const v6 = from("::1", { "x-forwarded-for": "2001:DB8:0:0:0:0:0:1" });
  assert.equal(address(v6.req, v6.info), "2001:db8::1");
  const mapped = from("::ffff:203.0.113.4");
  assert.equal(address(mapped.req, mapped.info), "203.0.113.4");
  const inner = from("fd12::5", { "x-forwarded-for": "[2001:db8::2]:4711, 203.0.113.9:80" });
  assert.equal(address(inner.req, inner.info), "203.0.113.9");
  // An IPv4 range does not match an IPv6 peer.
  const other = trustedProxyAddress(["0.0.0.0/0"]);
  const peer6 = from("2001:db8::7", { "x-forwarded-for": "198.51.100.1" });
  assert.equal(other(peer6.req, peer6.info), "2001:db8::7");
});

Deno.test("trustedProxyAddress() reads the for= of a Forwarded header when told to", () => {
  const address = trustedProxyAddress(["10.0.0.1"], { header: "forwarded" });
  const { req, info } = from("10.0.0.1", {
    forwarded: 'for=198.51.100.3;proto=https, for="[2001:db8::9]:1234";by=10.0.0.1',
    "x-forwarded-for": "1.1.1.1",
  });
  assert.equal(address(req, info), "2001:db8::9");
  // An obfuscated identifier is no address: the proxy's own then.
  const hidden = from("10.0.0.1", { forwarded: "for=_hidden" });
  assert.equal(address(hidden.req, hidden.info), "10.0.0.1");
  // Under the default header, Forwarded is ignored.
  const xff = trustedProxyAddress(["10.0.0.1"]);
  const both = from("10.0.0.1", { forwarded: "for=198.51.100.3" });
  assert.equal(xff(both.req, both.info), "10.0.0.1");
});

Deno.test("trustedProxyAddress() matches CIDR ranges bit by bit", () => {
  const address = trustedProxyAddress(["172.16.0.0/12"]);
  const inside = from("172.31.255.254", { "x-forwarded-for": "198.51.100.1" });
  assert.equal(address(inside.req, inside.info), "198.51.100.1");
  const outside = from("172.32.0.1", { "x-forwarded-for": "198.51.100.1" });
  assert.equal(address(outside.req, outside.info), "172.32.0.1");
});

Deno.test("trustedProxyAddress() refuses an entry that is not an address or range", () => {
  for (const entry of ["nginx", "10.0.0.0/33", "10.0.0.0/8/1", "::1/129", "1.2.3", ""]) {
    assert.throws(() => trustedProxyAddress([entry]), /^TypeError: Invalid trusted proxy: /);
  }
});

Deno.test("createHandler({ trustedProxies }) counts per-address limits by the forwarded address", async () => {
  await using server = startServer({
    trustedProxies: ["127.0.0.1"],
    limits: { authFailureBurst: 2, authFailuresPerMinute: 1 },
  });
  const ticket = (forwarded: string, token = "wrong") =>
    fetch(`${server.url}/a2a/auth`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "x-forwarded-for": forwarded },
    });
  // Two failures use up 198.51.100.1's burst; the third is throttled, not merely refused.
  for (const status of [401, 401, 429]) {
    const res = await ticket("198.51.100.1");
    await res.body?.cancel();
    assert.equal(res.status, status);
  }
  // Another forwarded client is not throttled by the first one's failures.
  const other = await ticket("198.51.100.2", TOKENS.alice);
  assert.equal(other.status, 200);
  await other.body?.cancel();
});
