import { deepEqual as assertEquals, equal } from "node:assert/strict";
import { createLocalRelay, type LocalRelay } from "./local.ts";
import { BINARY_SUBPROTOCOL, CloseCode, encodeInputFrame, MetaLine, type RelayToRunner } from "./protocol.ts";
import { Peer, ScriptedClient, waitFor } from "./testing.ts";

const TOKEN = "local-access-token-0123456789abcdefghijklmnop";
const encoder = new TextEncoder();

/** A local relay on 127.0.0.1:0 whose runner answers every attach like a session manager. */
function startLocal(limits: Parameters<typeof createLocalRelay>[0]["limits"] = {}) {
  const toRunner: RelayToRunner[] = [];
  const relay: LocalRelay = createLocalRelay({
    accessToken: TOKEN,
    allowedOrigins: ["http://localhost:8080"],
    limits,
    log: () => {},
    toRunner(message) {
      toRunner.push(message);
      if (message.type !== "attach") return;
      const { sessionId, clientId } = message;
      relay.runnerSink.send({ type: "meta", sessionId, clientId, data: MetaLine.session(sessionId) });
      relay.runnerSink.send({ type: "attached", sessionId, clientId, offset: 0 });
    },
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => relay.handle(req));
  const url = `ws://127.0.0.1:${server.addr.port}`;
  return {
    relay,
    url,
    toRunner,
    async close() {
      await relay.shutdown();
      await server.shutdown();
    },
  };
}

/** The session id a client was given (the first meta line). */
async function sessionOf(client: ScriptedClient): Promise<string> {
  const meta = await client.next((m) => m.type === "meta", "coda:session");
  return String(meta.data).slice("coda:session:".length);
}

Deno.test("local relay: output fans out to a binary and a JSON client of one session; a character split across input frames arrives whole", async () => {
  const local = startLocal();
  const binary = new ScriptedClient(local.url, TOKEN, { binary: true });
  try {
    await binary.opened;
    equal(binary.socket.protocol, BINARY_SUBPROTOCOL);
    const sessionId = await sessionOf(binary);
    // A spec-only client of the same session: the access token and the session id, nothing else.
    const json = new Peer(`${local.url}/client?token=${TOKEN}&session=${sessionId}`);
    await json.opened;
    await json.meta(MetaLine.session(sessionId));

    const e = encoder.encode("é");
    binary.send(encodeInputFrame({ sessionId, data: e.subarray(0, 1) }));
    binary.send(encodeInputFrame({ sessionId, data: e.subarray(1) }));
    const stdin = () => local.toRunner.map((m) => m.type === "stdin" ? m.data : "").join("");
    // One character, not two replacement characters: the halves are decoded as one stream.
    await waitFor(() => stdin() === "é", "é at the runner");

    local.relay.runnerSink.sendOutput({ sessionId, offset: 0, replay: false, data: encoder.encode("out ✓") });
    await binary.waitOutput("out ✓");
    assertEquals(binary.frames.map((f) => f.type === "output" && f.offset), [0]);
    await json.next((m) => m.type === "stdout", "JSON stdout");
    assertEquals(json.received.filter((m) => m.type === "stdout"), [
      { type: "stdout", sessionId, data: "out ✓", offset: 0 },
    ]);
    await json.close();
  } finally {
    await binary.close();
    await local.close();
  }
});

Deno.test("local relay: the access token and the origin are checked before any upgrade; closes come from the relay's codes", async () => {
  const local = startLocal({ malformedFrameLimit: 3 });
  const http = local.url.replace("ws:", "http:");
  try {
    const missing = await fetch(`${http}/client`);
    assertEquals([missing.status, await missing.json()], [401, { error: "missing or wrong access token" }]);
    const foreign = await fetch(`${http}/client?token=${TOKEN}`, {
      headers: { origin: "https://evil.example" },
    });
    assertEquals([foreign.status, await foreign.json()], [403, { error: "origin not allowed" }]);
    const elsewhere = await fetch(`${http}/runner?token=${TOKEN}`);
    equal(elsewhere.status, 404);
    await elsewhere.body?.cancel();
    const badSession = await fetch(`${http}/client?token=${TOKEN}&session=no`, {
      headers: { upgrade: "websocket" },
    });
    equal(badSession.status, 400);
    await badSession.body?.cancel();

    const client = new ScriptedClient(local.url, TOKEN);
    await client.opened;
    await sessionOf(client);
    for (let i = 0; i < 3; i++) client.send({ type: "stdin", sessionId: "another-session", data: "x" });
    assertEquals(await client.closed, {
      code: CloseCode.POLICY,
      reason: "too many malformed or forbidden frames",
    });
    assertEquals(
      local.toRunner.filter((m) => m.type === "stdin"),
      [],
      "nothing of another session reached the runner",
    );
  } finally {
    await local.close();
  }
});
