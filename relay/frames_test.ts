import { deepEqual as assertEquals } from "node:assert/strict";
import { CloseCode, CloseReason, MetaLine } from "./protocol.ts";
import { connectClient, relayTest, uniqueId } from "./testing.ts";

relayTest("an oversized frame closes the link 1009", async (h) => {
  const runner = await h.runner("runner-big001", "user-1");
  await runner.welcome();
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId });
  await client.meta(MetaLine.cwd("/home/test"));
  client.send({ type: "stdin", sessionId, data: "x".repeat(1024 * 1024) });
  assertEquals((await client.closed).code, CloseCode.TOO_BIG);
  runner.send({ type: "stdout", sessionId, data: "é".repeat(600 * 1024) });
  assertEquals((await runner.closed).code, CloseCode.TOO_BIG);
});

relayTest(
  "a client that keeps sending while its session ends under a stream gets 1000 session ended, every time",
  async (h) => {
    const runner = await h.runner("runner-cls001", "user-1", "header", true);
    await runner.welcome();
    const chunk = new Uint8Array(60 * 1024).fill(0x79);
    const rounds = 8;
    for (let round = 0; round < rounds; round++) {
      const sessionId = uniqueId("session");
      const client = await connectClient(h, { userId: "user-1", sessionId }, { binary: true, ack: true });
      await client.meta(MetaLine.cwd("/home/test"));
      // It renders slowly, so the end arrives while much is still on its way to it...
      client.socket.addEventListener("message", () => {
        const until = performance.now() + 2;
        while (performance.now() < until);
      });
      // ...and its pings and acks cross whatever the relay sends last, as the SPA's do under output.
      const chatter = setInterval(() => {
        if (client.socket.readyState !== WebSocket.OPEN) return;
        client.send({ type: "ping", t: Date.now() });
        client.send({ type: "ack", sessionId, offset: client.outputBytes().length });
      }, 1);
      for (let i = 0; i < 32; i++) runner.write(sessionId, chunk);
      runner.exit(sessionId, 0);
      const closed = await client.closed;
      clearInterval(chatter);
      assertEquals(closed, { code: CloseCode.NORMAL, reason: CloseReason.SESSION_ENDED }, `round ${round}`);
      assertEquals(client.outputBytes().length, 32 * chunk.length);
      assertEquals(client.received.at(-1), {
        type: "closing",
        code: CloseCode.NORMAL,
        reason: CloseReason.SESSION_ENDED,
      });
    }
  },
);

relayTest(
  "a client that ignores closing is closed by the relay after the grace; a spec-only one never hears of it",
  async (h) => {
    const runner = await h.runner("runner-cls002", "user-1");
    await runner.welcome();
    const sessionId = uniqueId("session");
    const deaf = await connectClient(h, { userId: "user-1", sessionId }, { ack: true, answerClosing: false });
    const spec = await connectClient(h, { userId: "user-1", sessionId });
    await deaf.meta(MetaLine.cwd("/home/test"));
    await spec.meta(MetaLine.cwd("/home/test"));
    runner.exit(sessionId, 0);
    const expected = { code: CloseCode.NORMAL, reason: CloseReason.SESSION_ENDED };
    assertEquals(await spec.closed, expected);
    assertEquals(deaf.isClosed, false);
    await deaf.next((m) => m.type === "closing", "the closing notice");
    assertEquals(await deaf.closed, expected);
    assertEquals(spec.received.some((m) => m.type === "closing"), false);
  },
  { limits: { closeGraceMs: 500 } },
);
