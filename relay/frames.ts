/**
 * Frame-level helpers shared by both links: sizes, safe sends and closes.
 *
 * @module
 */
import { utf8Length } from "./utf8.ts";

/** Size in bytes of a received WebSocket message. */
export function frameSize(data: unknown): number {
  if (typeof data === "string") return utf8Length(data);
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (ArrayBuffer.isView(data)) return data.byteLength;
  if (data instanceof Blob) return data.size;
  return 0;
}

/** Whether `socket` can still be written to. */
export function isOpen(socket: WebSocket): boolean {
  return socket.readyState === WebSocket.OPEN;
}

/** Closes `socket` with `code` and `reason` unless it is already closing; never throws. */
export function closeSocket(socket: WebSocket, code: number, reason: string): void {
  if (socket.readyState === WebSocket.CLOSING || socket.readyState === WebSocket.CLOSED) return;
  try {
    socket.close(code, reason);
  } catch {
    // The peer vanished while we were closing; nothing left to do.
  }
}

/** Sends `frame` if the socket is open; returns whether it was handed to the socket. */
export function trySend(socket: WebSocket, frame: string): boolean {
  if (!isOpen(socket)) return false;
  try {
    socket.send(frame);
    return true;
  } catch {
    return false;
  }
}
