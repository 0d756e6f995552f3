// Trusting a private CA in the client: a fetch and a WebSocket class that accept certificates
// issued by it. Browser-safe to import: Deno's API is found by feature detection, and a browser,
// which trusts only its own store, gets a clear error instead.

import type { WebSocketConstructor } from "./websocket_session.ts";

/** A fetch that trusts extra CAs, and the connection pool it owns. */
export interface CaFetch {
  /** Fetches through the pool. */
  fetch: typeof fetch;
  /** Closes the pool; the client calls it on `close()`. */
  close(): void;
}

interface DenoHttp {
  createHttpClient?: (options: { caCerts: string[] }) => { close(): void };
}

/**
 * A fetch that trusts `caCerts` besides the default roots, on Deno's `Deno.createHttpClient`.
 *
 * @param caCerts PEM certificates of the CAs.
 * @returns The fetch and a way to close its pool.
 * @throws {TypeError} Outside Deno, where fetch takes no CA: Node's needs undici's `Agent`, a
 *   browser's trusts only the system's store.
 */
export function caFetch(caCerts: readonly string[]): CaFetch {
  const deno = (globalThis as { Deno?: DenoHttp }).Deno;
  if (typeof deno?.createHttpClient !== "function") {
    throw new TypeError(
      "Cannot apply caCerts: only Deno's fetch takes extra CAs; pass a fetch that trusts the CA " +
        "as well (in Node, undici's with an Agent whose connect.ca is the CA)",
    );
  }
  const client = deno.createHttpClient({ caCerts: [...caCerts] });
  return {
    // `client` is Deno's own member of RequestInit.
    fetch: (input, init) => fetch(input, { ...init, client } as unknown as RequestInit),
    close: () => client.close(),
  };
}

/**
 * An `npm:ws` WebSocket class whose sockets trust `caCerts` (its `ca` option, which takes the place
 * of the default roots for these sockets).
 *
 * @param WS `npm:ws`'s WebSocket class.
 * @param caCerts PEM certificates of the CAs.
 * @returns The class.
 */
export function trustingWebSocket(
  WS: WebSocketConstructor,
  caCerts: readonly string[],
): WebSocketConstructor {
  // npm:ws takes `(url, protocols, options)`.
  const Base = WS as unknown as new (
    url: string,
    protocols: undefined,
    options: { ca: string[] },
  ) => WebSocket;
  const ca = [...caCerts];
  return class extends Base {
    constructor(url: string) {
      super(url, undefined, { ca });
    }
  } as unknown as WebSocketConstructor;
}
