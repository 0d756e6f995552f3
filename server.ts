/**
 * The a2a-capnweb server: {@linkcode serve} starts `Deno.serve` with the A2A handler, and
 * running this file starts a demo agent server.
 *
 * ```sh
 * A2A_TOKENS="alice=token-alice,bob=token-bob" deno run -A server.ts --port 8000
 * ```
 *
 * @example Serve your own agent on a free port
 * ```ts
 * import { serve } from "@a2a-capnweb/core/server";
 * import { StaticTokenVerifier, textOf } from "@a2a-capnweb/core";
 *
 * const server = serve({
 *   port: 0,
 *   hostname: "127.0.0.1",
 *   agentCard: {
 *     name: "Shouter",
 *     description: "Answers in capitals",
 *     version: "1.0.0",
 *     capabilities: { streaming: true },
 *     defaultInputModes: ["text/plain"],
 *     defaultOutputModes: ["text/plain"],
 *     skills: [],
 *   },
 *   executor: {
 *     async execute(ctx, events) {
 *       const text = textOf(ctx.message).toUpperCase();
 *       await events.artifact({ artifactId: "out", parts: [{ text }] });
 *       await events.status("TASK_STATE_COMPLETED");
 *     },
 *   },
 *   verifier: StaticTokenVerifier.fromList("alice=token-alice"),
 * });
 * console.log(`listening on ${server.url}`);
 * await server.shutdown();
 * ```
 *
 * @module
 */

import { configure, getConsoleSink, getLogger } from "@logtape/logtape";
import { JwtVerifier } from "./src/auth/jwt.ts";
import { StaticTokenVerifier, type TokenVerifier } from "./src/auth/tokens.ts";
import { demoAgent, demoAgentCard } from "./src/demo/agent.ts";
import { KvTaskStore } from "./src/tasks/kv_store.ts";
import { PostgresTaskStore } from "./src/tasks/pg_store.ts";
import {
  type A2AHandler,
  type AgentCardInput,
  createHandler,
  type HandlerOptions,
  type HandlerStats,
  type ServerLimits,
} from "./src/http/handler.ts";

export { createHandler };
export type { A2AHandler, AgentCardInput, HandlerOptions, HandlerStats, ServerLimits };

/** Options of {@linkcode serve}: the handler's options plus where to listen. */
export interface ServeOptions extends HandlerOptions {
  /** The port; 0 picks a free one (default 8000). */
  port?: number;
  /** The interface to listen on (default `127.0.0.1`). */
  hostname?: string;
  /** Called once the server listens. */
  onListen?: (addr: Deno.NetAddr) => void;
  /** How long `shutdown()` lets calls in progress finish, in milliseconds (default 10 000). */
  shutdownTimeoutMs?: number;
  /**
   * The server's TLS certificate chain, PEM (the leaf first, then intermediates); with `key`, the
   * server speaks HTTPS and WSS only (Deno.serve's own TLS, which offers HTTP/2 to clients that
   * negotiate it by ALPN, and HTTP/1.1, which WebSockets use), and its card advertises `https://`
   * URLs. Leave both out behind a proxy that terminates TLS.
   */
  cert?: string;
  /** The private key of `cert`, PEM. */
  key?: string;
}

/** A running server. */
export interface A2AServer {
  /** The address it listens on. */
  readonly addr: Deno.NetAddr;
  /**
   * Its base URL, e.g. `http://127.0.0.1:8000`, with the `basePath` when there is one
   * (`http://127.0.0.1:8000/agents/echo`): what a client connects to.
   */
  readonly url: string;
  /** The request handler (for stats). */
  readonly handler: A2AHandler;
  /** Resolves when the server has stopped. */
  readonly finished: Promise<void>;
  /** Closes WebSockets with 1001, stops accepting, and waits for in-flight requests. */
  shutdown(): Promise<void>;
}

/**
 * Starts an A2A server with `Deno.serve`.
 *
 * @param options The agent, the token verifier, and where to listen.
 * @returns The running server.
 */
export function serve(options: ServeOptions): A2AServer {
  if ((options.cert === undefined) !== (options.key === undefined)) {
    throw new TypeError("Invalid TLS options: cert and key go together, give both or neither");
  }
  const tls = options.cert !== undefined && options.key !== undefined
    ? { cert: options.cert, key: options.key }
    : undefined;
  const handler = createHandler(options);
  const ac = new AbortController();
  const httpServer = Deno.serve({
    port: options.port ?? 8000,
    hostname: options.hostname ?? "127.0.0.1",
    signal: ac.signal,
    onListen: (addr) => options.onListen?.(addr),
    ...tls,
  }, handler);
  const addr = httpServer.addr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  // createHandler has checked it.
  const basePath = (options.basePath ?? "").replace(/\/+$/, "");
  let stopping: Promise<void> | undefined;
  return {
    addr,
    url: `${tls ? "https" : "http"}://${host}:${addr.port}${basePath}`,
    handler,
    finished: httpServer.finished,
    shutdown() {
      stopping ??= (async () => {
        await handler.close("Server shutting down", {
          deadlineMs: options.shutdownTimeoutMs ?? 10_000,
        });
        // Stop accepting and let responses still being written (the last SSE events) finish;
        // past the deadline, cut them.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const deadline = new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), options.shutdownTimeoutMs ?? 10_000);
        });
        const drained = await Promise.race([httpServer.shutdown().then(() => true), deadline]);
        clearTimeout(timer);
        if (!drained) ac.abort();
        await httpServer.finished;
      })();
      return stopping;
    },
  };
}

/** The tokens the demo server accepts when `A2A_TOKENS` is not set. */
export const DEMO_TOKENS = "alice=token-alice,bob=token-bob";

interface ServerArgs {
  port: number;
  hostname: string;
  publicUrl?: string;
  dataPath?: string;
  postgresUrl?: string;
  allowedOrigins?: string;
  noAuth: boolean;
  basePath?: string;
  shutdownTimeoutMs?: number;
  streamBuffer?: number;
  noPush: boolean;
  noExtendedCard: boolean;
  requireExtension?: string;
  certFile?: string;
  keyFile?: string;
  trustedProxies: string[];
  metrics: boolean;
}

/** The `allowedOrigins` option from `"*"` or a comma-separated list (none when unset). */
function originsOption(list: string | undefined): Pick<ServeOptions, "allowedOrigins"> {
  if (!list) return {};
  const origins = list.split(",").map((o) => o.trim()).filter((o) => o !== "");
  return { allowedOrigins: origins.includes("*") ? "*" : origins };
}

/** The entries of a comma-separated list, trimmed, without empty ones. */
function csvList(text: string): string[] {
  return text.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** A whole number of at least `min` from a flag's value. */
function count(flag: string, text: string, min = 0): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) {
    throw new TypeError(`Invalid value for ${flag}: ${text} (a whole number, at least ${min})`);
  }
  return n;
}

function parseArgs(args: string[]): ServerArgs {
  const out: ServerArgs = {
    port: 8000,
    hostname: "127.0.0.1",
    noAuth: false,
    noPush: false,
    noExtendedCard: false,
    trustedProxies: [],
    metrics: false,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const [flag, inline] = arg.includes("=") ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = () => {
      const v = inline ?? args[++i];
      if (v === undefined) throw new TypeError(`Missing value for ${flag}`);
      return v;
    };
    switch (flag) {
      case "--port": {
        const port = Number(value());
        if (!Number.isInteger(port) || port < 0 || port > 65535) {
          throw new TypeError(`Invalid port: ${port}`);
        }
        out.port = port;
        break;
      }
      case "--hostname":
        out.hostname = value();
        break;
      case "--public-url":
        out.publicUrl = new URL(value()).origin;
        break;
      case "--allowed-origins":
        out.allowedOrigins = value();
        break;
      case "--data":
        out.dataPath = value();
        break;
      case "--postgres":
        out.postgresUrl = value();
        break;
      case "--no-auth":
        if (inline !== undefined) throw new TypeError("--no-auth takes no value");
        out.noAuth = true;
        break;
      case "--base-path":
        out.basePath = value();
        break;
      case "--cert":
        out.certFile = value();
        break;
      case "--key":
        out.keyFile = value();
        break;
      case "--trusted-proxy":
        out.trustedProxies.push(...csvList(value()));
        break;
      case "--shutdown-timeout":
        out.shutdownTimeoutMs = count(flag, value());
        break;
      case "--stream-buffer":
        out.streamBuffer = count(flag, value(), 1);
        break;
      case "--no-push":
      case "--no-extended-card":
        if (inline !== undefined) throw new TypeError(`${flag} takes no value`);
        if (flag === "--no-push") out.noPush = true;
        else out.noExtendedCard = true;
        break;
      case "--require-extension":
        out.requireExtension = value();
        break;
      case "--metrics":
        if (inline !== undefined) throw new TypeError("--metrics takes no value");
        out.metrics = true;
        break;
      case "--help":
      case "-h":
        throw new TypeError("help");
      default:
        throw new TypeError(`Unknown option: ${arg}`);
    }
  }
  return out;
}

const USAGE = `Usage: deno run -A server.ts [--port N] [--hostname H]
         [--public-url URL] [--base-path PATH] [--data PATH | --postgres URL]
         [--allowed-origins LIST] [--no-auth] [--shutdown-timeout MS]
         [--cert FILE --key FILE] [--trusted-proxy LIST] [--metrics]
         [--stream-buffer N] [--no-push] [--no-extended-card] [--require-extension URI]

Runs the a2a-capnweb demo agent.
  --port N          port to listen on (default 8000; 0 picks a free port)
  --hostname H      interface to listen on (default 127.0.0.1)
  --public-url URL  base URL to advertise in the agent card (behind a proxy)
  --cert FILE --key FILE  serve HTTPS and WSS with this PEM certificate chain and key
                    (HTTP/2 for clients that negotiate it); the card advertises https URLs
  --trusted-proxy LIST  addresses or CIDR ranges of the reverse proxies in front,
                    comma-separated or repeated: from them the client address (for the
                    per-address limits and logs) is read from X-Forwarded-For; from
                    anyone else the header is ignored
  --metrics         serve GET /metrics (Prometheus text format); with A2A_METRICS_TOKEN set,
                    only to requests that send it as a bearer token
  --base-path PATH  serve every endpoint under PATH, e.g. /agents/echo: the card at
                    PATH/.well-known/agent-card.json, capnweb at PATH/a2a/capnweb, ...
                    (nothing is served outside it, the root's agent card included)
  --no-auth         run an open agent: no token needed, every caller is the user
                    "anonymous" (A2A_ANONYMOUS_USER to change it), who shares the
                    per-user quotas with every other caller; per-address limits still
                    apply. A2A_TOKENS and A2A_JWT_* are ignored
  --data PATH       keep tasks in a Deno KV database at PATH (Deno KV: enabled by this
                    repository's deno.json, else run with --unstable-kv); tasks
                    left running by a previous process are marked FAILED at start
                    (default: in memory, lost on exit)
  --postgres URL    keep tasks, event logs, push deliveries and tickets in PostgreSQL
                    (postgres://user:password@host:port/db); any number of processes
                    may share the database and serve as one agent behind a load
                    balancer; tasks of a process that died are marked FAILED once its
                    lease lapses (A2A_PG_LEASE_MS, default 15000)
  --allowed-origins LIST  browser origins that may call the server, comma-separated
                    exact origins ("https://app.example.com") or "*" (default "*";
                    requests without an Origin header and same-origin ones always pass)
  --shutdown-timeout MS  how long SIGTERM/SIGINT lets calls in progress and the streams'
                    last events finish before the sockets close (default 10000)
To reach the error paths of the protocol by hand (docs/BINDING.md section 8):
  --stream-buffer N events that may wait per stream (default 1024): a small N makes a
                    slow consumer's stream end with -31002 after a few events
  --no-push         declare no push notifications: push operations answer -32003
  --no-extended-card  declare an extended agent card but configure none:
                    GetExtendedAgentCard answers -32007
  --require-extension URI  declare URI as a required extension: a client that does not
                    list it in A2A-Extensions (or authenticate's extensions) gets -32008
Environment:
  A2A_TOKENS        bearer tokens, "user=token,user2=token2" (default "${DEMO_TOKENS}")
  A2A_JWT_JWKS_URL  verify bearer tokens as JWTs signed by keys from this JWKS URL
                    (replaces A2A_TOKENS; https, or http on a loopback host)
  A2A_JWT_ISSUER    the required "iss" (required with A2A_JWT_JWKS_URL)
  A2A_JWT_AUDIENCE  the required "aud", comma-separated for several (required too)
  A2A_JWT_ALGORITHMS  allowed "alg" values, comma-separated (default RS256,ES256,EdDSA)
  A2A_JWT_USER_CLAIM  the claim that names the user (default sub)
  A2A_DATA          the same as --data (one process per data file: a second one refuses
                    to start; a killed one's lease lapses after A2A_KV_LEASE_MS, 10000)
  A2A_ALLOWED_ORIGINS  the same as --allowed-origins
  A2A_BASE_PATH     the same as --base-path
  A2A_ANONYMOUS_USER  with --no-auth, the user id every caller acts as (default anonymous)
  A2A_POSTGRES_URL  the same as --postgres
  A2A_TLS_CERT, A2A_TLS_KEY  the same as --cert and --key (file paths)
  A2A_TRUSTED_PROXIES  the same as --trusted-proxy
  A2A_SHUTDOWN_TIMEOUT_MS  the same as --shutdown-timeout
  A2A_METRICS=1     the same as --metrics
  A2A_METRICS_TOKEN  the bearer token /metrics asks for (implies --metrics)
  A2A_PUSH_ALLOW_LOOPBACK=1  let push webhooks reach loopback addresses (local receivers)
  A2A_PUSH_ALLOW_PRIVATE=1   let push webhooks reach private (RFC 1918, fc00::/7) addresses`;

/** `/metrics` from `--metrics`, `A2A_METRICS` and `A2A_METRICS_TOKEN`: off unless asked for. */
function metricsOption(args: ServerArgs): Pick<ServeOptions, "metrics"> {
  const token = Deno.env.get("A2A_METRICS_TOKEN") || undefined;
  if (token !== undefined) return { metrics: { token } };
  return args.metrics || Deno.env.get("A2A_METRICS") === "1" ? { metrics: true } : {};
}

/** A card without security schemes or requirements, for an open agent. */
function openCard(card: AgentCardInput): AgentCardInput {
  const { securitySchemes: _schemes, securityRequirements: _requirements, ...rest } = card;
  return {
    ...rest,
    skills: rest.skills.map(({ securityRequirements: _skill, ...skill }) => skill),
  };
}

/** The demo card as the flags that provoke errors change it (`--no-push`, ...). */
function withErrorFlags(card: AgentCardInput, args: ServerArgs): AgentCardInput {
  const capabilities = { ...card.capabilities };
  if (args.noPush) capabilities.pushNotifications = false;
  if (args.requireExtension !== undefined) {
    capabilities.extensions = [
      ...(capabilities.extensions ?? []),
      {
        uri: args.requireExtension,
        required: true,
        description: "Required by --require-extension",
      },
    ];
  }
  return { ...card, capabilities };
}

/** Whether the server accepts the documented demo tokens (no --no-auth, A2A_TOKENS or JWT). */
function usesDemoTokens(args: ServerArgs): boolean {
  const env = (name: string) => Deno.env.get(name)?.trim() || undefined;
  return !args.noAuth && env("A2A_JWT_JWKS_URL") === undefined && env("A2A_TOKENS") === undefined;
}

/** The PEM certificate and key from their files, or nothing; exits when they cannot be read. */
function readTls(
  certFile: string | undefined,
  keyFile: string | undefined,
): { cert: string; key: string } | Record<never, never> {
  if (certFile === undefined && keyFile === undefined) return {};
  if (certFile === undefined || keyFile === undefined) {
    // deno-lint-ignore no-console
    console.error("Give both --cert and --key (or A2A_TLS_CERT and A2A_TLS_KEY), or neither");
    Deno.exit(2);
  }
  const read = (file: string, what: string) => {
    try {
      return Deno.readTextFileSync(file);
    } catch (err) {
      // deno-lint-ignore no-console
      console.error(`Cannot read the TLS ${what} ${file}: ${(err as Error).message}`);
      Deno.exit(2);
    }
  };
  return { cert: read(certFile, "certificate"), key: read(keyFile, "key") };
}

/** The verifier from the environment: JWT when A2A_JWT_JWKS_URL is set, else A2A_TOKENS. */
function verifierFromEnv(): TokenVerifier {
  const env = (name: string) => Deno.env.get(name)?.trim() || undefined;
  const csv = (v: string) => v.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const jwksUrl = env("A2A_JWT_JWKS_URL");
  if (jwksUrl === undefined) {
    const tokens = env("A2A_TOKENS");
    if (!tokens) {
      getLogger(["a2a-capnweb", "server"]).warn(
        "A2A_TOKENS is not set: accepting the demo tokens {tokens}",
        { tokens: DEMO_TOKENS },
      );
    }
    return StaticTokenVerifier.fromList(tokens || DEMO_TOKENS);
  }
  const issuer = env("A2A_JWT_ISSUER");
  const audience = env("A2A_JWT_AUDIENCE");
  const algorithms = env("A2A_JWT_ALGORITHMS");
  const userClaim = env("A2A_JWT_USER_CLAIM");
  try {
    if (issuer === undefined || audience === undefined) {
      throw new TypeError("A2A_JWT_ISSUER and A2A_JWT_AUDIENCE are required");
    }
    return new JwtVerifier({
      jwksUrl,
      issuer,
      audience: csv(audience),
      ...(algorithms !== undefined && { algorithms: csv(algorithms) }),
      ...(userClaim !== undefined && { userClaim }),
    });
  } catch (err) {
    // deno-lint-ignore no-console
    console.error(`Cannot set up JWT verification: ${(err as Error).message}`);
    Deno.exit(2);
  }
}

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs(Deno.args);
  } catch (err) {
    const msg = (err as Error).message;
    if (msg === "help") {
      // deno-lint-ignore no-console
      console.log(USAGE);
      Deno.exit(0);
    }
    // deno-lint-ignore no-console
    console.error(`${msg}\n\n${USAGE}`);
    Deno.exit(2);
  }
  const missing = missingPermissions();
  if (missing.length > 0) {
    // deno-lint-ignore no-console
    console.error(permissionAdvice(`it needs ${missing.join(" ")}`));
    Deno.exit(2);
  }
  await configure({
    sinks: { console: getConsoleSink() },
    loggers: [
      { category: ["a2a-capnweb"], lowestLevel: "info", sinks: ["console"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["console"] },
    ],
  });
  const log = getLogger(["a2a-capnweb", "server"]);
  const verifier = args.noAuth ? undefined : verifierFromEnv();
  const anonymousUserId = args.noAuth ? Deno.env.get("A2A_ANONYMOUS_USER") || undefined : undefined;
  const basePath = args.basePath ?? (Deno.env.get("A2A_BASE_PATH") || undefined);
  const dataPath = args.dataPath ?? (Deno.env.get("A2A_DATA") || undefined);
  const postgresUrl = args.postgresUrl ?? (Deno.env.get("A2A_POSTGRES_URL") || undefined);
  if (dataPath !== undefined && postgresUrl !== undefined) {
    // deno-lint-ignore no-console
    console.error("Choose one store: --data (Deno KV) or --postgres, not both");
    Deno.exit(2);
  }
  const tls = readTls(
    args.certFile ?? (Deno.env.get("A2A_TLS_CERT") || undefined),
    args.keyFile ?? (Deno.env.get("A2A_TLS_KEY") || undefined),
  );
  const trustedProxies = args.trustedProxies.length > 0
    ? args.trustedProxies
    : csvList(Deno.env.get("A2A_TRUSTED_PROXIES") ?? "");
  let store: KvTaskStore | undefined;
  let shared: PostgresTaskStore | undefined;
  if (postgresUrl !== undefined) {
    try {
      const leaseMs = Number(Deno.env.get("A2A_PG_LEASE_MS") || 15_000);
      shared = await PostgresTaskStore.connect(postgresUrl, { leaseMs });
    } catch (err) {
      // The URL may carry a password: name the host only.
      let where = "the database";
      try {
        const u = new URL(postgresUrl);
        where = `${u.hostname}:${u.port || 5432}${u.pathname}`;
      } catch {
        // not a URL: say nothing of it
      }
      // deno-lint-ignore no-console
      console.error(`Cannot connect to PostgreSQL at ${where}: ${(err as Error).message}`);
      Deno.exit(1);
    }
  }
  if (dataPath !== undefined) {
    try {
      const leaseMs = Number(Deno.env.get("A2A_KV_LEASE_MS") || 10_000);
      store = await KvTaskStore.open(dataPath, { lease: { leaseMs } });
    } catch (err) {
      // A database held by another process names itself and its holder already.
      const msg = (err as Error).message;
      // deno-lint-ignore no-console
      console.error(
        msg.includes(dataPath) ? msg : `Cannot open the task database ${dataPath}: ${msg}`,
      );
      Deno.exit(1);
    }
  }
  // The demo card declares the bearer scheme; an open agent's card must not.
  const card = withErrorFlags(args.noAuth ? openCard(demoAgentCard) : demoAgentCard, args);
  const shutdownTimeout = args.shutdownTimeoutMs ??
    (Deno.env.get("A2A_SHUTDOWN_TIMEOUT_MS") || undefined);
  let server: A2AServer;
  try {
    server = serve({
      port: args.port,
      hostname: args.hostname,
      ...(args.publicUrl !== undefined && { publicUrl: args.publicUrl }),
      ...tls,
      ...(trustedProxies.length > 0 && { trustedProxies }),
      ...(basePath !== undefined && { basePath }),
      ...(anonymousUserId !== undefined && { anonymousUserId }),
      ...originsOption(args.allowedOrigins ?? Deno.env.get("A2A_ALLOWED_ORIGINS")),
      agentCard: card,
      executor: demoAgent,
      // The page offers alice's token only when the server accepts the documented demo tokens.
      demoPage: usesDemoTokens(args) ? { token: "token-alice" } : true,
      ...metricsOption(args),
      ...(shutdownTimeout !== undefined &&
        { shutdownTimeoutMs: count("A2A_SHUTDOWN_TIMEOUT_MS", String(shutdownTimeout)) }),
      ...(args.streamBuffer !== undefined &&
        { limits: { subscriberBufferLimit: args.streamBuffer } }),
      ...(verifier && { verifier }),
      ...(store && { store }),
      ...(shared && { store: shared, tickets: shared.tickets }),
      push: {
        allowLoopback: Deno.env.get("A2A_PUSH_ALLOW_LOOPBACK") === "1",
        allowPrivateDestinations: Deno.env.get("A2A_PUSH_ALLOW_PRIVATE") === "1",
      },
      ...(!args.noExtendedCard && {
        extendedAgentCard: {
          ...card,
          description: `${card.description} (extended card for authenticated users)`,
        },
      }),
    });
  } catch (err) {
    // A bad --base-path or A2A_ANONYMOUS_USER: the options are checked as the server starts.
    // deno-lint-ignore no-console
    console.error(`Cannot start the server: ${(err as Error).message}`);
    await Promise.allSettled([store?.release(), shared?.close()]);
    Deno.exit(2);
  }
  if (store) {
    // Before announcing the URL: a client that waits for it never sees a stale WORKING task.
    const failed = await server.handler.manager.recover();
    log.info("Tasks in {path}; {failed} left running by the previous process marked FAILED", {
      path: dataPath,
      failed,
    });
  }
  if (shared) {
    const failed = await server.handler.manager.recover();
    log.info("Tasks in PostgreSQL (process {id}); {failed} of dead processes marked FAILED", {
      id: shared.processId,
      failed,
    });
  }
  // deno-lint-ignore no-console
  console.log(
    `a2a-capnweb demo agent listening on ${server.url}${
      args.noAuth ? " (open: no token needed)" : ""
    }`,
  );
  let stopping = false;
  const stop = () => {
    // A second signal (an impatient Ctrl-C, or SIGTERM after SIGINT) changes nothing.
    if (stopping) return log.debug("Already shutting down");
    stopping = true;
    log.info("Shutting down");
    server.shutdown().finally(() => Promise.allSettled([store?.release(), shared?.close()]))
      .then(() => Deno.exit(0));
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await server.finished;
}

/** The run flags that every start needs and this process lacks (without prompting for them). */
function missingPermissions(): string[] {
  const needed = ["net", "env"] as const;
  return needed.filter((name) => Deno.permissions.querySync({ name }).state !== "granted")
    .map((name) => `--allow-${name}`);
}

function permissionAdvice(detail: string): string {
  return `Cannot start the server: ${detail}. Run it with \`deno task start\`, or add the flags:\n` +
    "  deno run --allow-net --allow-env --allow-read --allow-write --allow-sys server.ts";
}

if (import.meta.main) {
  try {
    await main();
  } catch (err) {
    // A permission that only some options need (--data needs --allow-read and --allow-write):
    // Deno's message names the flag, and a stack trace would only hide it.
    if (!(err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied)) {
      throw err;
    }
    // deno-lint-ignore no-console
    console.error(permissionAdvice(err.message.replace(/^Requires/, "it requires")));
    Deno.exit(2);
  }
}
