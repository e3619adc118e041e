/**
 * `/api/devmode/runners`: the user's runners (list, rename, mark as default, revoke).
 *
 * @module
 */
import { Hono } from "hono";
import { UpdateRunnerSchema } from "./contract.ts";
import { type ApiDeps, type ApiEnv, readJson } from "./http.ts";
import { requireUser } from "./middleware.ts";
import { refusal, unwrap } from "./refusals.ts";
import { failure } from "./result.ts";
import { findOwnRunner, listRunners, renameRunner, revokeRunner, setDefaultRunner } from "./runners.ts";

/** The runner routes, mounted at `/api/devmode/runners`. */
export function runnerRoutes(deps: ApiDeps): Hono<ApiEnv> {
  const { kv } = deps;
  const app = new Hono<ApiEnv>();
  app.use(requireUser(deps));

  app.get("/", async (c) => c.json(await listRunners(kv, c.var.user.id, deps.now())));

  app.patch("/:runnerId", async (c) => {
    const body = await readJson(c, UpdateRunnerSchema);
    const runnerId = c.req.param("runnerId");
    unwrap(await findOwnRunner(kv, runnerId, c.var.user.id));
    if (body.name !== undefined && !await renameRunner(kv, runnerId, body.name)) {
      throw refusal(failure("runner_not_found"));
    }
    if (body.default !== undefined) await setDefaultRunner(kv, c.var.user.id, runnerId, body.default);
    return c.json({ ok: true, runnerId, ...body });
  });

  app.delete("/:runnerId", async (c) => {
    const runnerId = c.req.param("runnerId");
    unwrap(await findOwnRunner(kv, runnerId, c.var.user.id));
    if (!await revokeRunner(kv, runnerId, deps.config.runnerTokenTtlSeconds, deps.now())) {
      throw refusal(failure("runner_not_found"));
    }
    return c.json({ ok: true, runnerId });
  });

  return app;
}
