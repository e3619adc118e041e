import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { RelayLink } from "./link.ts";
import { silentLogger } from "./log.ts";
import { waitFor } from "./_testing.ts";

/**
 * A relay that goes silent: it welcomes, answers one ping, then never sends
 * another frame while keeping the TCP connection open (a dead peer behind a
 * NAT looks like this; the real relay cannot be made to behave so).
 */
function silentRelay() {
  const state = { connections: 0, authorization: [] as string[] };
  const sockets = new Set<WebSocket>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    state.authorization.push(req.headers.get("authorization") ?? "");
    const { socket, response } = Deno.upgradeWebSocket(req);
    sockets.add(socket);
    socket.onclose = () => sockets.delete(socket);
    let answered = false;
    socket.onopen = () => {
      state.connections++;
      socket.send(JSON.stringify({ type: "welcome", runnerId: "runner-silent", protocol: 1 }));
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "ping" && !answered) {
        answered = true;
        socket.send(JSON.stringify({ type: "pong", t: message.t }));
      }
    };
    return response;
  });
  return {
    state,
    url: `ws://127.0.0.1:${server.addr.port}`,
    async close() {
      for (const socket of sockets) socket.close();
      await server.shutdown();
    },
  };
}

Deno.test("link: a relay that stops answering is dropped and reconnected", async () => {
  const relay = silentRelay();
  const downs: number[] = [];
  const link = new RelayLink({
    relayUrl: relay.url,
    runnerToken: "header.payload.sig",
    log: silentLogger,
    heartbeatMs: 50,
    deadAfterMs: 300,
    backoff: { initialMs: 10, maxMs: 50 },
    handler: { onMessage() {}, onUp() {}, onDown: () => downs.push(Date.now()) },
  });
  const done = link.run();
  try {
    await waitFor(() => relay.state.connections >= 2, "a reconnect after the relay went silent");
    assert(downs.length >= 1);
    assertEquals(relay.state.authorization[0], "Bearer header.payload.sig");
  } finally {
    link.stop();
    assertEquals(await done, "stopped");
    await relay.close();
  }
});

Deno.test("link: close 4401 stops for good", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onopen = () => socket.close(4401, "token invalid");
    return response;
  });
  const link = new RelayLink({
    relayUrl: `ws://127.0.0.1:${server.addr.port}`,
    runnerToken: "x",
    log: silentLogger,
    handler: { onMessage() {}, onUp() {}, onDown() {} },
  });
  try {
    assertEquals(await link.run(), "unauthorized");
  } finally {
    await server.shutdown();
  }
});

Deno.test("link: stopping while the connection is still opening ends cleanly", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) accepted.push(conn);
  })();
  const link = new RelayLink({
    relayUrl: `ws://127.0.0.1:${listener.addr.port}`,
    runnerToken: "header.payload.sig",
    log: silentLogger,
    handler: { onMessage() {}, onUp() {}, onDown() {} },
  });
  const done = link.run();
  try {
    await waitFor(
      () => accepted.length === 1,
      "the connection to be accepted (its handshake never answered)",
    );
    link.stop();
    assertEquals(await done, "stopped");
    await new Promise((resolve) => setTimeout(resolve, 100));
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const conn of accepted) conn.close();
  }
});
