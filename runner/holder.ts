/**
 * `coda-runner hold`: a session holder, the process that owns one session so
 * that the session outlives the runner (a restart, a crash, an upgrade).
 *
 * The runner starts holders detached (a session of their own, no terminal),
 * one spare ahead of need. A holder listens on a Unix socket in the runner's
 * runtime directory (0700; the socket 0600), first as `spare-<pid>.sock`.
 * The runner that started it joins at once and sends the session settings,
 * and the spare builds its session manager then, ahead of any attach; when
 * the runner assigns it a session it renames the socket to
 * `<sessionId>.sock` and runs that session with the runner's own
 * {@linkcode SessionManager}: PTY, replay ring, flow control, shell
 * integration, recording. The runner relays the session's link messages to it
 * (`holder_protocol.ts`); a runner that comes back connects again and the
 * clients resume by offset from the holder's ring.
 *
 * A holder ends when its shell exits or is killed, when a runner tells it to
 * (`holder-stop`: logout, revocation), on SIGTERM or SIGINT, and after
 * `orphanMs` with no runner connected. A shell that exits while no relay
 * link reaches the holder leaves it waiting (as long as its session manager
 * keeps the untold end) for a client to resume and hear the exit, instead of
 * `runner-restarted`. A spare ends with its runner's connection. Killing the
 * holder itself closes the PTY, so the shell gets SIGHUP: no shell is left
 * behind.
 *
 * @module
 */
import { appendFile, chmod, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  encodeHolderMessage,
  encodeHolderOutput,
  type FromHolder,
  HOLDER_PROTOCOL_VERSION,
  HolderFrameReader,
  type HolderHello,
  type HolderSpec,
  type HolderStatus,
  type ToHolder,
  ToHolderSchema,
} from "./holder_protocol.ts";
import { SessionManager } from "./session_manager.ts";
import { integrationDir } from "./shell_integration.ts";
import type { SessionSink } from "./session.ts";
import { RunnerFileStore } from "./credentials.ts";
import { type LogFields, type Logger, type LogLevel, silentLogger } from "./log.ts";
import { concatBytes } from "@coda/relay/bytes";
import type { RelayToRunner } from "@coda/relay/protocol";
import { holderSocketPath, spareSocketPath } from "./holder_dir.ts";
import { listenUnix, type UnixStream } from "./unix_stream.ts";

/** Options of {@linkcode runHolder}. */
export interface HolderOptions {
  /** The runner's runtime directory (exists, 0700). */
  dir: string;
  /** The runner version this holder runs, for the hello. */
  version: string;
  /** Says the holder listens: called once with `ready <socket path>`. */
  announce(line: string): void;
  /** Aborting ends the session and the holder (SIGTERM, SIGINT). */
  signal: AbortSignal;
}

/** How long an ending holder waits for its last frames to reach the runner, ms. */
const FLUSH_MS = 2000;
/**
 * How long a spare waits for the runner that started it to connect, ms: that runner connects as soon
 * as it reads the spare's ready line, unless it died while the spare was starting.
 */
const SPARE_JOIN_MS = 10_000;

/** Runs a holder until its session is over; resolves its exit code. */
export async function runHolder(options: HolderOptions): Promise<number> {
  const holder = new Holder(options);
  await warmUp(options.dir);
  await holder.listen();
  options.announce(`ready ${holder.socketPath}`);
  return await holder.done;
}

class Holder {
  readonly #options: HolderOptions;
  #listener: Deno.UnixListener | undefined;
  readonly #startedAt = Date.now();
  readonly #connections = new Set<UnixStream>();
  socketPath: string;
  #runner: UnixStream | undefined;
  /** The session's settings, from the runner's `holder-prepare`. */
  #spec: HolderSpec | undefined;
  /** The session this holder holds, once assigned. */
  #sessionId: string | undefined;
  #manager: SessionManager | undefined;
  #linkUp = false;
  /** Settles once an assignment (if any came) is in place. */
  #assigned: Promise<void> = Promise.resolve();
  #orphanTimer: ReturnType<typeof setTimeout> | undefined;
  #finishing = false;
  #resolveDone!: (code: number) => void;
  readonly done: Promise<number>;
  readonly #log: Logger;

  constructor(options: HolderOptions) {
    this.#options = options;
    this.socketPath = spareSocketPath(options.dir, Deno.pid);
    this.done = new Promise((resolve) => this.#resolveDone = resolve);
    this.#log = {
      debug: (message, fields) => this.#logLine("debug", message, fields),
      info: (message, fields) => this.#logLine("info", message, fields),
      warn: (message, fields) => this.#logLine("warn", message, fields),
      error: (message, fields) => this.#logLine("error", message, fields),
    };
    options.signal.addEventListener("abort", () => void this.#stop("signal"), { once: true });
  }

  async listen(): Promise<void> {
    // A spare nobody joins (its runner died before connecting) is nobody's.
    this.#orphanTimer = setTimeout(() => void this.#finish(), SPARE_JOIN_MS);
    await rm(this.socketPath, { force: true });
    this.#listener = listenUnix(this.socketPath, (socket) => this.#accept(socket));
    await chmod(this.socketPath, 0o600);
  }

  #hello(): HolderHello {
    const session = this.#session();
    const hello: HolderHello = {
      type: "holder-hello",
      protocol: HOLDER_PROTOCOL_VERSION,
      version: this.#options.version,
      pid: Deno.pid,
    };
    if (this.#sessionId && this.#spec) {
      hello.sessionId = this.#sessionId;
      hello.runnerId = this.#spec.runnerId;
    }
    if (session) hello.shellPid = session.pid;
    return hello;
  }

  #status(): HolderStatus {
    const session = this.#session();
    const status: HolderStatus = {
      type: "holder-status",
      pid: Deno.pid,
      startedAt: this.#startedAt,
      clients: session?.stats().clients ?? 0,
      runner: this.#runner !== undefined,
      version: this.#options.version,
    };
    if (this.#sessionId) status.sessionId = this.#sessionId;
    if (session) {
      status.shellPid = session.pid;
      status.cwd = session.cwd;
    }
    return status;
  }

  #session() {
    return this.#sessionId === undefined ? undefined : this.#manager?.get(this.#sessionId);
  }

  #accept(socket: UnixStream): void {
    if (this.#finishing) {
      socket.destroy();
      return;
    }
    this.#connections.add(socket);
    write(socket, this.#hello());
    const reader = new HolderFrameReader(ToHolderSchema);
    let role: "runner" | "status" | undefined;
    const onData = (bytes: Uint8Array) => {
      for (const frame of reader.push(bytes)) {
        if (!frame.ok || frame.value.kind !== "message") {
          this.#log.warn("a bad frame on the holder socket; closing that connection", {
            error: frame.ok ? "output towards a holder" : frame.error,
          });
          socket.destroy();
          return;
        }
        const message = frame.value.message;
        if (role === undefined) {
          if (message.type !== "holder-join" || message.protocol !== HOLDER_PROTOCOL_VERSION) {
            socket.destroy();
            return;
          }
          role = message.role;
          if (role === "runner") this.#runnerJoined(socket);
          continue;
        }
        if (message.type === "holder-status-request") write(socket, this.#status());
        else if (role === "runner" && socket === this.#runner) this.#fromRunner(message);
      }
    };
    socket.start({
      onData,
      onClose: () => {
        this.#connections.delete(socket);
        if (socket === this.#runner) this.#runnerGone();
      },
    });
  }

  #runnerJoined(socket: UnixStream): void {
    const previous = this.#runner;
    this.#runner = socket;
    previous?.destroy();
    clearTimeout(this.#orphanTimer);
    this.#orphanTimer = undefined;
  }

  #runnerGone(): void {
    this.#runner = undefined;
    this.#setLink(false);
    const spec = this.#spec;
    const sessionId = this.#sessionId;
    if (!spec || !sessionId) {
      // A spare serves the runner that started it and no other.
      void this.#finish();
      return;
    }
    this.#orphanTimer = setTimeout(() => {
      this.#log.info("no runner for the grace period; ending the session", { sessionId });
      void this.#stop("orphaned");
    }, spec.orphanMs);
  }

  /** Handles the runner's messages in order: none overtakes the assignment that starts the session. */
  #fromRunner(message: ToHolder): void {
    if (message.type === "holder-prepare") {
      this.#prepare(message.spec);
      return;
    }
    if (message.type === "holder-assign") {
      this.#assigned = this.#assigned.then(() => this.#assign(message.sessionId));
      return;
    }
    void this.#assigned.then(() => {
      switch (message.type) {
        case "holder-join":
        case "holder-status-request":
          return;
        case "holder-link":
          this.#setLink(message.up);
          return;
        case "holder-stop":
          return this.#stop("stopped by the runner");
        default:
          if (!this.#manager || this.#finishing) return;
          return this.#manager.handle(message);
      }
    });
  }

  /** Builds the session manager ahead of the session: the assignment then only names the session. */
  #prepare(spec: HolderSpec): void {
    if (this.#spec) return;
    this.#spec = spec;
    const sink: SessionSink = {
      send: (message) => {
        this.#toRunner(encodeHolderMessage(message));
        if (message.type === "end") void this.#finish();
      },
      sendOutput: (chunk) => this.#toRunner(encodeHolderOutput(chunk)),
      bufferedAmount: () => this.#runner?.bufferedAmount ?? 0,
    };
    this.#manager = new SessionManager({
      sink,
      log: this.#log,
      env: spec.env,
      home: spec.home,
      ttyCwd: spec.ttyCwd,
      graceMs: spec.graceMs,
      replayBytes: spec.replayBytes,
      transferMaxBytes: spec.transferMaxBytes,
      tmux: spec.tmux,
      store: spec.configPath ? new RunnerFileStore(spec.configPath) : undefined,
      recording: spec.recording,
      onUntoldEndDropped: () => void this.#finish(),
    });
    this.#setLink(this.#linkUp);
  }

  #assign(sessionId: string): void {
    if (this.#sessionId) return;
    if (!this.#manager) {
      this.#log.warn("a session assigned to a spare that was never prepared; ending it", { sessionId });
      void this.#finish();
      return;
    }
    clearTimeout(this.#orphanTimer);
    this.#sessionId = sessionId;
    const target = holderSocketPath(this.#options.dir, sessionId);
    // Synchronous: the attach waits on it, and node's promise version took 1.5 ms here.
    Deno.renameSync(this.socketPath, target);
    this.socketPath = target;
  }

  #setLink(up: boolean): void {
    this.#linkUp = up;
    if (up) this.#manager?.linkUp();
    else this.#manager?.linkDown();
  }

  /** Ends the session for good; the holder follows once its `end` is out (or at once, with nobody to hear it). */
  async #stop(why: string): Promise<void> {
    const session = this.#session();
    if (!session || session.ended) {
      await this.#finish();
      return;
    }
    this.#log.info("ending the session", { sessionId: session.sessionId, why });
    await session.kill();
    // Ended on purpose: the holder does not stay for a client to hear of it.
    await session.exited;
    await this.#finish();
  }

  async #finish(): Promise<void> {
    if (this.#finishing) return;
    this.#finishing = true;
    clearTimeout(this.#orphanTimer);
    await this.#runner?.end(FLUSH_MS);
    for (const socket of this.#connections) socket.destroy();
    this.#listener?.close();
    await rm(this.socketPath, { force: true });
    this.#resolveDone(0);
  }

  #toRunner(parts: Uint8Array[]): void {
    this.#runner?.write(parts);
  }

  #logLine(level: LogLevel, message: string, fields?: LogFields): void {
    const runner = this.#runner;
    if (runner) {
      write(runner, { type: "holder-log", level, message, fields: { ...fields, holder: Deno.pid } });
      return;
    }
    if (level === "debug") return;
    // No runner to tell: the line waits in the runtime directory for whoever looks.
    const line = JSON.stringify({
      time: new Date().toISOString(),
      level,
      msg: message,
      holder: Deno.pid,
      ...fields,
    });
    void appendFile(join(this.#options.dir, "holders.log"), `${line}\n`, { mode: 0o600 }).catch(() => {});
  }
}

/**
 * Runs a throwaway session (`echo`: a line of output, then the exit) through the whole path a
 * session takes, frames and output included: a process's first session is slow (cold code,
 * node-pty's helper, the shell integration's files), and a spare pays for it before any session
 * waits on it. Measured on the bench's attach: the integration's files and a first output each
 * cost the first session 2–4 ms.
 */
async function warmUp(dir: string): Promise<void> {
  // The throwaway program has no shell integration, so its files (3–4 ms to write, once per
  // process) are written here; where they cannot be, sessions go without, as spawnPty decides.
  try {
    integrationDir();
  } catch {
    // spawnPty finds the same problem and starts shells without integration.
  }
  const sessionId = "warm-up-session";
  // Frames are encoded as a real session's are, then dropped: a first encode costs a first output too.
  const manager = new SessionManager({
    sink: {
      send: (message) => void encodeHolderMessage(message),
      sendOutput: (chunk) => void encodeHolderOutput(chunk),
      bufferedAmount: () => 0,
    },
    log: silentLogger,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", HOME: dir, SHELL: "/bin/echo" },
    home: dir,
    graceMs: 1000,
    replayBytes: 64 * 1024,
  });
  const reader = new HolderFrameReader(ToHolderSchema);
  // An assignment and the link's state are decoded only: what they start is the session below.
  const assign: ToHolder = { type: "holder-assign", sessionId };
  const attach: ToHolder = { type: "attach", sessionId, clientId: "warm-up", cols: 80, rows: 24 };
  const link: ToHolder = { type: "holder-link", up: true };
  const messages = [assign, link, attach].flatMap((message) => encodeHolderMessage(message));
  for (const frame of reader.push(concatBytes(messages))) {
    if (frame.ok && frame.value.kind === "message" && frame.value.message.type === "attach") {
      await manager.handle(frame.value.message as RelayToRunner);
    }
  }
  await manager.get(sessionId)?.exited;
  await manager.shutdown();
}

function write(socket: UnixStream, message: FromHolder): void {
  socket.write(encodeHolderMessage(message));
}
