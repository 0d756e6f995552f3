// The two programs as a newcomer first runs them: server.ts (help, missing permissions) and the
// client CLI (its token).

import assert from "node:assert/strict";
import { A2AClient } from "../client.ts";
import { runCli } from "../src/client/cli.ts";
import { startServer } from "./helpers.ts";
import { startServerProcess } from "./server_process.ts";

async function runServerTs(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...args],
    cwd: new URL("..", import.meta.url),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

Deno.test("server.ts --help prints the usage and exits 0, with no permissions", async () => {
  const { code, stdout } = await runServerTs("server.ts", "--help");
  assert.equal(code, 0);
  assert.match(stdout, /^Usage: deno run -A server\.ts/);
});

Deno.test("server.ts without permissions names the flags to add instead of a stack trace", async () => {
  const { code, stderr } = await runServerTs("server.ts");
  assert.equal(code, 2);
  assert.match(stderr, /^Cannot start the server: it needs --allow-net --allow-env\./);
  assert.match(stderr, /deno task start/);
  assert.doesNotMatch(stderr, /^\s+at /m);
});

Deno.test("server.ts names a permission that only an option needs, without a stack trace", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { code, stderr } = await runServerTs(
      "--allow-net",
      "--allow-env",
      "server.ts",
      "--port",
      "0",
      "--data",
      `${dir}/tasks.kv`,
    );
    assert.notEqual(code, 0);
    assert.match(stderr, /--allow-read/);
    assert.doesNotMatch(stderr, /^\s+at /m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the client CLI says when it falls back to the demo token, then streams", async () => {
  await using server = startServer();
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli([server.url, "hello", "cli"], A2AClient, {
    output: { out: (l) => out.push(l), err: (l) => err.push(l) },
  });
  assert.equal(code, 0);
  assert.deepEqual(err, ["A2A_TOKEN is not set: using the demo server's token token-alice"]);
  const last = JSON.parse(out.at(-1)!);
  assert.equal(last.statusUpdate.status.state, "TASK_STATE_COMPLETED");
});

Deno.test("the client CLI prints its usage: exit 0 for --help, 2 without a message text", async () => {
  const err: string[] = [];
  const output = { out: () => {}, err: (l: string) => err.push(l) };
  assert.equal(await runCli(["--help"], A2AClient, { output }), 0);
  assert.match(err[0]!, /^Usage: deno run -A client\.ts BASE_URL "message text"/);
  assert.equal(await runCli(["http://127.0.0.1:9"], A2AClient, { output }), 2);
});

Deno.test("server.ts --metrics serves /metrics, and A2A_METRICS_TOKEN makes it ask for the token", async () => {
  {
    await using server = await startServerProcess({ memory: true }, {}, 0, ["--metrics"]);
    const res = await fetch(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /^# HELP a2a_/m);
  }
  {
    await using server = await startServerProcess({ memory: true }, { A2A_METRICS_TOKEN: "m-t" });
    const refused = await fetch(`${server.url}/metrics`);
    assert.equal(refused.status, 401);
    await refused.body?.cancel();
    const res = await fetch(`${server.url}/metrics`, { headers: { authorization: "Bearer m-t" } });
    assert.equal(res.status, 200);
    await res.body?.cancel();
  }
  {
    await using server = await startServerProcess({ memory: true });
    const res = await fetch(`${server.url}/metrics`);
    assert.equal(res.status, 404);
    await res.body?.cancel();
  }
});
