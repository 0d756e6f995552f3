// JwtVerifier: tokens signed with locally generated keys, a JWKS served on 127.0.0.1, and one
// end-to-end run through the real server and client.

import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { A2AClient } from "../client.ts";
import {
  AuthenticationError,
  JwtVerifier,
  type JwtVerifierOptions,
  type PublicJwk,
  ServiceUnavailableError,
} from "../mod.ts";
import { startServer, userMessage } from "./helpers.ts";

const ISSUER = "https://issuer.test";
const AUDIENCE = "a2a-test";

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  jwk: PublicJwk;
}

async function signingKey(kid: string, alg = "ES256"): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg);
  const jwk = await exportJWK(publicKey);
  return { kid, privateKey, jwk: { ...jwk, kty: jwk.kty ?? "EC", kid, alg, use: "sig" } };
}

interface JwksServer extends AsyncDisposable {
  url: string;
  keys: PublicJwk[];
  fetches: number;
}

function serveJwks(keys: PublicJwk[]): JwksServer {
  const state = { keys, fetches: 0 };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    state.fetches++;
    return Response.json({ keys: state.keys });
  });
  return Object.assign(state, {
    url: `http://127.0.0.1:${server.addr.port}/jwks.json`,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  });
}

function sign(
  key: SigningKey,
  claims: Record<string, unknown> = { sub: "alice" },
  edit: (jwt: SignJWT) => SignJWT = (jwt) => jwt,
): Promise<string> {
  const jwt = new SignJWT(claims)
    .setProtectedHeader({ alg: "ES256", kid: key.kid })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime("5m");
  return edit(jwt).sign(key.privateKey);
}

function b64url(value: unknown): string {
  return btoa(JSON.stringify(value)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function remote(jwks: JwksServer, extra: Partial<JwtVerifierOptions> = {}) {
  return new JwtVerifier({ jwksUrl: jwks.url, issuer: ISSUER, audience: AUDIENCE, ...extra });
}

async function refused(promise: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof AuthenticationError, String(e));
    assert.equal(e.code, -31001);
    assert.match(e.message, message);
    return true;
  });
}

Deno.test("JwtVerifier.verify() returns the user of a good token from a JWKS", async () => {
  const key = await signingKey("k1");
  await using jwks = serveJwks([key.jwk]);
  const verifier = remote(jwks);
  assert.deepEqual(await verifier.verify(await sign(key)), { userId: "alice" });
  assert.deepEqual(await verifier.verify(await sign(key, { sub: "bob" })), { userId: "bob" });
  assert.equal(jwks.fetches, 1, "the key set is cached");
});

Deno.test("JwtVerifier.verify() refuses an expired token, within no more than the clock skew", async () => {
  const key = await signingKey("k1");
  await using jwks = serveJwks([key.jwk]);
  const verifier = remote(jwks);
  const now = Math.floor(Date.now() / 1000);
  const expired = await sign(key, { sub: "alice" }, (j) => j.setExpirationTime(now - 120));
  await refused(verifier.verify(expired), /^Invalid token: expired$/);
  const justExpired = await sign(key, { sub: "alice" }, (j) => j.setExpirationTime(now - 5));
  assert.deepEqual(await verifier.verify(justExpired), { userId: "alice" });
  await refused(remote(jwks, { clockSkewSeconds: 0 }).verify(justExpired), /expired/);
});

Deno.test("JwtVerifier.verify() refuses a token without an expiry", async () => {
  const key = await signingKey("k1");
  const verifier = new JwtVerifier({ keys: key.jwk, issuer: ISSUER, audience: AUDIENCE });
  const token = await new SignJWT({ sub: "alice" })
    .setProtectedHeader({ alg: "ES256" })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .sign(key.privateKey);
  await refused(verifier.verify(token), /^Invalid token: no expiry$/);
});

Deno.test("JwtVerifier.verify() refuses a wrong audience or issuer", async () => {
  const key = await signingKey("k1");
  await using jwks = serveJwks([key.jwk]);
  const verifier = remote(jwks);
  await refused(
    verifier.verify(await sign(key, { sub: "alice" }, (j) => j.setAudience("other"))),
    /^Invalid token: wrong audience$/,
  );
  await refused(
    verifier.verify(await sign(key, { sub: "alice" }, (j) => j.setIssuer("https://evil.test"))),
    /^Invalid token: wrong issuer$/,
  );
});

Deno.test("JwtVerifier.verify() refuses an unsigned alg none token", async () => {
  const key = await signingKey("k1");
  await using jwks = serveJwks([key.jwk]);
  const exp = Math.floor(Date.now() / 1000) + 300;
  const payload = { sub: "alice", iss: ISSUER, aud: AUDIENCE, exp };
  for (const header of [{ alg: "none" }, { alg: "none", kid: "k1" }, { alg: "NONE" }]) {
    const token = `${b64url(header)}.${b64url(payload)}.`;
    await refused(remote(jwks).verify(token), /^Invalid token: /);
  }
});

Deno.test("JwtVerifier.verify() refuses HS256 signed with the public key's bytes", async () => {
  const key = await signingKey("k1");
  await using jwks = serveJwks([key.jwk]);
  const verifier = remote(jwks);
  for (const secret of [JSON.stringify(key.jwk), String(key.jwk["x"])]) {
    const token = await new SignJWT({ sub: "mallory" })
      .setProtectedHeader({ alg: "HS256", kid: "k1" })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode(secret));
    await refused(verifier.verify(token), /^Invalid token: algorithm not allowed$/);
  }
  // Given keys too.
  const given = new JwtVerifier({ keys: key.jwk, issuer: ISSUER, audience: AUDIENCE });
  const token = await new SignJWT({ sub: "mallory" })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setExpirationTime("5m")
    .sign(new TextEncoder().encode(JSON.stringify(key.jwk)));
  await refused(given.verify(token), /^Invalid token: algorithm not allowed$/);
});

Deno.test("JwtVerifier.verify() refuses an unknown kid after refetching the key set", async () => {
  const key = await signingKey("k1");
  const stranger = await signingKey("k-unknown");
  await using jwks = serveJwks([key.jwk]);
  const verifier = remote(jwks, { jwksCooldownMs: 0 });
  assert.deepEqual(await verifier.verify(await sign(key)), { userId: "alice" });
  assert.equal(jwks.fetches, 1);
  await refused(verifier.verify(await sign(stranger)), /^Invalid token: unknown signing key$/);
  assert.equal(jwks.fetches, 2, "an unknown kid triggers one refetch");
});

Deno.test("JwtVerifier.verify() does not refetch for an unknown kid during the cooldown", async () => {
  const key = await signingKey("k1");
  const stranger = await signingKey("k-unknown");
  await using jwks = serveJwks([key.jwk]);
  const verifier = remote(jwks);
  await verifier.verify(await sign(key));
  for (let i = 0; i < 5; i++) await refused(verifier.verify(await sign(stranger)), /unknown/);
  assert.equal(jwks.fetches, 1);
});

Deno.test("JwtVerifier.verify() picks up a rotated key added to the JWKS", async () => {
  const old = await signingKey("k1");
  const next = await signingKey("k2");
  await using jwks = serveJwks([old.jwk]);
  const verifier = remote(jwks, { jwksCooldownMs: 0 });
  assert.deepEqual(await verifier.verify(await sign(old)), { userId: "alice" });
  jwks.keys = [old.jwk, next.jwk];
  assert.deepEqual(await verifier.verify(await sign(next, { sub: "bob" })), { userId: "bob" });
  assert.deepEqual(await verifier.verify(await sign(old)), { userId: "alice" });
  assert.equal(jwks.fetches, 2);
});

Deno.test("JwtVerifier.verify() refuses a token without the user claim", async () => {
  const key = await signingKey("k1");
  await using jwks = serveJwks([key.jwk]);
  await refused(remote(jwks).verify(await sign(key, {})), /^Invalid token: no sub claim$/);
  await refused(remote(jwks).verify(await sign(key, { sub: "" })), /no sub claim/);
  await refused(remote(jwks).verify(await sign(key, { sub: 42 })), /no sub claim/);
  const byEmail = remote(jwks, { userClaim: "email" });
  assert.deepEqual(
    await byEmail.verify(await sign(key, { sub: "1", email: "a@example.com" })),
    { userId: "a@example.com" },
  );
  await refused(byEmail.verify(await sign(key)), /^Invalid token: no email claim$/);
});

Deno.test("JwtVerifier.verify() refuses garbage, a bad signature and oversized tokens", async () => {
  const key = await signingKey("k1");
  const verifier = new JwtVerifier({ keys: key.jwk, issuer: ISSUER, audience: AUDIENCE });
  await refused(verifier.verify("not.a.jwt"), /^Invalid token/);
  await refused(verifier.verify(""), /malformed/);
  await refused(verifier.verify("a".repeat(10_000)), /malformed/);
  const good = await sign(key);
  const [header, , signature] = good.split(".");
  const forged = `${header}.${
    b64url({ sub: "root", iss: ISSUER, aud: AUDIENCE, exp: 2e9 })
  }.${signature}`;
  await refused(verifier.verify(forged), /^Invalid token: bad signature$/);
  await assert.rejects(verifier.verify(forged), (e: unknown) => {
    assert.ok(e instanceof Error && !e.message.includes(forged.slice(0, 20)));
    return true;
  });
});

Deno.test("JwtVerifier accepts given CryptoKeys and several JWKs", async () => {
  const a = await signingKey("ka");
  const b = await signingKey("kb");
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  const single = new JwtVerifier({ keys: publicKey, issuer: ISSUER, audience: AUDIENCE });
  const token = await sign({ kid: "any", privateKey, jwk: { kty: "EC" } });
  assert.deepEqual(await single.verify(token), { userId: "alice" });
  const both = new JwtVerifier({ keys: [a.jwk, b.jwk], issuer: ISSUER, audience: AUDIENCE });
  assert.deepEqual(await both.verify(await sign(b)), { userId: "alice" });
  await refused(both.verify(token), /unknown signing key/);
});

Deno.test("JwtVerifier.verify() answers ServiceUnavailableError when the key set cannot be fetched", async () => {
  const key = await signingKey("k1");
  const jwks = serveJwks([key.jwk]);
  const url = jwks.url;
  await jwks[Symbol.asyncDispose]();
  const verifier = new JwtVerifier({ jwksUrl: url, issuer: ISSUER, audience: AUDIENCE });
  await assert.rejects(verifier.verify(await sign(key)), ServiceUnavailableError);
});

Deno.test("new JwtVerifier() rejects unsafe or incomplete options", async () => {
  const key = await signingKey("k1");
  const { privateKey } = await generateKeyPair("ES256");
  const base = { jwksUrl: "https://issuer.test/jwks", issuer: ISSUER, audience: AUDIENCE };
  const bad = [
    { ...base, algorithms: ["none"] },
    { ...base, algorithms: ["RS256", "HS256"] },
    { ...base, algorithms: [] },
    { ...base, issuer: "" },
    { ...base, audience: [] },
    { ...base, jwksUrl: "http://issuer.test/jwks" },
    { ...base, keys: key.jwk },
    { issuer: ISSUER, audience: AUDIENCE },
    { issuer: ISSUER, audience: AUDIENCE, keys: privateKey },
    { issuer: ISSUER, audience: AUDIENCE, keys: { kty: "oct", k: "c2VjcmV0" } },
    { issuer: ISSUER, audience: AUDIENCE, keys: { ...key.jwk, d: "x" } },
  ];
  for (const options of bad) {
    assert.throws(() => new JwtVerifier(options), TypeError, JSON.stringify(options));
  }
});

Deno.test("serve() with a JwtVerifier serves a client with a JWT and refuses a bad one", async () => {
  const key = await signingKey("k1");
  const stranger = await signingKey("k1");
  await using jwks = serveJwks([key.jwk]);
  await using server = startServer({ verifier: remote(jwks) });
  {
    await using client = await A2AClient.connect(server.url, { token: await sign(key) });
    const result = await client.sendMessage({ message: userMessage("hello jwt") });
    assert.equal(result.task?.status.state, "TASK_STATE_COMPLETED");
    const text = result.task?.artifacts?.map((a) => a.parts.map((p) => p.text).join("")).join("");
    assert.match(text ?? "", /hello jwt/);
  }
  await assert.rejects(
    A2AClient.connect(server.url, { token: await sign(stranger) }),
    (e: unknown) => {
      assert.ok(e instanceof AuthenticationError);
      assert.equal(e.code, -31001);
      return true;
    },
  );
});
