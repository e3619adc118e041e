/**
 * Routes for a standalone relay, authenticated with `X-Relay-Secret`:
 * runner-token verification, presence, client-token jtis (the one store both
 * relays share) and sign-outs.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import * as v from "valibot";
import { MAX_SIGN_OUT_QUERY } from "../relay/backend.ts";
import { consumeJti } from "../relay/jti_store.ts";
import { RunnerIdSchema } from "../relay/protocol.ts";
import { CLIENT_TOKEN_TTL_SECONDS, CLOCK_TOLERANCE_SECONDS } from "../relay/tokens.ts";
import { secretsEqual } from "../relay/secrets.ts";
import { type ApiDeps, type ApiEnv, ApiError, readJson } from "./http.ts";
import { readSignOuts } from "./relay_backend.ts";
import { setPresence, verifyRunnerJti } from "./runners.ts";

const UserIdSchema = v.pipe(v.string(), v.minLength(1), v.maxLength(128));

/** Body of `POST /api/devmode/internal/presence`. */
export const PresenceSchema = v.object({
  runnerId: RunnerIdSchema,
  userId: UserIdSchema,
  online: v.boolean(),
});

/** Body of `POST /api/devmode/internal/client-jti`: a client token's jti and its expiry (ms since the epoch). */
export const ClientJtiSchema = v.object({
  jti: v.pipe(v.string(), v.minLength(1), v.maxLength(128)),
  expiresAt: v.pipe(v.number(), v.safeInteger(), v.minValue(0)),
});

/** Body of `POST /api/devmode/internal/signed-out`: the users whose last sign-out is wanted. */
export const SignedOutSchema = v.object({
  userIds: v.pipe(v.array(UserIdSchema), v.maxLength(MAX_SIGN_OUT_QUERY)),
});

function requireRelaySecret(c: Context, expected: string): void {
  const given = c.req.header("x-relay-secret");
  if (!given || !secretsEqual(given, expected)) {
    throw new ApiError(401, "missing or wrong X-Relay-Secret");
  }
}

/** The relay-facing routes, mounted at `/api/devmode`. */
export function internalRoutes(deps: ApiDeps): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();

  app.get("/tokens/runner/verify", async (c) => {
    requireRelaySecret(c, deps.config.relayInternalSecret);
    const jti = c.req.query("jti");
    if (!jti || jti.length > 128) throw new ApiError(400, "jti query parameter is required");
    const identity = await verifyRunnerJti(deps.kv, jti);
    if (!identity) return c.json({ valid: false }, 403);
    return c.json({ valid: true, runnerId: identity.runnerId, userId: identity.userId });
  });

  app.post("/internal/presence", async (c) => {
    requireRelaySecret(c, deps.config.relayInternalSecret);
    const body = await readJson(c, PresenceSchema);
    await setPresence(deps.kv, body.runnerId, body.userId, body.online, deps.now());
    return c.body(null, 204);
  });

  app.post("/internal/client-jti", async (c) => {
    requireRelaySecret(c, deps.config.relayInternalSecret);
    const body = await readJson(c, ClientJtiSchema);
    // No verifiable client token expires later than this: a larger value would only pin the record.
    const latest = deps.now() + (CLIENT_TOKEN_TTL_SECONDS + CLOCK_TOLERANCE_SECONDS) * 1000;
    const expiresAt = new Date(Math.min(body.expiresAt, latest));
    return c.json({ fresh: await consumeJti(deps.kv, body.jti, expiresAt, deps.now) });
  });

  app.post("/internal/signed-out", async (c) => {
    requireRelaySecret(c, deps.config.relayInternalSecret);
    const body = await readJson(c, SignedOutSchema);
    return c.json({ signedOut: Object.fromEntries(await readSignOuts(deps.kv, body.userIds)) });
  });

  return app;
}
