/**
 * One terminal session: a PTY, its replay buffer, the clients attached to it
 * and its flow control.
 *
 * Flow control (protocol rule 5): while at least one client is attached and
 * the output produced but not yet acknowledged (`produced − max(acks)`) is
 * above the high watermark, the PTY is paused; it resumes below the low
 * watermark. It is also paused while the link's send buffer is above its
 * limit, and while the relay link is down after dropping attached clients (up
 * to the time the relay keeps those clients waiting): a fast program would
 * otherwise overrun the ring during a relay restart. With no client attached
 * the PTY runs freely into the ring buffer, so memory stays bounded by the
 * buffer size either way.
 *
 * Output is bytes from the PTY to the link: PTY reads that arrive in one turn
 * of the event loop go out as one frame, offsets count bytes, and frames end
 * on UTF-8 character boundaries (an incomplete character at the end of a read
 * waits for the rest), so any frame decodes on its own.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import { MAX_FRAME_BYTES, MetaLine, type OutputFrame, type RunnerToRelay } from "@coda/relay/protocol";
import { completeLength, ReplayBuffer, splitChunk } from "./replay_buffer.ts";
import { DEFAULT_RELAY_LIMITS } from "@coda/relay/limits";
import { jsonStdoutBytesBound, MAX_JSON_BYTES_PER_BYTE } from "@coda/relay/utf8";
import { JsonInFlight } from "./json_in_flight.ts";
import { BatchPool } from "./batch_pool.ts";
import { concatBytes, indexOfByte } from "@coda/relay/bytes";
import { ESC } from "./osc_filter.ts";
import { FlowWindow, type FlowWindowLimits } from "./flow_window.ts";
import type { PtyProcess } from "./pty.ts";
import { ShellTracker } from "./shell_integration.ts";
import type { Recorder } from "./recorder.ts";
import type { Logger } from "./log.ts";

/** A piece of a session's output: raw bytes at a byte offset, targeted at one client or broadcast. */
export type OutputChunk = Omit<OutputFrame, "type">;

/** Where a session's frames go, and how full that path is. */
export interface SessionSink {
  /** Sends a control or meta frame to the relay (or, in `serve` mode, to local clients). */
  send(message: RunnerToRelay): void;
  /**
   * Sends output. The sink may keep the view of `data` while it queues it: the session writes there
   * again only once more output has been sent after it than {@linkcode bufferedAmount} says is queued
   * (`batch_pool.ts`). `frame`: the chunk already encoded as a relay binary output frame (a session
   * holder's), to send as it is.
   */
  sendOutput(chunk: OutputChunk, frame?: Uint8Array): void;
  /**
   * Bytes queued on the link but not yet sent, first in first out, counting everything it may still
   * send (0 when the link is down and nothing it queued will go out).
   */
  bufferedAmount(): number;
}

/**
 * Flow-control thresholds, in bytes: the bounds of the session's {@linkcode FlowWindow} (sized by
 * the clients' ack rate), and the link's.
 */
export interface FlowLimits extends FlowWindowLimits {
  /** Pause while the link buffers more than this (default 1 MiB). */
  maxLinkBuffered: number;
  /** How often a paused session re-checks the link's buffer, ms (default 20). */
  linkPollMs: number;
}

/** Default {@linkcode FlowLimits}. */
export const DEFAULT_FLOW_LIMITS: FlowLimits = {
  highWatermark: 128 * 1024,
  lowWatermark: 32 * 1024,
  // Three quarters of what the relay queues for one client: in output bytes, and in JSON bytes while a
  // spec-only client is attached (json_in_flight.ts). A session holder's acks cross one more process and
  // every hop waits for a core, so a smaller window left the clients idle between acks: in the bench a
  // quarter gave 38, a half 59 and three quarters 65 MB/s through the relay (the whole queue, 62).
  maxWindow: DEFAULT_RELAY_LIMITS.maxClientBufferedBytes * 3 / 4,
  windowMs: 100,
  maxLinkBuffered: 1024 * 1024,
  linkPollMs: 20,
};

/**
 * Replay frames are coalesced up to this many bytes: a relay turns them into
 * JSON for clients that did not opt into binary, where a control byte takes 6.
 */
const REPLAY_FRAME_BYTES = 256 * 1024;
/**
 * The most a replay sends, as it takes in the relay's queue (the bytes for a
 * binary client, a bound on their JSON for a spec-only one): within what the
 * relay queues for one client (beyond it the client is closed 4413 before it
 * could catch up). Older output is announced as a gap instead.
 */
const MAX_REPLAY_BYTES = DEFAULT_RELAY_LIMITS.maxClientBufferedBytes * 3 / 4;
/**
 * A turn's PTY reads go out as one chunk up to about this many bytes: enough
 * to cut the frame count several-fold, small enough that the replay ring,
 * which keeps chunks whole, stays within its capacity plus one chunk.
 */
const BATCH_BYTES = 64 * 1024;
/** The most output bytes in any one frame, leaving room for its header (or JSON envelope) under MAX_FRAME_BYTES. */
export const FRAME_DATA_BYTES = MAX_FRAME_BYTES - 4096;
/**
 * How long the start of a shell-integration sequence or of a UTF-8 character
 * at the end of a read waits for the rest: a quiet program that wrote a lone
 * ESC still gets it shown.
 */
const HELD_OUTPUT_MS = 50;

/**
 * A filter on the session's output after shell integration's (the download marks of
 * `coda-download`): what it strips never reaches the stream, offsets or recordings.
 */
export interface OutputFilter {
  /**
   * One piece of output in, what passes on out; the start of a sequence may be held back.
   * `firstEscape`: where `data`'s first ESC is (−1: none), when the session has looked already.
   */
  filter(data: Uint8Array, firstEscape?: number): Uint8Array;
  /** Gives up what is held back, as output. */
  flush(): Uint8Array;
  /** Whether something is held back. */
  readonly holding: boolean;
}

/** Options of {@linkcode Session}. */
export interface SessionOptions {
  sessionId: string;
  ideaId?: string;
  pty: PtyProcess;
  cwd: string;
  cols: number;
  rows: number;
  sink: SessionSink;
  log: Logger;
  replayBytes?: number;
  /** How long the session lives without clients, ms. */
  graceMs: number;
  flow?: Partial<FlowLimits>;
  /** Called once when the session is over (shell exited or killed). */
  onEnd: (session: Session) => void;
  /** Ends the process for good (tmux: the tmux session, not just the client). */
  terminate?: () => Promise<void>;
  /** Applied to the output after the shell integration's filter. */
  outputFilter?: OutputFilter;
  /** A client left: detached, or gone with the link. */
  onDetach?: (clientId: string) => void;
}

/** Numbers describing a session, for status and tests. */
export interface SessionStats {
  produced: number;
  acked: number;
  /** The flow-control window now: the PTY pauses with more than this unacknowledged. */
  window: number;
  heldBytes: number;
  chunks: number;
  paused: boolean;
  clients: number;
  recording: boolean;
}

/** A PTY session shared by any number of clients. */
export class Session {
  readonly sessionId: string;
  readonly ideaId: string | undefined;
  /** The process in the PTY: the shell, or the tmux client. */
  readonly pid: number;
  /**
   * The session's working directory: as started, then as the shell reports
   * it (shell integration), or as `pick-cwd` set it (shells without).
   */
  cwd: string;
  cols: number;
  rows: number;
  readonly #pty: PtyProcess;
  readonly #sink: SessionSink;
  readonly #log: Logger;
  readonly #buffer: ReplayBuffer;
  /** The buffers of the batches the ring holds, used again once nothing refers to them. */
  readonly #pool: BatchPool;
  readonly #flow: FlowLimits;
  readonly #window: FlowWindow;
  readonly #graceMs: number;
  readonly #onEnd: (session: Session) => void;
  readonly #terminate: (() => Promise<void>) | undefined;
  /** The attached clients, and whether each reads binary frames. */
  readonly #clients = new Map<string, { binary: boolean }>();
  /** How many of them read JSON `stdout` (spec-only clients). */
  #jsonClients = 0;
  /** What is in flight to them, as JSON: it too must fit the window, see json_in_flight.ts. */
  readonly #jsonInFlight = new JsonInFlight();
  #acked = 0;
  #pausedForAcks = false;
  #pausedForLink = false;
  #ptyPaused = false;
  #linkTimer: ReturnType<typeof setTimeout> | undefined;
  #graceTimer: ReturnType<typeof setTimeout> | undefined;
  #killTimer: ReturnType<typeof setTimeout> | undefined;
  #recorder: Recorder | undefined;
  #ended = false;
  /** The link is down: nobody would hear what the session sends, and the grace period waits for it. */
  #linkIsDown = false;
  /** The shell's exit status, while no client has been told it (it exited while the link was down). */
  #untoldExit: { code: number | null } | undefined;
  /** {@linkcode kill} or {@linkcode release} ran: the PTY gets no more input or sizes, and is ended once. */
  #ending = false;
  /** Let go of by {@linkcode release}: the local client's exit does not end the session. */
  #released = false;
  /** The shell's state from its integration marks; `undefined` without integration. */
  readonly #shell: ShellTracker | undefined;
  readonly #outputFilter: OutputFilter | undefined;
  readonly #onDetach: ((clientId: string) => void) | undefined;
  #heldTimer: ReturnType<typeof setTimeout> | undefined;
  /** The start of a UTF-8 character at the end of the last read, waiting for its other bytes. */
  #partialCharacter: Uint8Array = EMPTY;
  /** PTY reads of this turn, sent as one frame once it ends. */
  #reads: Uint8Array[] = [];
  #readBytes = 0;
  #readsScheduled = false;
  /** Paused because the link dropped while clients were attached; until one attaches or the wait ends. */
  #pausedForOutage = false;
  #outageTimer: ReturnType<typeof setTimeout> | undefined;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ exitCode: number; signal?: number }>;

  constructor(options: SessionOptions) {
    this.sessionId = options.sessionId;
    this.ideaId = options.ideaId;
    this.pid = options.pty.pid;
    this.cwd = options.cwd;
    this.cols = options.cols;
    this.rows = options.rows;
    this.#pty = options.pty;
    this.#sink = options.sink;
    this.#log = options.log;
    this.#pool = new BatchPool(this.sessionId, BATCH_BYTES);
    this.#buffer = new ReplayBuffer(options.replayBytes, (chunk) => this.#pool.retire(chunk));
    this.#flow = { ...DEFAULT_FLOW_LIMITS, ...options.flow };
    this.#window = new FlowWindow(this.#flow);
    // Never more in flight than the ring holds with room for the reads past the window, so that what is
    // unacknowledged can always be replayed (a client resuming after a relay restart asks for it).
    this.#window.limit(Math.min(this.#flow.maxWindow, this.#buffer.capacity - 2 * BATCH_BYTES));
    this.#graceMs = options.graceMs;
    this.#onEnd = options.onEnd;
    this.#terminate = options.terminate;
    this.#outputFilter = options.outputFilter;
    this.#onDetach = options.onDetach;
    const integration = options.pty.shellIntegration;
    this.#shell = integration && new ShellTracker(integration.kind, integration.nonce, (path) => {
      if (path === this.cwd) return;
      this.cwd = path;
      this.broadcastMeta(MetaLine.cwd(path));
    });
    this.#pty.onData((data) => this.#read(data));
    this.exited = new Promise((resolve) => {
      this.#pty.onExit((exit) => {
        this.#exit(exit);
        resolve(exit);
      });
    });
    this.#startGrace();
  }

  /** The shell's prompt and command state, when it runs with shell integration. */
  get shell(): ShellTracker | undefined {
    return this.#shell;
  }

  /** Whether the shell has exited. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Whether the shell exited while the link was down and no client has been told yet: the next
   * {@linkcode attach} replays what it missed, then tells the exit and ends the session.
   */
  get endUntold(): boolean {
    return this.#untoldExit !== undefined;
  }

  /** Current numbers (buffer, acks, pause state). */
  stats(): SessionStats {
    return {
      produced: this.#buffer.end,
      acked: this.#acked,
      window: this.#window.high,
      heldBytes: this.#buffer.heldBytes,
      chunks: this.#buffer.chunkCount,
      paused: this.#ptyPaused,
      clients: this.#clients.size,
      recording: this.#recorder !== undefined,
    };
  }

  /**
   * Attaches `clientId`: announces the session and its directory, replays
   * from `offset` (or the oldest byte held), then sends `attached`.
   * `fresh`: this attach created the session, so an offset > 0 belongs to an
   * older stream and the client is told to reset. `binary`: the client reads
   * binary frames (the relay says so), so its output in flight is not counted as JSON.
   */
  attach(clientId: string, offset: number | undefined, fresh: boolean, binary = false): void {
    if (this.#ended) {
      if (this.#untoldExit) this.#tellExit(clientId, offset, this.#untoldExit.code, binary);
      return;
    }
    const from = this.#replay(clientId, offset, fresh, binary);
    this.#sink.send({ type: "attached", sessionId: this.sessionId, clientId, offset: this.#buffer.end });
    this.#clients.set(clientId, { binary });
    this.#countJsonClients();
    if (from > this.#acked) this.#acked = Math.min(from, this.#buffer.end);
    this.#endOutage();
    this.#stopGrace();
    this.#updateFlow();
  }

  /**
   * What a client resuming an exited session is told, as if it had been attached when the shell
   * exited: the output it missed, then the exit, then the end (which the relay turns into
   * `1000 session ended` for every client of the session).
   */
  #tellExit(clientId: string, offset: number | undefined, code: number | null, binary: boolean): void {
    this.#untoldExit = undefined;
    this.#replay(clientId, offset, false, binary);
    this.#sink.send({ type: "attached", sessionId: this.sessionId, clientId, offset: this.#buffer.end });
    this.#announceExit(code);
  }

  /** Tells every client the shell's exit status, and the relay that the session is over. */
  #announceExit(code: number | null): void {
    this.#sink.send({ type: "meta", sessionId: this.sessionId, data: MetaLine.exit(code) });
    this.#sink.send({ type: "end", sessionId: this.sessionId, exitCode: code });
  }

  /**
   * Announces the session and its directory to `clientId` and replays from `offset` (or the oldest
   * byte held); resolves the offset replayed from.
   */
  #replay(clientId: string, offset: number | undefined, fresh: boolean, binary: boolean): number {
    const meta = (data: string) =>
      this.#sink.send({ type: "meta", sessionId: this.sessionId, data, clientId });
    meta(MetaLine.session(this.sessionId));
    meta(MetaLine.cwd(this.cwd));
    if (this.#recorder) meta(MetaLine.record(true));
    let from = offset ?? this.#buffer.start;
    if ((fresh && from > 0) || from > this.#buffer.end) {
      meta(MetaLine.reset());
      from = 0;
    }
    const slice = this.#buffer.slice(from);
    let { gap } = slice;
    let chunks = slice.chunks;
    // What the replay takes in the relay's queue: the bytes, or for a spec-only client the JSON they become.
    const sizes = chunks.map((chunk) => binary ? chunk.data.length : jsonStdoutBytesBound(chunk.data));
    let total = sizes.reduce((sum, size) => sum + size, 0);
    let skip = 0;
    while (total > MAX_REPLAY_BYTES && skip < chunks.length - 1) total -= sizes[skip++];
    if (skip > 0) {
      gap = { from: gap?.from ?? from, to: chunks[skip].offset };
      chunks = chunks.slice(skip);
    }
    if (gap) meta(MetaLine.gap(gap.from, gap.to));
    let frame: { offset: number; parts: Uint8Array[]; bytes: number } | undefined;
    const flush = () => {
      if (!frame) return;
      const data = concatBytes(frame.parts, frame.bytes);
      this.#sink.sendOutput({
        sessionId: this.sessionId,
        clientId,
        offset: frame.offset,
        replay: true,
        data,
      });
      frame = undefined;
    };
    for (const piece of chunks.flatMap((chunk) => splitChunk(chunk, REPLAY_FRAME_BYTES))) {
      if (frame && frame.bytes + piece.data.length > REPLAY_FRAME_BYTES) flush();
      frame ??= { offset: piece.offset, parts: [], bytes: 0 };
      frame.parts.push(piece.data);
      frame.bytes += piece.data.length;
    }
    flush();
    return from;
  }

  #countJsonClients(): void {
    let json = 0;
    for (const client of this.#clients.values()) if (!client.binary) json++;
    this.#jsonClients = json;
    if (json === 0) this.#jsonInFlight.clear();
  }

  /** Detaches `clientId`; with no client left the grace period starts. */
  detach(clientId: string): void {
    if (!this.#clients.delete(clientId)) return;
    this.#countJsonClients();
    this.#onDetach?.(clientId);
    if (this.#clients.size === 0) this.#startGrace();
    this.#updateFlow();
  }

  /**
   * The link dropped: every client is gone (the relay re-attaches them when
   * it returns). The grace period waits for the link to come back.
   */
  linkDown(): void {
    if (this.#clients.size > 0 && !this.#pausedForOutage) {
      // The relay keeps those clients waiting for the runner this long; until then every byte the
      // program writes is one they would miss if the ring overran, so the program waits too.
      this.#pausedForOutage = true;
      this.#outageTimer = setTimeout(() => this.#endOutage(), DEFAULT_RELAY_LIMITS.runnerWaitMs);
    }
    for (const clientId of this.#clients.keys()) this.#onDetach?.(clientId);
    this.#clients.clear();
    this.#countJsonClients();
    this.#linkIsDown = true;
    this.#stopGrace();
    this.#updateFlow();
  }

  /** The link is back: without clients, the grace period starts again. */
  linkUp(): void {
    this.#linkIsDown = false;
    if (this.#clients.size === 0) this.#startGrace();
    this.#updateFlow();
  }

  /** Writes keystrokes to the PTY. */
  write(data: string): void {
    if (this.#ended || this.#ending) return;
    this.#shell?.input(data);
    this.#pty.write(data);
  }

  /** Resizes the PTY. */
  resize(cols: number, rows: number): void {
    if (this.#ended || this.#ending) return;
    this.cols = cols;
    this.rows = rows;
    this.#pty.resize(cols, rows);
  }

  /** A client has rendered output up to `offset`. */
  ack(offset: number): void {
    if (offset > this.#acked) this.#acked = Math.min(offset, this.#buffer.end);
    this.#window.acked(this.#acked);
    this.#updateFlow();
  }

  /** Starts recording with `recorder`, or stops (passing `undefined`). Tells every client. */
  async setRecorder(recorder: Recorder | undefined): Promise<void> {
    const previous = this.#recorder;
    this.#recorder = recorder;
    this.#sink.send({
      type: "meta",
      sessionId: this.sessionId,
      data: MetaLine.record(recorder !== undefined),
    });
    if (previous && previous !== recorder) await previous.stop();
  }

  /** Sends every client a meta line. */
  broadcastMeta(data: string): void {
    this.#sink.send({ type: "meta", sessionId: this.sessionId, data });
  }

  /** Sends one client a meta line. */
  metaTo(clientId: string, data: string): void {
    this.#sink.send({ type: "meta", sessionId: this.sessionId, data, clientId });
  }

  /**
   * Ends the session for good: the shell gets SIGHUP, and SIGKILL if it is
   * still there after `escalateMs`; `end` follows from its exit.
   */
  async kill(escalateMs = 5000): Promise<void> {
    if (this.#ended || this.#ending) return;
    this.#ending = true;
    this.#endOutage();
    this.#resumePty();
    if (this.#terminate) await this.#terminate().catch(() => {});
    this.#signal("SIGHUP");
    this.#escalate(escalateMs);
  }

  /**
   * Stops this process's hold on the session without ending it where it can
   * outlive the runner (tmux): only the local PTY client goes away.
   */
  release(escalateMs = 5000): void {
    if (this.#ended || this.#ending) return;
    this.#ending = true;
    this.#released = true;
    this.#endOutage();
    this.#resumePty();
    this.#signal("SIGHUP");
    this.#escalate(escalateMs);
  }

  #escalate(ms: number): void {
    if (this.#ended || this.#killTimer !== undefined) return;
    this.#killTimer = setTimeout(() => {
      this.#killTimer = undefined;
      if (!this.#ended) this.#signal("SIGKILL");
    }, ms);
  }

  #signal(signal: "SIGHUP" | "SIGKILL"): void {
    if (this.#ended) return;
    try {
      if (Deno.build.os === "windows") this.#pty.kill();
      else this.#pty.kill(signal);
    } catch (error) {
      this.#log.debug("could not signal the shell", {
        sessionId: this.sessionId,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  /** One PTY read: kept until the end of this turn, when every read of it goes out together. */
  #read(data: Uint8Array | string): void {
    // node-pty hands out strings if its byte mode is unavailable (see pty.ts).
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    this.#reads.push(bytes);
    this.#readBytes += bytes.length;
    // A full batch goes now; so does one past the watermark, so flow control pauses the PTY before the turn's
    // other reads.
    if (
      this.#readBytes >= BATCH_BYTES ||
      (this.#clients.size > 0 && this.#buffer.end + this.#readBytes - this.#acked > this.#window.high) ||
      (this.#jsonClients > 0 &&
        this.#jsonInFlight.bytes + MAX_JSON_BYTES_PER_BYTE * this.#readBytes > this.#flow.maxWindow)
    ) {
      this.#takeReads();
      return;
    }
    if (this.#readsScheduled) return;
    this.#readsScheduled = true;
    setImmediate(() => this.#takeReads());
  }

  #takeReads(): void {
    this.#readsScheduled = false;
    const reads = this.#reads;
    if (reads.length === 0) return;
    // The turn's reads, copied once into a buffer with room for the frame header before them (one the ring
    // let go of, for a full batch): the link sends the bytes from there (node-pty's reads are views into its
    // pool, which the ring must not hold).
    const owned = this.#pool.take(this.#readBytes, this.#buffer.end, this.#sink.bufferedAmount());
    let at = 0;
    for (const read of reads) {
      owned.set(read, at);
      at += read.length;
    }
    this.#reads = [];
    this.#readBytes = 0;
    let raw: Uint8Array = owned;
    clearTimeout(this.#heldTimer);
    this.#heldTimer = undefined;
    // The stripped stream is the session's stream: offsets, the replay buffer and recordings all count it.
    // One scan for ESC serves both filters (and none runs without them): most output has none, and passes
    // both untouched.
    const firstEscape = this.#shell || this.#outputFilter ? indexOfByte(raw, ESC) : undefined;
    if (this.#shell) raw = this.#shell.filter(raw, firstEscape);
    if (this.#outputFilter) raw = this.#outputFilter.filter(raw, raw === owned ? firstEscape : undefined);
    if (this.#partialCharacter.length > 0) {
      raw = concatBytes([this.#partialCharacter, raw]);
      this.#partialCharacter = EMPTY;
    }
    const complete = completeLength(raw);
    if (complete < raw.length) {
      this.#partialCharacter = raw.slice(complete);
      raw = raw.subarray(0, complete);
    }
    if (this.#partialCharacter.length > 0 || this.#shell?.holding || this.#outputFilter?.holding) {
      this.#heldTimer = setTimeout(() => this.#emitHeld(), HELD_OUTPUT_MS);
    }
    this.#emit(raw, raw.buffer === owned.buffer);
  }

  /** Gives up waiting for the rest of what the last read ended with: it is output as it is. */
  #emitHeld(): void {
    const held = this.#partialCharacter;
    this.#partialCharacter = EMPTY;
    // In stream order: the character, then what the output filter held, then what the shell's did.
    const parts = [held];
    if (this.#outputFilter) parts.push(this.#outputFilter.flush());
    if (this.#shell) parts.push(this.#shell.flush());
    this.#emit(parts.length === 1 ? held : concatBytes(parts));
  }

  /** Output of the session's stream; `owned`: `data` is a view of a buffer of this session's own. */
  #emit(data: Uint8Array, owned = false): void {
    if (data.length === 0) return;
    if (this.#buffer.end === this.#acked) this.#window.restart(this.#acked);
    // The ring keeps the chunk: a view into a larger buffer (node's read pool) would hold all of it.
    const chunk = this.#buffer.append(
      owned || data.byteLength === data.buffer.byteLength ? data : data.slice(),
    );
    this.#recorder?.push(chunk.data);
    if (this.#clients.size > 0) {
      for (const piece of splitChunk(chunk, FRAME_DATA_BYTES)) {
        if (this.#jsonClients > 0) this.#jsonInFlight.sent(piece.offset + piece.data.length, piece.data);
        this.#sink.sendOutput({
          sessionId: this.sessionId,
          offset: piece.offset,
          replay: false,
          data: piece.data,
        });
      }
    }
    this.#updateFlow();
  }

  #exit(exit: { exitCode: number; signal?: number }): void {
    if (this.#ended) return;
    this.#takeReads();
    clearTimeout(this.#heldTimer);
    this.#emitHeld();
    this.#shell?.close();
    this.#ended = true;
    this.#stopGrace();
    clearTimeout(this.#linkTimer);
    clearTimeout(this.#outageTimer);
    clearTimeout(this.#killTimer);
    this.#killTimer = undefined;
    const code = exit.signal ? null : exit.exitCode;
    if (this.#released) {
      // Only the tmux client exited (with its own status, 1 on SIGHUP); the shell runs on.
      this.#log.info("let go of the session; it keeps running in tmux", { sessionId: this.sessionId });
    } else if (this.#linkIsDown || this.#pausedForOutage) {
      // Nobody would hear the end now: the link is down, or back while the clients the relay kept waiting
      // have not attached again yet. They resume by offset, and the first to come back gets the output it
      // missed and the exit, as it would have live.
      this.#log.info("session ended while its clients were away; a resuming client will be told", {
        sessionId: this.sessionId,
        exitCode: code ?? `signal ${exit.signal}`,
      });
      this.#untoldExit = { code };
    } else {
      this.#log.info("session ended", {
        sessionId: this.sessionId,
        exitCode: code ?? `signal ${exit.signal}`,
      });
      this.#announceExit(code);
    }
    this.#clients.clear();
    const recorder = this.#recorder;
    this.#recorder = undefined;
    void recorder?.stop();
    this.#onEnd(this);
  }

  #startGrace(): void {
    if (this.#ended || this.#linkIsDown || this.#graceTimer !== undefined) return;
    this.#graceTimer = setTimeout(() => {
      this.#graceTimer = undefined;
      this.#log.info("no client for the grace period; ending session", { sessionId: this.sessionId });
      void this.kill();
    }, this.#graceMs);
  }

  #stopGrace(): void {
    clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
  }

  #updateFlow(): void {
    if (this.#ended) return;
    const unacked = this.#buffer.end - this.#acked;
    this.#jsonInFlight.acked(this.#acked);
    const json = this.#jsonInFlight.bytes;
    if (this.#clients.size === 0) this.#pausedForAcks = false;
    else if (!this.#pausedForAcks && (unacked > this.#window.high || json > this.#flow.maxWindow)) {
      this.#pausedForAcks = true;
    } else if (this.#pausedForAcks && unacked < this.#window.low && json < this.#flow.maxWindow / 4) {
      this.#pausedForAcks = false;
    }
    const wasPausedForLink = this.#pausedForLink;
    this.#pausedForLink = this.#sink.bufferedAmount() > this.#flow.maxLinkBuffered;
    if (this.#pausedForLink && !wasPausedForLink) this.#pollLink();
    const pause = this.#pausedForAcks || this.#pausedForLink || this.#pausedForOutage;
    if (pause === this.#ptyPaused) return;
    this.#ptyPaused = pause;
    if (pause) this.#pty.pause();
    else this.#pty.resume();
  }

  /** The outage pause is over: a client is back, or the relay gave up on the ones it kept waiting. */
  #endOutage(): void {
    clearTimeout(this.#outageTimer);
    this.#outageTimer = undefined;
    if (!this.#pausedForOutage) return;
    this.#pausedForOutage = false;
    this.#updateFlow();
  }

  #resumePty(): void {
    this.#ptyPaused = false;
    this.#pty.resume();
  }

  #pollLink(): void {
    clearTimeout(this.#linkTimer);
    this.#linkTimer = setTimeout(() => {
      this.#linkTimer = undefined;
      this.#updateFlow();
      if (this.#pausedForLink) this.#pollLink();
    }, this.#flow.linkPollMs);
  }
}

const EMPTY = new Uint8Array(0);
