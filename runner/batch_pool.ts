/**
 * Batch buffers of one session, used again once nothing refers to them.
 *
 * A session copies each turn's PTY reads into one buffer that its replay ring
 * keeps and its link sends from (`reserveOutput`: room for the frame header
 * before the bytes). Allocating a fresh buffer per frame cost a session holder
 * ~0.09 s of CPU per 64 MiB of output, and `coda-runner serve` ~0.13 s, in the
 * bench's A/B (interleaved runs, fresh against reused buffers): far more than
 * the allocation itself, most likely the garbage collector's work on a
 * stream of large array buffers.
 *
 * A buffer is used again once the ring has let go of its chunk and the link can
 * no longer hold it: the link's queue (its `bufferedAmount`, in frame bytes,
 * never fewer than the output bytes in them) is first in, first out, so a
 * chunk that ends more output bytes before the stream's end than the queue
 * holds is no longer in it. Only full batches are pooled, in buffers a quarter
 * larger than a batch: what the ring holds of a stream of them costs at most a
 * quarter more memory, and small output (typing, prompts) is never kept in a
 * large buffer.
 *
 * @module
 */
import { reserveOutput, reuseOutput } from "@coda/relay/protocol";
import type { ReplayChunk } from "./replay_buffer.ts";

/** Buffers let go of and ready, kept at most: a stream takes one as the ring lets go of one. */
const MAX_FREE = 2;
/** Buffers let go of by the ring but perhaps still in the link's queue, kept at most (the oldest go to the GC). */
const MAX_RETIRED = 8;

/** See the module documentation. */
export class BatchPool {
  readonly #sessionId: string;
  /** Batches of at least this many bytes come from the pool. */
  readonly #minBytes: number;
  /** Output bytes a pooled buffer holds. */
  readonly #capacity: number;
  /** Views into buffers ready for use again (any view: only its buffer counts). */
  readonly #free: Uint8Array[] = [];
  /** Chunks the ring let go of, oldest first, with the stream offset each ends at. */
  readonly #retired: { data: Uint8Array; end: number }[] = [];
  /** Buffers handed out and not come back: only those are ever reused, and each once. */
  readonly #lent = new WeakSet<ArrayBuffer>();

  /** `batchBytes`: the size of a full batch (a batch may pass it by one read, up to a quarter of it). */
  constructor(sessionId: string, batchBytes: number) {
    this.#sessionId = sessionId;
    this.#minBytes = batchBytes;
    this.#capacity = batchBytes + batchBytes / 4;
  }

  /**
   * Room for a batch of `length` bytes (`reserveOutput`'s layout). `streamEnd`: the offset after the
   * last output handed to the link; `queuedBytes`: what the link still queues.
   */
  take(length: number, streamEnd: number, queuedBytes: number): Uint8Array<ArrayBuffer> {
    if (length < this.#minBytes || length > this.#capacity) return reserveOutput(this.#sessionId, length);
    while (this.#retired.length > 0 && streamEnd - this.#retired[0].end >= queuedBytes) {
      const { data } = this.#retired.shift()!;
      if (this.#free.length < MAX_FREE) this.#free.push(data);
    }
    const reused = this.#free.pop();
    const batch = reused
      ? reuseOutput(reused, this.#sessionId, length)
      : reserveOutput(this.#sessionId, length, this.#capacity);
    this.#lent.add(batch.buffer);
    return batch;
  }

  /** The ring let go of `chunk`: its buffer, if it is one of the pool's, may be used again once the link is past it. */
  retire(chunk: ReplayChunk): void {
    const buffer = chunk.data.buffer;
    if (!(buffer instanceof ArrayBuffer) || !this.#lent.has(buffer)) return;
    this.#lent.delete(buffer);
    if (this.#retired.length === MAX_RETIRED) this.#retired.shift();
    this.#retired.push({ data: chunk.data, end: chunk.offset + chunk.data.length });
  }
}
