/**
 * `/api/auth/*`: sign-up, sign-in, sign-out and the current user.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { LoginSchema, SignupSchema } from "./contract.ts";
import { type ApiDeps, type ApiEnv, ApiError, clientIp, readJson, tooManyRequests } from "./http.ts";
import {
  createLoginSession,
  deleteLoginSession,
  LOGIN_SESSION_TTL_MS,
  sessionCookieName,
} from "./login_sessions.ts";
import { checkOrigin, requireUser } from "./middleware.ts";
import { recordSignOut } from "./relay_backend.ts";
import { dummyPasswordHash, verifyPassword } from "./passwords.ts";
import {
  addressSubject,
  type AttemptLimit,
  type Backoff,
  clearBackoff,
  isRefusal,
  refundAttempts,
  takeAttempts,
  takeBackoffAttempt,
} from "./rate_limit.ts";
import { createUser, findUserByEmail, normalizeEmail } from "./users.ts";

const WRONG_CREDENTIALS = "wrong email or password";

/** Failed sign-ins allowed per IP address and account in 10 minutes: room for a person's typos. */
export const LOGIN_FAILURES_PER_IP_ACCOUNT: AttemptLimit = {
  scope: "login-ip-account",
  max: 20,
  windowMs: 10 * 60 * 1000,
};

/**
 * Failed sign-ins allowed per IP address in 10 minutes, whatever the account: far above what the
 * people behind one address mistype, so their failures never lock out someone else's right password.
 */
export const LOGIN_FAILURES_PER_IP: AttemptLimit = { scope: "login-ip", max: 100, windowMs: 10 * 60 * 1000 };

/**
 * Failed sign-ins per account, from every address together: after 30, each further attempt waits
 * 1 minute, doubling per failure up to 15 minutes (about 100 guesses a day at most); forgotten after
 * a day without failures or on a successful sign-in.
 */
export const LOGIN_ACCOUNT_BACKOFF: Backoff = {
  scope: "login-account",
  failuresBeforeDelay: 30,
  firstDelayMs: 60 * 1000,
  maxDelayMs: 15 * 60 * 1000,
  forgetMs: 24 * 60 * 60 * 1000,
};

const TOO_MANY_SIGN_INS = "too many failed sign-ins; try again later";

/** The auth routes, mounted at `/api/auth`. */
export function authRoutes(deps: ApiDeps): Hono<ApiEnv> {
  const { kv, config } = deps;
  const app = new Hono<ApiEnv>();
  const secure = config.publicUrl.startsWith("https:");
  const cookieName = sessionCookieName(config.publicUrl);

  const startSession = async (c: Context<ApiEnv>, userId: string) => {
    const id = await createLoginSession(kv, userId, deps.now());
    setCookie(c, cookieName, id, {
      httpOnly: true,
      sameSite: "Lax",
      secure,
      path: "/",
      maxAge: LOGIN_SESSION_TTL_MS / 1000,
    });
  };

  app.post("/signup", async (c) => {
    checkOrigin(c, config.allowedOrigins, false);
    const body = await readJson(c, SignupSchema);
    const user = await createUser(kv, {
      email: body.email,
      password: body.password,
      now: deps.now(),
      signupClosed: config.signup === "closed",
    });
    if (user === "email-taken") throw new ApiError(409, "an account with this email already exists");
    if (user === "signup-closed") throw new ApiError(403, "sign-up is closed");
    await startSession(c, user.id);
    return c.json({ user: { id: user.id, email: user.email } }, 201);
  });

  app.post("/login", async (c) => {
    checkOrigin(c, config.allowedOrigins, false);
    const body = await readJson(c, LoginSchema);
    const ip = addressSubject(clientIp(c, config.edge.clientIpHeader));
    // Counted by email whether or not such an account exists, so the limits do not tell which do.
    const account = normalizeEmail(body.email);
    // All taken before the password is hashed (and given back on success): a refused guess costs no
    // hashing, and concurrent guesses cannot all pass the limits before any of them is counted.
    const attempts = await takeAttempts(kv, [
      { limit: LOGIN_FAILURES_PER_IP_ACCOUNT, subject: JSON.stringify([ip, account]) },
      { limit: LOGIN_FAILURES_PER_IP, subject: ip },
    ], deps.now());
    if (isRefusal(attempts)) throw tooManyRequests(TOO_MANY_SIGN_INS, attempts.retryAfterMs);
    const waiting = await takeBackoffAttempt(kv, LOGIN_ACCOUNT_BACKOFF, account, deps.now());
    if (waiting) {
      await refundAttempts(kv, attempts, deps.now());
      throw tooManyRequests(TOO_MANY_SIGN_INS, waiting.retryAfterMs);
    }
    const user = await findUserByEmail(kv, account);
    const ok = await verifyPassword(body.password, user?.passwordHash ?? await dummyPasswordHash());
    if (!user || !ok) throw new ApiError(401, WRONG_CREDENTIALS);
    await refundAttempts(kv, attempts, deps.now());
    await clearBackoff(kv, LOGIN_ACCOUNT_BACKOFF, account);
    await startSession(c, user.id);
    return c.json({ user: { id: user.id, email: user.email } });
  });

  app.post("/logout", requireUser(deps), async (c) => {
    const id = getCookie(c, cookieName);
    if (id) await deleteLoginSession(kv, id);
    // The terminals opened while signed in must not outlive the sign-in: relays close them (4401).
    await recordSignOut(kv, c.var.user.id, deps.now());
    deleteCookie(c, cookieName, { path: "/", secure, httpOnly: true, sameSite: "Lax" });
    return c.json({ ok: true });
  });

  app.get("/me", requireUser(deps), (c) => c.json({ user: c.var.user }));

  return app;
}
