/**
 * The whole app on one port: the HTTP API (`/api/*`, `/healthz`), the relay
 * (`/runner`, `/client`, `/metrics`) and the SPA (everything else).
 *
 * @module
 */
import { join } from "node:path";
import { type ApiOptions, createApi } from "./app.ts";
import { type AppConfig, type Env, loadAppConfig } from "./config.ts";
import { createKvRelayBackend } from "./relay_backend.ts";
import { secureDataDir } from "./data_dir.ts";
import {
  clientIp,
  ConnectionCaps,
  createRelay,
  openSharedKv,
  refusalResponse,
  type Relay,
  type RelayLimits,
  type RelayLog,
  serveMetrics,
  serveResilient,
  stderrLog,
} from "@coda/relay";
import { createSpaHandler } from "@coda/spa/serve";

/** Where the built SPA lives. */
export const SPA_DIST_DIR = join(import.meta.dirname ?? ".", "..", "spa", "dist");

/** Options of {@linkcode startApp}. */
export interface StartAppOptions {
  /** Environment variables; defaults to the process environment. */
  env?: Env;
  /** Clock in ms since the epoch (tests move it). */
  now?: () => number;
  /** Relay limits (tests shrink the timeouts). */
  relayLimits?: Partial<RelayLimits>;
  /** Where the relay's structured log records go (default: JSON lines on stderr). */
  relayLog?: RelayLog;
  /** Called once with the bound address, for the startup message. */
  onListen?: (app: { url: string; config: AppConfig }) => void;
  /** Options of the API (tests check its answers against the contract). */
  api?: ApiOptions;
  /** Where the built SPA is (default {@linkcode SPA_DIST_DIR}; end-to-end tests build their own). */
  spaDistDir?: string;
}

/** A running app. */
export interface StartedApp {
  /** `http://HOST:PORT` as bound. */
  url: string;
  /** `ws://HOST:PORT`, the relay on the same port. */
  relayUrl: string;
  config: AppConfig;
  kv: Deno.Kv;
  relay: Relay;
  /** Drains the relay (peers closed with 1012), stops the server, closes KV. */
  close(): Promise<void>;
}

/** Starts the app: loads configuration, opens KV, and serves (the SPA as `deno task build` left it). */
export async function startApp(options: StartAppOptions = {}): Promise<StartedApp> {
  const env = options.env ?? Deno.env.toObject();
  const now = options.now ?? Date.now;
  const requested = loadAppConfig(env);

  let handler: Deno.ServeHandler<Deno.NetAddr> = () => new Response("starting", { status: 503 });
  const log = options.relayLog ?? stderrLog;
  const server = serveResilient(
    { hostname: requested.host, port: requested.port, log },
    (req, info) => handler(req, info),
  );
  const config = loadAppConfig(env, server.addr.port);
  config.notices.push(...secureDataDir(config.dataDir, config.kvUrl));
  const kv = await openSharedKv(config.kvUrl);
  const api = createApi({ config, kv, now }, options.api);
  const caps = new ConnectionCaps(config.edge);
  const relay = createRelay({
    jwtSecret: config.jwtSecret,
    backend: createKvRelayBackend(kv, now),
    allowedOrigins: config.allowedOrigins,
    now,
    limits: options.relayLimits,
    log,
    caps,
    clientIp: (req, info) => clientIp(req, info, config.edge.clientIpHeader),
    metricsToken: config.edge.metricsToken,
    instanceId: config.cluster.instanceId,
    // The app's KV is the one its instances share (`DEVMODE_KV_URL`), so its relay always keeps the shared records.
    cluster: { kv, flyReplay: config.cluster.flyReplay },
  });
  const metricsServer = config.edge.metricsAddr &&
    serveMetrics(config.edge.metricsAddr, () => relay.metrics());
  const spa = createSpaHandler({
    distDir: options.spaDistDir ?? SPA_DIST_DIR,
    relayUrl: config.relayUrl,
    publicUrl: config.publicUrl,
  });

  handler = async (req, info) => {
    const relayResponse = relay.handle(req, info);
    if (relayResponse) return relayResponse;
    const ip = clientIp(req, info, config.edge.clientIpHeader);
    const release = caps.admit(ip);
    if (typeof release === "string") return refusalResponse(release);
    try {
      const path = new URL(req.url).pathname;
      if (path === "/healthz" || path === "/api" || path.startsWith("/api/")) {
        // A fresh Request rather than `req`, which would carry the connection's abort signal.
        return await api.fetch(
          new Request(req.url, { method: req.method, headers: req.headers, body: req.body }),
          info,
        );
      }
      return await spa(req);
    } finally {
      release();
    }
  };

  const host = server.addr.hostname.includes(":") ? `[${server.addr.hostname}]` : server.addr.hostname;
  const url = `http://${host}:${server.addr.port}`;
  options.onListen?.({ url, config });
  let closed: Promise<void> | undefined;
  return {
    url,
    relayUrl: url.replace(/^http/, "ws"),
    config,
    kv,
    relay,
    close() {
      closed ??= (async () => {
        await relay.shutdown();
        await server.shutdown();
        await metricsServer?.shutdown();
        kv.close();
      })();
      return closed;
    },
  };
}
