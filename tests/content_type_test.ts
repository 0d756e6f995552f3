// The JSON-RPC endpoint's answer to a body that is not JSON by its Content-Type: HTTP 415 with a
// -32005 ContentTypeNotSupportedError body, and what the official SDK client makes of it.

import assert from "node:assert/strict";
import {
  type Client,
  ClientFactory,
  ClientFactoryOptions,
  JsonRpcTransportFactory,
} from "@a2a-js/sdk/client";
import { ContentTypeNotSupportedError, RequestMalformedError } from "@a2a-js/sdk/errors";
import { startServer, TOKENS } from "./helpers.ts";

const DEADLINE_MS = 10_000;

function post(url: string, headers: Record<string, string>): Promise<Response> {
  return fetch(`${url}/a2a/jsonrpc`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKENS.alice}`, "a2a-version": "1.0", ...headers },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ListTasks", params: {} }),
    signal: AbortSignal.timeout(DEADLINE_MS),
  });
}

/** An SDK client whose requests go through `rewrite` on their way out. */
async function sdkClient(
  url: string,
  rewrite: (input: RequestInfo | URL, init: RequestInit) => Promise<Response>,
): Promise<Client> {
  const fetchImpl = (input: RequestInfo | URL, init: RequestInit = {}) => {
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${TOKENS.alice}`);
    return rewrite(input, { ...init, headers, signal: AbortSignal.timeout(DEADLINE_MS) });
  };
  const factory = new ClientFactory(
    ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
      transports: [new JsonRpcTransportFactory({ fetchImpl })],
    }),
  );
  return await factory.createFromUrl(url);
}

const GET_TASK = { tenant: "", id: "x" };

Deno.test("JSON-RPC refuses a non-JSON Content-Type with HTTP 415 and -32005", async () => {
  await using server = startServer();
  for (const headers of [{ "content-type": "text/plain" }, {}, { "content-type": "" }]) {
    const res = await post(server.url, headers);
    assert.equal(res.status, 415, JSON.stringify(headers));
    assert.equal(res.headers.get("accept-post"), "application/json, application/a2a+json");
    assert.equal(res.headers.get("content-type"), "application/json");
    const body = await res.json();
    assert.equal(body.jsonrpc, "2.0");
    assert.equal(body.id, null);
    assert.equal(body.error.code, -32005);
    assert.match(body.error.message, /^Unsupported Content-Type: .*; use application\/json$/);
  }
  for (
    const type of ["application/json; charset=utf-8", "application/a2a+json", "APPLICATION/JSON"]
  ) {
    const res = await post(server.url, { "content-type": type });
    assert.equal(res.status, 200, type);
    assert.deepEqual((await res.json()).result.tasks, []);
  }
});

Deno.test("the SDK client surfaces our 415 answer as ContentTypeNotSupportedError (-32005)", async () => {
  await using server = startServer();
  const client = await sdkClient(server.url, (input, init) => {
    const headers = new Headers(init.headers);
    if (String(input).endsWith("/a2a/jsonrpc")) headers.set("content-type", "text/plain");
    return fetch(input, { ...init, headers });
  });
  const err = await client.getTask(GET_TASK).catch((e) => e);
  assert.ok(err instanceof ContentTypeNotSupportedError, String(err));
  assert.equal((err as { envelopeCode?: number }).envelopeCode, -32005);
  assert.match(err.message, /Unsupported Content-Type: text\/plain/);
});

Deno.test("the SDK client would see the -32600 alternative as a RequestMalformedError, like bad JSON", async () => {
  // What this server answered before, -32600 with HTTP 415: the SDK's client cannot tell it from
  // a malformed request of its own, which is why the endpoint now answers -32005.
  await using server = startServer();
  const client = await sdkClient(server.url, (input, init) => {
    if (!String(input).endsWith("/a2a/jsonrpc")) return fetch(input, init);
    return Promise.resolve(Response.json({
      jsonrpc: "2.0",
      id: null,
      error: {
        code: -32600,
        message: "Unsupported Content-Type: text/plain; use application/json",
      },
    }, { status: 415 }));
  });
  const err = await client.getTask(GET_TASK).catch((e) => e);
  assert.ok(err instanceof RequestMalformedError, String(err));
  assert.ok(!(err instanceof ContentTypeNotSupportedError));
  assert.equal((err as { envelopeCode?: number }).envelopeCode, -32600);
});
