// A TCP proxy for fault-injection tests: sits between the real client and the real server on
// 127.0.0.1 and can cut, stall, blackhole, delay or refuse the connections that pass through it.
// Given several servers, it is a round-robin load balancer: each new connection goes to the next.

/** One proxied connection: the client side and the server side. */
interface Pair {
  client: Deno.TcpConn;
  server: Deno.TcpConn;
  done: Promise<void>;
  stalled: boolean;
  /** Drops what either side sends, and any close, without closing anything itself. */
  blackholed: boolean;
  waiters: (() => void)[];
}

/** A fault-injecting TCP proxy. `await using` closes it and every connection. */
export class TcpProxy implements AsyncDisposable {
  readonly #listener: Deno.TcpListener;
  readonly #targets: { hostname: string; port: number }[];
  #next = 0;
  readonly #pairs = new Set<Pair>();
  #accepting: Promise<void>;
  /** Milliseconds each chunk waits before it is forwarded. */
  delayMs = 0;
  /** How many connections were accepted in all. */
  accepted = 0;
  /** Closes each new connection as soon as it is accepted, as if the server were down. */
  refusing = false;

  /**
   * Starts the proxy on 127.0.0.1, port 0.
   *
   * @param target The server's address, or several servers' to take turns.
   */
  constructor(target: { hostname: string; port: number } | { hostname: string; port: number }[]) {
    this.#targets = Array.isArray(target) ? target : [target];
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** The proxy's base URL. */
  get url(): string {
    return `http://127.0.0.1:${this.#listener.addr.port}`;
  }

  /** How many connections are open. */
  get open(): number {
    return this.#pairs.size;
  }

  async #accept(): Promise<void> {
    for await (const client of this.#listener) {
      this.accepted++;
      if (this.refusing) {
        client.close();
        continue;
      }
      let server: Deno.TcpConn;
      try {
        const target = this.#targets[this.#next++ % this.#targets.length]!;
        server = await Deno.connect(target);
      } catch {
        client.close();
        continue;
      }
      const pair: Pair = {
        client,
        server,
        done: Promise.resolve(),
        stalled: false,
        blackholed: false,
        waiters: [],
      };
      pair.done = Promise.all([
        this.#pipe(pair, client, server),
        this.#pipe(pair, server, client),
      ]).then(
        () => {
          this.#close(pair);
          this.#pairs.delete(pair);
        },
      );
      this.#pairs.add(pair);
    }
  }

  async #pipe(pair: Pair, from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const n = await from.read(buf);
        if (n === null) {
          // A vanished peer's FIN never arrives either: the other side finds out on its own.
          if (pair.blackholed) return;
          break;
        }
        if (pair.blackholed) continue;
        const chunk = buf.slice(0, n);
        while (pair.stalled) await new Promise<void>((r) => pair.waiters.push(r));
        if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
        let written = 0;
        while (written < chunk.length) written += await to.write(chunk.subarray(written));
      }
    } catch {
      // One side went away: the pair is torn down below.
    }
    this.#closeBoth(from, to);
  }

  #closeBoth(a: Deno.TcpConn, b: Deno.TcpConn): void {
    for (const c of [a, b]) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
  }

  #close(pair: Pair): void {
    this.#closeBoth(pair.client, pair.server);
  }

  /** Cuts every open connection at once, as a network failure would. */
  async cut(): Promise<void> {
    const pairs = [...this.#pairs];
    this.resume();
    for (const p of pairs) this.#close(p);
    await Promise.all(pairs.map((p) => p.done));
  }

  /**
   * Stops forwarding on the connections open now, without closing anything, as when a peer
   * vanishes. New connections are not affected.
   */
  stall(): void {
    for (const p of this.#pairs) p.stalled = true;
  }

  /**
   * Turns the connections open now into half-open ones: whatever either side sends, a close
   * included, is dropped, and nothing is closed, as when a NAT forgets a connection or a laptop
   * sleeps. Only a timeout on either side ends them (or `cut()`). New connections are not
   * affected.
   */
  blackhole(): void {
    for (const p of this.#pairs) p.blackholed = true;
  }

  /** Forwards again on every stalled connection. */
  resume(): void {
    for (const p of this.#pairs) {
      p.stalled = false;
      const waiters = p.waiters;
      p.waiters = [];
      for (const w of waiters) w();
    }
  }

  /** Closes the proxy and every connection. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting.catch(() => {});
    await this.cut();
  }
}
