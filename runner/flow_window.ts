/**
 * How much output a session lets its clients leave unacknowledged: a window
 * sized to what they take in {@linkcode FlowWindowLimits.windowMs}, between a
 * floor and a ceiling.
 *
 * A fixed window cannot serve both ends: a client that renders 1 MB/s holds
 * what is in flight ahead of a Ctrl-C's answer (512 KiB: half a second), and
 * a client on loopback that takes 100 MB/s idles through every ack round trip
 * of a small one. Sized by the measured ack rate, the slow client gets the
 * floor and the fast one a window that covers its round trips.
 *
 * @module
 */

/** The bounds of a {@linkcode FlowWindow}, in bytes and ms. */
export interface FlowWindowLimits {
  /** The smallest pause threshold, where every window starts. */
  highWatermark: number;
  /** The smallest resume threshold. */
  lowWatermark: number;
  /**
   * The largest pause threshold: well below what the relay lets one client queue (it closes 4413 past
   * it). {@linkcode FlowWindow.limit} may lower or raise it for the clients at hand.
   */
  maxWindow: number;
  /** The window holds about this much of the clients' measured ack rate. */
  windowMs: number;
}

/** Acks closer together than this are measured together. */
const SAMPLE_MS = 10;
/** Weight of the newest rate sample. */
const SMOOTHING = 0.3;

/** The pause and resume thresholds of one session, from its clients' ack rate. */
export class FlowWindow {
  readonly #limits: FlowWindowLimits;
  readonly #now: () => number;
  /** Smoothed bytes per ms acknowledged while output was outstanding; 0 before any sample. */
  #rate = 0;
  #sampleAt = 0;
  #sampleAcked = 0;
  #max: number;

  constructor(limits: FlowWindowLimits, now: () => number = performance.now.bind(performance)) {
    this.#limits = limits;
    this.#now = now;
    this.#max = limits.maxWindow;
  }

  /** Sets the largest pause threshold from now on (never below the smallest). */
  limit(maxWindow: number): void {
    this.#max = Math.max(this.#limits.highWatermark, maxWindow);
  }

  /** Output is about to be sent with nothing unacknowledged: the time before it was idle, not slow. */
  restart(acked: number): void {
    this.#sampleAt = this.#now();
    this.#sampleAcked = acked;
  }

  /** The clients have acknowledged up to `acked`. */
  acked(acked: number): void {
    const now = this.#now();
    const elapsed = now - this.#sampleAt;
    if (elapsed < SAMPLE_MS) return;
    const sample = (acked - this.#sampleAcked) / elapsed;
    this.#rate = this.#rate === 0 ? sample : this.#rate * (1 - SMOOTHING) + sample * SMOOTHING;
    this.#sampleAt = now;
    this.#sampleAcked = acked;
  }

  /** Pause above this many unacknowledged bytes. */
  get high(): number {
    const { highWatermark, windowMs } = this.#limits;
    return Math.round(Math.min(this.#max, Math.max(highWatermark, this.#rate * windowMs)));
  }

  /** Resume below this many. */
  get low(): number {
    return Math.max(this.#limits.lowWatermark, Math.round(this.high / 4));
  }
}
