/// <reference lib="deno.ns" />
/// <reference lib="deno.unstable" />
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  BINARY_SUBPROTOCOL,
  CloseCode,
  CloseReason,
  decodeBinaryFrame,
  encode,
  encodeOutputFrame,
  MetaLine,
  parseClientLinkOptions,
} from "@coda/relay/protocol";
import {
  clientToken,
  runnerToken,
  ScriptedRunner,
  startTestRelay,
  uniqueId,
  waitFor,
} from "@coda/relay/testing";
import {
  type ConnectionState,
  type ConnectionStatus,
  type HeartbeatOptions,
  type LinkHealth,
  TerminalConnection,
  type TerminalSink,
  TicketError,
  visibleInput,
} from "./connection.ts";
import { startServe } from "@coda/runner/serve";
import { silentLogger, startInProcessRunner, testShellEnv } from "@coda/runner/testing";

/** One client connection the fake relay accepted. */
interface Peer {
  socket: WebSocket;
  params: URLSearchParams;
  /** The subprotocols the client offered (`Sec-WebSocket-Protocol`). */
  offered: string | null;
  /** JSON messages as sent; binary frames as `{ frame, sessionId, data }` with `data` decoded as UTF-8. */
  received: Record<string, unknown>[];
  closed: Promise<void>;
}

/**
 * A real WebSocket server on 127.0.0.1:0 that speaks the relay's client side, driven by the test.
 * `answerPings: false` plays a server from before the heartbeat: pings are recorded, never answered.
 * `binary` takes the binary subprotocol when offered; without it the server is one from before binary frames.
 */
function startFakeRelay(answerPings = true, binary = false) {
  const peers: Peer[] = [];
  const waiters: (() => void)[] = [];
  /** Tokens whose upgrade is refused with 429, as the relay refuses a user over the cap. */
  const refuse = new Set<string>();
  /**
   * Set to fail every upgrade that offers a subprotocol: what Chrome makes of a relay from before
   * binary frames, which answers without one (Deno's own client would accept that answer).
   */
  const offers = { refused: false };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    if (refuse.has(new URL(req.url).searchParams.get("token") ?? "")) {
      return Response.json({ error: "too many connections for this user" }, { status: 429 });
    }
    if (offers.refused && req.headers.has("sec-websocket-protocol")) {
      return Response.json({ error: "handshake failed" }, { status: 400 });
    }
    const offered = req.headers.get("sec-websocket-protocol");
    const { socket, response } = Deno.upgradeWebSocket(
      req,
      binary && offered?.split(/, */).includes(BINARY_SUBPROTOCOL) ? { protocol: BINARY_SUBPROTOCOL } : {},
    );
    socket.binaryType = "arraybuffer";
    const peer: Peer = {
      socket,
      params: new URL(req.url).searchParams,
      offered,
      received: [],
      closed: new Promise((resolve) => socket.addEventListener("close", () => resolve())),
    };
    socket.onmessage = (event) => {
      if (event.data instanceof ArrayBuffer) {
        const decoded = decodeBinaryFrame(event.data);
        assert(decoded.ok, decoded.ok ? "" : decoded.error);
        const { type, sessionId, data } = decoded.value;
        peer.received.push({ frame: type, sessionId, data: new TextDecoder().decode(data) });
        return;
      }
      const message = JSON.parse(event.data);
      // Answered and not recorded, as the relay answers and never forwards them.
      if (message.type === "ping" && answerPings) socket.send(JSON.stringify({ type: "pong", t: message.t }));
      else peer.received.push(message);
    };
    socket.onopen = () => {
      peers.push(peer);
      waiters.splice(0).forEach((wake) => wake());
    };
    return response;
  });
  const url = `ws://127.0.0.1:${server.addr.port}/client`;
  return {
    url,
    peers,
    refuse,
    offers,
    /** Waits for the `n`th (1-based) connection. */
    async peer(n: number): Promise<Peer> {
      await waitFor(() => peers.length >= n, `connection #${n}`);
      return peers[n - 1];
    },
    async close() {
      for (const peer of peers) {
        if (peer.socket.readyState === WebSocket.OPEN) peer.socket.close(1001, "test over");
      }
      await Promise.all(peers.map((peer) => peer.closed));
      await server.shutdown();
    },
  };
}

/** A terminal that records what it was given; the test decides when writes count as rendered. */
class RecordingSink implements TerminalSink {
  text = "";
  /** Every write as given: bytes from a binary link, text from a JSON one, and its replay mark. */
  writes: { data: string | Uint8Array; replay: boolean | undefined }[] = [];
  notices: string[] = [];
  resets = 0;
  pending: (() => void)[] = [];
  autoRender = true;
  // As xterm.js does, bytes are decoded as one stream: a character may be split across writes.
  #decoder = new TextDecoder();
  write(data: string | Uint8Array, rendered: () => void, replay: boolean | undefined): void {
    this.writes.push({ data, replay });
    this.text += typeof data === "string" ? data : this.#decoder.decode(data, { stream: true });
    if (this.autoRender) queueMicrotask(rendered);
    else this.pending.push(rendered);
  }
  /** The bytes of every binary write, concatenated. */
  bytes(): Uint8Array {
    const chunks = this.writes.map((w) => w.data).filter((d) => d instanceof Uint8Array);
    const all = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
    chunks.reduce((at, c) => (all.set(c, at), at + c.byteLength), 0);
    return all;
  }
  reset(): void {
    this.text = "";
    this.resets++;
  }
  notice(text: string): void {
    this.notices.push(text);
  }
  size() {
    return { cols: 100, rows: 30 };
  }
  renderAll(): void {
    this.pending.splice(0).forEach((rendered) => rendered());
  }
}

const SESSION = "sess_0123456789";

/** The test connections' backoff: short, and its largest delay bounds every retry they schedule. */
const BACKOFF = { baseMs: 20, maxMs: 100 };

/**
 * Returns once every retry the test connections scheduled so far has started: a control connection
 * dropped now schedules its own retry with the largest delay of {@linkcode BACKOFF}, and timers fire in
 * deadline order, so its reconnect is the event that comes after any retry that must not happen.
 */
async function afterEveryScheduledRetry(): Promise<void> {
  const relay = startFakeRelay();
  const control = new TerminalConnection({
    tickets: () => Promise.resolve({ url: `${relay.url}?token=control` }),
    sink: new RecordingSink(),
    onEvent: () => {},
    backoff: { baseMs: BACKOFF.maxMs, maxMs: BACKOFF.maxMs, jitter: 0 },
  });
  try {
    control.start();
    (await relay.peer(1)).socket.close(1011, "control drop");
    await relay.peer(2);
  } finally {
    control.dispose();
    await relay.close();
  }
}

function send(peer: Peer, message: Record<string, unknown>) {
  peer.socket.send(JSON.stringify({ sessionId: SESSION, ...message }));
}
const meta = (peer: Peer, data: string) => send(peer, { type: "meta", data });
const stdout = (peer: Peer, data: string, offset: number) => send(peer, { type: "stdout", data, offset });
/** Sends `stream[from, to)` as a binary output frame. */
const output = (peer: Peer, stream: Uint8Array, from: number, to: number, replay = false) =>
  peer.socket.send(
    encodeOutputFrame({
      sessionId: SESSION,
      offset: from,
      replay,
      data: stream.subarray(from, to),
    }) as Uint8Array<
      ArrayBuffer
    >,
  );
/** Whether byte `at` of `bytes` continues a character, so a frame cut there splits it. */
const insideCharacter = (bytes: Uint8Array, at: number) => (bytes[at] & 0xc0) === 0x80;

function setup(
  options: {
    tickets?: (sessionId: string | undefined) => Promise<{ url: string }>;
    answerPings?: boolean;
    heartbeat?: Partial<HeartbeatOptions>;
    binary?: boolean;
    watchOnly?: boolean;
  } = {},
) {
  const relay = startFakeRelay(options.answerPings, options.binary);
  const sink = new RecordingSink();
  const states: ConnectionState[] = [];
  const events: string[] = [];
  const pending: string[] = [];
  const links: LinkHealth[] = [];
  let issued = 0;
  const ticketSessions: (string | undefined)[] = [];
  const connection = new TerminalConnection({
    tickets: options.tickets ?? ((sessionId) => {
      ticketSessions.push(sessionId);
      issued++;
      return Promise.resolve({ url: `${relay.url}?token=tok-${issued}`, sessionId: SESSION });
    }),
    sink,
    onEvent: (event) => {
      if (event.type === "state") states.push(event.state);
      else if (event.type === "pending-input") pending.push(event.data);
      else if (event.type === "link") links.push(event.link);
      else events.push(JSON.stringify(event));
    },
    backoff: BACKOFF,
    random: () => 0.5,
    heartbeat: options.heartbeat,
    watchOnly: options.watchOnly,
  });
  const status = () => states.at(-1)?.status;
  const waitStatus = (want: ConnectionStatus) => waitFor(() => status() === want, `status ${want}`);
  return {
    relay,
    sink,
    states,
    events,
    pending,
    links,
    connection,
    ticketSessions,
    status,
    waitStatus,
    async [Symbol.asyncDispose]() {
      connection.dispose();
      await relay.close();
    },
  };
}

Deno.test("connects with token, offset, size and ack=1 and becomes online on coda:session", async () => {
  await using t = setup();
  t.connection.start();
  const peer = await t.relay.peer(1);
  const parsed = parseClientLinkOptions(peer.params);
  assert(parsed.ok);
  assertEquals(peer.params.get("token"), "tok-1");
  assertEquals(parsed.value, { offset: 0, cols: 100, rows: 30, ack: true });
  meta(peer, MetaLine.session(SESSION));
  meta(peer, MetaLine.cwd("/home/me/project"));
  await t.waitStatus("online");
  await waitFor(() => t.events.length >= 2, "session and cwd events");
  assertEquals(t.events, [
    JSON.stringify({ type: "session", sessionId: SESSION }),
    JSON.stringify({ type: "cwd", path: "/home/me/project" }),
  ]);
  await waitFor(() => peer.received.length >= 1, "resize");
  assertEquals(peer.received[0], { type: "resize", sessionId: SESSION, cols: 100, rows: 30 });
  t.connection.input("ls\r");
  await waitFor(() => peer.received.length >= 2, "stdin");
  assertEquals(peer.received[1], { type: "stdin", sessionId: SESSION, data: "ls\r" });
});

Deno.test("acks only after the terminal rendered, with UTF-8 byte offsets", async () => {
  await using t = setup();
  t.sink.autoRender = false;
  t.connection.start();
  const peer = await t.relay.peer(1);
  meta(peer, MetaLine.session(SESSION));
  stdout(peer, "héllo ", 0); // 7 bytes
  stdout(peer, "wörld✓", 7); // 1+2+3 + 3 = 9 bytes
  await waitFor(() => t.sink.pending.length === 2, "two writes");
  assertEquals(t.connection.offset, 16);
  assertEquals(t.connection.renderedOffset, 0);
  // Keystrokes go out on the same socket after any ack the writes could have caused, so once they arrive
  // an ack sent on receipt would have arrived too.
  t.connection.input("probe");
  await waitFor(() => peer.received.some((m) => m.type === "stdin"), "the keystrokes sent after the writes");
  assertEquals(peer.received.filter((m) => m.type === "ack"), [], "no ack before rendering");
  t.sink.renderAll();
  await waitFor(() => peer.received.some((m) => m.type === "ack"), "ack");
  assertEquals(peer.received.filter((m) => m.type === "ack"), [{
    type: "ack",
    sessionId: SESSION,
    offset: 16,
  }]);
  assertEquals(t.sink.text, "héllo wörld✓");
});

Deno.test("drops duplicated and overlapping output", async () => {
  await using t = setup();
  t.connection.start();
  const peer = await t.relay.peer(1);
  meta(peer, MetaLine.session(SESSION));
  stdout(peer, "abc", 0);
  stdout(peer, "abc", 0); // duplicate
  stdout(peer, "bcdef", 1); // overlaps "bc"
  stdout(peer, "ghi", 6);
  await waitFor(() => t.connection.offset === 9, "offset 9");
  assertEquals(t.sink.text, "abcdefghi");
});

Deno.test("binary link: output bytes go to the terminal as sent, split characters and replay marks included", async () => {
  await using t = setup({ binary: true });
  t.sink.autoRender = false;
  t.connection.start();
  const peer = await t.relay.peer(1);
  assertEquals(peer.offered, BINARY_SUBPROTOCOL);
  meta(peer, MetaLine.session(SESSION));
  await t.waitStatus("online");
  assert(t.connection.binary, "the relay took the subprotocol");
  const text = "héllo wörld ✓ 😀\r\n";
  const stream = new TextEncoder().encode(text);
  // Each cut falls inside a character: é (2 bytes), ✓ (3), 😀 (4).
  const cuts = [2, 15, 20];
  assert(cuts.every((at) => insideCharacter(stream, at)));
  [0, ...cuts].forEach((from, i) => output(peer, stream, from, [...cuts, stream.length][i], i === 0));
  await waitFor(() => t.sink.pending.length === 4, "four writes");
  assertEquals(t.connection.offset, stream.length, "offsets count bytes");
  assert(t.sink.writes.every((write) => write.data instanceof Uint8Array), "bytes, never decoded to text");
  assertEquals(t.sink.writes.map((write) => write.replay), [true, false, false, false]);
  assertEquals(t.sink.bytes(), stream);
  assertEquals(t.sink.text, text);
  t.sink.renderAll();
  await waitFor(() => peer.received.some((m) => m.type === "ack"), "ack");
  assertEquals(peer.received.filter((m) => m.type === "ack"), [
    { type: "ack", sessionId: SESSION, offset: stream.length },
  ]);
  t.connection.input("echo ✓\r");
  await waitFor(() => peer.received.some((m) => m.frame === "input"), "stdin");
  assertEquals(peer.received.filter((m) => m.frame === "input" || m.type === "stdin"), [
    { frame: "input", sessionId: SESSION, data: "echo ✓\r" },
  ]);
  assertEquals(
    peer.received[0],
    { type: "resize", sessionId: SESSION, cols: 100, rows: 30 },
    "control stays JSON",
  );
});

Deno.test("binary link: a resent prefix is cut by byte, and a dropped link resumes from the byte offset", async () => {
  await using t = setup({ binary: true });
  t.connection.start();
  const first = await t.relay.peer(1);
  meta(first, MetaLine.session(SESSION));
  const text = "ab✓cd€\r\n";
  const stream = new TextEncoder().encode(text);
  assert(insideCharacter(stream, 3) && insideCharacter(stream, 8));
  output(first, stream, 0, 3);
  output(first, stream, 0, 3); // duplicate
  await waitFor(() => t.connection.offset === 3, "the first bytes");
  first.socket.close(1011, "lost");
  const second = await t.relay.peer(2);
  assertEquals(second.params.get("offset"), "3");
  meta(second, MetaLine.session(SESSION));
  // The replay starts before the offset, in the middle of ✓: only the bytes not seen yet are written.
  output(second, stream, 1, 8, true);
  output(second, stream, 8, stream.length);
  await waitFor(() => t.connection.offset === stream.length, "the resumed bytes");
  assertEquals(t.sink.writes.map((write) => [Array.from(write.data as Uint8Array), write.replay]), [
    [Array.from(stream.subarray(0, 3)), false],
    [Array.from(stream.subarray(3, 8)), true],
    [Array.from(stream.subarray(8)), false],
  ]);
  assertEquals(t.sink.text, text);
});

Deno.test("a relay that does not take the subprotocol gets today's JSON: text, UTF-8 byte offsets, JSON stdin", async () => {
  await using t = setup();
  t.connection.start();
  const peer = await t.relay.peer(1);
  assertEquals(peer.offered, BINARY_SUBPROTOCOL, "offered all the same");
  meta(peer, MetaLine.session(SESSION));
  await t.waitStatus("online");
  assertEquals(t.connection.binary, false);
  stdout(peer, "wörld✓", 0); // 1+2+3 + 3 = 9 bytes
  await waitFor(() => t.connection.offset === 9, "offset 9");
  assertEquals(t.sink.writes, [{ data: "wörld✓", replay: undefined }], "text, replay unknown");
  t.connection.input("ls ✓\r");
  await waitFor(() => peer.received.some((m) => m.type === "stdin"), "stdin");
  assertEquals(peer.received.filter((m) => m.type === "stdin" || m.frame), [
    { type: "stdin", sessionId: SESSION, data: "ls ✓\r" },
  ]);
});

Deno.test("a handshake that fails because of the offer is retried at once without it, in JSON", async () => {
  await using t = setup();
  t.relay.offers.refused = true;
  t.connection.start();
  const peer = await t.relay.peer(1);
  assertEquals(peer.offered, null, "the retry offers nothing");
  meta(peer, MetaLine.session(SESSION));
  await t.waitStatus("online");
  assertEquals(t.connection.binary, false);
  peer.socket.close(CloseCode.RESTART, "relay restarting");
  const again = await t.relay.peer(2);
  assertEquals(again.offered, null, "offered again first, refused, then reached without it at once");
  meta(again, MetaLine.session(SESSION));
  await t.waitStatus("online");
});

Deno.test("reconnects after a relay restart with a fresh token from the last offset", async () => {
  await using t = setup();
  t.connection.start();
  const first = await t.relay.peer(1);
  meta(first, MetaLine.session(SESSION));
  stdout(first, "before-restart\r\n", 0);
  await waitFor(() => t.connection.offset === 16, "first output");
  first.socket.close(CloseCode.RESTART, "relay restarting");
  await t.waitStatus("reconnecting");
  const second = await t.relay.peer(2);
  assertEquals(second.params.get("token"), "tok-2");
  assertEquals(second.params.get("offset"), "16");
  assertEquals(t.ticketSessions, [undefined, SESSION]);
  // The runner replays from the requested offset; an overlapping chunk must not duplicate.
  meta(second, MetaLine.session(SESSION));
  stdout(second, "before-restart\r\n", 0);
  stdout(second, "after\r\n", 16);
  await waitFor(() => t.connection.offset === 23, "resumed output");
  assertEquals(t.sink.text, "before-restart\r\nafter\r\n");
  await t.waitStatus("online");
});

Deno.test("keystrokes typed while disconnected are held; discarding them sends nothing", async () => {
  await using t = setup();
  t.connection.start();
  const first = await t.relay.peer(1);
  meta(first, MetaLine.session(SESSION));
  await t.waitStatus("online");
  first.socket.close(1011, "boom");
  await t.waitStatus("reconnecting");
  t.connection.input("rm -rf ");
  t.connection.input("build\r");
  assertEquals(t.pending, ["rm -rf ", "rm -rf build\r"]);
  assertEquals(t.connection.sendPendingInput(), false, "nothing to send to while down");
  const second = await t.relay.peer(2);
  meta(second, MetaLine.session(SESSION));
  await t.waitStatus("online");
  assertEquals(t.connection.pendingInput, "rm -rf build\r", "still held once back");
  t.connection.discardPendingInput();
  assertEquals(t.pending.at(-1), "");
  t.connection.input("live\r");
  await waitFor(() => second.received.some((m) => m.type === "stdin"), "the live keystrokes");
  assertEquals(second.received.filter((m) => m.type === "stdin"), [
    { type: "stdin", sessionId: SESSION, data: "live\r" },
  ]);
});

Deno.test("4401 retries once with a fresh token, then explains", async () => {
  await using t = setup();
  t.connection.start();
  (await t.relay.peer(1)).socket.close(CloseCode.UNAUTHORIZED, "token expired");
  (await t.relay.peer(2)).socket.close(CloseCode.UNAUTHORIZED, "token expired");
  await t.waitStatus("unauthorized");
  assertEquals(t.relay.peers[1].params.get("token"), "tok-2");
  await afterEveryScheduledRetry();
  assertEquals(t.ticketSessions.length, 2, "no third ticket");
  assertEquals(t.relay.peers.length, 2, "no third attempt");
  assert(t.states.at(-1)!.detail.includes("token expired"));
});

Deno.test("a refused upgrade retries at once with a fresh token, then backs off and says so", async () => {
  await using t = setup();
  t.relay.refuse.add("tok-1");
  t.relay.refuse.add("tok-2");
  t.connection.start();
  await t.waitStatus("reconnecting");
  assert(t.states.at(-1)?.detail?.includes("refused the connection"), t.states.at(-1)?.detail);
  assertEquals(t.states.filter((state) => state.status === "reconnecting").length, 1);
  const peer = await t.relay.peer(1);
  assertEquals(peer.params.get("token"), "tok-3");
  assertEquals(peer.offered, BINARY_SUBPROTOCOL, "only the immediate retry goes without the binary offer");
  meta(peer, MetaLine.session(SESSION));
  await t.waitStatus("online");
});

Deno.test("4403 means revoked and 4404 means no runner; neither retries by itself, retry() does", async () => {
  await using t = setup();
  t.connection.start();
  (await t.relay.peer(1)).socket.close(CloseCode.NO_RUNNER, "no runner online");
  await t.waitStatus("no-runner");
  await afterEveryScheduledRetry();
  assertEquals(t.ticketSessions.length, 1);
  assertEquals(t.relay.peers.length, 1);
  t.connection.start();
  const second = await t.relay.peer(2);
  meta(second, MetaLine.relay("revoked"));
  second.socket.close(CloseCode.REVOKED, "runner revoked");
  await t.waitStatus("revoked");
  await afterEveryScheduledRetry();
  assertEquals(t.ticketSessions.length, 2);
  assertEquals(t.relay.peers.length, 2);
  assert(t.states.at(-1)!.detail.includes("Pair it again"));
});

for (const how of ["its close frame", "a closing notice"]) {
  Deno.test(`4413 (slow consumer) by ${how} reconnects from the offset it had reached`, async () => {
    await using t = setup();
    t.connection.start();
    const first = await t.relay.peer(1);
    meta(first, MetaLine.session(SESSION));
    stdout(first, "x".repeat(1000), 0);
    await waitFor(() => t.connection.offset === 1000, "output");
    if (how === "its close frame") {
      first.socket.close(CloseCode.SLOW_CONSUMER, CloseReason.SLOW_CONSUMER);
    } else {
      const closed = new Promise<CloseEvent>((resolve) => first.socket.onclose = resolve);
      first.socket.send(
        encode({ type: "closing", code: CloseCode.SLOW_CONSUMER, reason: CloseReason.SLOW_CONSUMER }),
      );
      // The client closed the link itself, with the notice's code.
      assertEquals((await closed).code, CloseCode.SLOW_CONSUMER);
    }
    const second = await t.relay.peer(2);
    assertEquals(second.params.get("offset"), "1000");
  });
}

Deno.test("a closing notice after the exit: the client closes the link itself and ends without reconnecting", async () => {
  await using t = setup();
  t.connection.start();
  const peer = await t.relay.peer(1);
  meta(peer, MetaLine.session(SESSION));
  meta(peer, MetaLine.exit(0));
  const closed = new Promise<CloseEvent>((resolve) => peer.socket.onclose = resolve);
  peer.socket.send(encode({ type: "closing", code: CloseCode.NORMAL, reason: CloseReason.SESSION_ENDED }));
  assertEquals((await closed).reason, CloseReason.SESSION_ENDED);
  await t.waitStatus("ended");
  await afterEveryScheduledRetry();
  assertEquals(t.relay.peers.length, 1);
});

Deno.test("4307 (runner on another relay instance) reconnects at once from its offset; a second in a row waits", async () => {
  await using t = setup();
  t.connection.start();
  const first = await t.relay.peer(1);
  meta(first, MetaLine.session(SESSION));
  stdout(first, "y".repeat(500), 0);
  await waitFor(() => t.connection.offset === 500, "output");
  first.socket.close(CloseCode.ON_ANOTHER_INSTANCE, "runner is on another instance, reconnect");
  const second = await t.relay.peer(2);
  assertEquals(second.params.get("offset"), "500");
  assert(t.states.every((state) => state.status !== "reconnecting"), "the first 4307 waits no backoff");
  second.socket.close(CloseCode.ON_ANOTHER_INSTANCE, "runner is on another instance, reconnect");
  await t.waitStatus("reconnecting");
  assert(t.states.at(-1)!.retryAt !== undefined);
  assertEquals((await t.relay.peer(3)).params.get("offset"), "500");
});

Deno.test("4308 (no route to the runner's relay instance) retries with backoff and says why", async () => {
  await using t = setup();
  t.connection.start();
  (await t.relay.peer(1)).socket.close(
    CloseCode.NO_ROUTE,
    "runner is on another instance and no proxy routes there",
  );
  await t.waitStatus("reconnecting");
  assert(t.states.at(-1)!.detail.includes("another relay instance"), t.states.at(-1)!.detail);
  assert(t.states.at(-1)!.retryAt !== undefined);
  await t.relay.peer(2);
});

Deno.test("relay meta lines drive the state; exit then 1000 ends without reconnecting", async () => {
  await using t = setup();
  t.connection.start();
  const peer = await t.relay.peer(1);
  meta(peer, MetaLine.relay("waiting"));
  await t.waitStatus("waiting");
  meta(peer, MetaLine.relay("online"));
  await t.waitStatus("online");
  meta(peer, MetaLine.relay("offline"));
  await t.waitStatus("runner-offline");
  meta(peer, MetaLine.session(SESSION));
  await t.waitStatus("online");
  meta(peer, MetaLine.record(true));
  meta(peer, MetaLine.error("no such folder"));
  meta(peer, MetaLine.exit(3));
  peer.socket.close(CloseCode.NORMAL, "session ended");
  await t.waitStatus("ended");
  assertEquals(t.states.at(-1)!.exitCode, "3");
  await afterEveryScheduledRetry();
  assertEquals(t.ticketSessions.length, 1);
  assertEquals(t.relay.peers.length, 1);
  assert(t.events.includes(JSON.stringify({ type: "record", on: true })));
  assert(t.events.includes(JSON.stringify({ type: "error", message: "no such folder" })));
});

Deno.test("coda:reset clears the terminal and restarts the offset; coda:gap shows a notice", async () => {
  await using t = setup();
  t.connection.start();
  const first = await t.relay.peer(1);
  meta(first, MetaLine.session(SESSION));
  stdout(first, "old stream", 0);
  await waitFor(() => t.connection.offset === 10, "old output");
  first.socket.close(1011, "lost");
  const second = await t.relay.peer(2);
  assertEquals(second.params.get("offset"), "10");
  meta(second, MetaLine.session(SESSION));
  meta(second, MetaLine.reset());
  meta(second, MetaLine.gap(0, 2048));
  stdout(second, "new", 2048);
  await waitFor(() => t.connection.offset === 2051, "new output");
  assertEquals(t.sink.resets, 1);
  assertEquals(t.sink.text, "new");
  assertEquals(t.sink.notices, ["[2.0 KiB of earlier output no longer available]"]);
});

Deno.test("a ticket error stops; a transient ticket failure is retried with backoff", async () => {
  let calls = 0;
  let relayUrl = "";
  await using t = setup({
    tickets: () => {
      calls++;
      if (calls === 1) return Promise.reject(new Error("network down"));
      if (calls === 2) return Promise.resolve({ url: `${relayUrl}?token=t2` });
      return Promise.reject(new TicketError("revoked", "Runner revoked; pair again."));
    },
  });
  relayUrl = t.relay.url;
  t.connection.start();
  const peer = await t.relay.peer(1);
  assertEquals(peer.params.get("token"), "t2");
  meta(peer, MetaLine.session(SESSION));
  await t.waitStatus("online");
  peer.socket.close(1011, "lost");
  await t.waitStatus("revoked");
  assertEquals(t.states.at(-1)!.detail, "Runner revoked; pair again.");
  assertEquals(calls, 3);
});

/**
 * A TCP proxy on 127.0.0.1:0 in front of `targetPort`. `stall()` stops it moving bytes either way
 * with every connection left open, as a SIGSTOPped relay would; `drop()` cuts every connection; while
 * `refusing`, new connections are closed at once.
 */
function startProxy(targetPort: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tasks: Promise<void>[] = [];
  let stalled: PromiseWithResolvers<void> | undefined;
  const proxy = {
    url: `ws://127.0.0.1:${listener.addr.port}`,
    refusing: false,
    stall() {
      stalled ??= Promise.withResolvers();
    },
    resume() {
      stalled?.resolve();
      stalled = undefined;
    },
    drop() {
      for (const conn of conns) conn.close();
      conns.clear();
    },
    async close() {
      listener.close();
      proxy.resume();
      proxy.drop();
      await Promise.all(tasks);
    },
  };
  const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
    const buffer = new Uint8Array(64 * 1024);
    try {
      while (true) {
        await stalled?.promise;
        const n = await from.read(buffer);
        if (n === null) break;
        await stalled?.promise;
        for (let sent = 0; sent < n;) sent += await to.write(buffer.subarray(sent, n));
      }
    } catch {
      // One side was closed: the other goes too, below.
    }
    for (const conn of [from, to]) {
      if (conns.delete(conn)) conn.close();
    }
  };
  tasks.push((async () => {
    try {
      for await (const inbound of listener) {
        if (proxy.refusing) {
          inbound.close();
          continue;
        }
        const outbound = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
        conns.add(inbound);
        conns.add(outbound);
        tasks.push(pipe(inbound, outbound), pipe(outbound, inbound));
      }
    } catch {
      // The listener was closed.
    }
  })());
  return proxy;
}

/** A real relay with a scripted runner, reached through a {@linkcode startProxy} proxy. */
async function setupRelay(options: { heartbeat?: Partial<HeartbeatOptions> } = {}) {
  const relay = startTestRelay();
  const proxy = startProxy(Number(new URL(relay.url).port));
  const userId = uniqueId("user");
  const sessionId = uniqueId("session");
  const runner = new ScriptedRunner(
    relay.url,
    (await runnerToken(relay.backend, uniqueId("runner"), userId)).token,
  );
  await runner.welcome();
  const states: ConnectionState[] = [];
  const links: LinkHealth[] = [];
  const pending: string[] = [];
  const sink = new RecordingSink();
  const connection = new TerminalConnection({
    tickets: async () => ({
      url: `${proxy.url}/client?token=${await clientToken({ userId, sessionId })}`,
      sessionId,
    }),
    sink,
    onEvent: (event) => {
      if (event.type === "state") states.push(event.state);
      else if (event.type === "link") links.push(event.link);
      else if (event.type === "pending-input") pending.push(event.data);
    },
    backoff: BACKOFF,
    random: () => 0.5,
    heartbeat: options.heartbeat,
  });
  const status = () => states.at(-1)?.status;
  return {
    proxy,
    runner,
    sessionId,
    connection,
    sink,
    states,
    links,
    pending,
    status,
    waitStatus: (want: ConnectionStatus) => waitFor(() => status() === want, `status ${want}`),
    stdin: () => runner.stdin(sessionId),
    async [Symbol.asyncDispose]() {
      connection.dispose();
      await proxy.close();
      await runner.close();
      await relay.close();
    },
  };
}

Deno.test("keystrokes typed while the relay link is down never reach the PTY unless the user sends them", async () => {
  await using t = await setupRelay();
  t.connection.start();
  await t.waitStatus("online");
  t.proxy.refusing = true;
  t.proxy.drop();
  await t.waitStatus("reconnecting");
  t.connection.input("echo typed-while-down\r");
  t.proxy.refusing = false;
  await t.waitStatus("online");
  // Sent after any flush of held input would have been, on the same socket: once it is in, that would be too.
  t.connection.input("echo live\r");
  await waitFor(() => t.stdin().includes("echo live"), "the live keystrokes at the runner");
  assertEquals(t.stdin(), "echo live\r", "the held keystrokes were not run");
  assertEquals(t.pending, ["echo typed-while-down\r"], "shown to the user as held");
  assertEquals(t.connection.pendingInput, "echo typed-while-down\r");
  assert(t.connection.sendPendingInput(), "sent once the user confirms");
  await waitFor(() => t.stdin().includes("typed-while-down"), "the confirmed keystrokes at the runner");
  assertEquals(t.stdin(), "echo live\recho typed-while-down\r");
  assertEquals(t.pending.at(-1), "", "nothing held any more");
});

Deno.test("the relay takes the subprotocol: output byte-exact, stdin reaches the runner, a drop resumed by byte offset with the replay marked", async () => {
  await using t = await setupRelay();
  t.connection.start();
  await t.waitStatus("online");
  assert(t.connection.binary, "the relay took the subprotocol");
  const before = "héllo ✓\r\n";
  t.runner.write(t.sessionId, before);
  await waitFor(() => t.sink.text === before, "the live output");
  const live = new TextEncoder().encode(before);
  assertEquals(t.connection.offset, live.length);
  t.connection.input("echo ✓\r");
  await waitFor(() => t.stdin() === "echo ✓\r", "the keystrokes at the runner");
  t.proxy.refusing = true;
  t.proxy.drop();
  await t.waitStatus("reconnecting");
  const during = "après 😀\r\n";
  t.runner.write(t.sessionId, during);
  t.proxy.refusing = false;
  await waitFor(() => t.sink.text === before + during, "the output written while the link was down, once");
  assertEquals(t.sink.bytes(), new TextEncoder().encode(before + during));
  assertEquals(t.connection.offset, live.length + new TextEncoder().encode(during).length);
  assertEquals(t.sink.writes.map((write) => write.replay), [false, true], "only the replay is marked");
  await t.waitStatus("online");
});

Deno.test("a stalled relay is reported with how long it has been silent, then the connection reconnects", async () => {
  const heartbeat = { intervalMs: 50, silentMs: 400, reconnectMs: 1500 };
  await using t = await setupRelay({ heartbeat });
  t.connection.start();
  await t.waitStatus("online");
  t.proxy.stall();
  const stalledAt = Date.now();
  const silent = await waitFor(() => t.links.find((link) => link.detail !== undefined), "the silence report");
  const reportedAfter = Date.now() - stalledAt;
  assert(silent.silentForMs >= heartbeat.silentMs, `silent for ${silent.silentForMs} ms`);
  assert(
    reportedAfter <= heartbeat.silentMs + 2 * heartbeat.intervalMs + 200,
    `reported after ${reportedAfter} ms`,
  );
  assert(/^No answer from the relay for \d+ s\.$/.test(silent.detail!), silent.detail);
  assertEquals(t.status(), "online", "the socket is still open: only silent");
  await t.waitStatus("reconnecting");
  // Silence counts from the last frame, which came at most one ping interval (and a round trip) before the stall.
  assert(
    Date.now() - stalledAt >= heartbeat.reconnectMs - 2 * heartbeat.intervalMs,
    "not before the threshold",
  );
  assert(t.states.at(-1)!.detail.startsWith("No answer from the relay for"), t.states.at(-1)!.detail);
  t.proxy.resume();
  await t.waitStatus("online");
  const measured = await waitFor(() => t.links.findLast((link) => link.rttMs !== undefined), "a round trip");
  assertEquals(t.links.at(-1)!.detail, undefined, "the report cleared");
  assert(measured.rttMs! < heartbeat.silentMs, `round trip ${measured.rttMs} ms`);
});

Deno.test("the relay answers pings itself: never forwarded, never counted as malformed", async () => {
  await using t = await setupRelay({ heartbeat: { intervalMs: 20, silentMs: 10_000, reconnectMs: 20_000 } });
  t.connection.start();
  // More pings than the malformed frames the relay tolerates (10) before it closes a link 1008.
  await waitFor(
    () => t.links.filter((link) => link.rttMs !== undefined).length > 12,
    "a dozen answered pings",
  );
  assertEquals(t.states.map((state) => state.status), ["connecting", "online"]);
  assertEquals(t.runner.received.filter((message) => message.type === "ping"), []);
});

Deno.test("coda-runner serve answers the heartbeat too: the round trip is measured, the link stays up", async () => {
  const home = await Deno.makeTempDir();
  const server = await startServe({
    port: 0,
    allowedOrigins: [],
    log: silentLogger,
    sessions: { env: testShellEnv(home), home, graceMs: 60_000, replayBytes: 1024 * 1024 },
  });
  const states: ConnectionState[] = [];
  const links: LinkHealth[] = [];
  const connection = new TerminalConnection({
    tickets: () => Promise.resolve({ url: server.clientUrl }),
    sink: new RecordingSink(),
    onEvent: (event) => {
      if (event.type === "state") states.push(event.state);
      else if (event.type === "link") links.push(event.link);
    },
    heartbeat: { intervalMs: 20, silentMs: 10_000, reconnectMs: 20_000 },
  });
  try {
    connection.start();
    // More pings than the malformed frames serve tolerates (10) before it closes a link 1008.
    await waitFor(
      () => links.filter((link) => link.rttMs !== undefined).length > 12,
      "a dozen answered pings",
    );
    assertEquals(states.map((state) => state.status), ["connecting", "online"]);
  } finally {
    connection.dispose();
    await server.close();
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("a server from before the heartbeat: three unanswered pings, then none; its silence is no alarm", async () => {
  const heartbeat = { intervalMs: 10, silentMs: 30, reconnectMs: 60 };
  await using t = setup({ answerPings: false, heartbeat });
  t.connection.start();
  const peer = await t.relay.peer(1);
  meta(peer, MetaLine.session(SESSION));
  await t.waitStatus("online");
  await waitFor(() => peer.received.filter((m) => m.type === "ping").length >= 3, "three pings");
  // Nothing is to happen, so there is no event to await: ten reconnect thresholds of an idle link.
  await new Promise((resolve) => setTimeout(resolve, 10 * heartbeat.reconnectMs));
  assertEquals(peer.received.filter((m) => m.type === "ping").length, 3, "no more pings to be struck for");
  assertEquals(t.relay.peers.length, 1, "no reconnect");
  assertEquals(t.status(), "online");
  assertEquals(t.links.filter((link) => link.detail !== undefined), [], "no silence reported");
});

Deno.test("held keystrokes are shown readably: Enter, control keys, and a cut", () => {
  assertEquals(visibleInput("ls -la\r"), "ls -la⏎");
  assertEquals(visibleInput("\x03\x1b[A\x7f"), "^C^[[A^?");
  assertEquals(visibleInput("x".repeat(100), 10), `${"x".repeat(9)}…`);
});

Deno.test("a runner restart shows the tab's shell as ended by the restart, not a fresh shell as the old one", async () => {
  const relay = startTestRelay();
  const home = await Deno.makeTempDir({ prefix: "coda-spa-home-" });
  const userId = uniqueId("user");
  const sessionId = uniqueId("session");
  const { token } = await runnerToken(relay.backend, uniqueId("runner"), userId);
  const runners = [startInProcessRunner(relay.url, token, home)];
  const states: ConnectionState[] = [];
  const sink = new RecordingSink();
  const connection = new TerminalConnection({
    tickets: async () => ({
      url: `${relay.url}/client?token=${await clientToken({ userId, sessionId })}`,
      sessionId,
    }),
    sink,
    onEvent: (event) => {
      if (event.type === "state") states.push(event.state);
    },
    backoff: BACKOFF,
    random: () => 0.5,
  });
  const status = () => states.at(-1)?.status;
  try {
    connection.start();
    await waitFor(() => status() === "online", "the shell");
    connection.input("echo before-$((20 + 22))\r");
    await waitFor(() => sink.text.includes("before-42"), "the old shell's output");
    await runners[0].stop();
    await waitFor(() => status() === "runner-offline", "the runner to go");
    runners.push(startInProcessRunner(relay.url, token, home));
    await waitFor(() => status() === "ended", "the session to end");
    assertEquals(
      states.at(-1)!.detail,
      "This shell ended when the runner restarted. Its output and programs are gone; open a new terminal.",
    );
    await afterEveryScheduledRetry();
    assertEquals(status(), "ended");
    assert(sink.text.includes("before-42"), "the old output stays on screen");
    assertEquals(runners[1].manager.list(), []);
  } finally {
    connection.dispose();
    for (const runner of runners) await runner.stop();
    await relay.close();
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("watch-only: nothing about the session is sent, only the heartbeat; typing is not held either", async () => {
  await using t = setup({ watchOnly: true });
  t.connection.start();
  const peer = await t.relay.peer(1);
  assertEquals(peer.params.get("ack"), "0", "the relay acknowledges for it");
  meta(peer, MetaLine.session(SESSION));
  meta(peer, MetaLine.relay("online"));
  stdout(peer, "watched", 0);
  await waitFor(() => t.connection.offset === 7, "output");
  t.connection.input("rm -rf ~\r");
  t.connection.resize(10, 5);
  t.connection.setRecording(true);
  t.connection.pickCwd("/");
  t.connection.kill();
  assertEquals(t.connection.pendingInput, "");
  await afterEveryScheduledRetry();
  const sent = peer.received.map((m) => m.type ?? m.frame);
  assert(sent.every((type) => type === "ping"), JSON.stringify(sent));
});
