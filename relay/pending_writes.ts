/**
 * Best-effort writes in flight (presence, session reports, shared records): each is kept until it
 * settles, so a shutdown can finish them before the store closes, and a failure is logged, never
 * thrown into the code that started it.
 *
 * @module
 */
import type { RelayLog } from "./log.ts";

/** The best-effort writes one part of the relay has in flight. */
export class PendingWrites {
  readonly #writes = new Set<Promise<void>>();
  readonly #log: RelayLog;

  constructor(log: RelayLog) {
    this.#log = log;
  }

  /** Keeps `write` until it settles; its failure is logged as `failure` plus the error. Resolves either way. */
  track(write: Promise<unknown>, failure: Record<string, unknown>): Promise<void> {
    const tracked = write.then(() => {}, (error) => this.#log({ ...failure, error: String(error) }));
    this.#writes.add(tracked);
    tracked.finally(() => this.#writes.delete(tracked));
    return tracked;
  }

  /** Waits for every write in flight now. */
  async settle(): Promise<void> {
    await Promise.all(this.#writes);
  }
}
