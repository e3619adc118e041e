/**
 * Which relay instance serves an upgrade, when there are several: a client belongs on the
 * instance holding its session's runner, and is sent there before any socket exists, with Fly's
 * `fly-replay: instance=<id>` (the proxy replays the request to that machine). A replayed request
 * carries `fly-replay-src` and is never replayed again: if its runner moved meanwhile it is closed
 * 4307 and reconnects. Without Fly's proxy nothing can route it, and it is closed 4308 saying so.
 *
 * @module
 */
import { compareRunnerAge } from "./cluster.ts";
import { type RelayContext, upgrade } from "./context.ts";
import { closeSocket } from "./frames.ts";
import { CloseCode, CloseReason } from "./protocol.ts";
import type { ClientClaims } from "./tokens.ts";

/** Response header that makes Fly's proxy replay the request elsewhere. */
export const FLY_REPLAY_HEADER = "fly-replay";
/** Request header Fly's proxy adds to a replayed request. */
export const FLY_REPLAY_SRC_HEADER = "fly-replay-src";

/** Where an upgrade is served. */
export type Route =
  | { kind: "here" }
  /** Answered with `fly-replay`, so the proxy takes it to `instance`. */
  | { kind: "replay"; instance: string }
  /** Its runner is on `instance` and nothing routes it there now: upgraded and closed with `code`. */
  | { kind: "elsewhere"; instance: string; code: number; reason: string };

const HERE: Route = { kind: "here" };

/** Whether Fly's proxy already replayed `req` once. */
export function isReplayed(req: Request): boolean {
  return req.headers.has(FLY_REPLAY_SRC_HEADER);
}

/** The route to the instance `holder` is on, from this one. */
function towards(ctx: RelayContext, req: Request, holder: { instance: string } | null | undefined): Route {
  const routing = ctx.routing;
  if (!routing || !holder || holder.instance === routing.cluster.instanceId) return HERE;
  const { instance } = holder;
  if (!routing.flyReplay) return { kind: "elsewhere", instance, ...NO_ROUTE };
  if (!isReplayed(req)) return { kind: "replay", instance };
  return { kind: "elsewhere", instance, ...ON_ANOTHER_INSTANCE };
}

const ON_ANOTHER_INSTANCE = { code: CloseCode.ON_ANOTHER_INSTANCE, reason: CloseReason.ON_ANOTHER_INSTANCE };
const NO_ROUTE = { code: CloseCode.NO_ROUTE, reason: CloseReason.NO_ROUTE };

/**
 * Where a client with `claims` is served: here when its runner is connected here or nowhere (it
 * waits here and is sent on when the runner connects elsewhere), else where the runner is. A token
 * naming no runner gets the user's default runner from the shared records, chosen the way the
 * broker chooses ({@linkcode compareRunnerAge}), so every instance makes the same choice. Rejects
 * when the records cannot be read.
 */
export async function routeClient(ctx: RelayContext, req: Request, claims: ClientClaims): Promise<Route> {
  const routing = ctx.routing;
  if (!routing) return HERE;
  const local = [...ctx.broker.runners.values()].filter((runner) => runner.userId === claims.userId);
  if (claims.runnerId !== undefined) {
    if (local.some((runner) => runner.runnerId === claims.runnerId)) return HERE;
    const holder = await routing.cluster.locate(claims.runnerId);
    // Another user's runner is never a route: the client waits here as it would alone (and gets 4404).
    return towards(ctx, req, holder?.userId === claims.userId ? holder : null);
  }
  const candidates: { instance: string; pairedAt?: number; connectedAt: number; runnerId: string }[] = [
    ...await routing.cluster.onlineRunners(claims.userId),
    ...local.map((runner) => ({
      instance: routing.cluster.instanceId,
      pairedAt: runner.pairedAt,
      connectedAt: runner.connectedAt,
      runnerId: runner.runnerId,
    })),
  ];
  const oldest = candidates.sort(compareRunnerAge)[0];
  return towards(ctx, req, oldest);
}

/**
 * Where a runner's `?probe=1` is served: on the instance holding that runner when another does
 * (so `coda-runner status` asks the instance it is connected to), else here.
 */
export async function routeProbe(ctx: RelayContext, req: Request, runnerId: string): Promise<Route> {
  if (!ctx.routing?.flyReplay) return HERE;
  const route = towards(ctx, req, await ctx.routing.cluster.locate(runnerId));
  return route.kind === "replay" ? route : HERE;
}

/**
 * The answer that makes Fly's proxy replay the upgrade on `instance`: `421 Misdirected Request`
 * with `fly-replay: instance=<id>` and a JSON `{error, instance}` for anyone reading it without the proxy.
 */
export function replayResponse(ctx: RelayContext, endpoint: "runner" | "client", instance: string): Response {
  ctx.metrics.replayed(endpoint);
  return Response.json({ error: "the runner is connected to another relay instance", instance }, {
    status: 421,
    headers: { [FLY_REPLAY_HEADER]: `instance=${instance}` },
  });
}

/** Upgrades a client that belongs on another instance only to close it with the route's code and reason. */
export function closeMisrouted(
  ctx: RelayContext,
  req: Request,
  release: () => void,
  route: Extract<Route, { kind: "elsewhere" }>,
): Response {
  const upgraded = upgrade(ctx, req, release);
  if ("refused" in upgraded) return upgraded.refused;
  const { socket, response } = upgraded;
  socket.onopen = () => {
    ctx.metrics.closed(route.code);
    closeSocket(socket, route.code, route.reason, ctx.limits.closeGraceMs);
  };
  socket.onmessage = () => ctx.metrics.dropped("misrouted");
  socket.onerror = () => {};
  return response;
}
