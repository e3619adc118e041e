/**
 * The relay's view of each connection: authenticated runners and clients.
 *
 * @module
 */
import type { ClientLinkOptions, ClientMessage } from "./protocol.ts";
import type { ClientClaims } from "./tokens.ts";
import { Utf8Splitter } from "./utf8.ts";

/** A client frame held until its runner is attached: a JSON message, or the stdin bytes of an input frame. */
export type PendingInput = ClientMessage | Uint8Array;

/**
 * A client's place in the attach sequence:
 * - `waiting`: no runner of its user is online yet;
 * - `attaching`: `attach` sent, the runner is replaying (only targeted frames reach it);
 * - `live`: the runner sent `attached`; broadcast output reaches it;
 * - `offline`: its runner's link dropped; waiting for the same runner to come back;
 * - `closed`: gone.
 */
export type ClientState = "waiting" | "attaching" | "live" | "offline" | "closed";

let lastConnectedAt = 0;

/** Now in ms, made larger than the last value returned, so connections in one process never tie. */
function connectionTime(): number {
  lastConnectedAt = Math.max(Date.now(), lastConnectedAt + 1);
  return lastConnectedAt;
}

/** An authenticated runner connection. */
export class RunnerPeer {
  /** Clients attached (or attaching) through this connection. */
  readonly clients = new Set<ClientPeer>();
  /** It sent `binary` after `welcome`: stdin goes to it as binary input frames. */
  binary = false;
  /** It said it takes file transfers (`binary` with `transfers: true`). */
  transfers = false;
  /** Refreshes presence while connected. */
  presenceTimer: ReturnType<typeof setInterval> | undefined;
  /** This connection, distinct from any other connection of the same runner on any instance. */
  readonly connectionId: string = crypto.randomUUID();
  /** When it connected, ms since the epoch; later connections in this process have larger values. */
  readonly connectedAt: number = connectionTime();

  constructor(
    /** Connection order; the newest runner of a user has the largest. */
    readonly serial: number,
    readonly runnerId: string,
    readonly userId: string,
    /** The token's jti, re-verified for revocation. */
    readonly jti: string,
    /** The token's expiry, seconds since the epoch. */
    readonly exp: number,
    readonly socket: WebSocket,
    /**
     * When the runner was paired (its token's `iat`, seconds since the epoch), if known: a token
     * naming no runner goes to the one paired longest ago, so a runner paired later (through a
     * phishing link, say) never takes over the user's terminals by connecting.
     */
    readonly pairedAt?: number,
  ) {}
}

/** The relay's account of one upload of a client: how far it forwarded it and the runner wrote it. */
export interface UploadWindow {
  /** Declared size: no byte past it is forwarded. */
  size: number;
  /** Bytes forwarded to the runner (the offset the next upload frame must have). */
  forwarded: number;
  /** The runner's last `upload-ack`. */
  acked: number;
}

/** An authenticated client connection (one session). */
export class ClientPeer {
  state: ClientState = "waiting";
  /** The runner connection it is attached through, while attaching or live. */
  runner: RunnerPeer | undefined;
  /**
   * The runner it belongs to once first attached (or, with several instances, the one routing
   * chose for it); it only ever waits for that one.
   */
  runnerId: string | undefined;
  /** The offset of the next output byte this client expects (undefined: nothing yet, full replay). */
  nextOffset: number | undefined;
  /** The highest offset the relay acknowledged to the runner for this client. */
  ackedOffset = 0;
  /** Pending relay acknowledgement check. */
  ackTimer: ReturnType<typeof setTimeout> | undefined;
  /** Runs out when no runner comes (back) in time. */
  waitTimer: ReturnType<typeof setTimeout> | undefined;
  /** Whether `coda:relay:waiting` or `offline` was sent, so `online` follows on attach. */
  toldNotOnline = false;
  /** The session ended; no `detach` is due. */
  ended = false;
  /** Frames received before the client could be attached, forwarded on attach. */
  readonly pending: PendingInput[] = [];
  pendingBytes = 0;
  /** It offered the `coda.v2` subprotocol: output goes to it as binary frames. */
  binary = false;
  /** For a JSON client: binary output becomes `stdout` text through this, whole characters only. */
  readonly utf8 = new Utf8Splitter();
  /** For a JSON runner: this binary client's stdin bytes become text through this (stream mode). */
  stdinDecoder: TextDecoder | undefined;
  /** Its uploads under way, by transfer id (at most `maxUploadsPerClient`). */
  readonly uploads = new Map<number, UploadWindow>();

  constructor(
    /** Random id the runner uses to target replay frames. */
    readonly clientId: string,
    readonly claims: ClientClaims,
    readonly options: ClientLinkOptions,
    readonly socket: WebSocket,
  ) {
    this.nextOffset = options.offset;
    this.ackedOffset = options.offset ?? 0;
  }

  /** The session this client may talk to. */
  get sessionId(): string {
    return this.claims.sessionId;
  }

  /** The user it belongs to. */
  get userId(): string {
    return this.claims.userId;
  }

  /** A watch-only link of a share: nothing it sends reaches the runner. */
  get isViewer(): boolean {
    return this.claims.share !== undefined;
  }
}
