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
import { utf8Length } from "../relay/utf8.ts";

/** One stored chunk of output. */
export interface ReplayChunk {
  /** Byte offset of the chunk's first byte. */
  offset: number;
  /** The output text. */
  data: string;
  /** Its length in UTF-8 bytes. */
  bytes: number;
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
  #chunks: ReplayChunk[] = [];
  #head = 0;
  #held = 0;
  #end = 0;

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
    const chunk = { offset: this.#end, data, bytes: utf8Length(data) };
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
  return { offset: chunk.offset + at, data: new TextDecoder().decode(rest), bytes: rest.length };
}
