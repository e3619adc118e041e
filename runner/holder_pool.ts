/**
 * The runner's sessions, each in a session holder (`holder.ts`): starts a
 * holder per session (one spare kept ready, so an attach does not wait for a
 * process to start), re-adopts the holders an earlier runner left, relays the
 * link's messages to them and their frames back, and ends them on logout or
 * revocation.
 *
 * Where holders cannot run (Windows, no usable runtime directory, a holder
 * that does not start), sessions run in this process as before: the runner
 * says so once, and those sessions end with it.
 *
 * @module
 */
import { rm } from "node:fs/promises";
import type { RelayToRunner } from "@coda/relay/protocol";
import { MetaLine } from "@coda/relay/protocol";
import { HolderConnection, IGNORE_FRAMES } from "./holder_connection.ts";
import { ensureRuntimeDir, holderSocketPath, listHolderSockets } from "./holder_dir.ts";
import type { FromHolder, HolderSpec, HolderStatus } from "./holder_protocol.ts";
import { KeyedSerial } from "./keyed_serial.ts";
import {
  type AttachMessage,
  messageSession,
  reportLostSession,
  resumesLostSession,
  type SessionManager,
} from "./session_manager.ts";
import { DEFAULT_FLOW_LIMITS, type SessionSink } from "./session.ts";
import type { Logger } from "./log.ts";

/** How the runner starts a copy of itself: `program args… hold --dir <dir>`. */
export interface SelfCommand {
  program: string;
  args: string[];
}

/** Options of {@linkcode HolderPool}. */
export interface HolderPoolOptions {
  /** The runtime directory of the holders' sockets. */
  dir: string;
  command: SelfCommand;
  sink: SessionSink;
  log: Logger;
  /** What every holder runs its session with (sent to each spare ahead of its session). */
  spec: HolderSpec;
  /** Runs the sessions no holder can, and answers the link's messages about no session. */
  local: SessionManager;
}

/** The V8 flags of a holder: see {@linkcode spawnHolder}. */
const HOLDER_V8_FLAGS = "--max-semi-space-size=2";
/** How long a holder has to start and say it listens, ms. */
const SPAWN_TIMEOUT_MS = 20_000;
/** How long ending holders get to end their shells (a shell gets SIGKILL after 5 s), ms. */
const STOP_TIMEOUT_MS = 10_000;
/**
 * How long after a spare is taken the next one starts, ms. Starting a Deno process costs the runner a
 * few milliseconds of synchronous spawn and the machine a core for a few hundred: at once, both would
 * fall on the new session's attach and its shell's start (measured: 46 ms to the first prompt byte
 * against 37 ms with the next spare started later).
 */
const NEXT_SPARE_DELAY_MS = 500;

/** Every session of a runner that keeps them in holders. */
export class HolderPool {
  readonly #options: HolderPoolOptions;
  readonly #holders = new Map<string, HolderConnection>();
  /** Sessions run in this process because no holder could. */
  readonly #local = new Set<string>();
  readonly #serial = new KeyedSerial();
  #spare: Promise<HolderConnection> | undefined;
  #nextSpare: ReturnType<typeof setTimeout> | undefined;
  /** Why holders cannot run here, once known. */
  #unavailable: string | undefined;
  #linkUp = false;
  #closing = false;
  #paused = false;

  constructor(options: HolderPoolOptions) {
    this.#options = options;
  }

  /** Prepares the runtime directory, re-adopts the holders found there, and starts a spare. */
  async start(): Promise<void> {
    if (Deno.build.os === "windows") {
      this.#fallBack("session holders need Unix sockets");
      return;
    }
    try {
      await ensureRuntimeDir(this.#options.dir);
    } catch (error) {
      this.#fallBack(describe(error));
      return;
    }
    for (const socket of await listHolderSockets(this.#options.dir)) {
      if (socket.spare) await removeIfStale(socket.path);
      else await this.#adopt(socket.path);
    }
    this.#prepareSpare();
  }

  /** Handles one message from the link, in order per session. Never throws. */
  handle(message: RelayToRunner): Promise<void> {
    const sessionId = messageSession(message);
    if (sessionId === undefined) return this.#options.local.handle(message);
    return this.#serial.run(sessionId, () =>
      this.#route(sessionId, message).catch((error) => {
        this.#options.log.error("could not handle a message", { type: message.type, error: describe(error) });
      }));
  }

  /** The link dropped. */
  linkDown(): void {
    this.#setLink(false);
  }

  /** The link is back. */
  linkUp(): void {
    this.#setLink(true);
  }

  /**
   * Stops. The holders keep their sessions for the next runner, unless
   * `endAll` (logout, revocation): then every holder in the runtime directory
   * ends, adopted or not.
   */
  async shutdown(options: { endAll?: boolean } = {}): Promise<void> {
    this.#closing = true;
    clearTimeout(this.#nextSpare);
    await this.#serial.settled();
    const spare = this.#spare;
    this.#spare = undefined;
    await Promise.all([
      this.#options.local.shutdown({ endTmux: options.endAll }),
      spare?.then((holder) => holder.close(), () => {}),
    ]);
    const holders = [...this.#holders.values()];
    if (!options.endAll) {
      await Promise.all(holders.map((holder) => holder.close()));
      return;
    }
    for (const holder of holders) holder.send({ type: "holder-stop" });
    await Promise.all([
      ...holders.map((holder) => holder.closed),
      endHolders(this.#options.dir, this.#options.log),
    ]);
  }

  async #route(sessionId: string, message: RelayToRunner): Promise<void> {
    if (this.#local.has(sessionId)) {
      await this.#runLocally(sessionId, message);
      return;
    }
    const holder = this.#holders.get(sessionId);
    if (holder) {
      holder.send(message);
      return;
    }
    if (message.type !== "attach") {
      this.#options.log.debug("message for an unknown session", { type: message.type, sessionId });
      return;
    }
    await this.#attach(message);
  }

  async #attach(message: AttachMessage): Promise<void> {
    if (this.#closing) return;
    const { sink, log, spec } = this.#options;
    if (await resumesLostSession(message, spec.tmux)) {
      reportLostSession(sink, log, message);
      return;
    }
    const holder = this.#unavailable === undefined ? await this.#takeSpare() : undefined;
    if (!holder) {
      this.#local.add(message.sessionId);
      await this.#runLocally(message.sessionId, message);
      return;
    }
    this.#hold(message.sessionId, holder);
    holder.send({ type: "holder-assign", sessionId: message.sessionId });
    holder.send({ type: "holder-link", up: this.#linkUp });
    holder.send(message);
  }

  /** Hands `message` to the in-process sessions; forgets a session of theirs once it is over. */
  async #runLocally(sessionId: string, message: RelayToRunner): Promise<void> {
    await this.#options.local.handle(message);
    if (!this.#options.local.get(sessionId)) this.#local.delete(sessionId);
  }

  /**
   * A spare holder for a new session (and another started behind it), or none when none starts. A
   * spare that died while it waited is replaced once.
   */
  async #takeSpare(): Promise<HolderConnection | undefined> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const spare = this.#spare ?? this.#spawn();
      this.#spare = undefined;
      let holder: HolderConnection;
      try {
        holder = await spare;
      } catch (error) {
        this.#fallBack(`a session holder did not start: ${describe(error)}`);
        return undefined;
      }
      this.#prepareSpareLater();
      if (!holder.isClosed) return holder;
    }
    this.#fallBack("session holders exit as soon as they start");
    return undefined;
  }

  /** Starts the next spare after {@linkcode NEXT_SPARE_DELAY_MS}, unless one is there by then. */
  #prepareSpareLater(): void {
    if (this.#nextSpare !== undefined) return;
    this.#nextSpare = setTimeout(() => {
      this.#nextSpare = undefined;
      if (!this.#spare) this.#prepareSpare();
    }, NEXT_SPARE_DELAY_MS);
  }

  #prepareSpare(): void {
    if (this.#closing || this.#unavailable !== undefined) return;
    const spare = this.#spawn();
    spare.catch(() => {});
    this.#spare = spare;
  }

  /** A new spare, joined at once: a spare ends with the connection of the runner that started it. */
  async #spawn(): Promise<HolderConnection> {
    const path = await spawnHolder(this.#options.command, this.#options.dir);
    const holder = await HolderConnection.connect(path);
    holder.join(IGNORE_FRAMES);
    holder.send({ type: "holder-prepare", spec: this.#options.spec });
    return holder;
  }

  /** Holders cannot run: sessions run in this process from now on. */
  #fallBack(reason: string): void {
    if (this.#unavailable !== undefined) return;
    this.#unavailable = reason;
    this.#options.log.warn(
      "sessions run inside the runner and end with it (a restart or upgrade ends them)",
      { reason },
    );
  }

  /** Re-adopts the holder at `path`, which an earlier runner left; ends it if it is not ours to adopt. */
  async #adopt(path: string): Promise<void> {
    const holder = await HolderConnection.connect(path).catch(() => undefined);
    if (!holder) {
      await removeIfStale(path);
      return;
    }
    const { log, spec } = this.#options;
    const { hello } = holder;
    const sessionId = hello.sessionId;
    if (!holder.compatible) {
      log.warn("a session holder of another runner build speaks another holder protocol; ending it", {
        sessionId,
        holderVersion: hello.version,
        holderProtocol: hello.protocol,
      });
      await holder.close();
      await stopByPid(hello.pid, path);
      return;
    }
    if (
      sessionId === undefined || holderSocketPath(this.#options.dir, sessionId) !== path ||
      hello.runnerId !== spec.runnerId
    ) {
      log.warn("a session holder of another pairing was left here; ending it", { sessionId });
      holder.join(IGNORE_FRAMES);
      holder.send({ type: "holder-stop" });
      await holder.closed;
      return;
    }
    this.#hold(sessionId, holder);
    holder.send({ type: "holder-link", up: this.#linkUp });
    log.info("re-adopted a session from its holder", {
      sessionId,
      shellPid: hello.shellPid,
      holder: hello.pid,
    });
  }

  /** Makes `holder` the one of `sessionId`: its frames go to the link from now on. */
  #hold(sessionId: string, holder: HolderConnection): void {
    const { sink, log } = this.#options;
    let ended = false;
    this.#holders.set(sessionId, holder);
    if (this.#paused) holder.pause();
    holder.join({
      onMessage: (message: FromHolder) => {
        if (message.type === "holder-log") {
          log[message.level](message.message, message.fields);
          return;
        }
        if (message.type === "holder-hello" || message.type === "holder-status") return;
        if (message.type === "end") ended = true;
        sink.send(message);
      },
      onOutput: (chunk, frame) => {
        sink.sendOutput(chunk, frame);
        this.#checkLink();
      },
      onClose: async () => {
        if (this.#holders.get(sessionId) === holder) this.#holders.delete(sessionId);
        if (ended || this.#closing) return;
        // A holder that still listens was taken over by another runner started with these credentials
        // (the relay hands that one the link too): the session goes on there.
        const alive = await HolderConnection.connect(holderSocketPath(this.#options.dir, sessionId))
          .then((probe) => probe.close().then(() => true), () => false);
        if (alive) {
          log.warn("another runner took over a session's holder", { sessionId });
          return;
        }
        log.warn("a session holder exited without ending its session", { sessionId });
        sink.send({ type: "meta", sessionId, data: MetaLine.error("the session's holder process exited") });
        sink.send({ type: "end", sessionId, exitCode: null });
      },
    });
  }

  #setLink(up: boolean): void {
    this.#linkUp = up;
    if (up) this.#options.local.linkUp();
    else this.#options.local.linkDown();
    for (const holder of this.#holders.values()) holder.send({ type: "holder-link", up });
  }

  /**
   * Holds the holders' output back while the link is full: their sockets fill, and each holder's
   * session pauses its PTY as it would on a full link.
   */
  #checkLink(): void {
    if (this.#paused || this.#options.sink.bufferedAmount() <= DEFAULT_FLOW_LIMITS.maxLinkBuffered) return;
    this.#paused = true;
    for (const holder of this.#holders.values()) holder.pause();
    const poll = () => {
      if (this.#options.sink.bufferedAmount() > DEFAULT_FLOW_LIMITS.maxLinkBuffered && !this.#closing) {
        setTimeout(poll, DEFAULT_FLOW_LIMITS.linkPollMs);
        return;
      }
      this.#paused = false;
      for (const holder of this.#holders.values()) holder.resume();
    };
    setTimeout(poll, DEFAULT_FLOW_LIMITS.linkPollMs);
  }
}

/**
 * Starts a holder detached from this process (a session of its own, no
 * terminal; it outlives this process) and resolves the socket it says it
 * listens on. Its first line of output says that, or why it could not start.
 */
export async function spawnHolder(command: SelfCommand, dir: string): Promise<string> {
  const child = new Deno.Command(command.program, {
    args: [...command.args, "hold", "--dir", dir],
    // A holder's young generation stays small: V8 would grow it to 16 MB per semi-space under a flood of
    // output, memory one session's holder does not need (the relay runs with the same bound).
    env: { DENO_V8_FLAGS: HOLDER_V8_FLAGS },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: true,
    cwd: "/",
  }).spawn();
  // Nothing waits on the holder: it may outlive this process by design.
  child.unref();
  const output = readLines(child.stdout);
  const errors = readLines(child.stderr);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${SPAWN_TIMEOUT_MS / 1000} s`)),
      SPAWN_TIMEOUT_MS,
    );
  });
  try {
    const line = await Promise.race([output.first, timeout]);
    const ready = line && /^ready (.+)$/.exec(line);
    if (ready) return ready[1];
    const reason = await Promise.race([errors.all, timeout]);
    throw new Error(reason.trim().split("\n").find((text) => text.trim() !== "") ?? line ?? "it exited");
  } finally {
    clearTimeout(timer);
    await Promise.all([output.cancel(), errors.cancel()]);
  }
}

/** The first line of `stream`, all of it, and a way to stop reading it. */
function readLines(stream: ReadableStream<Uint8Array<ArrayBuffer>>) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let resolveFirst!: (line: string | undefined) => void;
  const first = new Promise<string | undefined>((resolve) => resolveFirst = resolve);
  const all = (async () => {
    for (;;) {
      const read = await reader.read().catch(() => ({ done: true as const, value: undefined }));
      if (read.done) break;
      text += read.value;
      const end = text.indexOf("\n");
      if (end >= 0) resolveFirst(text.slice(0, end));
    }
    resolveFirst(text === "" ? undefined : text);
    return text;
  })();
  return { first, all, cancel: () => reader.cancel().catch(() => {}) };
}

/**
 * Ends every holder in `dir` (logout, revocation), whichever runner left it; resolves once they are
 * gone, with the number of sessions they held.
 */
export async function endHolders(dir: string, log: Logger): Promise<number> {
  let ended = 0;
  await Promise.all((await listHolderSockets(dir)).map(async (socket) => {
    const holder = await HolderConnection.connect(socket.path).catch(() => undefined);
    if (!holder) {
      await removeIfStale(socket.path);
      return;
    }
    if (!socket.spare) ended++;
    if (!holder.compatible) {
      await holder.close();
      await stopByPid(holder.hello.pid, socket.path);
      return;
    }
    holder.join(IGNORE_FRAMES);
    holder.send({ type: "holder-stop" });
    const timer = setTimeout(() => void holder.close(), STOP_TIMEOUT_MS);
    await holder.closed;
    clearTimeout(timer);
  }));
  if (ended > 0) log.info("ended the session holders", { count: ended });
  return ended;
}

/** The status of every holder in `dir`, for `coda-runner status`. */
export async function listHolders(dir: string): Promise<HolderStatus[]> {
  const statuses = await Promise.all((await listHolderSockets(dir)).map(async (socket) => {
    if (socket.spare) return undefined;
    const holder = await HolderConnection.connect(socket.path).catch(() => undefined);
    if (!holder) return undefined;
    const status = holder.compatible ? await holder.status() : undefined;
    await holder.close();
    return status;
  }));
  return statuses.filter((status): status is HolderStatus => status !== undefined);
}

/** Ends a holder this runner cannot speak to: SIGTERM, which every holder version ends its session on. */
async function stopByPid(pid: number, path: string): Promise<void> {
  try {
    Deno.kill(pid, "SIGTERM");
  } catch {
    // Gone already.
  }
  await removeIfStale(path);
}

/** Removes the socket at `path` unless a holder listens there. */
async function removeIfStale(path: string): Promise<void> {
  const holder = await HolderConnection.connect(path).catch(() => undefined);
  if (holder) {
    await holder.close();
    return;
  }
  await rm(path, { force: true });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
