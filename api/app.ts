/**
 * The app's HTTP API as a Hono app: accounts, pairing, session tokens,
 * runner-token verification, runners, recordings and configuration.
 *
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import { isKvBusy } from "@coda/relay";
import { bodyLimit } from "hono/body-limit";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { authRoutes } from "./auth_routes.ts";
import { type ApiDeps, type ApiEnv, ApiError } from "./http.ts";
import { internalRoutes } from "./internal_routes.ts";
import { logRoutes } from "./log_routes.ts";
import { pairRoutes } from "./pair_routes.ts";
import { runnerRoutes } from "./runner_routes.ts";
import { sessionRoutes } from "./session_routes.ts";
import { sessionShareRoutes, shareRoutes } from "./share_routes.ts";

/** Largest request body accepted, in bytes. */
export const MAX_BODY_BYTES = 1024 * 1024;

/** Options of {@linkcode createApi}. */
export interface ApiOptions {
  /** Runs around every request, outside all other middleware: tests check each answer against the contract. */
  around?: MiddlewareHandler<ApiEnv>;
}

/** Builds the API. Every time-dependent decision uses `deps.now`. */
export function createApi(deps: ApiDeps, options: ApiOptions = {}): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  if (options.around) app.use("*", options.around);

  app.use(
    "/api/*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) => c.json({ error: `request body over ${MAX_BODY_BYTES} bytes` }, 413),
    }),
  );
  app.use("/api/*", async (c, next) => {
    await next();
    c.header("cache-control", "no-store");
  });

  app.get("/healthz", (c) => c.json({ ok: true, instance: deps.config.cluster.instanceId }));
  app.get(
    "/api/devmode/config",
    (c) => c.json({ relayEnabled: deps.config.relayEnabled, relayUrl: deps.config.relayUrl }),
  );

  app.route("/api/auth", authRoutes(deps));
  app.route("/api/devmode/pair", pairRoutes(deps));
  app.route("/api/devmode/sessions", sessionRoutes(deps));
  app.route("/api/devmode/sessions", sessionShareRoutes(deps));
  app.route("/api/devmode/shares", shareRoutes(deps));
  app.route("/api/devmode/runners", runnerRoutes(deps));
  app.route("/api/devmode/logs", logRoutes(deps));
  app.route("/api/devmode", internalRoutes(deps));

  app.notFound((c) => c.json({ error: "not found" }, 404));
  app.onError((error, c) => {
    if (error instanceof ApiError) {
      return c.json(
        { ...error.extra, error: error.message },
        error.status as ContentfulStatusCode,
        error.headers,
      );
    }
    if (isKvBusy(error)) {
      // Another process sharing the KV file held it past every retry: a moment's wait, not a fault.
      c.header("retry-after", "1");
      return c.json({ error: "the store is busy, retry" }, 503);
    }
    console.error(
      JSON.stringify({ event: "api.error", path: c.req.path, error: String(error?.name ?? error) }),
    );
    return c.json({ error: "internal error" }, 500);
  });

  return app;
}
