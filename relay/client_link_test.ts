import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { SignJWT, UnsecuredJWT } from "jose";
import { CloseCode, MetaLine } from "./protocol.ts";
import { TOKEN_AUDIENCE, TOKEN_ISSUER } from "./tokens.ts";
import {
  clientToken,
  connectClient,
  OTHER_SECRET,
  refusedUpgrade,
  relayTest,
  runnerToken,
  ScriptedClient,
  TEST_SECRET,
  uniqueId,
  waitFor,
} from "./testing.ts";

relayTest("client endpoint refuses wrong-type, expired, forged, alg:none and reused tokens", async (h) => {
  const sessionId = uniqueId("session");
  const now = Math.floor(Date.now() / 1000);
  const claims = { type: "client", userId: "user-1", sessionId };
  const reused = await clientToken({ userId: "user-1", sessionId });
  const cases: [string, string, string][] = [
    ["runner token", (await runnerToken(h.backend, "runner-x00001", "user-1")).token, "token wrong-type"],
    [
      "expired",
      await new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuer(TOKEN_ISSUER)
        .setAudience(TOKEN_AUDIENCE).setJti("c-old").setIssuedAt(now - 600).setExpirationTime(now - 300)
        .sign(TEST_SECRET),
      "token expired",
    ],
    ["bad signature", await clientToken({ userId: "user-1", sessionId }, OTHER_SECRET), "token invalid"],
    [
      "alg none",
      new UnsecuredJWT(claims).setIssuer(TOKEN_ISSUER).setAudience(TOKEN_AUDIENCE).setJti("c-none")
        .setIssuedAt(now).setExpirationTime(now + 60).encode(),
      "token invalid",
    ],
    ["missing", "", "token missing"],
  ];
  for (const [name, token, reason] of cases) {
    const refused = await refusedUpgrade(`${h.relay.url}/client?token=${token}`);
    assertEquals({ status: refused.status, error: refused.body.error }, { status: 401, error: reason }, name);
  }
  const first = h.track(new ScriptedClient(h.relay.url, reused));
  await first.meta(MetaLine.relay("waiting"));
  const second = await refusedUpgrade(`${h.relay.url}/client?token=${reused}`);
  assertEquals({ status: second.status, error: second.body.error }, {
    status: 401,
    error: "token already used",
  });
  assert((await h.metrics()).includes('relay_auth_failures_total{endpoint="client",reason="reused"} 1'));
});

relayTest("frames for a foreign session are dropped and counted; ten bad frames close 1008", async (h) => {
  const runner = await h.runner("runner-polic1", "user-1");
  await runner.welcome();
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId });
  await client.meta(MetaLine.cwd("/home/test"));
  client.send({ type: "stdin", sessionId: "someone-elses", data: "evil" });
  client.send({ type: "stdin", sessionId, data: "mine" });
  await waitFor(() => runner.stdin(sessionId) === "mine", "own stdin");
  assert(!runner.received.some((m) => m.sessionId === "someone-elses"));
  assert((await h.metrics()).includes('relay_frames_dropped_total{reason="foreign_session"} 1'));
  for (let i = 0; i < 8; i++) client.send(i % 2 ? "{not json" : { type: "launch-missiles", sessionId });
  client.send(new Uint8Array([1, 2, 3]));
  assertEquals(await client.closed, {
    code: CloseCode.POLICY,
    reason: "too many malformed or forbidden frames",
  });
  assertEquals((await runner.next((m) => m.type === "detach")).sessionId, sessionId);
});

relayTest("the per-user client cap refuses the extra upgrade with 429 and Retry-After", async (h) => {
  const clients = [];
  for (let i = 0; i < 3; i++) {
    const client = await connectClient(h, { userId: "user-1", sessionId: uniqueId("session") });
    await client.meta(MetaLine.relay("waiting"));
    clients.push(client);
  }
  const extraToken = await clientToken({ userId: "user-1", sessionId: uniqueId("session") });
  const extra = await refusedUpgrade(`${h.relay.url}/client?token=${extraToken}`);
  assertEquals([extra.status, extra.headers["retry-after"], extra.body.error], [
    429,
    "5",
    "too many connections for this user",
  ]);
  const otherUser = await connectClient(h, { userId: "user-2", sessionId: uniqueId("session") });
  await otherUser.meta(MetaLine.relay("waiting"));
}, { limits: { maxClientsPerUser: 3 } });
