/**
 * Command-line parsing for `coda-runner`: a subcommand and its flags. Any
 * unknown command or flag is a {@linkcode UsageError} (exit 2).
 *
 * @module
 */
import type { LogFormat } from "./log.ts";

/** Bad command line; the message says what was wrong. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The subcommands. */
export type Command = "run" | "pair" | "status" | "logout" | "serve" | "help" | "version";

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
}

/** The `--help` text. */
export const USAGE = `coda-runner: reach a terminal on this machine from your Coda app.

Usage:
  coda-runner                 pair this machine if needed, then connect and wait for sessions
  coda-runner pair            pair again (a new code to approve in the app)
  coda-runner status          show the account, runner, relay, token expiry and whether the relay accepts it
  coda-runner logout          forget the stored credentials
  coda-runner serve           serve terminals directly (manual URL fallback, no relay)
      --port N                port to listen on (default 7681)
      --host H                interface to listen on (default 127.0.0.1)
      --allow-origin O        browser origin allowed to connect (repeatable;
                              default APP_URL and its localhost aliases)

Options:
  -y, --yes                   keep a new pairing without asking to confirm the account (unattended installs)
  --log-format text|json      log line format (default text)
  -h, --help                  show this help
  -V, --version               show the version

Environment:
  APP_URL                     the Coda app (default http://localhost:8080), for pairing and recordings
  CODA_RUNNER_ASSUME_YES=1    like --yes
  RELAY_URL, RUNNER_TOKEN     use this relay / token instead of the stored ones
  CODA_RUNNER_CONFIG          config file path (default: the OS's config directory)
  TTY_CWD                     directory new sessions start in (default: home)
  TTY_SYNC=tmux               run sessions in tmux so they survive a runner restart
  CODA_TMUX_SOCKET            tmux socket name (default coda): tmux -L coda attach -t coda-<session>
  DEVMODE_SESSION_GRACE       how long a session without clients lives (default 15m)
  CODA_REPLAY_BYTES           replay buffer per session (default 1MiB)
`;

const COMMANDS: Record<string, Command> = {
  run: "run",
  pair: "pair",
  status: "status",
  logout: "logout",
  serve: "serve",
  help: "help",
};

/** Parses `args` (without the program name). */
export function parseCliArgs(args: string[]): CliArgs {
  const parsed: CliArgs = { command: "run", logFormat: "text", allowOrigins: [], assumeYes: false };
  let commandSeen = false;
  const serveOnly = (flag: string) => {
    if (parsed.command !== "serve") throw new UsageError(`${flag} is only valid with \`coda-runner serve\``);
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const [flag, inline] = arg.startsWith("--") && arg.includes("=")
      ? [arg.slice(0, arg.indexOf("=")), arg.slice(arg.indexOf("=") + 1)]
      : [arg, undefined];
    const value = (): string => {
      const next = inline ?? args[++i];
      if (next === undefined || (inline === undefined && next.startsWith("-"))) {
        throw new UsageError(`${flag} needs a value`);
      }
      return next;
    };
    switch (flag) {
      case "-h":
      case "--help":
        parsed.command = "help";
        return parsed;
      case "-V":
      case "--version":
        parsed.command = "version";
        return parsed;
      case "-y":
      case "--yes":
        if (inline !== undefined) throw new UsageError(`${flag} takes no value`);
        parsed.assumeYes = true;
        break;
      case "--log-format": {
        const format = value();
        if (format !== "text" && format !== "json") {
          throw new UsageError(`--log-format must be text or json, got "${format}"`);
        }
        parsed.logFormat = format;
        break;
      }
      case "--port": {
        serveOnly(flag);
        const raw = value();
        if (!/^\d+$/.test(raw) || Number(raw) > 65535) {
          throw new UsageError(`--port must be a number from 0 to 65535, got "${raw}"`);
        }
        parsed.port = Number(raw);
        break;
      }
      case "--host":
        serveOnly(flag);
        parsed.host = value();
        break;
      case "--allow-origin": {
        serveOnly(flag);
        const origin = value();
        let url: URL;
        try {
          url = new URL(origin);
        } catch {
          throw new UsageError(`--allow-origin must be an origin like https://app.example, got "${origin}"`);
        }
        parsed.allowOrigins.push(url.origin);
        break;
      }
      default:
        if (arg.startsWith("-")) throw new UsageError(`unknown option ${flag}`);
        if (commandSeen) throw new UsageError(`unexpected argument "${arg}"`);
        if (!Object.hasOwn(COMMANDS, arg)) throw new UsageError(`unknown command "${arg}"`);
        parsed.command = COMMANDS[arg];
        commandSeen = true;
    }
  }
  return parsed;
}
