/**
 * Helpers shared by the runner's tests: waiting for a condition, a sink that
 * collects what sessions send, and a predictable shell environment.
 *
 * @module
 */
import {
  BINARY_SUBPROTOCOL,
  decodeBinaryFrame,
  encodeFileFrame,
  type FileFrame,
  type RunnerToRelay,
  TRANSFER_CHUNK_BYTES,
  TRANSFER_WINDOW_BYTES,
} from "@coda/relay/protocol";
import { concatBytes } from "@coda/relay/bytes";
import type { OutputChunk, SessionSink } from "./session.ts";
import { SessionManager, type SessionManagerOptions } from "./session_manager.ts";
import { type LinkStopReason, RelayLink, type RelayLinkOptions } from "./link.ts";
import { silentLogger } from "./log.ts";
import { waitFor as relayWaitFor } from "@coda/relay/testing";

export { silentLogger };
export { endHolders } from "./holder_pool.ts";
/** {@linkcode relayWaitFor} with the runner tests' slower defaults (PTYs take longer than frames). */
export function waitFor<T>(
  check: () => T | Promise<T>,
  what: string,
  timeoutMs = 20_000,
  intervalMs = 20,
): Promise<NonNullable<T>> {
  return relayWaitFor(check, what, timeoutMs, intervalMs);
}

/**
 * A {@linkcode SessionSink} that keeps every frame (a plain function sink, no
 * network). Output is kept as sent in {@linkcode chunks} and, decoded, among
 * the {@linkcode frames} as `stdout` (every chunk ends on a character boundary).
 */
export class CollectingSink implements SessionSink {
  readonly frames: RunnerToRelay[] = [];
  readonly chunks: OutputChunk[] = [];
  buffered = 0;
  send(message: RunnerToRelay): void {
    this.frames.push(message);
  }
  sendOutput(chunk: OutputChunk): void {
    this.chunks.push(chunk);
    const { sessionId, clientId, offset } = chunk;
    const data = new TextDecoder().decode(chunk.data);
    this.frames.push(
      clientId === undefined ? { type: "stdout", sessionId, data, offset } : {
        type: "stdout",
        sessionId,
        data,
        offset,
        clientId,
      },
    );
  }
  bufferedAmount(): number {
    return this.buffered;
  }
  /** Concatenated stdout of `sessionId` (targeted at `clientId`, or broadcast when omitted). */
  output(sessionId: string, clientId?: string): string {
    return this.frames
      .filter((f) =>
        f.type === "stdout" && f.sessionId === sessionId && (clientId ? f.clientId === clientId : true)
      )
      .map((f) => (f as { data: string }).data)
      .join("");
  }
  /** Meta lines of `sessionId`. */
  metas(sessionId: string): string[] {
    return this.frames
      .filter((f) => f.type === "meta" && f.sessionId === sessionId)
      .map((f) => (f as { data: string }).data);
  }
}

/** Environment for test shells: bash, a temp HOME, a plain prompt. */
export function testShellEnv(home: string): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: home,
    SHELL: "/bin/bash",
    LANG: "C.UTF-8",
    PS1: "$ ",
  };
}

/**
 * A browser-like client of the client protocol, for tests over real
 * WebSockets. `binary`: it offers the `coda.v2` subprotocol and, when the
 * relay takes it, receives output as binary frames ({@linkcode bytes}).
 */
export class TestClient {
  readonly socket: WebSocket;
  readonly frames: { type: string; sessionId: string; data: string; offset?: number; replay?: boolean }[] =
    [];
  /** Output received in binary frames, as received. */
  readonly bytes: Uint8Array[] = [];
  /** Pieces of downloads received, as received. */
  readonly downloads: FileFrame[] = [];
  /** Each JSON message received, parsed (transfer messages included). */
  readonly messages: Record<string, unknown>[] = [];
  #byteCount = 0;
  readonly #decoder = new TextDecoder();
  /** Resolves with the close code and reason. */
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Resolves once open; rejects if the connection fails first. */
  readonly opened: Promise<void>;

  constructor(url: string, headers?: Record<string, string>, options: { binary?: boolean } = {}) {
    const Socket = WebSocket as unknown as new (
      url: string,
      options?: { headers?: Record<string, string>; protocols?: string[] },
    ) => WebSocket;
    const protocols = options.binary ? [BINARY_SUBPROTOCOL] : undefined;
    this.socket = headers || protocols ? new Socket(url, { headers, protocols }) : new Socket(url);
    this.socket.binaryType = "arraybuffer";
    let opened = false;
    this.opened = new Promise((resolve, reject) => {
      this.socket.onopen = () => {
        opened = true;
        resolve();
      };
      this.socket.onerror = () => {
        if (!opened) reject(new Error("connection failed"));
      };
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.socket.onclose = (event) => resolve({ code: event.code, reason: event.reason });
    });
    this.socket.onmessage = (event) => {
      if (typeof event.data === "string") {
        const message = JSON.parse(event.data);
        this.frames.push(message);
        this.messages.push(message);
        // As the SPA does: the relay announces its close to `ack=1` clients, which close first.
        if (message.type === "closing") this.socket.close(message.code, message.reason);
        return;
      }
      const decoded = decodeBinaryFrame(event.data);
      if (decoded.ok && decoded.value.type === "download") {
        this.downloads.push({ ...decoded.value, data: decoded.value.data.slice() });
        return;
      }
      if (!decoded.ok || decoded.value.type !== "output") throw new Error("unexpected binary frame");
      const { sessionId, offset, replay, data } = decoded.value;
      this.bytes.push(data.slice());
      this.#byteCount += data.length;
      this.frames.push({
        type: "stdout",
        sessionId,
        offset,
        replay,
        data: this.#decoder.decode(data, { stream: true }),
      });
    };
  }

  /** Every output byte received in binary frames, joined. */
  received(): Uint8Array {
    return concatBytes(this.bytes, this.#byteCount);
  }

  /** Everything written to the terminal so far. */
  output(): string {
    return this.frames.filter((f) => f.type === "stdout").map((f) => f.data).join("");
  }

  /** Meta lines so far. */
  metas(): string[] {
    return this.frames.filter((f) => f.type === "meta").map((f) => f.data);
  }

  /** Bytes of output received (the offset to resume from). */
  get offset(): number {
    return this.socket.protocol === BINARY_SUBPROTOCOL
      ? this.#byteCount
      : new TextEncoder().encode(this.output()).length;
  }

  /** Sends a client message. */
  send(message: Record<string, unknown>): void {
    this.socket.send(JSON.stringify(message));
  }

  /** Waits until the output contains `text`. */
  async waitForOutput(text: string, timeoutMs = 20_000): Promise<void> {
    await waitFor(() => this.output().includes(text), `output "${text}"`, timeoutMs);
  }

  /** Waits for a JSON message matching `predicate`, searching from the start. */
  async next(
    predicate: (message: Record<string, unknown>) => boolean,
    what: string,
  ): Promise<Record<string, unknown>> {
    return await waitFor(() => this.messages.find(predicate), what);
  }

  /**
   * Uploads `data` as `name` the way the browser does: `upload-start`, then pieces, never more than
   * the window past the runner's last `upload-ack`. Resolves with the runner's `upload-done` or
   * `transfer-error`; `stopAt` stops sending after that many bytes (and resolves undefined).
   */
  async upload(
    sessionId: string,
    transferId: number,
    name: string,
    data: Uint8Array,
    stopAt = Infinity,
  ): Promise<Record<string, unknown> | undefined> {
    this.send({ type: "upload-start", sessionId, transferId, name, size: data.byteLength });
    const acked = () =>
      Math.max(
        0,
        ...this.messages.filter((m) => m.type === "upload-ack" && m.transferId === transferId)
          .map((m) => m.offset as number),
      );
    const over = () =>
      this.messages.find((m) =>
        (m.type === "upload-done" || m.type === "transfer-error") && m.transferId === transferId
      );
    for (let offset = 0; offset < Math.min(data.byteLength, stopAt); offset += TRANSFER_CHUNK_BYTES) {
      const piece = data.subarray(offset, offset + TRANSFER_CHUNK_BYTES);
      await waitFor(
        () => over() ?? offset + piece.byteLength - acked() <= TRANSFER_WINDOW_BYTES,
        "room in the upload window",
      );
      if (over()) return over();
      this.socket.send(encodeFileFrame({ type: "upload", sessionId, transferId, offset, data: piece }));
    }
    if (stopAt < data.byteLength) return undefined;
    return await waitFor(over, `the end of upload ${transferId}`);
  }

  /** Accepts download `transferId` and acknowledges each piece as it comes; resolves the file's bytes. */
  async download(sessionId: string, transferId: number): Promise<Uint8Array> {
    this.send({ type: "download-accept", sessionId, transferId });
    let acked = 0;
    const done = () => this.messages.find((m) => m.type === "download-done" && m.transferId === transferId);
    const received = () => this.downloads.filter((piece) => piece.transferId === transferId);
    await waitFor(() => {
      const end = received().reduce((sum, piece) => sum + piece.data.byteLength, 0);
      if (end > acked) this.send({ type: "download-ack", sessionId, transferId, offset: acked = end });
      return done();
    }, `download ${transferId}`);
    const bytes = new Uint8Array(done()!.size as number);
    for (const piece of received()) bytes.set(piece.data, piece.offset);
    return bytes;
  }

  /** Closes (if open) and waits for the close to finish. */
  async close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CONNECTING || this.socket.readyState === WebSocket.OPEN) {
      try {
        this.socket.close();
      } catch {
        // Already closing.
      }
    }
    await this.closed;
  }
}

/** `bytes` random bytes as base64 lines of 76, the way `base64` prints them. */
export function base64Lines(bytes: number): string {
  const random = new Uint8Array(bytes);
  for (let at = 0; at < bytes; at += 65536) crypto.getRandomValues(random.subarray(at, at + 65536));
  return random.toBase64().match(/.{1,76}/g)!.join("\n") + "\n";
}

/** What a terminal shows for `text` written by a program (the PTY turns LF into CR LF). */
export const onTerminal = (text: string): string => text.replaceAll("\n", "\r\n");

/** A runner running in this process: the real session manager behind the real relay link. */
export interface InProcessRunner {
  manager: SessionManager;
  link: RelayLink;
  /** Resolves when the link stops for good. */
  done: Promise<LinkStopReason>;
  /** Stops the link and every session. */
  stop(): Promise<void>;
}

/** Starts the runner side in-process against `relayUrl` (fast reconnects for tests). */
export function startInProcessRunner(
  relayUrl: string,
  runnerToken: string,
  home: string,
  options: Partial<SessionManagerOptions> = {},
  linkOptions: Partial<RelayLinkOptions> = {},
): InProcessRunner {
  const manager: SessionManager = new SessionManager({
    sink: {
      send: (message) => link.send(message),
      sendOutput: (chunk) => link.sendOutput(chunk),
      bufferedAmount: () => link.bufferedAmount(),
    },
    log: silentLogger,
    env: testShellEnv(home),
    home,
    graceMs: 60_000,
    replayBytes: 1024 * 1024,
    ...options,
  });
  const link: RelayLink = new RelayLink({
    relayUrl,
    runnerToken,
    log: silentLogger,
    backoff: { initialMs: 100, maxMs: 500 },
    ...linkOptions,
    handler: {
      onMessage: (message) => manager.handle(message),
      onUp: () => manager.linkUp(),
      onDown: () => manager.linkDown(),
    },
  });
  manager.linkDown();
  const done = link.run();
  return {
    manager,
    link,
    done,
    async stop() {
      link.stop();
      await done;
      await manager.shutdown();
    },
  };
}
