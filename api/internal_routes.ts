/**
 * Routes for a standalone relay, authenticated with `X-Relay-Secret`:
 * runner-token verification and presence.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import * as v from "valibot";
import { RunnerIdSchema } from "../relay/protocol.ts";
import { secretsEqual } from "./crypto.ts";
import { type ApiDeps, type ApiEnv, ApiError, readJson } from "./http.ts";
import { setPresence, verifyRunnerJti } from "./runners.ts";

/** Body of `POST /api/devmode/internal/presence`. */
export const PresenceSchema = v.object({
  runnerId: RunnerIdSchema,
  userId: v.pipe(v.string(), v.minLength(1), v.maxLength(128)),
  online: v.boolean(),
});

async function requireRelaySecret(c: Context, expected: string): Promise<void> {
  const given = c.req.header("x-relay-secret");
  if (!given || !(await secretsEqual(given, expected))) {
    throw new ApiError(401, "missing or wrong X-Relay-Secret");
  }
}

/** The relay-facing routes, mounted at `/api/devmode`. */
export function internalRoutes(deps: ApiDeps): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();

  app.get("/tokens/runner/verify", async (c) => {
    await requireRelaySecret(c, deps.config.relayInternalSecret);
    const jti = c.req.query("jti");
    if (!jti || jti.length > 128) throw new ApiError(400, "jti query parameter is required");
    const identity = await verifyRunnerJti(deps.kv, jti);
    if (!identity) return c.json({ valid: false }, 403);
    return c.json({ valid: true, runnerId: identity.runnerId, userId: identity.userId });
  });

  app.post("/internal/presence", async (c) => {
    await requireRelaySecret(c, deps.config.relayInternalSecret);
    const body = await readJson(c, PresenceSchema);
    await setPresence(deps.kv, body.runnerId, body.userId, body.online, deps.now());
    return c.body(null, 204);
  });

  return app;
}
