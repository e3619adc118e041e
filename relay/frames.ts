/**
 * Frame-level helpers shared by both links: sizes, safe sends and closes.
 *
 * @module
 */
import { clientMayClose, encode } from "./protocol.ts";
import { utf8Length } from "./utf8.ts";

/** Size in bytes of a received WebSocket message. */
export function frameSize(data: unknown): number {
  if (typeof data === "string") return utf8Length(data);
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (ArrayBuffer.isView(data)) return data.byteLength;
  if (data instanceof Blob) return data.size;
  return 0;
}

/**
 * Sockets {@linkcode closeSocket} waits on to send what was queued for them
 * before their close frame; nothing more is written to them.
 */
const flushing = new WeakSet<WebSocket>();

/**
 * Sockets whose peer answers a `closing` message by closing the link itself
 * (`ack=1` clients); see {@linkcode expectClosingAnswer}.
 */
const answersClosing = new WeakSet<WebSocket>();

/**
 * Marks `socket`'s peer as one that answers a `closing` message by closing the
 * link itself with its code and reason: {@linkcode closeSocket} then announces
 * its closes (those with a code a client may send) instead of sending the
 * close frame. Deno's server WebSocket drops the connection when a frame from
 * its peer arrives after it sent its close frame, so a peer that keeps sending
 * (acks, pings) would get a reset instead of the code; a peer that closes
 * first has nothing in flight behind its close frame.
 */
export function expectClosingAnswer(socket: WebSocket): void {
  answersClosing.add(socket);
}

/** How often a socket waiting to flush before its close is looked at. */
const FLUSH_POLL_MS = 10;

/** Whether `socket` can still be written to (open, and not being closed). */
export function isOpen(socket: WebSocket): boolean {
  return socket.readyState === WebSocket.OPEN && !flushing.has(socket);
}

/**
 * Closes `socket` with `code` and `reason` unless it is already closing;
 * never throws. The close frame goes out after what was already queued on
 * the socket has been written (at most `graceMs` later): a close issued with
 * frames still queued could reach the peer before them, or as a reset, and a
 * client would not learn that it should resume (4413) or that its session
 * ended (1000). A peer that does not answer the close frame within a further
 * `graceMs` has its connection dropped: Deno's server WebSocket otherwise
 * waits for that answer forever, holding the descriptor and never firing
 * `close` (denoland/deno#27924).
 *
 * A peer marked with {@linkcode expectClosingAnswer} gets a `closing` message
 * after what was queued instead, and closes the link itself; one that has not
 * within `graceMs` is closed as above.
 */
export function closeSocket(socket: WebSocket, code: number, reason: string, graceMs: number): void {
  if (socket.readyState === WebSocket.CLOSING || socket.readyState === WebSocket.CLOSED) return;
  if (flushing.has(socket)) return;
  if (socket.readyState === WebSocket.OPEN && answersClosing.has(socket) && clientMayClose(code)) {
    announceClose(socket, code, reason, graceMs);
    return;
  }
  if (socket.readyState !== WebSocket.OPEN || socket.bufferedAmount === 0) {
    closeNow(socket, code, reason, graceMs);
    return;
  }
  flushing.add(socket);
  const deadline = Date.now() + graceMs;
  const poll = () => {
    if (socket.readyState !== WebSocket.OPEN) return;
    if (socket.bufferedAmount > 0 && Date.now() < deadline) {
      setTimeout(poll, FLUSH_POLL_MS);
      return;
    }
    flushing.delete(socket);
    closeNow(socket, code, reason, graceMs);
  };
  setTimeout(poll, FLUSH_POLL_MS);
}

function announceClose(socket: WebSocket, code: number, reason: string, graceMs: number): void {
  try {
    socket.send(encode({ type: "closing", code, reason }));
  } catch {
    closeNow(socket, code, reason, graceMs);
    return;
  }
  // Nothing more is sent: the peer closes once it has read up to the notice.
  flushing.add(socket);
  const timer = setTimeout(() => {
    flushing.delete(socket);
    if (socket.readyState === WebSocket.OPEN) closeNow(socket, code, reason, graceMs);
  }, graceMs);
  socket.addEventListener("close", () => clearTimeout(timer), { once: true });
}

function closeNow(socket: WebSocket, code: number, reason: string, graceMs: number): void {
  try {
    socket.close(code, reason);
  } catch {
    // The peer vanished while we were closing; nothing left to do.
  }
  const timer = setTimeout(() => dropConnection(socket), graceMs);
  socket.addEventListener("close", () => clearTimeout(timer), { once: true });
}

/** The runtime's resource table, reached through `Deno[Deno.internal]` when this Deno has it. */
type RuntimeInternals = { core?: { tryClose?: (rid: number) => void } };

/**
 * Drops the connection under a server WebSocket that is stuck closing. No
 * public API does it, so this closes the socket's resource through the
 * runtime's internals, checked at each step: on a Deno without them nothing
 * happens, and the socket lingers until its peer goes.
 */
function dropConnection(socket: WebSocket): void {
  if (socket.readyState === WebSocket.CLOSED) return;
  const internalKey = (Deno as unknown as { internal?: symbol }).internal;
  const internals = internalKey
    ? (Deno as unknown as Record<symbol, RuntimeInternals>)[internalKey]
    : undefined;
  const ridKey = Object.getOwnPropertySymbols(socket).find((key) => key.description === "[[rid]]");
  const rid = ridKey ? (socket as unknown as Record<symbol, unknown>)[ridKey] : undefined;
  if (typeof rid !== "number" || typeof internals?.core?.tryClose !== "function") return;
  try {
    internals.core.tryClose(rid);
  } catch {
    // Already gone.
  }
}

/** Sends `frame` (text, or a binary frame) if the socket is open; returns whether it was handed to the socket. */
export function trySend(socket: WebSocket, frame: string | Uint8Array<ArrayBuffer>): boolean {
  if (!isOpen(socket)) return false;
  try {
    socket.send(frame);
    return true;
  } catch {
    return false;
  }
}
