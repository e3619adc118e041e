/**
 * Tunable limits of the relay. Production uses {@linkcode DEFAULT_RELAY_LIMITS};
 * tests shrink the timeouts.
 *
 * @module
 */
import { MAX_FRAME_BYTES, TRANSFER_WINDOW_BYTES } from "./protocol.ts";

/** Limits and timings of the relay, all in milliseconds or bytes. */
export interface RelayLimits {
  /** How long a client waits for a runner to come online (or back) before close 4404. */
  runnerWaitMs: number;
  /** An upgraded socket whose handshake has not completed by then is dropped (its peer vanished). */
  openTimeoutMs: number;
  /** Presence refresh interval; also the WebSocket ping cadence upper bound. */
  pingIntervalMs: number;
  /** A peer that stops answering pings is closed within this time. */
  deadPeerMs: number;
  /** Concurrent client connections per user (a share's viewers not counted); more are refused with HTTP 429. */
  maxClientsPerUser: number;
  /** Concurrent viewers of one share; more are refused with HTTP 429. */
  maxViewersPerShare: number;
  /** Bytes a client connection may have queued in the relay before it is closed 4413. */
  maxClientBufferedBytes: number;
  /** Bytes queued towards a runner beyond which client frames for it are dropped (it stopped reading). */
  maxRunnerBufferedBytes: number;
  /** Re-verify connected runners this often when the backend cannot watch revocations. */
  reverifyIntervalMs: number;
  /** Malformed or forbidden frames a peer may send before it is closed 1008. */
  malformedFrameLimit: number;
  /** Largest accepted frame; bigger ones close the link 1009. */
  maxFrameBytes: number;
  /** The relay acknowledges for a non-ack client once its queued bytes are at most this. */
  ackDrainBytes: number;
  /** How often the relay checks a non-ack client's socket for drained output. */
  ackIntervalMs: number;
  /** Client frames kept while the client waits for its runner; beyond it they are dropped. */
  maxPendingClientBytes: number;
  /** A peer that does not answer the relay's close frame by then has its connection dropped. */
  closeGraceMs: number;
  /** Uploads one client may have under way at once; more are refused with `transfer-error`. */
  maxUploadsPerClient: number;
  /** Upload bytes a client may send past the runner's last `upload-ack`; beyond it: close 4429. */
  transferWindowBytes: number;
  /** With several instances: how often each reads its inbox and the revocation epochs from KV. */
  clusterPollMs: number;
  /** With several instances: how often each refreshes its instance record in KV. */
  instanceHeartbeatMs: number;
  /** An instance whose record was not refreshed for this long is dead: its runners count as offline. */
  instanceTtlMs: number;
}

/**
 * The longest a non-ack client's socket goes unchecked for drained output while it holds some: the check
 * runs every `ackIntervalMs` while the socket writes, and backs off to this while it writes nothing.
 */
export const MAX_ACK_POLL_MS = 32;

/** Runner `error` frames logged per runner and minute; more are only counted (`relay_frames_dropped_total`). */
export const RUNNER_ERROR_LOGS_PER_MINUTE = 10;
/** Characters of a runner `error` frame's `code` and `message` that reach the log. */
export const RUNNER_ERROR_LOG_CHARS = { code: 64, message: 512 } as const;

/** Production limits. */
export const DEFAULT_RELAY_LIMITS: Readonly<RelayLimits> = Object.freeze({
  runnerWaitMs: 60_000,
  openTimeoutMs: 10_000,
  pingIntervalMs: 25_000,
  deadPeerMs: 60_000,
  maxClientsPerUser: 32,
  maxViewersPerShare: 20,
  maxClientBufferedBytes: 2 * 1024 * 1024,
  maxRunnerBufferedBytes: 4 * 1024 * 1024,
  reverifyIntervalMs: 60_000,
  malformedFrameLimit: 10,
  maxFrameBytes: MAX_FRAME_BYTES,
  ackDrainBytes: 64 * 1024,
  // Once a session's window is in flight, the runner waits for these acks alone: at 20 ms a spec-only client
  // got 38 MB/s in the bench, at 2 ms 46 (the timer runs only while output is unacknowledged).
  ackIntervalMs: 2,
  maxPendingClientBytes: 256 * 1024,
  closeGraceMs: 5000,
  maxUploadsPerClient: 4,
  transferWindowBytes: TRANSFER_WINDOW_BYTES,
  clusterPollMs: 500,
  instanceHeartbeatMs: 2000,
  instanceTtlMs: 6000,
});

/** Fills in defaults for the limits a caller did not set. */
export function resolveLimits(overrides: Partial<RelayLimits> = {}): RelayLimits {
  const limits = { ...DEFAULT_RELAY_LIMITS };
  for (const [key, value] of Object.entries(overrides) as [keyof RelayLimits, number | undefined][]) {
    if (value === undefined) continue;
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`relay limit ${key} must be a number ≥ 0`);
    limits[key] = value;
  }
  return limits;
}

/**
 * Seconds for `Deno.upgradeWebSocket`'s `idleTimeout`: Deno pings an idle peer
 * and closes it when no pong follows, so a dead peer goes within about twice
 * this. Kept at or below the ping interval so proxies with a 100 s idle cut
 * always see traffic.
 */
export function idleTimeoutSeconds(limits: RelayLimits): number {
  return Math.max(1, Math.floor(Math.min(limits.pingIntervalMs, limits.deadPeerMs / 2) / 1000));
}
