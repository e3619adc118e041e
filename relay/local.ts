/**
 * The relay for one runner in the same process: what `coda-runner serve`
 * mounts, so the fan-out to clients (targeting, replay then live, offsets,
 * acks, 4413, binary or JSON frames, pings) is the relay's own broker and
 * client link, not a copy. Two things differ from the relay: clients prove
 * themselves with the server's access token instead of a client token, and
 * the runner is wired in directly instead of connecting to `/runner`.
 *
 * ```ts ignore
 * const relay = createLocalRelay({ accessToken, allowedOrigins, toRunner: (m) => manager.handle(m) });
 * const manager = new SessionManager({ sink: relay.runnerSink, ... });
 * Deno.serve((req) => relay.handle(req));
 * ```
 *
 * @module
 */
import type { RelayBackend } from "./backend.ts";
import { Broker } from "./broker.ts";
import { openClientLink } from "./client_link.ts";
import { checkUpgrade, closeEveryone, jsonError, type RelayContext } from "./context.ts";
import { type RelayLimits, resolveLimits } from "./limits.ts";
import type { RelayLog } from "./log.ts";
import { RelayMetrics } from "./metrics.ts";
import { RunnerPeer } from "./peers.ts";
import {
  decodeBinaryFrame,
  decodeRelayToRunner,
  encodeOutputFrame,
  fileMessageFrame,
  MAX_IDEA_ID_LENGTH,
  type OutputFrame,
  parseClientLinkOptions,
  type RelayToRunner,
  type RunnerToRelay,
  SESSION_ID_PATTERN,
} from "./protocol.ts";
import { secretsEqual } from "./secrets.ts";
import { utf8Length } from "./utf8.ts";

/** The user and runner every local client belongs to: there is one of each. */
export const LOCAL_USER_ID = "local";
/** See {@linkcode LOCAL_USER_ID}. */
export const LOCAL_RUNNER_ID = "local";

/** What the runner sends the broker: the runner side of a `/runner` link, without the socket. */
export interface LocalRunnerSink {
  /** A control or meta message (`meta`, `attached`, `end`, `error`, …). */
  send(message: RunnerToRelay): void;
  /** Output; `data` is not touched afterwards. */
  sendOutput(output: Omit<OutputFrame, "type">): void;
  /** Always 0: nothing queues between the runner and an in-process broker. */
  bufferedAmount(): number;
}

/** Options of {@linkcode createLocalRelay}. */
export interface LocalRelayOptions {
  /** The secret every client presents as `?token=`. */
  accessToken: string;
  /** Exact browser origins allowed; other `Origin` headers get HTTP 403. */
  allowedOrigins: readonly string[];
  /** Receives what the broker sends the runner (`attach`, `stdin`, `resize`, `ack`, `detach`, …). */
  toRunner(message: RelayToRunner): void;
  limits?: Partial<RelayLimits>;
  log: RelayLog;
}

/** A relay for one in-process runner. */
export interface LocalRelay {
  /** Serves `/client?token=<access token>[&session=…][&idea=…]`; anything else is answered 404. */
  handle(req: Request): Response | Promise<Response>;
  /** Hand it to the session manager as its sink. */
  runnerSink: LocalRunnerSink;
  /** Closes every client with 1012 and waits (a few seconds at most) for them to go. */
  shutdown(): Promise<void>;
}

/**
 * The runner's end of the broker: to the broker it is a runner's socket, opened for good, whose
 * frames (already decoded here) go straight to `toRunner`. Its stdin arrives as JSON text (the
 * runner never sends `binary`), so a character split across a client's binary frames is joined by
 * the broker's stream decoder.
 */
class InProcessRunnerSocket extends EventTarget {
  readonly readyState: number = WebSocket.OPEN;
  readonly bufferedAmount = 0;
  readonly #toRunner: (message: RelayToRunner) => void;
  readonly #log: RelayLog;

  constructor(toRunner: (message: RelayToRunner) => void, log: RelayLog) {
    super();
    this.#toRunner = toRunner;
    this.#log = log;
  }

  send(frame: string | Uint8Array): void {
    if (frame instanceof Uint8Array) {
      // The broker sends this runner only one kind of binary frame: pieces of uploads, naming their client.
      const file = decodeBinaryFrame(frame);
      if (!file.ok || file.value.type !== "upload" || file.value.clientId === undefined) {
        this.#log({
          event: "local_runner_frame_refused",
          error: file.ok ? "not an upload frame" : file.error,
        });
        return;
      }
      const { sessionId, clientId, transferId, offset, data } = file.value;
      this.#toRunner({ type: "upload-data", sessionId, clientId, transferId, offset, data });
      return;
    }
    const decoded = decodeRelayToRunner(frame);
    if (!decoded.ok) {
      this.#log({ event: "local_runner_frame_refused", error: decoded.error });
      return;
    }
    // The broker's greetings and answers are about a socket this runner does not have.
    if (decoded.value.type === "welcome" || decoded.value.type === "pong") return;
    this.#toRunner(decoded.value);
  }

  close(): void {}
}

/** The app-side records a local relay does without: nothing is revoked, reused or reported. */
const LOCAL_BACKEND: RelayBackend = {
  verifyRunnerJti: () => Promise.resolve(null),
  consumeClientJti: () => Promise.resolve(true),
  signedOutAt: () => Promise.resolve(new Map()),
  setPresence: () => Promise.resolve(),
};

/** Creates the relay of `coda-runner serve`. */
export function createLocalRelay(options: LocalRelayOptions): LocalRelay {
  const limits = resolveLimits(options.limits);
  const metrics = new RelayMetrics();
  const broker = new Broker({ limits, metrics, log: options.log, backend: LOCAL_BACKEND });
  const ctx: RelayContext = {
    jwtSecret: new Uint8Array(0),
    backend: LOCAL_BACKEND,
    allowedOrigins: [...options.allowedOrigins],
    now: Date.now,
    limits,
    metrics,
    log: options.log,
    broker,
    sockets: new Set(),
  };
  const socket = new InProcessRunnerSocket(options.toRunner, options.log);
  const runner = new RunnerPeer(
    broker.nextSerial(),
    LOCAL_RUNNER_ID,
    LOCAL_USER_ID,
    "local",
    Number.POSITIVE_INFINITY,
    socket as unknown as WebSocket,
  );
  // The runner is this process's own session manager, which takes file transfers.
  runner.transfers = true;
  broker.addRunner(runner);
  let shuttingDown: Promise<void> | undefined;

  return {
    handle(req) {
      const url = new URL(req.url);
      if (url.pathname !== "/client") return jsonError(404, "not found; connect a WebSocket to /client");
      const origin = req.headers.get("origin");
      if (origin !== null && !ctx.allowedOrigins.includes(origin)) {
        options.log({ event: "client_refused", reason: "origin", origin });
        return jsonError(403, "origin not allowed");
      }
      const token = url.searchParams.get("token");
      if (!token || !secretsEqual(token, options.accessToken)) {
        options.log({ event: "client_refused", reason: "token" });
        return jsonError(401, "missing or wrong access token");
      }
      if (shuttingDown) return jsonError(503, "runner stopping");
      const refused = checkUpgrade(ctx, req);
      if (refused) return refused;
      const linkOptions = parseClientLinkOptions(url.searchParams);
      if (!linkOptions.ok) return jsonError(400, linkOptions.error);
      const requested = url.searchParams.get("session");
      if (requested !== null && !SESSION_ID_PATTERN.test(requested)) {
        return jsonError(400, "session must be 8-64 characters of [A-Za-z0-9_-]");
      }
      const ideaId = url.searchParams.get("idea") ?? undefined;
      if (ideaId !== undefined && ideaId.length > MAX_IDEA_ID_LENGTH) {
        return jsonError(400, `idea must be at most ${MAX_IDEA_ID_LENGTH} characters`);
      }
      if (broker.clientCount(LOCAL_USER_ID) >= limits.maxClientsPerUser) {
        return jsonError(429, "too many connections");
      }
      const claims = {
        type: "client" as const,
        userId: LOCAL_USER_ID,
        sessionId: requested ?? crypto.randomUUID().replaceAll("-", ""),
        runnerId: LOCAL_RUNNER_ID,
        ideaId,
        jti: crypto.randomUUID(),
      };
      return openClientLink(ctx, req, claims, linkOptions.value, () => {});
    },
    runnerSink: {
      send(message) {
        if (message.type === "download-data") {
          const frame = fileMessageFrame(message);
          broker.fromRunnerFile(runner, frame, message.data.byteLength);
          return;
        }
        const size = message.type === "meta" || message.type === "stdout" ? utf8Length(message.data) : 0;
        broker.fromRunner(runner, message, size);
      },
      sendOutput(output) {
        const frame = encodeOutputFrame(output);
        broker.fromRunnerOutput(runner, { type: "output", ...output }, frame);
      },
      bufferedAmount: () => 0,
    },
    shutdown() {
      shuttingDown ??= (async () => {
        await closeEveryone(ctx, "runner stopping");
      })();
      return shuttingDown;
    },
  };
}
