/**
 * `/api/devmode/runners`: the user's runners (list, rename, mark as default, revoke).
 *
 * @module
 */
import { Hono } from "hono";
import * as v from "valibot";
import { type ApiDeps, type ApiEnv, ApiError, readJson } from "./http.ts";
import { requireUser } from "./middleware.ts";
import {
  cleanLabel,
  getRunnerEntry,
  listRunners,
  MAX_RUNNER_NAME,
  renameRunner,
  revokeRunner,
  setDefaultRunner,
} from "./runners.ts";

/** Body of `PATCH /api/devmode/runners/:runnerId`: a new name, the default mark, or both. */
export const UpdateRunnerSchema = v.pipe(
  v.object({
    name: v.optional(v.pipe(
      v.string("name must be a string"),
      v.transform(cleanLabel),
      v.minLength(1, "name must not be empty"),
      v.maxLength(MAX_RUNNER_NAME, `name must be at most ${MAX_RUNNER_NAME} characters`),
    )),
    default: v.optional(v.boolean("default must be true or false")),
  }),
  v.check((body) => body.name !== undefined || body.default !== undefined, "name or default is required"),
);

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
    const body = await readJson(c, UpdateRunnerSchema);
    const runnerId = c.req.param("runnerId");
    await ownRunner(runnerId, c.var.user.id);
    if (body.name !== undefined && !await renameRunner(kv, runnerId, body.name)) {
      throw new ApiError(404, "runner not found");
    }
    if (body.default !== undefined) await setDefaultRunner(kv, c.var.user.id, runnerId, body.default);
    return c.json({ ok: true, runnerId, ...body });
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
