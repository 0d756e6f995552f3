// The client's address behind reverse proxies: read from `X-Forwarded-For` or `Forwarded` only
// when the request came from a proxy the operator named, because any client can send the header.

// A type-only import: the handler uses this file, this file only names the handler's type.
import type { ConnectionInfo } from "./handler.ts";

/** Options of {@linkcode trustedProxyAddress}. */
export interface TrustedProxyOptions {
  /**
   * The header the proxies set (default `"x-forwarded-for"`, which nginx, HAProxy and most load
   * balancers append to). Name the one the proxy in front actually writes: a proxy that passes
   * the other one through unchanged lets a client put any address in it.
   */
  header?: "x-forwarded-for" | "forwarded";
}

/** One entry of a trusted list: an address and how many leading bits must match. */
interface Range {
  bytes: Uint8Array;
  bits: number;
}

/** The 4 or 16 bytes of an IPv4 or IPv6 address (IPv4-mapped IPv6 as IPv4), or undefined. */
function parseIp(text: string): Uint8Array | undefined {
  const v4 = (s: string): number[] | undefined => {
    const parts = s.split(".");
    if (parts.length !== 4) return undefined;
    const out: number[] = [];
    for (const p of parts) {
      if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
      out.push(Number(p));
    }
    return out;
  };
  const four = v4(text);
  if (four) return new Uint8Array(four);
  if (!text.includes(":")) return undefined;
  // Zone ids (fe80::1%eth0) name an interface, not part of the address.
  let s = text.replace(/%.*$/, "").toLowerCase();
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    const embedded = v4(s.slice(lastColon + 1));
    if (!embedded) return undefined;
    tail = embedded;
    s = s.slice(0, lastColon + 1) + "0:0";
  }
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (h: string) => h === "" ? [] : h.split(":");
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...rest];
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = all[i]!;
    if (!/^[0-9a-f]{1,4}$/.test(g)) return undefined;
    const n = parseInt(g, 16);
    bytes[2 * i] = n >> 8;
    bytes[2 * i + 1] = n & 0xff;
  }
  if (tail.length === 4) bytes.set(tail, 12);
  const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff &&
    bytes[11] === 0xff;
  return mapped ? bytes.slice(12) : bytes;
}

/** The canonical text of an address, so that one client is one key whatever its spelling. */
function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // RFC 5952: the longest run of two or more zero groups becomes "::".
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLen).join(":")}`;
}

function parseRange(entry: string): Range {
  const [addr, prefix, extra] = entry.trim().split("/");
  const bytes = addr === undefined ? undefined : parseIp(addr);
  const max = bytes ? bytes.length * 8 : 0;
  const bits = prefix === undefined ? max : /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN;
  if (!bytes || extra !== undefined || !(bits >= 0 && bits <= max)) {
    throw new TypeError(
      `Invalid trusted proxy: expected an IP address or CIDR range such as 10.0.0.0/8, got "${entry}"`,
    );
  }
  return { bytes, bits };
}

function inRange(ip: Uint8Array, range: Range): boolean {
  if (ip.length !== range.bytes.length) return false;
  const whole = Math.floor(range.bits / 8);
  for (let i = 0; i < whole; i++) if (ip[i] !== range.bytes[i]) return false;
  const rest = range.bits % 8;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (ip[whole]! & mask) === (range.bytes[whole]! & mask);
}

/** An address as a hop list writes it, without quotes, brackets or port; undefined if not one. */
function hopAddress(raw: string): Uint8Array | undefined {
  let s = raw.trim().replace(/^"(.*)"$/, "$1");
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(s);
  if (bracketed) s = bracketed[1]!;
  // "1.2.3.4:5678": a port after an IPv4 address (a bare IPv6 address has several colons).
  else if (/^[\d.]+:\d+$/.test(s)) s = s.slice(0, s.lastIndexOf(":"));
  return parseIp(s);
}

/** The hops a header lists, nearest the client first. */
function hops(req: Request, header: "x-forwarded-for" | "forwarded"): string[] {
  // Several header lines are one list, in order (RFC 9110 5.3); Headers.get joins them with ", ".
  const value = req.headers.get(header);
  if (value === null) return [];
  if (header === "x-forwarded-for") return value.split(",").map((h) => h.trim());
  const out: string[] = [];
  for (const element of value.split(",")) {
    const pair = element.split(";").map((p) => p.trim()).find((p) => /^for=/i.test(p));
    // An element without `for` still is a hop, one we cannot name.
    out.push(pair === undefined ? "" : pair.slice(4));
  }
  return out;
}

/**
 * Makes a `clientAddress` function (an option of `createHandler` and `serve`) for a server
 * behind reverse proxies. A request whose socket peer is not one of `trusted` is that peer's:
 * its headers are ignored. From a trusted proxy, the client is the right-most hop of the header
 * that is not itself trusted, since every hop left of it was written by someone the server does
 * not trust; when every hop is trusted, the left-most one. A missing header, or a hop that is not
 * an IP address (`unknown`, an obfuscated `Forwarded` name), leaves the nearest trusted address.
 * Addresses come back in canonical form (`::ffff:10.0.0.1` as `10.0.0.1`), so that one client is
 * counted once.
 *
 * @param trusted The proxies' addresses or CIDR ranges, e.g. `["10.0.0.0/8", "::1"]`.
 * @param options Which header the proxies set.
 * @returns The function for the `clientAddress` option.
 * @throws {TypeError} When an entry is not an IP address or CIDR range.
 *
 * @example Count clients by their address behind one nginx on 10.0.0.5
 * ```ts
 * import { trustedProxyAddress } from "@a2a-capnweb/core";
 * import assert from "node:assert/strict";
 *
 * const clientAddress = trustedProxyAddress(["10.0.0.5"]);
 * const req = new Request("http://agent/", {
 *   headers: { "x-forwarded-for": "203.0.113.9, 198.51.100.7" },
 * });
 * // From the proxy: the right-most untrusted hop, the address the proxy saw.
 * assert.equal(clientAddress(req, { remoteAddr: { hostname: "10.0.0.5" } }), "198.51.100.7");
 * // From anyone else: the header is ignored.
 * assert.equal(clientAddress(req, { remoteAddr: { hostname: "192.0.2.1" } }), "192.0.2.1");
 * ```
 */
export function trustedProxyAddress(
  trusted: readonly string[],
  options: TrustedProxyOptions = {},
): (request: Request, info: ConnectionInfo | undefined) => string | undefined {
  if (!Array.isArray(trusted)) throw new TypeError("Invalid trusted proxies: expected a list");
  const ranges = trusted.map(parseRange);
  const header = options.header ?? "x-forwarded-for";
  if (header !== "x-forwarded-for" && header !== "forwarded") {
    throw new TypeError(`Invalid trusted proxy header: ${header}`);
  }
  const isTrusted = (ip: Uint8Array) => ranges.some((r) => inRange(ip, r));
  return (req, info) => {
    const peer = info?.remoteAddr?.hostname;
    if (peer === undefined) return undefined;
    let nearest = parseIp(peer);
    // A Unix socket or an unparsable peer: not an address we were told to trust.
    if (nearest === undefined || !isTrusted(nearest)) return nearest ? formatIp(nearest) : peer;
    const list = hops(req, header);
    for (let i = list.length - 1; i >= 0; i--) {
      const hop = hopAddress(list[i]!);
      if (hop === undefined) break;
      nearest = hop;
      if (!isTrusted(hop)) break;
    }
    return formatIp(nearest);
  };
}
