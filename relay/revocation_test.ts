import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { CloseCode, MetaLine } from "./protocol.ts";
import {
  connectClient,
  MemoryBackend,
  relayTest,
  runnerToken,
  ScriptedRunner,
  uniqueId,
  waitFor,
} from "./testing.ts";

for (const watch of [true, false]) {
  relayTest(
    `revocation disconnects the runner and tells its clients (${watch ? "watch" : "periodic"})`,
    async (h) => {
      const { token, jti } = await runnerToken(h.backend, "runner-revok1", "user-1");
      const runner = h.track(new ScriptedRunner(h.relay.url, token));
      await runner.welcome();
      const sessionId = uniqueId("session");
      const client = await connectClient(h, { userId: "user-1", sessionId });
      await client.meta(MetaLine.cwd("/home/test"));
      const bystander = await h.runner("runner-keep01", "user-1");
      await bystander.welcome();
      h.backend.revoke(jti);
      assertEquals(await runner.closed, { code: CloseCode.REVOKED, reason: "runner token revoked" });
      await client.meta(MetaLine.relay("revoked"));
      assertEquals(await client.closed, { code: CloseCode.REVOKED, reason: "runner revoked" });
      assert(!bystander.isClosed);
      assertEquals(h.backend.presence.get("runner-revok1"), false);
    },
    { backend: new MemoryBackend(watch), limits: { reverifyIntervalMs: 300 } },
  );
}

relayTest(
  "a sign-out closes the user's links opened before it (4401), not later ones or others'",
  async (h) => {
    // Signed out before any link opened: nothing to close.
    h.backend.signOuts.set("user-1", Date.now() - 1000);
    const runner = await h.runner("runner-sign01", "user-1");
    await runner.welcome();
    const sessionId = uniqueId("session");
    const before = await connectClient(h, { userId: "user-1", sessionId });
    await before.meta(MetaLine.cwd("/home/test"));
    const other = await connectClient(h, { userId: "user-2", sessionId: uniqueId("session") });
    await other.meta(MetaLine.relay("waiting"));

    await h.backend.signOut("user-1", Date.now());
    // Acted on before signOut resolved: the link is out of the broker, whatever it sends now is dropped.
    before.send({ type: "stdin", sessionId, data: "touch /tmp/pwned\r" });
    await waitFor(() => before.isClosed, "the link closed", 5000);
    assertEquals(await before.closed, { code: CloseCode.UNAUTHORIZED, reason: "signed out" });
    await runner.next((m) => m.type === "detach" && m.sessionId === sessionId, "detach");
    assertEquals(runner.stdin(sessionId), "");
    assert(!other.isClosed);

    const later = await connectClient(h, { userId: "user-1", sessionId });
    await later.meta(MetaLine.cwd("/home/test"));
    await h.backend.signOut("user-2", Date.now());
    await waitFor(() => other.isClosed, "the other user's link closed", 5000);
    assertEquals((await other.closed).code, CloseCode.UNAUTHORIZED);
    assert(!later.isClosed, "opened after the sign-out");
    later.send({ type: "stdin", sessionId, data: "pwd\r" });
    await waitFor(() => runner.stdin(sessionId) === "pwd\r", "stdin of the later link");
  },
);
