/**
 * Retry delays, defined once for every caller (the runner's relay link, the
 * SPA's terminal connection, the recorder's ingest retries, the pairing poll,
 * the server's listener restarts and the per-account sign-in delay): pure, so
 * the SPA bundles it too and tests fix `random`.
 *
 * @module
 */

/** Tuning of {@linkcode backoffDelay}. */
export interface BackoffOptions {
  /** Upper bound of the first delay, ms. */
  baseMs: number;
  /** Largest upper bound, ms. */
  maxMs: number;
  /**
   * Share of the upper bound that is random (default 1, full jitter): 0.5 is
   * equal jitter, 0 a fixed delay for callers that never meet a stampede.
   */
  jitter?: number;
}

/**
 * The delay before retry number `attempt` (0-based): the upper bound
 * `base·2^attempt` capped at `max`, of which the `jitter` share is scaled by
 * `random` (a number in [0, 1)).
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number): number {
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(attempt, 30));
  const jitter = options.jitter ?? 1;
  return Math.floor(ceiling * (1 - jitter) + random() * ceiling * jitter);
}
