/**
 * The relay link: one WebSocket to `{relayUrl}/runner`, the runner token in
 * the `Authorization` header, reconnected forever with exponential backoff and
 * full jitter until the relay says the token is no good (it refuses the
 * upgrade with HTTP 401 or 403; 4401/4403 on a link already open) or another
 * runner with the same credentials took over (4409). Taking the link
 * back would make two copies fight and every terminal flap, so the runner
 * that was replaced stops and says why. (`coda-runner status` probes with
 * `?probe=1`, which never replaces anything.)
 *
 * Heartbeat: the relay pings at the WebSocket level (answered by the
 * runtime); the runner also sends `ping` frames and expects `pong`. Once the
 * relay has answered a ping on a connection, no frame for `deadAfterMs`
 * (60 s) means the link is dead: it is dropped and reopened.
 *
 * Frames: when the relay's `welcome` says `binary` (protocol 2), output goes
 * out as binary frames (a small header, then the PTY's bytes) and the runner
 * asks for stdin the same way; control messages stay JSON. A relay without it
 * gets the JSON `stdout` frames of protocol 1.
 *
 * @module
 */
import {
  CloseCode,
  decodeBinaryFrame,
  decodeRelayToRunner,
  encode,
  encodeFileFrame,
  encodeOutputFrame,
  fileMessageFrame,
  MAX_FRAME_BYTES,
  type RelayToRunner,
  type RunnerToRelay,
} from "@coda/relay/protocol";
import type { IncomingMessage } from "node:http";
import { WebSocket as NodeWebSocket } from "ws";
import { Backoff, type BackoffOptions } from "./backoff.ts";
import type { OutputChunk, SessionSink } from "./session.ts";
import { splitChunk } from "./replay_buffer.ts";
import type { Logger } from "./log.ts";

/**
 * The link's socket comes from the `ws` package rather than Deno's built-in
 * WebSocket: `ws` sets TCP_NODELAY, as browsers do. Deno's client leaves
 * Nagle's algorithm on, which held back-to-back frames (output right after
 * output) for ~40 ms — a delay a person typing feels. Its event API is the
 * DOM's, so the rest of the link is written against the DOM type.
 */
const WebSocketWithHeaders = NodeWebSocket as unknown as new (
  url: string,
  options: { headers: Record<string, string>; generateMask?: (mask: Uint8Array) => void },
) => WebSocket;

/**
 * Whether frames to `url` may go unmasked (an all-zero masking key, which `ws` then skips: masking
 * every output byte in JS was the runner's largest cost per byte). Masking keeps a browser's
 * attacker-chosen bytes from being read as HTTP by a proxy on the path (RFC 6455 §10.3); over TLS
 * or loopback no proxy reads them, so the key is kept random only on plain `ws://` to another host.
 */
export function maskingNeeded(url: string): boolean {
  const { protocol, hostname } = new URL(url);
  if (protocol === "wss:") return false;
  const host = hostname.replace(/^\[|\]$/g, "");
  return !(host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host));
}

/** The `ws` options of a link to `url`. */
function socketOptions(url: string, runnerToken: string) {
  return {
    headers: { authorization: `Bearer ${runnerToken}` },
    ...(maskingNeeded(url) ? {} : { generateMask: (mask: Uint8Array) => void mask.fill(0) }),
  };
}

/**
 * Output bytes per JSON `stdout` frame for a relay without binary frames:
 * JSON may take 6 bytes for one (`\u0001`), and the frame must stay under
 * MAX_FRAME_BYTES with its envelope.
 */
const JSON_OUTPUT_BYTES = Math.floor((MAX_FRAME_BYTES - 4096) / 6);

/** Why the link stopped for good. */
export type LinkStopReason = "stopped" | "unauthorized" | "revoked" | "replaced";

/** What the link drives. */
export interface LinkHandler {
  /** A message from the relay (never `welcome` or `pong`). */
  onMessage(message: RelayToRunner): void | Promise<void>;
  /** The relay accepted the runner (`welcome`). */
  onUp(info: { runnerId: string }): void;
  /** The connection is gone (a reconnect follows unless stopped). */
  onDown(): void;
}

/** Options of {@linkcode RelayLink}. */
export interface RelayLinkOptions {
  /** `ws://` or `wss://` base URL of the relay. */
  relayUrl: string;
  runnerToken: string;
  handler: LinkHandler;
  log: Logger;
  backoff?: BackoffOptions;
  /** How often a `ping` is sent, ms (default 20 s). */
  heartbeatMs?: number;
  /** No frame for this long (after a first `pong`) drops the link, ms (default 60 s). */
  deadAfterMs?: number;
  /** A connection attempt that does not open within this is abandoned, ms (default 15 s). */
  connectTimeoutMs?: number;
}

/** Messages for the user when the link stops for good. */
export const STOP_MESSAGES: Record<Exclude<LinkStopReason, "stopped">, string> = {
  unauthorized:
    "The relay refused this runner's token (invalid or expired). Run `coda-runner pair` to pair again.",
  revoked: "This runner was removed from your account (token revoked). Run `coda-runner pair` to pair again.",
  replaced:
    "Another coda-runner connected with this runner's credentials (a second copy, here or on another " +
    "machine), so this one stops. Run one runner per pairing; `coda-runner pair` gives another machine its own.",
};

/** The runner's connection to the relay. */
export class RelayLink implements SessionSink {
  readonly #options: Required<Omit<RelayLinkOptions, "backoff">> & { backoff: Backoff };
  #socket: WebSocket | undefined;
  /** The current connection's relay takes binary frames (its `welcome` said so). */
  #binary = false;
  #stopped = false;
  #stopReason: LinkStopReason = "stopped";
  #wake: (() => void) | undefined;
  #connections = 0;

  constructor(options: RelayLinkOptions) {
    this.#options = {
      heartbeatMs: 20_000,
      deadAfterMs: 60_000,
      connectTimeoutMs: 15_000,
      ...options,
      relayUrl: options.relayUrl.replace(/\/+$/, ""),
      backoff: new Backoff(options.backoff),
    };
  }

  /** Number of connections the relay accepted so far. */
  get connections(): number {
    return this.#connections;
  }

  /** Whether a connection is open right now. */
  get connected(): boolean {
    return this.#socket?.readyState === WebSocket.OPEN;
  }

  /**
   * Sends a frame if connected; otherwise it is dropped (sessions replay by offset). A piece of a
   * download goes as a download frame, and only to a relay that takes binary frames (no other ever
   * asked for one).
   */
  send(message: RunnerToRelay): void {
    const socket = this.#socket;
    if (socket?.readyState !== WebSocket.OPEN) return;
    try {
      if (message.type === "download-data") {
        if (this.#binary) socket.send(encodeFileFrame(fileMessageFrame(message)));
        return;
      }
      socket.send(encode(message));
    } catch {
      // The socket is closing; the close handler reconnects.
    }
  }

  /**
   * Sends output if connected (dropped otherwise, as {@linkcode send}): one
   * binary frame (`frame` if given: the chunk already encoded), or JSON
   * `stdout` frames for a relay without binary frames.
   */
  sendOutput(chunk: OutputChunk, frame?: Uint8Array): void {
    const socket = this.#socket;
    if (socket?.readyState !== WebSocket.OPEN) return;
    try {
      if (this.#binary) {
        // Arrays over an ArrayBuffer (never a shared one), as the DOM's send wants them.
        socket.send((frame ?? encodeOutputFrame(chunk)) as Uint8Array<ArrayBuffer>);
        return;
      }
      const decoder = new TextDecoder();
      for (const piece of splitChunk({ offset: chunk.offset, data: chunk.data }, JSON_OUTPUT_BYTES)) {
        const message: RunnerToRelay = {
          type: "stdout",
          sessionId: chunk.sessionId,
          data: decoder.decode(piece.data),
          offset: piece.offset,
        };
        if (chunk.clientId !== undefined) message.clientId = chunk.clientId;
        socket.send(encode(message));
      }
    } catch {
      // The socket is closing; the close handler reconnects.
    }
  }

  /**
   * Bytes queued on the socket, a closing one's included (0 once closed or given up, when what it
   * queued is dropped): a session reuses its batch buffers only once they are past what is queued
   * (`batch_pool.ts`), and a closing socket still writes what it queued before its close frame.
   */
  bufferedAmount(): number {
    const socket = this.#socket;
    return socket && socket.readyState !== WebSocket.CLOSED ? socket.bufferedAmount : 0;
  }

  /** Connects and stays connected until stopped; resolves why it stopped. */
  async run(): Promise<LinkStopReason> {
    while (!this.#stopped) {
      const startedAt = Date.now();
      const { welcomed, carriedTraffic } = await this.#connectOnce();
      if (this.#stopped) break;
      const upMs = Date.now() - startedAt;
      if (welcomed) this.#options.backoff.connectionEnded(upMs, carriedTraffic);
      const delay = this.#options.backoff.next();
      this.#options.log.info("reconnecting to the relay", { inMs: delay });
      await this.#sleep(delay);
    }
    return this.#stopReason;
  }

  /** Closes the link and ends {@linkcode run}. */
  stop(reason: LinkStopReason = "stopped"): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#stopReason = reason;
    const socket = this.#socket;
    if (socket && socket.readyState <= WebSocket.OPEN) {
      try {
        socket.close(1000, "runner stopping");
      } catch {
        // Already closing.
      }
    }
    this.#wake?.();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }

  /**
   * One connection's life; resolves when it is over, with whether the relay
   * welcomed us and whether it then sent anything beyond heartbeats.
   */
  #connectOnce(): Promise<{ welcomed: boolean; carriedTraffic: boolean }> {
    const { log, handler } = this.#options;
    return new Promise((resolve) => {
      let welcomed = false;
      let carriedTraffic = false;
      let gotPong = false;
      let lastFrameAt = Date.now();
      let finished = false;
      /** Stdin decoders of this connection's clients, by session and client id. */
      const inputDecoders = new Map<string, TextDecoder>();
      const url = `${this.#options.relayUrl}/runner`;
      const socket = new WebSocketWithHeaders(url, socketOptions(url, this.#options.runnerToken));
      socket.binaryType = "arraybuffer";
      this.#socket = socket;
      this.#binary = false;
      let refusedStatus: number | undefined;
      let opened = false;
      let connectError: string | undefined;
      onRefusedUpgrade(socket, (status) => {
        refusedStatus = status;
        log.warn("the relay refused the connection", { status });
      });
      const connectTimer = setTimeout(() => {
        log.warn("the relay did not answer in time");
        finish();
      }, this.#options.connectTimeoutMs);
      const heartbeat = setInterval(() => {
        if (socket.readyState !== WebSocket.OPEN) return;
        if (gotPong && Date.now() - lastFrameAt > this.#options.deadAfterMs) {
          log.warn("no word from the relay for too long; reconnecting");
          finish();
          return;
        }
        this.send({ type: "ping", t: Date.now() });
      }, this.#options.heartbeatMs);

      const finish = () => {
        if (finished) return;
        finished = true;
        clearTimeout(connectTimer);
        clearInterval(heartbeat);
        this.#wake = undefined;
        socket.onopen = socket.onmessage = socket.onclose = null;
        // `ws` emits "error" when a connection still opening is closed, and an
        // error event nobody listens to is thrown: keep a listener.
        socket.onerror = () => {};
        if (socket.readyState !== WebSocket.CLOSED && socket.bufferedAmount > 0) {
          // Frames still queued are dropped, not sent later: sessions reuse the buffers they send from
          // once the link no longer queues them (batch_pool.ts), and this link stops counting this
          // socket now. Nothing is lost: the clients resume by offset on the next link.
          (socket as unknown as { terminate(): void }).terminate();
        } else if (socket.readyState <= WebSocket.OPEN) {
          try {
            socket.close(1000, "reconnecting");
          } catch {
            // Already closing.
          }
        }
        if (this.#socket === socket) this.#socket = undefined;
        if (welcomed) handler.onDown();
        resolve({ welcomed, carriedTraffic });
      };
      this.#wake = () => finish();

      socket.onopen = () => {
        opened = true;
        clearTimeout(connectTimer);
        lastFrameAt = Date.now();
      };
      socket.onmessage = (event) => {
        lastFrameAt = Date.now();
        if (typeof event.data !== "string") {
          const frame = decodeBinaryFrame(event.data);
          if (frame.ok && frame.value.type === "upload" && frame.value.clientId !== undefined) {
            carriedTraffic = welcomed;
            const { sessionId, clientId, transferId, offset, data } = frame.value;
            void handler.onMessage({ type: "upload-data", sessionId, clientId, transferId, offset, data });
            return;
          }
          if (!frame.ok || frame.value.type !== "input") {
            log.warn("ignored a malformed frame from the relay", {
              error: frame.ok ? "binary output to a runner" : frame.error,
            });
            return;
          }
          carriedTraffic = welcomed;
          const { sessionId, clientId = "" } = frame.value;
          // Per client and session, as a stream: a character a client split across two frames stays whole.
          const key = `${sessionId}\u0000${clientId}`;
          let decoder = inputDecoders.get(key);
          if (!decoder) inputDecoders.set(key, decoder = new TextDecoder());
          const data = decoder.decode(frame.value.data, { stream: true });
          if (data !== "") void handler.onMessage({ type: "stdin", sessionId, data });
          return;
        }
        const decoded = decodeRelayToRunner(event.data);
        if (!decoded.ok) {
          log.warn("ignored a malformed frame from the relay", { error: decoded.error });
          return;
        }
        const message = decoded.value;
        if (message.type === "pong") {
          gotPong = true;
          return;
        }
        if (message.type === "welcome") {
          welcomed = true;
          this.#connections++;
          if (message.binary === true) {
            this.#binary = true;
            this.send({ type: "binary", transfers: true });
          }
          log.info("connected to the relay", { runnerId: message.runnerId, relay: this.#options.relayUrl });
          handler.onUp({ runnerId: message.runnerId });
          this.send({ type: "ping", t: Date.now() });
          return;
        }
        carriedTraffic = welcomed;
        if (message.type === "detach") inputDecoders.delete(`${message.sessionId}\u0000${message.clientId}`);
        void handler.onMessage(message);
      };
      socket.onerror = (event) => {
        // A close event always follows; it decides what happens next.
        connectError = describeSocketError(event);
      };
      socket.onclose = (event) => {
        const reason = refusedStatus === undefined ? closeReason(event.code) : refusalReason(refusedStatus);
        if (reason) {
          // The caller tells the person what to do (STOP_MESSAGES); the log keeps the code.
          log.debug("the relay ended the link for good", { code: event.code, reason });
          finish();
          this.stop(reason);
          return;
        }
        // A refused upgrade was reported when it came. 1006 from a link that never opened says
        // nothing, so the socket's error says why it did not.
        const unexplained = !this.#stopped && refusedStatus === undefined;
        if (unexplained && opened) {
          log.warn("lost the relay link", { code: event.code, reason: event.reason || undefined });
        } else if (unexplained) {
          log.warn(`cannot connect to ${this.#options.relayUrl}: ${connectError ?? "no answer"}`);
        }
        finish();
      };
    });
  }
}

/** Why a connection could not be made, from the `ws` error event: its system error code in words. */
function describeSocketError(event: Event): string {
  const error = (event as Event & { error?: { code?: unknown; message?: unknown } }).error;
  const words: Record<string, string> = {
    ECONNREFUSED: "connection refused (is the relay running, and is RELAY_URL right?)",
    ENOTFOUND: "no such host (check RELAY_URL)",
    EAI_AGAIN: "the host name could not be resolved (check the network and RELAY_URL)",
    ETIMEDOUT: "the connection timed out",
    ECONNRESET: "the connection was reset",
    EHOSTUNREACH: "the host is unreachable",
    ENETUNREACH: "the network is unreachable",
  };
  if (typeof error?.code === "string" && Object.hasOwn(words, error.code)) return words[error.code];
  return typeof error?.message === "string" && error.message ? error.message : "the connection failed";
}

/**
 * Calls `onStatus` with the HTTP status of a refused upgrade and abandons the
 * handshake (`ws` then emits `error` and `close`, as for any failed attempt).
 */
function onRefusedUpgrade(socket: WebSocket, onStatus: (status: number) => void): void {
  const events = socket as unknown as {
    on(event: "unexpected-response", listener: (request: unknown, response: IncomingMessage) => void): void;
  };
  events.on("unexpected-response", (_request, response) => {
    onStatus(response.statusCode ?? 0);
    response.resume();
    socket.close();
  });
}

/** What a refused upgrade means for good; 429, 503 and the like are retried. */
function refusalReason(status: number): Exclude<LinkStopReason, "stopped"> | undefined {
  if (status === 401) return "unauthorized";
  if (status === 403) return "revoked";
  return undefined;
}

function closeReason(code: number): Exclude<LinkStopReason, "stopped"> | undefined {
  if (code === CloseCode.UNAUTHORIZED) return "unauthorized";
  if (code === CloseCode.REVOKED) return "revoked";
  if (code === CloseCode.REPLACED) return "replaced";
  return undefined;
}

/** What {@linkcode probeRelay} found. */
export type ProbeResult = "accepted" | "unauthorized" | "revoked" | "unreachable";

/**
 * Opens one short connection to see whether the relay accepts `runnerToken`
 * (for `coda-runner status`). It asks for `?probe=1`, so a runner connected
 * with the same token is not disturbed.
 */
export function probeRelay(relayUrl: string, runnerToken: string, timeoutMs = 5000): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let result: ProbeResult = "unreachable";
    const socket = new WebSocketWithHeaders(`${relayUrl.replace(/\/+$/, "")}/runner?probe=1`, {
      headers: { authorization: `Bearer ${runnerToken}` },
    });
    const timer = setTimeout(() => {
      try {
        socket.close(1000, "probe done");
      } catch {
        // Not open yet.
      }
      resolve(result);
    }, timeoutMs);
    let refusedStatus: number | undefined;
    onRefusedUpgrade(socket, (status) => refusedStatus = status);
    socket.onmessage = (event) => {
      const decoded = decodeRelayToRunner(event.data);
      if (decoded.ok && decoded.value.type === "welcome") {
        result = "accepted";
        socket.close(1000, "probe done");
      }
    };
    socket.onerror = () => {};
    socket.onclose = (event) => {
      clearTimeout(timer);
      const reason = refusedStatus === undefined ? closeReason(event.code) : refusalReason(refusedStatus);
      resolve(reason === "unauthorized" || reason === "revoked" ? reason : result);
    };
  });
}
