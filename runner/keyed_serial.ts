/**
 * Tasks run one after another per key, and concurrently across keys: the
 * messages of one session are handled strictly in order (a `stdin` right
 * behind the `attach` that starts the session waits for the shell to exist)
 * while other sessions go on.
 *
 * @module
 */

/** Per-key serial execution. */
export class KeyedSerial {
  readonly #tails = new Map<string, Promise<void>>();

  /** Runs `task` after every task queued before it under `key`; resolves when it is done. */
  run(key: string, task: () => Promise<void>): Promise<void> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const next = previous.then(task);
    this.#tails.set(key, next);
    void next.then(() => {
      if (this.#tails.get(key) === next) this.#tails.delete(key);
    });
    return next;
  }

  /** Resolves once every task queued so far has settled. */
  async settled(): Promise<void> {
    await Promise.allSettled(this.#tails.values());
  }
}
