/**
 * The runner's environment, read in one place. A bad value stops the runner
 * with one clear line ({@linkcode RunnerConfigError}) before anything starts.
 *
 * @module
 */
import { DEFAULT_REPLAY_BYTES } from "./replay_buffer.ts";
import { isAbsolute } from "node:path";
import { parseUrl } from "@coda/relay/urls";
import { DEFAULT_TRANSFER_MAX_BYTES } from "@coda/relay/protocol";

/** A configuration problem, worded for the person starting the runner. */
export class RunnerConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RunnerConfigError";
  }
}

/** Default `DEVMODE_SESSION_GRACE`: 15 minutes. */
export const DEFAULT_SESSION_GRACE_MS = 15 * 60 * 1000;

/** The runner's settings from the environment. */
export interface RunnerEnvConfig {
  /** `RELAY_URL`: overrides the stored relay URL (ws:// or wss://). */
  relayUrl?: string;
  /** `RUNNER_TOKEN`: overrides the stored token (the spec's manual token mode). */
  runnerToken?: string;
  /** `APP_URL`: the app, for pairing and logs (default http://localhost:8080). */
  appUrl: string;
  /** `CODA_RUNNER_CONFIG`: the config file path, when set. */
  configPath?: string;
  /** `TTY_CWD`: where new sessions start (default the home directory). */
  ttyCwd?: string;
  /**
   * `TTY_SYNC`: `holder` (the default) keeps each session in a session holder
   * process, so it outlives the runner; `tmux` does too, with tmux in the
   * holder's PTY; `off` runs sessions in the runner, which ends them.
   */
  sync: "holder" | "tmux" | "off";
  /** Whether sessions run in tmux (`TTY_SYNC=tmux`). */
  tmux: boolean;
  /** `CODA_RUNTIME_DIR`: where session holders keep their sockets (default beside the config file). */
  runtimeDir?: string;
  /** `CODA_TMUX_SOCKET`: the tmux socket name (`tmux -L`), default `coda`. */
  tmuxSocket: string;
  /** `DEVMODE_SESSION_GRACE`: how long a session without clients lives, ms. */
  sessionGraceMs: number;
  /** `CODA_REPLAY_BYTES`: replay buffer size per session. */
  replayBytes: number;
  /** `CODA_TRANSFER_MAX_BYTES`: largest file uploaded into or downloaded from a session. */
  transferMaxBytes: number;
  /**
   * `CODA_HOLDER_CPU_PROF_DIR`: an absolute directory where session holders (of a runner run from source)
   * write V8 CPU profiles as they exit; for `deno task bench --cpu-prof`.
   */
  holderCpuProfDir?: string;
}

/** Where variables come from; `Deno.env.toObject()` in production, a plain object in tests. */
export type Env = Record<string, string | undefined>;

function nonEmpty(raw: string | undefined): string | undefined {
  const value = raw?.trim();
  return value ? value : undefined;
}

/**
 * Parses a duration: plain seconds (`900`) or a number with a unit
 * (`500ms`, `90s`, `15m`, `2h`). Returns milliseconds.
 */
export function parseDuration(name: string, raw: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(raw.trim());
  if (!match) {
    throw new RunnerConfigError(`${name} must be a duration like 900, 90s, 15m or 2h, got "${raw}"`);
  }
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] ?? "s"] ?? 1000;
  const ms = Math.round(Number(match[1]) * unit);
  if (ms < 1) throw new RunnerConfigError(`${name} must be longer than 0, got "${raw}"`);
  return ms;
}

function parseBytes(name: string, raw: string): number {
  const match = /^(\d+)\s*(k|ki|kib|m|mi|mib)?$/i.exec(raw.trim());
  if (!match) throw new RunnerConfigError(`${name} must be a byte count like 1048576 or 1MiB, got "${raw}"`);
  const unit = match[2]?.toLowerCase().startsWith("k") ? 1024 : match[2] ? 1024 * 1024 : 1;
  const bytes = Number(match[1]) * unit;
  if (bytes < 1024 || bytes > 256 * 1024 * 1024) {
    throw new RunnerConfigError(`${name} must be between 1 KiB and 256 MiB, got "${raw}"`);
  }
  return bytes;
}

/** Largest `CODA_TRANSFER_MAX_BYTES`: 64 GiB (offsets are exact far beyond it; browsers hold downloads in memory). */
const MAX_TRANSFER_CAP = 64 * 1024 ** 3;

/** Parses `CODA_TRANSFER_MAX_BYTES`: bytes, or a number with K/KiB, M/MiB or G/GiB, from 1 byte to 64 GiB. */
export function parseTransferCap(raw: string): number {
  const match = /^(\d+)\s*(k|ki|kib|m|mi|mib|g|gi|gib)?$/i.exec(raw.trim());
  const unit = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[match?.[2]?.[0].toLowerCase() ?? ""] ?? 1;
  const bytes = match ? Number(match[1]) * unit : NaN;
  if (!(bytes >= 1 && bytes <= MAX_TRANSFER_CAP)) {
    throw new RunnerConfigError(
      `CODA_TRANSFER_MAX_BYTES must be a byte count from 1 to 64GiB, like 104857600 or 100MiB, got "${raw}"`,
    );
  }
  return bytes;
}

/** The absolute path in variable `name`, if set. */
function absolutePath(env: Env, name: string): string | undefined {
  const path = nonEmpty(env[name]);
  if (path !== undefined && !isAbsolute(path)) {
    throw new RunnerConfigError(`${name} must be an absolute path, got "${path}"`);
  }
  return path;
}

/** Reads the runner's configuration from `env`; throws {@linkcode RunnerConfigError}. */
export function loadRunnerEnv(env: Env): RunnerEnvConfig {
  const fail = (message: string) => new RunnerConfigError(message);
  const relayUrl = nonEmpty(env.RELAY_URL);
  const runnerToken = nonEmpty(env.RUNNER_TOKEN);
  const sync = nonEmpty(env.TTY_SYNC) ?? "holder";
  if (sync !== "holder" && sync !== "tmux" && sync !== "off") {
    throw new RunnerConfigError(`TTY_SYNC must be holder, tmux or off (or unset), got "${sync}"`);
  }
  const runtimeDir = absolutePath(env, "CODA_RUNTIME_DIR");
  const tmuxSocket = nonEmpty(env.CODA_TMUX_SOCKET) ?? "coda";
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(tmuxSocket)) {
    throw new RunnerConfigError(
      `CODA_TMUX_SOCKET must be 1-64 characters of [A-Za-z0-9_.-], got "${tmuxSocket}"`,
    );
  }
  const grace = nonEmpty(env.DEVMODE_SESSION_GRACE);
  const replay = nonEmpty(env.CODA_REPLAY_BYTES);
  const transferCap = nonEmpty(env.CODA_TRANSFER_MAX_BYTES);
  return {
    relayUrl: relayUrl ? parseUrl("RELAY_URL", relayUrl, ["ws:", "wss:"], fail) : undefined,
    runnerToken,
    appUrl: parseUrl("APP_URL", nonEmpty(env.APP_URL) ?? "http://localhost:8080", ["http:", "https:"], fail),
    configPath: nonEmpty(env.CODA_RUNNER_CONFIG),
    ttyCwd: nonEmpty(env.TTY_CWD),
    sync,
    tmux: sync === "tmux",
    runtimeDir,
    tmuxSocket,
    sessionGraceMs: grace ? parseDuration("DEVMODE_SESSION_GRACE", grace) : DEFAULT_SESSION_GRACE_MS,
    replayBytes: replay ? parseBytes("CODA_REPLAY_BYTES", replay) : DEFAULT_REPLAY_BYTES,
    transferMaxBytes: transferCap ? parseTransferCap(transferCap) : DEFAULT_TRANSFER_MAX_BYTES,
    holderCpuProfDir: absolutePath(env, "CODA_HOLDER_CPU_PROF_DIR"),
  };
}
