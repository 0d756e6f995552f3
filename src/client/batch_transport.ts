// The client's capnweb HTTP batch transport: one POST carries every message of a session and its
// answer carries the replies. Unlike capnweb's own, it reads an error answer's A2A error body, so
// a refused batch (HTTP 413 over the size limit, 503 while shutting down) fails with its code.
// Browser-safe: no Deno APIs.

import type { RpcTransport } from "capnweb";
import {
  A2AError,
  AuthenticationError,
  fromWireError,
  InvalidAgentResponseError,
  ServiceUnavailableError,
} from "../errors/errors.ts";

/**
 * A capnweb transport for one HTTP batch. Messages sent before the batch goes out (one macrotask
 * after creation, so that a caller's pipelined calls all make it) are POSTed together; messages
 * sent later are dropped, as the batch protocol has nowhere to put them.
 */
export class HttpBatchTransport implements RpcTransport {
  #outbox: string[] | undefined = [];
  #inbox: Promise<string[]>;
  #aborted: { reason: unknown } | undefined;

  /**
   * Prepares the batch; it is sent one macrotask later.
   *
   * @param url The capnweb endpoint.
   * @param doFetch The fetch implementation.
   */
  constructor(url: string, doFetch: typeof fetch) {
    this.#inbox = this.#exchange(url, doFetch);
    // Whoever receives next sees the failure; the session may never ask.
    this.#inbox.catch(() => {});
  }

  /**
   * Queues a message for the batch.
   *
   * @param message One capnweb message.
   */
  send(message: string): void {
    this.#outbox?.push(message);
  }

  /**
   * The next message of the answer.
   *
   * @returns One capnweb message.
   * @throws {A2AError} When the server refused the batch.
   */
  async receive(): Promise<string> {
    const inbox = await this.#inbox;
    const message = inbox.shift();
    if (message === undefined) throw new Error("Batch RPC request ended");
    return message;
  }

  /**
   * Cancels the batch if it has not gone out yet.
   *
   * @param reason Why the session ended.
   */
  abort(reason: unknown): void {
    this.#aborted ??= { reason };
  }

  async #exchange(url: string, doFetch: typeof fetch): Promise<string[]> {
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (this.#aborted) throw this.#aborted.reason;
    const body = this.#outbox!.join("\n");
    this.#outbox = undefined;
    const res = await doFetch(url, { method: "POST", body });
    if (!res.ok) throw await refusal(res);
    const text = await res.text();
    return text === "" ? [] : text.split("\n");
  }
}

/** The error of a batch the server refused: from its A2A error body, else from its status. */
async function refusal(res: Response): Promise<A2AError> {
  const text = await res.text().catch(() => "");
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const error = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const rebuilt = fromWireError(error);
  if (rebuilt instanceof A2AError) return rebuilt;
  const detail = typeof error?.message === "string" ? error.message : text.slice(0, 200);
  const message = `The agent answered HTTP ${res.status}${detail ? `: ${detail}` : ""}`;
  if (res.status === 401 || res.status === 403) return new AuthenticationError(message);
  if (res.status === 503) return new ServiceUnavailableError(message);
  return new InvalidAgentResponseError(message);
}
