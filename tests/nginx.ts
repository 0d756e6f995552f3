// A real nginx for the deployment tests: Debian's binary, started on free ports with the config
// that ships in docs/deploy/nginx.conf (its upstreams, ports, certificate paths and read timeout
// replaced), pid, logs and temp files in a temp dir, stopped and removed on disposal.
//
// Without nginx the suites are skipped, unless A2A_REQUIRE_NGINX=1 (set by .ci/run).

/** Whether the suites must run (CI) rather than be skipped when nginx is missing. */
export const REQUIRE_NGINX = Deno.env.get("A2A_REQUIRE_NGINX") === "1";

function findNginx(): string | undefined {
  for (const path of [Deno.env.get("A2A_NGINX"), "/usr/sbin/nginx", "/usr/bin/nginx"]) {
    if (!path) continue;
    try {
      Deno.statSync(path);
      return path;
    } catch {
      // next
    }
  }
  return undefined;
}

const NGINX = findNginx();

/** Test options that skip a suite when nginx is not installed (never under CI). */
export const NGINX_TEST = { ignore: !REQUIRE_NGINX && NGINX === undefined };

/** The shipped config. */
export const SHIPPED_CONF = new URL("../docs/deploy/nginx.conf", import.meta.url);

/** A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** What the test changes in the shipped config. */
export interface NginxOptions {
  /** The servers behind it, `127.0.0.1:port` each. */
  upstreams: readonly number[];
  /** The certificate and key files nginx presents. */
  certFile: string;
  /** The key of `certFile`. */
  keyFile: string;
  /** The HTTPS port (default: a free one). */
  port?: number;
  /** `proxy_read_timeout` in seconds (the shipped file has 75). */
  readTimeoutSeconds?: number;
}

/**
 * The shipped config with the test's upstreams, ports, certificate and timeout. Every directive
 * it replaces must be in the file: a shipped config that lost one fails the test here.
 *
 * @param text The shipped config.
 * @param options The test's values, with both ports chosen.
 * @returns The config to run.
 */
export function renderConf(
  text: string,
  options: NginxOptions & { port: number; httpPort: number },
): string {
  let out = text;
  const replace = (pattern: RegExp, by: string | ((...m: string[]) => string)) => {
    if (!pattern.test(out)) throw new Error(`docs/deploy/nginx.conf has no ${pattern}`);
    out = out.replace(pattern, by as string);
  };
  // The upstream's server lines become one per test server, with the shipped parameters.
  replace(
    /^(\s*)server 127\.0\.0\.1:\d+( [^;\n]*)?;\n(?:\s*server 127\.0\.0\.1:\d+[^;\n]*;\n)*/m,
    (_all, indent, params = "") =>
      options.upstreams.map((p) => `${indent}server 127.0.0.1:${p}${params};\n`).join(""),
  );
  replace(/^(\s*)listen 80;$/m, `$1listen 127.0.0.1:${options.httpPort};`);
  replace(/^\s*listen \[::\]:80;\n/m, "");
  replace(/^(\s*)listen 443 ssl http2;$/m, `$1listen 127.0.0.1:${options.port} ssl http2;`);
  replace(/^\s*listen \[::\]:443 ssl http2;\n/m, "");
  replace(/^(\s*)ssl_certificate \S+;$/m, `$1ssl_certificate ${options.certFile};`);
  replace(/^(\s*)ssl_certificate_key \S+;$/m, `$1ssl_certificate_key ${options.keyFile};`);
  if (options.readTimeoutSeconds !== undefined) {
    replace(
      /^(\s*)proxy_read_timeout \S+;$/m,
      `$1proxy_read_timeout ${options.readTimeoutSeconds}s;`,
    );
  }
  return out;
}

/** A running nginx. */
export interface Nginx extends AsyncDisposable {
  /** Its HTTPS base URL, `https://127.0.0.1:<port>`. */
  readonly url: string;
  /** Its HTTPS port. */
  readonly port: number;
  /** Its plain HTTP port (which redirects). */
  readonly httpPort: number;
  /** `nginx -s reload`: new workers take new connections; old ones drop theirs within 1 s. */
  reload(): Promise<void>;
  /** The access log: `<client> <upstream> <status> <request line>` per request. */
  accessLog(): Promise<string>;
}

/**
 * Starts nginx with the shipped config in the foreground and waits until it accepts connections.
 *
 * @param options The upstreams, certificate and timeouts.
 * @returns The running nginx.
 */
export async function startNginx(options: NginxOptions): Promise<Nginx> {
  if (NGINX === undefined) throw new Error("nginx is not installed (apt-get install nginx)");
  const dir = await Deno.makeTempDir({ prefix: "a2a-nginx-" });
  // As root, nginx's workers run as an unprivileged user, who must reach the temp dirs.
  const root = Deno.uid() === 0;
  if (root) await Deno.chmod(dir, 0o755);
  const port = options.port ?? freePort();
  const httpPort = freePort();
  const site = renderConf(await Deno.readTextFile(SHIPPED_CONF), { ...options, port, httpPort });
  await Deno.writeTextFile(`${dir}/a2a.conf`, site);
  // What Debian's /etc/nginx/nginx.conf provides around conf.d/*.conf, inside the temp dir, and
  // the worker_shutdown_timeout that docs/DEPLOYMENT.md asks for (short here).
  await Deno.writeTextFile(
    `${dir}/nginx.conf`,
    `${root ? "user nobody nogroup;\n" : ""}worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log notice;
worker_shutdown_timeout 1s;
events { worker_connections 1024; }
http {
  log_format a2a '$remote_addr $upstream_addr $status "$request"';
  access_log ${dir}/access.log a2a;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/a2a.conf;
}
`,
  );
  const args = ["-p", dir, "-e", `${dir}/error.log`, "-c", `${dir}/nginx.conf`];
  const child = new Deno.Command(NGINX, {
    args: [...args, "-g", "daemon off;"],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let exited = false;
  const status = child.status.finally(() => exited = true);
  const stop = async () => {
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
    }
    await status;
    await stderr;
  };
  const errorLog = () => Deno.readTextFile(`${dir}/error.log`).catch(() => "");
  try {
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (exited) throw new Error(`nginx exited: ${await stderr}${await errorLog()}`);
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conn.close();
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`nginx did not listen: ${await errorLog()}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  } catch (err) {
    await stop();
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
  return {
    url: `https://127.0.0.1:${port}`,
    port,
    httpPort,
    async reload() {
      const out = await new Deno.Command(NGINX, {
        args: [...args, "-s", "reload"],
        stdout: "null",
        stderr: "piped",
      }).output();
      if (!out.success) throw new Error(`nginx -s reload: ${new TextDecoder().decode(out.stderr)}`);
    },
    accessLog: () => Deno.readTextFile(`${dir}/access.log`).catch(() => ""),
    async [Symbol.asyncDispose]() {
      try {
        await stop();
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  };
}
