/**
 * The relay's backend when the relay runs inside the app: the same KV the
 * API writes, read directly.
 *
 * Keys of its own: `["client_jti", jti]` → `{expiresAt}` (used client tokens).
 *
 * @module
 */
import type { RelayBackend } from "../relay/backend.ts";
import { CLOCK_TOLERANCE_SECONDS } from "../relay/tokens.ts";
import { setPresence, verifyRunnerJti } from "./runners.ts";

/** A used client token's jti. */
interface UsedJti {
  /** Until when the token could still verify (its exp plus the clock tolerance), ms. */
  expiresAt: number;
}

/** Creates the KV-backed {@linkcode RelayBackend}. `now` is ms since the epoch. */
export function createKvRelayBackend(kv: Deno.Kv, now: () => number): RelayBackend {
  return {
    verifyRunnerJti: (jti) => verifyRunnerJti(kv, jti),

    async consumeClientJti(jti, expiresAt) {
      const until = expiresAt.getTime() + CLOCK_TOLERANCE_SECONDS * 1000;
      const key = ["client_jti", jti];
      for (;;) {
        const entry = await kv.get<UsedJti>(key);
        // KV expiry is lazy: a stale record no longer guards anything and may be replaced.
        if (entry.value && entry.value.expiresAt > now()) return false;
        const used: UsedJti = { expiresAt: until };
        const result = await kv.atomic()
          .check(entry)
          .set(key, used, { expireIn: Math.max(1000, until - now()) })
          .commit();
        if (result.ok) return true;
      }
    },

    setPresence: (runnerId, userId, online) => setPresence(kv, runnerId, userId, online, now()),

    watchRevocations(onChange, signal) {
      if (signal.aborted) return;
      const reader = kv.watch([["revocation_epoch"]]).getReader();
      signal.addEventListener("abort", () => reader.cancel().catch(() => {}), { once: true });
      (async () => {
        let first = true;
        try {
          for (;;) {
            const { done } = await reader.read();
            if (done || signal.aborted) return;
            // The first value is the epoch as it stands, not a change.
            if (first) first = false;
            else onChange();
          }
        } catch {
          // The watch ends when KV closes; nothing left to report.
        }
      })();
    },
  };
}
