/**
 * Routes for a standalone relay, authenticated with `X-Relay-Secret`:
 * runner-token verification, presence, what the relay saw of sessions,
 * client-token jtis (the one store both relays share) and sign-outs.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { consumeJti } from "@coda/relay";
import { CLIENT_TOKEN_TTL_SECONDS, CLOCK_TOLERANCE_SECONDS } from "@coda/relay/tokens";
import { secretsEqual } from "@coda/relay/secrets";
import {
  ClientJtiSchema,
  JtiParamSchema,
  LiveSharesSchema,
  PresenceSchema,
  SessionReportSchema,
  SignedOutSchema,
  ViewerReportSchema,
} from "./contract.ts";
import { recordSessionReport } from "./devmode_sessions.ts";
import { type ApiDeps, type ApiEnv, ApiError, parseWith, readJson } from "./http.ts";
import { readSignOuts } from "./relay_backend.ts";
import { setPresence, verifyRunnerJti } from "./runners.ts";
import { liveShareIds, recordViewer } from "./shares.ts";

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
    const jti = parseWith(JtiParamSchema, c.req.query("jti"));
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

  app.post("/internal/shares", async (c) => {
    requireRelaySecret(c, deps.config.relayInternalSecret);
    const body = await readJson(c, LiveSharesSchema);
    return c.json({ live: [...await liveShareIds(deps.kv, body.shareIds, deps.now())] });
  });

  app.post("/internal/share-viewer", async (c) => {
    requireRelaySecret(c, deps.config.relayInternalSecret);
    await recordViewer(deps.kv, await readJson(c, ViewerReportSchema), deps.now());
    return c.body(null, 204);
  });

  app.post("/internal/session", async (c) => {
    requireRelaySecret(c, deps.config.relayInternalSecret);
    await recordSessionReport(deps.kv, await readJson(c, SessionReportSchema), deps.now());
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
