import { deepEqual as assertEquals } from "node:assert/strict";
import { CloseCode, MetaLine } from "./protocol.ts";
import { connectClient, relayTest, uniqueId } from "./testing.ts";

relayTest("shutdown closes every peer with 1012", async (h) => {
  const runner = await h.runner("runner-shut01", "user-1");
  await runner.welcome();
  const client = await connectClient(h, { userId: "user-1", sessionId: uniqueId("session") });
  await client.meta(MetaLine.cwd("/home/test"));
  await h.relay.relay.shutdown();
  assertEquals((await runner.closed).code, CloseCode.RESTART);
  assertEquals((await client.closed).code, CloseCode.RESTART);
  const late = await fetch(`${h.relay.httpUrl}/runner`, { headers: { upgrade: "websocket" } });
  assertEquals(late.status, 503);
  await late.body?.cancel();
});
