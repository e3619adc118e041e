/**
 * The bench's clients, on the `ws` package (it sets TCP_NODELAY as browsers do;
 * Deno's own client leaves Nagle on, ~40 ms on back-to-back frames):
 *
 * - `json`: a spec-only client: JSON `stdin` in, JSON `stdout`/`meta` out, and
 *   with `ack` the JSON `ack` the SPA sends once it has rendered;
 * - `binary`: offers the `coda.v2` subprotocol, reads binary output frames and
 *   sends binary input frames (control messages stay JSON);
 * - `raw`: binary frames of bare bytes (the loopback), nothing sent.
 *
 * Each keeps the byte count and the last few KiB of text, and passes every
 * output chunk to an optional sink (the throughput runs' byte-exact check).
 *
 * @module
 */
import { WebSocket } from "ws";
import { BINARY_SUBPROTOCOL, decodeBinaryFrame, encodeInputFrame, parseMetaLine } from "@coda/relay/protocol";

/** How a client speaks. */
export type ClientMode = "json" | "binary" | "raw";

/** How a client acknowledges output: never (the relay acks as its socket drains), as it arrives, or rendered at a rate. */
export type AckPolicy = { kind: "none" } | { kind: "immediate" } | {
  kind: "rendered";
  bytesPerSecond: number;
};

/** Receives output: a string (JSON client) or bytes (binary and raw clients). */
export type OutputSink = (chunk: string | Uint8Array) => void;

/** Characters of output text kept for prompt and marker checks. */
const TEXT_TAIL_CHARS = 8192;
/** How often a rendering client advances what it has rendered (and acks). */
const RENDER_TICK_MS = 20;

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** The client refused the connection because the server chose no subprotocol. */
export class NotNegotiatedError extends Error {}

/** One client link. */
export class BenchClient {
  readonly socket: WebSocket;
  /** Output bytes received (the stream's offset after the last frame). */
  bytes = 0;
  /** The last {@linkcode TEXT_TAIL_CHARS} characters of output. */
  text = "";
  /** From the first `coda:session:` meta line (serve announces the id this way), or given. */
  sessionId: string | undefined;
  /** When the first output byte arrived (`performance.now()`), or `undefined`. */
  firstOutputAt: number | undefined;
  /** When the last output frame arrived. */
  lastOutputAt = 0;
  sink: OutputSink | undefined;
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: { check: () => boolean; resolve: () => void }[] = [];
  #acked = 0;
  #ackScheduled = false;
  #rendered = 0;
  #renderTimer: ReturnType<typeof setInterval> | undefined;

  constructor(
    url: string,
    readonly mode: ClientMode,
    readonly ack: AckPolicy = { kind: "none" },
    sessionId?: string,
  ) {
    this.sessionId = sessionId;
    this.socket = mode === "binary" ? new WebSocket(url, [BINARY_SUBPROTOCOL]) : new WebSocket(url);
    this.opened = new Promise((resolve, reject) => {
      this.socket.once("open", () => resolve());
      this.socket.once("error", (error: Error) => {
        reject(/subprotocol/i.test(error.message) ? new NotNegotiatedError(error.message) : error);
      });
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.socket.once("close", (code: number, reason: { toString(): string }) => {
        clearInterval(this.#renderTimer);
        resolve({ code, reason: reason.toString() });
        this.#wake();
      });
    });
    this.socket.on("message", (data: Uint8Array, isBinary: boolean) => this.#onMessage(data, isBinary));
    if (ack.kind === "rendered") {
      const perTick = ack.bytesPerSecond * RENDER_TICK_MS / 1000;
      this.#renderTimer = setInterval(() => {
        this.#rendered = Math.min(this.bytes, this.#rendered + perTick);
        this.#sendAck(Math.floor(this.#rendered));
      }, RENDER_TICK_MS);
    }
  }

  /** The subprotocol the server chose (`""` for none). */
  get protocol(): string {
    return this.socket.protocol;
  }

  #onMessage(data: Uint8Array, isBinary: boolean): void {
    if (this.mode === "raw") return this.#output(data, this.bytes);
    if (isBinary) {
      const decoded = decodeBinaryFrame(data);
      if (decoded.ok && decoded.value.type === "output") {
        this.#output(decoded.value.data, decoded.value.offset);
      }
      return;
    }
    const message = JSON.parse(data.toString()) as {
      type: string;
      data?: string;
      offset?: number;
      code?: number;
      reason?: string;
    };
    if (message.type === "closing") {
      // As the SPA does: the relay announces its close to `ack=1` clients, which close first.
      this.socket.close(message.code, message.reason);
    } else if (message.type === "stdout" && typeof message.data === "string") {
      this.#output(message.data, message.offset ?? this.bytes);
    } else if (message.type === "meta" && typeof message.data === "string") {
      const meta = parseMetaLine(message.data);
      if (meta?.kind === "session" && meta.value && !this.sessionId) this.sessionId = meta.value;
    }
  }

  #output(chunk: string | Uint8Array, offset: number): void {
    const now = performance.now();
    this.firstOutputAt ??= now;
    this.lastOutputAt = now;
    const length = typeof chunk === "string" ? byteLength(chunk) : chunk.byteLength;
    this.bytes = offset + length;
    const text = typeof chunk === "string" ? chunk : latin1.decode(chunk.subarray(-TEXT_TAIL_CHARS));
    this.text = text.length >= TEXT_TAIL_CHARS
      ? text.slice(-TEXT_TAIL_CHARS)
      : (this.text + text).slice(-TEXT_TAIL_CHARS);
    this.sink?.(chunk);
    if (this.ack.kind === "immediate") this.#scheduleAck();
    this.#wake();
  }

  /** Coalesces acks per task, as the SPA does once xterm.js has written a chunk. */
  #scheduleAck(): void {
    if (this.#ackScheduled) return;
    this.#ackScheduled = true;
    queueMicrotask(() => {
      this.#ackScheduled = false;
      this.#sendAck(this.bytes);
    });
  }

  #sendAck(offset: number): void {
    if (offset <= this.#acked || !this.sessionId) return;
    this.#acked = offset;
    this.#send(JSON.stringify({ type: "ack", sessionId: this.sessionId, offset }));
  }

  #wake(): void {
    if (this.#waiters.length === 0) return;
    this.#waiters = this.#waiters.filter((w) => !(w.check() && (w.resolve(), true)));
  }

  #send(frame: string | Uint8Array): void {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(frame);
  }

  /** Types `data`: a binary input frame for a binary client, JSON `stdin` otherwise. */
  stdin(data: string): void {
    if (!this.sessionId) throw new Error("stdin before the session id is known");
    if (this.mode === "binary") {
      this.#send(encodeInputFrame({ sessionId: this.sessionId, data: encoder.encode(data) }));
    } else {
      this.#send(JSON.stringify({ type: "stdin", sessionId: this.sessionId, data }));
    }
  }

  /** Resolves once `check()` holds, checked after every frame and on close; rejects after `timeoutMs`. */
  until(check: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`bench: timed out waiting for ${what} (${this.bytes} bytes so far)`));
      }, timeoutMs);
      const waiter = {
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.#waiters.push(waiter);
    });
  }

  /** Closes the link and waits for the close. */
  async close(): Promise<void> {
    clearInterval(this.#renderTimer);
    if (this.socket.readyState !== WebSocket.CLOSED) this.socket.close();
    await this.closed;
  }
}

/** UTF-8 length of `text`: its length when ASCII (base64, `yes`), else encoded. */
function byteLength(text: string): number {
  // deno-lint-ignore no-control-regex
  return /^[\x00-\x7f]*$/.test(text) ? text.length : encoder.encode(text).byteLength;
}
