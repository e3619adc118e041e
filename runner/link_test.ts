import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { decodeBinaryFrame, encodeInputFrame, type RelayToRunner } from "@coda/relay/protocol";
import { maskingNeeded, RelayLink } from "./link.ts";
import { createLogger, silentLogger } from "./log.ts";
import { waitFor } from "./testing.ts";

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

Deno.test("link: an upgrade refused 401 or 403 stops for good; 503 is retried", async () => {
  const answers = [503, 503, 401, 403];
  let requests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    const status = answers[requests++];
    return Response.json({ error: "refused" }, { status, headers: { "retry-after": "5" } });
  });
  const open = (runnerToken: string) =>
    new RelayLink({
      relayUrl: `ws://127.0.0.1:${server.addr.port}`,
      runnerToken,
      log: silentLogger,
      backoff: { initialMs: 5, maxMs: 10 },
      handler: { onMessage() {}, onUp() {}, onDown() {} },
    });
  try {
    assertEquals(await open("x").run(), "unauthorized");
    assertEquals(requests, 3);
    assertEquals(await open("x").run(), "revoked");
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
    // The server reading the end of the stream proves the client tore the socket down; `ws` emits the
    // aborted handshake's "error" before that I/O can be seen, so the test ends only after it.
    const buffer = new Uint8Array(4096);
    while (await accepted[0].read(buffer).catch(() => null) !== null) continue;
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const conn of accepted) conn.close();
  }
});

/**
 * A relay that restarts after every connection: it welcomes the runner, sends
 * `frames` (real relay → runner messages), then closes 1012 as a draining relay does.
 */
function restartingRelay(frames: unknown[]) {
  let connections = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.onopen = () => {
      connections++;
      socket.send(JSON.stringify({ type: "welcome", runnerId: "runner-restart", protocol: 1 }));
      for (const frame of frames) socket.send(JSON.stringify(frame));
      socket.close(1012, "relay restarting");
    };
    return response;
  });
  return {
    url: `ws://127.0.0.1:${server.addr.port}`,
    connections: () => connections,
    close: () => server.shutdown(),
  };
}

/** The reconnect delays a link announces, for as many reconnects as `count`. */
async function reconnectDelays(frames: unknown[], count: number): Promise<number[]> {
  const relay = restartingRelay(frames);
  const delays: number[] = [];
  const log = createLogger({
    format: "json",
    write: (line) => {
      const record = JSON.parse(line);
      if (record.msg === "reconnecting to the relay") delays.push(record.inMs);
    },
  });
  const link = new RelayLink({
    relayUrl: relay.url,
    runnerToken: "header.payload.sig",
    log,
    backoff: { initialMs: 20, maxMs: 10_000, random: () => 0.999 },
    handler: { onMessage() {}, onUp() {}, onDown() {} },
  });
  const done = link.run();
  try {
    await waitFor(() => delays.length >= count, `${count} reconnects`);
  } finally {
    link.stop();
    await done;
    await relay.close();
  }
  return delays.slice(0, count);
}

Deno.test("link: relay restarts seconds apart after real traffic keep the first delay; idle ones back off", async () => {
  const traffic = [{ type: "detach", sessionId: "session-0001", clientId: "client-1" }];
  const working = await reconnectDelays(traffic, 5);
  assertEquals(working, [19, 19, 19, 19, 19]);
  const idle = await reconnectDelays([], 4);
  assertEquals(idle, [19, 39, 79, 159]);
});

Deno.test("link: a relay that is not there is reported as such, not as a lost link", async () => {
  // A port that was just free: nothing listens on it.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `ws://127.0.0.1:${listener.addr.port}`;
  listener.close();
  const lines: string[] = [];
  const link = new RelayLink({
    relayUrl: url,
    runnerToken: "header.payload.sig",
    log: createLogger({ write: (line) => lines.push(line) }),
    backoff: { initialMs: 5, maxMs: 10 },
    handler: { onMessage() {}, onUp() {}, onDown() {} },
  });
  const done = link.run();
  try {
    await waitFor(() => lines.length >= 2, "two connection attempts");
    const warning = lines.find((line) => line.startsWith("warn: "));
    assert(warning?.startsWith(`warn: cannot connect to ${url}: connection refused`), lines.join("\n"));
    assert(!lines.some((line) => line.includes("lost the relay link")), lines.join("\n"));
  } finally {
    link.stop();
    assertEquals(await done, "stopped");
  }
});

/**
 * A relay that welcomes with `welcome` and keeps every frame the runner sends
 * (an old relay, protocol 1, cannot be made from today's); the `input` frames
 * are sent once the runner asks for binary frames.
 */
function recordingRelay(welcome: Record<string, unknown>, input: Uint8Array[] = []) {
  const frames: (string | Uint8Array)[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => socket.send(JSON.stringify(welcome));
    socket.onmessage = (event) => {
      frames.push(typeof event.data === "string" ? event.data : new Uint8Array(event.data));
      if (event.data === JSON.stringify({ type: "binary", transfers: true })) {
        for (const frame of input) socket.send(frame as Uint8Array<ArrayBuffer>);
      }
    };
    return response;
  });
  return { frames, url: `ws://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

const OUTPUT = new TextEncoder().encode("é\x01".repeat(100_000));

Deno.test("link: an old relay's welcome (no binary) gets JSON stdout, split to fit its frame limit", async () => {
  const relay = recordingRelay({ type: "welcome", runnerId: "runner-old1", protocol: 1 });
  const link = new RelayLink({
    relayUrl: relay.url,
    runnerToken: "t",
    log: silentLogger,
    handler: { onMessage() {}, onUp() {}, onDown() {} },
  });
  const done = link.run();
  try {
    await waitFor(() => link.connected && link.connections === 1, "the welcome");
    link.sendOutput({ sessionId: "session-0001", clientId: "c1", offset: 10, replay: true, data: OUTPUT });
    await waitFor(() => relay.frames.some((f) => typeof f === "string" && f.includes('"stdout"')), "output");
    const stdout = await waitFor(() => {
      const frames = relay.frames.filter((f) => typeof f === "string" && f.includes('"stdout"')) as string[];
      const parsed = frames.map((f) => JSON.parse(f));
      return parsed.map((f) => f.data).join("").length === 200_000 ? { frames, parsed } : undefined;
    }, "all of the output");
    assert(!relay.frames.some((f) => typeof f !== "string" || f.includes('"binary"')), "JSON only");
    assert(stdout.frames.length > 1 && stdout.frames.every((f) => f.length <= 1024 * 1024));
    let offset = 10;
    for (const frame of stdout.parsed) {
      assertEquals([frame.offset, frame.clientId, frame.sessionId], [offset, "c1", "session-0001"]);
      offset += new TextEncoder().encode(frame.data).length;
    }
    assertEquals(stdout.parsed.map((f) => f.data).join(""), "é\x01".repeat(100_000));
  } finally {
    link.stop();
    await done;
    await relay.close();
  }
});

Deno.test("link: a relay that offers binary frames gets output as one binary frame and sends stdin as bytes", async () => {
  // The é is cut between two frames, as a client's bytes may be: it reaches the PTY whole.
  const typed = new TextEncoder().encode("ls é\r");
  const cut = typed.indexOf(0xc3) + 1;
  const input = [typed.subarray(0, cut), typed.subarray(cut)].map((data) =>
    encodeInputFrame({ sessionId: "session-0001", clientId: "c1", data })
  );
  const relay = recordingRelay(
    { type: "welcome", runnerId: "runner-new1", protocol: 2, binary: true },
    input,
  );
  const messages: RelayToRunner[] = [];
  const link = new RelayLink({
    relayUrl: relay.url,
    runnerToken: "t",
    log: silentLogger,
    handler: { onMessage: (message) => void messages.push(message), onUp() {}, onDown() {} },
  });
  const done = link.run();
  try {
    await waitFor(() => messages.length === 2, "stdin from the relay");
    assertEquals(messages, [
      { type: "stdin", sessionId: "session-0001", data: "ls " },
      { type: "stdin", sessionId: "session-0001", data: "é\r" },
    ]);
    link.sendOutput({ sessionId: "session-0001", offset: 7, replay: false, data: OUTPUT });
    const frame = await waitFor(() => relay.frames.find((f) => typeof f !== "string"), "the binary frame");
    const decoded = decodeBinaryFrame(frame as Uint8Array);
    assert(decoded.ok && decoded.value.type === "output");
    assertEquals(
      [decoded.value.sessionId, decoded.value.clientId, decoded.value.offset, decoded.value.replay],
      ["session-0001", undefined, 7, false],
    );
    assertEquals(decoded.value.data, OUTPUT);
  } finally {
    link.stop();
    await done;
    await relay.close();
  }
});

Deno.test("link: frames go unmasked only where no proxy can read them: TLS or loopback", () => {
  for (
    const url of [
      "wss://relay.example/runner",
      "ws://127.0.0.1:8080/runner",
      "ws://localhost/runner",
      "ws://[::1]:1/runner",
    ]
  ) {
    assertEquals(maskingNeeded(url), false, url);
  }
  for (
    const url of [
      "ws://relay.example/runner",
      "ws://10.0.0.2:8080/runner",
      "ws://127.0.0.1.evil.example/runner",
    ]
  ) {
    assertEquals(maskingNeeded(url), true, url);
  }
});

/**
 * A relay on a raw TCP socket that answers the upgrade, welcomes the runner (binary frames), then reads
 * nothing until `drain` is called: a relay whose side of the connection backed up.
 */
function stalledRelay() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = (async () => {
    const conn = await listener.accept();
    const buffer = new Uint8Array(64 * 1024);
    let head = "";
    while (!head.includes("\r\n\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) throw new Error("closed during the upgrade");
      head += new TextDecoder().decode(buffer.subarray(0, n));
    }
    const key = head.match(/sec-websocket-key: *(\S+)/i)![1];
    const digest = await crypto.subtle.digest(
      "SHA-1",
      new TextEncoder().encode(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`),
    );
    const welcome = new TextEncoder().encode(
      JSON.stringify({ type: "welcome", runnerId: "runner-stall1", protocol: 2, binary: true }),
    );
    await conn.write(new TextEncoder().encode(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${new Uint8Array(digest).toBase64()}\r\n\r\n`,
    ));
    await conn.write(new Uint8Array([0x81, welcome.length, ...welcome]));
    return conn;
  })();
  return {
    url: `ws://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    /** Reads everything the runner sends from now until it closes the connection; resolves the byte count. */
    async drain(): Promise<number> {
      const conn = await accepted;
      let total = 0;
      const buffer = new Uint8Array(256 * 1024);
      try {
        for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) total += n;
      } catch {
        // Reset: the runner dropped the connection.
      }
      conn.close();
      listener.close();
      return total;
    },
  };
}

Deno.test("link: a link given up with output still queued drops it instead of sending it later", async () => {
  const relay = stalledRelay();
  let up = false;
  const link = new RelayLink({
    relayUrl: relay.url,
    runnerToken: "t",
    log: silentLogger,
    handler: { onMessage() {}, onUp: () => up = true, onDown() {} },
  });
  const done = link.run();
  await waitFor(() => up, "the welcome");
  // Output until the kernel's buffers are full and the link itself queues 2 MiB.
  const data = new Uint8Array(64 * 1024).fill(0x61);
  let sent = 0;
  for (let offset = 0; link.bufferedAmount() < 2 * 1024 * 1024; offset += data.length) {
    link.sendOutput({ sessionId: "session-0001", offset, replay: false, data });
    sent += data.length;
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  const queued = link.bufferedAmount();
  link.stop();
  assertEquals(link.bufferedAmount(), 0, "a given-up socket counts for nothing");
  const received = await relay.drain();
  assertEquals(await done, "stopped");
  assert(
    received <= sent - queued + 64 * 1024,
    `${received} of ${sent} bytes arrived, ${queued} were queued`,
  );
});
