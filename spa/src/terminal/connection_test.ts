import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { CloseCode, MetaLine, parseClientLinkOptions } from "../../../relay/protocol.ts";
import {
  type ConnectionState,
  type ConnectionStatus,
  TerminalConnection,
  type TerminalSink,
  TicketError,
} from "./connection.ts";

/** One client connection the fake relay accepted. */
interface Peer {
  socket: WebSocket;
  params: URLSearchParams;
  received: Record<string, unknown>[];
  closed: Promise<void>;
}

/** A real WebSocket server on 127.0.0.1:0 that speaks the relay's client side, driven by the test. */
function startFakeRelay() {
  const peers: Peer[] = [];
  const waiters: (() => void)[] = [];
  /** Tokens whose upgrade is refused with 429, as the relay refuses a user over the cap. */
  const refuse = new Set<string>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    if (refuse.has(new URL(req.url).searchParams.get("token") ?? "")) {
      return Response.json({ error: "too many connections for this user" }, { status: 429 });
    }
    const { socket, response } = Deno.upgradeWebSocket(req);
    const peer: Peer = {
      socket,
      params: new URL(req.url).searchParams,
      received: [],
      closed: new Promise((resolve) => socket.addEventListener("close", () => resolve())),
    };
    socket.onmessage = (event) => peer.received.push(JSON.parse(event.data));
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

async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A terminal that records what it was given; the test decides when writes count as rendered. */
class RecordingSink implements TerminalSink {
  text = "";
  notices: string[] = [];
  resets = 0;
  pending: (() => void)[] = [];
  autoRender = true;
  write(data: string, rendered: () => void): void {
    this.text += data;
    if (this.autoRender) queueMicrotask(rendered);
    else this.pending.push(rendered);
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

function send(peer: Peer, message: Record<string, unknown>) {
  peer.socket.send(JSON.stringify({ sessionId: SESSION, ...message }));
}
const meta = (peer: Peer, data: string) => send(peer, { type: "meta", data });
const stdout = (peer: Peer, data: string, offset: number) => send(peer, { type: "stdout", data, offset });

function setup(
  options: { tickets?: (sessionId: string | undefined) => Promise<{ url: string }> } = {},
) {
  const relay = startFakeRelay();
  const sink = new RecordingSink();
  const states: ConnectionState[] = [];
  const events: string[] = [];
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
      else events.push(JSON.stringify(event));
    },
    backoff: { baseMs: 20, maxMs: 100 },
    random: () => 0.5,
  });
  const status = () => states.at(-1)?.status;
  const waitStatus = (want: ConnectionStatus) => waitFor(() => status() === want, `status ${want}`);
  return {
    relay,
    sink,
    states,
    events,
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

Deno.test("keystrokes typed while disconnected are sent once the session is back", async () => {
  await using t = setup();
  t.connection.start();
  const first = await t.relay.peer(1);
  meta(first, MetaLine.session(SESSION));
  await t.waitStatus("online");
  first.socket.close(1011, "boom");
  await t.waitStatus("reconnecting");
  t.connection.input("typed-offline");
  const second = await t.relay.peer(2);
  assertEquals(second.received.length, 0);
  meta(second, MetaLine.session(SESSION));
  await waitFor(() => second.received.some((m) => m.type === "stdin"), "flushed input");
  assertEquals(second.received.find((m) => m.type === "stdin"), {
    type: "stdin",
    sessionId: SESSION,
    data: "typed-offline",
  });
});

Deno.test("4401 retries once with a fresh token, then explains", async () => {
  await using t = setup();
  t.connection.start();
  (await t.relay.peer(1)).socket.close(CloseCode.UNAUTHORIZED, "token expired");
  (await t.relay.peer(2)).socket.close(CloseCode.UNAUTHORIZED, "token expired");
  await t.waitStatus("unauthorized");
  assertEquals(t.relay.peers[1].params.get("token"), "tok-2");
  await new Promise((resolve) => setTimeout(resolve, 150));
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
  meta(peer, MetaLine.session(SESSION));
  await t.waitStatus("online");
});

Deno.test("4403 means revoked and 4404 means no runner; neither retries by itself, retry() does", async () => {
  await using t = setup();
  t.connection.start();
  (await t.relay.peer(1)).socket.close(CloseCode.NO_RUNNER, "no runner online");
  await t.waitStatus("no-runner");
  await new Promise((resolve) => setTimeout(resolve, 150));
  assertEquals(t.relay.peers.length, 1);
  t.connection.start();
  const second = await t.relay.peer(2);
  meta(second, MetaLine.relay("revoked"));
  second.socket.close(CloseCode.REVOKED, "runner revoked");
  await t.waitStatus("revoked");
  await new Promise((resolve) => setTimeout(resolve, 150));
  assertEquals(t.relay.peers.length, 2);
  assert(t.states.at(-1)!.detail.includes("Pair it again"));
});

Deno.test("4413 (slow consumer) reconnects from the offset it had reached", async () => {
  await using t = setup();
  t.connection.start();
  const first = await t.relay.peer(1);
  meta(first, MetaLine.session(SESSION));
  stdout(first, "x".repeat(1000), 0);
  await waitFor(() => t.connection.offset === 1000, "output");
  first.socket.close(CloseCode.SLOW_CONSUMER, "slow consumer, resume from your offset");
  const second = await t.relay.peer(2);
  assertEquals(second.params.get("offset"), "1000");
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
  await new Promise((resolve) => setTimeout(resolve, 150));
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
