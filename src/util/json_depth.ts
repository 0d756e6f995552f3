// How deep a JSON value nests, found without recursion, so that a hostile document nested
// 100,000 levels deep is refused with a clear error instead of overflowing the stack.

/** The deepest nesting of objects and arrays accepted in a request (default of the bindings). */
export const MAX_JSON_DEPTH = 64;

/**
 * Tells whether a parsed JSON value nests objects and arrays deeper than `max` levels.
 *
 * @param value A value from `JSON.parse` (or capnweb's decoding).
 * @param max The deepest nesting allowed; `{}` is one level.
 * @returns True when some path goes deeper than `max`.
 */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== "object" || v === null) continue;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === "object" && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}
