// An exclusive lease on a Deno KV database, so that one process at a time uses a data file: the
// holder renews it on a heartbeat, a second process is refused, and a dead holder's lease lapses.

import { getLogger } from "@logtape/logtape";
import { InternalError } from "../errors/errors.ts";

const log = getLogger(["a2a-capnweb", "kv"]);

const KEY: Deno.KvKey = ["a2a", "lease"];

/** What the lease key holds. */
interface LeaseValue {
  holder: string;
  pid: number;
  hostname: string;
  expiresAt: number;
  beat: number;
}

/** Options of the lease a file-backed `KvTaskStore` takes. */
export interface KvLeaseOptions {
  /**
   * How long the lease lasts without a renewal, in milliseconds (default 10 000): the longest a
   * restart waits after its previous process was killed without closing the store.
   */
  leaseMs?: number;
  /**
   * How often the holder renews it (default a third of `leaseMs`, at most 500 ms): an opener
   * tells a live holder from a dead one by seeing a renewal within two beats.
   */
  beatMs?: number;
}

/** The lease time and beat, checked: a beat too slow for the lease would let it lapse. */
function leaseOptions(options: KvLeaseOptions): Required<KvLeaseOptions> {
  const leaseMs = options.leaseMs ?? 10_000;
  if (!Number.isFinite(leaseMs) || leaseMs < 30) {
    throw new RangeError(`Invalid lease time: ${leaseMs} ms (at least 30)`);
  }
  const beatMs = options.beatMs ?? Math.min(500, Math.floor(leaseMs / 3));
  if (!Number.isFinite(beatMs) || beatMs < 10 || 3 * beatMs > leaseMs) {
    throw new RangeError(`Invalid lease beat: ${beatMs} ms (from 10 to a third of ${leaseMs})`);
  }
  return { leaseMs, beatMs };
}

/** Leases given up with `close()` in this process: a reopen here takes them over at once. */
const released = new Set<string>();

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "an unknown host";
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** The exclusive lease of one process on one database. */
export class KvLease {
  readonly #kv: Deno.Kv;
  readonly #path: string;
  #value: LeaseValue;
  #versionstamp: string;
  #timer: ReturnType<typeof setInterval> | undefined;
  #beating: Promise<void> | undefined;
  #lost = false;
  readonly #leaseMs: number;

  private constructor(
    kv: Deno.Kv,
    path: string,
    value: LeaseValue,
    versionstamp: string,
    options: Required<KvLeaseOptions>,
  ) {
    this.#kv = kv;
    this.#path = path;
    this.#value = value;
    this.#versionstamp = versionstamp;
    this.#leaseMs = options.leaseMs;
    this.#timer = setInterval(() => {
      this.#beating ??= this.#renew().finally(() => this.#beating = undefined);
    }, options.beatMs);
    // The beat alone does not keep a process alive: one that forgot to close the store exits,
    // and its lease lapses. A server's listener keeps it beating while it serves.
    Deno.unrefTimer(this.#timer);
  }

  /**
   * Takes the lease, waiting for a dead holder's lease to lapse, or refuses within about
   * `2 * beatMs` when a live process holds it.
   *
   * @param kv The open database.
   * @param path Its path, for messages.
   * @param options Lease time and heartbeat.
   * @returns The lease, renewed until `release()` or `drop()`.
   * @throws {Error} When another process holds the database.
   */
  static async acquire(kv: Deno.Kv, path: string, options: KvLeaseOptions = {}): Promise<KvLease> {
    const opts = leaseOptions(options);
    let watched: string | undefined;
    for (;;) {
      const current = await kv.get<LeaseValue>(KEY);
      const now = Date.now();
      const held = current.value;
      if (!held || held.expiresAt <= now || released.has(held.holder)) {
        const value: LeaseValue = {
          holder: crypto.randomUUID(),
          pid: Deno.pid,
          hostname: hostname(),
          expiresAt: now + opts.leaseMs,
          beat: 0,
        };
        const result = await kv.atomic().check(current).set(KEY, value).commit();
        if (result.ok) {
          if (held) released.delete(held.holder);
          return new KvLease(kv, path, value, result.versionstamp, opts);
        }
        continue;
      }
      if (watched !== undefined && watched !== current.versionstamp) {
        throw new Error(
          `Cannot open ${path}: it is in use by process ${held.pid} on ${held.hostname} ` +
            `(its lease runs until ${new Date(held.expiresAt).toISOString()}); ` +
            `run one process per data file`,
        );
      }
      if (watched === undefined) {
        // A live holder renews within a beat or two: watch for that before anything else.
        watched = current.versionstamp!;
        const until = now + 2 * opts.beatMs + 100;
        while (Date.now() < until) {
          await sleep(Math.min(50, until - Date.now()));
          if ((await kv.get(KEY)).versionstamp !== watched) break;
        }
      } else {
        // No beat: the holder died without closing. Its lease lapses by itself.
        await sleep(held.expiresAt - now + 10);
      }
    }
  }

  /** True once another process took the lease: this one must not write any more. */
  get lost(): boolean {
    return this.#lost;
  }

  /** Throws when the lease was lost, or lapsed because renewals kept failing. */
  check(): void {
    if (this.#lost) {
      throw new InternalError(
        `Cannot write to ${this.#path}: this process lost its lease on it to another process`,
      );
    }
    if (this.#timer === undefined || Date.now() >= this.#value.expiresAt) {
      throw new InternalError(
        `Cannot write to ${this.#path}: this process's lease on it lapsed at ` +
          new Date(this.#value.expiresAt).toISOString(),
      );
    }
  }

  async #renew(): Promise<void> {
    if (this.#lost || this.#timer === undefined) return;
    const value = {
      ...this.#value,
      expiresAt: Date.now() + this.#leaseMs,
      beat: this.#value.beat + 1,
    };
    try {
      const result = await this.#kv.atomic()
        .check({ key: KEY, versionstamp: this.#versionstamp })
        .set(KEY, value)
        .commit();
      if (result.ok) {
        this.#value = value;
        this.#versionstamp = result.versionstamp;
        return;
      }
      this.#lost = true;
      this.#stop();
      log.error("Lost the lease on {path} to another process; no more writes", {
        path: this.#path,
      });
    } catch (err) {
      // A closed database, or a busy one: the next beat tries again (or the lease lapses).
      log.debug("Cannot renew the lease on {path}: {error}", { path: this.#path, error: err });
    }
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Gives the lease up and deletes it, so that the next process starts at once. */
  async release(): Promise<void> {
    this.#stop();
    await this.#beating;
    if (this.#lost) return;
    await this.#kv.atomic()
      .check({ key: KEY, versionstamp: this.#versionstamp })
      .delete(KEY)
      .commit();
  }

  /**
   * Stops renewing without writing (for a synchronous close): a reopen in this process takes
   * the lease over at once; another process waits for it to lapse.
   */
  drop(): void {
    this.#stop();
    released.add(this.#value.holder);
  }
}
