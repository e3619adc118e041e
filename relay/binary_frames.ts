/**
 * Binary frames: terminal bytes on the wire without JSON. A few header bytes
 * (type, flags, the session id, an optional client id and, for output, the
 * byte offset) followed by the raw PTY bytes, so nobody parses, escapes or
 * counts UTF-8 on the data path. Control messages (`meta`, `resize`,
 * `attach`, `ack`, `ping`, …) stay JSON text frames, see `protocol.ts`, which
 * re-exports this module; `PROTOCOL.md` ("Binary frames") is the prose version.
 *
 * Layout (integers big-endian):
 *
 * ```
 * output (0x01): type u8 | flags u8 | s u8 | c u8 | offset u64 | sessionId[s] | clientId[c] | bytes…
 * input  (0x02): type u8 | flags u8 | s u8 | c u8 |              sessionId[s] | clientId[c] | bytes…
 * upload (0x03), download (0x04):
 *                type u8 | flags u8 | s u8 | c u8 | transferId u32 | offset u64 | sessionId[s] | clientId[c] | bytes…
 * ```
 *
 * Decoding never copies the payload: `data` is a view into the frame.
 *
 * @module
 */
import type { Decoded } from "./protocol.ts";

/** The WebSocket subprotocol a client offers (`Sec-WebSocket-Protocol`) to get binary output frames. */
export const BINARY_SUBPROTOCOL = "coda.v2";

/** Session ids: URL-safe, 8 to 64 characters (the one definition, used by `SessionIdSchema` too). */
export const SESSION_ID_PATTERN: RegExp = /^[A-Za-z0-9_-]{8,64}$/;

/** Client ids in binary frames: URL-safe, 1 to 64 characters (the relay's are UUIDs). */
export const CLIENT_ID_PATTERN: RegExp = /^[A-Za-z0-9_-]{1,64}$/;

/** The first byte of a binary frame. */
export const BinaryFrameType = {
  /** PTY output: runner → relay (targeted or broadcast), relay → client. */
  OUTPUT: 0x01,
  /** Stdin bytes: client → relay, relay → runner. */
  INPUT: 0x02,
  /** A piece of a file being uploaded: client → relay, relay → runner (naming the client). */
  UPLOAD: 0x03,
  /** A piece of a file being downloaded: runner → relay (naming the client), relay → client. */
  DOWNLOAD: 0x04,
} as const;

/** Bits of an output frame's flags byte; every other bit must be 0. */
export const OutputFlag = {
  /** Replayed bytes (sent before `attached`), not live output: a terminal must not answer queries in them. */
  REPLAY: 0x01,
} as const;

/** Fixed header bytes before the ids: type, flags, the two id lengths, and the output frame's offset. */
export const OUTPUT_FIXED_HEADER_BYTES = 12;
/** Fixed header bytes of an input frame: type, flags, the two id lengths. */
export const INPUT_FIXED_HEADER_BYTES = 4;
/** Fixed header bytes of an upload or download frame: type, flags, the id lengths, transfer id, offset. */
export const FILE_FIXED_HEADER_BYTES = 16;
/** Largest transfer id (a u32 on the wire); 0 is never used. */
export const MAX_TRANSFER_ID = 2 ** 32 - 1;

/** Offsets are 64-bit on the wire; values past this (2^53 − 1) are refused. */
const MAX_OFFSET = Number.MAX_SAFE_INTEGER;
const TWO_32 = 2 ** 32;

/** PTY output, byte `offset` of the session's stream first. */
export interface OutputFrame {
  type: "output";
  sessionId: string;
  /** Runner → relay: the client it is for (a replay); absent: every live client. Never set towards a client. */
  clientId?: string;
  /** Byte offset of `data[0]` in the session's output stream. */
  offset: number;
  /** Replayed bytes rather than live output. */
  replay: boolean;
  data: Uint8Array;
}

/** Stdin bytes for the PTY. */
export interface InputFrame {
  type: "input";
  sessionId: string;
  /** Relay → runner: the client that typed them. Never set by a client. */
  clientId?: string;
  data: Uint8Array;
}

/**
 * A piece of a file in transfer: `upload` from a client towards the runner, `download` from the
 * runner towards a client. `offset` is the byte offset of `data[0]` in the file.
 */
export interface FileFrame {
  type: "upload" | "download";
  sessionId: string;
  /** The client the transfer belongs to: set between relay and runner, never on a client's link. */
  clientId?: string;
  /** The transfer, 1 to 2^32 − 1: chosen by the client for an upload, by the runner for a download. */
  transferId: number;
  offset: number;
  data: Uint8Array;
}

/** Any binary frame. */
export type BinaryFrame = OutputFrame | InputFrame | FileFrame;

function checkId(id: string, pattern: RegExp, what: string): void {
  if (!pattern.test(id)) {
    throw new RangeError(
      `binary frame: ${what} must be ${what === "sessionId" ? "8" : "1"}-64 characters of [A-Za-z0-9_-]`,
    );
  }
}

function writeAscii(target: Uint8Array, at: number, text: string): void {
  for (let i = 0; i < text.length; i++) target[at + i] = text.charCodeAt(i);
}

/**
 * A buffer made by {@linkcode reserveOutput}: its first bytes are room for a transport's prefix
 * ({@linkcode TRANSPORT_PREFIX_ROOM}) and a frame header.
 */
class ReservedOutputBuffer extends ArrayBuffer {}

/** Room {@linkcode reserveOutput} keeps before the frame header, for {@linkcode prefixInPlace}. */
export const TRANSPORT_PREFIX_ROOM = 8;

/**
 * Room for `length` bytes of broadcast output of `sessionId` (a frame naming no client), in a buffer
 * with room for `capacity` (for {@linkcode reuseOutput}), preceded by room for its frame header and a
 * transport's prefix: {@linkcode encodeOutputFrame} of data that starts
 * there writes the header into that room and sends the bytes where they are, instead of copying them.
 */
export function reserveOutput(sessionId: string, length: number, capacity = length): Uint8Array<ArrayBuffer> {
  const header = TRANSPORT_PREFIX_ROOM + OUTPUT_FIXED_HEADER_BYTES + sessionId.length;
  return new Uint8Array(new ReservedOutputBuffer(header + Math.max(length, capacity)), header, length);
}

/**
 * Room for `length` bytes of broadcast output of `sessionId` again, in the buffer of `reserved` (what
 * {@linkcode reserveOutput} gave for the same session, with a `capacity` of `length` or more): for a
 * caller that knows nothing refers to that buffer's bytes any more. Throws a `RangeError` otherwise.
 */
export function reuseOutput(
  reserved: Uint8Array,
  sessionId: string,
  length: number,
): Uint8Array<ArrayBuffer> {
  const header = TRANSPORT_PREFIX_ROOM + OUTPUT_FIXED_HEADER_BYTES + sessionId.length;
  const buffer = reserved.buffer;
  if (!(buffer instanceof ReservedOutputBuffer) || header + length > buffer.byteLength) {
    throw new RangeError("reuseOutput: not a reserved output buffer with room for that much");
  }
  return new Uint8Array(buffer, header, length);
}

/**
 * `prefix` and `frame` as one array when `frame` was encoded where it lies in a
 * {@linkcode reserveOutput} buffer: the prefix is written into the room before it (a transport's
 * own framing, sent in one write without a copy). Otherwise `undefined`.
 */
export function prefixInPlace(frame: Uint8Array, prefix: Uint8Array): Uint8Array | undefined {
  if (
    !(frame.buffer instanceof ReservedOutputBuffer) || frame.byteOffset !== TRANSPORT_PREFIX_ROOM ||
    prefix.length > TRANSPORT_PREFIX_ROOM
  ) {
    return undefined;
  }
  const start = TRANSPORT_PREFIX_ROOM - prefix.length;
  const joined = new Uint8Array(frame.buffer, start, prefix.length + frame.byteLength);
  joined.set(prefix);
  return joined;
}

/**
 * Encodes an output frame: one copy of `data`, or none when `data` starts right after the header
 * room of a {@linkcode reserveOutput} buffer (the frame is then that buffer, header written in
 * place). Throws a `RangeError` on an invalid field.
 */
export function encodeOutputFrame(frame: Omit<OutputFrame, "type">): Uint8Array<ArrayBuffer> {
  const { sessionId, clientId = "", offset, replay, data } = frame;
  checkId(sessionId, SESSION_ID_PATTERN, "sessionId");
  if (clientId !== "") checkId(clientId, CLIENT_ID_PATTERN, "clientId");
  if (!Number.isInteger(offset) || offset < 0 || offset > MAX_OFFSET) {
    throw new RangeError("binary frame: offset must be a whole number from 0 to 2^53 - 1");
  }
  const header = OUTPUT_FIXED_HEADER_BYTES + sessionId.length + clientId.length;
  const inPlace = data.byteOffset === TRANSPORT_PREFIX_ROOM + header &&
    data.buffer instanceof ReservedOutputBuffer;
  const bytes = inPlace
    ? new Uint8Array(data.buffer as ArrayBuffer, TRANSPORT_PREFIX_ROOM, header + data.byteLength)
    : new Uint8Array(header + data.byteLength);
  bytes[0] = BinaryFrameType.OUTPUT;
  bytes[1] = replay ? OutputFlag.REPLAY : 0;
  bytes[2] = sessionId.length;
  bytes[3] = clientId.length;
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  view.setUint32(4, Math.floor(offset / TWO_32));
  view.setUint32(8, offset % TWO_32);
  writeAscii(bytes, OUTPUT_FIXED_HEADER_BYTES, sessionId);
  writeAscii(bytes, OUTPUT_FIXED_HEADER_BYTES + sessionId.length, clientId);
  if (!inPlace) bytes.set(data, header);
  return bytes;
}

/** Encodes an input frame; one copy of `data`. Throws a `RangeError` on an invalid field. */
export function encodeInputFrame(frame: Omit<InputFrame, "type">): Uint8Array<ArrayBuffer> {
  const { sessionId, clientId = "", data } = frame;
  checkId(sessionId, SESSION_ID_PATTERN, "sessionId");
  if (clientId !== "") checkId(clientId, CLIENT_ID_PATTERN, "clientId");
  const header = INPUT_FIXED_HEADER_BYTES + sessionId.length + clientId.length;
  const bytes = new Uint8Array(header + data.byteLength);
  bytes[0] = BinaryFrameType.INPUT;
  bytes[2] = sessionId.length;
  bytes[3] = clientId.length;
  writeAscii(bytes, INPUT_FIXED_HEADER_BYTES, sessionId);
  writeAscii(bytes, INPUT_FIXED_HEADER_BYTES + sessionId.length, clientId);
  bytes.set(data, header);
  return bytes;
}

/** Encodes an upload or download frame; one copy of `data`. Throws a `RangeError` on an invalid field. */
export function encodeFileFrame(frame: FileFrame): Uint8Array<ArrayBuffer> {
  const { sessionId, clientId = "", transferId, offset, data } = frame;
  checkId(sessionId, SESSION_ID_PATTERN, "sessionId");
  if (clientId !== "") checkId(clientId, CLIENT_ID_PATTERN, "clientId");
  if (!Number.isInteger(transferId) || transferId < 1 || transferId > MAX_TRANSFER_ID) {
    throw new RangeError("binary frame: transferId must be a whole number from 1 to 2^32 - 1");
  }
  if (!Number.isInteger(offset) || offset < 0 || offset > MAX_OFFSET) {
    throw new RangeError("binary frame: offset must be a whole number from 0 to 2^53 - 1");
  }
  const header = FILE_FIXED_HEADER_BYTES + sessionId.length + clientId.length;
  const bytes = new Uint8Array(header + data.byteLength);
  bytes[0] = frame.type === "upload" ? BinaryFrameType.UPLOAD : BinaryFrameType.DOWNLOAD;
  bytes[2] = sessionId.length;
  bytes[3] = clientId.length;
  const view = new DataView(bytes.buffer);
  view.setUint32(4, transferId);
  view.setUint32(8, Math.floor(offset / TWO_32));
  view.setUint32(12, offset % TWO_32);
  writeAscii(bytes, FILE_FIXED_HEADER_BYTES, sessionId);
  writeAscii(bytes, FILE_FIXED_HEADER_BYTES + sessionId.length, clientId);
  bytes.set(data, header);
  return bytes;
}

/** `bytes[from, to)` as a string of Latin-1 characters (ids are ASCII; anything else fails their pattern). */
function readAscii(bytes: Uint8Array, from: number, to: number): string {
  return String.fromCharCode.apply(null, bytes.subarray(from, to) as unknown as number[]);
}

/**
 * Decodes a binary frame, validating every header field; never throws. `data` is a view into
 * `frame` (no copy). An `ArrayBuffer` is what a WebSocket with `binaryType = "arraybuffer"` delivers.
 */
export function decodeBinaryFrame(frame: Uint8Array | ArrayBuffer): Decoded<BinaryFrame> {
  const bytes = frame instanceof Uint8Array ? frame : new Uint8Array(frame);
  const fail = (error: string): Decoded<BinaryFrame> => ({ ok: false, error: `binary frame: ${error}` });
  if (bytes.byteLength < 1) return fail("empty");
  const type = bytes[0];
  const fixed = type === BinaryFrameType.OUTPUT
    ? OUTPUT_FIXED_HEADER_BYTES
    : type === BinaryFrameType.INPUT
    ? INPUT_FIXED_HEADER_BYTES
    : type === BinaryFrameType.UPLOAD || type === BinaryFrameType.DOWNLOAD
    ? FILE_FIXED_HEADER_BYTES
    : 0;
  if (fixed === 0) return fail(`unknown type 0x${type.toString(16).padStart(2, "0")}`);
  if (bytes.byteLength < fixed) {
    return fail(`${bytes.byteLength} bytes, shorter than its ${fixed}-byte header`);
  }
  const flags = bytes[1];
  const allowedFlags = type === BinaryFrameType.OUTPUT ? OutputFlag.REPLAY : 0;
  if ((flags & ~allowedFlags) !== 0) return fail(`unknown flags 0x${flags.toString(16).padStart(2, "0")}`);
  const sessionLength = bytes[2];
  const clientLength = bytes[3];
  const header = fixed + sessionLength + clientLength;
  if (bytes.byteLength < header) {
    return fail(`${bytes.byteLength} bytes, shorter than its ${header}-byte header`);
  }
  const sessionId = readAscii(bytes, fixed, fixed + sessionLength);
  if (!SESSION_ID_PATTERN.test(sessionId)) return fail("sessionId must be 8-64 characters of [A-Za-z0-9_-]");
  let clientId: string | undefined;
  if (clientLength > 0) {
    clientId = readAscii(bytes, fixed + sessionLength, header);
    if (!CLIENT_ID_PATTERN.test(clientId)) return fail("clientId must be 1-64 characters of [A-Za-z0-9_-]");
  }
  const data = bytes.subarray(header);
  if (type === BinaryFrameType.INPUT) {
    return {
      ok: true,
      value: clientId === undefined
        ? { type: "input", sessionId, data }
        : { type: "input", sessionId, clientId, data },
    };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (type === BinaryFrameType.UPLOAD || type === BinaryFrameType.DOWNLOAD) {
    const transferId = view.getUint32(4);
    if (transferId === 0) return fail("transferId must be 1 to 2^32 - 1");
    const high = view.getUint32(8);
    if (high > Math.floor(MAX_OFFSET / TWO_32)) return fail("offset exceeds 2^53 - 1");
    const value: FileFrame = {
      type: type === BinaryFrameType.UPLOAD ? "upload" : "download",
      sessionId,
      transferId,
      offset: high * TWO_32 + view.getUint32(12),
      data,
    };
    if (clientId !== undefined) value.clientId = clientId;
    return { ok: true, value };
  }
  const high = view.getUint32(4);
  if (high > Math.floor(MAX_OFFSET / TWO_32)) return fail("offset exceeds 2^53 - 1");
  const offset = high * TWO_32 + view.getUint32(8);
  const replay = (flags & OutputFlag.REPLAY) !== 0;
  const value: OutputFrame = { type: "output", sessionId, offset, replay, data };
  if (clientId !== undefined) value.clientId = clientId;
  return { ok: true, value };
}
