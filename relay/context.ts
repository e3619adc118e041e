/**
 * What both link handlers share.
 *
 * @module
 */
import type { RelayBackend } from "./backend.ts";
import type { Broker } from "./broker.ts";
import type { Cluster } from "./cluster.ts";
import { idleTimeoutSeconds, type RelayLimits } from "./limits.ts";
import type { RelayLog } from "./log.ts";
import type { RelayMetrics } from "./metrics.ts";
import { closeSocket } from "./frames.ts";
import { CloseCode, CloseReason } from "./protocol.ts";

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
  /** With several instances: the shared records, and whether Fly's proxy replays upgrades (`fly-replay`). */
  routing?: { cluster: Cluster; flyReplay: boolean };
}

/** How long a refused peer should wait before retrying, in seconds (`Retry-After`). */
const RETRY_AFTER_SECONDS = 5;

/**
 * A JSON error response (`{error}`) for requests refused before the upgrade.
 * 429 and 503 carry `Retry-After`.
 */
export function jsonError(status: number, error: string): Response {
  const headers: Record<string, string> = status === 429 || status === 503
    ? { "retry-after": String(RETRY_AFTER_SECONDS) }
    : {};
  return Response.json({ error }, { status, headers });
}

/** Refusals logged per relay and minute; past it they are only counted (`relay_auth_failures_total`). */
export const AUTH_FAILURE_LOGS_PER_MINUTE = 60;

/** Per relay: when the current minute of refusal logging began, how many it logged, and how many it held back. */
const refusalLogs = new WeakMap<RelayContext, { start: number; logged: number; held: number }>();

/**
 * Whether a refusal may be logged now: anyone can make the relay refuse, so
 * the log gets a bounded share. The first line of a new minute says how many
 * the last one held back.
 */
function mayLogRefusal(ctx: RelayContext): boolean {
  const now = ctx.now();
  const window = refusalLogs.get(ctx);
  if (!window || now - window.start >= 60_000) {
    if (window?.held) ctx.log({ event: "auth_failed_suppressed", count: window.held });
    refusalLogs.set(ctx, { start: now, logged: 1, held: 0 });
    return true;
  }
  if (window.logged < AUTH_FAILURE_LOGS_PER_MINUTE) {
    window.logged++;
    return true;
  }
  window.held++;
  return false;
}

/**
 * Refuses a link before any WebSocket exists: counted, logged (within
 * {@linkcode AUTH_FAILURE_LOGS_PER_MINUTE}), answered with a JSON `{error}`.
 * Nothing of the peer is held once the response is sent.
 */
export function refuseLink(
  ctx: RelayContext,
  endpoint: "runner" | "client",
  refusal: { status: number; reason: string; error: string; runnerId?: string; detail?: string },
): Response {
  ctx.metrics.authFailure(endpoint, refusal.reason);
  if (!mayLogRefusal(ctx)) return jsonError(refusal.status, refusal.error);
  ctx.log({
    event: "auth_failed",
    endpoint,
    reason: refusal.reason,
    ...(refusal.runnerId ? { runnerId: refusal.runnerId } : {}),
    ...(refusal.detail ? { error: refusal.detail } : {}),
  });
  return jsonError(refusal.status, refusal.error);
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

/**
 * Upgrades `req` for an authenticated peer and tracks the socket, or answers
 * 400 when its WebSocket handshake headers are unusable. A socket that has
 * not opened within `openTimeoutMs` (its peer vanished before the handshake
 * finished, and Deno then fires no event at all) gets a synthetic `close`
 * event, so its handlers release what they reserved. `release` gives the
 * connection's place under the caps back when the socket closes. `protocol`
 * is the subprotocol of the peer's offer the relay picked, echoed in the answer.
 */
export function upgrade(
  ctx: RelayContext,
  req: Request,
  release: () => void,
  protocol?: string,
): { socket: WebSocket; response: Response } | { refused: Response } {
  // The peer left while its token was being checked: upgrading would leave a socket no event ever ends.
  if (req.signal.aborted) return { refused: jsonError(400, "the connection closed before the upgrade") };
  let upgraded;
  try {
    upgraded = Deno.upgradeWebSocket(req, { idleTimeout: idleTimeoutSeconds(ctx.limits), protocol });
  } catch {
    return { refused: jsonError(400, "invalid WebSocket handshake") };
  }
  const { socket } = upgraded;
  socket.binaryType = "arraybuffer";
  // Tracked until it closes, so shutdown can close it and wait; one listener per socket does it all
  // (a relay holds thousands of idle sockets, and each listener costs memory).
  ctx.sockets.add(socket);
  const staleTimer = setTimeout(() => {
    if (socket.readyState !== WebSocket.CONNECTING) return;
    socket.dispatchEvent(new CloseEvent("close", { code: 1006, reason: "handshake never completed" }));
  }, ctx.limits.openTimeoutMs);
  socket.addEventListener("close", () => {
    clearTimeout(staleTimer);
    ctx.sockets.delete(socket);
    release();
  }, { once: true });
  return upgraded;
}

/**
 * The checks every frame of an upgraded peer passes, the same on `/client`, on `/runner` and in
 * `coda-runner serve`: a frame over `maxFrameBytes` closes the peer 1009; a malformed or forbidden
 * one is a strike, counted by `reason`, and `malformedFrameLimit` strikes close it 1008.
 */
export class FrameGuard {
  #strikes = 0;

  constructor(
    private readonly ctx: RelayContext,
    private readonly socket: WebSocket,
    /** Logged when the peer is closed for its strikes, e.g. `{ event: "client_policy_close", clientId }`. */
    private readonly onPolicyClose: Record<string, unknown>,
  ) {}

  /** Whether a frame of `bytes` is too big; if so the peer is being closed 1009. */
  tooBig(bytes: number): boolean {
    if (bytes <= this.ctx.limits.maxFrameBytes) return false;
    this.ctx.metrics.dropped("too_big");
    this.close(CloseCode.TOO_BIG, CloseReason.TOO_BIG);
    return true;
  }

  /** Counts a malformed or forbidden frame (dropped); the last one allowed closes the peer 1008. */
  strike(reason: string): void {
    this.ctx.metrics.dropped(reason);
    this.#strikes++;
    if (this.#strikes < this.ctx.limits.malformedFrameLimit) return;
    this.ctx.log(this.onPolicyClose);
    this.close(CloseCode.POLICY, CloseReason.POLICY);
  }

  /** Closes the peer (after what is queued for it), counted under `code`. */
  close(code: number, reason: string): void {
    this.ctx.metrics.closed(code);
    closeSocket(this.socket, code, reason, this.ctx.limits.closeGraceMs);
  }
}

/** How long a shutting-down relay waits for its peers to acknowledge the close. */
const SHUTDOWN_GRACE_MS = 3000;

/**
 * Closes every peer with `1012` and `reason` (each after what is queued for it) and waits for them
 * to go, {@linkcode SHUTDOWN_GRACE_MS} at most, then for the broker's last records.
 */
export async function closeEveryone(ctx: RelayContext, reason: string): Promise<void> {
  ctx.broker.closeAll(CloseCode.RESTART, reason);
  const closed = [...ctx.sockets].map((socket) =>
    new Promise<void>((resolve) => socket.addEventListener("close", () => resolve(), { once: true }))
  );
  for (const socket of ctx.sockets) closeSocket(socket, CloseCode.RESTART, reason, ctx.limits.closeGraceMs);
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.all(closed),
    new Promise((resolve) => timer = setTimeout(resolve, SHUTDOWN_GRACE_MS)),
  ]);
  clearTimeout(timer);
  await ctx.broker.settle();
}
