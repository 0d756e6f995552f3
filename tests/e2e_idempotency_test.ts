// Idempotent sends over the wire: the same messageId sent twice over capnweb and over JSON-RPC
// gives one task, whichever binding each send used.

import assert from "node:assert/strict";
import { A2AClient } from "../client.ts";
import { postJsonRpc, startServer, TOKENS, userMessage, withDeadline, within } from "./helpers.ts";

Deno.test("a messageId sent twice over capnweb and JSON-RPC makes one task", async () => {
  await using server = startServer();
  await using capnweb = await withDeadline(A2AClient.connect(server.url, { token: TOKENS.alice }));
  const message = userMessage("once only");
  const first = await withDeadline(capnweb.sendMessage({ message }));
  const again = await withDeadline(capnweb.sendMessage({ message }));
  const res = await postJsonRpc(server.url, "SendMessage", { message });
  const viaJsonRpc = (await res.json()).result;
  assert.equal(again.task?.id, first.task?.id);
  assert.equal(viaJsonRpc.task.id, first.task?.id);
  const events = [];
  for await (const e of within(capnweb.sendStreamingMessage({ message }))) events.push(e);
  assert.equal(events[0]?.seq, 1, "a repeated streaming send replays from seq 1");
  assert.equal(events[0]?.task?.id, first.task?.id);
  const { tasks } = await withDeadline(capnweb.listTasks({}));
  assert.equal(tasks.length, 1);
});
