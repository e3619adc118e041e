import { deepEqual as assertEquals } from "node:assert/strict";
import { CloseCode, MetaLine } from "./protocol.ts";
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
