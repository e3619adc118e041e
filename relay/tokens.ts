/**
 * Runner and client tokens: claims, signing and verification.
 *
 * HS256 only (the algorithm is never taken from the token), `iss` and `aud`
 * set and checked, at most 60 s of clock skew. A token of one type is never
 * accepted where the other is expected. Used by the API (to mint) and the
 * relay (to verify).
 *
 * @module
 */
import * as v from "valibot";
import { decodeJwt, errors, jwtVerify, SignJWT } from "jose";
import { MAX_IDEA_ID_LENGTH, RunnerIdSchema, SessionIdSchema } from "./protocol.ts";

/** `iss` of every token. */
export const TOKEN_ISSUER = "coda-devmode";
/** `aud` of every token: the relay is the only audience. */
export const TOKEN_AUDIENCE = "coda-relay";
/** Accepted clock skew, seconds. */
export const CLOCK_TOLERANCE_SECONDS = 60;
/** Default runner token lifetime: 30 days. */
export const DEFAULT_RUNNER_TOKEN_TTL_SECONDS = 30 * 24 * 60 * 60;
/** Client token lifetime: 60 seconds, one use. */
export const CLIENT_TOKEN_TTL_SECONDS = 60;

const Id = v.pipe(v.string(), v.minLength(1), v.maxLength(128));

/** Claims of a runner token (spec: `{ type: "runner", runnerId, userId }` plus `jti`). */
export const RunnerClaimsSchema = v.object({
  type: v.literal("runner"),
  runnerId: RunnerIdSchema,
  userId: Id,
  /** The pairing id; revocation is by jti. */
  jti: Id,
});
/** Claims of a runner token. */
export type RunnerClaims = v.InferOutput<typeof RunnerClaimsSchema>;

/** Claims of a short-lived client (browser) token. */
export const ClientClaimsSchema = v.object({
  type: v.literal("client"),
  userId: Id,
  sessionId: SessionIdSchema,
  runnerId: v.optional(RunnerIdSchema),
  ideaId: v.optional(v.pipe(v.string(), v.maxLength(MAX_IDEA_ID_LENGTH))),
  /**
   * The session ran a shell before (the app heard it attached): a runner that does not hold it
   * must answer that it ended rather than start a new shell under its id.
   */
  resume: v.optional(v.boolean()),
  /**
   * A watch-only link of a share (its id): the relay forwards output to it and nothing from it, and
   * closes it once the share is revoked or expires.
   */
  share: v.optional(Id),
  /** Who watches through the share: the invited account's email; absent for anyone holding the link. */
  viewer: v.optional(v.pipe(v.string(), v.maxLength(320))),
  /** Consumed by the relay on first use. */
  jti: Id,
});
/** Claims of a client token. */
export type ClientClaims = v.InferOutput<typeof ClientClaimsSchema>;

/** Why a token was refused. */
export type TokenFailure = "expired" | "invalid" | "wrong-type";

/** Thrown by the verify functions. */
export class TokenError extends Error {
  /** Machine-readable reason (also used as a metrics label). */
  readonly reason: TokenFailure;
  constructor(reason: TokenFailure, message: string) {
    super(message);
    this.name = "TokenError";
    this.reason = reason;
  }
}

/** Options shared by sign and verify. */
export interface TokenTimeOptions {
  /** The current time; defaults to `new Date()` (tests inject a clock). */
  now?: Date;
}

async function sign(
  secret: Uint8Array,
  claims: Record<string, unknown> & { jti: string },
  ttlSeconds: number,
  now: Date,
): Promise<string> {
  const { jti, ...payload } = claims;
  const iat = Math.floor(now.getTime() / 1000);
  return await new SignJWT(payload)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(TOKEN_AUDIENCE)
    .setJti(jti)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttlSeconds)
    .sign(secret);
}

/** Signs a runner token, valid `ttlSeconds` (default 30 days). */
export function signRunnerToken(
  secret: Uint8Array,
  claims: Omit<RunnerClaims, "type">,
  options: TokenTimeOptions & { ttlSeconds?: number } = {},
): Promise<string> {
  return sign(
    secret,
    { type: "runner", ...claims },
    options.ttlSeconds ?? DEFAULT_RUNNER_TOKEN_TTL_SECONDS,
    options.now ?? new Date(),
  );
}

/** Signs a client token, valid {@linkcode CLIENT_TOKEN_TTL_SECONDS}. */
export function signClientToken(
  secret: Uint8Array,
  claims: Omit<ClientClaims, "type">,
  options: TokenTimeOptions = {},
): Promise<string> {
  return sign(secret, { type: "client", ...claims }, CLIENT_TOKEN_TTL_SECONDS, options.now ?? new Date());
}

/** A verified token: its claims and its expiry (seconds since the epoch). */
export interface Verified<C> {
  claims: C;
  exp: number;
  /** When it was issued, seconds since the epoch (for a runner token: when it was paired). */
  iat: number;
}

async function verify<S extends typeof RunnerClaimsSchema | typeof ClientClaimsSchema>(
  secret: Uint8Array,
  token: string,
  schema: S,
  options: TokenTimeOptions,
  maxLifetimeSeconds: number | undefined,
): Promise<Verified<v.InferOutput<S>>> {
  let payload;
  try {
    ({ payload } = await jwtVerify(token, secret, {
      algorithms: ["HS256"],
      issuer: TOKEN_ISSUER,
      audience: TOKEN_AUDIENCE,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      currentDate: options.now,
      requiredClaims: ["exp", "jti", "iat"],
    }));
  } catch (error) {
    if (error instanceof errors.JWTExpired) throw new TokenError("expired", "token expired");
    throw new TokenError("invalid", "token invalid");
  }
  const expected = schema.entries.type.literal;
  if (payload.type !== expected) {
    throw new TokenError("wrong-type", `expected a ${expected} token`);
  }
  // A token minted "in the future" or living longer than its type allows was not minted by the app's rules
  // (a leaked key, a clock gone wrong): refuse it rather than let it outlive what the TTL promises.
  const iat = payload.iat as number;
  const nowSeconds = Math.floor((options.now ?? new Date()).getTime() / 1000);
  if (iat > nowSeconds + CLOCK_TOLERANCE_SECONDS) {
    throw new TokenError("invalid", "token issued in the future");
  }
  if (maxLifetimeSeconds !== undefined && (payload.exp as number) - iat > maxLifetimeSeconds) {
    throw new TokenError("invalid", "token lives longer than allowed");
  }
  const parsed = v.safeParse(schema, payload);
  if (!parsed.success) throw new TokenError("invalid", "token claims invalid");
  return { claims: parsed.output as v.InferOutput<S>, exp: payload.exp as number, iat };
}

/** Verifies a runner token; throws {@linkcode TokenError}. Does not check revocation. */
export function verifyRunnerToken(
  secret: Uint8Array,
  token: string,
  options: TokenTimeOptions = {},
): Promise<Verified<RunnerClaims>> {
  return verify(secret, token, RunnerClaimsSchema, options, undefined);
}

/**
 * Verifies a client token; throws {@linkcode TokenError}. Does not consume its
 * jti. One living longer than {@linkcode CLIENT_TOKEN_TTL_SECONDS} plus the
 * skew, or issued in the future, is invalid.
 */
export function verifyClientToken(
  secret: Uint8Array,
  token: string,
  options: TokenTimeOptions = {},
): Promise<Verified<ClientClaims>> {
  return verify(
    secret,
    token,
    ClientClaimsSchema,
    options,
    CLIENT_TOKEN_TTL_SECONDS + CLOCK_TOLERANCE_SECONDS,
  );
}

/** Reads a token's `exp` without verifying it (for display only, e.g. `coda-runner status`). */
export function peekExpiry(token: string): Date | null {
  try {
    const { exp } = decodeJwt(token);
    return typeof exp === "number" ? new Date(exp * 1000) : null;
  } catch {
    return null;
  }
}
