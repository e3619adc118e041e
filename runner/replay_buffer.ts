/**
 * The replay ring buffer of one session: whole output chunks (raw PTY bytes)
 * with their byte offsets in the session's output stream, oldest evicted
 * first once the total passes the capacity.
 *
 * Offsets count bytes, as the protocol does, so a client that has received
 * `n` bytes can resume at exactly `n`. Nothing here looks at characters
 * beyond the at most three bytes around a cut: the session stores chunks that
 * end on a UTF-8 character boundary, and cuts keep to boundaries, so every
 * piece decodes on its own.
 *
 * @module
 */

/** One stored chunk of output. */
export interface ReplayChunk {
  /** Byte offset of the chunk's first byte. */
  offset: number;
  /** The output bytes. */
  data: Uint8Array;
}

/** Whether `byte` continues a multi-byte UTF-8 character. */
function isContinuation(byte: number): boolean {
  return (byte & 0xc0) === 0x80;
}

/**
 * The length of the longest prefix of `data` that does not end inside a
 * multi-byte UTF-8 character: `data.length` unless its last (at most three)
 * bytes are the start of a character whose remaining bytes have not come yet.
 */
export function completeLength(data: Uint8Array): number {
  const length = data.length;
  for (let at = length - 1; at >= 0 && at >= length - 4; at--) {
    const byte = data[at];
    if (isContinuation(byte)) continue;
    const size = byte >= 0xf0 && byte <= 0xf7 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return byte < 0xf8 && at + size > length ? at : length;
  }
  return length;
}

/** `at`, moved back to the start of the UTF-8 character it falls inside (at most three bytes). */
function boundaryBefore(data: Uint8Array, at: number): number {
  let cut = at;
  while (cut > 0 && at - cut < 3 && isContinuation(data[cut])) cut--;
  return cut > 0 && !isContinuation(data[cut]) ? cut : at;
}

/**
 * Splits `chunk` into contiguous pieces of at most `budget` bytes, cut at
 * UTF-8 character boundaries; a chunk within the budget comes back whole.
 * The pieces are views of the chunk, not copies.
 */
export function splitChunk(chunk: ReplayChunk, budget: number): ReplayChunk[] {
  if (chunk.data.length <= budget) return [chunk];
  const pieces: ReplayChunk[] = [];
  let start = 0;
  while (chunk.data.length - start > budget) {
    const cut = boundaryBefore(chunk.data, start + budget);
    pieces.push({ offset: chunk.offset + start, data: chunk.data.subarray(start, cut) });
    start = cut;
  }
  pieces.push({ offset: chunk.offset + start, data: chunk.data.subarray(start) });
  return pieces;
}

/** What a replay from a given offset contains. */
export interface ReplaySlice {
  /** Chunks to send, in order; the first may start inside a stored chunk. */
  chunks: ReplayChunk[];
  /** Bytes `[from, to)` that were requested but are no longer held, or `null`. */
  gap: { from: number; to: number } | null;
}

/**
 * Default capacity: 2 MiB per session, what a session's flow window (1.5 MiB) needs beside the
 * reads past it, since whatever is unacknowledged must be replayable after a relay restart.
 */
export const DEFAULT_REPLAY_BYTES = 2 * 1024 * 1024;

/** A ring buffer of output chunks bounded by total bytes. */
export class ReplayBuffer {
  readonly #capacity: number;
  readonly #onEvict: ((chunk: ReplayChunk) => void) | undefined;
  #chunks: ReplayChunk[] = [];
  #head = 0;
  #held = 0;
  #end = 0;

  /**
   * `capacity`: the most bytes kept (a single larger chunk is still kept whole). `onEvict`: told of
   * each chunk as it is let go of, oldest first.
   */
  constructor(capacity: number = DEFAULT_REPLAY_BYTES, onEvict?: (chunk: ReplayChunk) => void) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError("capacity must be a positive integer");
    }
    this.#capacity = capacity;
    this.#onEvict = onEvict;
  }

  /** The most bytes kept. */
  get capacity(): number {
    return this.#capacity;
  }

  /** Offset one past the last byte ever appended (the stream's current end). */
  get end(): number {
    return this.#end;
  }

  /** Offset of the oldest byte still held (equals {@linkcode end} when empty). */
  get start(): number {
    return this.#head < this.#chunks.length ? this.#chunks[this.#head].offset : this.#end;
  }

  /** Bytes currently held. */
  get heldBytes(): number {
    return this.#held;
  }

  /** Number of chunks currently held. */
  get chunkCount(): number {
    return this.#chunks.length - this.#head;
  }

  /** Appends output (kept as is: the caller hands over `data`); returns the stored chunk. */
  append(data: Uint8Array): ReplayChunk {
    const chunk = { offset: this.#end, data };
    this.#chunks.push(chunk);
    this.#end += data.length;
    this.#held += data.length;
    while (this.#held > this.#capacity && this.chunkCount > 1) {
      const evicted = this.#chunks[this.#head++];
      this.#held -= evicted.data.length;
      this.#onEvict?.(evicted);
    }
    if (this.#head > 1024 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
    return chunk;
  }

  /**
   * Everything from `offset` to the end. An offset older than what is held
   * yields a gap and starts at the oldest byte; an offset inside a character
   * starts at the next character boundary after it.
   */
  slice(offset: number): ReplaySlice {
    const start = this.start;
    const gap = offset < start ? { from: offset, to: start } : null;
    const from = Math.max(offset, start);
    const chunks: ReplayChunk[] = [];
    for (let i = this.#head; i < this.#chunks.length; i++) {
      const chunk = this.#chunks[i];
      if (chunk.offset + chunk.data.length <= from) continue;
      if (chunk.offset >= from) {
        chunks.push(chunk);
        continue;
      }
      let at = from - chunk.offset;
      while (at < chunk.data.length && isContinuation(chunk.data[at])) at++;
      if (at < chunk.data.length) chunks.push({ offset: chunk.offset + at, data: chunk.data.subarray(at) });
    }
    return { chunks, gap };
  }
}
