/**
 * Several processes on one local KV file (instances on one machine, as in tests): SQLite answers a
 * write that meets another process's write with "database is locked" at once instead of waiting.
 * Such a write is retried after a short random pause; anything else fails as it is.
 *
 * @module
 */

/** Attempts of one write before its "database is locked" is passed on. */
const BUSY_ATTEMPTS = 8;
/** Longest pause between two attempts, in ms (each pause is random up to it, growing per attempt). */
const BUSY_PAUSE_MS = 40;

/** Whether `error` is a local KV file's "database is locked" (another process was writing). */
export function isKvBusy(error: unknown): boolean {
  return error instanceof Error && /database is locked|database is busy/i.test(error.message);
}

/** Runs `write`, again after a pause while it fails with {@linkcode isKvBusy}. */
export async function retryKvBusy<T>(write: () => Promise<T>): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await write();
    } catch (error) {
      if (!isKvBusy(error) || attempt >= BUSY_ATTEMPTS) throw error;
      const pause = Math.random() * BUSY_PAUSE_MS * Math.min(1, attempt / 4);
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}
