/**
 * `/client?token=…`: authenticates a browser client (one-use client token)
 * and enforces the per-user cap *before* the WebSocket upgrade, then checks
 * every frame it sends before the broker forwards it.
 *
 * No socket is opened for a peer that has not proved who it is: Deno buffers
 * a whole WebSocket message (up to 64 MiB, fragments included) before any
 * handler sees it, so an upgraded but unauthenticated peer could make the
 * process hold that much per connection.
 *
 * @module
 */
import { checkUpgrade, FrameGuard, jsonError, refuseLink, type RelayContext, upgrade } from "./context.ts";
import { expectClosingAnswer, frameSize, trySend } from "./frames.ts";
import { ClientPeer } from "./peers.ts";
import {
  BINARY_SUBPROTOCOL,
  type ClientLinkOptions,
  decodeBinaryFrame,
  decodeClientMessage,
  encode,
  parseClientLinkOptions,
} from "./protocol.ts";
import { closeMisrouted, replayResponse, type Route, routeClient } from "./routing.ts";
import { type ClientClaims, TokenError, verifyClientToken } from "./tokens.ts";

/** The app's records (used tokens, sign-outs) could not be read: refused, never let in unchecked. */
function storeUnavailable(ctx: RelayContext, error: unknown): Response {
  return refuseLink(ctx, "client", {
    status: 503,
    reason: "store_unavailable",
    error: "could not check the token, retry with a new one",
    detail: String(error),
  });
}

/** Whether the upgrade request offers the binary subprotocol among its `Sec-WebSocket-Protocol` values. */
function offersBinary(req: Request): boolean {
  const offered = req.headers.get("sec-websocket-protocol");
  return offered !== null && offered.split(",").some((name) => name.trim() === BINARY_SUBPROTOCOL);
}

/**
 * Handles an upgrade request on `/client`; `release` frees the connection's
 * place under the caps once its socket closes.
 */
export async function acceptClient(ctx: RelayContext, req: Request, release: () => void): Promise<Response> {
  const refused = checkUpgrade(ctx, req);
  if (refused) return refused;
  const params = new URL(req.url).searchParams;
  const options = parseClientLinkOptions(params);
  if (!options.ok) return jsonError(400, options.error);
  const token = params.get("token");
  if (!token) return refuseLink(ctx, "client", { status: 401, reason: "missing", error: "token missing" });
  let claims: ClientClaims;
  let exp: number;
  let iat: number;
  try {
    ({ claims, exp, iat } = await verifyClientToken(ctx.jwtSecret, token, { now: new Date(ctx.now()) }));
  } catch (error) {
    const reason = error instanceof TokenError ? error.reason : "invalid";
    return refuseLink(ctx, "client", { status: 401, reason, error: `token ${reason}` });
  }
  if (claims.share !== undefined) {
    // A watch-only link counts only while its share does; a relay that cannot ask refuses it.
    let live;
    try {
      live = await ctx.backend.liveShares?.([claims.share]);
    } catch (error) {
      return storeUnavailable(ctx, error);
    }
    if (!live?.has(claims.share)) {
      return refuseLink(ctx, "client", {
        status: 403,
        reason: "share_revoked",
        error: "share revoked or expired",
      });
    }
  }
  // Routed before anything is consumed: the instance that serves the client checks and uses the token.
  let route: Route;
  try {
    route = await routeClient(ctx, req, claims);
  } catch (error) {
    return storeUnavailable(ctx, error);
  }
  if (route.kind === "replay") return replayResponse(ctx, "client", route.instance);
  if (route.kind === "elsewhere") return closeMisrouted(ctx, req, release, route);
  // A token minted before its user signed out (it lives 60 s) is as dead as the links the sign-out closed.
  let signedOut: number | undefined;
  try {
    signedOut = (await ctx.backend.signedOutAt([claims.userId])).get(claims.userId);
  } catch (error) {
    return storeUnavailable(ctx, error);
  }
  // `iat` has whole seconds: only a token whose whole second precedes the sign-out is surely older.
  if (signedOut !== undefined && (iat + 1) * 1000 <= signedOut) {
    return refuseLink(ctx, "client", { status: 401, reason: "signed_out", error: "signed out" });
  }
  // A share's viewers have a cap of their own: anyone holding a link must not lock its owner out.
  const { share } = claims;
  const overCap = share === undefined
    ? () => ctx.broker.clientCount(claims.userId) >= ctx.limits.maxClientsPerUser
    : () => ctx.broker.viewerCount(share) >= ctx.limits.maxViewersPerShare;
  const tooMany = {
    status: 429,
    reason: "too_many",
    error: share === undefined ? "too many connections for this user" : "too many viewers of this share",
  };
  if (overCap()) return refuseLink(ctx, "client", tooMany);
  let fresh: boolean;
  try {
    fresh = await ctx.backend.consumeClientJti(claims.jti, new Date(exp * 1000));
  } catch (error) {
    return storeUnavailable(ctx, error);
  }
  if (!fresh) {
    return refuseLink(ctx, "client", { status: 401, reason: "reused", error: "token already used" });
  }
  // Checked again: other upgrades of this user may have been admitted while the jti was being stored.
  if (overCap()) return refuseLink(ctx, "client", tooMany);

  return openClientLink(ctx, req, claims, options.value, release);
}

/**
 * Upgrades an authenticated client's request and serves its link: checks every frame it sends
 * (size, shape, its own session only) before the broker forwards it, and answers its pings.
 * Shared by `/client` and `coda-runner serve`, which authenticates by its access token instead.
 */
export function openClientLink(
  ctx: RelayContext,
  req: Request,
  claims: ClientClaims,
  options: ClientLinkOptions,
  release: () => void,
): Response {
  const binary = offersBinary(req);
  const upgraded = upgrade(ctx, req, release, binary ? BINARY_SUBPROTOCOL : undefined);
  if ("refused" in upgraded) return upgraded.refused;
  const { socket, response } = upgraded;
  // The client says it speaks beyond the seed's messages; a viewer's page keeps pinging too.
  if (options.ack) expectClosingAnswer(socket);
  // A viewer neither sizes the shell nor holds its output back: the relay acknowledges for it as it reads.
  const linkOptions = claims.share === undefined ? options : { offset: options.offset };
  const client = new ClientPeer(crypto.randomUUID(), claims, linkOptions, socket);
  client.binary = binary;
  // Counted against the per-user cap from now on, though it is attached only once open.
  ctx.broker.reserveClient(client);
  const guard = new FrameGuard(ctx, socket, { event: "client_policy_close", clientId: client.clientId });

  socket.onopen = () => ctx.broker.addClient(client);
  socket.onmessage = (event) => {
    const bytes = frameSize(event.data);
    if (guard.tooBig(bytes) || client.state === "closed") return;
    if (client.binary && event.data instanceof ArrayBuffer) {
      const frame = decodeBinaryFrame(event.data);
      const type = frame.ok ? frame.value.type : undefined;
      if (!frame.ok || (type !== "input" && type !== "upload") || frame.value.clientId !== undefined) {
        return guard.strike("malformed");
      }
      if (frame.value.sessionId !== client.sessionId) return guard.strike("foreign_session");
      // A viewer's upload pieces stop here like its keystrokes, counted alike.
      if (client.isViewer) return ctx.metrics.dropped("viewer_input");
      if (frame.value.type === "upload") {
        if (!ctx.broker.fromClientUpload(client, frame.value, bytes)) guard.strike("unexpected_upload");
        return;
      }
      return ctx.broker.fromClient(client, frame.value.data, bytes);
    }
    const decoded = decodeClientMessage(event.data);
    if (!decoded.ok) return guard.strike("malformed");
    // Answered here, whether or not a runner is attached: the pong is about this link only. Not past the
    // client's buffer cap, so a peer that pings without reading cannot make the relay hold its pongs.
    if (decoded.value.type === "ping") {
      if (socket.bufferedAmount > ctx.limits.maxClientBufferedBytes) return;
      return void trySend(socket, encode({ type: "pong", t: decoded.value.t }));
    }
    if (decoded.value.sessionId !== client.sessionId) return guard.strike("foreign_session");
    // Whatever a viewer's page sends (stdin, resize, record, pick-cwd, kill, acks) stops here, counted.
    if (client.isViewer) return ctx.metrics.dropped("viewer_input");
    ctx.broker.fromClient(client, decoded.value, bytes);
  };
  socket.onclose = () => ctx.broker.removeClient(client);
  socket.onerror = () => {};
  return response;
}
