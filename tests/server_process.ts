// Real server processes for the restart and scale-out tests: `deno run server.ts` on 127.0.0.1,
// with a Deno KV file or a PostgreSQL URL, stopped by SIGTERM or killed by SIGKILL.

import { TOKENS } from "./helpers.ts";

/** One running `server.ts` process. */
export interface ServerProcess extends AsyncDisposable {
  /** Its base URL. */
  readonly url: string;
  /** Its port on 127.0.0.1. */
  readonly port: number;
  /** Everything it printed so far (stdout and stderr). */
  readonly output: () => string;
  /** Sends a signal and waits for the process to exit. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

const SERVER = new URL("../server.ts", import.meta.url).pathname;

/** Where a server process keeps its tasks: a PostgreSQL URL, a Deno KV file, or memory. */
export type ProcessStore = string | { data: string } | { memory: true };

/**
 * Starts `server.ts --postgres <url>` (or `--data <path>`) and waits until it listens.
 *
 * @param store The database the processes share, or `{ data }` for a Deno KV file.
 * @param env Extra environment, e.g. a short lease for the crash tests.
 * @param port The port; 0 (the default) picks a free one.
 * @param flags More flags of server.ts, e.g. `["--stream-buffer", "4"]`.
 * @returns The process.
 */
export async function startServerProcess(
  store: ProcessStore,
  env: Record<string, string> = {},
  port = 0,
  flags: string[] = [],
): Promise<ServerProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      SERVER,
      "--port",
      String(port),
      ...(typeof store === "string"
        ? ["--postgres", store]
        : "data" in store
        ? ["--data", store.data]
        : []),
      ...flags,
    ],
    env: {
      A2A_TOKENS: `alice=${TOKENS.alice},bob=${TOKENS.bob}`,
      NO_COLOR: "1",
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  let listening: (url: string) => void;
  const url = new Promise<string>((resolve) => listening = resolve);
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      const m = /listening on (https?:\/\/\S+)/.exec(text);
      if (m) listening(m[1]!);
    }
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const started = await Promise.race([
    url,
    child.status.then(() => undefined),
    new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), 30_000)),
  ]);
  clearTimeout(timer);
  let status: Promise<Deno.CommandStatus> | undefined;
  const stop = (signal: Deno.Signal = "SIGTERM") => {
    status ??= (async () => {
      try {
        child.kill(signal);
      } catch {
        // already exited
      }
      const s = await child.status;
      await drained;
      return s;
    })();
    return status;
  };
  if (started === undefined) {
    await stop("SIGKILL");
    throw new Error(`server.ts did not start:\n${text.slice(-4000)}`);
  }
  return {
    url: started,
    port: Number(new URL(started).port),
    output: () => text,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}
