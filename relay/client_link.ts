/**
 * `/client?token=…`: authenticates a browser client (one-use client token),
 * enforces the per-user cap, and checks every frame it sends before the
 * broker forwards it.
 *
 * @module
 */
import { checkUpgrade, jsonError, type RelayContext, track, upgrade } from "./context.ts";
import { closeSocket, frameSize } from "./frames.ts";
import { idleTimeoutSeconds } from "./limits.ts";
import { ClientPeer } from "./peers.ts";
import { CloseCode, decodeClientMessage, parseClientLinkOptions } from "./protocol.ts";
import { type ClientClaims, TokenError, verifyClientToken } from "./tokens.ts";

/** Frames a client may send while it is being authenticated; more are dropped. */
const MAX_EARLY_FRAMES = 64;

/** Handles an upgrade request on `/client`. */
export function acceptClient(ctx: RelayContext, req: Request): Response {
  const refused = checkUpgrade(ctx, req);
  if (refused) return refused;
  const params = new URL(req.url).searchParams;
  const options = parseClientLinkOptions(params);
  if (!options.ok) return jsonError(400, options.error);
  const token = params.get("token") || undefined;
  const upgraded = upgrade(req, idleTimeoutSeconds(ctx.limits));
  if (upgraded instanceof Response) return upgraded;
  const { socket, response } = upgraded;
  track(ctx, socket);

  let client: ClientPeer | undefined;
  let done = false;
  let strikes = 0;
  const early: unknown[] = [];
  let earlyBytes = 0;
  const authTimer = setTimeout(() => {
    if (client || done) return;
    ctx.metrics.authFailure("client", "timeout");
    refuse(CloseCode.AUTH_TIMEOUT, "authentication timeout");
  }, ctx.limits.authTimeoutMs);

  const refuse = (code: number, reason: string) => {
    done = true;
    clearTimeout(authTimer);
    ctx.metrics.closed(code);
    closeSocket(socket, code, reason);
  };

  const fail = (reason: string, message: string) => {
    ctx.metrics.authFailure("client", reason);
    ctx.log({ event: "auth_failed", endpoint: "client", reason });
    refuse(CloseCode.UNAUTHORIZED, message);
  };

  const authenticate = async () => {
    if (token === undefined) return fail("missing", "token missing");
    let claims: ClientClaims;
    let exp: number;
    try {
      ({ claims, exp } = await verifyClientToken(ctx.jwtSecret, token, { now: new Date(ctx.now()) }));
    } catch (error) {
      const reason = error instanceof TokenError ? error.reason : "invalid";
      return fail(reason, `token ${reason}`);
    }
    if (done) return;
    if (ctx.broker.clientCount(claims.userId) >= ctx.limits.maxClientsPerUser) {
      ctx.metrics.authFailure("client", "too_many");
      return refuse(CloseCode.TOO_MANY, "too many connections for this user");
    }
    const peer = new ClientPeer(crypto.randomUUID(), claims, options.value, socket);
    ctx.broker.reserveClient(peer);
    let fresh: boolean;
    try {
      fresh = await ctx.backend.consumeClientJti(claims.jti, new Date(exp * 1000));
    } catch (error) {
      ctx.broker.removeClient(peer);
      ctx.log({
        event: "auth_failed",
        endpoint: "client",
        reason: "store_unavailable",
        error: String(error),
      });
      return refuse(CloseCode.INTERNAL, "could not check the token, retry with a new one");
    }
    if (!fresh) {
      ctx.broker.removeClient(peer);
      return fail("reused", "token already used");
    }
    if (done || socket.readyState !== WebSocket.OPEN) return ctx.broker.removeClient(peer);
    clearTimeout(authTimer);
    client = peer;
    ctx.broker.addClient(peer);
    for (const data of early.splice(0)) receive(data, frameSize(data));
  };

  const strike = (reason: string) => {
    ctx.metrics.dropped(reason);
    strikes++;
    if (strikes >= ctx.limits.malformedFrameLimit) {
      ctx.log({ event: "client_policy_close", clientId: client?.clientId });
      refuse(CloseCode.POLICY, "too many malformed or forbidden frames");
    }
  };

  const receive = (data: unknown, bytes: number) => {
    if (!client || done) return;
    const decoded = decodeClientMessage(data);
    if (!decoded.ok) return strike("malformed");
    if (decoded.value.sessionId !== client.sessionId) return strike("foreign_session");
    ctx.broker.fromClient(client, decoded.value, bytes);
  };

  socket.onopen = () => {
    authenticate().catch((error) => {
      ctx.log({ event: "client_error", error: String(error) });
      refuse(CloseCode.INTERNAL, "internal error");
    });
  };
  socket.onmessage = (event) => {
    const bytes = frameSize(event.data);
    if (bytes > ctx.limits.maxFrameBytes) {
      ctx.metrics.dropped("too_big");
      return refuse(CloseCode.TOO_BIG, "frame too big");
    }
    if (client) return receive(event.data, bytes);
    if (done) return;
    if (early.length >= MAX_EARLY_FRAMES || earlyBytes + bytes > ctx.limits.maxPendingClientBytes) {
      return ctx.metrics.dropped("early");
    }
    earlyBytes += bytes;
    early.push(event.data);
  };
  socket.onclose = () => {
    done = true;
    clearTimeout(authTimer);
    if (client) ctx.broker.removeClient(client);
  };
  socket.onerror = () => {};
  return response;
}
