import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { MetaLine } from "./protocol.ts";
import {
  connectClient,
  drainUntilClosed,
  rawWebSocket,
  relayTest,
  runnerToken,
  uniqueId,
  waitFor,
} from "./testing.ts";

relayTest("dead peers are reaped by the ping timeout; live idle peers stay", async (h) => {
  const live = await h.runner("runner-live01", "user-1");
  await live.welcome();
  const { token } = await runnerToken(h.backend, "runner-dead01", "user-1");
  const conn = await rawWebSocket(`${h.relay.url}/runner?token=${token}`);
  await waitFor(() => h.backend.presence.get("runner-dead01") === true, "runner online");
  await drainUntilClosed(conn);
  conn.close();
  await waitFor(() => h.backend.presence.get("runner-dead01") === false, "dead runner reaped");
  // The live runner has been idle longer than the dead one was, answering the same pings. A client's
  // attach reaching it over its own socket after the reap proves the relay had not closed that socket.
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId });
  await live.next((m) => m.type === "attach" && m.sessionId === sessionId, "the attach on the live runner");
  await client.meta(MetaLine.cwd("/home/test"));
  assert(!live.isClosed);
  assertEquals(h.backend.presence.get("runner-live01"), true);
}, { limits: { pingIntervalMs: 1000, deadPeerMs: 2000 } });
