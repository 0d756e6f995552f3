// A real server process for restart tests on a Deno KV file: started from server.ts, killed with
// SIGKILL (tests/server_process.ts does the work).

import { startServerProcess as start } from "./server_process.ts";

/** A server process started from server.ts. */
export interface ServerProcess {
  /** Its base URL. */
  url: string;
  /** Kills the process (SIGKILL: no shutdown code runs) and waits until it is gone. */
  kill(): Promise<void>;
}

/**
 * Starts `server.ts` as a child process on 127.0.0.1 with a KV data path and a short lease, so
 * that a test that kills a server restarts it on the same file without a long wait.
 *
 * @param dataPath The `--data` path.
 * @param port The port; 0 picks a free one.
 * @returns The process, once it prints the URL it listens on.
 */
export async function startServerProcess(dataPath: string, port = 0): Promise<ServerProcess> {
  const server = await start({ data: dataPath }, { A2A_KV_LEASE_MS: "1500" }, port);
  return {
    url: server.url,
    kill: async () => {
      await server.stop("SIGKILL");
    },
  };
}
