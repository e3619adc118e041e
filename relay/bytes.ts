/**
 * Byte-array helpers shared by the relay, the runner and their tests.
 *
 * @module
 */

/**
 * `parts` joined into one new array that owns its buffer (never a view into a
 * pool, so keeping it keeps only its own bytes); `bytes`: their total length,
 * when the caller already knows it.
 */
export function concatBytes(
  parts: readonly Uint8Array[],
  bytes: number = parts.reduce((sum, part) => sum + part.byteLength, 0),
): Uint8Array<ArrayBuffer> {
  const joined = new Uint8Array(bytes);
  let at = 0;
  for (const part of parts) {
    joined.set(part, at);
    at += part.byteLength;
  }
  return joined;
}
