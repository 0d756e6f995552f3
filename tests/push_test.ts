// Push notifications end to end: the real server and client, and a webhook receiver on
// 127.0.0.1 port 0 (the tests that use it allow loopback destinations explicitly).

import assert from "node:assert/strict";
import { A2AClient } from "../client.ts";
import {
  classifyAddress,
  demoAgentCard,
  EVENT_SEQ_HEADER,
  InvalidParamsError,
  NOTIFICATION_TOKEN_HEADER,
  PUSH_CALLBACK_URL,
  PushNotificationNotSupportedError,
  type StreamEvent,
  type StreamResponse,
  TaskNotFoundError,
} from "../mod.ts";
import { startServer, TOKENS, userMessage, waitFor } from "./helpers.ts";

interface Received {
  seq: number;
  headers: Headers;
  body: StreamResponse;
}

interface Receiver extends AsyncDisposable {
  url: string;
  requests: Received[];
}

/** A webhook receiver; `respond` picks the status of the n-th request (0-based). */
function startReceiver(
  respond: (index: number) => number | Promise<number> = () => 204,
): Receiver {
  const requests: Received[] = [];
  let count = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const body = await req.json();
    const index = count++;
    requests.push({ seq: Number(req.headers.get(EVENT_SEQ_HEADER)), headers: req.headers, body });
    return new Response(null, { status: await respond(index) });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/hook`,
    requests,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

/** Plain JSON, as it would cross the wire. */
function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(value));
}

function withoutSeq(events: StreamEvent[]): StreamResponse[] {
  return plain(events.map(({ seq: _, ...rest }) => rest));
}

function isCompleted(body: StreamResponse): boolean {
  return body.statusUpdate?.status.state === "TASK_STATE_COMPLETED";
}

/** Collapses runs of the same value: a retried delivery appears once. */
function collapse(seqs: number[]): number[] {
  return seqs.filter((s, i) => i === 0 || s !== seqs[i - 1]);
}

Deno.test("a webhook receives every event of a task in order, with its credentials", async () => {
  await using hook = startReceiver();
  await using server = startServer({ push: { allowLoopback: true } });
  await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
  const { task } = await client.sendMessage({
    message: userMessage("hello push notifications"),
    configuration: {
      taskPushNotificationConfig: {
        url: hook.url,
        token: "receiver-token",
        authentication: { scheme: "Bearer", credentials: "secret-1" },
      },
    },
  });
  assert.ok(task);
  const logged = await server.handler.manager.store.events(task.id, 0);
  assert.ok(logged.length >= 4);
  await waitFor(() => hook.requests.length >= logged.length);
  await waitFor(() => server.handler.stats().pushPending === 0);
  assert.deepEqual(hook.requests.map((r) => r.body), withoutSeq(logged));
  assert.deepEqual(hook.requests.map((r) => r.seq), logged.map((e) => e.seq));
  assert.equal(hook.requests[0]?.body.task?.status.state, "TASK_STATE_SUBMITTED");
  assert.ok(isCompleted(hook.requests.at(-1)!.body));
  for (const { headers } of hook.requests) {
    assert.equal(headers.get("content-type"), "application/a2a+json");
    assert.equal(headers.get("authorization"), "Bearer secret-1");
    assert.equal(headers.get(NOTIFICATION_TOKEN_HEADER), "receiver-token");
  }
  const { configs } = await client.listTaskPushNotificationConfigs({ taskId: task.id });
  assert.equal(configs.length, 1);
  assert.equal(configs[0]?.url, hook.url);
  assert.equal(configs[0]?.taskId, task.id);
});

for (const transport of ["websocket", "batch", "jsonrpc"] as const) {
  Deno.test(`push config operations over ${transport} create, read, list, page and delete`, async () => {
    await using server = startServer({ push: { allowLoopback: true } });
    await using client = await A2AClient.connect(server.url, { token: TOKENS.alice, transport });
    const { task } = await client.sendMessage({ message: userMessage("input: your name?") });
    assert.equal(task?.status.state, "TASK_STATE_INPUT_REQUIRED");
    const taskId = task!.id;

    const a = await client.createTaskPushNotificationConfig({
      taskId,
      url: "http://127.0.0.1:9/a",
    });
    assert.ok(a.id);
    assert.equal(a.taskId, taskId);
    assert.equal(a.url, "http://127.0.0.1:9/a");
    const b = await client.createTaskPushNotificationConfig({
      taskId,
      id: "zz-b",
      url: "http://127.0.0.1:9/b",
      token: "t-b",
      authentication: { scheme: "Basic", credentials: "dXNlcjpwdw==" },
    });
    assert.deepEqual(b, {
      id: "zz-b",
      taskId,
      url: "http://127.0.0.1:9/b",
      token: "t-b",
      authentication: { scheme: "Basic", credentials: "dXNlcjpwdw==" },
    });
    // The same webhook again, without an id, is the existing config rather than a duplicate.
    const again = await client.createTaskPushNotificationConfig({
      taskId,
      url: "http://127.0.0.1:9/a",
    });
    assert.equal(again.id, a.id);

    assert.deepEqual(await client.getTaskPushNotificationConfig({ taskId, id: "zz-b" }), b);
    const all = await client.listTaskPushNotificationConfigs({ taskId });
    assert.deepEqual(all.configs.map((c) => c.id), [a.id, "zz-b"].sort());
    assert.equal(all.nextPageToken, "");
    const first = await client.listTaskPushNotificationConfigs({ taskId, pageSize: 1 });
    assert.equal(first.configs.length, 1);
    assert.notEqual(first.nextPageToken, "");
    const second = await client.listTaskPushNotificationConfigs({
      taskId,
      pageSize: 1,
      pageToken: first.nextPageToken,
    });
    assert.deepEqual([...first.configs, ...second.configs], all.configs);
    assert.equal(second.nextPageToken, "");

    // Creating with an existing id replaces that config.
    await client.createTaskPushNotificationConfig({
      taskId,
      id: "zz-b",
      url: "http://127.0.0.1:9/b2",
    });
    const replaced = await client.getTaskPushNotificationConfig({ taskId, id: "zz-b" });
    assert.equal(replaced.url, "http://127.0.0.1:9/b2");
    assert.equal(replaced.token, undefined);

    await client.deleteTaskPushNotificationConfig({ taskId, id: "zz-b" });
    await assert.rejects(
      client.getTaskPushNotificationConfig({ taskId, id: "zz-b" }),
      TaskNotFoundError,
    );
    // Deleting is idempotent.
    await client.deleteTaskPushNotificationConfig({ taskId, id: "zz-b" });
    assert.deepEqual(
      (await client.listTaskPushNotificationConfigs({ taskId })).configs.map((c) => c.id),
      [a.id],
    );

    await assert.rejects(
      client.createTaskPushNotificationConfig({
        taskId: "no-such-task",
        url: "http://127.0.0.1:9/",
      }),
      TaskNotFoundError,
    );
    await assert.rejects(
      client.listTaskPushNotificationConfigs({ taskId: "no-such-task" }),
      TaskNotFoundError,
    );
    await assert.rejects(
      client.createTaskPushNotificationConfig({ url: "http://127.0.0.1:9/" }),
      InvalidParamsError,
    );
    await assert.rejects(
      client.createTaskPushNotificationConfig({ taskId } as never),
      InvalidParamsError,
    );
    await assert.rejects(
      client.createTaskPushNotificationConfig({
        taskId,
        url: "http://127.0.0.1:9/",
        authentication: { scheme: "Bearer x", credentials: "y" },
      }),
      InvalidParamsError,
    );
    await assert.rejects(
      client.listTaskPushNotificationConfigs({ taskId, pageToken: "%%%" }),
      InvalidParamsError,
    );
  });
}

Deno.test("a webhook that fails once gets the event again: nothing lost, order kept", async () => {
  await using hook = startReceiver((i) => (i === 0 ? 500 : 200));
  await using server = startServer({ push: { allowLoopback: true, retryBaseMs: 5 } });
  await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
  const { task } = await client.sendMessage({
    message: userMessage("retry me please"),
    configuration: { taskPushNotificationConfig: { url: hook.url } },
  });
  const logged = await server.handler.manager.store.events(task!.id, 0);
  await waitFor(() => hook.requests.some((r) => isCompleted(r.body)));
  await waitFor(() => server.handler.stats().pushPending === 0);
  const seqs = hook.requests.map((r) => r.seq);
  assert.equal(seqs.length, logged.length + 1);
  assert.deepEqual(seqs.slice(0, 2), [1, 1]);
  assert.deepEqual(collapse(seqs), logged.map((e) => e.seq));
  assert.deepEqual(
    collapse(seqs).map((s) => hook.requests.find((r) => r.seq === s)!.body),
    withoutSeq(logged),
  );
});

Deno.test("a failing webhook holds back only its own config, and is given up after maxAttempts", async () => {
  await using broken = startReceiver(() => 503);
  await using healthy = startReceiver();
  await using rejecting = startReceiver(() => 400);
  await using server = startServer({
    push: { allowLoopback: true, maxAttempts: 3, retryBaseMs: 40 },
  });
  await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
  const { task } = await client.sendMessage({ message: userMessage("input: name?") });
  const taskId = task!.id;
  for (const receiver of [broken, healthy, rejecting]) {
    await client.createTaskPushNotificationConfig({ taskId, url: receiver.url });
  }
  const before = (await server.handler.manager.store.get(taskId))!.lastSeq;
  await client.sendMessage({ message: userMessage("Ada", { taskId }) });
  const logged = await server.handler.manager.store.events(taskId, before);
  const expected = logged.map((e) => e.seq);
  await waitFor(() => healthy.requests.length === logged.length);
  // The healthy webhook got everything while the broken one is still retrying its first event.
  assert.ok(broken.requests.length < 3 * logged.length);
  assert.deepEqual(healthy.requests.map((r) => r.seq), expected);
  await waitFor(() => server.handler.stats().pushPending === 0, undefined, 10_000);
  assert.deepEqual(broken.requests.map((r) => r.seq), expected.flatMap((s) => [s, s, s]));
  // A 4xx answer is final: no retries.
  assert.deepEqual(rejecting.requests.map((r) => r.seq), expected);
});

Deno.test("webhook URLs on loopback, private, link-local and other internal addresses are refused", async () => {
  await using server = startServer();
  await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
  const { task } = await client.sendMessage({ message: userMessage("input: name?") });
  const taskId = task!.id;
  for (
    const url of [
      "http://127.0.0.1:8080/hook",
      "http://10.0.0.1/hook",
      "http://169.254.169.254/latest/meta-data",
      "http://[::1]/hook",
      "http://localhost:8080/hook",
      "http://[::ffff:127.0.0.1]/hook",
      "http://[::ffff:a9fe:a9fe]/hook",
      "http://0.0.0.0/hook",
      "http://2130706433/hook",
      "http://192.168.1.10/hook",
      "http://172.16.0.1/hook",
      "http://100.64.0.1/hook",
      "http://[fd00::1]/hook",
      "http://[fe80::1]/hook",
      "http://224.0.0.1/hook",
      "ftp://example.com/hook",
      "http://user:pw@93.184.216.34/hook",
    ]
  ) {
    await assert.rejects(
      client.createTaskPushNotificationConfig({ taskId, url }),
      InvalidParamsError,
      url,
    );
  }
  // The same check applies to a config sent with a message; no task is created.
  const err = await client.sendMessage({
    message: userMessage("hello"),
    configuration: { taskPushNotificationConfig: { url: "http://127.0.0.1:1/hook" } },
  }).catch((e) => e);
  assert.ok(err instanceof InvalidParamsError);
  assert.match(err.message, /configuration\.taskPushNotificationConfig\.url/);
  assert.deepEqual((await client.listTasks()).tasks.map((t) => t.id), [taskId]);
  assert.deepEqual((await client.listTaskPushNotificationConfigs({ taskId })).configs, []);
});

Deno.test("allowLoopback admits loopback webhooks only: private and link-local stay refused", async () => {
  await using server = startServer({ push: { allowLoopback: true } });
  await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
  const { task } = await client.sendMessage({ message: userMessage("input: name?") });
  const taskId = task!.id;
  await client.createTaskPushNotificationConfig({ taskId, url: "http://127.0.0.1:9/hook" });
  await client.createTaskPushNotificationConfig({ taskId, url: "http://[::1]:9/hook" });
  for (const url of ["http://10.0.0.1/hook", "http://169.254.169.254/", "http://[fe80::1]/"]) {
    await assert.rejects(
      client.createTaskPushNotificationConfig({ taskId, url }),
      InvalidParamsError,
      url,
    );
  }
});

Deno.test("a webhook host is resolved again at delivery: rebinding to a private address is refused", async () => {
  let answer = ["93.184.216.34"];
  const sent: Request[] = [];
  await using server = startServer({
    push: {
      resolveHost: () => Promise.resolve(answer),
      fetch: (input, init) => {
        sent.push(new Request(input, init));
        return Promise.resolve(new Response(null, { status: 204 }));
      },
    },
  });
  await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
  // Public: accepted and delivered, with redirects not followed.
  const ok = await client.sendMessage({
    message: userMessage("input: name?"),
    configuration: {
      taskPushNotificationConfig: { url: "https://hooks.example.com/a", token: "t" },
    },
  });
  const firstTurn = await server.handler.manager.store.events(ok.task!.id, 0);
  await waitFor(() => server.handler.stats().pushPending === 0);
  assert.equal(sent.length, firstTurn.length);
  assert.equal(sent[0]!.url, "https://hooks.example.com/a");
  assert.equal(sent[0]!.method, "POST");
  assert.equal(sent[0]!.redirect, "manual");
  assert.equal(sent[0]!.headers.get(NOTIFICATION_TOKEN_HEADER), "t");
  assert.equal(sent[0]!.headers.get(EVENT_SEQ_HEADER), "1");
  assert.equal(sent[0]!.headers.get("authorization"), null);
  assert.deepEqual((await sent[0]!.json()).task.id, ok.task!.id);

  // The name now points inside: the events of the next turn are not sent.
  answer = ["10.1.2.3"];
  await client.sendMessage({ message: userMessage("Ada", { taskId: ok.task!.id }) });
  await waitFor(() => server.handler.stats().pushPending === 0);
  assert.equal(sent.length, firstTurn.length);

  // A name with one internal address among public ones is refused at creation.
  answer = ["93.184.216.34", "127.0.0.1"];
  const { task } = await client.sendMessage({ message: userMessage("input: again?") });
  await assert.rejects(
    client.createTaskPushNotificationConfig({ taskId: task!.id, url: "https://mixed.example/" }),
    InvalidParamsError,
  );
});

Deno.test("a callback config pushes a task's events to a connected client, across turns", async () => {
  await using server = startServer();
  await using owner = await A2AClient.connect(server.url, { token: TOKENS.alice });
  await using other = await A2AClient.connect(server.url, { token: TOKENS.alice });
  const { task } = await owner.sendMessage({ message: userMessage("input: your name?") });
  const taskId = task!.id;
  const resources = server.handler.stats().resources;

  const got: StreamEvent[] = [];
  const config = await owner.createTaskPushNotificationConfig({ taskId }, (event) => {
    got.push(event);
  });
  assert.equal(config.url, PUSH_CALLBACK_URL);
  assert.equal(config.taskId, taskId);
  assert.equal(server.handler.stats().resources, resources + 1);
  // Other connections of the same user see the config.
  const listed = await other.listTaskPushNotificationConfigs({ taskId });
  assert.deepEqual(listed.configs, [config]);
  assert.deepEqual(await other.getTaskPushNotificationConfig({ taskId, id: config.id! }), config);

  // A second callback, deleted before the task moves: it gets nothing and is released.
  const dropped: StreamEvent[] = [];
  const second = await owner.createTaskPushNotificationConfig({ taskId }, (e) => {
    dropped.push(e);
  });
  assert.equal(server.handler.stats().resources, resources + 2);
  await other.deleteTaskPushNotificationConfig({ taskId, id: second.id! });
  await waitFor(() => server.handler.stats().resources === resources + 1);

  const before = (await server.handler.manager.store.get(taskId))!.lastSeq;
  await other.sendMessage({ message: userMessage("Ada", { taskId }) });
  const logged = await server.handler.manager.store.events(taskId, before);
  await waitFor(() => got.length === logged.length);
  assert.deepEqual(plain(got), plain(logged));
  assert.ok(isCompleted(got.at(-1)!));
  assert.deepEqual(dropped, []);
  // The task is finished: the callback is released and the config is gone.
  await waitFor(() => server.handler.stats().resources === resources);
  assert.deepEqual((await other.listTaskPushNotificationConfigs({ taskId })).configs, []);
});

Deno.test("closing the connection releases its callback configs", async () => {
  await using server = startServer();
  await using other = await A2AClient.connect(server.url, { token: TOKENS.alice });
  const client = await A2AClient.connect(server.url, { token: TOKENS.alice });
  const { task } = await client.sendMessage({ message: userMessage("input: your name?") });
  await client.createTaskPushNotificationConfig({ taskId: task!.id }, () => {});
  assert.equal(
    (await other.listTaskPushNotificationConfigs({ taskId: task!.id })).configs.length,
    1,
  );
  await client.close();
  await waitFor(() => server.handler.push?.callbackCount === 0);
  assert.deepEqual(
    (await other.listTaskPushNotificationConfigs({ taskId: task!.id })).configs,
    [],
  );
  // Events after the close go nowhere, and fail nothing.
  const { task: done } = await other.sendMessage({
    message: userMessage("Ada", { taskId: task!.id }),
  });
  assert.equal(done?.status.state, "TASK_STATE_COMPLETED");
});

Deno.test("a callback over the batch transport is refused", async () => {
  await using server = startServer();
  await using client = await A2AClient.connect(server.url, {
    token: TOKENS.alice,
    transport: "batch",
  });
  const { task } = await client.sendMessage({ message: userMessage("input: name?") });
  await assert.rejects(
    client.createTaskPushNotificationConfig({ taskId: task!.id }, () => {}),
    /WebSocket/,
  );
});

Deno.test("another user cannot read, list, change or delete your push configs", async () => {
  await using server = startServer({ push: { allowLoopback: true } });
  await using alice = await A2AClient.connect(server.url, { token: TOKENS.alice });
  await using bob = await A2AClient.connect(server.url, { token: TOKENS.bob });
  const { task } = await alice.sendMessage({ message: userMessage("input: name?") });
  const taskId = task!.id;
  const config = await alice.createTaskPushNotificationConfig({
    taskId,
    id: "mine",
    url: "http://127.0.0.1:9/alice",
  });
  await assert.rejects(
    bob.getTaskPushNotificationConfig({ taskId, id: "mine" }),
    TaskNotFoundError,
  );
  await assert.rejects(bob.listTaskPushNotificationConfigs({ taskId }), TaskNotFoundError);
  await assert.rejects(
    bob.deleteTaskPushNotificationConfig({ taskId, id: "mine" }),
    TaskNotFoundError,
  );
  await assert.rejects(
    bob.createTaskPushNotificationConfig({ taskId, id: "mine", url: "http://127.0.0.1:9/bob" }),
    TaskNotFoundError,
  );
  await assert.rejects(
    bob.createTaskPushNotificationConfig({ taskId }, () => {}),
    TaskNotFoundError,
  );
  assert.deepEqual(await alice.getTaskPushNotificationConfig({ taskId, id: "mine" }), config);
});

Deno.test("push operations fail with PushNotificationNotSupportedError when the card says so", async () => {
  await using server = startServer({
    agentCard: {
      ...demoAgentCard,
      capabilities: { ...demoAgentCard.capabilities, pushNotifications: false },
    },
  });
  await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
  assert.equal(server.handler.push, undefined);
  const { task } = await client.sendMessage({ message: userMessage("input: name?") });
  const taskId = task!.id;
  const url = "https://hooks.example.com/a";
  for (
    const call of [
      () => client.createTaskPushNotificationConfig({ taskId, url }),
      () => client.createTaskPushNotificationConfig({ taskId }, () => {}),
      () => client.getTaskPushNotificationConfig({ taskId, id: "x" }),
      () => client.listTaskPushNotificationConfigs({ taskId }),
      () => client.deleteTaskPushNotificationConfig({ taskId, id: "x" }),
      () =>
        client.sendMessage({
          message: userMessage("hi"),
          configuration: { taskPushNotificationConfig: { url } },
        }),
    ]
  ) {
    await assert.rejects(call(), PushNotificationNotSupportedError);
  }
});

Deno.test("deleting a webhook config stops its deliveries, even one in flight", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  await using hook = startReceiver(async () => {
    await gate;
    return 204;
  });
  await using server = startServer({ push: { allowLoopback: true } });
  await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
  const { task } = await client.sendMessage({ message: userMessage("input: name?") });
  const taskId = task!.id;
  // A config sent with a follow-up message is registered for the existing task.
  await client.sendMessage({
    message: userMessage("Ada", { taskId }),
    configuration: { taskPushNotificationConfig: { id: "hook", url: hook.url } },
  });
  await waitFor(() => hook.requests.length === 1);
  assert.ok(server.handler.stats().pushPending > 1);
  await client.deleteTaskPushNotificationConfig({ taskId, id: "hook" });
  assert.equal(server.handler.stats().pushPending, 0);
  release();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(hook.requests.length, 1);
});

Deno.test("shutting down cancels webhook retries that are waiting", async () => {
  await using hook = startReceiver(() => 500);
  await using server = startServer({ push: { allowLoopback: true, retryBaseMs: 60_000 } });
  await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
  await client.sendMessage({
    message: userMessage("hello"),
    configuration: { taskPushNotificationConfig: { url: hook.url } },
  });
  await waitFor(() => hook.requests.length === 1);
  assert.ok(server.handler.stats().pushPending > 0);
  // Disposal shuts the server down; the test sanitizers fail if a retry timer outlives it.
});

Deno.test("classifyAddress() sorts addresses into the kinds the destination policy uses", () => {
  const cases: [string, ReturnType<typeof classifyAddress>][] = [
    ["93.184.216.34", "public"],
    ["127.0.0.1", "loopback"],
    ["127.255.0.9", "loopback"],
    ["10.1.2.3", "private"],
    ["172.31.255.255", "private"],
    ["172.32.0.1", "public"],
    ["192.168.0.1", "private"],
    ["100.64.0.1", "private"],
    ["100.128.0.1", "public"],
    ["169.254.169.254", "link-local"],
    ["0.0.0.0", "unspecified"],
    ["224.0.0.251", "multicast"],
    ["255.255.255.255", "reserved"],
    ["2606:4700::1111", "public"],
    ["::1", "loopback"],
    ["[::1]", "loopback"],
    ["::", "unspecified"],
    ["fc00::1", "private"],
    ["fd12:3456::1", "private"],
    ["fe80::1", "link-local"],
    ["ff02::1", "multicast"],
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:7f00:1", "loopback"],
    ["::ffff:10.0.0.1", "private"],
    ["::ffff:8.8.8.8", "public"],
    ["::127.0.0.1", "loopback"],
    ["64:ff9b::a9fe:a9fe", "link-local"],
    ["2002:7f00:1::", "loopback"],
    ["2001:0:4136:e378::1", "reserved"],
    ["example.com", undefined],
    ["1.2.3", undefined],
    ["1:2:3", undefined],
  ];
  for (const [address, kind] of cases) assert.equal(classifyAddress(address), kind, address);
});

Deno.test("a webhook created on a paused task gets the events of its follow-up", async () => {
  await using hook = startReceiver();
  await using server = startServer({ push: { allowLoopback: true } });
  await using client = await A2AClient.connect(server.url, { token: TOKENS.alice });
  // The task's first events find no config: the dispatcher stops reading the store for them.
  const { task } = await client.sendMessage({ message: userMessage("input: your name?") });
  assert.equal(task?.status.state, "TASK_STATE_INPUT_REQUIRED");
  const store = server.handler.manager.store;
  const before = (await store.events(task!.id, 0)).length;
  await client.createTaskPushNotificationConfig({ taskId: task!.id, url: hook.url });
  const { task: done } = await client.sendMessage({
    message: { ...userMessage("Ada"), taskId: task!.id },
  });
  assert.equal(done?.status.state, "TASK_STATE_COMPLETED");
  const followUp = await store.events(task!.id, before);
  assert.ok(followUp.length >= 2);
  await waitFor(() => hook.requests.length >= followUp.length);
  await waitFor(() => server.handler.stats().pushPending === 0);
  assert.deepEqual(hook.requests.map((r) => r.seq), followUp.map((e) => e.seq));
});
