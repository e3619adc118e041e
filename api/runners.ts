/**
 * Paired runners in KV: records, the jti that is current for each, revocation
 * and presence.
 *
 * Keys:
 * - `["runners", runnerId]` → {@linkcode RunnerRecord}
 * - `["runners_by_user", userId, runnerId]` → `true` (listing)
 * - `["runner_jti", jti]` → {@linkcode RunnerIdentity} (the current jti only)
 * - `["revoked_jti", jti]` → `{revokedAt}` until the token would have expired anyway
 * - `["revocation_epoch"]` (`REVOCATION_EPOCH_KEY`) → `Deno.KvU64`, bumped on every revocation (the in-app
 *   relay watches it; relays in other processes sharing the KV poll it)
 * - `["presence", runnerId]` → {@linkcode Presence} (written for the relay; 90 s)
 * - `["runner_last_seen", runnerId]` → ms since the epoch
 * - `["default_runner", userId]` → runnerId the user marked as default (only ever set by the user)
 *
 * @module
 */
import type { RunnerIdentity } from "@coda/relay/backend";
import { REVOCATION_EPOCH_KEY } from "@coda/relay";
import { CLOCK_TOLERANCE_SECONDS } from "@coda/relay/tokens";
import { type Failure, failure, type Result, success } from "./result.ts";
import { cleanLabel, type RunnerView } from "./contract.ts";

/** A paired runner. */
export interface RunnerRecord {
  runnerId: string;
  userId: string;
  name: string;
  hostname: string;
  os: string;
  createdAt: number;
  /** The jti of the one runner token currently valid for this runner (its pairing id). */
  jti: string;
}

/** A presence record. */
export interface Presence {
  userId: string;
  lastSeenAt: number;
  expiresAt: number;
}

/** How long a presence record lasts without a refresh. */
export const PRESENCE_TTL_MS = 90_000;

function revokedFor(ttlSeconds: number): number {
  return (ttlSeconds + CLOCK_TOLERANCE_SECONDS) * 1000;
}

/** Reads a runner record with its versionstamp. */
export function getRunnerEntry(kv: Deno.Kv, runnerId: string): Promise<Deno.KvEntryMaybe<RunnerRecord>> {
  return kv.get<RunnerRecord>(["runners", runnerId]);
}

/** Why {@linkcode findOwnRunner} refused. */
export type OwnRunnerFailure = Failure<"runner_not_found" | "runner_not_yours">;

/** Reads a runner that must belong to `userId`. */
export async function findOwnRunner(
  kv: Deno.Kv,
  runnerId: string,
  userId: string,
): Promise<Result<Deno.KvEntry<RunnerRecord>, OwnRunnerFailure>> {
  const entry = await getRunnerEntry(kv, runnerId);
  if (!entry.value) return failure("runner_not_found");
  if (entry.value.userId !== userId) return failure("runner_not_yours");
  return success(entry as Deno.KvEntry<RunnerRecord>);
}

/** Adds the writes that register a new runner to `op` (fails the commit if the id is taken). */
export function addRunnerCreate(op: Deno.AtomicOperation, runner: RunnerRecord): Deno.AtomicOperation {
  return op
    .check({ key: ["runners", runner.runnerId], versionstamp: null })
    .set(["runners", runner.runnerId], runner)
    .set(["runners_by_user", runner.userId, runner.runnerId], true)
    .set(["runner_jti", runner.jti], { runnerId: runner.runnerId, userId: runner.userId });
}

/**
 * Adds the writes that give an existing runner a new jti (re-pairing) to `op`;
 * the old jti is revoked. Fails the commit if the runner changed meanwhile.
 */
export function addRunnerRekey(
  op: Deno.AtomicOperation,
  entry: Deno.KvEntry<RunnerRecord>,
  update: { jti: string; hostname?: string; os?: string },
  runnerTokenTtlSeconds: number,
  now: number,
): Deno.AtomicOperation {
  const runner = entry.value;
  const next: RunnerRecord = {
    ...runner,
    jti: update.jti,
    hostname: update.hostname ?? runner.hostname,
    os: update.os ?? runner.os,
  };
  return op
    .check(entry)
    .set(["runners", runner.runnerId], next)
    .delete(["runner_jti", runner.jti])
    .set(["runner_jti", update.jti], { runnerId: runner.runnerId, userId: runner.userId })
    .set(["revoked_jti", runner.jti], { revokedAt: now }, { expireIn: revokedFor(runnerTokenTtlSeconds) })
    .sum(REVOCATION_EPOCH_KEY, 1n);
}

/** The identity behind a runner token's jti, or `null` when revoked, replaced or unknown. */
export async function verifyRunnerJti(kv: Deno.Kv, jti: string): Promise<RunnerIdentity | null> {
  const [byJti, revoked] = await kv.getMany<[RunnerIdentity, unknown]>([["runner_jti", jti], [
    "revoked_jti",
    jti,
  ]]);
  if (!byJti.value || revoked.value !== null) return null;
  const runner = (await getRunnerEntry(kv, byJti.value.runnerId)).value;
  if (!runner || runner.jti !== jti || runner.userId !== byJti.value.userId) return null;
  return { runnerId: runner.runnerId, userId: runner.userId };
}

/**
 * The runner the user marked as default, if it still exists and is theirs. Pairing never sets it:
 * a runner approved through someone else's link must not become where the next terminal goes.
 */
export async function getDefaultRunner(kv: Deno.Kv, userId: string): Promise<string | null> {
  const marked = (await kv.get<string>(["default_runner", userId])).value;
  if (marked === null) return null;
  const runner = (await getRunnerEntry(kv, marked)).value;
  return runner?.userId === userId ? marked : null;
}

/**
 * Marks `runnerId` as the user's default runner, or (with `isDefault` false) clears the mark if it
 * is on that runner. The caller checked that the runner is the user's.
 */
export async function setDefaultRunner(
  kv: Deno.Kv,
  userId: string,
  runnerId: string,
  isDefault: boolean,
): Promise<void> {
  const key = ["default_runner", userId];
  if (isDefault) {
    await kv.set(key, runnerId);
    return;
  }
  for (;;) {
    const entry = await kv.get<string>(key);
    if (entry.value !== runnerId) return;
    if ((await kv.atomic().check(entry).delete(key).commit()).ok) return;
  }
}

/** The user's runners, oldest first, with presence. */
export async function listRunners(kv: Deno.Kv, userId: string, now: number): Promise<RunnerView[]> {
  const defaultRunner = await getDefaultRunner(kv, userId);
  const views: RunnerView[] = [];
  for await (const item of kv.list({ prefix: ["runners_by_user", userId] })) {
    const runnerId = item.key[2] as string;
    const [runner, presence, lastSeen] = await kv.getMany<[RunnerRecord, Presence, number]>([
      ["runners", runnerId],
      ["presence", runnerId],
      ["runner_last_seen", runnerId],
    ]);
    if (!runner.value || runner.value.userId !== userId) continue;
    const online = presence.value !== null && presence.value.expiresAt > now;
    // Cleaned again on the way out: records paired before labels were cleaned on the way in.
    views.push({
      runnerId,
      name: cleanLabel(runner.value.name),
      hostname: cleanLabel(runner.value.hostname),
      os: cleanLabel(runner.value.os),
      createdAt: runner.value.createdAt,
      lastSeenAt: lastSeen.value ?? presence.value?.lastSeenAt ?? null,
      online,
      isDefault: runnerId === defaultRunner,
    });
  }
  return views.sort((a, b) => a.createdAt - b.createdAt);
}

/** Renames a runner; `false` if it does not exist. */
export async function renameRunner(kv: Deno.Kv, runnerId: string, name: string): Promise<boolean> {
  for (;;) {
    const entry = await getRunnerEntry(kv, runnerId);
    if (!entry.value) return false;
    const result = await kv.atomic().check(entry).set(entry.key, { ...entry.value, name }).commit();
    if (result.ok) return true;
  }
}

/**
 * Revokes a runner: its jti is recorded as revoked, the runner is forgotten,
 * and the revocation epoch is bumped so a watching relay drops it at once.
 */
export async function revokeRunner(
  kv: Deno.Kv,
  runnerId: string,
  runnerTokenTtlSeconds: number,
  now: number,
): Promise<boolean> {
  for (;;) {
    const entry = await getRunnerEntry(kv, runnerId);
    if (!entry.value) return false;
    const runner = entry.value;
    const result = await kv.atomic()
      .check(entry)
      .delete(entry.key)
      .delete(["runners_by_user", runner.userId, runnerId])
      .delete(["runner_jti", runner.jti])
      .delete(["presence", runnerId])
      .delete(["runner_last_seen", runnerId])
      .set(["revoked_jti", runner.jti], { revokedAt: now }, { expireIn: revokedFor(runnerTokenTtlSeconds) })
      .sum(REVOCATION_EPOCH_KEY, 1n)
      .commit();
    if (result.ok) return true;
  }
}

/**
 * Records a runner online (refreshing its 90 s presence) or offline. Nothing
 * is written for a runner that is unknown, revoked or someone else's.
 */
export async function setPresence(
  kv: Deno.Kv,
  runnerId: string,
  userId: string,
  online: boolean,
  now: number,
): Promise<void> {
  for (;;) {
    const entry = await getRunnerEntry(kv, runnerId);
    if (!entry.value || entry.value.userId !== userId) return;
    const op = kv.atomic().check(entry).set(["runner_last_seen", runnerId], now);
    if (online) {
      const presence: Presence = { userId, lastSeenAt: now, expiresAt: now + PRESENCE_TTL_MS };
      op.set(["presence", runnerId], presence, { expireIn: PRESENCE_TTL_MS });
    } else {
      op.delete(["presence", runnerId]);
    }
    if ((await op.commit()).ok) return;
  }
}
