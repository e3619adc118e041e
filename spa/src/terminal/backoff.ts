/**
 * Reconnect delays: exponential growth with jitter, so a relay restart is not
 * met by every browser reconnecting in the same millisecond.
 *
 * @module
 */

/** Tuning of {@linkcode backoffDelay}. */
export interface BackoffOptions {
  /** Delay before the first retry, in ms. */
  baseMs: number;
  /** Upper bound of any delay, in ms. */
  maxMs: number;
}

/** Defaults for browsers: 0.5 s, 1 s, 2 s, … up to 15 s. */
export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, maxMs: 15_000 };

/**
 * The delay before retry number `attempt` (0-based): `base·2^attempt` capped
 * at `max`, then scaled into [50 %, 100 %] by `random` (equal jitter).
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number): number {
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
