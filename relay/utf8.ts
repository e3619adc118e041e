/**
 * UTF-8 byte arithmetic for stream offsets: a session's output is counted in
 * bytes (the payload of binary frames, the UTF-8 bytes of JSON `data`), and
 * the relay turns binary output into text for JSON clients without splitting
 * a character.
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

/**
 * The length of `bytes` without a trailing incomplete UTF-8 sequence: what a streaming decoder
 * holds back for the next chunk. Invalid sequences are not held (they decode to U+FFFD at once).
 */
export function completeUtf8Length(bytes: Uint8Array): number {
  const length = bytes.byteLength;
  for (let i = length - 1; i >= 0 && i >= length - 3; i--) {
    const byte = bytes[i];
    if ((byte & 0xc0) === 0x80) continue;
    const needs = byte >= 0xf0 && byte <= 0xf4
      ? 4
      : byte >= 0xe0 && byte <= 0xef
      ? 3
      : byte >= 0xc2 && byte <= 0xdf
      ? 2
      : 1;
    return length - i < needs ? i : length;
  }
  return length;
}

/**
 * Turns one client's share of a byte stream into text, never splitting a character: an incomplete
 * sequence at the end of a chunk is held and prefixed to the next chunk if that one continues the
 * stream (else dropped: the stream jumped). Done by hand rather than with `TextDecoder`'s `stream`
 * option because the text's stream offset must be known: it starts where the held bytes did.
 */
export class Utf8Splitter {
  #held: Uint8Array | undefined;
  /** The stream offset right after the held bytes. */
  #heldEnd = -1;

  /** The text of `bytes` (at stream `offset`) with what was held before it, and the offset of its first byte. */
  push(offset: number, bytes: Uint8Array): { text: string; offset: number } {
    let input = bytes;
    let start = offset;
    const held = this.#held;
    if (held && this.#heldEnd === offset) {
      input = new Uint8Array(held.byteLength + bytes.byteLength);
      input.set(held);
      input.set(bytes, held.byteLength);
      start = offset - held.byteLength;
    }
    const complete = completeUtf8Length(input);
    // A copy of at most 3 bytes, so the frame's buffer is not kept alive by them.
    this.#held = complete < input.byteLength ? input.slice(complete) : undefined;
    this.#heldEnd = offset + bytes.byteLength;
    return { text: decoder.decode(input.subarray(0, complete)), offset: start };
  }

  /** Forgets held bytes (the stream restarted, or text arrived that did not come through here). */
  reset(): void {
    this.#held = undefined;
  }
}

/**
 * Bytes a JSON `stdout` frame takes beyond its text's, at most: the envelope with the longest session
 * id and offset, and the incomplete character held from the chunk before (three bytes, as U+FFFD
 * escapes at worst).
 */
export const JSON_STDOUT_OVERHEAD_BYTES = 128;

/** The most bytes one output byte takes in a JSON `stdout`'s text: a control byte's `\uXXXX`. */
export const MAX_JSON_BYTES_PER_BYTE = 6;

/** What a byte can take in a JSON string's UTF-8, at most (see {@linkcode jsonTextBytesBound}). */
const JSON_BYTE_BOUND = (() => {
  const bound = new Uint8Array(256).fill(1);
  // JSON.stringify escapes a control character as \uXXXX (\n and a few others as two bytes).
  bound.fill(MAX_JSON_BYTES_PER_BYTE, 0, 0x20);
  bound[0x22] = 2;
  bound[0x5c] = 2;
  // A byte of an invalid sequence decodes to U+FFFD, three bytes; a valid one stays as it is.
  bound.fill(3, 0x80);
  return bound;
})();

/**
 * The most bytes `bytes` can take as the text of a JSON `stdout` frame, as sent (UTF-8): what a
 * spec-only client's output occupies in the relay's queue. Every byte of a multi-byte character is
 * counted as if the sequence were invalid, which keeps this a bound without decoding; plain ASCII,
 * most of a terminal's output, counts one byte each, four at a time.
 */
export function jsonTextBytesBound(bytes: Uint8Array): number {
  const start = bytes.byteOffset;
  const end = start + bytes.length;
  const alignedStart = Math.min((start + 3) & ~3, end);
  let total = 0;
  let i = 0;
  for (; i < alignedStart - start; i++) total += JSON_BYTE_BOUND[bytes[i]];
  const words = (end - alignedStart) >> 2;
  if (words > 0) {
    const u32 = new Uint32Array(bytes.buffer, alignedStart, words);
    for (let w = 0; w < words; w++) {
      const x = u32[w];
      const quote = x ^ 0x22222222;
      const backslash = x ^ 0x5c5c5c5c;
      // Nonzero exactly when a byte is ≥ 0x80, < 0x20, `"` or `\` (the zero-byte test of each).
      const special = (x | ((x - 0x20202020) & ~x) | ((quote - 0x01010101) & ~quote) |
        ((backslash - 0x01010101) & ~backslash)) & 0x80808080;
      if (special === 0) {
        total += 4;
        continue;
      }
      const at = i + w * 4;
      total += JSON_BYTE_BOUND[bytes[at]] + JSON_BYTE_BOUND[bytes[at + 1]] + JSON_BYTE_BOUND[bytes[at + 2]] +
        JSON_BYTE_BOUND[bytes[at + 3]];
    }
    i += words * 4;
  }
  for (; i < bytes.length; i++) total += JSON_BYTE_BOUND[bytes[i]];
  return total;
}

/** The most bytes a JSON `stdout` frame of `bytes` can take as sent: its text's bound and the envelope. */
export function jsonStdoutBytesBound(bytes: Uint8Array): number {
  return jsonTextBytesBound(bytes) + JSON_STDOUT_OVERHEAD_BYTES;
}
