/**
 * Starting a terminal process: the user's login shell in a PTY, or (with
 * `TTY_SYNC=tmux`) a tmux client attached to the session's tmux session.
 *
 * @module
 */
import pty, { type IPty } from "@lydell/node-pty";
import process from "node:process";
import { tmuxSessionArgs, type TmuxSettings } from "./tmux.ts";
import { integratedShell, type IntegratedShellKind, integrationDir, shellKind } from "./shell_integration.ts";

/** The parts of a node-pty process the runner uses. */
export interface PtyProcess {
  readonly pid: number;
  /** Raw bytes of each read ({@linkcode spawnPty} switches node-pty to them; strings if that failed). */
  onData(listener: (data: Uint8Array | string) => void): void;
  onExit(listener: (exit: { exitCode: number; signal?: number }) => void): void;
  write(data: string): void;
  resize(cols: number, rows: number): void;
  pause(): void;
  resume(): void;
  kill(signal?: string): void;
  /**
   * Set when the shell runs with Coda's shell integration
   * (`shell_integration.ts`): which shell, and the nonce its prompt marks carry.
   */
  readonly shellIntegration?: { kind: IntegratedShellKind; nonce: string };
}

/** What a session's process is started with. */
export interface SpawnRequest {
  sessionId: string;
  ideaId?: string;
  cwd: string;
  cols: number;
  rows: number;
  /** The base environment (the runner's, minus its secrets). */
  env: Record<string, string>;
  /** Run inside tmux on this socket instead of a bare shell. */
  tmux?: TmuxSettings;
}

/**
 * Variables of the runner's own environment that a shell must not see: its
 * secret, and the tmux client variables of a runner started inside tmux
 * (tmux refuses to nest on them, and they describe the wrong terminal).
 */
const PRIVATE_VARIABLES = ["RUNNER_TOKEN", "TMUX", "TMUX_PANE"];

/** The user's shell and its arguments: `$SHELL -l` (else /bin/bash), `%COMSPEC%` on Windows. */
export function userShell(env: Record<string, string>, os: typeof Deno.build.os = Deno.build.os): {
  file: string;
  args: string[];
} {
  if (os === "windows") return { file: env.COMSPEC || "cmd.exe", args: [] };
  return { file: env.SHELL || "/bin/bash", args: ["-l"] };
}

/** The environment a session's shell gets. */
export function sessionEnv(
  request: Pick<SpawnRequest, "env" | "sessionId" | "ideaId">,
): Record<string, string> {
  const env: Record<string, string> = { ...request.env };
  for (const name of PRIVATE_VARIABLES) delete env[name];
  env.TERM = "xterm-256color";
  env.COLORTERM = "truecolor";
  env.CODA_SESSION_ID = request.sessionId;
  if (request.ideaId) env.CODA_IDEA_ID = request.ideaId;
  else delete env.CODA_IDEA_ID;
  return env;
}

/**
 * Starts the session's process in a PTY. bash, zsh and fish get the shell
 * integration, unless in tmux (tmux keeps the marks to itself) or when its
 * init files cannot be written (then the shell starts as before).
 */
export function spawnPty(request: SpawnRequest): PtyProcess {
  const env = sessionEnv(request);
  const shell = userShell(env);
  if (request.tmux) {
    const args = tmuxSessionArgs(request.tmux, { ...request, shell, env });
    return opened(pty.spawn(request.tmux.binary, args, ptyOptions(request, env)));
  }
  const integrated = Deno.build.os === "windows" ? undefined : withIntegration(shell.file, env);
  if (!integrated) return opened(pty.spawn(shell.file, shell.args, ptyOptions(request, env)));
  const child = opened(pty.spawn(integrated.file, integrated.args, ptyOptions(request, integrated.env)));
  return Object.assign(child, { shellIntegration: { kind: integrated.kind, nonce: integrated.nonce } });
}

/**
 * A spawned PTY as the session uses it: raw reads, and a descriptor nothing
 * touches once it is closed. node-pty closes the PTY's descriptor when its
 * read stream ends, which is before it reports the exit; a resize in between
 * would hit a closed descriptor (EBADF) or, once the number is reused,
 * another file (ENOTTY, or worse a terminal it then resizes).
 */
function opened(child: IPty): IPty {
  // The read stream is marked destroyed before its descriptor is closed; node-pty's own `close` comes later.
  const stream = (child as unknown as { _socket?: { destroyed?: boolean } })._socket;
  let open = true;
  (child as unknown as { on(event: "close", listener: () => void): void }).on("close", () => open = false);
  const resize = child.resize.bind(child);
  child.resize = (cols, rows) => {
    if (open && stream?.destroyed !== true) resize(cols, rows);
  };
  drainOnExit(child);
  return rawReads(child);
}

/** While a paused PTY's program runs, how often {@linkcode drainOnExit} looks whether it has exited, ms. */
const EXIT_WATCH_MS = 50;

/**
 * Keeps the output a program leaves in the PTY as it exits. node-pty reports
 * an exit once its read stream has ended, and 200 ms after the exit destroys
 * a stream that has not, with what is still unread: a stream paused for flow
 * control then (a client slow to ack) lost the program's last output, up to
 * what the kernel's PTY buffers hold. So while the stream is paused, the
 * program is looked for every {@linkcode EXIT_WATCH_MS}; once it is gone the
 * stream is resumed for good and read to its end (a few KiB at most).
 */
function drainOnExit(child: IPty): void {
  // node-pty's Windows terminal reports its exit its own way.
  if (Deno.build.os === "windows") return;
  const pause = child.pause.bind(child);
  const resume = child.resume.bind(child);
  let exited = false;
  let watch: ReturnType<typeof setInterval> | undefined;
  const stopWatching = () => {
    clearInterval(watch);
    watch = undefined;
  };
  child.pause = () => {
    if (exited) return;
    pause();
    watch ??= setInterval(() => {
      if (processExists(child.pid)) return;
      exited = true;
      stopWatching();
      resume();
    }, EXIT_WATCH_MS);
  };
  child.resume = () => {
    stopWatching();
    resume();
  };
}

/** Whether process `pid` exists (signal 0 tests for it without sending anything). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === "EPERM";
  }
}

/**
 * Makes node-pty hand out each read as raw bytes, not decoded text. Spawning
 * with `encoding: null` would too, but then node-pty leaves IUTF8 off the
 * terminal and a program reading lines in canonical mode (`read`, `cat`)
 * erases half a character on backspace. So the PTY is spawned for UTF-8 and
 * its read stream's decoder taken away; if that stream is not shaped as
 * expected, reads stay strings, which the session encodes.
 */
function rawReads<T extends object>(child: T): T {
  const stream =
    (child as { _socket?: { _readableState?: { decoder?: unknown; encoding?: unknown } } })._socket;
  const state = stream?._readableState;
  if (state && "decoder" in state && "encoding" in state) {
    state.decoder = null;
    state.encoding = null;
  }
  return child;
}

function withIntegration(file: string, env: Record<string, string>) {
  if (!shellKind(file)) return undefined;
  try {
    return integratedShell(file, env, integrationDir());
  } catch {
    // No place for the init files (read-only temp, no such directory): a shell without integration
    // still works, and pick-cwd then behaves as it always did.
    return undefined;
  }
}

function ptyOptions(request: SpawnRequest, env: Record<string, string>) {
  return { name: "xterm-256color", cols: request.cols, rows: request.rows, cwd: request.cwd, env };
}
