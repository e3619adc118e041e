/**
 * What both link handlers share.
 *
 * @module
 */
import type { RelayBackend } from "./backend.ts";
import type { Broker } from "./broker.ts";
import type { RelayLimits } from "./limits.ts";
import type { RelayLog } from "./log.ts";
import type { RelayMetrics } from "./metrics.ts";

/** Everything a link handler needs. */
export interface RelayContext {
  jwtSecret: Uint8Array;
  backend: RelayBackend;
  allowedOrigins: readonly string[];
  now: () => number;
  limits: RelayLimits;
  metrics: RelayMetrics;
  log: RelayLog;
  broker: Broker;
  /** Every open socket, authenticated or not, so shutdown can close and await them. */
  sockets: Set<WebSocket>;
  /** Resolves each socket's close, for shutdown. */
  closed: Map<WebSocket, Promise<void>>;
}

/** A JSON error response (`{error}`) for requests refused before the upgrade. */
export function jsonError(status: number, error: string): Response {
  return Response.json({ error }, { status });
}

/** Refuses what is not a WebSocket upgrade, or comes from a foreign origin. */
export function checkUpgrade(ctx: RelayContext, req: Request): Response | null {
  if (req.method !== "GET") return jsonError(405, "use GET with a WebSocket upgrade");
  const origin = req.headers.get("origin");
  if (origin !== null && !ctx.allowedOrigins.includes(origin)) {
    ctx.metrics.authFailure(new URL(req.url).pathname === "/runner" ? "runner" : "client", "origin");
    return jsonError(403, "origin not allowed");
  }
  if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return jsonError(400, "expected a WebSocket upgrade");
  }
  return null;
}

/** Tracks `socket` until it closes, so shutdown can wait for it. */
export function track(ctx: RelayContext, socket: WebSocket): void {
  ctx.sockets.add(socket);
  ctx.closed.set(
    socket,
    new Promise((resolve) => {
      socket.addEventListener("close", () => {
        ctx.sockets.delete(socket);
        ctx.closed.delete(socket);
        resolve();
      }, { once: true });
    }),
  );
}

/** Upgrades `req`, or answers 400 when its WebSocket handshake headers are unusable. */
export function upgrade(
  req: Request,
  idleTimeout: number,
): { socket: WebSocket; response: Response } | Response {
  try {
    const upgraded = Deno.upgradeWebSocket(req, { idleTimeout });
    upgraded.socket.binaryType = "arraybuffer";
    return upgraded;
  } catch {
    return jsonError(400, "invalid WebSocket handshake");
  }
}
