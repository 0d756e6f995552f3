// Where a webhook may point: IP address classification and the destination check that keeps
// push notifications from reaching the server's own network (SSRF protection).

/**
 * What kind of address an IP address is, as far as webhook destinations are concerned:
 *
 * - `public`: a global unicast address;
 * - `loopback`: 127.0.0.0/8, ::1, and the name `localhost`;
 * - `private`: 10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT), 198.18/15 (benchmarking),
 *   fc00::/7 (unique local), fec0::/10 (site-local) and 64:ff9b:1::/48 (local NAT64);
 * - `link-local`: 169.254/16 and fe80::/10 (including cloud metadata endpoints such as
 *   169.254.169.254);
 * - `unspecified`: 0.0.0.0/8 and ::;
 * - `multicast`: 224/4 and ff00::/8;
 * - `reserved`: 240/4 (with 255.255.255.255), 192.0.0.0/24, Teredo, discard-only and
 *   unallocated IPv6 space.
 *
 * IPv6 addresses that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
 * `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d` and 6to4 `2002:aabb:ccdd::`) take the kind of the
 * embedded address.
 */
export type AddressKind =
  | "public"
  | "loopback"
  | "private"
  | "link-local"
  | "unspecified"
  | "multicast"
  | "reserved";

/** Which kinds of destination a webhook may have besides public addresses. */
export interface DestinationPolicy {
  /** Allow loopback destinations (127.0.0.0/8, ::1, `localhost`); default false. */
  allowLoopback?: boolean;
  /** Allow private destinations (RFC 1918, unique local, CGNAT); default false. */
  allowPrivateDestinations?: boolean;
  /** Require `https:` webhook URLs; default false. */
  requireHttps?: boolean;
}

/** Resolves a host name to its IP addresses (A and AAAA records). */
export type HostResolver = (hostname: string, signal: AbortSignal) => Promise<string[]>;

function parseIPv4(text: string): number[] | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes: number[] = [];
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    bytes.push(n);
  }
  return bytes;
}

function parseIPv6(text: string): number[] | undefined {
  let s = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const zone = s.indexOf("%");
  if (zone >= 0) s = s.slice(0, zone);
  let v4: number[] | undefined;
  const lastColon = s.lastIndexOf(":");
  if (lastColon < 0) return undefined;
  if (s.slice(lastColon + 1).includes(".")) {
    v4 = parseIPv4(s.slice(lastColon + 1));
    if (!v4) return undefined;
    s = s.slice(0, lastColon + 1) + "0:0";
  }
  const gap = s.indexOf("::");
  if (gap >= 0 && s.indexOf("::", gap + 1) >= 0) return undefined;
  const split = (t: string) => (t === "" ? [] : t.split(":"));
  let groups: string[];
  if (gap >= 0) {
    const head = split(s.slice(0, gap));
    const tail = split(s.slice(gap + 2));
    const fill = 8 - head.length - tail.length;
    if (fill < 1) return undefined;
    groups = [...head, ...Array<string>(fill).fill("0"), ...tail];
  } else {
    groups = s.split(":");
    if (groups.length !== 8) return undefined;
  }
  const bytes: number[] = [];
  for (const g of groups) {
    if (!/^[0-9a-f]{1,4}$/i.test(g)) return undefined;
    const n = parseInt(g, 16);
    bytes.push(n >> 8, n & 0xff);
  }
  if (v4) bytes.splice(12, 4, ...v4);
  return bytes;
}

function classifyIPv4(b: number[]): AddressKind {
  const [a = 0, b1 = 0, b2 = 0] = b;
  if (a === 0) return "unspecified";
  if (a === 127) return "loopback";
  if (a === 10) return "private";
  if (a === 172 && (b1 & 0xf0) === 16) return "private";
  if (a === 192 && b1 === 168) return "private";
  if (a === 100 && (b1 & 0xc0) === 64) return "private";
  if (a === 198 && (b1 & 0xfe) === 18) return "private";
  if (a === 169 && b1 === 254) return "link-local";
  if (a === 192 && b1 === 0 && b2 === 0) return "reserved";
  if (a >= 224 && a <= 239) return "multicast";
  if (a >= 240) return "reserved";
  return "public";
}

function allZero(b: number[], from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (b[i] !== 0) return false;
  return true;
}

function classifyIPv6(b: number[]): AddressKind {
  const b0 = b[0]!;
  const b1 = b[1]!;
  if (allZero(b, 0, 16)) return "unspecified";
  if (allZero(b, 0, 15) && b[15] === 1) return "loopback";
  // IPv4-mapped (::ffff:0:0/96) and the deprecated IPv4-compatible (::/96) forms.
  if (allZero(b, 0, 10) && b[10] === 0xff && b[11] === 0xff) return classifyIPv4(b.slice(12));
  if (allZero(b, 0, 12)) return classifyIPv4(b.slice(12));
  // NAT64, well-known prefix 64:ff9b::/96: the IPv4 destination is in the last four bytes.
  if (b0 === 0 && b1 === 0x64 && b[2] === 0xff && b[3] === 0x9b) {
    if (allZero(b, 4, 12)) return classifyIPv4(b.slice(12));
    if (b[4] === 0 && b[5] === 1) return "private";
  }
  // 6to4 (2002::/16): the IPv4 address follows the prefix.
  if (b0 === 0x20 && b1 === 0x02) return classifyIPv4(b.slice(2, 6));
  // Teredo (2001::/32) hides an IPv4 address; nothing legitimate sends webhooks there.
  if (b0 === 0x20 && b1 === 0x01 && b[2] === 0 && b[3] === 0) return "reserved";
  if (b0 === 0x01 && b1 === 0 && allZero(b, 2, 8)) return "reserved";
  if ((b0 & 0xfe) === 0xfc) return "private";
  if (b0 === 0xfe && (b1 & 0xc0) === 0x80) return "link-local";
  if (b0 === 0xfe && (b1 & 0xc0) === 0xc0) return "private";
  if (b0 === 0xff) return "multicast";
  if ((b0 & 0xe0) !== 0x20) return "reserved";
  return "public";
}

/**
 * Classifies an IP address (IPv4 dotted quad, or IPv6 with or without brackets).
 *
 * @param address The address.
 * @returns Its kind, or undefined when the text is not an IP address.
 *
 * @example Classify a few addresses
 * ```ts
 * import { classifyAddress } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * assert.equal(classifyAddress("8.8.8.8"), "public");
 * assert.equal(classifyAddress("169.254.169.254"), "link-local");
 * assert.equal(classifyAddress("[::ffff:127.0.0.1]"), "loopback");
 * assert.equal(classifyAddress("example.com"), undefined);
 * ```
 */
export function classifyAddress(address: string): AddressKind | undefined {
  const v4 = parseIPv4(address);
  if (v4) return classifyIPv4(v4);
  if (!address.includes(":")) return undefined;
  const v6 = parseIPv6(address);
  return v6 ? classifyIPv6(v6) : undefined;
}

/**
 * Tells whether a policy lets a webhook reach an address of the given kind. Public addresses
 * always may; loopback and private ones when the policy allows them; link-local (cloud
 * metadata), unspecified, multicast and reserved ones never.
 *
 * @param kind The address's kind.
 * @param policy The policy.
 * @returns True when allowed.
 */
export function isAllowedKind(kind: AddressKind, policy: DestinationPolicy): boolean {
  switch (kind) {
    case "public":
      return true;
    case "loopback":
      return policy.allowLoopback === true;
    case "private":
      return policy.allowPrivateDestinations === true;
    default:
      return false;
  }
}

/** The default resolver: A and AAAA records through `Deno.resolveDns`. */
export async function resolveHost(hostname: string, signal: AbortSignal): Promise<string[]> {
  const dns = (globalThis as { Deno?: { resolveDns?: typeof Deno.resolveDns } }).Deno?.resolveDns;
  if (typeof dns !== "function") {
    throw new Error("Cannot resolve host names in this runtime: pass a resolveHost option");
  }
  const results = await Promise.allSettled([
    dns(hostname, "A", { signal }),
    dns(hostname, "AAAA", { signal }),
  ]);
  const addresses = results.flatMap((r) => (r.status === "fulfilled" ? r.value : []));
  if (addresses.length === 0) {
    const failure = results.find((r) => r.status === "rejected");
    throw failure?.reason ?? new Error(`No addresses for ${hostname}`);
  }
  return addresses;
}

/** The outcome of a destination check. */
export type DestinationCheck =
  | { ok: true; addresses: string[] }
  | { ok: false; reason: string; retryable: boolean };

/**
 * Checks that a webhook URL may be called under a policy: its scheme, then every address its
 * host is (a literal IP) or resolves to. One forbidden address is enough to refuse, because
 * the HTTP client may connect to any of them.
 *
 * @param url The webhook URL.
 * @param policy What is allowed.
 * @param options The resolver and an abort signal that bounds the lookup.
 * @returns The addresses, or why the URL is refused (retryable when the lookup failed).
 */
export async function checkDestination(
  url: URL,
  policy: DestinationPolicy,
  options: { resolve: HostResolver; signal: AbortSignal },
): Promise<DestinationCheck> {
  if (url.protocol !== "https:" && (url.protocol !== "http:" || policy.requireHttps === true)) {
    return {
      ok: false,
      reason: policy.requireHttps === true ? "must be an https URL" : "must be an http(s) URL",
      retryable: false,
    };
  }
  if (url.username !== "" || url.password !== "") {
    return { ok: false, reason: "must not contain credentials", retryable: false };
  }
  let host = url.hostname.toLowerCase();
  if (host.endsWith(".")) host = host.slice(0, -1);
  let addresses: string[];
  if (classifyAddress(host) !== undefined) addresses = [host];
  else if (host === "localhost" || host.endsWith(".localhost")) addresses = ["127.0.0.1", "::1"];
  else {
    try {
      addresses = await options.resolve(host, options.signal);
    } catch (err) {
      // The resolver's own text (Deno's names its internal query structures) is not for clients.
      const why = options.signal.aborted
        ? "the lookup timed out"
        : (err as Error)?.name === "NotFound"
        ? "no such host"
        : "the lookup failed";
      return { ok: false, reason: `host ${host} cannot be resolved: ${why}`, retryable: true };
    }
    if (addresses.length === 0) {
      return { ok: false, reason: `host ${host} has no addresses`, retryable: true };
    }
  }
  for (const address of addresses) {
    const kind = classifyAddress(address) ?? "reserved";
    if (!isAllowedKind(kind, policy)) {
      const what = address === host ? `is a ${kind} address` : `resolves to ${kind} ${address}`;
      return { ok: false, reason: `host ${host} ${what}`, retryable: false };
    }
  }
  return { ok: true, addresses };
}
