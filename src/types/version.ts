// Protocol identifiers: the A2A versions this module serves, how a requested version is
// matched, and the URI that names the capnweb binding.

/** The A2A protocol versions served, as `Major.Minor`. */
export const SUPPORTED_VERSIONS: readonly string[] = ["1.0"];

/**
 * Reduces a version to `Major.Minor`: patch numbers take no part in negotiation (spec 3.6), so
 * `1.0.2` asks for `1.0`.
 *
 * @param version The requested version.
 * @returns `Major.Minor`, or undefined when the value is not a version.
 */
export function normalizeVersion(version: string): string | undefined {
  const m = /^(\d+)\.(\d+)(?:\.\d+)?$/.exec(version.trim());
  return m ? `${Number(m[1])}.${Number(m[2])}` : undefined;
}

/**
 * Tells whether a requested version is served, matching on `Major.Minor`.
 *
 * @param version The requested version, e.g. `1.0` or `1.0.2`.
 * @param supported The versions served.
 * @returns True when served.
 */
export function isSupportedVersion(
  version: string,
  supported: readonly string[] = SUPPORTED_VERSIONS,
): boolean {
  const normalized = normalizeVersion(version);
  return normalized !== undefined && supported.includes(normalized);
}

/** The URI that names the capnweb binding in `supportedInterfaces[].protocolBinding`. */
export const CAPNWEB_BINDING_URI = "urn:a2a-capnweb:binding:capnweb:v1";
