/**
 * Command-line parsing for `coda-runner`: a subcommand and its flags, split by
 * `node:util`'s `parseArgs` in strict mode. Any unknown command or flag, or a
 * missing or bad value, is a {@linkcode UsageError} (exit 2).
 *
 * @module
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import type { LogFormat } from "./log.ts";

/** Bad command line; the message says what was wrong. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The subcommands. */
export type Command =
  | "run"
  | "pair"
  | "status"
  | "logout"
  | "serve"
  | "selfcheck"
  | "install"
  | "uninstall"
  | "hold"
  | "help"
  | "version";

/** A parsed command line. */
export interface CliArgs {
  command: Command;
  logFormat: LogFormat;
  /** `serve --port` (default 7681). */
  port?: number;
  /** `serve --host` (default 127.0.0.1). */
  host?: string;
  /** `serve --allow-origin`, repeatable. */
  allowOrigins: string[];
  /** `--yes`: keep a new pairing without asking to confirm its account (unattended installs). */
  assumeYes: boolean;
  /** `--log-file`: log lines are appended there too (a Windows scheduled task keeps no output). */
  logFile?: string;
  /** `hold --dir`: the runtime directory a session holder listens in. */
  dir?: string;
}

/** The `--help` text. */
export const USAGE = `coda-runner: reach a terminal on this machine from your Coda app.

Usage:
  coda-runner                 pair this machine if needed, then connect and wait for sessions
  coda-runner pair            pair again (a new code to approve in the app)
  coda-runner status          show the account, runner, relay, token expiry and whether the relay accepts it
  coda-runner logout          revoke this runner in the app and forget its credentials
  coda-runner selfcheck       check that a shell runs in a PTY, the config is private, the relay URL parses
  coda-runner install         run the paired runner as a service of this user (systemd, launchd, Task Scheduler)
  coda-runner uninstall       stop and remove that service
  coda-runner hold --dir D    (started by the runner) a session holder: keeps one session's shell
                              running across runner restarts, listening on a socket in D
  coda-runner serve           serve terminals directly (manual URL fallback, no relay)
      --port N                port to listen on (default 7681)
      --host H                interface to listen on (default 127.0.0.1)
      --allow-origin O        browser origin allowed to connect (repeatable;
                              default APP_URL and its localhost aliases)

Options:
  -y, --yes                   keep a new pairing without asking to confirm the account (unattended installs)
  --log-format text|json      log line format (default text)
  --log-file PATH             also append log lines to PATH
  -h, --help                  show this help
  -V, --version               show the version

Environment:
  APP_URL                     the Coda app (default http://localhost:8080), for pairing and recordings
  CODA_RUNNER_ASSUME_YES=1    like --yes
  RELAY_URL, RUNNER_TOKEN     use this relay / token instead of the stored ones
  CODA_RUNNER_CONFIG          config file path (default: the OS's config directory)
  TTY_CWD                     directory new sessions start in (default: home)
  TTY_SYNC                    how sessions outlive the runner: unset or holder (default: each in a
                              session holder process), tmux (a holder running tmux: also
                              \`tmux -L coda attach\`), off (in the runner; they end with it)
  CODA_RUNTIME_DIR            where session holders keep their sockets (default: "sessions" beside
                              the config file)
  CODA_TMUX_SOCKET            tmux socket name (default coda): tmux -L coda attach -t coda-<session>
  DEVMODE_SESSION_GRACE       how long a session without clients lives (default 15m)
  CODA_REPLAY_BYTES           replay buffer per session (default 2MiB)
  BROWSER                     the program that opens the pairing link on Enter (default: the OS's)
`;

const COMMANDS: Record<string, Command> = {
  run: "run",
  pair: "pair",
  status: "status",
  logout: "logout",
  serve: "serve",
  selfcheck: "selfcheck",
  install: "install",
  uninstall: "uninstall",
  hold: "hold",
  help: "help",
};

const OPTIONS = {
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
  yes: { type: "boolean", short: "y" },
  "log-format": { type: "string" },
  "log-file": { type: "string" },
  port: { type: "string" },
  host: { type: "string" },
  "allow-origin": { type: "string", multiple: true },
  dir: { type: "string" },
} as const satisfies ParseArgsOptionsConfig;

const SERVE_ONLY = ["port", "host", "allow-origin"] as const;

/**
 * A parseArgs strict-mode error in this CLI's words (`unknown option --x`, `--x needs a value`):
 * its own unknown-option text advises `--` for arguments starting with `-`, which no command takes.
 * A message it does not recognise is passed on as it is.
 */
function usageMessage(code: string, message: string): string {
  const quoted = /'(?:-\w, )?([^' ]+)/.exec(message)?.[1];
  if (quoted === undefined) return message;
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return `unknown option ${quoted}`;
  if (/argument missing/.test(message)) return `${quoted} needs a value`;
  if (/argument is ambiguous/.test(message)) {
    return `${quoted} needs a value (for one starting with "-", write ${quoted}=VALUE)`;
  }
  if (/does not take an argument/.test(message)) return `${quoted} takes no value`;
  return message;
}

/** `args` split into {@linkcode OPTIONS} and positionals; a {@linkcode UsageError} for anything else. */
function parseStrict(args: string[]) {
  try {
    return parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: true });
  } catch (error) {
    if (
      !(error instanceof TypeError) || !("code" in error) || !String(error.code).startsWith("ERR_PARSE_ARGS_")
    ) {
      throw error;
    }
    throw new UsageError(usageMessage(String(error.code), error.message));
  }
}

/** Parses `args` (without the program name). */
export function parseCliArgs(args: string[]): CliArgs {
  const { values, positionals } = parseStrict(args);
  const parsed: CliArgs = { command: "run", logFormat: "text", allowOrigins: [], assumeYes: false };
  if (values.help) return { ...parsed, command: "help" };
  if (values.version) return { ...parsed, command: "version" };
  const [command, extra] = positionals;
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  if (command !== undefined) {
    if (!Object.hasOwn(COMMANDS, command)) throw new UsageError(`unknown command "${command}"`);
    parsed.command = COMMANDS[command];
  }
  if (parsed.command !== "serve") {
    const flag = SERVE_ONLY.find((name) => values[name] !== undefined);
    if (flag) throw new UsageError(`--${flag} is only valid with \`coda-runner serve\``);
  }
  if (parsed.command === "hold") {
    if (!values.dir) throw new UsageError("hold needs --dir (the runner starts holders itself)");
    parsed.dir = values.dir;
  } else if (values.dir !== undefined) {
    throw new UsageError("--dir is only valid with `coda-runner hold`");
  }
  parsed.assumeYes = values.yes ?? false;
  if (values["log-file"] !== undefined) parsed.logFile = values["log-file"];
  const format = values["log-format"];
  if (format !== undefined) {
    if (format !== "text" && format !== "json") {
      throw new UsageError(`--log-format must be text or json, got "${format}"`);
    }
    parsed.logFormat = format;
  }
  if (values.port !== undefined) {
    if (!/^\d+$/.test(values.port) || Number(values.port) > 65535) {
      throw new UsageError(`--port must be a number from 0 to 65535, got "${values.port}"`);
    }
    parsed.port = Number(values.port);
  }
  if (values.host !== undefined) parsed.host = values.host;
  for (const origin of values["allow-origin"] ?? []) {
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      throw new UsageError(`--allow-origin must be an origin like https://app.example, got "${origin}"`);
    }
    parsed.allowOrigins.push(url.origin);
  }
  return parsed;
}
