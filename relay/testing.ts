/**
 * Test helpers for the relay: an in-memory backend, a relay served on a free
 * loopback port, and scripted peers (a runner that speaks the runner side with
 * a real replay buffer, and clients) over real WebSockets; for several
 * instances, a stand-in for Fly's proxy and a look at the shared records.
 *
 * @module
 */
import type { RelayBackend, RunnerIdentity, ViewerReport } from "./backend.ts";
import { concatBytes } from "./bytes.ts";
import { Cluster } from "./cluster.ts";
import { resolveLimits } from "./limits.ts";
import { createRelay, type Relay, type RelayLimits, type RelayOptions } from "./mod.ts";
import {
  BINARY_SUBPROTOCOL,
  type BinaryFrame,
  type ClientLinkOptions,
  clientLinkQuery,
  decodeBinaryFrame,
  encode,
  encodeInputFrame,
  encodeOutputFrame,
  MetaLine,
} from "./protocol.ts";
import { type ClientClaims, signClientToken, signRunnerToken } from "./tokens.ts";

export { type ReplayProxy, startReplayProxy } from "./replay_proxy.ts";

/** The instance the shared records in `kv` say holds `runnerId` (alive, not draining), or null. */
export async function runnerInstance(kv: Deno.Kv, runnerId: string): Promise<string | null> {
  const observer = new Cluster({
    kv,
    instanceId: "observer",
    limits: resolveLimits(),
    log: () => {},
    now: Date.now,
  });
  return (await observer.locate(runnerId))?.instance ?? null;
}

/** The JWT secret the helpers sign with. */
export const TEST_SECRET: Uint8Array = new TextEncoder().encode("test-secret-".repeat(4));

/** Origin the test relay accepts. */
export const TEST_ORIGIN = "http://app.test:8080";

/**
 * Waits until `condition()` is truthy, polling every `intervalMs`; throws
 * after `timeoutMs`. The one polling helper of every part's tests.
 */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  what: string,
  timeoutMs = 15_000,
  intervalMs = 10,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    const value = await condition();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** The environment of a standalone relay (`deno task relay`) beside a running app. */
export function standaloneRelayEnv(
  app: {
    url: string;
    config: { jwtSecret: Uint8Array; relayInternalSecret: string; allowedOrigins: string[] };
  },
): Record<string, string> {
  return {
    HOST: "127.0.0.1",
    PORT: "0",
    DEVMODE_JWT_SECRET: new TextDecoder().decode(app.config.jwtSecret),
    RELAY_INTERNAL_SECRET: app.config.relayInternalSecret,
    DEVMODE_APP_URL: app.url,
    DEVMODE_ALLOWED_ORIGINS: app.config.allowedOrigins.join(","),
  };
}

/** A {@linkcode RelayBackend} held in memory, with revocation, sign-outs and presence visible to tests. */
export class MemoryBackend implements RelayBackend {
  /** jti → identity of current runner tokens. */
  readonly runners = new Map<string, RunnerIdentity>();
  /** Used client jtis. */
  readonly usedClientJtis = new Set<string>();
  /** runnerId → online, as last reported. */
  readonly presence = new Map<string, boolean>();
  /** Set to make verification reject (the app is down). */
  down = false;
  readonly #watchers = new Set<() => Promise<void>>();

  /** @param watch whether to offer `watchRevocations` (like the KV backend) or not (like HTTP). */
  constructor(watch = true) {
    if (!watch) this.watchRevocations = undefined;
  }

  /** Records a runner token's jti as current. */
  allow(jti: string, identity: RunnerIdentity): void {
    this.runners.set(jti, identity);
  }

  /** Revokes a jti and notifies watchers. */
  revoke(jti: string): void {
    this.runners.delete(jti);
    for (const watcher of this.#watchers) watcher();
  }

  verifyRunnerJti(jti: string): Promise<RunnerIdentity | null> {
    if (this.down) return Promise.reject(new Error("verify unavailable"));
    return Promise.resolve(this.runners.get(jti) ?? null);
  }

  /** While set, client jti checks record the jti and then wait for it (the store is slow). */
  clientJtiGate: Promise<void> | undefined;

  async consumeClientJti(jti: string): Promise<boolean> {
    if (this.usedClientJtis.has(jti)) return false;
    this.usedClientJtis.add(jti);
    await this.clientJtiGate;
    return true;
  }

  /** userId → when the user last signed out (ms since the epoch). */
  readonly signOuts = new Map<string, number>();

  /** Records a sign-out of `userId` at `at`; resolves once the watchers have acted on it. */
  async signOut(userId: string, at: number): Promise<void> {
    this.signOuts.set(userId, at);
    await Promise.all([...this.#watchers].map((watcher) => watcher()));
  }

  signedOutAt(userIds: readonly string[]): Promise<Map<string, number>> {
    if (this.down) return Promise.reject(new Error("sign-out check unavailable"));
    const found = new Map<string, number>();
    for (const userId of userIds) {
      const at = this.signOuts.get(userId);
      if (at !== undefined) found.set(userId, at);
    }
    return Promise.resolve(found);
  }

  /** Number of presence reports received. */
  presenceReports = 0;

  setPresence(runnerId: string, _userId: string, online: boolean): Promise<void> {
    this.presenceReports++;
    this.presence.set(runnerId, online);
    return Promise.resolve();
  }

  /** Shares that are live. */
  readonly shares = new Set<string>();
  /** Every viewer report received, in order. */
  readonly viewerReports: ViewerReport[] = [];

  /** Revokes a share; resolves once the watchers have acted on it. */
  async revokeShare(shareId: string): Promise<void> {
    this.shares.delete(shareId);
    await Promise.all([...this.#watchers].map((watcher) => watcher()));
  }

  liveShares(shareIds: readonly string[]): Promise<Set<string>> {
    if (this.down) return Promise.reject(new Error("share check unavailable"));
    return Promise.resolve(new Set(shareIds.filter((shareId) => this.shares.has(shareId))));
  }

  reportViewer(report: ViewerReport): Promise<void> {
    this.viewerReports.push(report);
    return Promise.resolve();
  }

  watchRevocations?: (onChange: () => Promise<void>, signal: AbortSignal) => void = (onChange, signal) => {
    this.#watchers.add(onChange);
    signal.addEventListener("abort", () => this.#watchers.delete(onChange), { once: true });
  };
}

/** A relay served on `127.0.0.1:0`. */
export interface TestRelay {
  /** `ws://127.0.0.1:PORT` */
  url: string;
  /** `http://127.0.0.1:PORT` */
  httpUrl: string;
  relay: Relay;
  backend: MemoryBackend;
  logs: Record<string, unknown>[];
  /** Every request the server received, in order. */
  requests: Request[];
  close(): Promise<void>;
}

/** Serves a relay with a {@linkcode MemoryBackend} on a free loopback port. */
export function startTestRelay(
  options: {
    backend?: MemoryBackend;
    limits?: Partial<RelayLimits>;
    now?: () => number;
    caps?: RelayOptions["caps"];
    metricsToken?: string;
    instanceId?: string;
    cluster?: RelayOptions["cluster"];
  } = {},
): TestRelay {
  const backend = options.backend ?? new MemoryBackend();
  const logs: Record<string, unknown>[] = [];
  const relay = createRelay({
    jwtSecret: TEST_SECRET,
    backend,
    allowedOrigins: [TEST_ORIGIN],
    limits: options.limits,
    now: options.now,
    caps: options.caps,
    metricsToken: options.metricsToken,
    instanceId: options.instanceId,
    cluster: options.cluster,
    log: (record) => logs.push(record),
  });
  const requests: Request[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req, info) => {
      requests.push(req);
      return relay.handle(req, info) ?? new Response("not found", { status: 404 });
    },
  );
  const httpUrl = `http://127.0.0.1:${server.addr.port}`;
  return {
    url: httpUrl.replace("http", "ws"),
    httpUrl,
    relay,
    backend,
    logs,
    requests,
    async close() {
      await relay.shutdown();
      await server.shutdown();
    },
  };
}

let counter = 0;
/** A fresh id usable as runnerId, sessionId or jti. */
export function uniqueId(prefix: string): string {
  return `${prefix}-${++counter}-${crypto.randomUUID().slice(0, 8)}`;
}

/** Mints a runner token and records its jti in `backend` (unless `register` is false). */
export async function runnerToken(
  backend: MemoryBackend | undefined,
  runnerId: string,
  userId: string,
  options: { jti?: string; secret?: Uint8Array; ttlSeconds?: number } = {},
): Promise<{ token: string; jti: string }> {
  const jti = options.jti ?? uniqueId("pair");
  backend?.allow(jti, { runnerId, userId });
  const token = await signRunnerToken(options.secret ?? TEST_SECRET, { runnerId, userId, jti }, {
    ttlSeconds: options.ttlSeconds,
  });
  return { token, jti };
}

/** Mints a client token. */
export function clientToken(
  claims: Omit<ClientClaims, "type" | "jti"> & { jti?: string },
  secret: Uint8Array = TEST_SECRET,
): Promise<string> {
  return signClientToken(secret, { ...claims, jti: claims.jti ?? uniqueId("client") });
}

/** How a WebSocket closed. */
export interface Closed {
  code: number;
  reason: string;
}

/** A WebSocket that records what it receives, for scripted tests. */
export class Peer {
  readonly socket: WebSocket;
  /** Every parsed frame received, in order. */
  readonly received: Record<string, unknown>[] = [];
  /** Every binary frame received, decoded, in order. */
  readonly frames: BinaryFrame[] = [];
  /** Resolves when the socket opened (rejects on a failed upgrade). */
  readonly opened: Promise<void>;
  /** Resolves when the socket closed. */
  readonly closed: Promise<Closed>;
  /** The upgrade error message, if the upgrade failed. */
  error: string | undefined;
  #closedValue: Closed | undefined;

  /** With `answerClosing` false the peer ignores `closing`, as a client from before it would. */
  constructor(url: string, headers?: Record<string, string>, protocols?: string[], answerClosing = true) {
    this.socket = headers || protocols
      ? new WebSocket(url, { headers, protocols } as unknown as string[])
      : new WebSocket(url);
    this.socket.binaryType = "arraybuffer";
    this.opened = new Promise((resolve, reject) => {
      this.socket.addEventListener("open", () => resolve(), { once: true });
      this.socket.addEventListener("error", (event) => {
        this.error = (event as ErrorEvent).message;
        reject(new Error(this.error));
      }, { once: true });
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.socket.addEventListener("close", (event) => {
        this.#closedValue = { code: event.code, reason: event.reason };
        resolve(this.#closedValue);
      }, { once: true });
    });
    this.socket.addEventListener("message", (event) => {
      if (typeof event.data === "string") {
        const message = JSON.parse(event.data);
        this.received.push(message);
        // As the SPA does: the relay announces its close to `ack=1` clients, which close first.
        if (message.type === "closing" && answerClosing) this.socket.close(message.code, message.reason);
        return;
      }
      const decoded = decodeBinaryFrame(event.data);
      if (!decoded.ok) throw new Error(decoded.error);
      this.frames.push(decoded.value);
    });
  }

  /** Whether the socket has closed. */
  get isClosed(): boolean {
    return this.#closedValue !== undefined;
  }

  /** Sends a message (objects are JSON-encoded, bytes go as a binary frame). */
  send(message: unknown): void {
    if (message instanceof Uint8Array) return this.socket.send(message as Uint8Array<ArrayBuffer>);
    this.socket.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /** Waits for a received frame matching `predicate`, searching from the start. */
  next(predicate: (message: Record<string, unknown>) => boolean, what = "a message"): Promise<
    Record<string, unknown>
  > {
    return waitFor(() => this.received.find(predicate), what);
  }

  /** Waits for a meta frame with `data`. */
  meta(data: string): Promise<Record<string, unknown>> {
    return this.next((m) => m.type === "meta" && m.data === data, `meta ${data}`);
  }

  /** Closes (if open) and waits for the close to complete. */
  async close(): Promise<Closed> {
    if (this.socket.readyState <= WebSocket.OPEN) this.socket.close();
    return await this.closed;
  }
}

/** One session as the scripted runner keeps it: the whole output stream. */
interface ScriptedSession {
  chunks: { offset: number; data: Uint8Array }[];
  end: number;
  stdin: string[];
}

const testEncoder = new TextEncoder();
const testDecoder = new TextDecoder();

/**
 * A runner speaking the runner side of the protocol: on `attach` it sends the
 * session and cwd meta lines, replays its output from the requested offset
 * targeted at the client, then `attached`. `write` produces broadcast output.
 * With `binary` it takes the binary frames a `welcome` offers (output and
 * stdin as binary frames); without, it is a JSON runner from before them.
 */
export class ScriptedRunner extends Peer {
  readonly sessions = new Map<string, ScriptedSession>();
  /** The client ids named by the binary input frames received, in order. */
  readonly inputClientIds: string[] = [];
  /** Set to false to answer nothing on attach (tests drive it by hand). */
  autoAttach = true;
  readonly #binary: boolean;

  constructor(relayUrl: string, token: string, via: "header" | "query" = "header", binary = false) {
    super(
      via === "query" ? `${relayUrl}/runner?token=${encodeURIComponent(token)}` : `${relayUrl}/runner`,
      via === "header" ? { authorization: `Bearer ${token}` } : undefined,
    );
    this.#binary = binary;
    this.socket.addEventListener("message", (event) => {
      if (typeof event.data !== "string") {
        const decoded = decodeBinaryFrame(event.data);
        if (!decoded.ok || decoded.value.type !== "input") return;
        this.#session(decoded.value.sessionId).stdin.push(testDecoder.decode(decoded.value.data));
        this.inputClientIds.push(decoded.value.clientId ?? "");
        return;
      }
      const message = JSON.parse(event.data);
      if (message.type === "welcome" && message.binary === true && this.#binary) {
        this.send({ type: "binary" });
      }
      if (message.type === "attach" && this.autoAttach) this.#attach(message);
      if (message.type === "stdin") this.#session(message.sessionId).stdin.push(message.data);
    });
  }

  /** Takes over the sessions of an earlier connection of the same runner (a reconnect). */
  adopt(previous: ScriptedRunner): void {
    for (const [id, session] of previous.sessions) this.sessions.set(id, session);
  }

  /** Waits for `welcome`. */
  welcome(): Promise<Record<string, unknown>> {
    return this.next((m) => m.type === "welcome", "welcome");
  }

  /** Appends output (text, or bytes sent as they are) to a session and broadcasts it. */
  write(sessionId: string, data: string | Uint8Array): void {
    const session = this.#session(sessionId);
    const offset = session.end;
    const bytes = typeof data === "string" ? testEncoder.encode(data) : data;
    session.chunks.push({ offset, data: bytes });
    session.end += bytes.byteLength;
    this.#output(sessionId, undefined, offset, bytes);
  }

  /** Ends a session like a shell exit. */
  exit(sessionId: string, code: number): void {
    this.send(encode({ type: "meta", sessionId, data: MetaLine.exit(code) }));
    this.send(encode({ type: "end", sessionId, exitCode: code }));
  }

  /** Everything typed into `sessionId` so far. */
  stdin(sessionId: string): string {
    return this.sessions.get(sessionId)?.stdin.join("") ?? "";
  }

  #output(sessionId: string, clientId: string | undefined, offset: number, data: Uint8Array): void {
    if (this.#binary) {
      this.send(encodeOutputFrame({ sessionId, clientId, offset, replay: clientId !== undefined, data }));
    } else {
      this.send(encode({ type: "stdout", sessionId, clientId, data: testDecoder.decode(data), offset }));
    }
  }

  #session(sessionId: string): ScriptedSession {
    let session = this.sessions.get(sessionId);
    if (!session) {
      session = { chunks: [], end: 0, stdin: [] };
      this.sessions.set(sessionId, session);
    }
    return session;
  }

  #attach(message: { sessionId: string; clientId: string; offset?: number }): void {
    const { sessionId, clientId } = message;
    const session = this.#session(sessionId);
    this.send(encode({ type: "meta", sessionId, clientId, data: MetaLine.session(sessionId) }));
    this.send(encode({ type: "meta", sessionId, clientId, data: MetaLine.cwd("/home/test") }));
    const from = message.offset ?? 0;
    for (const chunk of session.chunks) {
      if (chunk.offset + chunk.data.byteLength <= from) continue;
      this.#output(sessionId, clientId, chunk.offset, chunk.data);
    }
    this.send(encode({ type: "attached", sessionId, clientId, offset: session.end }));
  }
}

/** A browser-like client on `/client`; with `binary` it offers the `coda.v2` subprotocol like the SPA. */
export class ScriptedClient extends Peer {
  constructor(
    relayUrl: string,
    token: string,
    options: ClientLinkOptions & {
      origin?: string;
      binary?: boolean;
      headers?: Record<string, string>;
      answerClosing?: boolean;
    } = {},
  ) {
    const { origin, binary, headers, answerClosing, ...link } = options;
    const sent = { ...headers, ...(origin ? { origin } : {}) };
    super(
      `${relayUrl}/client?${clientLinkQuery(token, link)}`,
      Object.keys(sent).length > 0 ? sent : undefined,
      binary ? [BINARY_SUBPROTOCOL] : undefined,
      answerClosing,
    );
  }

  /** The output received so far, concatenated: JSON `stdout` data, or the decoded bytes of binary frames. */
  output(): string {
    if (this.frames.length > 0) return testDecoder.decode(this.outputBytes());
    return this.received.filter((m) => m.type === "stdout").map((m) => m.data as string).join("");
  }

  /** The output frames' payloads so far, concatenated. */
  outputBytes(): Uint8Array {
    return concatBytes(this.frames.filter((frame) => frame.type === "output").map((frame) => frame.data));
  }

  /** Types `text` as a binary input frame. */
  sendInput(sessionId: string, text: string): void {
    this.send(encodeInputFrame({ sessionId, data: testEncoder.encode(text) }));
  }

  /** Waits until the output contains `text`. */
  async waitOutput(text: string): Promise<void> {
    await waitFor(() => this.output().includes(text), `output ${JSON.stringify(text)}`);
  }
}

/** Sends a WebSocket upgrade request by hand; resolves the connection and the answer's head. */
async function sendUpgrade(
  url: string,
  headers: Record<string, string>,
): Promise<{ conn: Deno.TcpConn; head: string; rest: Uint8Array }> {
  const target = new URL(url);
  const conn = await Deno.connect({ hostname: target.hostname, port: Number(target.port) });
  const key = crypto.getRandomValues(new Uint8Array(16)).toBase64();
  const request = [
    `GET ${target.pathname}${target.search} HTTP/1.1`,
    `Host: ${target.host}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${key}`,
    "Sec-WebSocket-Version: 13",
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
    "",
    "",
  ].join("\r\n");
  await conn.write(new TextEncoder().encode(request));
  const buffer = new Uint8Array(64 * 1024);
  let received = new Uint8Array(0);
  while (true) {
    const end = new TextDecoder().decode(received).indexOf("\r\n\r\n");
    if (end >= 0) {
      return {
        conn,
        head: new TextDecoder().decode(received.subarray(0, end)),
        rest: received.subarray(end + 4),
      };
    }
    const n = await conn.read(buffer);
    if (n === null) throw new Error("connection closed during the upgrade");
    received = new Uint8Array([...received, ...buffer.subarray(0, n)]);
  }
}

/**
 * Opens a WebSocket by hand over TCP and then never reads or answers pings:
 * a peer that is slow or dead. Resolves once the upgrade succeeded.
 */
export async function rawWebSocket(url: string, headers: Record<string, string> = {}): Promise<Deno.TcpConn> {
  const { conn, head } = await sendUpgrade(url, headers);
  if (!head.startsWith("HTTP/1.1 101")) {
    conn.close();
    throw new Error(`upgrade refused: ${head.split("\r\n")[0]}`);
  }
  return conn;
}

/** The HTTP answer to an upgrade request the server refused. */
export interface RefusedUpgrade {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  /** The parsed JSON body. */
  body: { error?: string };
}

/** Sends an upgrade request and resolves the server's refusal; throws if it upgraded instead. */
export async function refusedUpgrade(
  url: string,
  headers: Record<string, string> = {},
): Promise<RefusedUpgrade> {
  const { conn, head, rest } = await sendUpgrade(url, headers);
  try {
    const [statusLine, ...lines] = head.split("\r\n");
    const status = Number(statusLine.split(" ")[1]);
    if (status === 101) throw new Error(`${url} was upgraded`);
    const fields: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(":");
      fields[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(fields["content-length"] ?? 0);
    let body = rest;
    const buffer = new Uint8Array(64 * 1024);
    while (body.length < length) {
      const n = await conn.read(buffer);
      if (n === null) break;
      body = new Uint8Array([...body, ...buffer.subarray(0, n)]);
    }
    return { status, headers: fields, body: JSON.parse(new TextDecoder().decode(body.subarray(0, length))) };
  } finally {
    conn.close();
  }
}

/** One frame a server sent over a raw connection (unmasked, RFC 6455). */
export interface ServerFrame {
  opcode: number;
  payload: Uint8Array;
}

/**
 * Reads server frames from a raw connection `chunkBytes` at a time, pausing
 * `paceMs` between reads (a client slower than the link), and hands each data
 * frame to `onFrame` until it returns true, the server's close frame comes, or
 * the connection ends. Resolves the close frame's code and reason, `null` when
 * there was none (stopped, or the connection ended or reset without one).
 */
export async function readServerFrames(
  conn: Deno.Conn,
  onFrame: (frame: ServerFrame) => boolean | void,
  chunkBytes = 64 * 1024,
  paceMs = 0,
): Promise<Closed | null> {
  const buffer = new Uint8Array(chunkBytes);
  let pending = new Uint8Array(0);
  while (true) {
    let n: number | null;
    try {
      n = await conn.read(buffer);
    } catch {
      n = null;
    }
    if (n === null) return null;
    pending = concatBytes([pending, buffer.subarray(0, n)]);
    let at = 0;
    while (pending.length - at >= 2) {
      const opcode = pending[at] & 0x0f;
      const short = pending[at + 1] & 0x7f;
      const header = short === 126 ? 4 : short === 127 ? 10 : 2;
      if (pending.length - at < header) break;
      const view = new DataView(pending.buffer, pending.byteOffset + at);
      const length = short === 126 ? view.getUint16(2) : short === 127 ? Number(view.getBigUint64(2)) : short;
      if (pending.length - at < header + length) break;
      const payload = pending.subarray(at + header, at + header + length);
      if (opcode === 0x8) {
        const code = payload.length >= 2 ? (payload[0] << 8) | payload[1] : 1005;
        return { code, reason: testDecoder.decode(payload.subarray(2)) };
      }
      if ((opcode === 0x1 || opcode === 0x2 || opcode === 0x0) && onFrame({ opcode, payload }) === true) {
        return null;
      }
      at += header + length;
    }
    pending = pending.slice(at);
    if (paceMs > 0) await new Promise((resolve) => setTimeout(resolve, paceMs));
  }
}

/** What a raw client read before the server's close frame, or before the connection went without one. */
export interface ReadToClose {
  /** The close frame's code and reason; `null` when the connection ended or reset without one. */
  close: Closed | null;
  /** Payload bytes of the data frames before it. */
  dataBytes: number;
}

/**
 * Reads server frames from a raw connection `chunkBytes` at a time, pausing
 * `paceMs` between reads, until the server's close frame or the end of the
 * connection ({@linkcode readServerFrames}).
 */
export async function readToClose(conn: Deno.Conn, chunkBytes: number, paceMs: number): Promise<ReadToClose> {
  let dataBytes = 0;
  const close = await readServerFrames(
    conn,
    (frame) => void (dataBytes += frame.payload.length),
    chunkBytes,
    paceMs,
  );
  return { close, dataBytes };
}

/** Reads `conn` until the peer closes it; resolves with the bytes read. */
export async function drainUntilClosed(conn: Deno.Conn): Promise<number> {
  const buffer = new Uint8Array(64 * 1024);
  let total = 0;
  try {
    while (true) {
      const n = await conn.read(buffer);
      if (n === null) return total;
      total += n;
    }
  } catch {
    return total;
  }
}

/** The variables Deno itself needs to find its caches. */
function inheritedEnv(): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const name of ["HOME", "DENO_DIR", "XDG_CACHE_HOME", "PATH"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) kept[name] = value;
  }
  return kept;
}

/** A `deno task` running as its own process. */
export interface SpawnedTask {
  child: Deno.ChildProcess;
  /** Everything it printed so far (stdout and stderr interleaved). */
  output(): string;
  /** Waits (up to 30 s) for a printed line matching `match` and returns it. */
  line(match: (line: string) => boolean, what: string): Promise<string>;
  /** The process's resident set size in bytes (Linux `/proc`). */
  rss(): Promise<number>;
  /** Its soft and hard `RLIMIT_NOFILE` (Linux `/proc`). */
  nofile(): Promise<{ soft: number; hard: number }>;
  /** Its open file descriptors (Linux `/proc`). */
  openFiles(): Promise<number>;
  /** SIGKILLs it if still running and waits for the exit. */
  kill(): Promise<void>;
}

/**
 * Spawns `deno task <name>` exactly as deno.json defines it (flags included),
 * in a clean environment plus `env`. `nofile` runs it under `ulimit -S -n`
 * (and `-H -n` when `hard` is given), as a small machine or container would.
 */
export async function spawnTask(
  name: "start" | "relay",
  env: Record<string, string>,
  options: { nofile?: { soft: number; hard?: number } } = {},
): Promise<SpawnedTask> {
  const root = new URL("../", import.meta.url);
  const tasks = JSON.parse(await Deno.readTextFile(new URL("deno.json", root))).tasks as Record<
    string,
    string | { command: string }
  >;
  const task = tasks[name];
  // Only the command runs: a dependency such as `start`'s `build` is the caller's business (CI builds first).
  const [command, ...args] = (typeof task === "string" ? task : task.command).split(/\s+/);
  if (command !== "deno") throw new Error(`task ${name} does not start with deno`);
  const limits = options.nofile
    ? [
      `ulimit -S -n ${options.nofile.soft}`,
      ...(options.nofile.hard === undefined ? [] : [`ulimit -H -n ${options.nofile.hard}`]),
    ]
    : [];
  const child = new Deno.Command("/bin/sh", {
    args: ["-c", [...limits, 'exec "$@"'].join(" && "), "sh", Deno.execPath(), ...args],
    cwd: root.pathname,
    env: { ...inheritedEnv(), NO_COLOR: "1", ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const waiters = new Set<() => void>();
  const collect = async (stream: ReadableStream<Uint8Array<ArrayBuffer>>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      for (const wake of waiters) wake();
    }
  };
  const collected = Promise.all([collect(child.stdout), collect(child.stderr)]);
  let exited = false;
  const status = child.status.then((value) => {
    exited = true;
    for (const wake of waiters) wake();
    return value;
  });
  const proc = (file: string) => Deno.readTextFile(`/proc/${child.pid}/${file}`);
  return {
    child,
    output: () => text,
    async line(match, what) {
      const deadline = Date.now() + 30_000;
      while (true) {
        const found = text.split("\n").find(match);
        if (found) return found;
        if (exited) throw new Error(`task ${name} exited before ${what}; output:\n${text}`);
        if (Date.now() > deadline) {
          throw new Error(`task ${name} printed no ${what} in 30 s; output:\n${text}`);
        }
        await new Promise<void>((resolve) => {
          const wake = () => {
            waiters.delete(wake);
            clearTimeout(timer);
            resolve();
          };
          const timer = setTimeout(wake, deadline - Date.now());
          waiters.add(wake);
        });
      }
    },
    async rss() {
      const match = /^VmRSS:\s+(\d+) kB$/m.exec(await proc("status"));
      if (!match) throw new Error("no VmRSS");
      return Number(match[1]) * 1024;
    },
    async nofile() {
      const match = /^Max open files\s+(\d+)\s+(\d+)/m.exec(await proc("limits"));
      if (!match) throw new Error("no Max open files");
      return { soft: Number(match[1]), hard: Number(match[2]) };
    },
    async openFiles() {
      let count = 0;
      for await (const _ of Deno.readDir(`/proc/${child.pid}/fd`)) count++;
      return count;
    },
    async kill() {
      if (!exited) {
        try {
          child.kill("SIGKILL");
        } catch {
          // Exited meanwhile.
        }
      }
      await status;
      await collected;
    },
  };
}

/** A JWT secret the relay does not know: tokens signed with it are forged. */
export const OTHER_SECRET: Uint8Array = new TextEncoder().encode("other-secret-".repeat(4));

/** What a {@linkcode relayTest} body gets: a fresh relay and helpers whose peers are closed afterwards. */
export interface RelayHarness {
  relay: TestRelay;
  backend: MemoryBackend;
  /** Opens a scripted runner with a freshly minted, registered token (speaking binary frames with `binary`). */
  runner(
    runnerId: string,
    userId: string,
    via?: "header" | "query",
    binary?: boolean,
  ): Promise<ScriptedRunner>;
  /** Registers `peer` to be closed when the test ends. */
  track<P extends Peer>(peer: P): P;
  /** The relay's `/metrics` text. */
  metrics(): Promise<string>;
}

/** Registers a `Deno.test` that runs `fn` against a fresh relay and closes every peer and the relay afterwards. */
export function relayTest(
  name: string,
  fn: (h: RelayHarness) => Promise<void>,
  options: { limits?: Partial<RelayLimits>; backend?: MemoryBackend } = {},
): void {
  Deno.test(name, async () => {
    const relay = startTestRelay({ limits: options.limits, backend: options.backend });
    const peers: Peer[] = [];
    const track = <P extends Peer>(peer: P): P => {
      peers.push(peer);
      return peer;
    };
    const h: RelayHarness = {
      relay,
      backend: relay.backend,
      async runner(runnerId, userId, via = "header", binary = false) {
        const { token } = await runnerToken(relay.backend, runnerId, userId);
        return track(new ScriptedRunner(relay.url, token, via, binary));
      },
      track,
      async metrics() {
        return await (await fetch(`${relay.httpUrl}/metrics`)).text();
      },
    };
    try {
      await fn(h);
    } finally {
      await Promise.all(peers.map((peer) => peer.close()));
      await relay.close();
    }
  });
}

/** Opens a scripted client with a freshly signed token, closed when the test ends. */
export async function connectClient(
  h: RelayHarness,
  claims: Omit<ClientClaims, "type" | "jti">,
  options: ConstructorParameters<typeof ScriptedClient>[2] = {},
): Promise<ScriptedClient> {
  const token = await clientToken(claims);
  return h.track(new ScriptedClient(h.relay.url, token, options));
}
