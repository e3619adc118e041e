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
