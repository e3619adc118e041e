/**
 * Pairing a runner with a user, after RFC 8628 (device authorization grant).
 *
 * The runner starts a pairing and shows its code; a signed-in user looks the
 * code up (to see what asks for access) and approves it; the runner, polling
 * with its secret, receives its runner token exactly once.
 *
 * Keys: `["pairings", code]` → {@linkcode PairingRecord}, 10 minutes (KV
 * `expireIn`, and `expiresAt` checked on every read).
 *
 * @module
 */
import { signRunnerToken } from "@coda/relay/tokens";
import { randomId, sha256Hex } from "./crypto.ts";
import { secretsEqual } from "@coda/relay/secrets";
import type { ApiDeps, SessionUser } from "./http.ts";
import type { PairInfo, PairStarted, PairStatus } from "./contract.ts";
import { formatCode, generateCode, normalizeCode, PAIRING_TTL_MS } from "./pairing_code.ts";
import { addressSubject, type AttemptLimit, isRefusal, refundAttempt, takeAttempt } from "./rate_limit.ts";
import { type Failure, failure, type Limited, type Result, success } from "./result.ts";
import { addRunnerCreate, addRunnerRekey, findOwnRunner, type OwnRunnerFailure } from "./runners.ts";

/** Compared against when a polled code is unknown, so both answers take the same work. */
const UNKNOWN_CODE_HASH = "0".repeat(64);

/** Seconds a runner waits between polls. */
export const POLL_INTERVAL_SECONDS = 5;
/** Polls may come this much early (network jitter) before they count as too fast. */
export const POLL_SLACK_MS = 1000;
/**
 * Wrong codes allowed per user in 10 minutes. Only per user: look-ups need a sign-in, and a
 * per-address count would let one account lock out every other account behind the same address.
 */
export const WRONG_CODES_PER_USER: AttemptLimit = {
  scope: "pair-code-user",
  max: 5,
  windowMs: 10 * 60 * 1000,
};

/** Pairings one IP address may start in 10 minutes (a runner needs one per 10 minutes). */
export const PAIR_STARTS_PER_IP: AttemptLimit = {
  scope: "pair-start-ip",
  max: 100,
  windowMs: 10 * 60 * 1000,
};

/** What the runner said about itself when it started pairing. */
export interface RunnerDescription {
  name?: string;
  hostname?: string;
  os?: string;
}

/** A pairing in KV. */
export interface PairingRecord {
  /** The pairing id; becomes the runner token's jti. */
  id: string;
  /** Normalized (no hyphen). */
  code: string;
  pollSecretHash: string;
  name: string | null;
  hostname: string | null;
  os: string | null;
  /** The runner's address as the server saw it. */
  ip: string;
  requestedAt: number;
  expiresAt: number;
  /** `denied`: the user refused it on the approve page; the runner's next poll says so. */
  status: "pending" | "approved" | "consumed" | "denied";
  lastPollAt: number | null;
  approval: { userId: string; email: string; runnerId: string } | null;
}

/** Why `pair/start` was refused: the address started too many pairings. */
export type StartFailure = Limited<"start_limited">;

/** Why a typed code was refused (`pair/info`, `pair/approve`). */
export type CodeFailure = Limited<"wrong_code_limited"> | Failure<"unknown_code" | "already_approved">;

/** Why `pair/approve` was refused. */
export type ApproveFailure = CodeFailure | OwnRunnerFailure;

/** Why a poll was refused; `slow_down` is RFC 8628's answer to a poll that came too soon. */
export type CheckFailure =
  | Failure<"missing_poll_secret" | "not_a_code" | "unknown_poll">
  | Limited<"slow_down">;

function remainingMs(record: PairingRecord, now: number): number {
  return Math.max(1000, record.expiresAt - now);
}

/** Starts a pairing for a runner. */
export async function startPairing(
  kv: Deno.Kv,
  runner: RunnerDescription,
  ip: string,
  now: number,
): Promise<Result<PairStarted, StartFailure>> {
  const start = await takeAttempt(kv, PAIR_STARTS_PER_IP, addressSubject(ip), now);
  if (isRefusal(start)) return failure("start_limited", start.retryAfterMs);
  const pollSecret = randomId(32);
  const pollSecretHash = await sha256Hex(pollSecret);
  for (;;) {
    const record: PairingRecord = {
      id: randomId(),
      code: generateCode(),
      pollSecretHash,
      name: runner.name ?? null,
      hostname: runner.hostname ?? null,
      os: runner.os ?? null,
      ip,
      requestedAt: now,
      expiresAt: now + PAIRING_TTL_MS,
      status: "pending",
      lastPollAt: null,
      approval: null,
    };
    const result = await kv.atomic()
      .check({ key: ["pairings", record.code], versionstamp: null })
      .set(["pairings", record.code], record, { expireIn: PAIRING_TTL_MS })
      .commit();
    if (result.ok) {
      return success({
        code: formatCode(record.code),
        expiresAt: record.expiresAt,
        pollSecret,
        interval: POLL_INTERVAL_SECONDS,
      });
    }
  }
}

/**
 * Looks up a live pairing by typed code for a signed-in user. Wrong codes
 * count toward the per-user limit (`wrong_code_limited` once used up), then
 * are `unknown_code`. The attempt is taken before the code is looked up, in
 * one atomic step, so concurrent guesses cannot all slip past the limit; it
 * is given back when the code was right.
 */
async function findForUser(
  kv: Deno.Kv,
  input: string,
  userId: string,
  now: number,
): Promise<Result<Deno.KvEntry<PairingRecord>, CodeFailure>> {
  const attempt = await takeAttempt(kv, WRONG_CODES_PER_USER, userId, now);
  if (isRefusal(attempt)) return failure("wrong_code_limited", attempt.retryAfterMs);
  const code = normalizeCode(input);
  const entry = code ? await kv.get<PairingRecord>(["pairings", code]) : null;
  if (!entry?.value || entry.value.expiresAt <= now) return failure("unknown_code");
  await refundAttempt(kv, attempt, now);
  if (entry.value.status !== "pending") return failure("already_approved");
  return success(entry as Deno.KvEntry<PairingRecord>);
}

/** What is asking to be paired, for the approve page; `user.ip` is the approving browser's address. */
export async function pairingInfo(
  kv: Deno.Kv,
  input: string,
  user: { userId: string; ip: string },
  now: number,
): Promise<Result<PairInfo, CodeFailure>> {
  const found = await findForUser(kv, input, user.userId, now);
  if (!found.ok) return found;
  const { value } = found.value;
  return success({
    sameAddress: value.ip === user.ip,
    code: formatCode(value.code),
    name: value.name,
    hostname: value.hostname,
    os: value.os,
    ip: value.ip,
    requestedAt: value.requestedAt,
    expiresAt: value.expiresAt,
  });
}

/**
 * Approves a pairing for `user`: registers a new runner, or with `runnerId`
 * re-pairs one of the user's runners (its old token revoked). Two concurrent
 * approvals of one code: exactly one wins, the other gets `already_approved`.
 */
export async function approvePairing(
  deps: ApiDeps,
  input: { code: string; runnerId?: string },
  user: SessionUser,
): Promise<Result<{ runnerId: string }, ApproveFailure>> {
  const { kv, now } = deps;
  for (;;) {
    const time = now();
    const found = await findForUser(kv, input.code, user.id, time);
    if (!found.ok) return found;
    const entry = found.value;
    const pairing = entry.value;
    const op = kv.atomic();
    let runnerId: string;
    if (input.runnerId !== undefined) {
      const runner = await findOwnRunner(kv, input.runnerId, user.id);
      if (!runner.ok) return runner;
      runnerId = input.runnerId;
      addRunnerRekey(
        op,
        runner.value,
        { jti: pairing.id, hostname: pairing.hostname ?? undefined, os: pairing.os ?? undefined },
        deps.config.runnerTokenTtlSeconds,
        time,
      );
    } else {
      runnerId = randomId();
      addRunnerCreate(op, {
        runnerId,
        userId: user.id,
        name: pairing.name ?? pairing.hostname ?? "runner",
        hostname: pairing.hostname ?? "",
        os: pairing.os ?? "",
        createdAt: time,
        jti: pairing.id,
      });
    }
    const approved: PairingRecord = {
      ...pairing,
      status: "approved",
      approval: { userId: user.id, email: user.email, runnerId },
    };
    const result = await op
      .check(entry)
      .set(entry.key, approved, { expireIn: remainingMs(pairing, time) })
      .commit();
    if (result.ok) return success({ runnerId });
  }
}

/**
 * Denies a pending pairing for `user` (Cancel on the approve page): the runner's next poll answers
 * `denied` and it stops, instead of polling until the code expires. Counted like a look-up, so a
 * denial cannot be used to test codes; a code already approved (or denied) is `already_approved`.
 */
export async function denyPairing(
  deps: ApiDeps,
  input: { code: string },
  user: SessionUser,
): Promise<Result<void, CodeFailure>> {
  const { kv, now } = deps;
  for (;;) {
    const time = now();
    const found = await findForUser(kv, input.code, user.id, time);
    if (!found.ok) return found;
    const entry = found.value;
    const denied: PairingRecord = { ...entry.value, status: "denied" };
    const result = await kv.atomic()
      .check(entry)
      .set(entry.key, denied, { expireIn: remainingMs(entry.value, time) })
      .commit();
    if (result.ok) return success(undefined);
  }
}

/** The RFC 8628 `slow_down` refusal of a poll that came too soon. */
function slowDown(): Limited<"slow_down"> {
  return failure("slow_down", POLL_INTERVAL_SECONDS * 1000);
}

/**
 * A runner's poll. Only a poll with the right secret is answered
 * (`missing_poll_secret` without one; a wrong one is `unknown_poll`, like an
 * unknown code) and counted toward the interval (`slow_down` when faster).
 * The runner token is handed out exactly once: the switch to `consumed` is a
 * KV atomic check on the record's versionstamp, and the token is signed only
 * after that commit succeeded.
 */
export async function checkPairing(
  deps: ApiDeps,
  input: string,
  secret: string | undefined,
): Promise<Result<PairStatus, CheckFailure>> {
  const { kv, config } = deps;
  if (!secret) return failure("missing_poll_secret");
  const code = normalizeCode(input);
  if (!code) return failure("not_a_code");
  const time = deps.now();
  const entry = await kv.get<PairingRecord>(["pairings", code]);
  const record = entry.value;
  // A wrong secret gets the very answer an unknown code gets: otherwise this unauthenticated,
  // unlimited endpoint would tell anyone which codes are live, and the wrong-code limits of
  // info/approve would only ever meet right guesses.
  const secretMatches = secretsEqual(
    await sha256Hex(secret),
    record?.pollSecretHash ?? UNKNOWN_CODE_HASH,
  );
  if (!record || !secretMatches) return failure("unknown_poll");
  if (record.expiresAt <= time) return success({ status: "expired" });
  if (record.lastPollAt !== null && time - record.lastPollAt < POLL_INTERVAL_SECONDS * 1000 - POLL_SLACK_MS) {
    return slowDown();
  }
  const next: PairingRecord = {
    ...record,
    lastPollAt: time,
    status: record.status === "approved" ? "consumed" : record.status,
  };
  const result = await kv.atomic()
    .check(entry)
    .set(entry.key, next, { expireIn: remainingMs(record, time) })
    .commit();
  if (!result.ok) return slowDown();
  if (record.status !== "approved" || !record.approval) {
    return success({ status: record.status } as PairStatus);
  }
  const { runnerId, userId, email } = record.approval;
  const runnerToken = await signRunnerToken(config.jwtSecret, { runnerId, userId, jti: record.id }, {
    now: new Date(time),
    ttlSeconds: config.runnerTokenTtlSeconds,
  });
  return success({ status: "approved", relayUrl: config.relayUrl, runnerId, runnerToken, user: { email } });
}
