/**
 * One-use client tokens: each jti is recorded in the app's Deno KV until the
 * token could no longer verify. The one store of both relays: the in-app relay
 * calls it directly (`api/relay_backend.ts`), a standalone relay through
 * `POST /api/devmode/internal/client-jti` — so a token used on one is refused on the other.
 *
 * Key: `["client_jti", jti]` → {@linkcode UsedJti}.
 *
 * @module
 */
import { CLOCK_TOLERANCE_SECONDS } from "./tokens.ts";

/** A used client token. */
interface UsedJti {
  /** Until when the token could still verify (exp plus clock tolerance), ms since the epoch. */
  expiresAt: number;
}

/**
 * Records `jti` as used until `expiresAt` (plus clock tolerance). Resolves
 * `false` when it was already used. KV expiry is lazy, so the stored
 * `expiresAt` decides whether an old record still counts.
 */
export async function consumeJti(
  kv: Deno.Kv,
  jti: string,
  expiresAt: Date,
  now: () => number,
): Promise<boolean> {
  const until = expiresAt.getTime() + CLOCK_TOLERANCE_SECONDS * 1000;
  const key = ["client_jti", jti];
  for (;;) {
    const entry = await kv.get<UsedJti>(key);
    // A stale record no longer guards anything and may be replaced.
    if (entry.value && entry.value.expiresAt > now()) return false;
    const result = await kv.atomic()
      .check(entry)
      .set(key, { expiresAt: until } satisfies UsedJti, { expireIn: Math.max(1000, until - now()) })
      .commit();
    if (result.ok) return true;
  }
}
