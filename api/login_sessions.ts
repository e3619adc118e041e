/**
 * Sign-in sessions: a random 256-bit id in a cookie, stored in KV only as its
 * SHA-256 so a leaked database does not hand out sessions.
 *
 * Keys: `["login_sessions", sha256(id)]` → {@linkcode LoginSession} (KV
 * `expireIn` plus a stored `expiresAt` checked on read).
 *
 * @module
 */
import { randomId, sha256Hex } from "./crypto.ts";

/** How long a sign-in lasts. */
export const LOGIN_SESSION_TTL_MS = 14 * 24 * 60 * 60 * 1000;

/** Name of the session cookie over plain http (local development). */
export const SESSION_COOKIE = "coda_session";

/**
 * The session cookie's name for an app served at `publicUrl`. Over https it
 * takes the `__Host-` prefix, which browsers only accept from the exact host,
 * Secure and for path `/`: a sibling subdomain cannot plant or shadow it.
 */
export function sessionCookieName(publicUrl: string): string {
  return publicUrl.startsWith("https:") ? `__Host-${SESSION_COOKIE}` : SESSION_COOKIE;
}

/** A stored sign-in. */
export interface LoginSession {
  userId: string;
  expiresAt: number;
}

/** Starts a session for `userId`; returns the cookie value (never stored as is). */
export async function createLoginSession(kv: Deno.Kv, userId: string, now: number): Promise<string> {
  const id = randomId(32);
  const session: LoginSession = { userId, expiresAt: now + LOGIN_SESSION_TTL_MS };
  await kv.set(["login_sessions", await sha256Hex(id)], session, { expireIn: LOGIN_SESSION_TTL_MS });
  return id;
}

/** The user id of a live session, or `null` for an unknown, expired or malformed id. */
export async function readLoginSession(kv: Deno.Kv, id: string, now: number): Promise<string | null> {
  if (!/^[A-Za-z0-9_-]{43}$/.test(id)) return null;
  const session = (await kv.get<LoginSession>(["login_sessions", await sha256Hex(id)])).value;
  if (!session || session.expiresAt <= now) return null;
  return session.userId;
}

/** Ends a session. */
export async function deleteLoginSession(kv: Deno.Kv, id: string): Promise<void> {
  await kv.delete(["login_sessions", await sha256Hex(id)]);
}
