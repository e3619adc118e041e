/**
 * A Unix socket connection on Deno's own sockets, as the session holder link
 * (`holder.ts`, `holder_connection.ts`) uses it: a write queue that says how
 * much it holds, reads that pause, and an end that waits for what is queued.
 *
 * Deno's `node:net` stream emulation costs about twice the CPU per byte of
 * its own sockets on this path (every byte of a session's output crosses it
 * once), and reads only 64 KiB at a time. Reads here go into slabs of
 * {@linkcode SLAB_BYTES}: each read fills the rest of the current slab, so a
 * frame that spans two reads is usually contiguous, and handed-out views stay
 * valid (a slab is never written twice).
 *
 * @module
 */
import { concatBytes } from "@coda/relay/bytes";

/** What a {@linkcode UnixStream} hands on. */
export interface UnixStreamHandler {
  /** Bytes read; the view stays valid (nothing writes there again). */
  onData(bytes: Uint8Array): void;
  /** The connection closed: either side, or an error. Called once, never from within a call on the stream. */
  onClose(): void;
}

/** Reads go into slabs of this many bytes. */
const SLAB_BYTES = 256 * 1024;
/** A slab with less room than this left is replaced before the next read. */
const MIN_READ_BYTES = 64 * 1024;
/**
 * Parts smaller than this are joined into one write (a frame's prefix and its JSON); larger ones are
 * written as they are, since a copy would cost more than the extra write.
 */
const SMALL_PART_BYTES = 16 * 1024;

/** One connection; see the module documentation. */
export class UnixStream {
  readonly #conn: Deno.UnixConn;
  #handler: UnixStreamHandler | undefined;
  #queue: Uint8Array[] = [];
  #queued = 0;
  #writing = false;
  #writeFailed = false;
  #closed = false;
  #resume: PromiseWithResolvers<void> | undefined;
  readonly #drained: PromiseWithResolvers<void>[] = [];
  readonly #done = Promise.withResolvers<void>();
  /** Settles once the connection has closed. */
  readonly closed: Promise<void> = this.#done.promise;

  constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
  }

  /** Connects to the socket at `path`; rejects when nobody listens there. */
  static async connect(path: string): Promise<UnixStream> {
    return new UnixStream(await Deno.connect({ transport: "unix", path }));
  }

  /** Starts reading: from now on bytes and the close go to `handler`. */
  start(handler: UnixStreamHandler): void {
    if (this.#handler) throw new Error("the stream was started already");
    this.#handler = handler;
    void this.#read();
  }

  /** Whether the connection has closed. */
  get isClosed(): boolean {
    return this.#closed;
  }

  /** Bytes queued but not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.#queued;
  }

  /** Queues `parts` to be written in order, small ones joined (dropped once closed, or once a write failed). */
  write(parts: Uint8Array[]): void {
    if (this.#closed || this.#writeFailed) return;
    for (const part of parts) {
      if (part.length === 0) continue;
      this.#queue.push(part);
      this.#queued += part.length;
    }
    if (!this.#writing) void this.#flush();
  }

  /** Stops reading, so the peer's writes back up. */
  pause(): void {
    this.#resume ??= Promise.withResolvers<void>();
  }

  /** Reads again after {@linkcode pause}. */
  resume(): void {
    this.#resume?.resolve();
    this.#resume = undefined;
  }

  /** Closes once what is queued is written, or after `timeoutMs`; resolves once closed. */
  async end(timeoutMs: number): Promise<void> {
    if (!this.#closed && this.#queued > 0) {
      const drained = Promise.withResolvers<void>();
      this.#drained.push(drained);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        drained.promise,
        this.closed,
        new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs)),
      ]);
      clearTimeout(timer);
    }
    this.destroy();
    await this.closed;
  }

  /** Closes now, dropping what is queued. */
  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    this.#queued = 0;
    try {
      this.#conn.close();
    } catch {
      // Closed already.
    }
    this.resume();
    for (const drained of this.#drained.splice(0)) drained.resolve();
    this.#done.resolve();
    // Never from inside the caller's own call: a handler may close the stream it is handed.
    queueMicrotask(() => this.#handler?.onClose());
  }

  async #read(): Promise<void> {
    let slab = new Uint8Array(SLAB_BYTES);
    try {
      while (!this.#closed) {
        if (this.#resume) await this.#resume.promise;
        if (this.#closed) break;
        if (slab.length < MIN_READ_BYTES) slab = new Uint8Array(SLAB_BYTES);
        const count = await this.#conn.read(slab);
        if (count === null || this.#closed) break;
        const bytes = slab.subarray(0, count);
        slab = slab.subarray(count);
        this.#handler?.onData(bytes);
      }
    } catch {
      // Reset by the peer, or closed under a pending read: the connection is over either way.
    }
    this.destroy();
  }

  async #flush(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        let count = 1;
        let bytes = this.#queue[0].length;
        while (
          count < this.#queue.length && bytes < SMALL_PART_BYTES &&
          this.#queue[count].length < SMALL_PART_BYTES
        ) {
          bytes += this.#queue[count].length;
          count++;
        }
        const parts = this.#queue.splice(0, count);
        const batch = count === 1 ? parts[0] : concatBytes(parts, bytes);
        for (let at = 0; at < batch.length;) at += await this.#conn.write(batch.subarray(at));
        if (this.#closed) return;
        this.#queued -= batch.length;
      }
    } catch {
      // The peer is gone (EPIPE), but what it wrote before it went is still to be read: only the write
      // side stops here; the read side ends the stream at the end of the peer's bytes.
      this.#writeFailed = true;
      this.#queue = [];
      this.#queued = 0;
    } finally {
      this.#writing = false;
    }
    if (this.#queued === 0) { for (const drained of this.#drained.splice(0)) drained.resolve(); }
  }
}

/** Listens on a Unix socket at `path`; each connection is handed to `accept`. */
export function listenUnix(path: string, accept: (stream: UnixStream) => void): Deno.UnixListener {
  const listener = Deno.listen({ transport: "unix", path });
  void (async () => {
    try {
      for await (const conn of listener) accept(new UnixStream(conn));
    } catch {
      // The listener was closed.
    }
  })();
  return listener;
}
