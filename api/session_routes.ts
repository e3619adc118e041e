/**
 * `/api/devmode/sessions`: client tokens for new and existing terminal
 * sessions, and the user's recent sessions.
 *
 * @module
 */
import { Hono } from "hono";
import { signClientToken } from "@coda/relay/tokens";
import { CreateSessionSchema } from "./contract.ts";
import { randomId } from "./crypto.ts";
import {
  createDevSession,
  type DevSession,
  findReattachableSession,
  listLiveSessions,
} from "./devmode_sessions.ts";
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
      session = unwrap(await findReattachableSession(kv, body.sessionId, user.id));
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
    // A session that ran goes back to the runner that ran it, even when none was named.
    const runnerId = body.runnerId ?? session.runnerId ?? session.servedBy;
    const token = await signClientToken(config.jwtSecret, {
      userId: user.id,
      sessionId: session.sessionId,
      runnerId,
      ideaId: session.ideaId,
      // It ran a shell: a runner that no longer holds it must say it ended, not start a new one.
      resume: session.servedBy !== undefined ? true : undefined,
      jti: randomId(),
    }, { now: new Date(deps.now()) });
    return c.json({ relayUrl: config.relayUrl, sessionId: session.sessionId, token }, 201);
  });

  app.get("/", async (c) => c.json(await listLiveSessions(kv, c.var.user.id, deps.now())));

  return app;
}
