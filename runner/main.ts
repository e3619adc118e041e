/**
 * `coda-runner`: the program users download and leave running. Pairs the
 * machine with their account (a code to approve in the browser), keeps a link
 * to the relay, and runs the terminal sessions opened from the app.
 *
 * Exit codes: 0 done, 1 error, 2 bad command line, 3 the relay refused the
 * credentials (run `coda-runner pair`), 130 interrupted (Ctrl-C).
 *
 * @module
 */
import { basename, delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createHash } from "node:crypto";
import { peekExpiry } from "@coda/relay/tokens";
import { type CliArgs, parseCliArgs, USAGE, UsageError } from "./cli_args.ts";
import { type Env, loadRunnerEnv, RunnerConfigError, type RunnerEnvConfig } from "./config.ts";
import { CorruptConfigError, type Credentials, defaultConfigPath, RunnerFileStore } from "./credentials.ts";
import { createLogger, type Logger } from "./log.ts";
import { pair, PairingError, unpair } from "./pairing.ts";
import { probeRelay, RelayLink, STOP_MESSAGES } from "./link.ts";
import { SessionManager, type SessionManagerOptions } from "./session_manager.ts";
import type { SessionSink } from "./session.ts";
import { endHolders, HolderPool, listHolders, type SelfCommand } from "./holder_pool.ts";
import type { HolderStatus } from "./holder_protocol.ts";
import { runHolder } from "./holder.ts";
import { checkTmux, TmuxMissingError, type TmuxSettings } from "./tmux.ts";
import { defaultServeOrigins, startServe } from "./serve.ts";
import { formatChecks, selfcheck } from "./selfcheck.ts";
import {
  installService,
  ServiceError,
  serviceFilePath,
  type ServiceSpec,
  serviceState,
  uninstallService,
} from "./service.ts";
import { RUNNER_PERMISSIONS } from "./permissions.ts";
import { VERSION } from "./version.ts";

/** Exit codes. */
export const ExitCode = { OK: 0, ERROR: 1, USAGE: 2, REFUSED: 3, INTERRUPTED: 130 } as const;

/** What the CLI knows about the terminal it runs in. */
export interface TerminalFacts {
  /** Standard input is a terminal: someone can press Enter. */
  interactive: boolean;
  /** The terminal's height in lines, when standard output is one. */
  rows?: number;
}

/** Where the CLI writes: user-facing text to `out`, logs and errors to `err`; `ask` reads an answer. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** Shows `question` and resolves the line typed in answer, or `null` when there is no input. */
  ask(question: string): Promise<string | null>;
  /** Resolves the next line typed, or `null` when there is no input. */
  readLine(): Promise<string | null>;
  terminal(): TerminalFacts;
}

/** Set to `1`, keeps a new pairing without asking (like `--yes`), for unattended installs. */
export const ASSUME_YES_ENV = "CODA_RUNNER_ASSUME_YES";

const encoder = new TextEncoder();

/** Reads one line from standard input, byte by byte so nothing after it is consumed. */
async function readStdinLine(): Promise<string | null> {
  const decoder = new TextDecoder();
  const byte = new Uint8Array(1);
  let line = "";
  for (;;) {
    const read = await Deno.stdin.read(byte);
    if (read === null) return line === "" ? null : line;
    const text = decoder.decode(byte.subarray(0, read), { stream: true });
    if (text === "\n") return line;
    line += text;
  }
}

let pendingLine: Promise<string | null> | undefined;

/**
 * The next line of standard input, one read at a time: a line the Enter-to-open offer was still
 * waiting for when pairing finished goes to the question that follows instead.
 */
function nextStdinLine(): Promise<string | null> {
  pendingLine ??= readStdinLine().finally(() => pendingLine = undefined);
  return pendingLine;
}

function terminalRows(): number | undefined {
  if (!Deno.stdout.isTerminal()) return undefined;
  try {
    return Deno.consoleSize().rows;
  } catch {
    return undefined;
  }
}

/**
 * Writes a line to standard output or error. Nothing reads a holder's once it has said it is ready
 * (the runner that started it may be gone): a line with nowhere to go is dropped.
 */
function writeLine(stream: typeof Deno.stdout | typeof Deno.stderr, text: string): void {
  try {
    stream.writeSync(encoder.encode(text + "\n"));
  } catch {
    // The reading end is gone.
  }
}

const processIo: CliIo = {
  out: (text) => writeLine(Deno.stdout, text),
  err: (text) => writeLine(Deno.stderr, text),
  ask: (question) => {
    Deno.stdout.writeSync(encoder.encode(`${question} `));
    return nextStdinLine();
  },
  readLine: nextStdinLine,
  terminal: () => ({ interactive: Deno.stdin.isTerminal(), rows: terminalRows() }),
};

/** Whether an executable `name` is on `PATH`. */
async function onPath(name: string, env: Env): Promise<boolean> {
  for (const dir of (env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    const info = await Deno.stat(join(dir, name)).catch(() => undefined);
    if (info?.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return true;
  }
  return false;
}

/**
 * The command that opens a URL in a browser here (the URL is its last argument), or `undefined`
 * where none can: `$BROWSER` when set, as `gh` and `git` honor it; else `open` on macOS (not over
 * SSH, where it would open on the remote screen), `start` on Windows, and `xdg-open` elsewhere
 * when there is a display to open on.
 */
export async function browserOpener(
  env: Env,
  os: typeof Deno.build.os = Deno.build.os,
): Promise<string[] | undefined> {
  if (env.BROWSER?.trim()) return [env.BROWSER.trim()];
  if (os === "windows") return ["cmd", "/c", "start", ""];
  if (os === "darwin") return env.SSH_CONNECTION || env.SSH_TTY ? undefined : ["open"];
  if (!env.DISPLAY && !env.WAYLAND_DISPLAY) return undefined;
  return await onPath("xdg-open", env) ? ["xdg-open"] : undefined;
}

/** Opens `url` with `opener`; resolves whether that worked (a browser it starts may run on). */
function openInBrowser(opener: string[], url: string): Promise<boolean> {
  try {
    const child = new Deno.Command(opener[0], {
      args: [...opener.slice(1), url],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    return child.status.then((status) => status.success, () => false);
  } catch {
    return Promise.resolve(false);
  }
}

/** Until `pairing` settles, each Enter opens the current link in the browser; pairing goes on regardless. */
async function openOnEnter(
  ctx: CommandContext,
  opener: string[],
  currentLink: () => string | undefined,
  pairing: Promise<unknown>,
): Promise<void> {
  const settled = pairing.then(() => "settled" as const, () => "settled" as const);
  for (;;) {
    const line = await Promise.race([ctx.io.readLine(), settled]);
    if (line === "settled" || line === null) return;
    const link = currentLink();
    if (!link) continue;
    ctx.io.out("Opening the link in your browser…");
    void openInBrowser(opener, link).then((opened) => {
      if (!opened) ctx.io.out(`Could not open a browser; open ${link} yourself.`);
    });
  }
}

/** What a command needs. */
interface CommandContext {
  args: CliArgs;
  env: Env;
  config: RunnerEnvConfig;
  store: RunnerFileStore;
  io: CliIo;
  log: Logger;
  signal: AbortSignal;
}

/** The credentials to connect with: `RUNNER_TOKEN`/`RELAY_URL` over the stored ones. */
interface ActiveCredentials {
  relayUrl: string;
  runnerToken: string;
  /** Where recordings go; unknown for a `RUNNER_TOKEN` with neither `APP_URL` nor stored credentials. */
  appUrl?: string;
  runnerId?: string;
  email?: string;
  fromEnv: boolean;
}

class CliFailure extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = ExitCode.ERROR) {
    super(message);
    this.exitCode = exitCode;
  }
}

function homeDirectory(env: Env): string {
  return env.HOME ?? env.USERPROFILE ?? Deno.cwd();
}

function machineInfo(env: Env) {
  let hostname = "unknown";
  try {
    hostname = Deno.hostname();
  } catch {
    hostname = env.HOSTNAME ?? env.COMPUTERNAME ?? "unknown";
  }
  return { name: hostname, hostname, os: Deno.build.os };
}

async function activeCredentials(ctx: CommandContext): Promise<ActiveCredentials | undefined> {
  const { config } = ctx;
  if (config.runnerToken) {
    const stored = await ctx.store.read().then((file) => file.credentials, () => undefined);
    const relayUrl = config.relayUrl ?? stored?.relayUrl;
    if (!relayUrl) throw new CliFailure("RUNNER_TOKEN is set but no relay is known: set RELAY_URL too.");
    // The runner token only ever goes to an app named on purpose: `APP_URL`, or the one it was paired with.
    const appUrl = ctx.env.APP_URL?.trim() ? config.appUrl : stored?.appUrl;
    return { relayUrl, runnerToken: config.runnerToken, appUrl, fromEnv: true };
  }
  const file = await ctx.store.read();
  const stored = file.credentials;
  if (!stored) return undefined;
  return { ...stored, relayUrl: config.relayUrl ?? stored.relayUrl, fromEnv: false };
}

/** Resolves `answer`, or rejects with the abort reason when `signal` aborts first (Ctrl-C at a prompt). */
function unlessAborted<T>(answer: Promise<T>, signal: AbortSignal): Promise<T> {
  return Promise.race([answer, aborted(signal).then(() => Promise.reject(signal.reason))]);
}

/** `--yes` or {@linkcode ASSUME_YES_ENV}: nobody is expected to answer or press anything. */
function unattended(ctx: CommandContext): boolean {
  return ctx.args.assumeYes || ctx.env[ASSUME_YES_ENV] === "1";
}

/**
 * Whether the user keeps a pairing with `email`: a leaked or phished code may have been approved
 * by someone else's account, and this machine's terminals would then be theirs.
 */
async function keepPairing(ctx: CommandContext, email: string): Promise<boolean> {
  if (unattended(ctx)) {
    ctx.io.out(`Paired with ${email} (kept without asking: --yes or ${ASSUME_YES_ENV}=1).`);
    return true;
  }
  for (;;) {
    const answer = await unlessAborted(ctx.io.ask(`Paired with ${email} — keep? [Y/n]`), ctx.signal);
    if (answer === null) {
      ctx.io.err(
        `No answer (standard input is closed), so the pairing is not kept. ` +
          `For unattended installs pass --yes or set ${ASSUME_YES_ENV}=1.`,
      );
      return false;
    }
    const word = answer.trim().toLowerCase();
    if (word === "" || word === "y" || word === "yes") return true;
    if (word === "n" || word === "no") return false;
    ctx.io.out("Please answer y or n.");
  }
}

async function runPairing(ctx: CommandContext): Promise<Credentials> {
  const previous = await ctx.store.read().then((file) => file.credentials, () => undefined);
  const terminal = ctx.io.terminal();
  // Unattended runs read nothing: a runner started with `--yes &` would be stopped (SIGTTIN) by a read.
  const opener = terminal.interactive && !unattended(ctx) ? await browserOpener(ctx.env) : undefined;
  let link: string | undefined;
  const pairing = pair({
    appUrl: ctx.config.appUrl,
    machine: machineInfo(ctx.env),
    print: ctx.io.out,
    log: ctx.log,
    signal: ctx.signal,
    fit: { rows: terminal.rows, offerOpen: opener !== undefined },
    onLink: (current) => link = current,
  });
  if (opener) void openOnEnter(ctx, opener, () => link, pairing);
  const credentials = await pairing;
  if (!await keepPairing(ctx, credentials.email)) {
    // Nothing is saved either way: the token lives only in this process, which now ends.
    const revoked = await unpair(credentials.appUrl, credentials.runnerToken, { signal: ctx.signal })
      .then(() => true, (error) => {
        if (ctx.signal.aborted) throw error;
        ctx.log.warn("could not revoke the pairing", { error: describeFailure(error) });
        return false;
      });
    throw new CliFailure(
      `Not kept: ${
        revoked
          ? `un-paired, ${credentials.email} can no longer reach this machine`
          : "the token was not saved"
      }. Run \`coda-runner pair\` to pair with your own account.`,
    );
  }
  await ctx.store.saveCredentials(credentials);
  ctx.io.out(`Credentials saved to ${ctx.store.path}.`);
  if (previous && previous.appUrl === credentials.appUrl && previous.runnerId !== credentials.runnerId) {
    await replacePreviousRunner(ctx, previous);
  }
  return credentials;
}

/**
 * Removes the runner this machine was paired as before a re-pairing, with its own (now forgotten)
 * token, so the app lists the machine once. Its terminals are this machine's either way.
 */
async function replacePreviousRunner(ctx: CommandContext, previous: Credentials): Promise<void> {
  try {
    await unpair(previous.appUrl, previous.runnerToken, { signal: revokeSignal(ctx) });
    ctx.io.out(`Removed this machine's previous runner (${previous.runnerId}) from the app.`);
  } catch (error) {
    if (ctx.signal.aborted) throw error;
    // 401: the old token was already revoked or expired; the app may still list the runner.
    ctx.io.out(
      `The app may still list this machine's previous runner (${previous.runnerId}); remove it there ` +
        `(${describeFailure(error)}).`,
    );
  }
}

/** How long revoking a pairing in the app may take before it counts as unreachable. */
const REVOKE_TIMEOUT_MS = 10_000;

/** Ctrl-C, or an app that does not answer within {@linkcode REVOKE_TIMEOUT_MS}. */
function revokeSignal(ctx: CommandContext): AbortSignal {
  return AbortSignal.any([ctx.signal, AbortSignal.timeout(REVOKE_TIMEOUT_MS)]);
}

function describeFailure(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function checkExpiry(token: string): void {
  const expiry = peekExpiry(token);
  if (expiry && expiry.getTime() <= Date.now()) {
    throw new CliFailure(
      `This runner's token expired on ${expiry.toISOString()}. Run \`coda-runner pair\` to pair again.`,
      ExitCode.REFUSED,
    );
  }
}

function sessionOptions(
  ctx: CommandContext,
  tmux: TmuxSettings | undefined,
  credentials?: ActiveCredentials,
) {
  return {
    env: Object.fromEntries(Object.entries(ctx.env).filter((e): e is [string, string] => e[1] !== undefined)),
    home: homeDirectory(ctx.env),
    ttyCwd: ctx.config.ttyCwd,
    graceMs: ctx.config.sessionGraceMs,
    replayBytes: ctx.config.replayBytes,
    transferMaxBytes: ctx.config.transferMaxBytes,
    tmux,
    store: ctx.store,
    recording: credentials?.appUrl
      ? { appUrl: credentials.appUrl, runnerToken: credentials.runnerToken }
      : undefined,
  } satisfies Omit<SessionManagerOptions, "sink" | "log">;
}

async function tmuxSettings(ctx: CommandContext): Promise<TmuxSettings | undefined> {
  if (!ctx.config.tmux) return undefined;
  const settings = { binary: ctx.env.CODA_TMUX_BINARY || "tmux", socket: ctx.config.tmuxSocket };
  const version = await checkTmux(settings);
  ctx.log.info("sessions run in tmux", {
    tmux: version,
    attach: `tmux -L ${settings.socket} attach -t coda-<session>`,
  });
  return settings;
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

async function commandRun(ctx: CommandContext): Promise<number> {
  let credentials = await activeCredentials(ctx);
  if (!credentials) {
    ctx.io.out("This machine is not paired with a Coda account yet.");
    const paired = await runPairing(ctx);
    credentials = { ...paired, relayUrl: ctx.config.relayUrl ?? paired.relayUrl, fromEnv: false };
  }
  checkExpiry(credentials.runnerToken);
  const tmux = await tmuxSettings(ctx);
  const sink: SessionSink = {
    send: (message) => link.send(message),
    sendOutput: (chunk, frame) => link.sendOutput(chunk, frame),
    bufferedAmount: () => link.bufferedAmount(),
  };
  const options = sessionOptions(ctx, tmux, credentials);
  const local = new SessionManager({ ...options, sink, log: ctx.log });
  const pool = ctx.config.sync === "off" ? undefined : new HolderPool({
    dir: runtimeDir(ctx),
    command: selfCommand(ctx.config.holderCpuProfDir),
    sink,
    log: ctx.log,
    local,
    spec: {
      runnerId: holderOwner(credentials),
      env: options.env,
      home: options.home,
      ttyCwd: options.ttyCwd,
      graceMs: options.graceMs,
      orphanMs: options.graceMs,
      replayBytes: options.replayBytes,
      transferMaxBytes: options.transferMaxBytes,
      tmux: options.tmux,
      configPath: ctx.store.path,
      recording: options.recording,
    },
  });
  const sessions = pool ?? local;
  const link: RelayLink = new RelayLink({
    relayUrl: credentials.relayUrl,
    runnerToken: credentials.runnerToken,
    log: ctx.log,
    handler: {
      onMessage: (message) => sessions.handle(message),
      onUp: () => sessions.linkUp(),
      onDown: () => sessions.linkDown(),
    },
  });
  sessions.linkDown();
  await pool?.start();
  ctx.log.info("starting", {
    version: VERSION,
    account: credentials.email,
    runnerId: credentials.runnerId,
    relay: credentials.relayUrl,
  });
  ctx.signal.addEventListener("abort", () => link.stop(), { once: true });
  const reason = await link.run();
  const rePaired = reason === "revoked" && await pairedAgain(ctx, credentials);
  // A runner removed from its account ends its sessions, held or in tmux: nobody can reach them through
  // Coda any more. Any other stop leaves them for the next runner (an expired token is fixed by pairing
  // again). A revocation by `coda-runner pair` on this machine leaves them too: the new pairing's runner
  // ends them when it starts, as holders of a runner id that is not its own.
  const endAll = reason === "revoked" && !rePaired;
  if (pool) await pool.shutdown({ endAll });
  else await local.shutdown({ endTmux: endAll });
  if (ctx.signal.aborted) return ExitCode.INTERRUPTED;
  if (rePaired) {
    ctx.io.err("This machine was paired again (`coda-runner pair`); run `coda-runner` to connect with it.");
    return ExitCode.REFUSED;
  }
  if (reason !== "stopped") {
    ctx.io.err(STOP_MESSAGES[reason]);
    return ExitCode.REFUSED;
  }
  return ExitCode.OK;
}

/** Whether the config file now holds other credentials than the stored ones this runner used. */
async function pairedAgain(ctx: CommandContext, used: ActiveCredentials): Promise<boolean> {
  if (used.fromEnv) return false;
  const stored = await ctx.store.read().then((file) => file.credentials, () => undefined);
  return stored !== undefined && stored.runnerToken !== used.runnerToken;
}

async function commandPair(ctx: CommandContext): Promise<number> {
  await runPairing(ctx);
  ctx.io.out("Run `coda-runner` to connect.");
  return ExitCode.OK;
}

async function commandStatus(ctx: CommandContext): Promise<number> {
  const credentials = await activeCredentials(ctx);
  if (!credentials) {
    ctx.io.out(`Not paired (config: ${ctx.store.path}). Run \`coda-runner\` to pair this machine.`);
    return ExitCode.ERROR;
  }
  const expiry = peekExpiry(credentials.runnerToken);
  const days = expiry ? Math.floor((expiry.getTime() - Date.now()) / 86_400_000) : undefined;
  ctx.io.out([
    `Account:  ${
      credentials.email ?? (credentials.fromEnv ? "(RUNNER_TOKEN from the environment)" : "unknown")
    }`,
    `Runner:   ${credentials.runnerId ?? "unknown"}`,
    `Relay:    ${credentials.relayUrl}`,
    `App:      ${credentials.appUrl ?? "unknown (set APP_URL to record sessions)"}`,
    `Config:   ${ctx.store.path}`,
    `Service:  ${
      (await serviceState(Deno.build.os, serviceFileOf(ctx))) ?? "not installed (coda-runner install)"
    }`,
    `Token:    ${
      expiry
        ? expiry.getTime() <= Date.now()
          ? `EXPIRED on ${expiry.toISOString()}`
          : `expires ${expiry.toISOString()} (in ${days} days)`
        : "unreadable"
    }`,
  ].join("\n"));
  const result = await probeRelay(credentials.relayUrl, credentials.runnerToken);
  const lines = {
    accepted: "Online:   yes, the relay accepts this runner",
    unauthorized: `Online:   no, ${STOP_MESSAGES.unauthorized}`,
    revoked: `Online:   no, ${STOP_MESSAGES.revoked}`,
    unreachable: `Online:   no, the relay at ${credentials.relayUrl} did not answer within 5 s`,
  };
  ctx.io.out(lines[result]);
  ctx.io.out(formatHolders(await listHolders(runtimeDir(ctx))));
  if (result === "accepted") return ExitCode.OK;
  return result === "unreachable" ? ExitCode.ERROR : ExitCode.REFUSED;
}

/**
 * Revokes the stored pairing in the app (`pair/unpair`, with the runner's own token) and forgets it.
 * The credentials are forgotten even when the app cannot be reached: logging out is how a machine is
 * let go of, and it may never reach the app again. The token then stays valid until the runner is
 * removed in the app, which the message says, with exit 1 so a script notices.
 */
async function commandLogout(ctx: CommandContext): Promise<number> {
  const before = await ctx.store.read().then((file) => file.credentials, () => undefined);
  if (!before) {
    await ctx.store.clearCredentials();
    ctx.io.out("No stored credentials; nothing to forget.");
    return ExitCode.OK;
  }
  const who = before.email ?? before.runnerId;
  const ended = await endHolders(runtimeDir(ctx), ctx.log);
  if (ended > 0) ctx.io.out(`Ended ${ended} session${ended === 1 ? "" : "s"} kept by session holders.`);
  const revoked = await unpair(before.appUrl, before.runnerToken, { signal: revokeSignal(ctx) }).then(
    () => "revoked" as const,
    (error) => {
      if (ctx.signal.aborted) throw error;
      // 401: the app no longer accepts the token (already revoked, or expired); nothing is left to revoke.
      if (error instanceof PairingError && error.status === 401) return "dead" as const;
      return describeFailure(error);
    },
  );
  await ctx.store.clearCredentials();
  if (revoked === "revoked" || revoked === "dead") {
    ctx.io.out(
      revoked === "revoked"
        ? `Logged out: revoked this runner in the app (${who}) and forgot its credentials.`
        : `Logged out: the app no longer accepted this runner's token (${who}), so nothing was left to ` +
          "revoke; forgot its credentials (remove the runner in the app if it is still listed).",
    );
    return ExitCode.OK;
  }
  ctx.io.err(
    `Forgot the credentials for ${who}, but could not revoke them in the app at ${before.appUrl} ` +
      `(${revoked}): the token stays valid until you remove this runner (${before.runnerId}) in the app.`,
  );
  return ExitCode.ERROR;
}

async function commandServe(ctx: CommandContext): Promise<number> {
  const tmux = await tmuxSettings(ctx);
  const credentials = await activeCredentials(ctx).catch(() => undefined);
  const server = await startServe({
    host: ctx.args.host,
    port: ctx.args.port,
    allowedOrigins: ctx.args.allowOrigins.length
      ? ctx.args.allowOrigins
      : defaultServeOrigins(ctx.config.appUrl),
    log: ctx.log,
    sessions: sessionOptions(ctx, tmux, credentials),
  });
  ctx.io.out(
    [
      `Serving terminals at ${server.baseUrl} (Ctrl-C to stop).`,
      "Paste this URL into the app's manual connection field (it contains the access token, shown only now):",
      "",
      `    ${server.clientUrl}`,
      "",
    ].join("\n"),
  );
  await aborted(ctx.signal);
  await server.close();
  return ExitCode.INTERRUPTED;
}

/** Where this user's service file goes on this OS. */
function serviceFileOf(ctx: CommandContext): string {
  return serviceFilePath(Deno.build.os, {
    home: homeDirectory(ctx.env),
    xdgConfigHome: ctx.env.XDG_CONFIG_HOME,
    localAppData: ctx.env.LOCALAPPDATA,
  });
}

/**
 * What the service runs: this executable; from source (`deno run`), deno with the runner's
 * permissions and this module.
 */
function serviceSpec(ctx: CommandContext): ServiceSpec {
  const command = selfCommand();
  return {
    program: command.program,
    args: command.args,
    configPath: ctx.store.path,
    home: homeDirectory(ctx.env),
  };
}

/**
 * How this runner starts itself: this executable; from source (`deno run`), deno with the runner's
 * permissions and this module, and V8's profiler writing into `cpuProfDir` if given (a compiled runner
 * takes no such flags).
 */
function selfCommand(cpuProfDir?: string): SelfCommand {
  const program = Deno.execPath();
  if (!/^deno(\.exe)?$/i.test(basename(program))) {
    if (cpuProfDir !== undefined) {
      throw new RunnerConfigError(
        "CODA_HOLDER_CPU_PROF_DIR works only for a runner run from source (deno run)",
      );
    }
    return { program, args: [] };
  }
  const profile = cpuProfDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`];
  return { program, args: ["run", ...profile, ...RUNNER_PERMISSIONS, fileURLToPath(import.meta.url)] };
}

/** The runtime directory of this runner's session holders: `CODA_RUNTIME_DIR`, else beside the config file. */
function runtimeDir(ctx: CommandContext): string {
  return ctx.config.runtimeDir ?? join(dirname(ctx.store.path), "sessions");
}

/**
 * Who a holder belongs to: the runner id, or for a `RUNNER_TOKEN` without one, a digest of the token. A
 * runner adopts only its own holders; a machine paired again ends the old pairing's.
 */
function holderOwner(credentials: ActiveCredentials): string {
  if (credentials.runnerId) return credentials.runnerId;
  return `token-${createHash("sha256").update(credentials.runnerToken).digest("hex").slice(0, 16)}`;
}

/** `coda-runner status`'s lines about the session holders. */
function formatHolders(holders: HolderStatus[]): string {
  if (holders.length === 0) return "Sessions: none held";
  return [
    `Sessions: ${holders.length} held (they outlive the runner)`,
    ...holders.map((holder) =>
      `  ${holder.sessionId}  shell pid ${holder.shellPid ?? "-"}  holder pid ${holder.pid}  ` +
      `${holder.clients} client${holder.clients === 1 ? "" : "s"}  ${
        holder.runner ? "runner connected" : "no runner"
      }` +
      `  since ${new Date(holder.startedAt).toISOString()}  ${holder.cwd ?? ""}`.trimEnd()
    ),
  ].join("\n");
}

/** `hold`: a session holder, started by the runner; says where it listens, then keeps its session. */
async function commandHold(ctx: CommandContext): Promise<number> {
  if (ctx.args.dir === undefined) return ExitCode.USAGE;
  Deno.addSignalListener("SIGHUP", () => {});
  return await runHolder({
    dir: ctx.args.dir,
    version: VERSION,
    signal: ctx.signal,
    announce: (line) => ctx.io.out(line),
  });
}

/** `install`: the paired runner as a per-user service. */
async function commandInstall(ctx: CommandContext): Promise<number> {
  if (!await activeCredentials(ctx)) {
    ctx.io.err("coda-runner: not paired yet. Run `coda-runner pair` first, then `coda-runner install`.");
    return ExitCode.ERROR;
  }
  const file = serviceFileOf(ctx);
  const spec = serviceSpec(ctx);
  // A scheduled task keeps no output: the runner writes its log beside the task file.
  if (Deno.build.os === "windows") spec.args.push("--log-file", join(dirname(file), "coda-runner.log"));
  try {
    await installService(Deno.build.os, file, spec);
  } catch (error) {
    if (!(error instanceof ServiceError)) throw error;
    const hint = Deno.build.os === "linux"
      ? " Is a systemd user session running for you (`systemctl --user status`)? Without one, run" +
        " `coda-runner` under your own supervisor."
      : "";
    ctx.io.err(`coda-runner: could not install the service: ${error.message}.${hint}`);
    return ExitCode.ERROR;
  }
  ctx.io.out(`Installed ${file}: the runner starts at login and restarts if it fails.`);
  if (Deno.build.os === "linux") {
    ctx.io.out(
      "Logs: journalctl --user -u coda-runner. To keep it running while you are logged out: loginctl enable-linger $USER",
    );
  }
  return ExitCode.OK;
}

/** `uninstall`: stops and removes the service. */
async function commandUninstall(ctx: CommandContext): Promise<number> {
  const file = serviceFileOf(ctx);
  const removed = await uninstallService(Deno.build.os, file);
  ctx.io.out(
    removed ? `Removed the service (${file}).` : "No coda-runner service is installed for this user.",
  );
  return ExitCode.OK;
}

/** `selfcheck`: one line per check, exit 1 if any failed. */
async function commandSelfcheck(ctx: CommandContext): Promise<number> {
  let relayUrl = ctx.config.relayUrl;
  let unreadable: string | undefined;
  if (relayUrl === undefined) {
    try {
      relayUrl = (await ctx.store.read()).credentials?.relayUrl;
    } catch (error) {
      unreadable = error instanceof Error ? error.message : String(error);
    }
  }
  const results = await selfcheck({
    holderCommand: selfCommand(),
    env: sessionOptions(ctx, undefined).env,
    configPath: ctx.store.path,
    relayUrl,
  });
  if (unreadable !== undefined) results.push({ name: "config", ok: false, detail: unreadable });
  ctx.io.out(formatChecks(results));
  return results.every((result) => result.ok) ? ExitCode.OK : ExitCode.ERROR;
}

/** Runs the CLI with `args`; resolves the exit code. `signal` aborts like Ctrl-C. */
export async function main(
  args: string[],
  env: Env,
  options: { io?: CliIo; signal?: AbortSignal } = {},
): Promise<number> {
  const io = options.io ?? processIo;
  let parsed: CliArgs;
  try {
    parsed = parseCliArgs(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(`coda-runner: ${error.message}\nRun \`coda-runner --help\` for usage.`);
    return ExitCode.USAGE;
  }
  if (parsed.command === "help") {
    io.out(USAGE);
    return ExitCode.OK;
  }
  if (parsed.command === "version") {
    io.out(`coda-runner ${VERSION}`);
    return ExitCode.OK;
  }
  const signal = options.signal ?? new AbortController().signal;
  const logFile = parsed.logFile;
  const log = createLogger({
    format: parsed.logFormat,
    write: logFile === undefined ? io.err : (line) => {
      io.err(line);
      try {
        Deno.writeTextFileSync(logFile, `${line}\n`, { append: true });
      } catch {
        // The log file is a copy; the line went to standard error.
      }
    },
  });
  try {
    const config = loadRunnerEnv(env);
    const store = new RunnerFileStore(defaultConfigPath(env));
    const ctx: CommandContext = { args: parsed, env, config, store, io, log, signal };
    switch (parsed.command) {
      case "run":
        return await commandRun(ctx);
      case "pair":
        return await commandPair(ctx);
      case "status":
        return await commandStatus(ctx);
      case "logout":
        return await commandLogout(ctx);
      case "serve":
        return await commandServe(ctx);
      case "selfcheck":
        return await commandSelfcheck(ctx);
      case "install":
        return await commandInstall(ctx);
      case "uninstall":
        return await commandUninstall(ctx);
      case "hold":
        return await commandHold(ctx);
    }
  } catch (error) {
    if (signal.aborted) return ExitCode.INTERRUPTED;
    if (error instanceof CliFailure) {
      io.err(error.message);
      return error.exitCode;
    }
    if (
      error instanceof RunnerConfigError || error instanceof CorruptConfigError ||
      error instanceof TmuxMissingError || error instanceof PairingError
    ) {
      io.err(`coda-runner: ${error.message}`);
      return ExitCode.ERROR;
    }
    if (error instanceof Deno.errors.AddrInUse) {
      io.err(`coda-runner: that port is already in use; pick another with --port.`);
      return ExitCode.ERROR;
    }
    io.err(`coda-runner: unexpected error: ${error instanceof Error ? error.message : String(error)}`);
    return ExitCode.ERROR;
  }
  return ExitCode.OK;
}

/** Aborts `controller` on Ctrl-C (and SIGTERM where it exists); returns a function removing the handlers. */
function onInterrupt(controller: AbortController): () => void {
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const handler = () => controller.abort(new DOMException("interrupted", "AbortError"));
  for (const name of signals) Deno.addSignalListener(name, handler);
  return () => {
    for (const name of signals) Deno.removeSignalListener(name, handler);
  };
}

if (import.meta.main) {
  const controller = new AbortController();
  const removeHandlers = onInterrupt(controller);
  const code = await main(Deno.args, Deno.env.toObject(), { signal: controller.signal });
  removeHandlers();
  Deno.exit(code);
}
