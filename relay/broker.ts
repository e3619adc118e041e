/**
 * Routing between clients and runners: who is connected, which runner a
 * client is attached to, the attach/replay/attached sequence, output fan-out
 * with per-client backpressure, and what happens when either side leaves.
 *
 * The links (`runner_link.ts`, `client_link.ts`) authenticate and parse
 * frames; everything that touches more than one connection lives here.
 *
 * @module
 */
import type { RelayBackend, SessionReport } from "./backend.ts";
import { type Cluster, compareRunnerAge, type InboxMessage, type RunnerClaim } from "./cluster.ts";
import { closeSocket, isOpen, trySend } from "./frames.ts";
import { utf8Length } from "./utf8.ts";
import {
  MAX_ACK_POLL_MS,
  type RelayLimits,
  RUNNER_ERROR_LOG_CHARS,
  RUNNER_ERROR_LOGS_PER_MINUTE,
} from "./limits.ts";
import type { RelayLog } from "./log.ts";
import type { RelayMetrics } from "./metrics.ts";
import { PendingWrites } from "./pending_writes.ts";
import type { ClientPeer, PendingInput, RunnerPeer } from "./peers.ts";
import {
  CLIENT_TRANSFER_TYPES,
  type ClientMessage,
  CloseCode,
  CloseReason,
  encode,
  encodeFileFrame,
  encodeInputFrame,
  encodeOutputFrame,
  type FileFrame,
  type JsonMessage,
  type JsonRelayToRunner,
  MetaLine,
  type OutputFrame,
  parseMetaLine,
  PROTOCOL_VERSION,
  type RelayState,
  type RelayToRunner,
  type RunnerToRelay,
} from "./protocol.ts";

/** The relay's `welcome` to `runnerId`: protocol 2, binary frames taken. */
export function welcomeFor(runnerId: string): JsonRelayToRunner {
  return { type: "welcome", runnerId, protocol: PROTOCOL_VERSION, binary: true };
}

const textEncoder = new TextEncoder();

/**
 * One chunk of a session's output on its way to clients, in whichever forms exist so far; the
 * others are made once, when the first client needs them, and shared by every client of a broadcast.
 */
interface Output {
  sessionId: string;
  /** Stream offset of the first byte (a JSON `stdout` may lack it). */
  offset: number | undefined;
  replay: boolean;
  /** The bytes: the payload of a binary frame, or the encoded text of a JSON one. */
  bytes: Uint8Array | undefined;
  /** The text of a JSON `stdout`. */
  text: string | undefined;
  /** The binary frame a client gets (no client id): a broadcast runner frame as received. */
  frame: Uint8Array<ArrayBuffer> | undefined;
  /** The JSON `stdout` a client of a JSON runner gets. */
  json: string | undefined;
  /** Size as received from the runner. */
  size: number;
}

/** Shared state and collaborators of one relay. */
export interface BrokerDeps {
  limits: RelayLimits;
  metrics: RelayMetrics;
  log: RelayLog;
  backend: RelayBackend;
  /** The records shared with other relay instances, when there may be several. */
  cluster?: Cluster;
}

/** Connections and the routing between them. */
export class Broker {
  readonly #writes: PendingWrites;
  /** Per runner connection: when its current minute of `error` logging started and how many it logged. */
  readonly #errorLogs = new WeakMap<RunnerPeer, { start: number; count: number }>();
  /** The last report in flight per session: a session's reports reach the app in the order they happened. */
  readonly #reportChains = new Map<string, Promise<void>>();
  /** Per runner, the last directory reported for each of its sessions that has a client. */
  readonly #reportedCwds = new WeakMap<RunnerPeer, Map<string, string>>();
  /** Current connection of each runner id. */
  readonly runners = new Map<string, RunnerPeer>();
  /** Authenticated clients. */
  readonly clients = new Set<ClientPeer>();
  #serial = 0;
  readonly #deps: BrokerDeps;

  constructor(deps: BrokerDeps) {
    this.#deps = deps;
    this.#writes = new PendingWrites(deps.log);
  }

  /** A number larger than every earlier one, for newest-first ordering. */
  nextSerial(): number {
    return ++this.#serial;
  }

  /** Gauges for `/metrics`. */
  gauges(): { runners: number; clients: number; sessions: number } {
    const sessions = new Set<string>();
    for (const client of this.clients) sessions.add(`${client.userId}\u0000${client.sessionId}`);
    return { runners: this.runners.size, clients: this.clients.size, sessions: sessions.size };
  }

  /** Number of connected clients of `userId`. */
  clientCount(userId: string): number {
    let count = 0;
    for (const client of this.clients) if (client.userId === userId && !client.isViewer) count++;
    return count;
  }

  /** Number of connected viewers of share `shareId` (they do not count against its owner's cap). */
  viewerCount(shareId: string): number {
    let count = 0;
    for (const client of this.clients) if (client.claims.share === shareId) count++;
    return count;
  }

  /* ---------------------------- runners ---------------------------- */

  /**
   * A runner authenticated: it replaces any older connection of the same
   * runner id (closed 4409), gets `welcome`, and picks up the clients waiting
   * for it.
   */
  addRunner(runner: RunnerPeer): void {
    const old = this.runners.get(runner.runnerId);
    this.runners.set(runner.runnerId, runner);
    send(runner.socket, welcomeFor(runner.runnerId));
    const moved = old ? [...old.clients] : [];
    if (old) {
      old.clients.clear();
      this.#stopPresence(old);
      this.#close(old.socket, CloseCode.REPLACED, CloseReason.REPLACED);
      this.#deps.log({ event: "runner_replaced", runnerId: runner.runnerId });
    }
    this.#deps.log({ event: "runner_connected", runnerId: runner.runnerId, userId: runner.userId });
    this.#setPresence(runner, true);
    this.#deps.cluster?.claimRunner(claimOf(runner));
    runner.presenceTimer = setInterval(() => {
      this.#setPresence(runner, true);
      this.#refreshShared(runner);
    }, this.#deps.limits.pingIntervalMs);
    for (const client of moved) {
      if (client.state !== "closed" && client.userId === runner.userId) this.#attach(client, runner);
    }
    for (const client of this.clients) {
      if (client.userId !== runner.userId) continue;
      const waitingForAny = client.state === "waiting" &&
        (client.claims.runnerId === undefined || client.claims.runnerId === runner.runnerId);
      const waitingForThis = client.state === "offline" && client.runnerId === runner.runnerId;
      if (waitingForAny || waitingForThis) this.#attach(client, runner);
    }
  }

  /** A runner connection closed: its clients are told and wait for it to come back. */
  removeRunner(runner: RunnerPeer): void {
    this.#stopPresence(runner);
    if (this.runners.get(runner.runnerId) !== runner) return;
    this.runners.delete(runner.runnerId);
    this.#setPresence(runner, false);
    this.#deps.cluster?.releaseRunner(claimOf(runner));
    this.#deps.log({ event: "runner_disconnected", runnerId: runner.runnerId, userId: runner.userId });
    for (const client of runner.clients) {
      client.runner = undefined;
      client.state = "offline";
      // The runner dropped their uploads with the link; they start afresh when it is back.
      client.uploads.clear();
      this.#stopAcks(client);
      this.#tell(client, "offline");
      this.#startWait(client, "runner did not come back");
    }
    if (runner.clients.size > 0) this.#deps.cluster?.awaitRunners(runner.userId);
    runner.clients.clear();
  }

  /**
   * The runner's token was revoked or expired: its clients are told
   * `coda:relay:revoked` and closed 4403, then the runner is closed with `code`.
   */
  revokeRunner(runner: RunnerPeer, code: number, reason: string): void {
    this.#deps.log({ event: "runner_revoked", runnerId: runner.runnerId, userId: runner.userId, reason });
    for (const client of runner.clients) {
      client.ended = true;
      this.#tell(client, "revoked");
      this.#close(client.socket, CloseCode.REVOKED, "runner revoked");
    }
    for (const client of this.clients) {
      if (client.state === "offline" && client.runnerId === runner.runnerId) {
        this.#tell(client, "revoked");
        this.#close(client.socket, CloseCode.REVOKED, "runner revoked");
      }
    }
    runner.clients.clear();
    this.removeRunner(runner);
    this.#close(runner.socket, code, reason);
  }

  /**
   * Closes the open client links of `userId` that `which` selects, with `code`
   * (4401 `signed out` when the user signed out). Each leaves the broker at once,
   * so no frame it sends from then on reaches a runner; its runner is told
   * `detach`. Returns how many were closed.
   */
  closeUserClients(
    userId: string,
    code: number,
    reason: string,
    which: (client: ClientPeer) => boolean = () => true,
  ): number {
    let closed = 0;
    for (const client of [...this.clients]) {
      if (client.userId !== userId || client.state === "closed" || !isOpen(client.socket)) continue;
      if (!which(client)) continue;
      this.removeClient(client);
      this.#close(client.socket, code, reason);
      closed++;
    }
    if (closed > 0) this.#deps.log({ event: "user_clients_closed", userId, reason, count: closed });
    return closed;
  }

  /** Routes one validated frame from `runner`. */
  fromRunner(runner: RunnerPeer, message: RunnerToRelay, bytes: number): void {
    if (this.runners.get(runner.runnerId) !== runner) {
      this.#deps.metrics.dropped("runner_replaced");
      return;
    }
    switch (message.type) {
      case "stdout":
        return this.#fanOut(runner, message.sessionId, message.clientId, {
          sessionId: message.sessionId,
          offset: message.offset,
          // A JSON runner targets output at one client only for its replay.
          replay: message.clientId !== undefined,
          bytes: undefined,
          text: message.data,
          frame: undefined,
          json: undefined,
          size: bytes,
        });
      case "meta": {
        const meta = parseMetaLine(message.data);
        if (meta?.kind === "cwd") this.#reportCwd(runner, message.sessionId, meta.value);
        const frame = encode({ type: "meta", sessionId: message.sessionId, data: message.data });
        if (message.clientId !== undefined) {
          const client = this.#targetOf(runner, message.sessionId, message.clientId);
          if (!client) return this.#deps.metrics.dropped("unknown_client");
          this.#deliverMeta(client, message.data, frame, bytes);
          return;
        }
        let delivered = false;
        for (const client of runner.clients) {
          if (client.sessionId !== message.sessionId || client.state !== "live") continue;
          delivered = true;
          this.#deliverMeta(client, message.data, frame, bytes);
        }
        if (!delivered) this.#deps.metrics.dropped("no_client");
        return;
      }
      case "binary":
        runner.binary = true;
        runner.transfers = message.transfers === true;
        return;
      case "upload-ack":
      case "upload-done":
      case "download-offer":
      case "download-done":
      case "transfer-error":
        return this.#transferToClient(runner, message, bytes);
      case "attached": {
        const client = this.#targetOf(runner, message.sessionId, message.clientId);
        if (!client) return this.#deps.metrics.dropped("unknown_client");
        client.state = "live";
        client.nextOffset = message.offset;
        this.#reportSession(runner, { sessionId: message.sessionId, runnerId: runner.runnerId });
        if (client.toldNotOnline) {
          client.toldNotOnline = false;
          this.#tell(client, "online");
        }
        return;
      }
      case "end": {
        this.#deps.log({ event: "session_ended", runnerId: runner.runnerId, sessionId: message.sessionId });
        this.#reportedCwds.get(runner)?.delete(message.sessionId);
        this.#reportSession(runner, { sessionId: message.sessionId, ended: true });
        for (const client of [...runner.clients]) {
          if (client.sessionId !== message.sessionId) continue;
          client.ended = true;
          runner.clients.delete(client);
          this.#close(client.socket, CloseCode.NORMAL, CloseReason.SESSION_ENDED);
        }
        return;
      }
      case "ping":
        trySend(runner.socket, encode({ type: "pong", t: message.t }));
        return;
      case "error": {
        // A runner may send these at will: the log gets a bounded share, cut to size.
        const now = Date.now();
        const window = this.#errorLogs.get(runner);
        if (!window || now - window.start >= 60_000) this.#errorLogs.set(runner, { start: now, count: 1 });
        else if (++window.count > RUNNER_ERROR_LOGS_PER_MINUTE) {
          return this.#deps.metrics.dropped("error_log_rate");
        }
        this.#deps.log({
          event: "runner_error",
          runnerId: runner.runnerId,
          sessionId: message.sessionId,
          code: message.code.slice(0, RUNNER_ERROR_LOG_CHARS.code),
          message: message.message.slice(0, RUNNER_ERROR_LOG_CHARS.message),
        });
        return;
      }
    }
  }

  /**
   * Routes a binary output frame from `runner` without looking at its payload: to its target
   * client (a client of this runner on that session), else to the session's live clients. `frame`
   * is the frame as received; a broadcast one reaches binary clients unchanged.
   */
  fromRunnerOutput(runner: RunnerPeer, output: OutputFrame, frame: Uint8Array<ArrayBuffer>): void {
    if (this.runners.get(runner.runnerId) !== runner) {
      this.#deps.metrics.dropped("runner_replaced");
      return;
    }
    this.#fanOut(runner, output.sessionId, output.clientId, {
      sessionId: output.sessionId,
      offset: output.offset,
      replay: output.replay,
      bytes: output.data,
      text: undefined,
      frame: output.clientId === undefined ? frame : undefined,
      json: undefined,
      size: frame.byteLength,
    });
  }

  /**
   * Routes a runner's transfer message: to its target client, or (a download offer) to every live
   * client of the session that may take one — never a viewer, never a client without binary frames
   * (file bytes only travel in them). An upload's end or progress updates the client's window.
   */
  #transferToClient(
    runner: RunnerPeer,
    message: Extract<
      RunnerToRelay,
      { type: "upload-ack" | "upload-done" | "download-offer" | "download-done" | "transfer-error" }
    >,
    bytes: number,
  ): void {
    const { clientId, ...forClient } = message;
    const frame = encode(forClient as JsonMessage);
    const targets = clientId !== undefined
      ? [this.#targetOf(runner, message.sessionId, clientId)].filter((client) => client !== undefined)
      : [...runner.clients].filter((client) =>
        client.sessionId === message.sessionId && client.state === "live"
      );
    let delivered = false;
    for (const client of targets) {
      if (client.isViewer || !client.binary) continue;
      const upload = client.uploads.get(message.transferId);
      if (upload && message.type === "upload-ack") upload.acked = Math.max(upload.acked, message.offset);
      const over = message.type === "upload-done" ||
        (message.type === "transfer-error" && message.direction === "upload");
      if (upload && over) client.uploads.delete(message.transferId);
      delivered = this.#push(client, frame, bytes) || delivered;
    }
    if (!delivered) this.#deps.metrics.dropped(clientId === undefined ? "no_client" : "unknown_client");
  }

  /**
   * Routes a runner's download frame to its client (it must name one of this runner's clients on
   * that session, neither a viewer nor a JSON client), without the client id, under the client's
   * buffer cap like output.
   */
  fromRunnerFile(runner: RunnerPeer, file: FileFrame, bytes: number): void {
    if (this.runners.get(runner.runnerId) !== runner) {
      this.#deps.metrics.dropped("runner_replaced");
      return;
    }
    const client = file.clientId === undefined
      ? undefined
      : this.#targetOf(runner, file.sessionId, file.clientId);
    if (!client || client.isViewer || !client.binary) return this.#deps.metrics.dropped("unknown_client");
    this.#push(client, encodeFileFrame({ ...file, clientId: undefined }), bytes);
  }

  /** Sends output to its target client, or to every live client of the session on `runner`. */
  #fanOut(runner: RunnerPeer, sessionId: string, clientId: string | undefined, output: Output): void {
    if (clientId !== undefined) {
      const client = this.#targetOf(runner, sessionId, clientId);
      if (!client) return this.#deps.metrics.dropped("unknown_client");
      this.#deliverOutput(client, output);
      return;
    }
    let delivered = false;
    for (const client of runner.clients) {
      if (client.sessionId !== sessionId || client.state !== "live") continue;
      delivered = true;
      this.#deliverOutput(client, output);
    }
    if (!delivered) this.#deps.metrics.dropped("no_client");
  }

  /* ---------------------------- clients ---------------------------- */

  /**
   * Counts a client against its user's cap while its token is still being
   * checked, so concurrent connections cannot slip past the cap.
   */
  reserveClient(client: ClientPeer): void {
    this.clients.add(client);
  }

  /** A client authenticated: attach it to its runner, or tell it to wait. */
  addClient(client: ClientPeer): void {
    this.clients.add(client);
    this.#deps.log({
      event: "client_connected",
      clientId: client.clientId,
      userId: client.userId,
      sessionId: client.sessionId,
      ...(client.isViewer ? { share: client.claims.share } : {}),
    });
    this.#reportViewer(client, true);
    const runner = this.#pickRunner(client);
    if (runner) return this.#attach(client, runner);
    this.#tell(client, "waiting");
    this.#startWait(client, "no runner online");
    this.#deps.cluster?.awaitRunners(client.userId);
  }

  /**
   * Another instance took a connection of `message.runnerId` (the shared records confirm it): the
   * clients here that wait for it, or for any runner of its user, reconnect and are routed there
   * (4307); a connection of it here is an older one, closed 4409 like a replaced one, and its
   * clients follow it there.
   */
  runnerElsewhere(message: InboxMessage): void {
    const local = this.runners.get(message.runnerId);
    if (local && local.connectionId !== message.connection) this.#replacedElsewhere(local, message.instance);
    for (const client of [...this.clients]) {
      if (client.userId !== message.userId) continue;
      const waitingForIt = client.state === "waiting" &&
        (client.claims.runnerId === undefined || client.claims.runnerId === message.runnerId);
      const offlineForIt = client.state === "offline" && client.runnerId === message.runnerId;
      if (waitingForIt || offlineForIt) this.#sendElsewhere(client);
    }
  }

  /** A connection of this runner on another instance replaced `runner`: it goes 4409, its clients follow. */
  #replacedElsewhere(runner: RunnerPeer, by: string): void {
    this.#deps.log({ event: "runner_replaced", runnerId: runner.runnerId, by });
    const clients = [...runner.clients];
    runner.clients.clear();
    for (const client of clients) this.#sendElsewhere(client);
    this.removeRunner(runner);
    this.#close(runner.socket, CloseCode.REPLACED, CloseReason.REPLACED);
  }

  /** Closes a client 4307: it reconnects and is routed to the instance its runner is on. */
  #sendElsewhere(client: ClientPeer): void {
    client.ended = true;
    this.removeClient(client);
    this.#close(client.socket, CloseCode.ON_ANOTHER_INSTANCE, CloseReason.ON_ANOTHER_INSTANCE);
  }

  /** A client connection closed: the runner is told `detach` (unless the session ended). */
  removeClient(client: ClientPeer): void {
    if (client.state === "closed") return;
    const wasAttached = client.state === "attaching" || client.state === "live";
    client.state = "closed";
    this.clients.delete(client);
    clearTimeout(client.waitTimer);
    this.#stopAcks(client);
    const runner = client.runner;
    client.runner = undefined;
    if (runner) {
      runner.clients.delete(client);
      if (wasAttached && !client.ended) {
        send(runner.socket, { type: "detach", sessionId: client.sessionId, clientId: client.clientId });
      }
    }
    this.#reportViewer(client, false);
    this.#deps.log({ event: "client_disconnected", clientId: client.clientId, sessionId: client.sessionId });
  }

  /**
   * Forwards a validated client frame (already checked to be for its own session): a JSON message,
   * or the stdin bytes of a binary input frame.
   */
  fromClient(client: ClientPeer, message: PendingInput, bytes: number): void {
    if (!(message instanceof Uint8Array) && CLIENT_TRANSFER_TYPES.has(message.type)) {
      return this.#transferFromClient(client, message, bytes);
    }
    const runner = client.runner;
    if (!runner || !isOpen(runner.socket)) {
      if (client.pendingBytes + bytes > this.#deps.limits.maxPendingClientBytes) {
        this.#deps.metrics.dropped("pending_full");
        return;
      }
      client.pending.push(message);
      client.pendingBytes += bytes;
      return;
    }
    if (runner.socket.bufferedAmount > this.#deps.limits.maxRunnerBufferedBytes) {
      // The runner stopped reading; holding more for it would grow relay memory without bound.
      this.#deps.metrics.dropped("runner_congested");
      return;
    }
    if (trySend(runner.socket, this.#toRunner(client, runner, message))) {
      this.#deps.metrics.relayed("client_to_runner", bytes);
    } else this.#deps.metrics.dropped("runner_gone");
  }

  /**
   * A client's transfer message (never a viewer's: the link dropped those): forwarded, naming the
   * client, to a live runner that takes transfers, else refused with `transfer-error`. An
   * `upload-start` opens the upload's window here, within the client's cap of uploads.
   */
  #transferFromClient(client: ClientPeer, message: ClientMessage, bytes: number): void {
    if (!("transferId" in message)) return;
    const { sessionId, transferId } = message;
    const direction = message.type.startsWith("upload") ? "upload" : "download";
    const refuse = (why: string) => {
      this.#deps.metrics.dropped("transfer_refused");
      if (!isOpen(client.socket)) return;
      trySend(
        client.socket,
        encode({ type: "transfer-error", sessionId, transferId, direction, message: why }),
      );
    };
    const runner = client.runner;
    if (!runner || !isOpen(runner.socket)) {
      return refuse("the runner is not connected; try again once the terminal is online");
    }
    if (!runner.transfers) return refuse("this runner does not support file transfer; update coda-runner");
    if (!client.binary) return refuse("file transfer needs the coda.v2 subprotocol");
    if (message.type === "upload-start") {
      if (client.uploads.has(transferId)) return refuse(`upload ${transferId} is already under way`);
      if (client.uploads.size >= this.#deps.limits.maxUploadsPerClient) {
        return refuse(`at most ${this.#deps.limits.maxUploadsPerClient} uploads at once`);
      }
      client.uploads.set(transferId, { size: message.size, forwarded: 0, acked: 0 });
    }
    if (message.type === "upload-cancel") client.uploads.delete(transferId);
    if (trySend(runner.socket, encode({ ...message, clientId: client.clientId } as JsonMessage))) {
      this.#deps.metrics.relayed("client_to_runner", bytes);
    }
  }

  /**
   * Forwards a piece of a client's upload (checked by the link: its session, no viewer) to the
   * runner, naming the client. It must continue an upload this client started, at the offset where
   * the last piece ended, within the declared size: else it is a strike (`false`). Past the window
   * beyond the runner's last `upload-ack` the client is closed 4429, so whatever it sends the relay
   * never holds more than the window per upload.
   */
  fromClientUpload(client: ClientPeer, upload: FileFrame, bytes: number): boolean {
    const window = client.uploads.get(upload.transferId);
    if (!window || upload.offset !== window.forwarded) return false;
    const end = upload.offset + upload.data.byteLength;
    if (end > window.size) return false;
    if (end - window.acked > this.#deps.limits.transferWindowBytes) {
      this.#deps.metrics.dropped("transfer_window");
      this.#deps.log({ event: "transfer_window", clientId: client.clientId, sessionId: client.sessionId });
      this.removeClient(client);
      this.#close(client.socket, CloseCode.TRANSFER_WINDOW, CloseReason.TRANSFER_WINDOW);
      return true;
    }
    window.forwarded = end;
    const runner = client.runner;
    const { sessionId, transferId } = upload;
    if (
      !runner || !isOpen(runner.socket) ||
      runner.socket.bufferedAmount > this.#deps.limits.maxRunnerBufferedBytes
    ) {
      // A piece lost would corrupt the file: the upload ends on both sides instead.
      client.uploads.delete(transferId);
      this.#deps.metrics.dropped("transfer_refused");
      const message = "the runner is not reading; the upload stopped, try again";
      trySend(
        client.socket,
        encode({ type: "transfer-error", sessionId, transferId, direction: "upload", message }),
      );
      if (runner && isOpen(runner.socket)) {
        send(runner.socket, { type: "upload-cancel", sessionId, transferId, clientId: client.clientId });
      }
      return true;
    }
    if (trySend(runner.socket, encodeFileFrame({ ...upload, clientId: client.clientId }))) {
      this.#deps.metrics.relayed("client_to_runner", bytes);
    }
    return true;
  }

  /**
   * A client's frame as `runner` takes it: stdin as a binary input frame (naming the client) for a
   * binary runner, as JSON `stdin` for another; everything else as JSON.
   */
  #toRunner(client: ClientPeer, runner: RunnerPeer, message: PendingInput): string | Uint8Array<ArrayBuffer> {
    if (message instanceof Uint8Array) {
      if (runner.binary) {
        return encodeInputFrame({ sessionId: client.sessionId, clientId: client.clientId, data: message });
      }
      client.stdinDecoder ??= new TextDecoder();
      const data = client.stdinDecoder.decode(message, { stream: true });
      return encode({ type: "stdin", sessionId: client.sessionId, data });
    }
    if (message.type === "stdin" && runner.binary) {
      return encodeInputFrame({
        sessionId: client.sessionId,
        clientId: client.clientId,
        data: textEncoder.encode(message.data),
      });
    }
    return encode(message);
  }

  /* ---------------------------- shutdown ---------------------------- */

  /** Closes every connection with `code` (1012 on restart). */
  closeAll(code: number, reason: string): void {
    for (const client of this.clients) {
      client.ended = true;
      clearTimeout(client.waitTimer);
      this.#stopAcks(client);
      this.#close(client.socket, code, reason);
    }
    for (const runner of this.runners.values()) {
      this.#stopPresence(runner);
      this.#setPresence(runner, false);
      this.#deps.cluster?.releaseRunner(claimOf(runner));
      this.#close(runner.socket, code, reason);
    }
  }

  /* ---------------------------- internals ---------------------------- */

  /**
   * The token's runner if it is online and the user's, else the user's online runner paired longest
   * ago (connected longest ago when the pairing times tie or are unknown: {@linkcode compareRunnerAge},
   * the order routing between instances uses too). Never the newest: a runner paired or connected
   * later must not silently receive the next terminal.
   */
  #pickRunner(client: ClientPeer): RunnerPeer | undefined {
    if (client.claims.runnerId !== undefined) {
      const runner = this.runners.get(client.claims.runnerId);
      return runner && runner.userId === client.userId ? runner : undefined;
    }
    let oldest: RunnerPeer | undefined;
    for (const runner of this.runners.values()) {
      if (runner.userId !== client.userId) continue;
      if (!oldest || compareRunnerAge(runner, oldest) < 0) oldest = runner;
    }
    return oldest;
  }

  #targetOf(runner: RunnerPeer, sessionId: string, clientId: string): ClientPeer | undefined {
    for (const client of runner.clients) {
      if (client.clientId === clientId) return client.sessionId === sessionId ? client : undefined;
    }
    return undefined;
  }

  #attach(client: ClientPeer, runner: RunnerPeer): void {
    clearTimeout(client.waitTimer);
    client.waitTimer = undefined;
    client.runner = runner;
    client.runnerId = runner.runnerId;
    client.state = "attaching";
    runner.clients.add(client);
    const attach: RelayToRunner = {
      type: "attach",
      sessionId: client.sessionId,
      clientId: client.clientId,
    };
    if (client.nextOffset !== undefined) attach.offset = client.nextOffset;
    if (client.options.cols !== undefined) attach.cols = client.options.cols;
    if (client.options.rows !== undefined) attach.rows = client.options.rows;
    if (client.claims.ideaId !== undefined) attach.ideaId = client.claims.ideaId;
    if (client.claims.resume) attach.resume = true;
    if (client.binary) attach.binary = true;
    send(runner.socket, attach);
    for (const message of client.pending.splice(0)) {
      const frame = this.#toRunner(client, runner, message);
      const size = typeof frame === "string" ? utf8Length(frame) : frame.byteLength;
      if (trySend(runner.socket, frame)) this.#deps.metrics.relayed("client_to_runner", size);
    }
    client.pendingBytes = 0;
    this.#deps.log({
      event: "client_attached",
      clientId: client.clientId,
      runnerId: runner.runnerId,
      sessionId: client.sessionId,
      offset: client.nextOffset,
    });
  }

  /**
   * Sends one chunk of output to one client in its format, honouring the client's buffer cap
   * (close 4413 past it) and dropping output the client already has. A binary client gets a
   * binary frame (bytes from a binary runner never decoded); a JSON client `stdout` text, whole
   * characters only.
   */
  #deliverOutput(client: ClientPeer, output: Output): void {
    if (client.binary && output.bytes === undefined) output.bytes = textEncoder.encode(output.text);
    let end: number | undefined;
    if (output.offset !== undefined) {
      end = output.offset + (output.bytes ? output.bytes.byteLength : utf8Length(output.text!));
      if (client.nextOffset !== undefined && end <= client.nextOffset) {
        this.#deps.metrics.dropped("duplicate_output");
        return;
      }
    }
    let frame: string | Uint8Array<ArrayBuffer>;
    if (client.binary) {
      if (output.offset === undefined) {
        // Only a JSON runner omits the offset: the client's own position stands in for it.
        frame = encodeOutputFrame({
          sessionId: output.sessionId,
          offset: client.nextOffset ?? 0,
          replay: output.replay,
          data: output.bytes!,
        });
      } else {
        frame = output.frame ??= encodeOutputFrame({
          sessionId: output.sessionId,
          offset: output.offset,
          replay: output.replay,
          data: output.bytes!,
        });
      }
    } else if (output.text !== undefined) {
      client.utf8.reset();
      frame = output.json ??= encode({
        type: "stdout",
        sessionId: output.sessionId,
        data: output.text,
        offset: output.offset,
      });
    } else {
      const { text, offset } = client.utf8.push(output.offset!, output.bytes!);
      if (text === "") {
        // Only part of one character so far: it goes out with the next chunk.
        client.nextOffset = end;
        return;
      }
      frame = encode({ type: "stdout", sessionId: output.sessionId, data: text, offset });
    }
    if (!this.#push(client, frame, output.size)) return;
    if (end !== undefined) client.nextOffset = end;
    if (!client.options.ack) this.#scheduleAck(client);
  }

  /** Sends one meta line to one client, honouring its buffer cap. */
  #deliverMeta(client: ClientPeer, line: string, frame: string, bytes: number): void {
    if (!this.#push(client, frame, bytes)) return;
    if (line === MetaLine.reset()) {
      // The stream restarted at 0: what the client had no longer counts, or the replay would be deduplicated away.
      client.nextOffset = undefined;
      client.ackedOffset = 0;
      client.utf8.reset();
    }
  }

  /** Writes `frame` unless that would take the client past its buffer cap. */
  #push(client: ClientPeer, frame: string | Uint8Array<ArrayBuffer>, bytes: number): boolean {
    const socket = client.socket;
    if (!isOpen(socket)) return false;
    const buffered = socket.bufferedAmount;
    if (buffered > 0 && buffered + bytes > this.#deps.limits.maxClientBufferedBytes) {
      this.#deps.metrics.dropped("slow_consumer");
      this.#deps.log({
        event: "slow_consumer",
        clientId: client.clientId,
        sessionId: client.sessionId,
        buffered,
      });
      this.#close(socket, CloseCode.SLOW_CONSUMER, CloseReason.SLOW_CONSUMER);
      return false;
    }
    if (!trySend(socket, frame)) return false;
    this.#deps.metrics.relayed("runner_to_client", bytes);
    return true;
  }

  /**
   * Acknowledges for a client without `ack=1` what its socket has written: at every send, the
   * output before what is still queued (`bufferedAmount` counts frame bytes, never fewer than the
   * output bytes in them), once a batch of it is unacknowledged, so a spec-only client's flow
   * control is not held to one window per timer interval; and, when the timer finds the socket
   * drained, everything sent.
   */
  #scheduleAck(client: ClientPeer, delayMs = this.#deps.limits.ackIntervalMs): void {
    const { ackDrainBytes, ackIntervalMs } = this.#deps.limits;
    const written = (client.nextOffset ?? 0) - client.socket.bufferedAmount;
    if (written - client.ackedOffset >= ackDrainBytes) this.#ackFor(client, written);
    if (client.ackTimer !== undefined) return;
    client.ackTimer = setTimeout(() => {
      client.ackTimer = undefined;
      if (client.socket.bufferedAmount <= ackDrainBytes) {
        if (client.nextOffset !== undefined) this.#ackFor(client, client.nextOffset);
        return;
      }
      // Looked at again, less and less often while the socket writes nothing (a client that stopped reading).
      const progressed = (client.nextOffset ?? 0) - client.socket.bufferedAmount > written;
      this.#scheduleAck(client, progressed ? ackIntervalMs : Math.min(2 * delayMs, MAX_ACK_POLL_MS));
    }, delayMs);
  }

  /** Tells the runner that a client without `ack=1` has `offset`, if that is news. */
  #ackFor(client: ClientPeer, offset: number): void {
    const runner = client.runner;
    if (!runner || client.state === "closed" || !isOpen(client.socket)) return;
    if (offset <= client.ackedOffset) return;
    client.ackedOffset = offset;
    send(runner.socket, { type: "ack", sessionId: client.sessionId, offset });
  }

  #stopAcks(client: ClientPeer): void {
    clearTimeout(client.ackTimer);
    client.ackTimer = undefined;
  }

  #tell(client: ClientPeer, state: RelayState): void {
    if (state === "waiting" || state === "offline") client.toldNotOnline = true;
    const frame = encode({ type: "meta", sessionId: client.sessionId, data: MetaLine.relay(state) });
    trySend(client.socket, frame);
  }

  #startWait(client: ClientPeer, reason: string): void {
    clearTimeout(client.waitTimer);
    client.waitTimer = setTimeout(() => {
      client.waitTimer = undefined;
      this.#close(client.socket, CloseCode.NO_RUNNER, reason);
    }, this.#deps.limits.runnerWaitMs);
  }

  #setPresence(runner: RunnerPeer, online: boolean): void {
    this.#writes.track(this.#deps.backend.setPresence(runner.runnerId, runner.userId, online), {
      event: "presence_failed",
      runnerId: runner.runnerId,
    });
  }

  /**
   * Reports a session's directory when it changed, and only for a session a client of this runner
   * is on: every attach repeats it, and a runner must not turn its frames into as many app writes.
   */
  #reportCwd(runner: RunnerPeer, sessionId: string, cwd: string): void {
    if (![...runner.clients].some((client) => client.sessionId === sessionId)) return;
    const reported = this.#reportedCwds.get(runner) ?? new Map<string, string>();
    this.#reportedCwds.set(runner, reported);
    if (reported.get(sessionId) === cwd) return;
    reported.set(sessionId, cwd);
    this.#reportSession(runner, { sessionId, cwd });
  }

  /** Tells the app what a runner's session did, for the user's list of sessions to reattach. */
  #reportSession(runner: RunnerPeer, report: Omit<SessionReport, "userId">): void {
    const backend = this.#deps.backend;
    if (!backend.reportSession) return;
    const { sessionId } = report;
    // An `end` right behind `attached` must not be overtaken by it (the session would look live again).
    const write = this.#writes.track(
      (this.#reportChains.get(sessionId) ?? Promise.resolve())
        .then(() => backend.reportSession!({ ...report, userId: runner.userId })),
      { event: "session_report_failed", sessionId },
    );
    this.#reportChains.set(sessionId, write);
    write.finally(() => {
      if (this.#reportChains.get(sessionId) === write) this.#reportChains.delete(sessionId);
    });
  }

  /** Tells the app a viewer came or went, so the share's owner sees who watches. */
  #reportViewer(client: ClientPeer, online: boolean): void {
    const shareId = client.claims.share;
    const backend = this.#deps.backend;
    if (shareId === undefined || !backend.reportViewer) return;
    this.#writes.track(
      backend.reportViewer({ shareId, clientId: client.clientId, viewer: client.claims.viewer, online }),
      { event: "viewer_report_failed", shareId },
    );
  }

  /** Waits for presence and session writes in flight, so a shutdown finishes them before the store closes. */
  settle(): Promise<void> {
    return this.#writes.settle();
  }

  /** Refreshes a runner's shared record; one another instance took over is replaced there. */
  #refreshShared(runner: RunnerPeer): void {
    const cluster = this.#deps.cluster;
    if (!cluster) return;
    const refreshed = cluster.refreshRunner(claimOf(runner)).then((held) => {
      if (!held && this.runners.get(runner.runnerId) === runner) {
        this.#replacedElsewhere(runner, "another instance");
      }
    });
    this.#writes.track(refreshed, { event: "cluster_refresh_failed", runnerId: runner.runnerId });
  }

  #stopPresence(runner: RunnerPeer): void {
    clearInterval(runner.presenceTimer);
    runner.presenceTimer = undefined;
  }

  #close(socket: WebSocket, code: number, reason: string): void {
    if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) {
      this.#deps.metrics.closed(code);
    }
    closeSocket(socket, code, reason, this.#deps.limits.closeGraceMs);
  }
}

/** What the shared records hold of a runner connection. */
function claimOf(runner: RunnerPeer): RunnerClaim {
  const claim: RunnerClaim = {
    runnerId: runner.runnerId,
    userId: runner.userId,
    connectionId: runner.connectionId,
    connectedAt: runner.connectedAt,
  };
  if (runner.pairedAt !== undefined) claim.pairedAt = runner.pairedAt;
  return claim;
}

/** Sends a protocol message to a runner (best effort: a closed link is handled by its close event). */
function send(socket: WebSocket, message: JsonRelayToRunner): void {
  trySend(socket, encode(message));
}
