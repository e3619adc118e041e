/**
 * Deno KV as the app and the relays share it. Several processes on one local KV file (instances on
 * one machine, as in tests): SQLite answers a write that meets another process's write with
 * "database is locked" at once instead of waiting. {@linkcode openSharedKv} opens a KV whose writes
 * are retried after a short random pause when that happens; anything else fails as it is.
 * {@linkcode getManyChunked} reads any number of keys in the chunks `kv.getMany` takes.
 *
 * @module
 */

/** Most keys one `kv.getMany` reads. */
const KV_GET_MANY_LIMIT = 10;

/** The entries of `keys`, in order, read `KV_GET_MANY_LIMIT` at a time. */
export async function getManyChunked<T>(
  kv: Deno.Kv,
  keys: readonly Deno.KvKey[],
): Promise<Deno.KvEntryMaybe<T>[]> {
  const entries: Deno.KvEntryMaybe<T>[] = [];
  for (let i = 0; i < keys.length; i += KV_GET_MANY_LIMIT) {
    entries.push(...await kv.getMany<T[]>(keys.slice(i, i + KV_GET_MANY_LIMIT)));
  }
  return entries;
}

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

/** `operation` with its `commit` retried (a commit that met a lock was not applied). */
function retryingAtomic(operation: Deno.AtomicOperation): Deno.AtomicOperation {
  const wrapped: Deno.AtomicOperation = new Proxy(operation, {
    get(target, property) {
      if (property === "commit") return () => retryKvBusy(() => target.commit());
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      // The builder's methods return the operation itself: the caller keeps the retrying one.
      return (...args: unknown[]) => {
        const result = value.apply(target, args);
        return result === target ? wrapped : result;
      };
    },
  });
  return wrapped;
}

/** `kv` with `set`, `delete` and atomic commits retried past another process's lock. */
export function retryingKv(kv: Deno.Kv): Deno.Kv {
  return new Proxy(kv, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      if (property === "atomic") return () => retryingAtomic(target.atomic());
      if (property === "set" || property === "delete") {
        return (...args: unknown[]) => retryKvBusy(() => value.apply(target, args));
      }
      return value.bind(target);
    },
  });
}

/**
 * Opens the KV at `url` (a file several processes may share, or a KV Connect URL) with its writes
 * retried past another process's lock ({@linkcode retryingKv}); the open itself is retried too.
 */
export async function openSharedKv(url: string): Promise<Deno.Kv> {
  return retryingKv(await retryKvBusy(() => Deno.openKv(url)));
}
