/**
 * `/api/devmode/sessions`: client tokens for new and existing terminal
 * sessions, and the user's recent sessions.
 *
 * @module
 */
import { Hono } from "hono";
import { signClientToken } from "../relay/tokens.ts";
import { CreateSessionSchema, type RecentSession } from "./contract.ts";
import { randomId } from "./crypto.ts";
import { createDevSession, type DevSession, findOwnSession, listDevSessions } from "./devmode_sessions.ts";
import { type ApiDeps, type ApiEnv, ApiError, readJson } from "./http.ts";
import { requireUser } from "./middleware.ts";
import { unwrap } from "./refusals.ts";
import { getDefaultRunner, getRunnerEntry } from "./runners.ts";

/** The session routes, mounted at `/api/devmode/sessions`. */
export function sessionRoutes(deps: ApiDeps): Hono<ApiEnv> {
  const { kv, config } = deps;
  const app = new Hono<ApiEnv>();
  app.use(requireUser(deps));

  app.post("/", async (c) => {
    const body = await readJson(c, CreateSessionSchema);
    const user = c.var.user;
    if (body.runnerId !== undefined) {
      const runner = (await getRunnerEntry(kv, body.runnerId)).value;
      if (!runner || runner.userId !== user.id) throw new ApiError(403, "runner is not one of yours");
    }
    let session: DevSession;
    if (body.sessionId !== undefined) {
      session = unwrap(await findOwnSession(kv, body.sessionId, user.id));
    } else {
      // No runner named: the one the user marked as default, else none, and the relay picks the
      // runner paired longest ago. Never the newest: that may be one approved through a phishing link.
      const created = await createDevSession(kv, {
        userId: user.id,
        ideaId: body.ideaId,
        runnerId: body.runnerId ?? await getDefaultRunner(kv, user.id),
        now: deps.now(),
      });
      session = unwrap(created);
    }
    const runnerId = body.runnerId ?? session.runnerId ?? undefined;
    const token = await signClientToken(config.jwtSecret, {
      userId: user.id,
      sessionId: session.sessionId,
      runnerId,
      ideaId: session.ideaId,
      jti: randomId(),
    }, { now: new Date(deps.now()) });
    return c.json({ relayUrl: config.relayUrl, sessionId: session.sessionId, token }, 201);
  });

  app.get("/", async (c) => {
    const sessions = await listDevSessions(kv, c.var.user.id);
    return c.json(sessions.map(({ sessionId, ideaId, runnerId, createdAt }): RecentSession => ({
      sessionId,
      ideaId,
      runnerId,
      createdAt,
    })));
  });

  return app;
}
