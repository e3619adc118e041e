/**
 * All sessions of this runner, driven by the messages of the runner link
 * (`attach`, `detach`, `stdin`, `resize`, `ack`, `record`, `pick-cwd`,
 * `kill`). The same manager serves the relay link and `coda-runner serve`.
 *
 * @module
 */
import { isAbsolute, join, resolve } from "node:path";
import { EndedReason, MetaLine, type RelayToRunner } from "@coda/relay/protocol";
import { DEFAULT_RELAY_LIMITS } from "@coda/relay/limits";
import { type FlowLimits, Session, type SessionSink } from "./session.ts";
import { type PtyProcess, spawnPty } from "./pty.ts";
import { hasTmuxSession, killTmuxSession, listTmuxSessions, type TmuxSettings } from "./tmux.ts";
import { Recorder } from "./recorder.ts";
import { KeyedSerial } from "./keyed_serial.ts";
import { fishQuote } from "./shell_integration.ts";
import { FileTransfers } from "./file_transfer.ts";
import { downloadCommandDir, downloadCommandEnv, DownloadMarks, newDownloadKey } from "./download_command.ts";
import type { RunnerFileStore } from "./credentials.ts";
import type { Logger } from "./log.ts";

/** Size of a session whose first client did not say. */
export const DEFAULT_SIZE = { cols: 80, rows: 24 } as const;

/** Options of {@linkcode SessionManager}. */
export interface SessionManagerOptions {
  sink: SessionSink;
  log: Logger;
  /** Environment the shells start from (the runner's own, by default). */
  env: Record<string, string>;
  /** The user's home directory (default start directory, `~` in `pick-cwd`). */
  home: string;
  /** `TTY_CWD`: where sessions start unless their idea remembers a directory. */
  ttyCwd?: string;
  graceMs: number;
  replayBytes: number;
  /** Run sessions in tmux. */
  tmux?: TmuxSettings;
  /** The config file, for directories remembered per idea. */
  store?: RunnerFileStore;
  /** Where recordings go; without it `record {on}` is refused. */
  recording?: { appUrl: string; runnerToken: string };
  flow?: Partial<FlowLimits>;
  /** `CODA_TRANSFER_MAX_BYTES`: largest file uploaded or downloaded (default 100 MiB). */
  transferMaxBytes?: number;
  /**
   * Called when a session whose shell exited while the link was down is let go of with no client
   * told (none came back in time); a session holder ends then.
   */
  onUntoldEndDropped?: (sessionId: string) => void;
}

/** Quotes `text` for a POSIX shell. */
export function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** C0 controls, DEL and C1 controls: never allowed in a path typed into a shell. */
// deno-lint-ignore no-control-regex -- matching control characters is the point
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

/** What is typed into the shell to change its directory (cmd.exe on Windows, a POSIX shell elsewhere). */
export function cdCommand(path: string, os: typeof Deno.build.os = Deno.build.os): string {
  return os === "windows" ? `cd /d "${path}"\r` : ` cd -- ${shellQuote(path)}\r`;
}

/**
 * How long `pick-cwd` waits for a shell with integration to show its first
 * prompt, and then for the prompt after the `cd` it typed.
 */
const PROMPT_WAIT_MS = 5000;

/** An `attach` message. */
export type AttachMessage = Extract<RelayToRunner, { type: "attach" }>;

/**
 * Whether an attach for a session nobody here holds resumes a shell that ran in an earlier runner
 * process: the client has output of it (`offset` > 0) or the app saw it run (`resume`), and no tmux
 * session of that name survived to re-adopt. Otherwise it is a first attach.
 */
export async function resumesLostSession(
  message: AttachMessage,
  tmux: TmuxSettings | undefined,
): Promise<boolean> {
  if ((message.offset ?? 0) === 0 && !message.resume) return false;
  return !(tmux && await hasTmuxSession(tmux, message.sessionId).catch(() => false));
}

/** Tells the client of `message` that its session ended with an earlier runner process. */
export function reportLostSession(sink: SessionSink, log: Logger, message: AttachMessage): void {
  log.info("a client resumed a session this runner no longer has; it ended", {
    sessionId: message.sessionId,
  });
  const { sessionId, clientId } = message;
  sink.send({ type: "meta", sessionId, clientId, data: MetaLine.ended(EndedReason.RUNNER_RESTARTED) });
  sink.send({ type: "end", sessionId, exitCode: null });
}

/** The session a message is about, if any. */
export function messageSession(message: RelayToRunner): string | undefined {
  return "sessionId" in message ? message.sessionId : undefined;
}

/** Runs every session of this runner. */
export class SessionManager {
  readonly #options: SessionManagerOptions;
  readonly #sessions = new Map<string, Session>();
  readonly #serial = new KeyedSerial();
  readonly #transfers = new Map<string, FileTransfers>();
  /**
   * Sessions whose shell exited while the link was down, kept (ring and exit status) for the first
   * client that resumes one: while the link stays down, for as long as a session without clients
   * lives; once it is back, for as long as the relay keeps clients waiting for their runner.
   */
  readonly #untold = new Map<string, { session: Session; timer: ReturnType<typeof setTimeout> }>();
  #linkUp = true;
  #closing = false;

  constructor(options: SessionManagerOptions) {
    this.#options = options;
  }

  /** The session `sessionId`, if running. */
  get(sessionId: string): Session | undefined {
    return this.#sessions.get(sessionId);
  }

  /** The file transfers of session `sessionId`, if running. */
  transfers(sessionId: string): FileTransfers | undefined {
    return this.#transfers.get(sessionId);
  }

  /** Every running session. */
  list(): Session[] {
    return [...this.#sessions.values()];
  }

  /**
   * Handles one message from the link. Never throws. Messages of one session
   * are handled strictly in order (a `stdin` right behind the `attach` that
   * starts the session waits for the shell to exist).
   */
  handle(message: RelayToRunner): Promise<void> {
    const sessionId = messageSession(message);
    if (sessionId === undefined) return this.#handleSafely(message);
    return this.#serial.run(sessionId, () => this.#handleSafely(message));
  }

  async #handleSafely(message: RelayToRunner): Promise<void> {
    try {
      await this.#handle(message);
    } catch (error) {
      this.#options.log.error("could not handle a message", {
        type: message.type,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  /** The link dropped: clients are gone until it returns; sessions keep running. */
  linkDown(): void {
    this.#linkUp = false;
    for (const session of this.#sessions.values()) session.linkDown();
  }

  /** The link is back. */
  linkUp(): void {
    this.#linkUp = true;
    for (const session of this.#sessions.values()) session.linkUp();
    for (const { session } of this.#untold.values()) {
      this.#keepUntold(session, DEFAULT_RELAY_LIMITS.runnerWaitMs);
    }
  }

  /** Keeps `session`, ended with nobody told, for `ms` more. */
  #keepUntold(session: Session, ms: number): void {
    const { sessionId } = session;
    clearTimeout(this.#untold.get(sessionId)?.timer);
    const timer = setTimeout(() => {
      this.#untold.delete(sessionId);
      this.#options.log.info("no client came back to an ended session; letting it go", { sessionId });
      this.#options.onUntoldEndDropped?.(sessionId);
    }, ms);
    this.#untold.set(sessionId, { session, timer });
  }

  /**
   * Stops every session this process holds. Plain sessions are killed; tmux
   * sessions are only let go (they keep running for the next runner), unless
   * `endTmux`: then every Coda session on the runner's tmux server ends, also
   * those an earlier runner left and this one never re-adopted.
   */
  async shutdown(options: { endTmux?: boolean } = {}): Promise<void> {
    this.#closing = true;
    await this.#serial.settled();
    for (const { timer } of this.#untold.values()) clearTimeout(timer);
    this.#untold.clear();
    const tmux = this.#options.tmux;
    const sessions = [...this.#sessions.values()];
    await Promise.all(sessions.map(async (session) => {
      if (tmux && !options.endTmux) session.release(3000);
      else await session.kill(3000);
      await session.exited;
    }));
    if (tmux && options.endTmux) {
      for (const sessionId of await listTmuxSessions(tmux)) await killTmuxSession(tmux, sessionId);
      this.#options.log.info("ended the tmux sessions", { socket: tmux.socket });
    }
  }

  async #handle(message: RelayToRunner): Promise<void> {
    if (message.type === "welcome" || message.type === "pong") return;
    if (message.type === "error") {
      this.#options.log.warn("the relay reported a problem", {
        code: message.code,
        message: message.message,
      });
      return;
    }
    if (message.type === "attach") {
      await this.#attach(message);
      return;
    }
    const session = this.#sessions.get(message.sessionId);
    if (!session) {
      this.#options.log.debug("message for an unknown session", {
        type: message.type,
        sessionId: message.sessionId,
      });
      return;
    }
    switch (message.type) {
      case "detach":
        session.detach(message.clientId);
        return;
      case "stdin":
        session.write(message.data);
        return;
      case "resize":
        session.resize(message.cols, message.rows);
        return;
      case "ack":
        session.ack(message.offset);
        return;
      case "kill":
        await session.kill();
        return;
      case "record":
        await this.#record(session, message.on);
        return;
      case "pick-cwd":
        await this.#pickCwd(session, message.path);
        return;
      case "upload-start":
      case "upload-data":
      case "upload-cancel":
      case "download-accept":
      case "download-ack":
      case "download-cancel":
        await this.#transfers.get(message.sessionId)?.handle(message);
        return;
    }
  }

  async #attach(message: AttachMessage): Promise<void> {
    const untold = this.#untold.get(message.sessionId);
    if (untold) {
      clearTimeout(untold.timer);
      this.#untold.delete(message.sessionId);
    }
    // An ended session nobody was told of tells this client, and ends.
    const existing = untold?.session ?? this.#sessions.get(message.sessionId);
    if (existing) {
      existing.attach(message.clientId, message.offset, false, message.binary);
      return;
    }
    if (this.#closing) return;
    if (await resumesLostSession(message, this.#options.tmux)) {
      reportLostSession(this.#options.sink, this.#options.log, message);
      return;
    }
    const session = await this.#start(message);
    session?.attach(message.clientId, message.offset, true, message.binary);
  }

  async #start(message: AttachMessage): Promise<Session | undefined> {
    const { sessionId, ideaId } = message;
    const cols = message.cols ?? DEFAULT_SIZE.cols;
    const rows = message.rows ?? DEFAULT_SIZE.rows;
    const cwd = await this.#startDirectory(ideaId);
    const tmux = this.#options.tmux;
    const transfers = new FileTransfers({
      sessionId,
      sink: this.#options.sink,
      log: this.#options.log,
      cwd: () => session.cwd,
      maxBytes: this.#options.transferMaxBytes,
    });
    // `coda-download` offers a file by a mark carrying this session's key (never tmux's: it swallows the mark).
    const downloadKey = newDownloadKey();
    const binDir = tmux ? undefined : downloadCommandDir();
    if (!tmux && !binDir) {
      this.#options.log.warn("coda-download is unavailable: its script could not be written");
    }
    const env = binDir ? downloadCommandEnv(this.#options.env, downloadKey, binDir) : this.#options.env;
    let pty: PtyProcess;
    try {
      if (tmux && await hasTmuxSession(tmux, sessionId)) {
        this.#options.log.info("re-adopting tmux session", { sessionId });
      }
      pty = spawnPty({ sessionId, ideaId, cwd, cols, rows, env, tmux });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.#options.log.error("could not start a shell", { sessionId, error: reason });
      const sink = this.#options.sink;
      sink.send({
        type: "meta",
        sessionId,
        clientId: message.clientId,
        data: MetaLine.error(`could not start a shell: ${reason}`),
      });
      sink.send({ type: "end", sessionId, exitCode: null });
      return undefined;
    }
    const session: Session = new Session({
      sessionId,
      ideaId,
      pty,
      cwd,
      cols,
      rows,
      sink: this.#options.sink,
      log: this.#options.log,
      replayBytes: this.#options.replayBytes,
      graceMs: this.#options.graceMs,
      flow: this.#options.flow,
      terminate: tmux ? () => killTmuxSession(tmux, sessionId) : undefined,
      outputFilter: binDir ? new DownloadMarks(downloadKey, (path) => void transfers.offer(path)) : undefined,
      onDetach: (clientId) => transfers.clientGone(clientId),
      onEnd: (ended) => {
        if (this.#sessions.get(ended.sessionId) === ended) this.#sessions.delete(ended.sessionId);
        // While the link is down, as long as a session without clients would have lived; once it is back,
        // as long as the relay keeps those clients waiting.
        if (ended.endUntold) {
          this.#keepUntold(ended, this.#linkUp ? DEFAULT_RELAY_LIMITS.runnerWaitMs : this.#options.graceMs);
        }
        if (this.#transfers.get(ended.sessionId) === transfers) this.#transfers.delete(ended.sessionId);
        void transfers.close();
      },
    });
    this.#transfers.set(sessionId, transfers);
    if (!this.#linkUp) session.linkDown();
    this.#sessions.set(sessionId, session);
    this.#options.log.info("session started", { sessionId, cwd, pid: pty.pid });
    return session;
  }

  async #startDirectory(ideaId: string | undefined): Promise<string> {
    const candidates: string[] = [];
    if (ideaId && this.#options.store) {
      const remembered = await this.#options.store.read().then((file) => file.cwds[ideaId], () => undefined);
      if (remembered) candidates.push(remembered);
    }
    if (this.#options.ttyCwd) candidates.push(this.#options.ttyCwd);
    for (const candidate of candidates) {
      if (await isDirectory(candidate)) return candidate;
      this.#options.log.warn("start directory is missing; skipping it", { path: candidate });
    }
    return this.#options.home;
  }

  async #record(session: Session, on: boolean): Promise<void> {
    if (!on) {
      await session.setRecorder(undefined);
      return;
    }
    if (session.stats().recording) {
      session.broadcastMeta(MetaLine.record(true));
      return;
    }
    const target = this.#options.recording;
    if (!target) {
      session.broadcastMeta(
        MetaLine.error("recording needs the app's address: pair this runner or set APP_URL"),
      );
      session.broadcastMeta(MetaLine.record(false));
      return;
    }
    await session.setRecorder(
      new Recorder({
        appUrl: target.appUrl,
        runnerToken: target.runnerToken,
        sessionId: session.sessionId,
        size: () => ({ cols: session.cols, rows: session.rows }),
        log: this.#options.log,
      }),
    );
  }

  async #pickCwd(session: Session, requested: string): Promise<void> {
    // The path is typed into the shell: a control character in it (Ctrl-U erases the line, CR runs it)
    // would turn a directory name into a command, quoting or not.
    if (CONTROL_CHARACTER.test(requested)) {
      session.broadcastMeta(MetaLine.error("pick-cwd: the path holds a control character; refused"));
      return;
    }
    const expanded = requested === "~" || requested.startsWith("~/")
      ? join(this.#options.home, requested.slice(1))
      : requested;
    if (!isAbsolute(expanded)) {
      session.broadcastMeta(MetaLine.error(`pick-cwd: the path must be absolute, got "${requested}"`));
      return;
    }
    const path = resolve(expanded);
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(path);
    } catch {
      session.broadcastMeta(MetaLine.error(`pick-cwd: no such directory: ${path}`));
      return;
    }
    if (!info.isDirectory) {
      session.broadcastMeta(MetaLine.error(`pick-cwd: not a directory: ${path}`));
      return;
    }
    if (session.ideaId && this.#options.store) {
      try {
        await this.#options.store.rememberCwd(session.ideaId, path);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        session.broadcastMeta(MetaLine.error(`pick-cwd: could not remember the directory: ${reason}`));
        return;
      }
    }
    const shell = session.shell;
    if (!shell) {
      // No shell integration (sh, tmux, Windows): nothing says what the shell is doing, so type as before.
      session.cwd = path;
      session.write(cdCommand(path));
      session.broadcastMeta(MetaLine.cwd(path));
      return;
    }
    if (shell.state === "starting") await shell.nextPrompt(PROMPT_WAIT_MS);
    const refusal = shell.state === "starting"
      ? "the shell has not shown its prompt yet"
      : shell.state === "running"
      ? "a command is running"
      : shell.typed
      ? "there is typed input at the prompt"
      : undefined;
    if (refusal) {
      session.broadcastMeta(MetaLine.error(`pick-cwd: ${refusal}`));
      return;
    }
    // Keys typed while the last command ran may wait at the prompt: Ctrl-U (every shell's
    // kill-to-line-start) clears them rather than letting them prefix the cd.
    const clear = shell.typedAhead ? "\u0015" : "";
    session.write(clear + (shell.kind === "fish" ? ` cd -- ${fishQuote(path)}\r` : cdCommand(path)));
    // The shell reports where it is at its next prompt, which broadcasts coda:cwd when it moved.
    if (!await shell.nextPrompt(PROMPT_WAIT_MS) || session.cwd !== path) {
      session.broadcastMeta(MetaLine.error(`pick-cwd: the shell did not change to ${path}`));
    }
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}
