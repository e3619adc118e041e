/**
 * The output a session has in flight to spec-only clients, counted as the
 * JSON it becomes in the relay's queue.
 *
 * The relay turns a session's bytes into JSON `stdout` frames for clients
 * that did not opt into binary ones, and queues at most 2 MiB of frames per
 * client. A control byte takes six bytes there, so a window counted in output
 * bytes alone would have to be a sixth of that queue for every spec-only
 * client, whatever its output: the session keeps each chunk's JSON size (a
 * bound, {@linkcode jsonStdoutBytesBound}) until the clients have acknowledged
 * it, and pauses the PTY on that sum as well.
 *
 * @module
 */
import { jsonStdoutBytesBound } from "@coda/relay/utf8";

/** The JSON bytes of the chunks sent and not yet acknowledged; see the module documentation. */
export class JsonInFlight {
  /** Stream offset after each chunk in flight, oldest first (from `#head` on). */
  #ends: number[] = [];
  /** The JSON bytes of each chunk in flight, at most. */
  #sizes: number[] = [];
  /** Where the chunks in flight start in `#ends` and `#sizes`. */
  #head = 0;
  #bytes = 0;

  /** JSON bytes in flight, at most. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The chunk that ends at stream offset `end` was sent as one frame: counts its JSON. */
  sent(end: number, data: Uint8Array): void {
    const size = jsonStdoutBytesBound(data);
    this.#ends.push(end);
    this.#sizes.push(size);
    this.#bytes += size;
  }

  /** The clients have acknowledged the stream up to `offset`: the chunks that end there or before are no longer in flight. */
  acked(offset: number): void {
    while (this.#head < this.#ends.length && this.#ends[this.#head] <= offset) {
      this.#bytes -= this.#sizes[this.#head];
      this.#head++;
    }
    if (this.#head === this.#ends.length) this.clear();
    else if (this.#head >= 1024) {
      // Compacted now and then, so that a session that never catches up does not keep every chunk it sent.
      this.#ends = this.#ends.slice(this.#head);
      this.#sizes = this.#sizes.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Nothing is in flight to a spec-only client any more (the last one left, or the link dropped). */
  clear(): void {
    this.#ends.length = 0;
    this.#sizes.length = 0;
    this.#head = 0;
    this.#bytes = 0;
  }
}
