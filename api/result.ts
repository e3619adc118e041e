/**
 * The outcome of a domain operation that can be refused. Domain modules
 * return these rather than throwing HTTP errors, so they stay free of HTTP;
 * `refusals.ts` decides what each refusal looks like on the wire.
 *
 * @module
 */

/**
 * A refused operation: why, and for a limit, how long until a retry may succeed.
 * A union of reasons gives a union of failures, so each reason can be picked out by `Extract`.
 */
export type Failure<R extends string> = R extends string ? {
    ok: false;
    reason: R;
    /** Set when a limit refused: ms until the caller may try again. */
    retryAfterMs?: number;
  }
  : never;

/** A failure of a limit, which always says when to retry. */
export type Limited<R extends string> = Failure<R> & { retryAfterMs: number };

/** A successful operation's value. */
export interface Success<T> {
  ok: true;
  value: T;
}

/** A value, or one of the failures `F`. */
export type Result<T, F extends Failure<string>> = Success<T> | F;

/** Wraps a value as a {@linkcode Success}. */
export function success<T>(value: T): Success<T> {
  return { ok: true, value };
}

/** A {@linkcode Failure} for `reason`; `retryAfterMs` only for a limit. */
export function failure<R extends string>(reason: R): Failure<R>;
export function failure<R extends string>(reason: R, retryAfterMs: number): Limited<R>;
export function failure<R extends string>(reason: R, retryAfterMs?: number): Failure<R> {
  // TypeScript does not resolve the distributive `Failure<R>` for a generic `R`.
  return (retryAfterMs === undefined
    ? { ok: false, reason }
    : { ok: false, reason, retryAfterMs }) as Failure<R>;
}
