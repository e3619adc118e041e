/**
 * The wire protocol between browser clients, the relay and runners.
 *
 * Every message is defined here once, with a runtime schema, and imported by
 * the relay, the runner, the API and the SPA. `relay/PROTOCOL.md` is the prose
 * version of this file.
 *
 * Two links:
 * - client link (`/client?token=…`): carries exactly one session. The spec's
 *   messages (`stdin`, `resize`, `record`, `pick-cwd` in; `stdout`, `meta` out)
 *   work with nothing else. `ack` is opted into with a query parameter, see
 *   {@linkcode ClientLinkOptions}; binary output frames with the subprotocol
 *   {@linkcode BINARY_SUBPROTOCOL}; a client that sends a `ping` gets a `pong`,
 *   one that never does gets none.
 * - runner link (`/runner`): multiplexes every session of one runner and adds
 *   control messages (`attach`, `detach`, `attached`, `ack`, `end`, …).
 *
 * @module
 */
import * as v from "valibot";
import { type FileFrame, MAX_TRANSFER_ID, SESSION_ID_PATTERN } from "./binary_frames.ts";

export * from "./binary_frames.ts";

/** Largest WebSocket message either side accepts, in bytes (close 1009 above it). */
export const MAX_FRAME_BYTES = 1024 * 1024;

/** Session ids: URL-safe, 8 to 64 characters. */
export const SessionIdSchema = v.pipe(
  v.string(),
  v.regex(SESSION_ID_PATTERN, "sessionId must be 8-64 characters of [A-Za-z0-9_-]"),
);

/** Runner ids: URL-safe, 8 to 64 characters. */
export const RunnerIdSchema = v.pipe(
  v.string(),
  v.regex(/^[A-Za-z0-9_-]{8,64}$/, "runnerId must be 8-64 characters of [A-Za-z0-9_-]"),
);

/** Longest idea id (the app's idea a session belongs to), in characters. */
export const MAX_IDEA_ID_LENGTH = 200;

const Dimension = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1000));
const Offset = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(Number.MAX_SAFE_INTEGER));

/* ------------------------------------------------------------------ */
/* Client → relay → runner (the spec's client messages, plus `ack`).   */
/* ------------------------------------------------------------------ */

/** Keystrokes or pasted text for the PTY. */
export const StdinSchema = v.object({
  type: v.literal("stdin"),
  sessionId: SessionIdSchema,
  data: v.pipe(v.string(), v.maxLength(MAX_FRAME_BYTES)),
});

/** New terminal size in character cells. */
export const ResizeSchema = v.object({
  type: v.literal("resize"),
  sessionId: SessionIdSchema,
  cols: Dimension,
  rows: Dimension,
});

/** Turn recording (mirroring output to logs ingest) on or off. */
export const RecordSchema = v.object({
  type: v.literal("record"),
  sessionId: SessionIdSchema,
  on: v.boolean(),
});

/** Change the working directory of the session (and of future sessions of its idea). */
export const PickCwdSchema = v.object({
  type: v.literal("pick-cwd"),
  sessionId: SessionIdSchema,
  path: v.pipe(v.string(), v.minLength(1), v.maxLength(4096)),
});

/**
 * Negotiated (`?ack=1`): the client has rendered output up to `offset`.
 * Clients that never send it are acknowledged by the relay as their socket drains.
 */
export const AckSchema = v.object({
  type: v.literal("ack"),
  sessionId: SessionIdSchema,
  offset: Offset,
});

/** Ask the runner to end the session (kill the shell) for every client. */
export const KillSchema = v.object({
  type: v.literal("kill"),
  sessionId: SessionIdSchema,
});

/**
 * Application heartbeat, from a runner or (optionally) a client. The relay (or
 * `coda-runner serve`) answers {@linkcode PongSchema} at once, echoing `t`, so
 * the sender notices a link that went silent (WebSocket pings are invisible to
 * a page's and a runner's code) and can measure the round trip. It carries no
 * `sessionId`: it is about the link, and is never forwarded.
 */
export const PingSchema = v.object({
  type: v.literal("ping"),
  t: v.optional(v.number()),
});

/** The answer to {@linkcode PingSchema}, to whichever peer sent it. */
export const PongSchema = v.object({
  type: v.literal("pong"),
  t: v.optional(v.number()),
});

/* ------------------------------------------------------------------ */
/* File transfer: coda.v2 clients that are not viewers (PROTOCOL.md).  */
/* ------------------------------------------------------------------ */

/** Bytes of file data per upload or download frame. */
export const TRANSFER_CHUNK_BYTES = 64 * 1024;
/**
 * Bytes of one transfer sent and not yet acknowledged by its receiver: an uploading client waits for
 * `upload-ack`, the runner for `download-ack`. The relay closes a client that goes past it.
 */
export const TRANSFER_WINDOW_BYTES = 512 * 1024;
/** Longest file name in an upload or a download offer, in UTF-8 bytes (a common file system limit). */
export const MAX_FILE_NAME_BYTES = 255;
/** Default largest file a runner takes or offers (`CODA_TRANSFER_MAX_BYTES`). */
export const DEFAULT_TRANSFER_MAX_BYTES = 100 * 1024 * 1024;

/** C0 controls, DEL and C1 controls. */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const FILE_NAME_CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Why `name` is not a plain base name a file may be written under (`undefined` when it is one):
 * empty, `.` or `..`, a `/` or `\`, a control character, or longer than {@linkcode MAX_FILE_NAME_BYTES}.
 */
export function fileNameProblem(name: string): string | undefined {
  if (name === "") return "the file name is empty";
  if (name === "." || name === "..") return `"${name}" is not a file name`;
  if (name.includes("/") || name.includes("\\")) return "the file name must not contain / or \\";
  if (FILE_NAME_CONTROL.test(name)) return "the file name must not contain control characters";
  if (new TextEncoder().encode(name).byteLength > MAX_FILE_NAME_BYTES) {
    return `the file name is longer than ${MAX_FILE_NAME_BYTES} bytes`;
  }
  return undefined;
}

const TransferId = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(MAX_TRANSFER_ID));
/** Names are checked by the runner (clear errors); the wire only bounds their length. */
const FileName = v.pipe(v.string(), v.maxLength(1024));

/**
 * Client → runner: starts upload `transferId` of a file `name` of `size` bytes into the session's
 * working directory. Its bytes follow as upload frames, at most {@linkcode TRANSFER_WINDOW_BYTES}
 * past the last `upload-ack`. `clientId` is set by the relay towards the runner (a client's is dropped).
 */
export const UploadStartSchema = v.object({
  type: v.literal("upload-start"),
  sessionId: SessionIdSchema,
  transferId: TransferId,
  name: FileName,
  size: Offset,
  clientId: v.optional(v.string()),
});

/** Client → runner: abandon upload `transferId` (its partial file is removed). */
export const UploadCancelSchema = v.object({
  type: v.literal("upload-cancel"),
  sessionId: SessionIdSchema,
  transferId: TransferId,
  clientId: v.optional(v.string()),
});

/** Client → runner: send me download `transferId`, which a `download-offer` announced. */
export const DownloadAcceptSchema = v.object({
  type: v.literal("download-accept"),
  sessionId: SessionIdSchema,
  transferId: TransferId,
  clientId: v.optional(v.string()),
});

/** Client → runner: I have download `transferId` up to byte `offset`: send more. */
export const DownloadAckSchema = v.object({
  type: v.literal("download-ack"),
  sessionId: SessionIdSchema,
  transferId: TransferId,
  offset: Offset,
  clientId: v.optional(v.string()),
});

/** Client → runner: stop sending download `transferId`. */
export const DownloadCancelSchema = v.object({
  type: v.literal("download-cancel"),
  sessionId: SessionIdSchema,
  transferId: TransferId,
  clientId: v.optional(v.string()),
});

/** Runner → client: upload `transferId` is written up to byte `offset`: send more. */
export const UploadAckSchema = v.object({
  type: v.literal("upload-ack"),
  sessionId: SessionIdSchema,
  transferId: TransferId,
  offset: Offset,
  clientId: v.optional(v.string()),
});

/** Runner → client: upload `transferId` is complete, at `path` (in the session's working directory). */
export const UploadDoneSchema = v.object({
  type: v.literal("upload-done"),
  sessionId: SessionIdSchema,
  transferId: TransferId,
  path: v.string(),
  clientId: v.optional(v.string()),
});

/**
 * Runner → clients: `coda-download` in the session offers a file, `name` of `size` bytes, as download
 * `transferId`. The relay passes it to coda.v2 clients that are not viewers only.
 */
export const DownloadOfferSchema = v.object({
  type: v.literal("download-offer"),
  sessionId: SessionIdSchema,
  transferId: TransferId,
  name: FileName,
  size: Offset,
  clientId: v.optional(v.string()),
});

/** Runner → client: every byte of download `transferId` was sent, `size` of them. */
export const DownloadDoneSchema = v.object({
  type: v.literal("download-done"),
  sessionId: SessionIdSchema,
  transferId: TransferId,
  size: Offset,
  clientId: v.optional(v.string()),
});

/**
 * Runner (or relay) → client: transfer `transferId` (an `upload` or a `download`) failed or was
 * refused, for the reason in `message`; it is over (an upload's partial file is gone).
 */
export const TransferErrorSchema = v.object({
  type: v.literal("transfer-error"),
  sessionId: SessionIdSchema,
  transferId: TransferId,
  direction: v.picklist(["upload", "download"]),
  message: v.pipe(v.string(), v.maxLength(1024)),
  clientId: v.optional(v.string()),
});

/** The file-transfer messages a client sends. */
export const CLIENT_TRANSFER_TYPES: ReadonlySet<string> = new Set([
  "upload-start",
  "upload-cancel",
  "download-accept",
  "download-ack",
  "download-cancel",
]);

/** The file-transfer messages a runner sends. */
export const RUNNER_TRANSFER_TYPES: ReadonlySet<string> = new Set([
  "upload-ack",
  "upload-done",
  "download-offer",
  "download-done",
  "transfer-error",
]);

/** The fields of a piece of a file transfer; `data` is its only binary field. */
const FilePieceFields = {
  sessionId: SessionIdSchema,
  clientId: v.string(),
  transferId: v.pipe(v.number(), v.integer(), v.minValue(0)),
  offset: Offset,
  data: v.custom<Uint8Array>((value) => value instanceof Uint8Array, "data must be bytes"),
};

/**
 * Relay → runner: a piece of an upload, from an upload frame of client `clientId`. The link turns
 * the frame into this message (the schema checks it where it crosses a process, as to a holder).
 */
export const UploadDataSchema = v.object({ type: v.literal("upload-data"), ...FilePieceFields });
/** See {@linkcode UploadDataSchema}. */
export type UploadData = v.InferOutput<typeof UploadDataSchema>;

/** Runner → relay: a piece of a download for client `clientId`; the link sends it as a download frame. */
export const DownloadDataSchema = v.object({ type: v.literal("download-data"), ...FilePieceFields });
/** See {@linkcode DownloadDataSchema}. */
export type DownloadData = v.InferOutput<typeof DownloadDataSchema>;

/** The frame of an {@linkcode UploadData} or {@linkcode DownloadData} message. */
export function fileMessageFrame(message: UploadData | DownloadData): FileFrame {
  const { sessionId, clientId, transferId, offset, data } = message;
  const type = message.type === "upload-data" ? "upload" : "download";
  return { type, sessionId, clientId, transferId, offset, data };
}

/** Any message a client may send. */
export const ClientMessageSchema = v.variant("type", [
  StdinSchema,
  ResizeSchema,
  RecordSchema,
  PickCwdSchema,
  AckSchema,
  KillSchema,
  PingSchema,
  UploadStartSchema,
  UploadCancelSchema,
  DownloadAcceptSchema,
  DownloadAckSchema,
  DownloadCancelSchema,
]);
/** Any message a client may send. */
export type ClientMessage = v.InferOutput<typeof ClientMessageSchema>;

/* ------------------------------------------------------------------ */
/* Runner → relay → client.                                            */
/* ------------------------------------------------------------------ */

/**
 * PTY output. `offset` is the byte offset (UTF-8) of `data`'s first byte in the
 * session's output stream. `clientId` (runner link only) targets one client,
 * as for a replay; without it the relay sends the frame to every attached client.
 */
export const StdoutSchema = v.object({
  type: v.literal("stdout"),
  sessionId: SessionIdSchema,
  data: v.string(),
  offset: v.optional(Offset),
  clientId: v.optional(v.string()),
});

/**
 * Out-of-band lines, see {@linkcode MetaLine}. `clientId` (runner link only)
 * targets one client.
 */
export const MetaSchema = v.object({
  type: v.literal("meta"),
  sessionId: SessionIdSchema,
  data: v.string(),
  clientId: v.optional(v.string()),
});

/**
 * Whether a client may send close `code` itself: browsers and Deno refuse any other than 1000 and
 * 3000–4999, so only these are announced with {@linkcode ClosingSchema}.
 */
export function clientMayClose(code: number): boolean {
  return code === 1000 || (code >= 3000 && code <= 4999);
}

/**
 * The relay is about to close the link with `code` and `reason`, sent (after everything else) to
 * `ack=1` clients, which answer it by closing the link themselves with the same code and reason.
 * Why: Deno's server WebSocket drops the connection when a frame from the peer arrives after it
 * has sent its close frame, and the peer then gets a reset instead of the close code. A client
 * that closes first has nothing in flight behind its close frame.
 */
export const ClosingSchema = v.object({
  type: v.literal("closing"),
  code: v.pipe(v.number(), v.integer(), v.check(clientMayClose, "a code a client may close with")),
  reason: v.pipe(v.string(), v.maxBytes(123)),
});

/** Messages a client receives. */
export const ServerMessageSchema = v.variant("type", [
  StdoutSchema,
  MetaSchema,
  PongSchema,
  ClosingSchema,
  UploadAckSchema,
  UploadDoneSchema,
  DownloadOfferSchema,
  DownloadDoneSchema,
  TransferErrorSchema,
]);
/** Messages a client receives. */
export type ServerMessage = v.InferOutput<typeof ServerMessageSchema>;

/* ------------------------------------------------------------------ */
/* Relay ↔ runner control messages.                                    */
/* ------------------------------------------------------------------ */

/**
 * Relay → runner: a client joined `sessionId`. The runner creates the session
 * if it has none, replays its buffer from `offset` (or from the oldest byte it
 * still holds when `offset` is absent) targeted at `clientId`, then answers
 * {@linkcode AttachedSchema}.
 */
export const AttachSchema = v.object({
  type: v.literal("attach"),
  sessionId: SessionIdSchema,
  clientId: v.string(),
  offset: v.optional(Offset),
  cols: v.optional(Dimension),
  rows: v.optional(Dimension),
  ideaId: v.optional(v.string()),
  /**
   * The session ran a shell before (from the client token): a runner without it answers
   * `coda:ended:runner-restarted` instead of starting one, as for an `offset` > 0.
   */
  resume: v.optional(v.boolean()),
  /**
   * The client reads binary output frames (it negotiated `coda.v2`): what it is sent is the output's
   * own bytes, never expanded into JSON, so its session may let more of it be in flight.
   */
  binary: v.optional(v.boolean()),
});

/** Relay → runner: a client left `sessionId` (the PTY keeps running for its grace period). */
export const DetachSchema = v.object({
  type: v.literal("detach"),
  sessionId: SessionIdSchema,
  clientId: v.string(),
});

/**
 * Runner → relay: the replay for `clientId` is complete; live output continues
 * from `offset`. Until this arrives the relay does not send the client live frames.
 */
export const AttachedSchema = v.object({
  type: v.literal("attached"),
  sessionId: SessionIdSchema,
  clientId: v.string(),
  offset: Offset,
});

/** Runner → relay: the session is over (shell exited or killed); close its clients. */
export const EndSchema = v.object({
  type: v.literal("end"),
  sessionId: SessionIdSchema,
  exitCode: v.optional(v.nullable(v.number())),
});

/**
 * Relay → runner, first frame after the upgrade. `binary: true` (protocol 2): the relay takes
 * binary frames, see {@linkcode BinarySchema}; a runner that ignores it keeps JSON.
 */
export const WelcomeSchema = v.object({
  type: v.literal("welcome"),
  runnerId: RunnerIdSchema,
  protocol: v.number(),
  binary: v.optional(v.boolean()),
});

/**
 * Runner → relay, once, after a `welcome` with `binary: true`: from now on the relay sends this
 * runner stdin as binary input frames (control messages stay JSON). The runner sends its output as
 * binary output frames; the relay takes JSON `stdout` from it as well. `transfers: true`: it takes
 * file transfers (upload frames and the transfer messages); without it the relay refuses them.
 */
export const BinarySchema = v.object({
  type: v.literal("binary"),
  transfers: v.optional(v.boolean()),
});

/** Either side: reject or report a problem without closing. */
export const ErrorSchema = v.object({
  type: v.literal("error"),
  sessionId: v.optional(SessionIdSchema),
  code: v.string(),
  message: v.string(),
});

/** Messages the relay sends a runner. */
export const RelayToRunnerSchema = v.variant("type", [
  StdinSchema,
  ResizeSchema,
  RecordSchema,
  PickCwdSchema,
  AckSchema,
  KillSchema,
  AttachSchema,
  DetachSchema,
  WelcomeSchema,
  PongSchema,
  ErrorSchema,
  UploadStartSchema,
  UploadCancelSchema,
  DownloadAcceptSchema,
  DownloadAckSchema,
  DownloadCancelSchema,
]);
/** Messages the relay sends a runner: the JSON ones, and the pieces of uploads from upload frames. */
export type RelayToRunner = JsonRelayToRunner | UploadData;
/** The messages the relay sends a runner as JSON. */
export type JsonRelayToRunner = v.InferOutput<typeof RelayToRunnerSchema>;

/** Messages a runner sends the relay. */
export const RunnerToRelaySchema = v.variant("type", [
  StdoutSchema,
  MetaSchema,
  AttachedSchema,
  EndSchema,
  PingSchema,
  ErrorSchema,
  BinarySchema,
  UploadAckSchema,
  UploadDoneSchema,
  DownloadOfferSchema,
  DownloadDoneSchema,
  TransferErrorSchema,
]);
/** Messages a runner sends the relay: the JSON ones, and the pieces of downloads sent as download frames. */
export type RunnerToRelay = JsonRunnerToRelay | DownloadData;
/** The messages a runner sends the relay as JSON. */
export type JsonRunnerToRelay = v.InferOutput<typeof RunnerToRelaySchema>;

/** Version of this protocol, sent in {@linkcode WelcomeSchema}: 2 has binary frames. */
export const PROTOCOL_VERSION = 2;

/* ------------------------------------------------------------------ */
/* Meta lines.                                                          */
/* ------------------------------------------------------------------ */

/**
 * Builders for the `data` of `meta` messages. Each line is `coda:<kind>:<value>`.
 * They are out-of-band: a client shows them as UI, never as terminal text.
 */
export const MetaLine = {
  /** Sent to each client on attach. */
  session: (sessionId: string): string => `coda:session:${sessionId}`,
  /**
   * The session's working directory: on attach, then each time it changes
   * (as the shell reports it with shell integration, else after `pick-cwd`).
   */
  cwd: (path: string): string => `coda:cwd:${path}`,
  /** The shell exited; the session is over. `null` when killed by a signal. */
  exit: (code: number | null): string => `coda:exit:${code ?? "signal"}`,
  /** Recording state changed. */
  record: (on: boolean): string => `coda:record:${on ? "on" : "off"}`,
  /** A request failed (bad `pick-cwd` path, a busy shell, …); the session is unchanged. */
  error: (message: string): string => `coda:error:${message}`,
  /**
   * The stream restarted at offset 0 (the runner lost the old process): clear
   * the screen and reset the local offset.
   */
  reset: (): string => "coda:reset",
  /** Bytes `[from, to)` were evicted from the replay buffer before this client got them. */
  gap: (from: number, to: number): string => `coda:gap:${from}-${to}`,
  /** Relay-side link state, see {@linkcode RelayState}. */
  relay: (state: RelayState): string => `coda:relay:${state}`,
  /**
   * The session is over and no shell was started for this attach, see {@linkcode EndedReason};
   * the runner sends `end` right after it.
   */
  ended: (reason: EndedReason): string => `coda:ended:${reason}`,
} as const;

/**
 * Why a runner answered an attach with `coda:ended:<reason>`:
 * - `runner-restarted`: the client resumes (`offset` > 0, or `resume`) a session this runner
 *   process never ran, so its shell went with an earlier process. Starting a new one under the old id would show a
 *   fresh prompt as if it were the old shell.
 */
export const EndedReason = { RUNNER_RESTARTED: "runner-restarted" } as const;
/** A reason of `coda:ended:<reason>`. */
export type EndedReason = typeof EndedReason[keyof typeof EndedReason];

/**
 * What the relay tells a client about its runner, as `coda:relay:<state>`:
 * - `waiting`: no runner online yet; the relay waits up to 60 s.
 * - `online`: a runner is attached to this session.
 * - `offline`: the runner link dropped; the relay waits up to 60 s for it.
 * - `revoked`: the runner's token was revoked; the session will close.
 */
export type RelayState = "waiting" | "online" | "offline" | "revoked";

/** A parsed meta line. */
export interface ParsedMeta {
  /** `session`, `cwd`, `exit`, `record`, `error`, `reset`, `gap`, `relay` or `ended`. */
  kind: string;
  /** Everything after the second colon (may itself contain colons). */
  value: string;
}

/** Splits `coda:<kind>:<value>`; returns `null` for anything else. */
export function parseMetaLine(line: string): ParsedMeta | null {
  const match = /^coda:([a-z-]+)(?::([\s\S]*))?$/.exec(line);
  if (!match) return null;
  return { kind: match[1], value: match[2] ?? "" };
}

/* ------------------------------------------------------------------ */
/* Close codes.                                                         */
/* ------------------------------------------------------------------ */

/** WebSocket close codes used by the relay, the runner's `serve` mode and clients. */
export const CloseCode = {
  /** The session ended (the shell exited or was killed). */
  NORMAL: 1000,
  /** The peer kept sending malformed or forbidden frames. */
  POLICY: 1008,
  /** A frame was larger than {@linkcode MAX_FRAME_BYTES}. */
  TOO_BIG: 1009,
  /** Unexpected server error. */
  INTERNAL: 1011,
  /** The server is restarting; reconnect. */
  RESTART: 1012,
  /**
   * Missing, malformed, expired, wrong-type or reused token: do not retry with it. Reason
   * `signed out`: the user signed out after the link opened; sign in again for a new token.
   */
  UNAUTHORIZED: 4401,
  /** The runner token was revoked, or the runner is not this user's. */
  REVOKED: 4403,
  /** No runner came online (or came back) in time. */
  NO_RUNNER: 4404,
  /**
   * The session's runner is connected to another relay instance: reconnect (with a new token and
   * your offset) and the proxy routes you there.
   */
  ON_ANOTHER_INSTANCE: 4307,
  /**
   * The session's runner is connected to another relay instance and no proxy routes there (the
   * relay is not behind Fly's proxy): a deployment problem, retried with backoff.
   */
  NO_ROUTE: 4308,
  /** Another connection for the same runner replaced this one. */
  REPLACED: 4409,
  /** The client fell too far behind; reconnect and resume from its offset. */
  SLOW_CONSUMER: 4413,
  /** The client sent upload bytes past {@linkcode TRANSFER_WINDOW_BYTES} beyond the runner's last `upload-ack`. */
  TRANSFER_WINDOW: 4429,
} as const;

/**
 * The reasons sent with the close codes a peer acts on, the same from the relay and from
 * `coda-runner serve` (which mounts the relay's broker).
 */
export const CloseReason = {
  /** With {@linkcode CloseCode.NORMAL}, to a session's clients. */
  SESSION_ENDED: "session ended",
  /** With {@linkcode CloseCode.POLICY}. */
  POLICY: "too many malformed or forbidden frames",
  /** With {@linkcode CloseCode.TOO_BIG}. */
  TOO_BIG: "frame too big",
  /** With {@linkcode CloseCode.SLOW_CONSUMER}. */
  SLOW_CONSUMER: "slow consumer, resume from your offset",
  /** With {@linkcode CloseCode.ON_ANOTHER_INSTANCE}. */
  ON_ANOTHER_INSTANCE: "runner is on another instance, reconnect",
  /** With {@linkcode CloseCode.NO_ROUTE}. */
  NO_ROUTE: "runner is on another instance and no proxy routes there (set DEVMODE_FLY_REPLAY on Fly)",
  /** With {@linkcode CloseCode.REVOKED}, to the viewers of a share that was revoked or expired. */
  SHARE_REVOKED: "share revoked",
  /** With {@linkcode CloseCode.REPLACED}. */
  REPLACED: "replaced by a newer connection",
  /** With {@linkcode CloseCode.TRANSFER_WINDOW}. */
  TRANSFER_WINDOW: "upload sent past its window",
} as const;

/* ------------------------------------------------------------------ */
/* Client link negotiation.                                             */
/* ------------------------------------------------------------------ */

/**
 * Query parameters a client may add to `/client?token=…`. All optional; a
 * client that sends none gets the spec's behaviour (JSON text frames, the
 * whole replay buffer on attach, the relay acknowledging on its behalf).
 */
export interface ClientLinkOptions {
  /** Resume: the number of output bytes the client already has. */
  offset?: number;
  /** Initial size, used if this attach creates the session. */
  cols?: number;
  rows?: number;
  /** `true`: the client sends {@linkcode AckSchema} messages and the relay does not ack for it. */
  ack?: boolean;
}

/** Reads {@linkcode ClientLinkOptions} from a URL's query; invalid values are an error. */
export function parseClientLinkOptions(
  params: URLSearchParams,
): { ok: true; value: ClientLinkOptions } | { ok: false; error: string } {
  const value: ClientLinkOptions = {};
  const int = (name: string, min: number, max: number): number | undefined | string => {
    const raw = params.get(name);
    if (raw === null || raw === "") return undefined;
    if (!/^\d+$/.test(raw)) return `${name} must be a whole number`;
    const n = Number(raw);
    if (n < min || n > max) return `${name} must be between ${min} and ${max}`;
    return n;
  };
  for (
    const [name, min, max] of [["offset", 0, Number.MAX_SAFE_INTEGER], ["cols", 1, 1000], [
      "rows",
      1,
      1000,
    ]] as const
  ) {
    const n = int(name, min, max);
    if (typeof n === "string") return { ok: false, error: n };
    if (n !== undefined) value[name] = n;
  }
  const ack = params.get("ack");
  if (ack !== null) {
    if (ack !== "0" && ack !== "1") return { ok: false, error: "ack must be 0 or 1" };
    value.ack = ack === "1";
  }
  return { ok: true, value };
}

/** Serializes a URL's client-link query (inverse of {@linkcode parseClientLinkOptions}). */
export function clientLinkQuery(token: string, options: ClientLinkOptions = {}): string {
  const params = new URLSearchParams({ token });
  if (options.offset !== undefined) params.set("offset", String(options.offset));
  if (options.cols !== undefined) params.set("cols", String(options.cols));
  if (options.rows !== undefined) params.set("rows", String(options.rows));
  if (options.ack !== undefined) params.set("ack", options.ack ? "1" : "0");
  return params.toString();
}

/* ------------------------------------------------------------------ */
/* Parsing.                                                             */
/* ------------------------------------------------------------------ */

/** Result of decoding a frame: the message, or why it was rejected. */
export type Decoded<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * The first of valibot's issues as one line, `path: message` (`message` alone at the top level);
 * the one wording for frames, API bodies and config files alike.
 */
export function describeIssues(issues: readonly [v.BaseIssue<unknown>, ...v.BaseIssue<unknown>[]]): string {
  const [issue] = issues;
  const path = v.getDotPath(issue);
  return path ? `${path}: ${issue.message}` : issue.message;
}

/** Parses a JSON text frame against `schema`; never throws. */
export function decode<S extends v.GenericSchema>(
  schema: S,
  frame: unknown,
): Decoded<v.InferOutput<S>> {
  if (typeof frame !== "string") return { ok: false, error: "expected a JSON text frame" };
  let json: unknown;
  try {
    json = JSON.parse(frame);
  } catch {
    return { ok: false, error: "frame is not valid JSON" };
  }
  const result = v.safeParse(schema, json);
  if (!result.success) return { ok: false, error: describeIssues(result.issues) };
  return { ok: true, value: result.output };
}

/** Parses a client's frame. */
export const decodeClientMessage = (frame: unknown): Decoded<ClientMessage> =>
  decode(ClientMessageSchema, frame);
/** Parses a frame the relay sent a runner. */
export const decodeRelayToRunner = (frame: unknown): Decoded<JsonRelayToRunner> =>
  decode(RelayToRunnerSchema, frame);
/** Parses a frame a runner sent the relay. */
export const decodeRunnerToRelay = (frame: unknown): Decoded<JsonRunnerToRelay> =>
  decode(RunnerToRelaySchema, frame);
/** Parses a frame a client received. */
export const decodeServerMessage = (frame: unknown): Decoded<ServerMessage> =>
  decode(ServerMessageSchema, frame);

/** Any message sent as JSON: everything but the file pieces, which travel as binary frames. */
export type JsonMessage = Exclude<
  ClientMessage | ServerMessage | RelayToRunner | RunnerToRelay,
  UploadData | DownloadData
>;

/** Serializes any protocol message sent as JSON. */
export function encode(message: JsonMessage): string {
  return JSON.stringify(message);
}
