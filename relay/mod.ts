/**
 * The relay: a WebSocket broker between browser clients (`/client`) and
 * runners (`/runner`), with resume by offset, end-to-end flow control and live
 * revocation. Mount it in any `Deno.serve` handler:
 *
 * ```ts ignore
 * const relay = createRelay({ jwtSecret, backend, allowedOrigins });
 * Deno.serve((req, info) => relay.handle(req, info) ?? new Response("not found", { status: 404 }));
 * ```
 *
 * This module is what a server hosting the relay uses (the app, the
 * standalone relay): the relay itself, its configuration, the connection caps
 * and resilient listener it shares with its host, and the used-token store.
 * Clients and runners use the narrower exports: `@coda/relay/protocol` (the
 * wire protocol, also in `PROTOCOL.md`), `/tokens`, `/backend`, `/limits`,
 * `/frames`, `/backoff`, `/urls`, `/utf8`, `/bytes`, `/secrets`, `/local` (what
 * `coda-runner serve` mounts); tests `/testing`.
 *
 * @module
 */
import type { RelayBackend } from "./backend.ts";
import { Broker } from "./broker.ts";
import { Cluster } from "./cluster.ts";
import { randomInstanceId } from "./config.ts";
import { acceptClient } from "./client_link.ts";
import { closeEveryone, jsonError, type RelayContext } from "./context.ts";
import { type RelayLimits, resolveLimits } from "./limits.ts";
import { type RelayLog, stderrLog } from "./log.ts";
import { RelayMetrics } from "./metrics.ts";
import { ConnectionCaps, defaultConnectionLimits, raiseFdLimit, refusalResponse } from "./edge.ts";
import { secretsEqual } from "./secrets.ts";
import { acceptRunner } from "./runner_link.ts";
import { watchRevocations } from "./revocation.ts";
import { FLY_REPLAY_HEADER } from "./routing.ts";

export { DEFAULT_RELAY_LIMITS, type RelayLimits } from "./limits.ts";
export { type RelayLog, stderrLog } from "./log.ts";
export {
  type EdgeConfig,
  loadRelayConfig,
  MIN_SECRET_BYTES,
  parseEdgeConfig,
  secretProblem,
} from "./config.ts";
export { clientAddress, clientIp, ConnectionCaps, refusalResponse } from "./edge.ts";
export { serveMetrics, serveResilient, surviveDescriptorExhaustion } from "./listener.ts";
export { consumeJti } from "./jti_store.ts";
export { getManyChunked, isKvBusy, openSharedKv } from "./shared_kv.ts";
export { REVOCATION_EPOCH_KEY, SHARE_EPOCH_KEY, SIGN_OUT_EPOCH_KEY } from "./cluster.ts";
export { type ClusterConfig, parseClusterConfig } from "./config.ts";

/** Options of {@linkcode createRelay}. */
export interface RelayOptions {
  /** HS256 key shared with the app that mints the tokens. */
  jwtSecret: Uint8Array;
  /** The app-side checks (KV in the app, HTTP when alone). */
  backend: RelayBackend;
  /** Exact origins browsers may connect from; other `Origin` headers get HTTP 403. */
  allowedOrigins: string[];
  /** Clock in ms since the epoch (tests move it). */
  now?: () => number;
  /** Overrides of {@linkcode DEFAULT_RELAY_LIMITS}. */
  limits?: Partial<RelayLimits>;
  /** Receives structured log records; default JSON lines on stderr. */
  log?: RelayLog;
  /**
   * Connection caps shared with the server the relay is mounted in (the app
   * counts its HTTP requests in the same caps); default: the relay's own, from
   * the open-file limit.
   */
  caps?: ConnectionCaps;
  /** The client's address (default: the connection's); what the per-address cap counts. */
  clientIp?: (req: Request, info: Deno.ServeHandlerInfo) => string;
  /**
   * `DEVMODE_METRICS_TOKEN`: `/metrics` then requires `Authorization: Bearer
   * <token>`. Without it `/metrics` answers only connections from loopback.
   */
  metricsToken?: string | null;
  /** This instance's id (`FLY_MACHINE_ID`, `DEVMODE_INSTANCE_ID`); default a random one. In every log record. */
  instanceId?: string;
  /**
   * Several instances: the KV they share (`DEVMODE_KV_URL`) for presence, routing and revocation
   * epochs, and whether Fly's proxy replays upgrades to the instance holding their runner.
   */
  cluster?: { kv: Deno.Kv; flyReplay: boolean };
}

/** A relay, ready to be mounted in a server. */
export interface Relay {
  /**
   * Handles `/runner`, `/client` and `/metrics`; returns `null` for any other
   * path so the caller can serve it.
   */
  handle(req: Request, info: Deno.ServeHandlerInfo): Response | Promise<Response> | null;
  /** The Prometheus text of every metric, for a separate metrics listener (`DEVMODE_METRICS_ADDR`). */
  metrics(): Response;
  /**
   * Stops accepting (marked draining in the shared records first), closes every peer with 1012
   * (reconnect) and waits for them to go, then removes this instance's records.
   */
  shutdown(): Promise<void>;
  /** This instance's id. */
  readonly instanceId: string;
}

/** Whether `hostname` (a connection's address) is this machine's loopback. */
export function isLoopback(hostname: string): boolean {
  const address = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return address === "::1" || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(address);
}

/** Paths the relay answers. */
export const RELAY_PATHS: readonly string[] = ["/runner", "/client", "/metrics"];

/** Creates a relay. */
export function createRelay(options: RelayOptions): Relay {
  const limits = resolveLimits(options.limits);
  const metrics = new RelayMetrics();
  const instanceId = options.instanceId ?? randomInstanceId();
  const baseLog = options.log ?? stderrLog;
  const log: RelayLog = (record) => baseLog({ instance: instanceId, ...record });
  const now = options.now ?? Date.now;
  const cluster = options.cluster &&
    new Cluster({ kv: options.cluster.kv, instanceId, limits, log, now });
  const broker = new Broker({ limits, metrics, log, backend: options.backend, cluster });
  const caps = options.caps ??
    new ConnectionCaps(defaultConnectionLimits(raiseFdLimit()));
  const clientIp = options.clientIp ?? ((_req, info) => (info.remoteAddr as Deno.NetAddr).hostname);
  const ctx: RelayContext = {
    jwtSecret: options.jwtSecret,
    backend: options.backend,
    allowedOrigins: [...options.allowedOrigins],
    now,
    limits,
    metrics,
    log,
    broker,
    sockets: new Set(),
    routing: cluster && { cluster, flyReplay: options.cluster!.flyReplay },
  };
  const revocations = watchRevocations({ broker, backend: options.backend, limits, log, now });
  const clusterStarted = cluster?.start({
    onRunnerElsewhere: (message) => broker.runnerElsewhere(message),
    onRevocationEpoch: () => {
      options.backend.forgetVerifications?.();
      void revocations.check();
    },
  }).then((others) => {
    log({ event: "cluster_joined", others: others.map((other) => other.instance) });
    if (others.length > 0 && !options.cluster!.flyReplay) {
      log({
        event: "cluster_without_proxy",
        warning:
          "other relay instances share this KV but no proxy routes between them (DEVMODE_FLY_REPLAY is " +
          "off): clients whose runner is on another instance are closed 4308",
      });
    }
  }, (error) => log({ event: "cluster_join_failed", error: String(error) }));
  let shuttingDown: Promise<void> | undefined;

  return {
    instanceId,
    handle(req, info) {
      const path = new URL(req.url).pathname;
      if (!RELAY_PATHS.includes(path)) return null;
      if (path === "/metrics") {
        if (options.metricsToken) {
          const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.get("authorization") ?? "")?.[1] ?? "";
          if (!secretsEqual(bearer, options.metricsToken)) {
            return jsonError(401, "metrics need Authorization: Bearer <DEVMODE_METRICS_TOKEN>");
          }
        } else if (!isLoopback((info.remoteAddr as Deno.NetAddr).hostname)) {
          return jsonError(
            403,
            "metrics answer loopback only; set DEVMODE_METRICS_TOKEN or DEVMODE_METRICS_ADDR",
          );
        }
        return this.metrics();
      }
      if (shuttingDown) {
        const refused = jsonError(503, "relay restarting");
        // Behind Fly's proxy the upgrade is tried on another machine at once.
        if (ctx.routing?.flyReplay) refused.headers.set(FLY_REPLAY_HEADER, "elsewhere=true");
        return refused;
      }
      const release = caps.admit(clientIp(req, info));
      if (typeof release === "string") {
        metrics.authFailure(path === "/runner" ? "runner" : "client", `cap_${release}`);
        return refusalResponse(release);
      }
      const accepted = path === "/runner" ? acceptRunner(ctx, req, release) : acceptClient(ctx, req, release);
      // A refused link ends with its answer; an upgraded one releases its place when its socket closes.
      return accepted.then((response) => {
        if (response.status !== 101) release();
        return response;
      }, (error) => {
        release();
        throw error;
      });
    },
    metrics() {
      return new Response(metrics.render({ ...broker.gauges(), sockets: ctx.sockets.size }), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    },
    shutdown() {
      shuttingDown ??= (async () => {
        log({ event: "relay_shutdown", runners: broker.runners.size, clients: broker.clients.size });
        await clusterStarted;
        await cluster?.drain().catch((error) => log({ event: "cluster_drain_failed", error: String(error) }));
        await revocations.stop();
        await closeEveryone(ctx, "relay restarting");
        await cluster?.stop().catch((error) => log({ event: "cluster_stop_failed", error: String(error) }));
      })();
      return shuttingDown;
    },
  };
}
