/**
 * `coda-runner serve`: the manual-URL fallback. Serves the client protocol
 * (`/client?token=…&offset=…&cols=…&rows=…&ack=1`, same messages, meta lines
 * and close codes as the relay) straight from this process, with the same
 * session manager the relay link drives.
 *
 * - Access: a random access token (256 bits), printed once inside the URL.
 *   A missing or wrong token is refused with HTTP 401 before the upgrade.
 * - Origin: a browser's `Origin` must be in the allowed list (403 otherwise);
 *   requests without one (non-browser tools) rely on the token alone.
 * - Session: the `session` query parameter picks the session to attach to
 *   (8-64 characters of `[A-Za-z0-9_-]`); without it a new one is made. The
 *   id is announced in the first meta line, `coda:session:<id>`, so a client
 *   reconnects to it with `&session=<id>&offset=<bytes it has>`. An optional
 *   `idea` parameter plays the part of the token's `ideaId`.
 *
 * @module
 */
import * as v from "valibot";
import {
  BINARY_SUBPROTOCOL,
  CloseCode,
  decodeBinaryFrame,
  decodeClientMessage,
  encode,
  encodeOutputFrame,
  MAX_FRAME_BYTES,
  MAX_IDEA_ID_LENGTH,
  parseClientLinkOptions,
  type RunnerToRelay,
  SessionIdSchema,
} from "@coda/relay/protocol";
import { closeSocket as closeFlushed, frameSize, isOpen } from "@coda/relay/frames";
import { secretsEqual } from "@coda/relay/secrets";
import { sameSiteOrigins } from "@coda/relay/urls";
import { DEFAULT_RELAY_LIMITS } from "@coda/relay/limits";
import { SessionManager, type SessionManagerOptions } from "./session_manager.ts";
import type { OutputChunk, SessionSink } from "./session.ts";
import type { Logger } from "./log.ts";

/** Default port of `coda-runner serve`. */
export const DEFAULT_SERVE_PORT = 7681;

/** The app origins a browser may connect from by default. */
export function defaultServeOrigins(appUrl = "http://localhost:8080"): string[] {
  return sameSiteOrigins(appUrl);
}

/** Options of {@linkcode startServe}. */
export interface ServeOptions {
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 7681; 0 picks a free one). */
  port?: number;
  /** The access token clients must present (default: 32 random bytes). */
  accessToken?: string;
  /** Browser origins allowed to connect. */
  allowedOrigins: string[];
  log: Logger;
  /** Everything the session manager needs but its sink. */
  sessions: Omit<SessionManagerOptions, "sink" | "log">;
  /** Malformed or forbidden frames a client may send before close 1008 (default 10). */
  malformedFrameLimit?: number;
  /** Bytes a client may have queued before close 4413 (default 1 MiB). */
  maxClientBufferedBytes?: number;
}

/** A running `serve`. */
export interface ServeHandle {
  /** `ws://HOST:PORT/client?token=…`: the URL to paste into the app (contains the token). */
  clientUrl: string;
  /** `ws://HOST:PORT`. */
  baseUrl: string;
  accessToken: string;
  manager: SessionManager;
  /** Closes every client and session and stops listening. */
  close(): Promise<void>;
}

interface LocalClient {
  id: string;
  socket: WebSocket;
  sessionId: string;
  /** Sends its own `ack` frames. */
  acks: boolean;
  /** Took {@linkcode BINARY_SUBPROTOCOL}: output and stdin travel as binary frames. */
  binary: boolean;
  /** Replay done (`attached` seen): live output flows. */
  live: boolean;
  /** Next byte offset this client expects. */
  next: number;
  ackTimer: ReturnType<typeof setTimeout> | undefined;
  malformed: number;
}

/** A new random access token (256 bits, base64url). */
export function newAccessToken(): string {
  return crypto.getRandomValues(new Uint8Array(32)).toBase64({ alphabet: "base64url", omitPadding: true });
}

function jsonError(status: number, error: string): Response {
  return Response.json({ error }, { status });
}

/** Closes as the relay does: after what was queued has been written, then dropped if never answered. */
function closeSocket(socket: WebSocket, code: number, reason: string): void {
  closeFlushed(socket, code, reason, DEFAULT_RELAY_LIMITS.closeGraceMs);
}

/** Routes session frames to the local clients, as the relay would. */
class LocalClients implements SessionSink {
  readonly clients = new Map<string, LocalClient>();
  manager: SessionManager | undefined;
  readonly #maxBuffered: number;
  readonly #log: Logger;

  constructor(maxBuffered: number, log: Logger) {
    this.#maxBuffered = maxBuffered;
    this.#log = log;
  }

  bufferedAmount(): number {
    return 0;
  }

  sendOutput(chunk: OutputChunk): void {
    const end = chunk.offset + chunk.data.length;
    let text: string | undefined;
    let binary: Uint8Array<ArrayBuffer> | undefined;
    for (const client of this.#targets(chunk.sessionId, chunk.clientId, true)) {
      if (end <= client.next) continue;
      // Chunks end on character boundaries, so each decodes on its own; encoded once for every client.
      const frame = client.binary
        ? binary ??= encodeOutputFrame({
          sessionId: chunk.sessionId,
          offset: chunk.offset,
          replay: chunk.replay,
          data: chunk.data,
        })
        : text ??= encode({
          type: "stdout",
          sessionId: chunk.sessionId,
          data: new TextDecoder().decode(chunk.data),
          offset: chunk.offset,
        });
      this.#deliver(client, frame);
      client.next = end;
      this.#ackFor(client);
    }
  }

  send(message: RunnerToRelay): void {
    switch (message.type) {
      case "stdout":
        // Sessions send output through sendOutput.
        return;
      case "meta": {
        const { clientId, ...frame } = message;
        for (const client of this.#targets(message.sessionId, clientId, false)) {
          if (frame.data === "coda:reset") client.next = 0;
          this.#deliver(client, encode(frame));
        }
        return;
      }
      case "attached": {
        const client = this.clients.get(message.clientId);
        if (client) {
          client.live = true;
          client.next = message.offset;
        }
        return;
      }
      case "end":
        for (const client of this.clients.values()) {
          if (client.sessionId === message.sessionId) {
            closeSocket(client.socket, CloseCode.NORMAL, "session ended");
          }
        }
        return;
      case "error":
        this.#log.warn("session error", { code: message.code, message: message.message });
        return;
      case "ping":
      case "binary":
        return;
    }
  }

  #targets(sessionId: string, clientId: string | undefined, liveOnly: boolean): LocalClient[] {
    if (clientId !== undefined) {
      const client = this.clients.get(clientId);
      return client && client.sessionId === sessionId ? [client] : [];
    }
    return [...this.clients.values()].filter((c) => c.sessionId === sessionId && (!liveOnly || c.live));
  }

  #deliver(client: LocalClient, frame: string | Uint8Array<ArrayBuffer>): void {
    if (!isOpen(client.socket)) return;
    if (client.socket.bufferedAmount > this.#maxBuffered) {
      closeSocket(client.socket, CloseCode.SLOW_CONSUMER, "slow consumer, resume from your offset");
      return;
    }
    client.socket.send(frame);
  }

  /** Acknowledges for a client without `ack=1` once its socket has drained. */
  #ackFor(client: LocalClient): void {
    if (client.acks || client.ackTimer !== undefined) return;
    const check = () => {
      client.ackTimer = undefined;
      if (client.socket.readyState !== WebSocket.OPEN || !this.clients.has(client.id)) return;
      if (client.socket.bufferedAmount <= 64 * 1024) {
        void this.manager?.handle({ type: "ack", sessionId: client.sessionId, offset: client.next });
      } else {
        client.ackTimer = setTimeout(check, 20);
      }
    };
    client.ackTimer = setTimeout(check, 0);
  }
}

/** Starts serving the client protocol locally. */
export function startServe(options: ServeOptions): Promise<ServeHandle> {
  const log = options.log;
  const accessToken = options.accessToken ?? newAccessToken();
  const malformedLimit = options.malformedFrameLimit ?? 10;
  const local = new LocalClients(
    options.maxClientBufferedBytes ?? DEFAULT_RELAY_LIMITS.maxClientBufferedBytes,
    log,
  );
  const manager = new SessionManager({ ...options.sessions, sink: local, log });
  local.manager = manager;

  const handler = (req: Request): Response => {
    const url = new URL(req.url);
    if (url.pathname !== "/client") return jsonError(404, "not found; connect a WebSocket to /client");
    const origin = req.headers.get("origin");
    if (origin !== null && !options.allowedOrigins.includes(origin)) {
      log.warn("refused a connection from a foreign origin", { origin });
      return jsonError(403, "origin not allowed");
    }
    const token = url.searchParams.get("token");
    if (!token || !secretsEqual(token, accessToken)) {
      log.warn("refused a connection without the access token");
      return jsonError(401, "missing or wrong access token");
    }
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return jsonError(426, "expected a WebSocket upgrade");
    }
    const linkOptions = parseClientLinkOptions(url.searchParams);
    if (!linkOptions.ok) return jsonError(400, linkOptions.error);
    const requested = url.searchParams.get("session");
    if (requested !== null && !v.is(SessionIdSchema, requested)) {
      return jsonError(400, "session must be 8-64 characters of [A-Za-z0-9_-]");
    }
    const idea = url.searchParams.get("idea") ?? undefined;
    if (idea !== undefined && idea.length > MAX_IDEA_ID_LENGTH) {
      return jsonError(400, `idea must be at most ${MAX_IDEA_ID_LENGTH} characters`);
    }
    const sessionId = requested ?? crypto.randomUUID().replaceAll("-", "");
    // Chrome fails a handshake that offered subprotocols and got none back, so the offer is always answered.
    const binary = (req.headers.get("sec-websocket-protocol") ?? "").split(",").some((p) =>
      p.trim() === BINARY_SUBPROTOCOL
    );
    const { socket, response } = Deno.upgradeWebSocket(req, {
      idleTimeout: 30,
      protocol: binary ? BINARY_SUBPROTOCOL : undefined,
    });
    socket.binaryType = "arraybuffer";
    const client: LocalClient = {
      id: crypto.randomUUID(),
      socket,
      sessionId,
      acks: linkOptions.value.ack === true,
      binary,
      live: false,
      next: linkOptions.value.offset ?? 0,
      ackTimer: undefined,
      malformed: 0,
    };
    socket.onopen = () => {
      local.clients.set(client.id, client);
      log.info("client connected", { sessionId });
      void manager.handle({
        type: "attach",
        sessionId,
        clientId: client.id,
        offset: linkOptions.value.offset,
        cols: linkOptions.value.cols,
        rows: linkOptions.value.rows,
        ideaId: idea,
      });
    };
    socket.onmessage = (event) => {
      if (frameSize(event.data) > MAX_FRAME_BYTES) {
        closeSocket(socket, CloseCode.TOO_BIG, "frame too big");
        return;
      }
      if (event.data instanceof ArrayBuffer) {
        const frame = decodeBinaryFrame(event.data);
        if (
          client.binary && frame.ok && frame.value.type === "input" && frame.value.sessionId === sessionId
        ) {
          void manager.handle({ type: "stdin", sessionId, data: new TextDecoder().decode(frame.value.data) });
        } else if (++client.malformed >= malformedLimit) {
          closeSocket(socket, CloseCode.POLICY, "too many malformed frames");
        }
        return;
      }
      const decoded = decodeClientMessage(event.data);
      if (!decoded.ok || (decoded.value.type !== "ping" && decoded.value.sessionId !== sessionId)) {
        client.malformed++;
        if (client.malformed >= malformedLimit) {
          closeSocket(socket, CloseCode.POLICY, "too many malformed frames");
        }
        return;
      }
      if (decoded.value.type === "ping") {
        // Answered as the relay does: the SPA's heartbeat talks to this process directly.
        if (isOpen(socket)) socket.send(encode({ type: "pong", t: decoded.value.t }));
        return;
      }
      void manager.handle(decoded.value);
    };
    socket.onclose = () => {
      clearTimeout(client.ackTimer);
      if (!local.clients.delete(client.id)) return;
      log.info("client disconnected", { sessionId });
      void manager.handle({ type: "detach", sessionId, clientId: client.id });
    };
    socket.onerror = () => {};
    return response;
  };

  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: options.host ?? "127.0.0.1",
      port: options.port ?? DEFAULT_SERVE_PORT,
      onListen(addr) {
        const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
        const baseUrl = `ws://${host}:${addr.port}`;
        let closed: Promise<void> | undefined;
        resolve({
          baseUrl,
          clientUrl: `${baseUrl}/client?token=${accessToken}`,
          accessToken,
          manager,
          close() {
            closed ??= (async () => {
              for (const client of local.clients.values()) {
                clearTimeout(client.ackTimer);
                closeSocket(client.socket, CloseCode.RESTART, "runner stopping");
              }
              await manager.shutdown();
              await server.shutdown();
            })();
            return closed;
          },
        });
      },
    }, handler);
  });
}
