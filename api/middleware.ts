/**
 * Middleware: who is signed in, and the Origin check that stops cross-site
 * requests (CSRF) on cookie-authenticated writes.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import type { RunnerIdentity } from "@coda/relay/backend";
import { TokenError, verifyRunnerToken } from "@coda/relay/tokens";
import { type ApiDeps, type ApiEnv, ApiError } from "./http.ts";
import { verifyRunnerJti } from "./runners.ts";
import { readLoginSession, sessionCookieName } from "./login_sessions.ts";
import { getUser } from "./users.ts";

const UNSAFE_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/**
 * Throws 403 unless the request's `Origin` is one of `allowedOrigins`.
 * `required`: whether a missing Origin is refused too (cookie-authenticated writes).
 */
export function checkOrigin(c: Context, allowedOrigins: string[], required: boolean): void {
  const origin = c.req.header("origin");
  if (origin === undefined) {
    if (required) throw new ApiError(403, "missing Origin header");
    return;
  }
  if (!allowedOrigins.includes(origin)) throw new ApiError(403, "cross-origin request refused");
}

/** The user the request's login cookie belongs to, if any (for routes open to anyone as well). */
export async function signedInUser(c: Context, deps: ApiDeps): Promise<{ id: string; email: string } | null> {
  const sessionId = getCookie(c, sessionCookieName(deps.config.publicUrl));
  const userId = sessionId ? await readLoginSession(deps.kv, sessionId, deps.now()) : null;
  const user = userId ? await getUser(deps.kv, userId) : null;
  return user && { id: user.id, email: user.email };
}

/**
 * Requires a signed-in user (401 otherwise) and sets `c.var.user`. For
 * POST/PUT/PATCH/DELETE the `Origin` must be the app's (403 otherwise).
 */
export function requireUser(deps: ApiDeps): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const user = await signedInUser(c, deps);
    if (!user) throw new ApiError(401, "sign in first");
    if (UNSAFE_METHODS.has(c.req.method)) checkOrigin(c, deps.config.allowedOrigins, true);
    c.set("user", { id: user.id, email: user.email });
    await next();
  };
}

/**
 * The runner behind the request's `Authorization: Bearer` runner token (type, signature, expiry,
 * and a jti that is still current); 401 otherwise.
 */
export async function requireRunner(c: Context, deps: ApiDeps): Promise<RunnerIdentity> {
  const match = /^Bearer (\S+)$/.exec(c.req.header("authorization") ?? "");
  if (!match) throw new ApiError(401, "runner token required (Authorization: Bearer)");
  try {
    const { claims } = await verifyRunnerToken(deps.config.jwtSecret, match[1], {
      now: new Date(deps.now()),
    });
    const identity = await verifyRunnerJti(deps.kv, claims.jti);
    if (!identity || identity.runnerId !== claims.runnerId || identity.userId !== claims.userId) {
      throw new ApiError(401, "runner token revoked");
    }
    return identity;
  } catch (error) {
    if (error instanceof TokenError) throw new ApiError(401, `runner token ${error.reason}`);
    throw error;
  }
}
