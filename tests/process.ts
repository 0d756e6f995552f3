// A real server process for restart tests: started from server.ts, killed with SIGKILL.

import { TOKENS } from "./helpers.ts";

/** A server process started from server.ts. */
export interface ServerProcess {
  /** Its base URL. */
  url: string;
  /** Kills the process (SIGKILL: no shutdown code runs) and waits until it is gone. */
  kill(): Promise<void>;
}

/**
 * Starts `server.ts` as a child process on 127.0.0.1 with a KV data path.
 *
 * @param dataPath The `--data` path.
 * @param port The port; 0 picks a free one.
 * @returns The process, once it prints the URL it listens on.
 */
export async function startServerProcess(dataPath: string, port = 0): Promise<ServerProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "server.ts", "--port", String(port), "--data", dataPath],
    cwd: new URL("..", import.meta.url),
    // A short lease: a test that kills a server restarts it on the same file without a long wait.
    env: {
      A2A_TOKENS: `alice=${TOKENS.alice},bob=${TOKENS.bob}`,
      A2A_KV_LEASE_MS: "1500",
      NO_COLOR: "1",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const stderrDone = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (s) => void (stderr += s) }),
  );
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let stdout = "";
  let url: string | undefined;
  let drained: Promise<void> = Promise.resolve();
  const kill = async () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // It has exited already.
    }
    await child.status;
    await drained;
    await stderrDone;
  };
  try {
    while (url === undefined) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`The server exited before listening:\n${stdout}\n${stderr}`);
      stdout += value;
      url = /listening on (http:\/\/\S+)/.exec(stdout)?.[1];
    }
  } catch (err) {
    drained = reader.cancel();
    await kill();
    throw err;
  }
  // Keep reading, so that the process never blocks on a full pipe.
  drained = (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })();
  return { url, kill };
}
