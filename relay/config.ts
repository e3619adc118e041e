/**
 * Configuration of the standalone relay (`deno task relay`), read from the
 * environment. Anything missing or malformed stops the relay with one line.
 *
 * | Variable | Default | Meaning |
 * | --- | --- | --- |
 * | `PORT` | 8080 | port to listen on (0: any free port) |
 * | `HOST` | 0.0.0.0 | interface (Fly's proxy reaches the machine on it) |
 * | `DEVMODE_JWT_SECRET` | required | HS256 key shared with the app, ≥ 32 bytes |
 * | `RELAY_INTERNAL_SECRET` | required | sent to the app as `X-Relay-Secret`, ≥ 32 bytes |
 * | `DEVMODE_APP_URL` | required | the app's origin: runner verification, presence, used client tokens, sign-outs |
 * | `DEVMODE_ALLOWED_ORIGINS` | required | comma-separated exact origins browsers connect from |
 * | `DEVMODE_CLIENT_IP_HEADER` | unset | header a trusted proxy puts the client address in |
 * | `DEVMODE_MAX_CONNECTIONS` | open-file limit − 128 | concurrent connections in total |
 * | `DEVMODE_MAX_CONNECTIONS_PER_IP` | 128 | concurrent connections from one address |
 * | `DEVMODE_METRICS_TOKEN` | unset | bearer token `/metrics` requires; unset, loopback only |
 * | `DEVMODE_METRICS_ADDR` | unset | `host:port` of a separate listener serving `/metrics` alone |
 * | `DEVMODE_KV_URL` | unset | the KV every instance shares (a file, or a KV Connect URL with `DENO_KV_ACCESS_TOKEN`); unset, this relay is the only one |
 * | `FLY_MACHINE_ID` | set by Fly | this instance's id, what `fly-replay: instance=` names |
 * | `DEVMODE_INSTANCE_ID` | random | the instance id off Fly |
 * | `DEVMODE_FLY_REPLAY` | 1 on Fly, else 0 | answer upgrades for another instance's runner with `fly-replay` |
 *
 * @module
 */

import { type ConnectionLimits, defaultConnectionLimits, type FdLimit, raiseFdLimit } from "./edge.ts";
import { parseUrl } from "./urls.ts";

/** A configuration problem, worded for the operator. */
export class RelayConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RelayConfigError";
  }
}

/** Default port, also the `internal_port` in `fly.toml`. */
export const DEFAULT_RELAY_PORT = 8080;
/** Health check path, also in `fly.toml`. */
export const HEALTH_PATH = "/healthz";
/** Minimum secret length in bytes. */
export const MIN_SECRET_BYTES = 32;
/** Least estimated entropy of a secret, in bits (32 random bytes hold 256; hex of 16 holds 128). */
export const MIN_SECRET_BITS = 96;

/**
 * Checks a shared secret (`DEVMODE_JWT_SECRET`, `RELAY_INTERNAL_SECRET`,
 * `DEVMODE_METRICS_TOKEN`): the one rule the app and the relay both apply, so
 * a value one of them accepts is never read differently by the other. It is
 * taken byte for byte — surrounding whitespace is refused, not trimmed — and
 * must be ≥ 32 bytes, not a repeated pattern, and hold ≥ 96 bits by a
 * character-frequency estimate. Returns the message of what is wrong, or null.
 */
export function secretProblem(name: string, value: string): string | null {
  if (value.trim() === "") return `${name} must not be empty or whitespace`;
  if (value !== value.trim()) return `${name} must not start or end with whitespace`;
  const bytes = new TextEncoder().encode(value).length;
  if (bytes < MIN_SECRET_BYTES) {
    return `${name} must be at least ${MIN_SECRET_BYTES} bytes long (got ${bytes})`;
  }
  const generate = "generate one with `openssl rand -hex 32`";
  for (let period = 1; period <= value.length / 2; period++) {
    if (value.length % period === 0 && value.slice(0, period).repeat(value.length / period) === value) {
      return `${name} is a repeated pattern; ${generate}`;
    }
  }
  const counts = new Map<string, number>();
  for (const char of value) counts.set(char, (counts.get(char) ?? 0) + 1);
  const length = [...value].length;
  let bits = 0;
  for (const count of counts.values()) bits -= count * Math.log2(count / length);
  if (bits < MIN_SECRET_BITS) {
    return `${name} is too predictable (about ${Math.floor(bits)} bits); ${generate}`;
  }
  return null;
}

/** The standalone relay's settings. */
export interface RelayConfig {
  host: string;
  port: number;
  jwtSecret: Uint8Array;
  relayInternalSecret: string;
  /** The app's origin, no trailing slash. */
  appUrl: string;
  allowedOrigins: string[];
  /** Connection caps and where client addresses come from. */
  edge: EdgeConfig;
  /** `DEVMODE_KV_URL`: the KV every instance shares, or null when this relay is the only one. */
  kvUrl: string | null;
  /** Instance id and routing. */
  cluster: ClusterConfig;
}

/** How an instance knows itself among several; the app's relay and the standalone one read it alike. */
export interface ClusterConfig {
  /** `FLY_MACHINE_ID`, else `DEVMODE_INSTANCE_ID`, else a random id for this process. */
  instanceId: string;
  /** `DEVMODE_FLY_REPLAY` (default: on when `FLY_MACHINE_ID` is set): Fly's proxy replays upgrades. */
  flyReplay: boolean;
}

/** A random instance id, for a process that was given none. */
export function randomInstanceId(): string {
  return `relay-${crypto.randomUUID().slice(0, 8)}`;
}

/** Reads `FLY_MACHINE_ID`, `DEVMODE_INSTANCE_ID` and `DEVMODE_FLY_REPLAY`; a bad value is reported through `fail`. */
export function parseClusterConfig(
  env: Record<string, string | undefined>,
  fail: (message: string) => Error,
): ClusterConfig {
  const fly = env.FLY_MACHINE_ID?.trim() || null;
  const named = env.DEVMODE_INSTANCE_ID?.trim() || null;
  for (const [name, value] of [["FLY_MACHINE_ID", fly], ["DEVMODE_INSTANCE_ID", named]] as const) {
    // It goes into a `fly-replay` header and KV keys: letters, digits, `-` and `_` only.
    if (value !== null && !/^[A-Za-z0-9_-]{1,64}$/.test(value)) {
      throw fail(`${name} must be 1 to 64 letters, digits, - or _, got "${value}"`);
    }
  }
  const rawReplay = env.DEVMODE_FLY_REPLAY?.trim() || null;
  if (rawReplay !== null && rawReplay !== "1" && rawReplay !== "0") {
    throw fail(`DEVMODE_FLY_REPLAY must be 1 or 0, got "${rawReplay}"`);
  }
  return {
    instanceId: fly ?? named ?? randomInstanceId(),
    flyReplay: rawReplay === null ? fly !== null : rawReplay === "1",
  };
}

/** How the process admits connections; the app and the relay read it alike. */
export interface EdgeConfig extends ConnectionLimits {
  /**
   * Header a trusted reverse proxy puts the client's address in
   * (`DEVMODE_CLIENT_IP_HEADER`, lower case), or `null` to use the connection's
   * address. Only set it behind a proxy that overwrites the header.
   */
  clientIpHeader: string | null;
  /** The open-file limit the caps were derived from (null: unknown). */
  fdLimit: FdLimit | null;
  /** `DEVMODE_METRICS_TOKEN`: the bearer token `/metrics` requires (null: loopback only). */
  metricsToken: string | null;
  /** `DEVMODE_METRICS_ADDR` (`host:port`): a separate listener for `/metrics` alone. */
  metricsAddr: { hostname: string; port: number } | null;
}

/**
 * Reads `DEVMODE_CLIENT_IP_HEADER`, `DEVMODE_MAX_CONNECTIONS` (default: the
 * open-file limit less what the process needs for itself) and
 * `DEVMODE_MAX_CONNECTIONS_PER_IP`; a bad value is reported through `fail`.
 */
export function parseEdgeConfig(
  env: Record<string, string | undefined>,
  fail: (message: string) => Error,
  fdLimit: FdLimit | null = raiseFdLimit(),
): EdgeConfig {
  const clientIpHeader = env.DEVMODE_CLIENT_IP_HEADER?.trim().toLowerCase() || null;
  if (clientIpHeader !== null && !/^[a-z0-9-]+$/.test(clientIpHeader)) {
    throw fail(`DEVMODE_CLIENT_IP_HEADER must be a header name, got "${clientIpHeader}"`);
  }
  const count = (name: string, fallback: number) => {
    const raw = env[name]?.trim();
    if (raw === undefined || raw === "") return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < 1) throw fail(`${name} must be a whole number ≥ 1, got "${raw}"`);
    return Number(raw);
  };
  const metricsToken = env.DEVMODE_METRICS_TOKEN || null;
  if (metricsToken !== null) {
    const problem = secretProblem("DEVMODE_METRICS_TOKEN", metricsToken);
    if (problem) throw fail(problem);
  }
  const rawMetricsAddr = env.DEVMODE_METRICS_ADDR?.trim() || null;
  let metricsAddr = null;
  if (rawMetricsAddr !== null) {
    const match = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(rawMetricsAddr);
    if (!match || Number(match[2]) > 65535) {
      throw fail(`DEVMODE_METRICS_ADDR must be host:port, e.g. 127.0.0.1:9091, got "${rawMetricsAddr}"`);
    }
    metricsAddr = { hostname: match[1].replace(/^\[|\]$/g, ""), port: Number(match[2]) };
  }
  const defaults = defaultConnectionLimits(fdLimit);
  return {
    clientIpHeader,
    fdLimit,
    metricsToken,
    metricsAddr,
    maxConnections: count("DEVMODE_MAX_CONNECTIONS", defaults.maxConnections),
    maxConnectionsPerIp: count("DEVMODE_MAX_CONNECTIONS_PER_IP", defaults.maxConnectionsPerIp),
  };
}

function required(env: Record<string, string | undefined>, name: string): string {
  const value = env[name];
  if (value === undefined || value.trim() === "") throw new RelayConfigError(`${name} is required`);
  return value.trim();
}

function secret(env: Record<string, string | undefined>, name: string): string {
  const value = env[name];
  if (value === undefined || value === "") throw new RelayConfigError(`${name} is required`);
  const problem = secretProblem(name, value);
  if (problem) throw new RelayConfigError(problem);
  return value;
}

function origin(name: string, raw: string): string {
  const url = new URL(parseUrl(name, raw, ["http:", "https:"], (message) => new RelayConfigError(message)));
  if (url.origin !== raw.replace(/\/+$/, "")) {
    throw new RelayConfigError(`${name} must hold bare origins like https://app.example.com, got "${raw}"`);
  }
  return url.origin;
}

/** Reads the relay's configuration; throws {@linkcode RelayConfigError}. */
export function loadRelayConfig(env: Record<string, string | undefined> = Deno.env.toObject()): RelayConfig {
  const rawPort = env.PORT?.trim() || String(DEFAULT_RELAY_PORT);
  if (!/^\d+$/.test(rawPort) || Number(rawPort) > 65535) {
    throw new RelayConfigError(`PORT must be a number from 0 to 65535, got "${rawPort}"`);
  }
  const jwtSecret = new TextEncoder().encode(secret(env, "DEVMODE_JWT_SECRET"));
  const relayInternalSecret = secret(env, "RELAY_INTERNAL_SECRET");
  const appUrl = origin("DEVMODE_APP_URL", required(env, "DEVMODE_APP_URL"));
  const allowedOrigins = required(env, "DEVMODE_ALLOWED_ORIGINS").split(",").map((s) => s.trim())
    .filter((s) => s !== "").map((s) => origin("DEVMODE_ALLOWED_ORIGINS", s));
  if (allowedOrigins.length === 0) throw new RelayConfigError("DEVMODE_ALLOWED_ORIGINS is required");
  return {
    host: env.HOST?.trim() || "0.0.0.0",
    port: Number(rawPort),
    jwtSecret,
    relayInternalSecret,
    appUrl,
    allowedOrigins,
    edge: parseEdgeConfig(env, (message) => new RelayConfigError(message)),
    kvUrl: env.DEVMODE_KV_URL?.trim() || null,
    cluster: parseClusterConfig(env, (message) => new RelayConfigError(message)),
  };
}
