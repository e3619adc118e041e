/**
 * `/api/devmode/runners`: the user's runners (list, rename, revoke).
 *
 * @module
 */
import { Hono } from "hono";
import * as v from "valibot";
import { type ApiDeps, type ApiEnv, ApiError, readJson } from "./http.ts";
import { requireUser } from "./middleware.ts";
import { getRunnerEntry, listRunners, MAX_RUNNER_NAME, renameRunner, revokeRunner } from "./runners.ts";

/** Body of `PATCH /api/devmode/runners/:runnerId`. */
export const RenameRunnerSchema = v.object({
  name: v.pipe(
    v.string("name is required"),
    v.trim(),
    v.minLength(1, "name must not be empty"),
    v.maxLength(MAX_RUNNER_NAME, `name must be at most ${MAX_RUNNER_NAME} characters`),
  ),
});

/** The runner routes, mounted at `/api/devmode/runners`. */
export function runnerRoutes(deps: ApiDeps): Hono<ApiEnv> {
  const { kv } = deps;
  const app = new Hono<ApiEnv>();
  app.use(requireUser(deps));

  const ownRunner = async (runnerId: string, userId: string) => {
    const runner = (await getRunnerEntry(kv, runnerId)).value;
    if (!runner) throw new ApiError(404, "runner not found");
    if (runner.userId !== userId) throw new ApiError(403, "this runner belongs to someone else");
  };

  app.get("/", async (c) => c.json(await listRunners(kv, c.var.user.id, deps.now())));

  app.patch("/:runnerId", async (c) => {
    const body = await readJson(c, RenameRunnerSchema);
    const runnerId = c.req.param("runnerId");
    await ownRunner(runnerId, c.var.user.id);
    if (!await renameRunner(kv, runnerId, body.name)) throw new ApiError(404, "runner not found");
    return c.json({ ok: true, runnerId, name: body.name });
  });

  app.delete("/:runnerId", async (c) => {
    const runnerId = c.req.param("runnerId");
    await ownRunner(runnerId, c.var.user.id);
    if (!await revokeRunner(kv, runnerId, deps.config.runnerTokenTtlSeconds, deps.now())) {
      throw new ApiError(404, "runner not found");
    }
    return c.json({ ok: true, runnerId });
  });

  return app;
}
