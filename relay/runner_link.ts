/**
 * `/runner`: authenticates a runner (token in `Authorization: Bearer`, the
 * `token` query, or a first `auth` frame), then hands its frames to the broker.
 *
 * `/runner?probe=1` only checks the token: a valid one gets `welcome` and a
 * close 1000 "probe ok", without registering the connection, so a
 * `coda-runner status` never displaces the running runner.
 *
 * @module
 */
import { checkUpgrade, type RelayContext, track, upgrade } from "./context.ts";
import { closeSocket, frameSize } from "./frames.ts";
import { idleTimeoutSeconds } from "./limits.ts";
import { RunnerPeer } from "./peers.ts";
import { CloseCode, decodeAuth, decodeRunnerToRelay, encode, PROTOCOL_VERSION } from "./protocol.ts";
import { TokenError, verifyRunnerToken } from "./tokens.ts";

/** The bearer token of `req`, or its `token` query parameter. */
function tokenOf(req: Request): string | undefined {
  const header = req.headers.get("authorization");
  const match = header ? /^Bearer\s+(\S+)$/i.exec(header) : null;
  if (match) return match[1];
  return new URL(req.url).searchParams.get("token") || undefined;
}

/** Handles an upgrade request on `/runner`. */
export function acceptRunner(ctx: RelayContext, req: Request): Response {
  const refused = checkUpgrade(ctx, req);
  if (refused) return refused;
  const headerToken = tokenOf(req);
  const probe = new URL(req.url).searchParams.get("probe") === "1";
  const upgraded = upgrade(req, idleTimeoutSeconds(ctx.limits));
  if (upgraded instanceof Response) return upgraded;
  const { socket, response } = upgraded;
  track(ctx, socket);

  let phase: "auth" | "verifying" | "ready" | "done" = "auth";
  let runner: RunnerPeer | undefined;
  const authTimer = setTimeout(() => {
    if (phase === "ready" || phase === "done") return;
    ctx.metrics.authFailure("runner", "timeout");
    refuse(CloseCode.AUTH_TIMEOUT, "authentication timeout");
  }, ctx.limits.authTimeoutMs);

  const refuse = (code: number, reason: string) => {
    phase = "done";
    clearTimeout(authTimer);
    ctx.metrics.closed(code);
    closeSocket(socket, code, reason);
  };

  const authenticate = async (token: string) => {
    phase = "verifying";
    let verified;
    try {
      verified = await verifyRunnerToken(ctx.jwtSecret, token, { now: new Date(ctx.now()) });
    } catch (error) {
      const reason = error instanceof TokenError ? error.reason : "invalid";
      ctx.metrics.authFailure("runner", reason);
      ctx.log({ event: "auth_failed", endpoint: "runner", reason });
      return refuse(CloseCode.UNAUTHORIZED, `token ${reason}`);
    }
    const { claims, exp } = verified;
    let identity;
    try {
      identity = await ctx.backend.verifyRunnerJti(claims.jti);
    } catch (error) {
      ctx.metrics.authFailure("runner", "verify_unavailable");
      ctx.log({
        event: "auth_failed",
        endpoint: "runner",
        reason: "verify_unavailable",
        error: String(error),
      });
      return refuse(CloseCode.INTERNAL, "could not verify the runner token, retry later");
    }
    if (!identity || identity.runnerId !== claims.runnerId || identity.userId !== claims.userId) {
      ctx.metrics.authFailure("runner", "revoked");
      ctx.log({ event: "auth_failed", endpoint: "runner", reason: "revoked", runnerId: claims.runnerId });
      return refuse(CloseCode.REVOKED, "runner token revoked");
    }
    if (phase !== "verifying" || socket.readyState !== WebSocket.OPEN) return;
    clearTimeout(authTimer);
    if (probe) {
      phase = "done";
      socket.send(encode({ type: "welcome", runnerId: claims.runnerId, protocol: PROTOCOL_VERSION }));
      ctx.metrics.closed(CloseCode.NORMAL);
      return closeSocket(socket, CloseCode.NORMAL, "probe ok");
    }
    phase = "ready";
    runner = new RunnerPeer(ctx.broker.nextSerial(), claims.runnerId, claims.userId, claims.jti, exp, socket);
    ctx.broker.addRunner(runner);
  };

  const strike = (reason: string) => {
    ctx.metrics.dropped(reason);
    if (!runner) return;
    runner.strikes++;
    if (runner.strikes >= ctx.limits.malformedFrameLimit) {
      ctx.log({ event: "runner_policy_close", runnerId: runner.runnerId });
      ctx.metrics.closed(CloseCode.POLICY);
      closeSocket(socket, CloseCode.POLICY, "too many malformed frames");
    }
  };

  socket.onopen = () => {
    if (headerToken !== undefined) authenticate(headerToken).catch(() => refuse(CloseCode.INTERNAL, "error"));
  };
  socket.onmessage = (event) => {
    const bytes = frameSize(event.data);
    if (bytes > ctx.limits.maxFrameBytes) {
      ctx.metrics.dropped("too_big");
      ctx.metrics.closed(CloseCode.TOO_BIG);
      phase = "done";
      return closeSocket(socket, CloseCode.TOO_BIG, "frame too big");
    }
    if (phase === "auth") {
      const auth = decodeAuth(event.data);
      if (!auth.ok) {
        ctx.metrics.authFailure("runner", "invalid");
        return refuse(CloseCode.UNAUTHORIZED, "expected an auth frame with a runner token");
      }
      authenticate(auth.value.token).catch(() => refuse(CloseCode.INTERNAL, "error"));
      return;
    }
    if (phase !== "ready" || !runner) return ctx.metrics.dropped("before_welcome");
    const decoded = decodeRunnerToRelay(event.data);
    if (!decoded.ok) return strike("malformed");
    ctx.broker.fromRunner(runner, decoded.value, bytes);
  };
  socket.onclose = () => {
    phase = "done";
    clearTimeout(authTimer);
    if (runner) ctx.broker.removeRunner(runner);
  };
  socket.onerror = () => {};
  return response;
}
