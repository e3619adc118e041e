import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  apiJson,
  createSession,
  login,
  pairRunner,
  revokeRunner,
  signup,
  startTestApp,
} from "@coda/api/testing";
import { CloseCode, MetaLine } from "./protocol.ts";
import { type Peer, refusedUpgrade, ScriptedClient, ScriptedRunner, waitFor } from "./testing.ts";

/** The app's runner list as the signed-in user sees it. */
function runners(url: string, cookie: string): Promise<{ runnerId: string; online: boolean }[]> {
  return apiJson(url, "/api/devmode/runners", { cookie });
}

Deno.test("in the app: a runner and a client talk through deno task start's server", async () => {
  const app = await startTestApp({ relayLimits: { runnerWaitMs: 2000 } });
  const peers: Peer[] = [];
  try {
    const alice = await signup(app.url);
    const bob = await signup(app.url);
    const paired = await pairRunner(app.url, alice.cookie);
    const runner = new ScriptedRunner(app.relayUrl, paired.runnerToken);
    peers.push(runner);
    assertEquals((await runner.welcome()).runnerId, paired.runnerId);
    await waitFor(async () => (await runners(app.url, alice.cookie))[0]?.online, "runner listed online");

    const session = await createSession(app.url, alice.cookie, {
      ideaId: "idea-1",
      runnerId: paired.runnerId,
    });
    const client = new ScriptedClient(app.relayUrl, session.token, { origin: app.config.publicUrl });
    peers.push(client);
    const attach = await runner.next((m) => m.type === "attach");
    assertEquals([attach.sessionId, attach.ideaId], [session.sessionId, "idea-1"]);
    await client.meta(MetaLine.session(session.sessionId));
    client.send({ type: "stdin", sessionId: session.sessionId, data: "echo hi\r" });
    await waitFor(() => runner.stdin(session.sessionId) === "echo hi\r", "stdin at the runner");
    runner.write(session.sessionId, "hi\r\n");
    await client.waitOutput("hi\r\n");

    // The same client token cannot be used twice.
    const replay = await refusedUpgrade(`${app.relayUrl}/client?token=${session.token}`);
    assertEquals([replay.status, replay.body.error], [401, "token already used"]);

    // Bob's sessions never reach Alice's runner.
    const bobSession = await createSession(app.url, bob.cookie, { ideaId: "idea-b" });
    const intruder = new ScriptedClient(app.relayUrl, bobSession.token);
    peers.push(intruder);
    await intruder.meta(MetaLine.relay("waiting"));
    assertEquals((await intruder.closed).code, CloseCode.NO_RUNNER);
    assert(!runner.received.some((m) => m.sessionId === bobSession.sessionId));

    // Revoking through the API disconnects the runner within 5 s (KV watch) and tells its client.
    const revokedAt = Date.now();
    await revokeRunner(app.url, alice.cookie, paired.runnerId);
    assertEquals(await runner.closed, { code: CloseCode.REVOKED, reason: "runner token revoked" });
    assert(Date.now() - revokedAt < 5000, `revocation took ${Date.now() - revokedAt} ms`);
    await client.meta(MetaLine.relay("revoked"));
    assertEquals((await client.closed).code, CloseCode.REVOKED);
    const again = await refusedUpgrade(`${app.relayUrl}/runner`, {
      authorization: `Bearer ${paired.runnerToken}`,
    });
    assertEquals([again.status, again.body.error], [403, "runner token revoked"]);
  } finally {
    await Promise.all(peers.map((peer) => peer.close()));
    await app.close();
  }
});

Deno.test("in the app: signing out closes the user's terminal links 4401 at once; stdin sent after never runs", async () => {
  const app = await startTestApp();
  const peers: Peer[] = [];
  const track = <P extends Peer>(peer: P) => {
    peers.push(peer);
    return peer;
  };
  try {
    const alice = await signup(app.url);
    const bob = await signup(app.url);
    const alicePaired = await pairRunner(app.url, alice.cookie);
    const bobPaired = await pairRunner(app.url, bob.cookie);
    const runner = track(new ScriptedRunner(app.relayUrl, alicePaired.runnerToken));
    const bobRunner = track(new ScriptedRunner(app.relayUrl, bobPaired.runnerToken));
    await runner.welcome();
    await bobRunner.welcome();
    const session = await createSession(app.url, alice.cookie, { ideaId: "idea-1" });
    const client = track(new ScriptedClient(app.relayUrl, session.token));
    await client.meta(MetaLine.session(session.sessionId));
    const bobSession = await createSession(app.url, bob.cookie, { ideaId: "idea-b" });
    const bobClient = track(new ScriptedClient(app.relayUrl, bobSession.token));
    await bobClient.meta(MetaLine.session(bobSession.sessionId));

    await apiJson(app.url, "/api/auth/logout", { method: "POST", cookie: alice.cookie });
    // The attack: the page (or whoever holds the socket) keeps typing after the sign-out.
    client.send({ type: "stdin", sessionId: session.sessionId, data: "touch /tmp/pwned\r" });
    await waitFor(() => client.isClosed, "the link closed after the sign-out", 5000);
    assertEquals(await client.closed, { code: CloseCode.UNAUTHORIZED, reason: "signed out" });
    // The runner is told the client left; what the client sent reaches it before that or never.
    await runner.next((m) => m.type === "detach" && m.sessionId === session.sessionId, "detach");
    assertEquals(runner.stdin(session.sessionId), "");

    // Another user's link is untouched.
    bobClient.send({ type: "stdin", sessionId: bobSession.sessionId, data: "ls\r" });
    await waitFor(() => bobRunner.stdin(bobSession.sessionId) === "ls\r", "bob's stdin");
    assert(!bobClient.isClosed);

    // Signed in again, a new link works and stays.
    const cookie = await login(app.url, alice.email, alice.password);
    const again = await createSession(app.url, cookie, { ideaId: "idea-1" });
    const next = track(new ScriptedClient(app.relayUrl, again.token));
    await next.meta(MetaLine.session(again.sessionId));
    next.send({ type: "stdin", sessionId: again.sessionId, data: "pwd\r" });
    await waitFor(() => runner.stdin(again.sessionId) === "pwd\r", "stdin after signing in again");
    assert(!next.isClosed);
  } finally {
    await Promise.all(peers.map((peer) => peer.close()));
    await app.close();
  }
});
