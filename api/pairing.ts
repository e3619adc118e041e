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
import { signRunnerToken } from "../relay/tokens.ts";
import { randomId, sha256Hex } from "./crypto.ts";
import { secretsEqual } from "../relay/secrets.ts";
import { type ApiDeps, ApiError, type SessionUser, tooManyRequests } from "./http.ts";
import { formatCode, generateCode, normalizeCode } from "./pairing_code.ts";
import { addressSubject, type AttemptLimit, isRefusal, refundAttempt, takeAttempt } from "./rate_limit.ts";
import { addRunnerCreate, addRunnerRekey, getRunnerEntry, type RunnerRecord } from "./runners.ts";

/** Compared against when a polled code is unknown, so both answers take the same work. */
const UNKNOWN_CODE_HASH = "0".repeat(64);

/** How long a pairing can be approved and collected. */
export const PAIRING_TTL_MS = 10 * 60 * 1000;
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
  status: "pending" | "approved" | "consumed";
  lastPollAt: number | null;
  approval: { userId: string; email: string; runnerId: string } | null;
}

/** Answer to `pair/start`. */
export interface PairingStarted {
  code: string;
  expiresAt: number;
  pollSecret: string;
  interval: number;
}

/** Answer to `pair/check`. */
export type PairingStatus =
  | { status: "pending" }
  | { status: "approved"; relayUrl: string; runnerId: string; runnerToken: string; user: { email: string } }
  | { status: "consumed" }
  | { status: "expired" };

/** What `pair/info` shows the approving user. */
export type PairingInfo =
  & Pick<PairingRecord, "code" | "name" | "hostname" | "os" | "ip" | "requestedAt" | "expiresAt">
  & {
    /**
     * Whether the runner asked from the approving browser's address. When not, the approve page
     * warns: a phishing link carries a code started on the attacker's machine.
     */
    sameAddress: boolean;
  };

function remainingMs(record: PairingRecord, now: number): number {
  return Math.max(1000, record.expiresAt - now);
}

/** Starts a pairing for a runner. */
export async function startPairing(
  kv: Deno.Kv,
  runner: RunnerDescription,
  ip: string,
  now: number,
): Promise<PairingStarted> {
  const start = await takeAttempt(kv, PAIR_STARTS_PER_IP, addressSubject(ip), now);
  if (isRefusal(start)) {
    throw tooManyRequests("too many pairings started from this address; try again later", start.retryAfterMs);
  }
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
      return {
        code: formatCode(record.code),
        expiresAt: record.expiresAt,
        pollSecret,
        interval: POLL_INTERVAL_SECONDS,
      };
    }
  }
}

/**
 * Looks up a live pairing by typed code for a signed-in user. Wrong codes
 * count toward the per-user limit (429 once used up), then 404. The attempt
 * is taken before the code is looked up, in one atomic step, so concurrent
 * guesses cannot all slip past the limit; it is given back when the code was right.
 */
async function findForUser(
  kv: Deno.Kv,
  input: string,
  userId: string,
  now: number,
): Promise<Deno.KvEntry<PairingRecord>> {
  const attempt = await takeAttempt(kv, WRONG_CODES_PER_USER, userId, now);
  if (isRefusal(attempt)) {
    throw tooManyRequests("too many wrong codes; try again later", attempt.retryAfterMs);
  }
  const code = normalizeCode(input);
  const entry = code ? await kv.get<PairingRecord>(["pairings", code]) : null;
  if (!entry?.value || entry.value.expiresAt <= now) throw new ApiError(404, "unknown or expired code");
  await refundAttempt(kv, attempt, now);
  if (entry.value.status !== "pending") throw new ApiError(409, "this code was already approved");
  return entry as Deno.KvEntry<PairingRecord>;
}

/** What is asking to be paired, for the approve page; `user.ip` is the approving browser's address. */
export async function pairingInfo(
  kv: Deno.Kv,
  input: string,
  user: { userId: string; ip: string },
  now: number,
): Promise<PairingInfo> {
  const { value } = await findForUser(kv, input, user.userId, now);
  return {
    sameAddress: value.ip === user.ip,
    code: formatCode(value.code),
    name: value.name,
    hostname: value.hostname,
    os: value.os,
    ip: value.ip,
    requestedAt: value.requestedAt,
    expiresAt: value.expiresAt,
  };
}

/**
 * Approves a pairing for `user`: registers a new runner, or with `runnerId`
 * re-pairs one of the user's runners (its old token revoked). Two concurrent
 * approvals of one code: exactly one wins, the other gets 409.
 */
export async function approvePairing(
  deps: ApiDeps,
  input: { code: string; runnerId?: string },
  user: SessionUser,
): Promise<{ runnerId: string }> {
  const { kv, now } = deps;
  for (;;) {
    const time = now();
    const entry = await findForUser(kv, input.code, user.id, time);
    const pairing = entry.value;
    const op = kv.atomic();
    let runnerId: string;
    if (input.runnerId !== undefined) {
      const runnerEntry = await getRunnerEntry(kv, input.runnerId);
      if (!runnerEntry.value) throw new ApiError(404, "runner not found");
      if (runnerEntry.value.userId !== user.id) {
        throw new ApiError(403, "this runner belongs to someone else");
      }
      runnerId = input.runnerId;
      addRunnerRekey(
        op,
        runnerEntry as Deno.KvEntry<RunnerRecord>,
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
    if (result.ok) return { runnerId };
  }
}

/**
 * The refusal of a poll without its secret, worded for a client written from
 * the spec (which polls with the code alone): RFC 8628 §5.2 says the user code
 * must never release the token by itself, so the poll also needs the secret
 * that only the runner got back from `pair/start`.
 */
export const MISSING_POLL_SECRET =
  "missing X-Pair-Secret header: send the pollSecret that POST /api/devmode/pair/start returned, " +
  "as X-Pair-Secret; the code alone never releases the runner token (RFC 8628 section 5.2)";

/** The RFC 8628 `slow_down` answer to a poll that came too soon. */
function slowDown(): ApiError {
  return tooManyRequests("polling too fast", POLL_INTERVAL_SECONDS * 1000, {
    status: "slow_down",
    interval: POLL_INTERVAL_SECONDS,
  });
}

/**
 * A runner's poll. Only a poll with the right secret is answered (403
 * without one; a wrong one is answered like an unknown code, 404) and counted
 * toward the interval (429 `slow_down` when faster).
 * The runner token is handed out exactly once: the switch to `consumed` is a
 * KV atomic check on the record's versionstamp, and the token is signed only
 * after that commit succeeded.
 */
export async function checkPairing(
  deps: ApiDeps,
  input: string,
  secret: string | undefined,
): Promise<PairingStatus> {
  const { kv, config } = deps;
  if (!secret) throw new ApiError(403, MISSING_POLL_SECRET);
  const code = normalizeCode(input);
  if (!code) throw new ApiError(400, "code is not a pairing code");
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
  if (!record || !secretMatches) throw new ApiError(404, "unknown or expired code", { status: "expired" });
  if (record.expiresAt <= time) return { status: "expired" };
  if (record.lastPollAt !== null && time - record.lastPollAt < POLL_INTERVAL_SECONDS * 1000 - POLL_SLACK_MS) {
    throw slowDown();
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
  if (!result.ok) throw slowDown();
  if (record.status !== "approved" || !record.approval) return { status: record.status } as PairingStatus;
  const { runnerId, userId, email } = record.approval;
  const runnerToken = await signRunnerToken(config.jwtSecret, { runnerId, userId, jti: record.id }, {
    now: new Date(time),
    ttlSeconds: config.runnerTokenTtlSeconds,
  });
  return { status: "approved", relayUrl: config.relayUrl, runnerId, runnerToken, user: { email } };
}
