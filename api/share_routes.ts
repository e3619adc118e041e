/**
 * Watch-only shares: the owner's routes under `/api/devmode/sessions/:sessionId/shares` and
 * `DELETE /api/devmode/shares/:shareId`, and the viewer's `POST /api/devmode/shares/:shareId/ticket`
 * (anyone with a link share's secret, or a signed-in invited account), which answers a watch-only
 * client token for the relay.
 *
 * @module
 */
import { Hono } from "hono";
import { signClientToken } from "@coda/relay/tokens";
import {
  CreateShareSchema,
  DEFAULT_SHARE_MINUTES,
  type ShareView,
  WatchTicketRequestSchema,
} from "./contract.ts";
import { randomId } from "./crypto.ts";
import { findOwnSession } from "./devmode_sessions.ts";
import { type ApiDeps, type ApiEnv, readJson } from "./http.ts";
import { checkOrigin, requireUser, signedInUser } from "./middleware.ts";
import { refusal, unwrap } from "./refusals.ts";
import { failure } from "./result.ts";
import {
  createShare,
  listSessionShares,
  openShare,
  revokeShare,
  secretMatches,
  type ShareRecord,
  type ViewerRecord,
} from "./shares.ts";
import { normalizeEmail } from "./users.ts";

function view(share: ShareRecord, viewers: ViewerRecord[]): ShareView {
  return {
    shareId: share.shareId,
    audience: share.audience,
    emails: share.emails,
    createdAt: share.createdAt,
    expiresAt: share.expiresAt,
    viewers,
  };
}

/** The owner's share routes, mounted at `/api/devmode/sessions` (beside the session routes). */
export function sessionShareRoutes(deps: ApiDeps): Hono<ApiEnv> {
  const { kv } = deps;
  const app = new Hono<ApiEnv>();
  app.use(requireUser(deps));

  app.post("/:sessionId/shares", async (c) => {
    const body = await readJson(c, CreateShareSchema);
    const session = unwrap(await findOwnSession(kv, c.req.param("sessionId"), c.var.user.id));
    const { share, secret } = await createShare(kv, {
      session,
      audience: body.audience,
      emails: (body.emails ?? []).map(normalizeEmail),
      minutes: body.minutes ?? DEFAULT_SHARE_MINUTES,
      now: deps.now(),
    });
    const url = `${deps.config.publicUrl}/devmode/watch/${share.shareId}${
      secret === null ? "" : `#${secret}`
    }`;
    return c.json({ share: view(share, []), url }, 201);
  });

  app.get("/:sessionId/shares", async (c) => {
    const session = unwrap(await findOwnSession(kv, c.req.param("sessionId"), c.var.user.id));
    const shares = await listSessionShares(kv, session.sessionId, deps.now());
    return c.json(shares.map(({ share, viewers }) => view(share, viewers)));
  });

  return app;
}

/** `/api/devmode/shares`: revoking (the owner) and watch tickets (the viewer). */
export function shareRoutes(deps: ApiDeps): Hono<ApiEnv> {
  const { kv, config } = deps;
  const app = new Hono<ApiEnv>();

  app.delete("/:shareId", requireUser(deps), async (c) => {
    unwrap(await revokeShare(kv, c.req.param("shareId"), c.var.user.id, deps.now()));
    return c.json({ ok: true as const });
  });

  app.post("/:shareId/ticket", async (c) => {
    checkOrigin(c, config.allowedOrigins, false);
    const body = await readJson(c, WatchTicketRequestSchema, { allowEmpty: true });
    const now = deps.now();
    const share = unwrap(await openShare(kv, c.req.param("shareId"), now));
    let viewer: string | undefined;
    if (share.audience === "link") {
      if (body.secret === undefined || !(await secretMatches(share, body.secret))) {
        throw refusal(failure("share_wrong_secret"));
      }
    } else {
      const user = await signedInUser(c, deps);
      if (!user || !share.emails.includes(normalizeEmail(user.email))) {
        throw refusal(failure("share_not_invited"));
      }
      viewer = user.email;
    }
    const token = await signClientToken(config.jwtSecret, {
      userId: share.ownerId,
      sessionId: share.sessionId,
      ...(share.runnerId === null ? {} : { runnerId: share.runnerId }),
      // A viewer never starts a shell: a runner that no longer holds the session says it ended.
      resume: true,
      share: share.shareId,
      ...(viewer === undefined ? {} : { viewer }),
      jti: randomId(),
    }, { now: new Date(now) });
    return c.json({
      relayUrl: config.relayUrl,
      sessionId: share.sessionId,
      token,
      expiresAt: share.expiresAt,
    }, 201);
  });

  return app;
}
