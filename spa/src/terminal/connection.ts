/**
 * One terminal's link to its session: opens the client WebSocket, keeps the
 * stream offset, acknowledges output once the terminal has processed it,
 * turns meta lines into events, and reconnects (fresh token, same session,
 * resume from the offset) until the session is really over.
 *
 * It pings the relay (`ping`/`pong`) to measure the round trip and to notice a
 * relay that went silent with the socket still open: past
 * {@linkcode HeartbeatOptions.silentMs} it says so, past
 * {@linkcode HeartbeatOptions.reconnectMs} it drops the socket and reconnects
 * (once the socket has answered a ping: a server without the heartbeat is
 * left alone, as the runner does).
 * Keystrokes typed while the link is down are never sent by themselves: they
 * are held (shown by the pane) until the user sends or discards them.
 *
 * It offers the subprotocol {@linkcode BINARY_SUBPROTOCOL}: a relay that takes it
 * sends output as binary frames (raw PTY bytes, byte offsets, replayed bytes
 * marked) that go to the terminal as they are, and gets stdin the same way; a
 * relay that does not answers in JSON, which keeps working as before.
 *
 * It knows nothing about xterm.js or the DOM: the terminal is a
 * {@linkcode TerminalSink}, tokens come from a {@linkcode TicketSource}.
 *
 * @module
 */
import {
  BINARY_SUBPROTOCOL,
  clientLinkQuery,
  type ClientMessage,
  CloseCode,
  CloseReason,
  decodeBinaryFrame,
  decodeServerMessage,
  encode,
  encodeInputFrame,
  EndedReason,
  type FileFrame,
  type OutputFrame,
  parseMetaLine,
  RUNNER_TRANSFER_TYPES,
  type ServerMessage,
} from "@coda/relay/protocol";
import { backoffDelay, type BackoffOptions } from "@coda/relay/backoff";
import { dropUtf8Prefix, utf8Length } from "@coda/relay/utf8";

/** Where to connect: a client-link URL that carries its token (`…/client?token=…`). */
export interface Ticket {
  url: string;
  /** The session the token is for, when known before connecting. */
  sessionId?: string;
}

/**
 * Hands out a ticket for each connection attempt (client tokens are single
 * use). `sessionId` is the session to reattach to once it is known.
 * Throw a {@linkcode TicketError} to stop for good; any other error is
 * treated as transient and retried with backoff.
 */
export type TicketSource = (sessionId: string | undefined) => Promise<Ticket>;

/** A ticket request that must not be retried (signed out, runner revoked, …). */
export class TicketError extends Error {
  /** The state the connection ends in. */
  readonly status: StoppedStatus;
  constructor(status: StoppedStatus, message: string) {
    super(message);
    this.name = "TicketError";
    this.status = status;
  }
}

/** The terminal the output goes to. */
export interface TerminalSink {
  /**
   * Shows `data` (raw bytes from a binary link, text from a JSON one); calls `rendered` once the
   * terminal has processed it. `replay`: whether the session sent it before this link attached
   * (already answered when it was live); `undefined` on a JSON link, which cannot tell.
   */
  write(data: string | Uint8Array, rendered: () => void, replay: boolean | undefined): void;
  /** Clears the terminal (the stream restarted). */
  reset(): void;
  /** Shows a local notice that is not part of the stream. */
  notice(text: string): void;
  /** The terminal's size in cells, or `null` while it has none (hidden). */
  size(): { cols: number; rows: number } | null;
}

/** States after which the connection does not retry by itself. */
export type StoppedStatus = "ended" | "revoked" | "no-runner" | "unauthorized" | "failed";

/** Where the connection stands. */
export type ConnectionStatus =
  | "connecting"
  | "waiting"
  | "online"
  | "runner-offline"
  | "reconnecting"
  | StoppedStatus
  | "closed";

/** Status plus a sentence for people. */
export interface ConnectionState {
  status: ConnectionStatus;
  /** What is going on and what to do next. */
  detail: string;
  /** The shell's exit code when the session ended with one. */
  exitCode?: string;
  /** When the next attempt is due (ms since the epoch), while reconnecting. */
  retryAt?: number;
}

/** How the link itself is doing, from the heartbeat. */
export interface LinkHealth {
  /** Time since the last frame of any kind from the relay, as of the last check (ms). */
  silentForMs: number;
  /** Round trip of the last answered `ping` on this socket (ms). */
  rttMs?: number;
  /** Set while the silence is past {@linkcode HeartbeatOptions.silentMs}: what to tell the user. */
  detail?: string;
}

/** Timings of the heartbeat, all in milliseconds. */
export interface HeartbeatOptions {
  /** A `ping` goes out this often while the socket is open; silence is checked as often. */
  intervalMs: number;
  /** Silence past this is reported ("no answer from the relay for N s"). */
  silentMs: number;
  /** Silence past this (an upgrade taking this long included) drops the socket and reconnects. */
  reconnectMs: number;
}

/**
 * Ping every 2 s, report 5 s of silence (so the user hears of a stalled relay within 7 s),
 * reconnect after 15 s. Normal output never pauses the relay's answers that long.
 */
export const DEFAULT_HEARTBEAT: Readonly<HeartbeatOptions> = Object.freeze({
  intervalMs: 2_000,
  silentMs: 5_000,
  reconnectMs: 15_000,
});

/**
 * Pings sent on a socket that has answered none before pinging stops: an older relay or
 * `coda-runner serve` counts each as a malformed frame and closes the link at its 10th.
 */
const UNANSWERED_PING_LIMIT = 3;

/** What the connection reports. */
export type ConnectionEvent =
  | { type: "state"; state: ConnectionState }
  | { type: "link"; link: LinkHealth }
  /** Keystrokes typed while the link was down, held until {@linkcode TerminalConnection.sendPendingInput}. */
  | { type: "pending-input"; data: string }
  | { type: "session"; sessionId: string }
  | { type: "cwd"; path: string }
  | { type: "record"; on: boolean }
  | { type: "error"; message: string }
  /** A file-transfer message from the runner or the relay (see `file_transfers.ts`). */
  | { type: "transfer"; message: ServerMessage }
  /** A piece of a download. */
  | { type: "file"; frame: FileFrame };

/** Options of {@linkcode TerminalConnection}. */
export interface ConnectionOptions {
  tickets: TicketSource;
  sink: TerminalSink;
  onEvent: (event: ConnectionEvent) => void;
  /** Reattach to this session. */
  sessionId?: string;
  /** Resume from this offset (default 0: the runner replays what it still has). */
  offset?: number;
  /** Reconnect delays (default 0.5 s doubling to 15 s, equal jitter unless `jitter` is given). */
  backoff?: BackoffOptions;
  /** Source of jitter (tests pass a fixed one). */
  random?: () => number;
  /** Keystrokes kept while disconnected, in UTF-16 units (default 16 KiB). */
  maxPendingInput?: number;
  /** Heartbeat timings (default {@linkcode DEFAULT_HEARTBEAT}). */
  heartbeat?: Partial<HeartbeatOptions>;
  /**
   * A share's watch-only link: it sends nothing about the session (no keystrokes, size, acks or
   * commands; the relay would drop them anyway), only its heartbeat.
   */
  watchOnly?: boolean;
}

/**
 * Reconnect delays for browsers: 0.5 s, 1 s, 2 s, … up to 15 s, each in [50 %, 100 %]
 * of that (equal jitter), so a relay restart is not met by every browser at once.
 */
const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 15_000, jitter: 0.5 };

const STOPPED = new Set<ConnectionStatus>([
  "ended",
  "revoked",
  "no-runner",
  "unauthorized",
  "failed",
  "closed",
]);

const STATE_TEXT = {
  connecting: "Connecting…",
  waiting: "Waiting for your runner to come online…",
  online: "Connected",
  "runner-offline": "Your runner went offline; waiting for it to reconnect…",
  reconnecting: "Connection lost; reconnecting…",
  ended: "The session ended.",
  revoked: "This runner was revoked. Pair it again to use it.",
  "no-runner": "Your runner is offline. Start `coda-runner` on your machine, then retry.",
  unauthorized: "The app refused the session token. Sign in again, then retry.",
  failed: "The connection failed.",
  closed: "Closed.",
} as const satisfies Record<ConnectionStatus, string>;

/** What `coda:ended:<reason>` tells the user; an unknown reason gets the plain "ended" text. */
const ENDED_TEXT: Record<string, string> = {
  [EndedReason.RUNNER_RESTARTED]:
    "This shell ended when the runner restarted. Its output and programs are gone; open a new terminal.",
};

/** Shown when a share's watch-only link is closed because the share was revoked or expired. */
const SHARE_ENDED_TEXT = "The owner stopped sharing this terminal, or the share expired.";

/** Shown while retrying after a 4308: the deployment cannot route this browser to its runner's relay. */
const NO_ROUTE_TEXT =
  "Your runner is connected to another relay instance that this one cannot route to (a deployment problem); retrying…";

/** Shown while retrying after the relay refused the upgrade twice (the browser cannot see why). */
const REFUSED_TEXT =
  "The relay refused the connection or cannot be reached (too many open terminals, or it is restarting); retrying…";

/** A terminal session's link; call {@linkcode TerminalConnection.start} to connect. */
export class TerminalConnection {
  #options: ConnectionOptions;
  #sessionId: string | undefined;
  #received: number;
  #rendered: number;
  #ackedOnSocket = 0;
  #ackScheduled = false;
  #generation = 0;
  #socket: WebSocket | null = null;
  #binary = false;
  /** Whether the next upgrade offers {@linkcode BINARY_SUBPROTOCOL}; see `#onRefused`. */
  #offerBinary = true;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #attempt = 0;
  #authRetried = false;
  /** A 4307 (runner on another relay instance) was answered with an immediate reconnect since the last online. */
  #followedRunner = false;
  #receivedAtConnect = 0;
  #pendingInput: string[] = [];
  #pendingInputLength = 0;
  #pendingOverflow = false;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #lastFrameAt = 0;
  #pongSeen = false;
  #unansweredPings = 0;
  #link: LinkHealth = { silentForMs: 0 };
  #state: ConnectionState = { status: "closed", detail: STATE_TEXT.closed };
  #disposed = false;

  constructor(options: ConnectionOptions) {
    this.#options = options;
    this.#sessionId = options.sessionId;
    this.#received = options.offset ?? 0;
    this.#rendered = this.#received;
  }

  /** The session, once known. */
  get sessionId(): string | undefined {
    return this.#sessionId;
  }
  /** Output bytes received so far: where a reconnect resumes. */
  get offset(): number {
    return this.#received;
  }
  /** Output bytes the terminal has processed. */
  get renderedOffset(): number {
    return this.#rendered;
  }
  /** The current state. */
  get state(): ConnectionState {
    return this.#state;
  }
  /** The heartbeat's view of the link. */
  get link(): LinkHealth {
    return this.#link;
  }
  /** Whether the current link speaks binary frames, which mark replayed output. */
  get binary(): boolean {
    return this.#binary;
  }
  /** Keystrokes typed while the link was down and not sent yet. */
  get pendingInput(): string {
    return this.#pendingInput.join("");
  }

  /** Connects (again). Also the "Retry" button after a stop, and "retry now" while waiting to reconnect. */
  start(): void {
    if (this.#disposed) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#socket || this.#state.status === "connecting") return;
    if (STOPPED.has(this.#state.status)) {
      this.#attempt = 0;
      this.#authRetried = false;
    }
    void this.#connect();
  }

  /**
   * Sends keystrokes. While the link is down they are held (up to a limit), never sent by
   * themselves: the shell would run what the user typed blind, seconds later.
   */
  input(data: string): void {
    if (this.#options.watchOnly) return;
    if (this.#canSend()) {
      this.#sendInput(data);
      return;
    }
    if (STOPPED.has(this.#state.status)) return;
    const limit = this.#options.maxPendingInput ?? 16 * 1024;
    if (this.#pendingInputLength + data.length > limit) {
      if (!this.#pendingOverflow) {
        this.#options.sink.notice("[typing while disconnected: the rest was dropped]");
      }
      this.#pendingOverflow = true;
      return;
    }
    this.#pendingInput.push(data);
    this.#pendingInputLength += data.length;
    this.#pendingChanged();
  }

  /** Sends the held keystrokes (the user saw them and confirmed); `false` while the link is still down. */
  sendPendingInput(): boolean {
    if (!this.#canSend()) return false;
    const data = this.pendingInput;
    this.#clearPendingInput();
    if (data) this.#sendInput(data);
    return true;
  }

  /** Forgets the held keystrokes. */
  discardPendingInput(): void {
    this.#clearPendingInput();
  }

  /** Tells the runner the terminal's new size. */
  resize(cols: number, rows: number): void {
    if (this.#mayAct()) this.#send({ type: "resize", sessionId: this.#sessionId!, cols, rows });
  }

  /** Turns recording on or off. */
  setRecording(on: boolean): void {
    if (this.#mayAct()) this.#send({ type: "record", sessionId: this.#sessionId!, on });
  }

  /** Changes the session's working folder. */
  pickCwd(path: string): void {
    if (this.#mayAct()) this.#send({ type: "pick-cwd", sessionId: this.#sessionId!, path });
  }

  /** Ends the session (kills the shell) for every client. */
  kill(): void {
    if (this.#mayAct()) this.#send({ type: "kill", sessionId: this.#sessionId! });
  }

  /**
   * The session, while this link may transfer files (online, not watch-only, and binary: file
   * bytes only travel in binary frames); else `undefined`.
   */
  transferSessionId(): string | undefined {
    return this.#mayAct() && this.#binary ? this.#sessionId : undefined;
  }

  /** Sends a file-transfer message (see {@linkcode transferSessionId}). */
  sendTransfer(message: ClientMessage): void {
    if (this.transferSessionId() !== undefined) this.#send(message);
  }

  /** Sends an upload frame (see {@linkcode transferSessionId}). */
  sendFileFrame(frame: Uint8Array<ArrayBuffer>): void {
    if (this.transferSessionId() !== undefined) this.#socket?.send(frame);
  }

  /** Whether this link may send messages about the session now: connected, and not watch-only. */
  #mayAct(): boolean {
    return !this.#options.watchOnly && this.#canSend();
  }

  /** Whether messages for the session can be sent right now. */
  get connected(): boolean {
    return this.#canSend();
  }

  /** Closes the link for good (the session keeps running on the runner). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#abandonSocket("client closed");
    this.#setState("closed");
  }

  #canSend(): boolean {
    return this.#socket?.readyState === WebSocket.OPEN && this.#sessionId !== undefined &&
      (this.#state.status === "online");
  }

  #send(message: ClientMessage): void {
    this.#socket?.send(encode(message));
  }

  #sendInput(data: string): void {
    const sessionId = this.#sessionId!;
    if (!this.#binary) {
      this.#send({ type: "stdin", sessionId, data });
      return;
    }
    // The encoder allocates a fresh ArrayBuffer; its declared type only leaves room for a shared one.
    const frame = encodeInputFrame({ sessionId, data: textEncoder.encode(data) }) as Uint8Array<ArrayBuffer>;
    this.#socket?.send(frame);
  }

  #setState(status: ConnectionStatus, extra: Partial<ConnectionState> = {}): void {
    this.#state = { status, detail: STATE_TEXT[status], ...extra };
    this.#options.onEvent({ type: "state", state: this.#state });
    if (STOPPED.has(status)) this.#clearPendingInput();
  }

  #pendingChanged(): void {
    this.#options.onEvent({ type: "pending-input", data: this.pendingInput });
  }

  #clearPendingInput(): void {
    this.#pendingOverflow = false;
    if (this.#pendingInput.length === 0) return;
    this.#pendingInput = [];
    this.#pendingInputLength = 0;
    this.#pendingChanged();
  }

  #setLink(link: LinkHealth): void {
    this.#link = link;
    this.#options.onEvent({ type: "link", link });
  }

  /** Lets go of the current socket without waiting for its close handshake (a stalled peer never answers). */
  #abandonSocket(reason: string): void {
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    const socket = this.#socket;
    this.#socket = null;
    if (!socket) return;
    socket.onclose =
      socket.onmessage =
      socket.onerror =
      socket.onopen =
        null;
    socket.close(1000, reason);
  }

  /** Pings on `socket` and watches how long it has been silent. */
  #startHeartbeat(socket: WebSocket): void {
    const timings = { ...DEFAULT_HEARTBEAT, ...this.#options.heartbeat };
    this.#lastFrameAt = Date.now();
    this.#setLink({ silentForMs: 0 });
    clearInterval(this.#heartbeat);
    this.#pongSeen = false;
    this.#unansweredPings = 0;
    this.#heartbeat = setInterval(() => {
      if (this.#socket !== socket) return;
      // Before the upgrade completes this bounds how long it may take. Once open, silence only means
      // something from a peer that answers pings (an idle older server sends nothing at all).
      const watched = socket.readyState === WebSocket.CONNECTING || this.#pongSeen;
      const silentForMs = Date.now() - this.#lastFrameAt;
      const detail = `No answer from the relay for ${Math.round(silentForMs / 1000)} s`;
      if (watched && silentForMs >= timings.reconnectMs) {
        this.#abandonSocket("no answer");
        this.#scheduleReconnect(`${detail}; reconnecting…`);
        return;
      }
      if (watched && silentForMs >= timings.silentMs) {
        this.#setLink({ ...this.#link, silentForMs, detail: `${detail}.` });
      }
      this.#ping(socket);
    }, timings.intervalMs);
  }

  #ping(socket: WebSocket): void {
    if (socket.readyState !== WebSocket.OPEN) return;
    if (!this.#pongSeen && this.#unansweredPings >= UNANSWERED_PING_LIMIT) return;
    if (!this.#pongSeen) this.#unansweredPings++;
    socket.send(encode({ type: "ping", t: Date.now() }));
  }

  /** Any frame proves the relay alive; a `pong` also measures the round trip (`t` is when its ping left). */
  #heard(pong: { t?: number } | undefined): void {
    this.#lastFrameAt = Date.now();
    if (pong) this.#pongSeen = true;
    const rttMs = pong?.t === undefined ? this.#link.rttMs : Math.max(0, Date.now() - pong.t);
    if (pong || this.#link.detail !== undefined) this.#setLink({ silentForMs: 0, rttMs });
  }

  async #connect(): Promise<void> {
    this.#setState("connecting");
    let ticket: Ticket;
    try {
      ticket = await this.#options.tickets(this.#sessionId);
    } catch (error) {
      if (this.#disposed) return;
      if (error instanceof TicketError) {
        this.#setState(error.status, { detail: error.message });
      } else {
        this.#scheduleReconnect(`Reconnecting… (${errorText(error)})`);
      }
      return;
    }
    if (this.#disposed || this.#socket) return;
    if (ticket.sessionId && !this.#sessionId) this.#sessionId = ticket.sessionId;

    let url: URL;
    try {
      url = new URL(ticket.url);
      const token = url.searchParams.get("token");
      if (!token) throw new Error("the URL has no token");
      const size = this.#options.sink.size();
      url.search = clientLinkQuery(token, {
        offset: this.#received,
        ...(size ? { cols: size.cols, rows: size.rows } : {}),
        // A viewer's acks would be dropped: the relay acknowledges for it as its socket drains.
        ack: !this.#options.watchOnly,
      });
      this.#open(url.href);
    } catch (error) {
      this.#setState("failed", { detail: `Cannot connect: ${errorText(error)}` });
    }
  }

  #open(url: string): void {
    const socket = this.#offerBinary ? new WebSocket(url, [BINARY_SUBPROTOCOL]) : new WebSocket(url);
    this.#offerBinary = true;
    socket.binaryType = "arraybuffer";
    this.#socket = socket;
    this.#binary = false;
    this.#ackedOnSocket = this.#received;
    this.#receivedAtConnect = this.#received;
    socket.onmessage = (event) => {
      if (this.#socket === socket) this.#onFrame(event.data);
    };
    let opened = false;
    socket.onopen = () => {
      opened = true;
      // A relay from before binary frames answers without the subprotocol, and in JSON.
      this.#binary = socket.protocol === BINARY_SUBPROTOCOL;
      this.#ping(socket);
    };
    this.#startHeartbeat(socket);
    socket.onclose = (event) => {
      if (this.#socket !== socket) return;
      this.#socket = null;
      clearInterval(this.#heartbeat);
      this.#heartbeat = undefined;
      if (opened) this.#onClose(event.code, event.reason);
      else this.#onRefused();
    };
  }

  /**
   * The upgrade failed. The relay refuses before the upgrade (401 bad or used
   * token, 403 runner revoked, 429 too many terminals, 503 restarting) and a
   * browser cannot read which, nor tell it from an unreachable relay: a fresh
   * token (whose request reports a signed-out user or a revoked runner) is
   * tried at once, then retries back off.
   *
   * That first retry also goes without the binary offer: Chrome fails a handshake answered without
   * the offered subprotocol, which is how a relay from before binary frames answers (a deploy that
   * updated the app first), so such a relay is reached in JSON. Later retries offer it again, so a
   * relay that was down comes back binary.
   */
  #onRefused(): void {
    if (this.#disposed || STOPPED.has(this.#state.status)) return;
    if (!this.#authRetried) {
      this.#authRetried = true;
      this.#offerBinary = false;
      void this.#connect();
      return;
    }
    this.#scheduleReconnect(REFUSED_TEXT);
  }

  #onFrame(frame: unknown): void {
    if (frame instanceof ArrayBuffer) {
      this.#heard(undefined);
      const decoded = decodeBinaryFrame(frame);
      if (decoded.ok && decoded.value.type === "output") this.#onOutput(decoded.value);
      if (decoded.ok && decoded.value.type === "download") {
        this.#options.onEvent({ type: "file", frame: decoded.value });
      }
      return;
    }
    const decoded = decodeServerMessage(frame);
    this.#heard(decoded.ok && decoded.value.type === "pong" ? decoded.value : undefined);
    if (!decoded.ok) return;
    const message = decoded.value;
    if (message.type === "stdout") this.#onStdout(message.data, message.offset);
    else if (message.type === "meta") this.#onMeta(message.data);
    else if (message.type === "closing") this.#socket?.close(message.code, message.reason);
    else if (RUNNER_TRANSFER_TYPES.has(message.type)) this.#options.onEvent({ type: "transfer", message });
  }

  /** JSON output: offsets count the UTF-8 bytes of `data`. */
  #onStdout(data: string, offset: number | undefined): void {
    if (this.#state.status !== "online") this.#becameOnline();
    const start = offset ?? this.#received;
    const end = start + utf8Length(data);
    if (end <= this.#received) return;
    this.#write(start < this.#received ? dropUtf8Prefix(data, this.#received - start) : data, end, undefined);
  }

  /** Binary output: raw bytes, so a resent prefix is cut by byte and nothing is decoded here. */
  #onOutput({ data, offset, replay }: OutputFrame): void {
    if (this.#state.status !== "online") this.#becameOnline();
    const end = offset + data.byteLength;
    if (end <= this.#received) return;
    this.#write(offset < this.#received ? data.subarray(this.#received - offset) : data, end, replay);
  }

  /** Hands output ending at byte `end` to the terminal and acks it once rendered. */
  #write(data: string | Uint8Array, end: number, replay: boolean | undefined): void {
    this.#received = end;
    const generation = this.#generation;
    this.#options.sink.write(data, () => {
      if (generation !== this.#generation) return;
      this.#rendered = Math.max(this.#rendered, end);
      this.#scheduleAck();
    }, replay);
  }

  #scheduleAck(): void {
    if (this.#ackScheduled) return;
    this.#ackScheduled = true;
    queueMicrotask(() => {
      this.#ackScheduled = false;
      if (!this.#mayAct() || this.#rendered <= this.#ackedOnSocket) return;
      this.#ackedOnSocket = this.#rendered;
      this.#send({ type: "ack", sessionId: this.#sessionId!, offset: this.#rendered });
    });
  }

  #onMeta(line: string): void {
    const meta = parseMetaLine(line);
    if (!meta) return;
    switch (meta.kind) {
      case "session":
        if (meta.value) {
          this.#sessionId = meta.value;
          this.#options.onEvent({ type: "session", sessionId: meta.value });
        }
        this.#becameOnline();
        return;
      case "cwd":
        this.#options.onEvent({ type: "cwd", path: meta.value });
        return;
      case "record":
        this.#options.onEvent({ type: "record", on: meta.value === "on" });
        return;
      case "error":
        this.#options.onEvent({ type: "error", message: meta.value });
        return;
      case "exit":
        this.#setState("ended", {
          exitCode: meta.value,
          detail: meta.value === "signal"
            ? "The shell was killed; the session ended."
            : `The shell exited with code ${meta.value}; the session ended.`,
        });
        return;
      case "ended":
        // No shell was started for this attach; the close that follows must not look like a new one.
        this.#setState("ended", { detail: ENDED_TEXT[meta.value] ?? STATE_TEXT.ended });
        return;
      case "reset":
        this.#generation++;
        this.#received = 0;
        this.#rendered = 0;
        this.#ackedOnSocket = 0;
        this.#options.sink.reset();
        return;
      case "gap": {
        const match = /^(\d+)-(\d+)$/.exec(meta.value);
        if (!match) return;
        const [from, to] = [Number(match[1]), Number(match[2])];
        this.#options.sink.notice(`[${formatBytes(to - from)} of earlier output no longer available]`);
        this.#received = Math.max(this.#received, to);
        return;
      }
      case "relay":
        this.#onRelayState(meta.value);
        return;
    }
  }

  #onRelayState(value: string): void {
    if (value === "waiting") this.#setState("waiting");
    else if (value === "offline") this.#setState("runner-offline");
    else if (value === "online") this.#becameOnline();
    else if (value === "revoked") this.#setState("revoked");
  }

  #becameOnline(): void {
    if (STOPPED.has(this.#state.status)) return;
    this.#attempt = 0;
    this.#authRetried = false;
    this.#followedRunner = false;
    if (this.#state.status !== "online") this.#setState("online");
    const size = this.#options.sink.size();
    if (size) this.resize(size.cols, size.rows);
    this.#scheduleAck();
  }

  #onClose(code: number, reason: string): void {
    if (this.#disposed) return;
    const status = this.#state.status;
    if (status === "ended" || status === "revoked") return;
    switch (code) {
      case CloseCode.NORMAL:
        this.#setState("ended");
        return;
      case CloseCode.UNAUTHORIZED:
        if (this.#authRetried) {
          this.#setState("unauthorized", reason ? { detail: `${STATE_TEXT.unauthorized} (${reason})` } : {});
          return;
        }
        this.#authRetried = true;
        void this.#connect();
        return;
      case CloseCode.REVOKED:
        if (reason === CloseReason.SHARE_REVOKED) this.#setState("failed", { detail: SHARE_ENDED_TEXT });
        else this.#setState("revoked");
        return;
      case CloseCode.NO_RUNNER:
        this.#setState("no-runner");
        return;
      case CloseCode.ON_ANOTHER_INSTANCE:
        // The next connect is routed to the runner's instance; moving again before going online waits its turn.
        if (this.#followedRunner) this.#scheduleReconnect(STATE_TEXT.reconnecting);
        else {
          this.#followedRunner = true;
          void this.#connect();
        }
        return;
      case CloseCode.SLOW_CONSUMER:
        if (this.#received > this.#receivedAtConnect) void this.#connect();
        else this.#scheduleReconnect(STATE_TEXT.reconnecting);
        return;
      case CloseCode.POLICY:
      case CloseCode.TOO_BIG:
        this.#setState("failed", { detail: `The relay closed the connection: ${reason || code}.` });
        return;
      case CloseCode.NO_ROUTE:
        this.#scheduleReconnect(NO_ROUTE_TEXT);
        return;
      default:
        this.#scheduleReconnect(
          code === CloseCode.RESTART ? "The relay is restarting; reconnecting…" : STATE_TEXT.reconnecting,
        );
    }
  }

  #scheduleReconnect(detail: string): void {
    const delay = backoffDelay(
      this.#attempt++,
      { ...DEFAULT_BACKOFF, ...this.#options.backoff },
      this.#options.random ?? Math.random,
    );
    this.#setState("reconnecting", { detail, retryAt: Date.now() + delay });
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#connect();
    }, delay);
  }
}

/**
 * Keystrokes as a person can read them, for showing held input: Enter as ⏎, other control
 * characters in caret notation (`^C`, `^[`), cut to `max` characters with an ellipsis.
 */
export function visibleInput(data: string, max = 80): string {
  const shown = Array.from(data, (c) => {
    const code = c.charCodeAt(0);
    if (c === "\r") return "⏎";
    if (code === 0x7f) return "^?";
    return code < 0x20 ? `^${String.fromCharCode(code + 64)}` : c;
  }).join("");
  return shown.length > max ? `${shown.slice(0, max - 1)}…` : shown;
}

const textEncoder = new TextEncoder();

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}
