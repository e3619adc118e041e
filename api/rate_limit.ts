/**
 * Counting attempts (wrong codes, failed sign-ins, pairing starts) in fixed
 * windows, and failures of one subject (an account) under a growing delay, in
 * KV (so limits hold across restarts and concurrent requests).
 *
 * Keys: `["rate", scope, subject]` → {@linkcode Window}, and
 * `["backoff", scope, subject]` → {@linkcode BackoffState} (KV `expireIn` plus
 * the times checked against the injected clock).
 *
 * @module
 */
import { backoffDelay } from "@coda/relay/backoff";

/** An attempt counter for one scope and subject. */
interface Window {
  start: number;
  count: number;
}

/** A limit: at most `max` attempts per `windowMs`. */
export interface AttemptLimit {
  scope: string;
  max: number;
  windowMs: number;
}

async function read(kv: Deno.Kv, limit: AttemptLimit, subject: string, now: number) {
  const entry = await kv.get<Window>(["rate", limit.scope, subject]);
  const live = entry.value && now - entry.value.start < limit.windowMs ? entry.value : null;
  return { entry, live };
}

/** A refused attempt: how long until the limit lets the subject try again (for `Retry-After`). */
export interface Refusal {
  retryAfterMs: number;
}

/** Whether a take was refused. */
export function isRefusal<T extends object>(result: T | Refusal): result is Refusal {
  return "retryAfterMs" in result;
}

/** An attempt taken with {@linkcode takeAttempt}, to give back with {@linkcode refundAttempt}. */
export interface TakenAttempt {
  limit: AttemptLimit;
  subject: string;
  /** Start of the window it was counted in. */
  start: number;
}

/**
 * Takes one attempt for `subject` if any is left in the current window:
 * checking and counting are one atomic KV operation, so concurrent requests
 * cannot all pass a check made before any of them was counted. Resolves a
 * {@linkcode Refusal} (nothing counted) when the limit is used up.
 */
export async function takeAttempt(
  kv: Deno.Kv,
  limit: AttemptLimit,
  subject: string,
  now: number,
): Promise<TakenAttempt | Refusal> {
  for (;;) {
    const { entry, live } = await read(kv, limit, subject, now);
    if (live !== null && live.count >= limit.max) return { retryAfterMs: live.start + limit.windowMs - now };
    const next: Window = live ? { start: live.start, count: live.count + 1 } : { start: now, count: 1 };
    const result = await kv.atomic()
      .check(entry)
      .set(["rate", limit.scope, subject], next, { expireIn: limit.windowMs })
      .commit();
    if (result.ok) return { limit, subject, start: next.start };
  }
}

/**
 * Gives back an attempt that turned out not to count (a right password, a
 * right code). Nothing happens once the window it was taken in has passed.
 */
export async function refundAttempt(kv: Deno.Kv, taken: TakenAttempt, now: number): Promise<void> {
  const { limit, subject } = taken;
  for (;;) {
    const { entry, live } = await read(kv, limit, subject, now);
    if (live === null || live.start !== taken.start || live.count <= 0) return;
    const next: Window = { start: live.start, count: live.count - 1 };
    const expireIn = Math.max(1000, live.start + limit.windowMs - now);
    const result = await kv.atomic()
      .check(entry)
      .set(["rate", limit.scope, subject], next, { expireIn })
      .commit();
    if (result.ok) return;
  }
}

/**
 * Takes one attempt from each limit in turn; when one refuses, those already
 * taken are given back, so a refused request counts nowhere.
 */
export async function takeAttempts(
  kv: Deno.Kv,
  wanted: { limit: AttemptLimit; subject: string }[],
  now: number,
): Promise<TakenAttempt[] | Refusal> {
  const taken: TakenAttempt[] = [];
  for (const { limit, subject } of wanted) {
    const result = await takeAttempt(kv, limit, subject, now);
    if (isRefusal(result)) {
      await refundAttempts(kv, taken, now);
      return result;
    }
    taken.push(result);
  }
  return taken;
}

/** Gives back every attempt {@linkcode takeAttempts} took. */
export async function refundAttempts(kv: Deno.Kv, taken: TakenAttempt[], now: number): Promise<void> {
  for (const attempt of taken) await refundAttempt(kv, attempt, now);
}

/**
 * A growing delay for one subject (an account, whichever address it is tried
 * from): after `failuresBeforeDelay` failures the subject waits `firstDelayMs`
 * before its next attempt, and each further failure doubles the wait, up to
 * `maxDelayMs`. Forgotten `forgetMs` after the last failure (at least
 * `maxDelayMs`), or at once by {@linkcode clearBackoff}.
 */
export interface Backoff {
  scope: string;
  failuresBeforeDelay: number;
  firstDelayMs: number;
  maxDelayMs: number;
  forgetMs: number;
}

/** Failures counted for one subject under a {@linkcode Backoff}. */
interface BackoffState {
  failures: number;
  lastFailureAt: number;
  /** No attempt before this time (ms since the epoch). */
  waitUntil: number;
}

/**
 * Counts one attempt as a failure in advance (in one atomic KV step, so
 * concurrent attempts cannot all slip in before the delay is set), or
 * resolves a {@linkcode Refusal} while the subject has to wait. A successful
 * attempt then calls {@linkcode clearBackoff}.
 */
export async function takeBackoffAttempt(
  kv: Deno.Kv,
  backoff: Backoff,
  subject: string,
  now: number,
): Promise<Refusal | null> {
  const key = ["backoff", backoff.scope, subject];
  for (;;) {
    const entry = await kv.get<BackoffState>(key);
    const live = entry.value && now - entry.value.lastFailureAt < backoff.forgetMs ? entry.value : null;
    if (live !== null && live.waitUntil > now) return { retryAfterMs: live.waitUntil - now };
    const failures = (live?.failures ?? 0) + 1;
    const doublings = failures - backoff.failuresBeforeDelay;
    const delayMs = doublings < 0 ? 0 : backoffDelay(
      doublings,
      { baseMs: backoff.firstDelayMs, maxMs: backoff.maxDelayMs, jitter: 0 },
      Math.random,
    );
    const next: BackoffState = { failures, lastFailureAt: now, waitUntil: now + delayMs };
    const result = await kv.atomic()
      .check(entry)
      .set(key, next, { expireIn: backoff.forgetMs })
      .commit();
    if (result.ok) return null;
  }
}

/** Forgets the subject's failures (after it succeeded). */
export async function clearBackoff(kv: Deno.Kv, backoff: Backoff, subject: string): Promise<void> {
  await kv.delete(["backoff", backoff.scope, subject]);
}

/**
 * The subject a per-address limit counts an address under. An IPv6 address
 * counts as its /64 (the smallest block a host is normally given: one machine
 * can use any address in it, so counting single addresses would let it step
 * around every per-IP limit); an IPv4-mapped IPv6 address as its IPv4 address.
 */
export function addressSubject(ip: string): string {
  let address = ip.replace(/^\[|\]$/g, "").replace(/%.*$/, "").toLowerCase();
  if (!address.includes(":")) return address;
  // An embedded IPv4 tail stands for the last two groups.
  address = address.replace(/(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/, (_, a, b, c, d) => {
    const [x, y, z, w] = [a, b, c, d].map(Number);
    return `${((x << 8) | y).toString(16)}:${((z << 8) | w).toString(16)}`;
  });
  const halves = address.split("::");
  if (halves.length > 2) return address;
  const left = halves[0] ? halves[0].split(":") : [];
  const right = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const missing = halves.length === 2 ? 8 - left.length - right.length : 0;
  if (missing < 0) return address;
  const groups = [...left, ...Array<string>(missing).fill("0"), ...right];
  if (groups.length !== 8 || !groups.every((group) => /^[0-9a-f]{1,4}$/.test(group))) return address;
  const numbers = groups.map((group) => parseInt(group, 16));
  if (numbers.slice(0, 5).every((n) => n === 0) && numbers[5] === 0xffff) {
    return [numbers[6] >> 8, numbers[6] & 255, numbers[7] >> 8, numbers[7] & 255].join(".");
  }
  return `${numbers.slice(0, 4).map((n) => n.toString(16)).join(":")}::/64`;
}
