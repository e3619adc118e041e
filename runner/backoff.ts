/**
 * Reconnect delays: exponential backoff with full jitter, reset once a
 * connection carried traffic or stayed up long enough. The formula is
 * {@linkcode backoffDelay}; this adds the attempt count and its reset.
 *
 * @module
 */

import { backoffDelay } from "@coda/relay/backoff";

/** Options of {@linkcode Backoff}. */
export interface BackoffOptions {
  /** First delay's upper bound, ms (default 500). */
  initialMs?: number;
  /** Largest upper bound, ms (default 30 s). */
  maxMs?: number;
  /** A connection up this long resets the backoff, ms (default 30 s). */
  resetAfterMs?: number;
  /** Random number in [0, 1) (tests fix it). */
  random?: () => number;
}

/** Computes successive reconnect delays. */
export class Backoff {
  readonly #initial: number;
  readonly #max: number;
  readonly #resetAfter: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(options: BackoffOptions = {}) {
    this.#initial = options.initialMs ?? 500;
    this.#max = options.maxMs ?? 30_000;
    this.#resetAfter = options.resetAfterMs ?? 30_000;
    this.#random = options.random ?? Math.random;
  }

  /** Upper bound of the next delay (without jitter). */
  get ceiling(): number {
    return backoffDelay(this.#attempt, { baseMs: this.#initial, maxMs: this.#max, jitter: 0 }, this.#random);
  }

  /** The next delay: uniformly random in [0, ceiling). */
  next(): number {
    const delay = backoffDelay(this.#attempt, { baseMs: this.#initial, maxMs: this.#max }, this.#random);
    this.#attempt++;
    return delay;
  }

  /**
   * An authenticated connection ended after `upMs`. One that carried traffic
   * proved the relay works (it was restarted, not broken), so the next try
   * starts from the first delay again; so does one that stayed up long.
   */
  connectionEnded(upMs: number, carriedTraffic: boolean): void {
    if (carriedTraffic || upMs >= this.#resetAfter) this.#attempt = 0;
  }
}
