/**
 * The app's configuration, read from the environment in one place.
 *
 * Every variable has a safe default; a bad value stops the app with one clear
 * line ({@linkcode ConfigError}). Secrets that are not set are generated once
 * (32 random bytes) and stored mode 0600 in the data directory.
 *
 * @module
 */
import { join, resolve } from "node:path";
import { DEFAULT_RUNNER_TOKEN_TTL_SECONDS } from "@coda/relay/tokens";
import {
  type ClusterConfig,
  type EdgeConfig,
  parseClusterConfig,
  parseEdgeConfig,
  secretProblem,
} from "@coda/relay";
import { DEFAULT_RECORDING_BYTES_PER_USER } from "./logs.ts";
import { parseUrl, sameSiteOrigins } from "@coda/relay/urls";

/** A configuration problem, worded for the person starting the app. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** The app's settings. */
export interface AppConfig {
  /** Interface to listen on (`HOST`, default 127.0.0.1). */
  host: string;
  /** Port (`PORT`, default 8080; 0 picks a free one). */
  port: number;
  /** Directory for the KV file and generated secrets (`DEVMODE_DATA_DIR`). */
  dataDir: string;
  /** Passed to `Deno.openKv` (`DEVMODE_KV_URL`). */
  kvUrl: string;
  /** HS256 key shared with the relay (`DEVMODE_JWT_SECRET`). */
  jwtSecret: Uint8Array;
  /** Shared with a standalone relay, sent as `X-Relay-Secret` (`RELAY_INTERNAL_SECRET`). */
  relayInternalSecret: string;
  /** The app's origin (`DEVMODE_PUBLIC_URL`), no trailing slash. */
  publicUrl: string;
  /** Origins accepted for the same place as `publicUrl` (localhost aliases on the local default). */
  allowedOrigins: string[];
  /** What clients and runners are told to use (`DEVMODE_RELAY_URL`). */
  relayUrl: string;
  /**
   * Whether the SPA prefers the relay (`DEVMODE_RELAY_ENABLED`, or the spec's
   * `NEXT_PUBLIC_DEVMODE_RELAY_ENABLED`, which wins when both are set).
   */
  relayEnabled: boolean;
  /** Things the operator should hear once at start (conflicting settings). */
  notices: string[];
  /** `closed` refuses sign-ups after the first account (`DEVMODE_SIGNUP`). */
  signup: "open" | "closed";
  /** Runner token lifetime in seconds (`DEVMODE_RUNNER_TOKEN_TTL`). */
  runnerTokenTtlSeconds: number;
  /** Most bytes one user's recordings may hold together (`DEVMODE_RECORDING_BYTES_PER_USER`). */
  recordingBytesPerUser: number;
  /** Connection caps and where client addresses come from (`DEVMODE_CLIENT_IP_HEADER`, …). */
  edge: EdgeConfig;
  /** The in-app relay's instance id and routing among instances sharing the KV (`FLY_MACHINE_ID`, …). */
  cluster: ClusterConfig;
}

/** Where variables come from; `Deno.env` in production, a plain object in tests. */
export type Env = Record<string, string | undefined>;

function readEnv(): Env {
  return Deno.env.toObject();
}

function parsePort(raw: string | undefined): number {
  if (raw === undefined || raw === "") return 8080;
  if (!/^\d+$/.test(raw) || Number(raw) > 65535) {
    throw new ConfigError(`PORT must be a number from 0 to 65535, got "${raw}"`);
  }
  return Number(raw);
}

/** The spec's name for `DEVMODE_RELAY_ENABLED`, accepted as an alias. */
export const SPEC_RELAY_ENABLED_VAR = "NEXT_PUBLIC_DEVMODE_RELAY_ENABLED";

/**
 * Whether the SPA prefers the relay. A reader configuring from the spec sets
 * its name, so when both names are set and disagree the spec's name wins and
 * a notice says so.
 */
function parseRelayEnabled(env: Env, notices: string[]): boolean {
  const ours = parseBool("DEVMODE_RELAY_ENABLED", env.DEVMODE_RELAY_ENABLED, true);
  const specRaw = env[SPEC_RELAY_ENABLED_VAR];
  if (specRaw === undefined || specRaw === "") return ours;
  const spec = parseBool(SPEC_RELAY_ENABLED_VAR, specRaw, true);
  if (env.DEVMODE_RELAY_ENABLED && spec !== ours) {
    notices.push(
      `${SPEC_RELAY_ENABLED_VAR}=${specRaw} and DEVMODE_RELAY_ENABLED=${env.DEVMODE_RELAY_ENABLED} disagree; ` +
        `using ${SPEC_RELAY_ENABLED_VAR} (relay ${spec ? "preferred" : "not preferred"})`,
    );
  }
  return spec;
}

function parseBool(name: string, raw: string | undefined, fallback: boolean): boolean {
  if (raw === undefined || raw === "") return fallback;
  if (["1", "true", "yes", "on"].includes(raw.toLowerCase())) return true;
  if (["0", "false", "no", "off"].includes(raw.toLowerCase())) return false;
  throw new ConfigError(`${name} must be 1 or 0, got "${raw}"`);
}

/**
 * Reads a secret from the environment, or from `file` in the data directory,
 * generating and storing it there (mode 0600) the first time.
 */
export function loadSecret(name: string, raw: string | undefined, file: string): Uint8Array {
  if (raw !== undefined && raw !== "") {
    const problem = secretProblem(name, raw);
    if (problem) throw new ConfigError(problem);
    return new TextEncoder().encode(raw);
  }
  try {
    const stored = Deno.readTextFileSync(file).trim();
    const problem = secretProblem(file, stored);
    if (problem === null) return new TextEncoder().encode(stored);
    throw new ConfigError(`${problem}; or delete it to generate a new one`);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const generated = Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
  Deno.writeTextFileSync(file, generated + "\n", { mode: 0o600, createNew: true });
  return new TextEncoder().encode(generated);
}

/**
 * Parses the app's configuration. `port` is the port actually bound when it
 * differs from `PORT` (port 0 in tests), so default URLs point at the right place.
 */
export function loadAppConfig(env: Env = readEnv(), boundPort?: number): AppConfig {
  const host = env.HOST || "127.0.0.1";
  const port = parsePort(env.PORT);
  const effectivePort = boundPort ?? port;
  const dataDir = resolve(env.DEVMODE_DATA_DIR || "./.data");
  try {
    Deno.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new ConfigError(`DEVMODE_DATA_DIR ${dataDir} cannot be created: ${(error as Error).message}`);
  }
  const kvUrl = env.DEVMODE_KV_URL || join(dataDir, "devmode.kv");
  const jwtSecret = loadSecret("DEVMODE_JWT_SECRET", env.DEVMODE_JWT_SECRET, join(dataDir, "jwt_secret"));
  const relayInternalSecret = new TextDecoder().decode(
    loadSecret("RELAY_INTERNAL_SECRET", env.RELAY_INTERNAL_SECRET, join(dataDir, "relay_internal_secret")),
  );
  const fail = (message: string) => new ConfigError(message);
  const publicUrl = parseUrl(
    "DEVMODE_PUBLIC_URL",
    env.DEVMODE_PUBLIC_URL || `http://localhost:${effectivePort}`,
    ["http:", "https:"],
    fail,
  );
  const relayUrl = parseUrl(
    "DEVMODE_RELAY_URL",
    env.DEVMODE_RELAY_URL || `ws://localhost:${effectivePort}`,
    ["ws:", "wss:"],
    fail,
  );
  const signup = env.DEVMODE_SIGNUP || "open";
  if (signup !== "open" && signup !== "closed") {
    throw new ConfigError(`DEVMODE_SIGNUP must be "open" or "closed", got "${signup}"`);
  }
  const ttlRaw = env.DEVMODE_RUNNER_TOKEN_TTL;
  let runnerTokenTtlSeconds = DEFAULT_RUNNER_TOKEN_TTL_SECONDS;
  if (ttlRaw !== undefined && ttlRaw !== "") {
    if (!/^\d+$/.test(ttlRaw) || Number(ttlRaw) < 60) {
      throw new ConfigError(
        `DEVMODE_RUNNER_TOKEN_TTL must be a number of seconds, at least 60, got "${ttlRaw}"`,
      );
    }
    runnerTokenTtlSeconds = Number(ttlRaw);
  }
  const bytesRaw = env.DEVMODE_RECORDING_BYTES_PER_USER;
  let recordingBytesPerUser = DEFAULT_RECORDING_BYTES_PER_USER;
  if (bytesRaw !== undefined && bytesRaw !== "") {
    if (!/^\d{1,15}$/.test(bytesRaw) || Number(bytesRaw) < 1) {
      throw new ConfigError(
        `DEVMODE_RECORDING_BYTES_PER_USER must be a number of bytes, at least 1, got "${bytesRaw}"`,
      );
    }
    recordingBytesPerUser = Number(bytesRaw);
  }
  const edge = parseEdgeConfig(env, fail);
  const cluster = parseClusterConfig(env, fail);
  const notices: string[] = [];
  const relayEnabled = parseRelayEnabled(env, notices);
  return {
    host,
    port,
    dataDir,
    kvUrl,
    jwtSecret,
    relayInternalSecret,
    publicUrl,
    allowedOrigins: sameSiteOrigins(publicUrl),
    relayUrl,
    cluster,
    relayEnabled,
    notices,
    signup,
    runnerTokenTtlSeconds,
    recordingBytesPerUser,
    edge,
  };
}
