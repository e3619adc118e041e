/**
 * Terminal sessions a user opened, so a client can reattach (after a reload or
 * a dropped link) and nobody else can.
 *
 * Keys: `["devmode_sessions", sessionId]` → {@linkcode DevSession};
 * `["devmode_sessions_by_user", userId, createdAt, sessionId]` → `true` (newest first listing);
 * `["devmode_session_quota", userId]` → {@linkcode SessionQuota} (KV `expireIn` plus times checked
 * against the injected clock).
 *
 * The relay reports what it sees of each session ({@linkcode recordSessionReport}): the runner
 * that answered its attach, its directory, its end. With presence and the runner records that
 * decides which sessions can still be reattached ({@linkcode listLiveSessions}).
 *
 * @module
 */
import type { SessionReport } from "@coda/relay/backend";
import { cleanLabel, type RecentSession } from "./contract.ts";
import { randomId } from "./crypto.ts";
import { type Failure, failure, type Limited, type Result, success } from "./result.ts";
import { listRunners } from "./runners.ts";

/** A terminal session. */
export interface DevSession {
  /** 22 characters of base64url (128 random bits). */
  sessionId: string;
  userId: string;
  ideaId: string;
  /** The runner asked for, if any (otherwise the relay picks the user's latest online runner). */
  runnerId: string | null;
  createdAt: number;
  /** The runner that last answered an attach for it, as the relay reported (absent: none yet). */
  servedBy?: string;
  /** Its working directory, as the relay last reported it. */
  cwd?: string;
  /** When the relay reported its end (a later attach clears it: the id runs a shell again). */
  endedAt?: number | null;
}

/** Longest working directory kept for a session, in characters (longer ones are cut). */
export const MAX_SESSION_CWD_LENGTH = 4096;

/** Most sessions listed at once. */
export const SESSION_LIST_LIMIT = 50;

/** The sliding window {@linkcode MAX_NEW_SESSIONS} counts in: 10 minutes. */
export const SESSION_WINDOW_MS = 10 * 60 * 1000;

/**
 * Most new sessions one user may create in any {@linkcode SESSION_WINDOW_MS}.
 * A demanding user opens 20–50 terminals and reloads a few; 120 leaves room
 * for that twice over, while a script creating hundreds a second (each one a
 * session record and a recording to fill) is stopped after 120. Reattaching
 * to an existing session does not count. How many sessions are attached at
 * once is the relay's cap (`maxClientsPerUser`): this API hears of a
 * session's end only as the relay's best-effort report, so it limits creation instead.
 */
export const MAX_NEW_SESSIONS = 120;

/** Why {@linkcode createDevSession} refused: the user created {@linkcode MAX_NEW_SESSIONS} within the window. */
export type CreateSessionFailure = Limited<"session_limit">;

/** Creation times of a user's sessions within the window, oldest first. */
interface SessionQuota {
  createdAt: number[];
}

/** Why {@linkcode findOwnSession} refused. */
export type OwnSessionFailure = Failure<"session_not_found" | "session_not_yours">;

/** Why {@linkcode findReattachableSession} refused. */
export type ReattachFailure = OwnSessionFailure | Failure<"session_ended">;

/** Reads a session. */
export async function getDevSession(kv: Deno.Kv, sessionId: string): Promise<DevSession | null> {
  return (await kv.get<DevSession>(["devmode_sessions", sessionId])).value;
}

/** Reads a session that must belong to `userId`. */
export async function findOwnSession(
  kv: Deno.Kv,
  sessionId: string,
  userId: string,
): Promise<Result<DevSession, OwnSessionFailure>> {
  const session = await getDevSession(kv, sessionId);
  if (!session) return failure("session_not_found");
  if (session.userId !== userId) return failure("session_not_yours");
  return success(session);
}

/**
 * A session of `userId` a client may attach to again: one whose end the relay reported is
 * `session_ended` (its shell is gone; attaching would only meet "ended" or start a new one).
 */
export async function findReattachableSession(
  kv: Deno.Kv,
  sessionId: string,
  userId: string,
): Promise<Result<DevSession, ReattachFailure>> {
  const found = await findOwnSession(kv, sessionId, userId);
  if (found.ok && typeof found.value.endedAt === "number") return failure("session_ended");
  return found;
}

/**
 * Applies what the relay saw of a session. A report from a runner of another user than the
 * session's (or about an unknown session) changes nothing.
 */
export async function recordSessionReport(kv: Deno.Kv, report: SessionReport, now: number): Promise<void> {
  for (;;) {
    const entry = await kv.get<DevSession>(["devmode_sessions", report.sessionId]);
    const session = entry.value;
    if (!session || session.userId !== report.userId) return;
    const next: DevSession = { ...session };
    if (report.runnerId !== undefined) {
      next.servedBy = report.runnerId;
      next.endedAt = null;
    }
    if (report.cwd !== undefined) next.cwd = cleanLabel(report.cwd).slice(0, MAX_SESSION_CWD_LENGTH);
    if (report.ended) next.endedAt = session.endedAt ?? now;
    if ((await kv.atomic().check(entry).set(entry.key, next).commit()).ok) return;
  }
}

/**
 * The user's sessions that can be reattached now, newest first: not reported ended, on a runner
 * that is still theirs (not revoked) and online (the relay's presence). A session no runner ever
 * answered for has no shell to go back to and is left out too.
 */
export async function listLiveSessions(kv: Deno.Kv, userId: string, now: number): Promise<RecentSession[]> {
  const runners = new Map((await listRunners(kv, userId, now)).map((runner) => [runner.runnerId, runner]));
  const live: RecentSession[] = [];
  for (const session of await listDevSessions(kv, userId)) {
    const runner = runners.get(session.servedBy ?? "");
    if (typeof session.endedAt === "number" || !runner?.online) continue;
    live.push({
      sessionId: session.sessionId,
      ideaId: session.ideaId,
      runnerId: runner.runnerId,
      runnerName: runner.name,
      cwd: session.cwd ?? null,
      createdAt: session.createdAt,
    });
  }
  return live;
}

/**
 * Records a new session for `userId`, counting it against
 * {@linkcode MAX_NEW_SESSIONS}. The count is checked and updated in the same
 * atomic operation that writes the session, so concurrent requests cannot all
 * pass one check. Once the quota is used up, refuses with `session_limit`,
 * retrying when the oldest counted creation leaves the window.
 */
export async function createDevSession(
  kv: Deno.Kv,
  input: { userId: string; ideaId: string; runnerId: string | null; now: number },
): Promise<Result<DevSession, CreateSessionFailure>> {
  const quotaKey = ["devmode_session_quota", input.userId];
  for (;;) {
    const quota = await kv.get<SessionQuota>(quotaKey);
    const recent = (quota.value?.createdAt ?? []).filter((t) => t > input.now - SESSION_WINDOW_MS);
    if (recent.length >= MAX_NEW_SESSIONS) {
      return failure("session_limit", recent[0] + SESSION_WINDOW_MS - input.now);
    }
    const session: DevSession = {
      sessionId: randomId(),
      userId: input.userId,
      ideaId: input.ideaId,
      runnerId: input.runnerId,
      createdAt: input.now,
    };
    const result = await kv.atomic()
      .check(quota)
      .check({ key: ["devmode_sessions", session.sessionId], versionstamp: null })
      .set(quotaKey, { createdAt: [...recent, input.now] } satisfies SessionQuota, {
        expireIn: SESSION_WINDOW_MS,
      })
      .set(["devmode_sessions", session.sessionId], session)
      .set(["devmode_sessions_by_user", session.userId, session.createdAt, session.sessionId], true)
      .commit();
    if (result.ok) return success(session);
  }
}

/** The user's sessions, newest first (at most {@linkcode SESSION_LIST_LIMIT}). */
export async function listDevSessions(kv: Deno.Kv, userId: string): Promise<DevSession[]> {
  const keys: Deno.KvKey[] = [];
  const iter = kv.list({ prefix: ["devmode_sessions_by_user", userId] }, {
    reverse: true,
    limit: SESSION_LIST_LIMIT,
  });
  for await (const item of iter) keys.push(["devmode_sessions", item.key[3] as string]);
  const sessions: DevSession[] = [];
  for (let i = 0; i < keys.length; i += 10) {
    for (const entry of await kv.getMany<DevSession[]>(keys.slice(i, i + 10))) {
      if (entry.value) sessions.push(entry.value);
    }
  }
  return sessions;
}
