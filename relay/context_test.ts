import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { MetaLine } from "./protocol.ts";
import {
  clientToken,
  connectClient,
  Peer,
  relayTest,
  runnerToken,
  ScriptedClient,
  TEST_ORIGIN,
  uniqueId,
  waitFor,
} from "./testing.ts";

relayTest("foreign and look-alike origins get HTTP 403 before the upgrade; bad queries 400", async (h) => {
  const token = await clientToken({ userId: "user-1", sessionId: uniqueId("session") });
  for (
    const origin of [
      "http://evil.test",
      `${TEST_ORIGIN}.evil.test`,
      "http://app.test",
      "https://app.test:8080",
    ]
  ) {
    const client = h.track(new ScriptedClient(h.relay.url, token, { origin }));
    await client.closed;
    assert(client.error?.includes("403"), `${origin}: ${client.error}`);
  }
  const runner = h.track(new Peer(`${h.relay.url}/runner`, { origin: "http://evil.test" }));
  await runner.closed;
  assert(runner.error?.includes("403"), runner.error);
  const allowed = h.track(new ScriptedClient(h.relay.url, token, { origin: TEST_ORIGIN }));
  await allowed.meta(MetaLine.relay("waiting"));
  const res = await fetch(`${h.relay.httpUrl}/client?token=x&offset=-1`, {
    headers: { upgrade: "websocket" },
  });
  assertEquals(res.status, 400);
  assertEquals((await res.json()).error, "offset must be a whole number");
  const { token: runnerTokenValue } = await runnerToken(h.backend, "runner-hand01", "user-1");
  const handshake = await fetch(`${h.relay.httpUrl}/runner`, {
    headers: { upgrade: "websocket", authorization: `Bearer ${runnerTokenValue}` },
  });
  assertEquals([handshake.status, await handshake.json()], [400, { error: "invalid WebSocket handshake" }]);
  const plain = await fetch(`${h.relay.httpUrl}/runner`);
  assertEquals(plain.status, 400);
  assertEquals(await plain.json(), { error: "expected a WebSocket upgrade" });
});

relayTest("a peer gone before its upgrade completed is released after openTimeoutMs", async (h) => {
  const { promise: gate, resolve: release } = Promise.withResolvers<void>();
  h.backend.clientJtiGate = gate;
  const token = await clientToken({ userId: "user-1", sessionId: uniqueId("session") });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(h.relay.url).port) });
  await conn.write(new TextEncoder().encode(
    `GET /client?token=${token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  ));
  await waitFor(() => h.backend.usedClientJtis.size === 1, "the token check started");
  const request = h.relay.requests.at(-1)!;
  const aborted = new Promise((resolve) => request.signal.addEventListener("abort", resolve, { once: true }));
  conn.close();
  await aborted;
  h.backend.clientJtiGate = undefined;
  release();
  await waitFor(
    async () => (await h.metrics()).includes("relay_websockets_open 0"),
    "the stale socket released",
  );
  const next = await connectClient(h, { userId: "user-1", sessionId: uniqueId("session") });
  await next.meta(MetaLine.relay("waiting"));
}, { limits: { maxClientsPerUser: 1, openTimeoutMs: 300 } });
