// The two files the server serves to browsers: the client bundle (`/a2a/client.js`) and the demo
// page (`/`, only when the server runs the demo agent). Both are revalidated on every load (with
// an ETag, so a repeat load is a 304): a browser then never runs a bundle older than the server.

import { demoPageHtml, type DemoPageOptions } from "../demo/page.ts";

interface Asset {
  body: string;
  gzipped: Uint8Array<ArrayBuffer>;
  etag: string;
}

async function asset(body: string): Promise<Asset> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body));
  const hex = Array.from(
    new Uint8Array(digest).slice(0, 16),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
  // Compressed once: Deno.serve sends bodies as they are, and the bundle shrinks to a third.
  const stream = new Blob([body]).stream().pipeThrough(new CompressionStream("gzip"));
  const gzipped = new Uint8Array(await new Response(stream).arrayBuffer());
  return { body, gzipped, etag: `"${hex}"` };
}

/** Whether an Accept-Encoding header accepts gzip (`gzip;q=0` refuses it). */
function acceptsGzip(header: string | null): boolean {
  if (header === null) return false;
  return header.split(",").some((item) => {
    const [coding, ...params] = item.trim().toLowerCase().split(";");
    if (coding !== "gzip" && coding !== "*") return false;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

// Loaded on first request only: the bundle is about 110 KB of source text that a server which
// never serves it need not hold.
let bundle: Promise<Asset> | undefined;

function clientBundle(): Promise<Asset> {
  bundle ??= import("../client/browser_bundle.ts").then((m) => asset(m.CLIENT_BUNDLE));
  return bundle;
}

function respond(req: Request, a: Asset, headers: Record<string, string>): Response {
  if (req.method !== "GET" && req.method !== "HEAD") {
    return new Response("Use GET\n", { status: 405, headers: { allow: "GET, HEAD" } });
  }
  const all: Record<string, string> = {
    ...headers,
    etag: a.etag,
    "cache-control": "public, no-cache",
    "x-content-type-options": "nosniff",
    vary: "Accept-Encoding",
  };
  const inm = req.headers.get("if-none-match");
  if (inm !== null && inm.split(",").some((t) => t.trim() === a.etag || t.trim() === "*")) {
    return new Response(null, { status: 304, headers: all });
  }
  if (acceptsGzip(req.headers.get("accept-encoding"))) {
    all["content-encoding"] = "gzip";
    return new Response(req.method === "HEAD" ? null : a.gzipped, { headers: all });
  }
  return new Response(req.method === "HEAD" ? null : a.body, { headers: all });
}

/**
 * Serves the browser bundle of client.ts.
 *
 * @param req The request.
 * @returns The bundle, a 304, or a 405.
 */
export async function serveClientBundle(req: Request): Promise<Response> {
  await req.body?.cancel();
  return respond(req, await clientBundle(), {
    "content-type": "text/javascript; charset=utf-8",
  });
}

/**
 * The demo page's route.
 *
 * @param basePath The server's base path.
 * @param options What to put in the page.
 * @returns A function that serves the page (or a 304, or a 405).
 */
export function demoPageRoute(
  basePath: string,
  options: DemoPageOptions,
): (req: Request) => Promise<Response> {
  let page: Promise<Asset> | undefined;
  return async (req) => {
    await req.body?.cancel();
    page ??= asset(demoPageHtml(basePath, options));
    return respond(req, await page, {
      "content-type": "text/html; charset=utf-8",
      // The page shows only what it sets as text; its one script is inline and its module comes
      // from this server. The agent's interfaces may be on another origin (behind a proxy).
      "content-security-policy": "default-src 'none'; script-src 'self' 'unsafe-inline'; " +
        "style-src 'unsafe-inline'; connect-src 'self' http: https: ws: wss:; base-uri 'none'; " +
        "form-action 'none'; frame-ancestors 'none'",
    });
  };
}
