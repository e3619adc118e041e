/**
 * `/runner`: authenticates a runner (token in `Authorization: Bearer` or the
 * `token` query) *before* the WebSocket upgrade, then hands its frames to the
 * broker. A peer without a valid, unrevoked runner token never gets a socket
 * (see `client_link.ts` for why).
 *
 * `/runner?probe=1` only checks the token: a valid one gets `welcome` and a
 * close 1000 "probe ok", without registering the connection, so a
 * `coda-runner status` never displaces the running runner.
 *
 * @module
 */
import { checkUpgrade, FrameGuard, refuseLink, type RelayContext, upgrade } from "./context.ts";
import { closeSocket, frameSize } from "./frames.ts";
import { RunnerPeer } from "./peers.ts";
import { welcomeFor } from "./broker.ts";
import { CloseCode, decodeBinaryFrame, decodeRunnerToRelay, encode } from "./protocol.ts";
import { replayResponse, type Route, routeProbe } from "./routing.ts";
import { TokenError, verifyRunnerToken } from "./tokens.ts";

/** The bearer token of `req`, or its `token` query parameter. */
function tokenOf(req: Request): string | undefined {
  const header = req.headers.get("authorization");
  const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
  if (match) return match[1];
  return new URL(req.url).searchParams.get("token") || undefined;
}

/**
 * Handles an upgrade request on `/runner`; `release` frees the connection's
 * place under the caps once its socket closes.
 */
export async function acceptRunner(ctx: RelayContext, req: Request, release: () => void): Promise<Response> {
  const refused = checkUpgrade(ctx, req);
  if (refused) return refused;
  const token = tokenOf(req);
  if (token === undefined) {
    return refuseLink(ctx, "runner", {
      status: 401,
      reason: "missing",
      error: "runner token missing: send Authorization: Bearer <token>",
    });
  }
  let verified;
  try {
    verified = await verifyRunnerToken(ctx.jwtSecret, token, { now: new Date(ctx.now()) });
  } catch (error) {
    const reason = error instanceof TokenError ? error.reason : "invalid";
    return refuseLink(ctx, "runner", { status: 401, reason, error: `token ${reason}` });
  }
  const { claims, exp, iat } = verified;
  let identity;
  try {
    identity = await ctx.backend.verifyRunnerJti(claims.jti);
  } catch (error) {
    return refuseLink(ctx, "runner", {
      status: 503,
      reason: "verify_unavailable",
      error: "could not verify the runner token, retry later",
      detail: String(error),
    });
  }
  if (!identity || identity.runnerId !== claims.runnerId || identity.userId !== claims.userId) {
    return refuseLink(ctx, "runner", {
      status: 403,
      reason: "revoked",
      error: "runner token revoked",
      runnerId: claims.runnerId,
    });
  }
  const probe = new URL(req.url).searchParams.get("probe") === "1";
  if (probe) {
    // The probe only checks the token, which needs no shared record: unreadable records answer it here.
    const route: Route = await routeProbe(ctx, req, claims.runnerId).catch(() => ({ kind: "here" }));
    if (route.kind === "replay") return replayResponse(ctx, "runner", route.instance);
  }
  const upgraded = upgrade(ctx, req, release);
  if ("refused" in upgraded) return upgraded.refused;
  const { socket, response } = upgraded;

  if (probe) {
    socket.onopen = () => {
      socket.send(encode(welcomeFor(claims.runnerId)));
      ctx.metrics.closed(CloseCode.NORMAL);
      closeSocket(socket, CloseCode.NORMAL, "probe ok", ctx.limits.closeGraceMs);
    };
    socket.onmessage = () => ctx.metrics.dropped("probe");
    socket.onerror = () => {};
    return response;
  }

  const runner = new RunnerPeer(
    ctx.broker.nextSerial(),
    claims.runnerId,
    claims.userId,
    claims.jti,
    exp,
    socket,
    iat,
  );
  let registered = false;
  const guard = new FrameGuard(ctx, socket, { event: "runner_policy_close", runnerId: runner.runnerId });

  socket.onopen = () => {
    registered = true;
    ctx.broker.addRunner(runner);
  };
  socket.onmessage = (event) => {
    const bytes = frameSize(event.data);
    if (guard.tooBig(bytes)) return;
    if (event.data instanceof ArrayBuffer) {
      // Output passes on unread: only its header is decoded.
      const frame = new Uint8Array(event.data);
      const decoded = decodeBinaryFrame(frame);
      if (!decoded.ok) return guard.strike("malformed");
      if (decoded.value.type === "download") return ctx.broker.fromRunnerFile(runner, decoded.value, bytes);
      if (decoded.value.type !== "output") return guard.strike("malformed");
      return ctx.broker.fromRunnerOutput(runner, decoded.value, frame);
    }
    const decoded = decodeRunnerToRelay(event.data);
    if (!decoded.ok) return guard.strike("malformed");
    ctx.broker.fromRunner(runner, decoded.value, bytes);
  };
  socket.onclose = () => {
    if (registered) ctx.broker.removeRunner(runner);
  };
  socket.onerror = () => {};
  return response;
}
