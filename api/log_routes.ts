/**
 * `/api/devmode/logs`: runners upload recorded output (runner token);
 * owners list recordings, download them as asciicast v2 and delete them.
 *
 * @module
 */
import { Hono } from "hono";
import * as v from "valibot";
import { SessionIdSchema } from "../relay/protocol.ts";
import { getDevSession } from "./devmode_sessions.ts";
import { type ApiDeps, type ApiEnv, ApiError, readJson } from "./http.ts";
import { appendLog, asciicastStream, deleteLog, getLogMeta, listLogs } from "./logs.ts";
import { requireRunner, requireUser } from "./middleware.ts";

const Dimension = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1000));

/** Body of `POST /api/devmode/logs/ingest`. */
export const IngestSchema = v.object({
  sessionId: SessionIdSchema,
  chunks: v.pipe(
    v.array(v.object({
      /** When the output was produced, ms since the epoch. */
      t: v.pipe(v.number(), v.finite(), v.minValue(0), v.maxValue(Number.MAX_SAFE_INTEGER)),
      data: v.string(),
    })),
    v.maxLength(100_000),
  ),
  cols: v.optional(Dimension),
  rows: v.optional(Dimension),
});

/** The log routes, mounted at `/api/devmode/logs`. */
export function logRoutes(deps: ApiDeps): Hono<ApiEnv> {
  const { kv } = deps;
  const app = new Hono<ApiEnv>();

  app.post("/ingest", async (c) => {
    const runner = await requireRunner(c, deps);
    const body = await readJson(c, IngestSchema);
    const { bytes } = await appendLog(kv, {
      ...body,
      userId: runner.userId,
      runnerId: runner.runnerId,
      bytesPerUser: deps.config.recordingBytesPerUser,
    });
    return c.json({ ok: true, bytes });
  });

  app.get("/", requireUser(deps), async (c) => c.json(await listLogs(kv, c.var.user.id)));

  app.get("/:sessionId", requireUser(deps), async (c) => {
    const sessionId = c.req.param("sessionId");
    const session = await getDevSession(kv, sessionId);
    if (!session) throw new ApiError(404, "session not found");
    if (session.userId !== c.var.user.id) throw new ApiError(403, "this session belongs to someone else");
    const meta = await getLogMeta(kv, sessionId);
    if (!meta) throw new ApiError(404, "no recording for this session");
    return new Response(asciicastStream(kv, meta), {
      headers: {
        "content-type": "application/x-asciicast",
        "content-disposition": `attachment; filename="${sessionId}.cast"`,
      },
    });
  });

  app.delete("/:sessionId", requireUser(deps), async (c) => {
    const meta = await getLogMeta(kv, c.req.param("sessionId"));
    if (!meta) throw new ApiError(404, "no recording for this session");
    if (meta.userId !== c.var.user.id) throw new ApiError(403, "this session belongs to someone else");
    await deleteLog(kv, meta);
    return c.json({ ok: true });
  });

  return app;
}
