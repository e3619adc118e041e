/**
 * UTF-8 byte arithmetic for stream offsets: the relay and runner count a
 * session's output in UTF-8 bytes of each frame's `data`.
 *
 * @module
 */

/** The number of bytes `text` takes in UTF-8, without allocating. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** `text` without its first `bytes` UTF-8 bytes (a split character becomes U+FFFD). */
export function dropUtf8Prefix(text: string, bytes: number): string {
  if (bytes <= 0) return text;
  return decoder.decode(encoder.encode(text).subarray(bytes));
}
