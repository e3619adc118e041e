/**
 * Terminal sessions a user opened, so a client can reattach (after a reload or
 * a dropped link) and nobody else can.
 *
 * Keys: `["devmode_sessions", sessionId]` → {@linkcode DevSession};
 * `["devmode_sessions_by_user", userId, createdAt, sessionId]` → `true` (newest first listing).
 *
 * @module
 */
import { randomId } from "./crypto.ts";

/** A terminal session. */
export interface DevSession {
  /** 22 characters of base64url (128 random bits). */
  sessionId: string;
  userId: string;
  ideaId: string;
  /** The runner asked for, if any (otherwise the relay picks the user's latest online runner). */
  runnerId: string | null;
  createdAt: number;
}

/** Most sessions listed at once. */
export const SESSION_LIST_LIMIT = 50;

/** Reads a session. */
export async function getDevSession(kv: Deno.Kv, sessionId: string): Promise<DevSession | null> {
  return (await kv.get<DevSession>(["devmode_sessions", sessionId])).value;
}

/** Records a new session for `userId`. */
export async function createDevSession(
  kv: Deno.Kv,
  input: { userId: string; ideaId: string; runnerId: string | null; now: number },
): Promise<DevSession> {
  for (;;) {
    const session: DevSession = {
      sessionId: randomId(),
      userId: input.userId,
      ideaId: input.ideaId,
      runnerId: input.runnerId,
      createdAt: input.now,
    };
    const result = await kv.atomic()
      .check({ key: ["devmode_sessions", session.sessionId], versionstamp: null })
      .set(["devmode_sessions", session.sessionId], session)
      .set(["devmode_sessions_by_user", session.userId, session.createdAt, session.sessionId], true)
      .commit();
    if (result.ok) return session;
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
