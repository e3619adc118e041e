/**
 * `/api/devmode/logs`: runners upload recorded output (runner token);
 * owners list recordings, download them as asciicast v2 and delete them.
 *
 * @module
 */
import { Hono } from "hono";
import { IngestSchema } from "./contract.ts";
import { type ApiDeps, type ApiEnv, readJson } from "./http.ts";
import { appendLog, asciicastStream, deleteLog, findOwnLog, findRecording, listLogs } from "./logs.ts";
import { requireRunner, requireUser } from "./middleware.ts";
import { unwrap } from "./refusals.ts";

/** The log routes, mounted at `/api/devmode/logs`. */
export function logRoutes(deps: ApiDeps): Hono<ApiEnv> {
  const { kv } = deps;
  const app = new Hono<ApiEnv>();

  app.post("/ingest", async (c) => {
    const runner = await requireRunner(c, deps);
    const body = await readJson(c, IngestSchema);
    const appended = await appendLog(kv, {
      ...body,
      userId: runner.userId,
      runnerId: runner.runnerId,
      bytesPerUser: deps.config.recordingBytesPerUser,
    });
    const { bytes } = unwrap(appended);
    return c.json({ ok: true, bytes });
  });

  app.get("/", requireUser(deps), async (c) => c.json(await listLogs(kv, c.var.user.id)));

  app.get("/:sessionId", requireUser(deps), async (c) => {
    const sessionId = c.req.param("sessionId");
    const meta = unwrap(await findRecording(kv, sessionId, c.var.user.id));
    return new Response(asciicastStream(kv, meta), {
      headers: {
        "content-type": "application/x-asciicast",
        "content-disposition": `attachment; filename="${sessionId}.cast"`,
      },
    });
  });

  app.delete("/:sessionId", requireUser(deps), async (c) => {
    const meta = unwrap(await findOwnLog(kv, c.req.param("sessionId"), c.var.user.id));
    await deleteLog(kv, meta);
    return c.json({ ok: true });
  });

  return app;
}
