// capnweb (0.12) can leave a promise rejected with no handler when a peer hands us a promise and
// then disposes it or goes away before it resolves (`["abort",["promise",-1]]`,
// `["push",["promise",-1]]` and a close): in Deno an unhandled rejection ends the process, so one
// frame from anyone would stop the server. This guard swallows exactly those rejections (capnweb's
// cancellation, and the end of a session), once per process, and nothing else.

import { getLogger } from "@logtape/logtape";

const log = getLogger(["a2a-capnweb", "rpc"]);

/** The messages of the rejections capnweb leaves unhandled: a cancellation, a session's end. */
const STRAY =
  /^(RPC was canceled because the RpcPromise was disposed\.|Peer closed WebSocket: |WebSocket connection failed\.|RPC session was shut down)/;

let installed = false;

/**
 * Installs the process-wide listener that keeps capnweb's stray cancellation rejections from
 * ending the process. Idempotent.
 */
export function guardCapnwebRejections(): void {
  if (installed || typeof globalThis.addEventListener !== "function") return;
  installed = true;
  globalThis.addEventListener("unhandledrejection", (event: PromiseRejectionEvent) => {
    const reason: unknown = event.reason;
    if (reason instanceof Error && STRAY.test(reason.message)) {
      event.preventDefault();
      log.debug("Ignored a capnweb promise that ended with its session: {message}", {
        message: reason.message.slice(0, 200),
      });
    }
  });
}
