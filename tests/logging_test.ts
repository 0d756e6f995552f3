// Log levels mean something: normal events (a client that closes its connection) log nothing at
// WARNING or above.

import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import { A2AClient } from "../client.ts";
import { startServer, TOKENS, userMessage } from "./helpers.ts";

Deno.test("clients that connect, stream and close cleanly log nothing at WARNING or above", async () => {
  const records: LogRecord[] = [];
  await configure({
    sinks: { capture: (r) => records.push(r) },
    loggers: [
      { category: ["a2a-capnweb"], lowestLevel: "debug", sinks: ["capture"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
    reset: true,
  });
  try {
    await using server = startServer();
    for (let i = 0; i < 3; i++) {
      const client = await A2AClient.connect(server.url, { token: TOKENS.alice });
      for await (const _ of client.sendStreamingMessage({ message: userMessage("hi") })) {
        // read the stream to its end
      }
      await client.close();
    }
    await server.settled();
  } finally {
    await reset();
  }
  const loud = records.filter((r) =>
    r.level === "warning" || r.level === "error" || r.level === "fatal"
  );
  assert.deepEqual(loud.map((r) => r.message.join("")), []);
});
