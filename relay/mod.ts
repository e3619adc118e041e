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
import { acceptClient } from "./client_link.ts";
import { closeEveryone, jsonError, type RelayContext } from "./context.ts";
import { type RelayLimits, resolveLimits } from "./limits.ts";
import { type RelayLog, stderrLog } from "./log.ts";
import { RelayMetrics } from "./metrics.ts";
import { ConnectionCaps, defaultConnectionLimits, raiseFdLimit, refusalResponse } from "./edge.ts";
import { secretsEqual } from "./secrets.ts";
import { acceptRunner } from "./runner_link.ts";
import { watchRevocations } from "./revocation.ts";

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
  /** Stops accepting, closes every peer with 1012 (reconnect) and waits for them to go. */
  shutdown(): Promise<void>;
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
  const log = options.log ?? stderrLog;
  const now = options.now ?? Date.now;
  const broker = new Broker({ limits, metrics, log, backend: options.backend });
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
    closed: new Map(),
  };
  const stopRevocations = watchRevocations({ broker, backend: options.backend, limits, log, now });
  let shuttingDown: Promise<void> | undefined;

  return {
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
      if (shuttingDown) return jsonError(503, "relay restarting");
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
        await stopRevocations();
        await closeEveryone(ctx, "relay restarting");
      })();
      return shuttingDown;
    },
  };
}
