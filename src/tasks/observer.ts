// The hook through which metrics, traces and access logs see every operation, declared in the
// core so that the core needs none of them: the server passes an implementation down.

import type { TraceContext } from "./executor.ts";
import type { CallContext } from "./request_handler.ts";

/**
 * Sees every operation the RequestHandler runs: it may time it, trace it and log it. `run`
 * performs the operation; the observer calls it once and returns (or rethrows) its outcome.
 */
export interface OperationObserver {
  /**
   * Runs one operation under observation.
   *
   * @param operation The A2A method, e.g. `SendMessage`.
   * @param call The caller, with the binding and the request headers when there are any.
   * @param params The parameters as they came from the network (not yet validated).
   * @param run Performs the operation; `traceContext` becomes the executor's.
   * @returns What `run` returns.
   */
  observe<T>(
    operation: string,
    call: CallContext,
    params: unknown,
    run: (traceContext?: TraceContext) => Promise<T>,
  ): Promise<T>;
}
