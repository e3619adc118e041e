/**
 * Reconnect delays: exponential backoff with full jitter, reset once a
 * connection has stayed up long enough.
 *
 * @module
 */

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
    return Math.min(this.#max, this.#initial * 2 ** Math.min(this.#attempt, 30));
  }

  /** The next delay: uniformly random in [0, ceiling). */
  next(): number {
    const delay = Math.floor(this.#random() * this.ceiling);
    this.#attempt++;
    return delay;
  }

  /** A connection ended after `upMs`; a long one resets the backoff. */
  connectionEnded(upMs: number): void {
    if (upMs >= this.#resetAfter) this.#attempt = 0;
  }
}
