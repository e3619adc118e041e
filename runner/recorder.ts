/**
 * Recording: mirrors a session's output to the app's logs ingest
 * (`POST {appUrl}/api/devmode/logs/ingest`, runner token as Bearer).
 *
 * Output is batched (every ≤ 1 s or 64 KiB), sent one batch at a time, and
 * retried with backoff. The queue is bounded: when ingest is down for long,
 * the oldest batches are dropped and counted. {@linkcode Recorder.push} never
 * waits, so recording can never slow the terminal.
 *
 * @module
 */
import type { IngestBody } from "@coda/api/contract";
import { backoffDelay } from "@coda/relay/backoff";
import type { Logger } from "./log.ts";

/** One recorded piece of output, `t` when it was produced (ms since the epoch). */
export type RecordedChunk = IngestBody["chunks"][number];

/** Options of {@linkcode Recorder}. */
export interface RecorderOptions {
  appUrl: string;
  runnerToken: string;
  sessionId: string;
  /** The terminal's current size (sent with every batch). */
  size: () => { cols: number; rows: number };
  log: Logger;
  /** Longest wait before a batch is sent (default 1000 ms). */
  flushMs?: number;
  /** A batch is sent once it holds this many bytes (default 64 KiB). */
  batchBytes?: number;
  /** Most bytes queued for sending; older batches are dropped beyond it (default 4 MiB). */
  maxQueueBytes?: number;
  /** First retry delay (default 1000 ms), doubled up to `maxRetryMs` (default 30 s). */
  retryMs?: number;
  maxRetryMs?: number;
  now?: () => number;
  fetch?: typeof fetch;
}

interface Batch {
  chunks: RecordedChunk[];
  bytes: number;
}

/** Sends a session's output to logs ingest while recording is on. */
export class Recorder {
  readonly #options: Required<Omit<RecorderOptions, "fetch">> & { fetch: typeof fetch };
  #pending: Batch = { chunks: [], bytes: 0 };
  #queue: Batch[] = [];
  #queuedBytes = 0;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** Failed sends in a row (the retry delay doubles with each). */
  #retries = 0;
  #sending: Promise<void> | undefined;
  #abort = new AbortController();
  /** Output is bytes and ingest takes text: a character split between two pushes is decoded whole. */
  readonly #decoder = new TextDecoder();
  #stopped = false;
  /** Chunks dropped because the queue was full. */
  dropped = 0;
  /** Chunks ingest accepted. */
  sent = 0;

  constructor(options: RecorderOptions) {
    this.#options = {
      flushMs: 1000,
      batchBytes: 64 * 1024,
      maxQueueBytes: 4 * 1024 * 1024,
      retryMs: 1000,
      maxRetryMs: 30_000,
      now: Date.now,
      ...options,
      fetch: options.fetch ?? fetch,
    };
  }

  /** Bytes waiting to be sent (pending batch plus queue). */
  get backlogBytes(): number {
    return this.#pending.bytes + this.#queuedBytes;
  }

  /** Records a piece of output (raw bytes). Never blocks. */
  push(data: Uint8Array): void {
    if (this.#stopped) return;
    const text = this.#decoder.decode(data, { stream: true });
    if (text) this.#pending.chunks.push({ t: this.#options.now(), data: text });
    this.#pending.bytes += data.length;
    if (this.#pending.bytes >= this.#options.batchBytes) this.#flush();
    else this.#flushTimer ??= setTimeout(() => this.#flush(), this.#options.flushMs);
  }

  /** Stops recording: sends what is left (waiting at most `deadlineMs`), then drops the rest. */
  async stop(deadlineMs = 5000): Promise<void> {
    if (this.#stopped) return;
    this.#flush();
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const deadline = setTimeout(() => this.#abort.abort(), deadlineMs);
    try {
      while (this.#queue.length > 0 && !this.#abort.signal.aborted) {
        await (this.#sending ?? this.#sendNext());
      }
    } finally {
      clearTimeout(deadline);
      this.#abort.abort();
      await this.#sending;
    }
    for (const batch of this.#queue) this.dropped += batch.chunks.length;
    this.#queue = [];
    this.#queuedBytes = 0;
  }

  #flush(): void {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    if (this.#pending.chunks.length === 0) return;
    this.#queue.push(this.#pending);
    this.#queuedBytes += this.#pending.bytes;
    this.#pending = { chunks: [], bytes: 0 };
    while (this.#queuedBytes > this.#options.maxQueueBytes && this.#queue.length > 1) {
      const oldest = this.#queue.shift()!;
      this.#queuedBytes -= oldest.bytes;
      this.dropped += oldest.chunks.length;
    }
    if (!this.#sending && this.#retryTimer === undefined && !this.#stopped) this.#sendNext();
  }

  #sendNext(): Promise<void> {
    const batch = this.#queue[0];
    if (!batch) return Promise.resolve();
    const sending = this.#post(batch).then((outcome) => {
      this.#sending = undefined;
      if (outcome !== "retry") {
        if (this.#queue[0] === batch) {
          this.#queue.shift();
          this.#queuedBytes -= batch.bytes;
        }
        if (outcome === "sent") this.sent += batch.chunks.length;
        else this.dropped += batch.chunks.length;
        this.#retries = 0;
        if (!this.#stopped && this.#queue.length > 0) this.#sendNext();
      } else if (!this.#stopped) {
        const delay = backoffDelay(
          this.#retries++,
          { baseMs: this.#options.retryMs, maxMs: this.#options.maxRetryMs, jitter: 0 },
          Math.random,
        );
        this.#retryTimer = setTimeout(() => {
          this.#retryTimer = undefined;
          this.#sendNext();
        }, delay);
      }
    });
    this.#sending = sending;
    return sending;
  }

  async #post(batch: Batch): Promise<"sent" | "refused" | "retry"> {
    const body: IngestBody = {
      sessionId: this.#options.sessionId,
      ...this.#options.size(),
      chunks: batch.chunks,
    };
    try {
      const response = await this.#options.fetch(`${this.#options.appUrl}/api/devmode/logs/ingest`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${this.#options.runnerToken}` },
        body: JSON.stringify(body),
        signal: this.#abort.signal,
      });
      await response.body?.cancel();
      if (response.ok) return "sent";
      if (response.status >= 400 && response.status < 500 && response.status !== 429) {
        this.#options.log.warn("logs ingest refused a batch; dropping it", {
          sessionId: this.#options.sessionId,
          status: response.status,
        });
        return "refused";
      }
      this.#options.log.warn("logs ingest failed; will retry", {
        sessionId: this.#options.sessionId,
        status: response.status,
      });
      return "retry";
    } catch (error) {
      if (!this.#abort.signal.aborted) {
        this.#options.log.warn("logs ingest unreachable; will retry", {
          sessionId: this.#options.sessionId,
          error: error instanceof Error ? error.message : String(error),
        });
      }
      return "retry";
    }
  }
}
