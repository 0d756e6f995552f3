// Reading request bodies with a size limit that holds whatever Content-Length claims, and telling
// a JSON body by its media type. Below every HTTP binding (capnweb batches use it too).

/**
 * Reads a request body, giving up once more than `max` bytes have arrived, whatever
 * Content-Length says (a chunked body has none).
 *
 * @param req The request.
 * @param max The most bytes accepted.
 * @returns The body, or undefined when it is too large.
 */
export async function readBody(
  req: Request,
  max: number,
): Promise<Uint8Array<ArrayBuffer> | undefined> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > max) {
    await req.body?.cancel();
    return undefined;
  }
  if (!req.body) return new Uint8Array();
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** The media types a JSON request body may be sent as (A2A 1.0 section 11.1 prefers the second). */
export const JSON_MEDIA_TYPES: readonly string[] = ["application/json", "application/a2a+json"];

/**
 * The media type of a request's body, lower-cased and without parameters.
 *
 * @param req The request.
 * @returns The media type, or undefined when there is no Content-Type.
 */
export function mediaTypeOf(req: Request): string | undefined {
  const type = req.headers.get("content-type")?.split(";")[0]?.trim().toLowerCase();
  return type === "" ? undefined : type;
}
