// End-to-end: the real server and the real client over real sockets, on both transports.

import assert from "node:assert/strict";
import { A2AClient } from "../client.ts";
import { TaskNotCancelableError, TaskNotFoundError } from "../mod.ts";
import { startServer, TOKENS, userMessage, withDeadline } from "./helpers.ts";

for (const transport of ["websocket", "batch"] as const) {
  Deno.test(`sendMessage() over ${transport} completes a task with the echoed artifact`, async () => {
    await using server = startServer();
    await using client = await withDeadline(
      A2AClient.connect(server.url, { token: TOKENS.alice, transport }),
    );
    const { task } = await withDeadline(
      client.sendMessage({ message: userMessage("hello world") }),
    );
    assert.ok(task);
    assert.equal(task.status.state, "TASK_STATE_COMPLETED");
    const text = task.artifacts?.[0]?.parts.map((p) => p.text).join("");
    assert.equal(text, "hello world");

    const got = await withDeadline(client.getTask({ id: task.id }));
    assert.equal(got.id, task.id);
    assert.equal(got.status.state, "TASK_STATE_COMPLETED");

    const list = await withDeadline(client.listTasks());
    assert.deepEqual(list.tasks.map((t) => t.id), [task.id]);
    assert.equal(list.nextPageToken, "");

    await assert.rejects(withDeadline(client.cancelTask({ id: task.id })), TaskNotCancelableError);
    await assert.rejects(withDeadline(client.getTask({ id: "no-such-task" })), TaskNotFoundError);
  });
}
