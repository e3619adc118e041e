/**
 * The relay on its own (`deno task relay`), as deployed on Fly.io: `/healthz`,
 * `/runner`, `/client` and `/metrics` on one port, runners verified with the
 * app over HTTP. With `DEVMODE_KV_URL` it is one of several instances sharing
 * that KV (`cluster.ts`, `routing.ts`). SIGTERM or SIGINT drains: marked
 * draining, new upgrades are refused, every peer is closed with 1012 so it
 * reconnects elsewhere, its records are removed, then the process exits.
 *
 * @module
 */
import { HEALTH_PATH, loadRelayConfig, type RelayConfig, RelayConfigError } from "./config.ts";
import { createHttpRelayBackend } from "./http_backend.ts";
import { clientIp, ConnectionCaps } from "./edge.ts";
import { serveMetrics, serveResilient, surviveDescriptorExhaustion } from "./listener.ts";
import { openSharedKv } from "./shared_kv.ts";
import { stderrLog } from "./log.ts";
import { createRelay, type Relay, type RelayLimits, type RelayLog } from "./mod.ts";

/** Re-verify interval when alone: revoked runners go within this (plus one verify request). */
export const STANDALONE_REVERIFY_MS = 30_000;

/** Options of {@linkcode startStandaloneRelay}. */
export interface StandaloneOptions {
  limits?: Partial<RelayLimits>;
  /** How long a positive runner verification is reused (default 25 s). */
  verifyCacheMs?: number;
  log?: RelayLog;
}

/** A running standalone relay. */
export interface StandaloneRelay {
  /** `http://HOST:PORT` as bound. */
  url: string;
  /** `ws://HOST:PORT` */
  relayUrl: string;
  config: RelayConfig;
  relay: Relay;
  /** `http://HOST:PORT/metrics` of the separate metrics listener, when `DEVMODE_METRICS_ADDR` is set. */
  metricsUrl: string | null;
  /** Drains (peers closed 1012) and stops the server. */
  close(): Promise<void>;
}

/** Starts the relay from environment variables (throws {@linkcode RelayConfigError} on bad ones). */
export async function startStandaloneRelay(
  env: Record<string, string | undefined>,
  options: StandaloneOptions = {},
): Promise<StandaloneRelay> {
  const config = loadRelayConfig(env);
  const log = options.log ?? stderrLog;
  let kv: Deno.Kv | null = null;
  if (config.kvUrl !== null) {
    try {
      kv = await openSharedKv(config.kvUrl);
    } catch (error) {
      throw new RelayConfigError(`DEVMODE_KV_URL could not be opened: ${error}`);
    }
  }
  const relay = createRelay({
    jwtSecret: config.jwtSecret,
    backend: createHttpRelayBackend({
      appUrl: config.appUrl,
      relaySecret: config.relayInternalSecret,
      cacheMs: options.verifyCacheMs,
    }),
    allowedOrigins: config.allowedOrigins,
    limits: { reverifyIntervalMs: STANDALONE_REVERIFY_MS, ...options.limits },
    log,
    caps: new ConnectionCaps(config.edge),
    clientIp: (req, info) => clientIp(req, info, config.edge.clientIpHeader),
    metricsToken: config.edge.metricsToken,
    instanceId: config.cluster.instanceId,
    cluster: kv ? { kv, flyReplay: config.cluster.flyReplay } : undefined,
  });
  const metricsServer = config.edge.metricsAddr &&
    serveMetrics(config.edge.metricsAddr, () => relay.metrics());
  let closing: Promise<void> | undefined;
  const server = serveResilient({ hostname: config.host, port: config.port, log }, (req, info) => {
    const handled = relay.handle(req, info);
    if (handled) return handled;
    if (new URL(req.url).pathname === HEALTH_PATH) {
      // Draining: the health check fails so the proxy stops sending new connections here.
      const instance = relay.instanceId;
      return closing
        ? Response.json({ ok: false, instance }, { status: 503 })
        : Response.json({ ok: true, instance });
    }
    return Response.json({ error: "not found" }, { status: 404 });
  });
  const hostname = server.addr.hostname.includes(":") ? `[${server.addr.hostname}]` : server.addr.hostname;
  const url = `http://${hostname}:${server.addr.port}`;
  return {
    url,
    relayUrl: url.replace(/^http/, "ws"),
    config,
    relay,
    metricsUrl: metricsServer
      ? `http://${metricsServer.addr.hostname}:${metricsServer.addr.port}/metrics`
      : null,
    close() {
      closing ??= (async () => {
        await relay.shutdown();
        await server.shutdown();
        await metricsServer?.shutdown();
        kv?.close();
      })();
      return closing;
    },
  };
}

if (import.meta.main) {
  let started: StandaloneRelay;
  try {
    started = await startStandaloneRelay(Deno.env.toObject());
  } catch (error) {
    if (!(error instanceof RelayConfigError)) throw error;
    console.error(`relay: ${error.message}`);
    Deno.exit(2);
  }
  surviveDescriptorExhaustion(stderrLog);
  const { edge } = started.config;
  console.error(JSON.stringify({
    event: "relay_listening",
    url: started.url,
    instance: started.relay.instanceId,
    sharedKv: started.config.kvUrl !== null,
    flyReplay: started.config.cluster.flyReplay,
    app: started.config.appUrl,
    openFileLimit: edge.fdLimit,
    maxConnections: edge.maxConnections,
    maxConnectionsPerIp: edge.maxConnectionsPerIp,
  }));
  const stop = async () => {
    await started.close();
    Deno.exit(0);
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) Deno.addSignalListener(signal, stop);
}
