/**
 * Counting attempts (wrong codes, failed sign-ins, pairing starts) in fixed
 * windows, in KV (so limits hold across restarts and concurrent requests).
 *
 * Keys: `["rate", scope, subject]` → {@linkcode Window} (KV `expireIn` plus
 * the window start checked against the injected clock).
 *
 * @module
 */

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

/** Whether `subject` already used up its attempts in the current window. */
export async function isLimited(
  kv: Deno.Kv,
  limit: AttemptLimit,
  subject: string,
  now: number,
): Promise<boolean> {
  const { live } = await read(kv, limit, subject, now);
  return live !== null && live.count >= limit.max;
}

/** Counts one attempt for `subject` (retrying on concurrent updates). */
export async function countAttempt(
  kv: Deno.Kv,
  limit: AttemptLimit,
  subject: string,
  now: number,
): Promise<void> {
  for (;;) {
    const { entry, live } = await read(kv, limit, subject, now);
    const next: Window = live ? { start: live.start, count: live.count + 1 } : { start: now, count: 1 };
    const result = await kv.atomic()
      .check(entry)
      .set(["rate", limit.scope, subject], next, { expireIn: limit.windowMs })
      .commit();
    if (result.ok) return;
  }
}
