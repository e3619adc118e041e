/**
 * `/api/devmode/pair/*`: start (runner), check (runner, with its poll
 * secret), info, approve and deny (signed-in user), unpair (runner, with its token).
 *
 * @module
 */
import { Hono } from "hono";
import { PairApproveSchema, PairCodeParamSchema, PairDenySchema, PairStartSchema } from "./contract.ts";
import { type ApiDeps, type ApiEnv, ApiError, clientIp, parseWith, readJson } from "./http.ts";
import { requireRunner, requireUser } from "./middleware.ts";
import { revokeRunner } from "./runners.ts";
import { approvePairing, checkPairing, denyPairing, pairingInfo, startPairing } from "./pairing.ts";
import { unwrap } from "./refusals.ts";

function codeParam(code: string | undefined): string {
  return parseWith(PairCodeParamSchema, code);
}

/** The pairing routes, mounted at `/api/devmode/pair`. */
export function pairRoutes(deps: ApiDeps): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();

  app.post("/start", async (c) => {
    const body = await readJson(c, PairStartSchema, { allowEmpty: true });
    const clean = (label: string | undefined) => (label ? label : undefined);
    const started = await startPairing(
      deps.kv,
      { name: clean(body.name), hostname: clean(body.hostname), os: clean(body.os) },
      clientIp(c, deps.config.edge.clientIpHeader),
      deps.now(),
    );
    return c.json(unwrap(started), 201);
  });

  app.get("/check", async (c) => {
    const status = await checkPairing(deps, codeParam(c.req.query("code")), c.req.header("x-pair-secret"));
    return c.json(unwrap(status));
  });

  app.get("/info", requireUser(deps), async (c) => {
    // A look-up spends one of the user's wrong-code attempts: another site must not be able to spend
    // them (and lock the user out of pairing) by sending the browser here. Browsers say where a
    // request comes from in Sec-Fetch-Site; tools that send none are unaffected.
    const site = c.req.header("sec-fetch-site");
    if (site !== undefined && site !== "same-origin" && site !== "none") {
      throw new ApiError(403, "cross-site request refused");
    }
    const info = await pairingInfo(
      deps.kv,
      codeParam(c.req.query("code")),
      { userId: c.var.user.id, ip: clientIp(c, deps.config.edge.clientIpHeader) },
      deps.now(),
    );
    return c.json(unwrap(info));
  });

  app.post("/approve", requireUser(deps), async (c) => {
    const body = await readJson(c, PairApproveSchema);
    const { runnerId } = unwrap(await approvePairing(deps, body, c.var.user));
    return c.json({ ok: true, runnerId });
  });

  // Cancel on the approve page: the runner is told at its next poll instead of waiting out the code.
  // requireUser checks the Origin of this write as for approve.
  app.post("/deny", requireUser(deps), async (c) => {
    const body = await readJson(c, PairDenySchema);
    unwrap(await denyPairing(deps, body, c.var.user));
    return c.json({ ok: true });
  });

  // A runner whose user did not recognize the account it was paired with (a leaked code approved
  // by someone else) revokes itself: that account can no longer reach this machine.
  app.post("/unpair", async (c) => {
    const { runnerId } = await requireRunner(c, deps);
    await revokeRunner(deps.kv, runnerId, deps.config.runnerTokenTtlSeconds, deps.now());
    return c.json({ ok: true, runnerId });
  });

  return app;
}
