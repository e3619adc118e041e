import { deepEqual as assertEquals, ok as assert, rejects as assertRejects } from "node:assert/strict";
import { SignJWT, UnsecuredJWT } from "jose";
import { CloseCode, CloseReason, MetaLine } from "./protocol.ts";
import { TOKEN_AUDIENCE, TOKEN_ISSUER } from "./tokens.ts";
import {
  clientToken,
  connectClient,
  OTHER_SECRET,
  refusedUpgrade,
  relayTest,
  runnerToken,
  ScriptedRunner,
  TEST_SECRET,
  uniqueId,
  waitFor,
} from "./testing.ts";

relayTest("a runner authenticates by header or query and gets welcome", async (h) => {
  for (const via of ["header", "query"] as const) {
    const runnerId = uniqueId("runner");
    const runner = await h.runner(runnerId, "user-1", via);
    assertEquals((await runner.welcome()).runnerId, runnerId);
    await waitFor(() => h.backend.presence.get(runnerId) === true, "presence on");
    await runner.close();
    await waitFor(() => h.backend.presence.get(runnerId) === false, "presence off");
  }
});

relayTest(
  "runner endpoint refuses bad tokens with HTTP 401 and revoked ones with 403, before any upgrade",
  async (h) => {
    const now = Math.floor(Date.now() / 1000);
    const sessionId = uniqueId("session");
    const claims = { type: "runner", runnerId: "runner-bad001", userId: "user-1" };
    const cases: [string, string, number, string][] = [
      ["client token", await clientToken({ userId: "user-1", sessionId }), 401, "token wrong-type"],
      [
        "expired",
        await new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuer(TOKEN_ISSUER)
          .setAudience(TOKEN_AUDIENCE).setJti("pair-x").setIssuedAt(now - 7200).setExpirationTime(now - 3600)
          .sign(TEST_SECRET),
        401,
        "token expired",
      ],
      [
        "bad signature",
        (await runnerToken(h.backend, "runner-bad001", "user-1", { secret: OTHER_SECRET })).token,
        401,
        "token invalid",
      ],
      [
        "alg none",
        new UnsecuredJWT(claims).setIssuer(TOKEN_ISSUER).setAudience(TOKEN_AUDIENCE).setJti("pair-y")
          .setIssuedAt(now).setExpirationTime(now + 3600).encode(),
        401,
        "token invalid",
      ],
      ["garbage", "not-a-jwt", 401, "token invalid"],
      [
        "revoked",
        (await runnerToken(undefined, "runner-bad001", "user-1")).token,
        403,
        "runner token revoked",
      ],
    ];
    for (const [name, token, status, error] of cases) {
      const refused = await refusedUpgrade(`${h.relay.url}/runner`, { authorization: `Bearer ${token}` });
      assertEquals({ status: refused.status, error: refused.body.error }, { status, error }, name);
    }
    const mismatch = await runnerToken(undefined, "runner-bad001", "user-1");
    h.backend.allow(mismatch.jti, { runnerId: "runner-bad001", userId: "user-2" });
    assertEquals((await refusedUpgrade(`${h.relay.url}/runner?token=${mismatch.token}`)).status, 403);
    const missing = await refusedUpgrade(`${h.relay.url}/runner`);
    assertEquals(missing.status, 401);
    assert(missing.body.error?.includes("Authorization: Bearer"), missing.body.error);
    const browserLike = h.track(new ScriptedRunner(h.relay.url, "not-a-jwt"));
    await assertRejects(browserLike.opened);
    const metrics = await h.metrics();
    assert(metrics.includes("relay_websockets_open 0"), metrics);
    assert(metrics.includes('relay_auth_failures_total{endpoint="runner",reason="wrong-type"} 1'), metrics);
    assert(metrics.includes('relay_auth_failures_total{endpoint="runner",reason="expired"} 1'), metrics);
    assert(metrics.includes('relay_auth_failures_total{endpoint="runner",reason="revoked"} 2'), metrics);
    assert(!JSON.stringify(h.relay.logs).includes(cases[0][1]), "tokens never logged");
  },
);

relayTest("verify unavailable: the runner is refused with 503 and Retry-After (fail closed)", async (h) => {
  h.backend.down = true;
  const { token } = await runnerToken(h.backend, "runner-down01", "user-1");
  const refused = await refusedUpgrade(`${h.relay.url}/runner`, { authorization: `Bearer ${token}` });
  assertEquals(refused.status, 503);
  assertEquals(refused.headers["retry-after"], "5");
});

relayTest("a runner cannot reach another runner's clients; ten malformed frames close it 1008", async (h) => {
  const owner = await h.runner("runner-own001", "user-1");
  await owner.welcome();
  const other = await h.runner("runner-oth001", "user-2");
  await other.welcome();
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId });
  const attach = await owner.next((m) => m.type === "attach");
  await client.meta(MetaLine.cwd("/home/test"));
  other.send({ type: "stdout", sessionId, clientId: attach.clientId, data: "spoofed", offset: 0 });
  other.send({ type: "stdout", sessionId, data: "spoofed", offset: 0 });
  other.send({ type: "end", sessionId, exitCode: 0 });
  owner.write(sessionId, "real\n");
  await client.waitOutput("real\n");
  assertEquals(client.output(), "real\n");
  assert(!client.isClosed);
  for (let i = 0; i < 10; i++) other.send(i % 2 ? "[]" : { type: "stdout" });
  assertEquals(await other.closed, { code: CloseCode.POLICY, reason: CloseReason.POLICY });
});
