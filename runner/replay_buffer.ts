/**
 * The replay ring buffer of one session: whole output chunks with their byte
 * offsets in the session's output stream, oldest evicted first once the total
 * passes the capacity.
 *
 * Offsets count UTF-8 bytes, as the protocol does, so a client that has
 * received `n` bytes can resume at exactly `n`.
 *
 * @module
 */
import { utf8Length } from "@coda/relay/utf8";

/** One stored chunk of output. */
export interface ReplayChunk {
  /** Byte offset of the chunk's first byte. */
  offset: number;
  /** The output text. */
  data: string;
  /** Its length in UTF-8 bytes. */
  bytes: number;
  /** An upper bound of its size inside a JSON frame ({@linkcode encodedBound}). */
  encoded: number;
}

/** Characters JSON escapes: control characters (`\u0001` takes 6 bytes), `"` and `\`. */
// deno-lint-ignore no-control-regex -- control characters are exactly what this counts
const JSON_ESCAPED = /[\u0000-\u001f"\\]/g;

/**
 * An upper bound of the bytes `data` takes inside a JSON frame: its UTF-8
 * bytes plus 5 for each character JSON escapes. One regex scan, no encoding.
 */
export function encodedBound(data: string, bytes: number): number {
  return bytes + 5 * (data.match(JSON_ESCAPED)?.length ?? 0);
}

/** A stored chunk with the running total of {@linkcode encodedBound} before it. */
interface StoredChunk extends ReplayChunk {
  encodedStart: number;
}

/**
 * Splits `chunk` into pieces each at most `budget` bytes inside a JSON frame
 * (by {@linkcode encodedBound}), never inside a surrogate pair; a chunk within
 * the budget comes back whole.
 */
export function splitChunk(chunk: ReplayChunk, budget: number): ReplayChunk[] {
  if (chunk.encoded <= budget || chunk.data.length <= 1) return [chunk];
  let half = Math.floor(chunk.data.length / 2);
  const code = chunk.data.charCodeAt(half - 1);
  if (code >= 0xd800 && code <= 0xdbff) half++;
  const piece = (offset: number, data: string): ReplayChunk => {
    const bytes = utf8Length(data);
    return { offset, data, bytes, encoded: encodedBound(data, bytes) };
  };
  const first = piece(chunk.offset, chunk.data.slice(0, half));
  const second = piece(chunk.offset + first.bytes, chunk.data.slice(half));
  return [...splitChunk(first, budget), ...splitChunk(second, budget)];
}

/** What a replay from a given offset contains. */
export interface ReplaySlice {
  /** Chunks to send, in order; the first may start inside a stored chunk. */
  chunks: ReplayChunk[];
  /** Bytes `[from, to)` that were requested but are no longer held, or `null`. */
  gap: { from: number; to: number } | null;
}

/** Default capacity: 1 MiB per session. */
export const DEFAULT_REPLAY_BYTES = 1024 * 1024;

/** A ring buffer of output chunks bounded by total bytes. */
export class ReplayBuffer {
  readonly #capacity: number;
  #chunks: StoredChunk[] = [];
  #head = 0;
  #held = 0;
  #end = 0;
  #encodedEnd = 0;

  /** `capacity`: the most bytes kept (a single larger chunk is still kept whole). */
  constructor(capacity: number = DEFAULT_REPLAY_BYTES) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError("capacity must be a positive integer");
    }
    this.#capacity = capacity;
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

  /** Appends output; returns the stored chunk (with its offset). */
  append(data: string): ReplayChunk {
    const bytes = utf8Length(data);
    const chunk = {
      offset: this.#end,
      data,
      bytes,
      encoded: encodedBound(data, bytes),
      encodedStart: this.#encodedEnd,
    };
    this.#encodedEnd += chunk.encoded;
    this.#chunks.push(chunk);
    this.#end += chunk.bytes;
    this.#held += chunk.bytes;
    while (this.#held > this.#capacity && this.chunkCount > 1) {
      this.#held -= this.#chunks[this.#head].bytes;
      this.#head++;
    }
    if (this.#head > 1024 && this.#head * 2 > this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
    return chunk;
  }

  /**
   * About how many bytes the output from `offset` to the end takes as JSON
   * frames (an upper bound, pro rata inside a chunk): what flow control
   * counts, since that is what fills the relay's and the client's buffers.
   */
  encodedSince(offset: number): number {
    if (offset >= this.#end || this.chunkCount === 0) return 0;
    let low = this.#head;
    let high = this.#chunks.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (this.#chunks[middle].offset <= offset) low = middle;
      else high = middle - 1;
    }
    const chunk = this.#chunks[low];
    const before = Math.max(0, offset - chunk.offset) / chunk.bytes;
    return this.#encodedEnd - chunk.encodedStart - Math.floor(chunk.encoded * before);
  }

  /**
   * Everything from `offset` to the end. An offset older than what is held
   * yields a gap and starts at the oldest byte; an offset inside a chunk
   * starts at the next character boundary at or after it.
   */
  slice(offset: number): ReplaySlice {
    const start = this.start;
    const gap = offset < start ? { from: offset, to: start } : null;
    const from = Math.max(offset, start);
    const chunks: ReplayChunk[] = [];
    for (let i = this.#head; i < this.#chunks.length; i++) {
      const chunk = this.#chunks[i];
      const chunkEnd = chunk.offset + chunk.bytes;
      if (chunkEnd <= from) continue;
      if (chunk.offset >= from) chunks.push(chunk);
      else chunks.push(tail(chunk, from - chunk.offset));
    }
    return { chunks, gap };
  }
}

/** The part of `chunk` from byte `skip` on, moved forward to a character boundary. */
function tail(chunk: ReplayChunk, skip: number): ReplayChunk {
  const bytes = new TextEncoder().encode(chunk.data);
  let at = skip;
  while (at < bytes.length && (bytes[at] & 0xc0) === 0x80) at++;
  const rest = bytes.subarray(at);
  const data = new TextDecoder().decode(rest);
  return { offset: chunk.offset + at, data, bytes: rest.length, encoded: encodedBound(data, rest.length) };
}
