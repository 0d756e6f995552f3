// A WebSocket that never authenticates is closed after `limits.authTimeoutMs`, while a client
// that authenticated keeps being served.

import assert from "node:assert/strict";
import { WebSocket } from "ws";
import { A2AClient } from "../client.ts";
import { startServer, TOKENS, userMessage } from "./helpers.ts";

Deno.test("a WebSocket that does not authenticate within authTimeoutMs is closed with 1008", async () => {
  await using server = startServer({ limits: { authTimeoutMs: 200 } });
  await using healthy = await A2AClient.connect(server.url, { token: TOKENS.alice });
  const url = `${server.url.replace(/^http/, "ws")}/a2a/capnweb`;
  const idle = new WebSocket(url);
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    idle.on(
      "close",
      (code: number, reason: Uint8Array) =>
        resolve({ code, reason: new TextDecoder().decode(reason) }),
    )
  );
  await new Promise((resolve, reject) => {
    idle.on("open", resolve);
    idle.on("error", reject);
  });
  // The authenticated client is served while the idle socket waits out its deadline, and after.
  const first = await healthy.sendMessage({ message: userMessage("before") });
  assert.equal(first.task?.status.state, "TASK_STATE_COMPLETED");
  const { code, reason } = await closed;
  assert.equal(code, 1008);
  assert.match(reason, /Not authenticated within 200 ms/);
  const second = await healthy.sendMessage({ message: userMessage("after") });
  assert.equal(second.task?.status.state, "TASK_STATE_COMPLETED");
});
