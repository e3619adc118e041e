/**
 * The relay's backend when the relay runs inside the app: the same KV the
 * API writes, read directly.
 *
 * Keys of its own:
 * - `["client_jti", jti]` → used client tokens (`relay/jti_store.ts`, shared with standalone relays);
 * - `["signed_out_at", userId]` → ms of the user's last sign-out (kept: a link may stay open for days);
 * - `["sign_out_epoch"]` (`SIGN_OUT_EPOCH_KEY`) → `Deno.KvU64`, bumped on every sign-out (the in-app relay
 *   watches it; relays in other processes sharing the KV poll it).
 *
 * @module
 */
import { MAX_SIGN_OUT_QUERY, type RelayBackend } from "@coda/relay/backend";
import {
  consumeJti,
  getManyChunked,
  REVOCATION_EPOCH_KEY,
  SHARE_EPOCH_KEY,
  SIGN_OUT_EPOCH_KEY,
} from "@coda/relay";
import { recordSessionReport } from "./devmode_sessions.ts";
import { setPresence, verifyRunnerJti } from "./runners.ts";
import { liveShareIds, recordViewer } from "./shares.ts";

/** Per KV handle, the checks of the relays in this process that read it (see {@linkcode recordSignOut}). */
const localChecks = new WeakMap<Deno.Kv, Set<() => Promise<void>>>();

/**
 * Records that `userId` signed out at `now`: relays close the user's client
 * links opened before. Resolves once the relays in this process have closed
 * them: the KV watch reaches them too, but possibly after the sign-out has been
 * answered, and a keystroke sent in between would still reach the shell.
 */
export async function recordSignOut(kv: Deno.Kv, userId: string, now: number): Promise<void> {
  await kv.atomic()
    .set(["signed_out_at", userId], now)
    .sum(SIGN_OUT_EPOCH_KEY, 1n)
    .commit();
  await Promise.all([...localChecks.get(kv) ?? []].map((check) => check()));
}

/** When each of `userIds` last signed out (ms); users who never did are absent. */
export async function readSignOuts(kv: Deno.Kv, userIds: readonly string[]): Promise<Map<string, number>> {
  if (userIds.length > MAX_SIGN_OUT_QUERY) {
    throw new RangeError(`at most ${MAX_SIGN_OUT_QUERY} users per query`);
  }
  const result = new Map<string, number>();
  const entries = await getManyChunked<number>(kv, userIds.map((userId) => ["signed_out_at", userId]));
  entries.forEach((entry, i) => {
    if (typeof entry.value === "number") result.set(userIds[i], entry.value);
  });
  return result;
}

/** Creates the KV-backed {@linkcode RelayBackend}. `now` is ms since the epoch. */
export function createKvRelayBackend(kv: Deno.Kv, now: () => number): RelayBackend {
  return {
    verifyRunnerJti: (jti) => verifyRunnerJti(kv, jti),

    consumeClientJti: (jti, expiresAt) => consumeJti(kv, jti, expiresAt, now),

    signedOutAt: (userIds) => readSignOuts(kv, userIds),

    setPresence: (runnerId, userId, online) => setPresence(kv, runnerId, userId, online, now()),

    reportSession: (report) => recordSessionReport(kv, report, now()),

    liveShares: (shareIds) => liveShareIds(kv, shareIds, now()),

    reportViewer: (report) => recordViewer(kv, report, now()),

    watchRevocations(onChange, signal) {
      if (signal.aborted) return;
      const checks = localChecks.get(kv) ?? new Set();
      localChecks.set(kv, checks);
      checks.add(onChange);
      signal.addEventListener("abort", () => checks.delete(onChange), { once: true });
      const reader = kv.watch([REVOCATION_EPOCH_KEY, SIGN_OUT_EPOCH_KEY, SHARE_EPOCH_KEY]).getReader();
      signal.addEventListener("abort", () => reader.cancel().catch(() => {}), { once: true });
      (async () => {
        let first = true;
        try {
          for (;;) {
            const { done } = await reader.read();
            if (done || signal.aborted) return;
            // The first value is the epochs as they stand, not a change.
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
