/**
 * The runner ↔ session holder protocol, over the holder's Unix socket.
 *
 * A session holder (`holder.ts`) is a small detached process, the runner's own
 * program in `hold` mode, that owns one session: its PTY, replay ring and
 * metadata. The runner connects to it and relays the relay link's messages
 * for that session; a restarted runner connects again and carries on.
 *
 * Framing: every frame is a 4-byte big-endian length of what follows, a kind
 * byte, then the payload:
 * - {@linkcode FrameKind.MESSAGE}: a JSON message;
 * - {@linkcode FrameKind.MESSAGE_WITH_BYTES}: a 4-byte length of the JSON, the
 *   JSON message, then the bytes of its `data` field (file transfers);
 * - {@linkcode FrameKind.OUTPUT}: session output, as the relay's binary output
 *   frame (`@coda/relay/protocol`), so the runner forwards it without JSON.
 *
 * The messages are the relay link's own (`RelayToRunner` towards the holder,
 * `RunnerToRelay` back) plus the `holder-*` ones below. The first message on
 * every connection is the holder's {@linkcode HolderHelloSchema}, whose shape
 * every protocol version keeps: a runner that finds another version ends that
 * holder by its pid rather than speaking to it.
 *
 * @module
 */
import * as v from "valibot";
import {
  decodeBinaryFrame,
  type Decoded,
  describeIssues,
  DownloadDataSchema,
  encodeOutputFrame,
  MAX_FRAME_BYTES,
  prefixInPlace,
  type RelayToRunner,
  RelayToRunnerSchema,
  type RunnerToRelay,
  RunnerToRelaySchema,
  SessionIdSchema,
  UploadDataSchema,
} from "@coda/relay/protocol";
import { concatBytes } from "@coda/relay/bytes";
import type { OutputChunk } from "./session.ts";

/**
 * The version of this protocol. A holder and a runner of different versions
 * never speak past the hello: the runner ends the holder.
 */
export const HOLDER_PROTOCOL_VERSION = 1;

/** Frame kinds (the byte after the length). */
export const FrameKind = { MESSAGE: 0, MESSAGE_WITH_BYTES: 1, OUTPUT: 2 } as const;

/** The largest frame either side accepts: a relay frame and its envelope. */
export const MAX_HOLDER_FRAME_BYTES = MAX_FRAME_BYTES + 64 * 1024;

const PREFIX_BYTES = 5;
/** Decoded output keeps a view of its read buffer only when that buffer is at most this many times its size. */
const PIN_RATIO = 4;

/**
 * What a holder runs its session with: the runner's session settings, minus what stays in the runner.
 * The same for every session of a runner, so a spare has them before it has a session.
 */
export const HolderSpecSchema = v.object({
  /** The runner that started the holder: only a runner with this id adopts it again. */
  runnerId: v.string(),
  env: v.record(v.string(), v.string()),
  home: v.string(),
  ttyCwd: v.optional(v.string()),
  /** How long the session lives without clients, ms. */
  graceMs: v.pipe(v.number(), v.integer(), v.minValue(1)),
  /** How long the holder lives without a runner, ms. */
  orphanMs: v.pipe(v.number(), v.integer(), v.minValue(1)),
  replayBytes: v.pipe(v.number(), v.integer(), v.minValue(1)),
  /** The largest file transferred into or out of the session (default: the runner's default cap). */
  transferMaxBytes: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
  tmux: v.optional(v.object({ binary: v.string(), socket: v.string() })),
  /** The runner's config file, for directories remembered per idea. */
  configPath: v.optional(v.string()),
  recording: v.optional(v.object({ appUrl: v.string(), runnerToken: v.string() })),
});
/** See {@linkcode HolderSpecSchema}. */
export type HolderSpec = v.InferOutput<typeof HolderSpecSchema>;

/**
 * Holder → runner, first on every connection. Every version of the protocol
 * keeps these fields.
 */
export const HolderHelloSchema = v.object({
  type: v.literal("holder-hello"),
  protocol: v.number(),
  /** The runner version the holder runs. */
  version: v.string(),
  pid: v.number(),
  /** The session it holds; absent while it waits for one (a spare). */
  sessionId: v.optional(SessionIdSchema),
  runnerId: v.optional(v.string()),
  /** The shell's pid (or tmux client's). */
  shellPid: v.optional(v.number()),
});
/** See {@linkcode HolderHelloSchema}. */
export type HolderHello = v.InferOutput<typeof HolderHelloSchema>;

/** Runner → holder, first on every connection: who connects and why. */
export const HolderJoinSchema = v.object({
  type: v.literal("holder-join"),
  protocol: v.number(),
  /** `runner`: relays the session (one at a time; a new one replaces the old). `status`: asks and leaves. */
  role: v.picklist(["runner", "status"]),
});

/**
 * Runner → its own spare holder, once joined: the settings of the session it will hold, so that the
 * assignment has nothing left to decode or build while a client waits for its shell.
 */
export const HolderPrepareSchema = v.object({
  type: v.literal("holder-prepare"),
  spec: HolderSpecSchema,
});

/**
 * Runner → a prepared spare holder: the session it holds from now on, started by the `attach` that
 * follows. Only the runner that started a spare prepares and assigns it, so these two messages never
 * cross versions.
 */
export const HolderAssignSchema = v.object({
  type: v.literal("holder-assign"),
  sessionId: SessionIdSchema,
});

/** Runner → holder: the runner's relay link went up or down. */
export const HolderLinkSchema = v.object({
  type: v.literal("holder-link"),
  up: v.boolean(),
});

/** Runner → holder: end the session for good (logout, revocation, another runner's holder). */
export const HolderStopSchema = v.object({ type: v.literal("holder-stop") });

/** Runner → holder: describe yourself ({@linkcode HolderStatusSchema} answers). */
export const HolderStatusRequestSchema = v.object({ type: v.literal("holder-status-request") });

/** Holder → runner: what `coda-runner status` lists. */
export const HolderStatusSchema = v.object({
  type: v.literal("holder-status"),
  sessionId: v.optional(SessionIdSchema),
  pid: v.number(),
  shellPid: v.optional(v.number()),
  cwd: v.optional(v.string()),
  startedAt: v.number(),
  clients: v.number(),
  /** A runner is connected. */
  runner: v.boolean(),
  version: v.string(),
});
/** See {@linkcode HolderStatusSchema}. */
export type HolderStatus = v.InferOutput<typeof HolderStatusSchema>;

/** Holder → runner: a log line of the holder, for the runner's log. */
export const HolderLogSchema = v.object({
  type: v.literal("holder-log"),
  level: v.picklist(["debug", "info", "warn", "error"]),
  message: v.string(),
  fields: v.optional(v.record(v.string(), v.unknown())),
});
/** See {@linkcode HolderLogSchema}. */
export type HolderLog = v.InferOutput<typeof HolderLogSchema>;

/** Everything a runner sends a holder. */
export const ToHolderSchema = v.variant("type", [
  HolderJoinSchema,
  HolderPrepareSchema,
  HolderAssignSchema,
  HolderLinkSchema,
  HolderStopSchema,
  HolderStatusRequestSchema,
  RelayToRunnerSchema,
  UploadDataSchema,
]);
/** Everything a runner sends a holder. */
export type ToHolder = v.InferOutput<typeof ToHolderSchema>;

/** Everything a holder sends its runner, output frames aside. */
export const FromHolderSchema = v.variant("type", [
  HolderHelloSchema,
  HolderStatusSchema,
  HolderLogSchema,
  RunnerToRelaySchema,
  DownloadDataSchema,
]);
/** Everything a holder sends its runner, output frames aside. */
export type FromHolder = v.InferOutput<typeof FromHolderSchema>;

/**
 * One decoded frame: a message, or session output (`frame`: the relay binary frame it came as, which
 * the runner forwards as it is).
 */
export type HolderFrame<M> =
  | { kind: "message"; message: M }
  | { kind: "output"; chunk: OutputChunk; frame: Uint8Array };

function prefix(kind: number, length: number): Uint8Array {
  const bytes = new Uint8Array(PREFIX_BYTES);
  new DataView(bytes.buffer).setUint32(0, length + 1);
  bytes[4] = kind;
  return bytes;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Encodes a message. A `data` field holding bytes travels after the JSON
 * rather than inside it. Returns the frame's parts, to be written in order.
 */
export function encodeHolderMessage(
  message: ToHolder | FromHolder | RelayToRunner | RunnerToRelay,
): Uint8Array[] {
  const data = (message as { data?: unknown }).data;
  if (!(data instanceof Uint8Array)) {
    const json = encoder.encode(JSON.stringify(message));
    return [prefix(FrameKind.MESSAGE, json.length), json];
  }
  const json = encoder.encode(JSON.stringify({ ...message, data: undefined }));
  const head = prefix(FrameKind.MESSAGE_WITH_BYTES, 4 + json.length + data.length);
  const jsonLength = new Uint8Array(4);
  new DataView(jsonLength.buffer).setUint32(0, json.length);
  return [head, jsonLength, json, data];
}

/**
 * Encodes session output as the relay's binary output frame: one array when the session's buffer has
 * room for the holder frame's prefix too (its reads' buffer, which nothing copies on the way).
 */
export function encodeHolderOutput(chunk: OutputChunk): Uint8Array[] {
  const frame = encodeOutputFrame(chunk);
  const head = prefix(FrameKind.OUTPUT, frame.length);
  const joined = prefixInPlace(frame, head);
  return joined ? [joined] : [head, frame];
}

/**
 * Splits a byte stream into frames and decodes them against `schema`. A frame
 * that does not decode, or is too large, is an error: the connection it came
 * on is not to be trusted any further.
 */
export class HolderFrameReader<M> {
  readonly #schema: v.GenericSchema<unknown, M>;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;

  constructor(schema: v.GenericSchema<unknown, M>) {
    this.#schema = schema;
  }

  /** Feeds bytes read from the socket; returns the frames they complete. */
  push(bytes: Uint8Array): Decoded<HolderFrame<M>>[] {
    this.#pending.push(bytes);
    this.#pendingBytes += bytes.length;
    const frames: Decoded<HolderFrame<M>>[] = [];
    while (this.#pendingBytes >= 4) {
      const head = this.#peek(4);
      const length = new DataView(head.buffer, head.byteOffset, 4).getUint32(0);
      if (length < 1 || length > MAX_HOLDER_FRAME_BYTES) {
        frames.push({ ok: false, error: `holder frame of ${length} bytes` });
        this.#pending = [];
        this.#pendingBytes = 0;
        return frames;
      }
      if (this.#pendingBytes < 4 + length) break;
      const frame = this.#take(4 + length).subarray(4);
      frames.push(this.#decode(frame));
    }
    return frames;
  }

  #decode(frame: Uint8Array): Decoded<HolderFrame<M>> {
    const kind = frame[0];
    let body = frame.subarray(1);
    if (kind === FrameKind.OUTPUT) {
      // Output is kept as a view into what the socket read into (a link's send queue holds it), and with it
      // all of that buffer: output much smaller than its buffer is copied out rather than pin the rest.
      // Messages keep nothing of it (their file bytes are copied out below).
      if (body.byteLength * PIN_RATIO < body.buffer.byteLength) body = body.slice();
      const decoded = decodeBinaryFrame(body);
      if (!decoded.ok) return decoded;
      if (decoded.value.type !== "output") {
        return { ok: false, error: "holder frame: input where output belongs" };
      }
      const { type: _type, ...chunk } = decoded.value;
      return { ok: true, value: { kind: "output", chunk, frame: body } };
    }
    let json: Uint8Array = body;
    let data: Uint8Array | undefined;
    if (kind === FrameKind.MESSAGE_WITH_BYTES) {
      if (body.length < 4) return { ok: false, error: "holder frame: shorter than its JSON length" };
      const jsonLength = new DataView(body.buffer, body.byteOffset, 4).getUint32(0);
      if (4 + jsonLength > body.length) {
        return { ok: false, error: "holder frame: JSON longer than the frame" };
      }
      json = body.subarray(4, 4 + jsonLength);
      data = body.slice(4 + jsonLength);
    } else if (kind !== FrameKind.MESSAGE) {
      return { ok: false, error: `holder frame: unknown kind ${kind}` };
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(decoder.decode(json));
    } catch {
      return { ok: false, error: "holder frame: not valid JSON" };
    }
    if (data !== undefined && typeof parsed === "object" && parsed !== null) {
      (parsed as { data?: Uint8Array }).data = data;
    }
    const result = v.safeParse(this.#schema, parsed);
    if (!result.success) return { ok: false, error: `holder frame: ${describeIssues(result.issues)}` };
    return { ok: true, value: { kind: "message", message: result.output } };
  }

  /** The first `count` pending bytes, without consuming them. */
  #peek(count: number): Uint8Array {
    if (this.#pending[0].length >= count) return this.#pending[0];
    return this.#merge();
  }

  /** Removes and returns the first `count` pending bytes. */
  #take(count: number): Uint8Array {
    const first = this.#pending[0].length >= count ? this.#pending[0] : this.#merge();
    const taken = first.subarray(0, count);
    const rest = first.subarray(count);
    if (rest.length > 0) this.#pending[0] = rest;
    else this.#pending.shift();
    this.#pendingBytes -= count;
    return taken;
  }

  #merge(): Uint8Array {
    const merged = concatBytes(this.#pending, this.#pendingBytes);
    this.#pending = [merged];
    return merged;
  }
}
