// A throwaway PostgreSQL cluster for the tests: initdb and pg_ctl from the machine's PostgreSQL
// binaries, run as an unprivileged user, in a temp dir, on a free port, removed at exit. One
// cluster per test process; each test takes a fresh database from it.
//
// Without PostgreSQL binaries the suites that need it are skipped, unless A2A_REQUIRE_POSTGRES=1
// (set by .ci/run), which turns a missing PostgreSQL into a failure.

import postgres from "postgres";
import { migrate } from "../src/tasks/pg_schema.ts";

/** A running cluster. */
export interface PgCluster {
  /** The port it listens on, on 127.0.0.1. */
  port: number;
  /** A URL for a database of the cluster. */
  url(database?: string): string;
}

/** Whether the suites must run (CI) rather than be skipped when PostgreSQL is missing. */
export const REQUIRE_POSTGRES = Deno.env.get("A2A_REQUIRE_POSTGRES") === "1";

function findBinDir(): string | undefined {
  const fromEnv = Deno.env.get("A2A_PG_BINDIR");
  if (fromEnv) return fromEnv;
  try {
    const versions = [...Deno.readDirSync("/usr/lib/postgresql")]
      .map((e) => e.name).filter((n) => /^\d+$/.test(n)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) {
      const dir = `/usr/lib/postgresql/${v}/bin`;
      try {
        Deno.statSync(`${dir}/initdb`);
        return dir;
      } catch {
        // next version
      }
    }
  } catch {
    // no Debian layout
  }
  return undefined;
}

/** Runs a command as the cluster's user; throws with its output when it fails. */
function run(user: string | undefined, cmd: string, args: string[]): void {
  const command = user === undefined
    ? new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" })
    : new Deno.Command("runuser", {
      args: ["-u", user, "--", cmd, ...args],
      stdout: "piped",
      stderr: "piped",
    });
  const out = command.outputSync();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    throw new Error(`${cmd} failed: ${text.slice(0, 2000)}`);
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

let cluster: PgCluster | undefined | null = null;

/**
 * Starts the test process's cluster on first use.
 *
 * @returns The cluster, or undefined when PostgreSQL is not installed (and not required).
 */
export function pgCluster(): PgCluster | undefined {
  if (cluster !== null) return cluster;
  const bin = findBinDir();
  if (bin === undefined) {
    if (REQUIRE_POSTGRES) {
      throw new Error("PostgreSQL is required (A2A_REQUIRE_POSTGRES=1) but initdb was not found");
    }
    cluster = undefined;
    return undefined;
  }
  // initdb refuses to run as root: run the cluster as the package's `postgres` user then.
  const user = Deno.uid() === 0 ? "postgres" : undefined;
  const dir = Deno.makeTempDirSync({ prefix: "a2a-pg-" });
  if (user !== undefined) {
    const id = new Deno.Command("id", { args: ["-u", user], stdout: "piped" }).outputSync();
    const gid = new Deno.Command("id", { args: ["-g", user], stdout: "piped" }).outputSync();
    Deno.chownSync(
      dir,
      Number(new TextDecoder().decode(id.stdout)),
      Number(new TextDecoder().decode(gid.stdout)),
    );
  }
  const data = `${dir}/data`;
  const port = freePort();
  run(user, `${bin}/initdb`, ["-D", data, "-U", "a2a", "--auth=trust", "-E", "UTF8", "--no-sync"]);
  run(user, `${bin}/pg_ctl`, [
    "-D",
    data,
    "-l",
    `${dir}/server.log`,
    "-w",
    "-o",
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off ` +
    `-c full_page_writes=off -c max_connections=300`,
    "start",
  ]);
  globalThis.addEventListener("unload", () => {
    try {
      run(user, `${bin}/pg_ctl`, ["-D", data, "-m", "immediate", "-w", "stop"]);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
  cluster = {
    port,
    url: (database = "postgres") => `postgres://a2a@127.0.0.1:${port}/${database}`,
  };
  return cluster;
}

/** A connection of its own; no max_lifetime, whose timer can outlive `end()`. */
function connect(url: string): postgres.Sql {
  return postgres(url, { max: 1, onnotice: () => {}, max_lifetime: null });
}

async function createDatabase(c: PgCluster, name: string, template?: string): Promise<void> {
  const admin = connect(c.url());
  try {
    await admin.unsafe(`CREATE DATABASE ${name}${template ? ` TEMPLATE ${template}` : ""}`);
  } finally {
    await admin.end();
  }
}

/** The template with the a2a schema, migrated once per test process. */
let template: Promise<string> | undefined;

function migratedTemplate(c: PgCluster): Promise<string> {
  return template ??= (async () => {
    const name = `a2a_template_${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`;
    await createDatabase(c, name);
    const sql = connect(c.url(name));
    try {
      await migrate(sql);
    } finally {
      await sql.end();
    }
    return name;
  })();
}

/**
 * Creates a fresh database in the cluster: with the a2a schema in place (copied from a template
 * migrated once, which saves each store's first connect the migration), or empty.
 *
 * @param options `schema: false` for an empty database (to test migrations).
 * @returns Its URL, or undefined when PostgreSQL is not available.
 */
export async function freshDatabase(
  options: { schema?: boolean } = {},
): Promise<string | undefined> {
  const c = pgCluster();
  if (c === undefined) return undefined;
  const name = `t_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  await createDatabase(c, name, options.schema === false ? undefined : await migratedTemplate(c));
  return c.url(name);
}

/** Test options that skip a suite when PostgreSQL is not installed (never under CI). */
export const PG_TEST = { ignore: !REQUIRE_POSTGRES && findBinDir() === undefined };
