/**
 * `TTY_SYNC=tmux`: each session lives in the tmux session `coda-<sessionId>`
 * on a dedicated socket (`tmux -L coda`), so it survives a runner restart and
 * can be attached locally with `tmux -L coda attach -t coda-<sessionId>`.
 *
 * @module
 */

/** Where tmux is and which server (socket name) the runner uses. */
export interface TmuxSettings {
  /** The tmux executable (default `tmux`, found on PATH). */
  binary: string;
  /** The socket name passed as `tmux -L`. */
  socket: string;
}

/** tmux is not installed (or not runnable). */
export class TmuxMissingError extends Error {
  constructor(binary: string) {
    super(
      `TTY_SYNC=tmux needs tmux, but "${binary}" could not be run. Install tmux ` +
        "(apt install tmux / brew install tmux) or unset TTY_SYNC.",
    );
    this.name = "TmuxMissingError";
  }
}

/** What starts the tmux session name of every Coda session. */
const SESSION_PREFIX = "coda-";

/** The tmux session name of a Coda session. */
export function tmuxSessionName(sessionId: string): string {
  return `${SESSION_PREFIX}${sessionId}`;
}

/** Arguments that create the session or attach to it when it already exists. */
export function tmuxSessionArgs(
  settings: TmuxSettings,
  request: {
    sessionId: string;
    cwd: string;
    shell: { file: string; args: string[] };
    env: Record<string, string>;
  },
): string[] {
  const pass = ["TERM", "COLORTERM", "CODA_SESSION_ID", "CODA_IDEA_ID"]
    .filter((name) => request.env[name] !== undefined)
    .flatMap((name) => ["-e", `${name}=${request.env[name]}`]);
  return [
    "-L",
    settings.socket,
    "new-session",
    "-A",
    "-s",
    tmuxSessionName(request.sessionId),
    "-c",
    request.cwd,
    ...pass,
    request.shell.file,
    ...request.shell.args,
  ];
}

async function run(settings: TmuxSettings, args: string[]): Promise<Deno.CommandOutput> {
  try {
    return await new Deno.Command(settings.binary, {
      args: ["-L", settings.socket, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.PermissionDenied) {
      throw new TmuxMissingError(settings.binary);
    }
    throw error;
  }
}

/** Checks that tmux runs; resolves its version line, throws {@linkcode TmuxMissingError}. */
export async function checkTmux(settings: TmuxSettings): Promise<string> {
  const output = await run(settings, ["-V"]);
  if (!output.success) throw new TmuxMissingError(settings.binary);
  return new TextDecoder().decode(output.stdout).trim();
}

/** Whether the tmux session of `sessionId` exists (a runner restart left it running). */
export async function hasTmuxSession(settings: TmuxSettings, sessionId: string): Promise<boolean> {
  const output = await run(settings, ["has-session", "-t", `=${tmuxSessionName(sessionId)}`]);
  return output.success;
}

/** Ends the tmux session of `sessionId` (its shell gets SIGHUP). */
export async function killTmuxSession(settings: TmuxSettings, sessionId: string): Promise<void> {
  await run(settings, ["kill-session", "-t", `=${tmuxSessionName(sessionId)}`]);
}

/** The ids of the Coda sessions on the runner's tmux server (none when it is not running). */
export async function listTmuxSessions(settings: TmuxSettings): Promise<string[]> {
  const output = await run(settings, ["list-sessions", "-F", "#{session_name}"]);
  if (!output.success) return [];
  return new TextDecoder().decode(output.stdout).split("\n")
    .filter((name) => name.startsWith(SESSION_PREFIX))
    .map((name) => name.slice(SESSION_PREFIX.length));
}
