import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  apiJson,
  createSession,
  login,
  pairRunner,
  revokeRunner,
  shareSession,
  signup,
  type StartedApp,
  startTestApp,
  watchTicket,
} from "@coda/api/testing";
import type { ShareView } from "@coda/api/contract";
import { RelayConfigError } from "./config.ts";
import { type StandaloneOptions, startStandaloneRelay } from "./main.ts";
import { CloseCode, MetaLine } from "./protocol.ts";
import {
  type Peer,
  refusedUpgrade,
  ScriptedClient,
  ScriptedRunner,
  standaloneRelayEnv,
  waitFor,
} from "./testing.ts";

async function withApps(
  options: StandaloneOptions,
  fn: (
    app: StartedApp,
    relay: Awaited<ReturnType<typeof startStandaloneRelay>>,
    track: <P extends Peer>(p: P) => P,
  ) => Promise<void>,
): Promise<void> {
  const started = await startTestApp();
  let appClosed: Promise<void> | undefined;
  // The app may be stopped mid-test (verify down); close it once.
  const app: StartedApp = { ...started, close: () => appClosed ??= started.close() };
  const relay = await startStandaloneRelay(standaloneRelayEnv(app), { log: () => {}, ...options });
  const peers: Peer[] = [];
  try {
    await fn(app, relay, (peer) => {
      peers.push(peer);
      return peer;
    });
  } finally {
    await Promise.all(peers.map((peer) => peer.close()));
    await relay.close();
    await app.close();
  }
}

Deno.test("standalone: serves /healthz and refuses unknown paths", async () => {
  await withApps({}, async (_app, relay) => {
    const health = await fetch(`${relay.url}/healthz`);
    assertEquals([health.status, await health.json()], [200, { ok: true, instance: relay.relay.instanceId }]);
    const missing = await fetch(`${relay.url}/nope`);
    assertEquals([missing.status, await missing.json()], [404, { error: "not found" }]);
    const metrics = await fetch(`${relay.url}/metrics`);
    assert((await metrics.text()).includes("relay_runners_connected 0"));
  });
});

Deno.test("standalone: verify up — runner and client exchange messages, presence reaches the app", async () => {
  await withApps({}, async (app, relay, track) => {
    const user = await signup(app.url);
    const paired = await pairRunner(app.url, user.cookie);
    const runner = track(new ScriptedRunner(relay.relayUrl, paired.runnerToken));
    await runner.welcome();
    await waitFor(async () => {
      const list = await apiJson<{ online: boolean }[]>(app.url, "/api/devmode/runners", {
        cookie: user.cookie,
      });
      return list[0]?.online;
    }, "presence in the app");
    const session = await createSession(app.url, user.cookie, { ideaId: "idea-1" });
    const client = track(new ScriptedClient(relay.relayUrl, session.token, { origin: app.config.publicUrl }));
    await client.meta(MetaLine.cwd("/home/test"));
    client.send({ type: "stdin", sessionId: session.sessionId, data: "pwd\r" });
    await waitFor(() => runner.stdin(session.sessionId) === "pwd\r", "stdin");
    runner.write(session.sessionId, "/home/test\r\n");
    await client.waitOutput("/home/test\r\n");
    const reused = await refusedUpgrade(`${relay.relayUrl}/client?token=${session.token}`);
    assertEquals([reused.status, reused.body.error], [401, "token already used"]);
    const foreign = track(new ScriptedClient(relay.relayUrl, session.token, { origin: "https://evil.test" }));
    await foreign.closed;
    assert(foreign.error?.includes("403"), foreign.error);
  });
});

Deno.test("standalone: a revoked runner is refused and a connected one is dropped by re-verify", async () => {
  await withApps({ limits: { reverifyIntervalMs: 300 }, verifyCacheMs: 100 }, async (app, relay, track) => {
    const user = await signup(app.url);
    const paired = await pairRunner(app.url, user.cookie);
    const runner = track(new ScriptedRunner(relay.relayUrl, paired.runnerToken));
    await runner.welcome();
    const session = await createSession(app.url, user.cookie, { ideaId: "idea-1" });
    const client = track(new ScriptedClient(relay.relayUrl, session.token));
    await client.meta(MetaLine.cwd("/home/test"));
    await revokeRunner(app.url, user.cookie, paired.runnerId);
    assertEquals((await runner.closed).code, CloseCode.REVOKED);
    await client.meta(MetaLine.relay("revoked"));
    assertEquals((await client.closed).code, CloseCode.REVOKED);
    const again = await refusedUpgrade(`${relay.relayUrl}/runner`, {
      authorization: `Bearer ${paired.runnerToken}`,
    });
    assertEquals([again.status, again.body.error], [403, "runner token revoked"]);
  });
});

Deno.test("standalone: verify down — the runner is refused (fail closed)", async () => {
  await withApps({}, async (app, relay) => {
    const user = await signup(app.url);
    const paired = await pairRunner(app.url, user.cookie);
    await app.close();
    const refused = await refusedUpgrade(`${relay.relayUrl}/runner`, {
      authorization: `Bearer ${paired.runnerToken}`,
    });
    assertEquals([refused.status, refused.body.error], [
      503,
      "could not verify the runner token, retry later",
    ]);
  });
});

Deno.test("standalone: bad configuration fails fast with one clear line", async () => {
  const base = {
    DEVMODE_JWT_SECRET: "Sx7kQ2vR9mLp4WcN0tYb3HdD6gJf1uAe",
    RELAY_INTERNAL_SECRET: "Rz8mQ2vX7kLp4WcN9tYb3HsD6gJf1uAq",
    DEVMODE_APP_URL: "https://app.example.com",
    DEVMODE_ALLOWED_ORIGINS: "https://app.example.com",
  };
  const cases: [Record<string, string>, string][] = [
    [{ DEVMODE_JWT_SECRET: "" }, "DEVMODE_JWT_SECRET is required"],
    [{ DEVMODE_JWT_SECRET: "short" }, "DEVMODE_JWT_SECRET must be at least 32 bytes long (got 5)"],
    [{ RELAY_INTERNAL_SECRET: "x" }, "RELAY_INTERNAL_SECRET must be at least 32 bytes long (got 1)"],
    [{ DEVMODE_APP_URL: "" }, "DEVMODE_APP_URL is required"],
    [{ DEVMODE_APP_URL: "ftp://x" }, 'DEVMODE_APP_URL must start with http:// or https://, got "ftp://x"'],
    [{ DEVMODE_ALLOWED_ORIGINS: " , " }, "DEVMODE_ALLOWED_ORIGINS is required"],
    [
      { DEVMODE_ALLOWED_ORIGINS: "https://app.example.com/path" },
      'DEVMODE_ALLOWED_ORIGINS must hold bare origins like https://app.example.com, got "https://app.example.com/path"',
    ],
    [{ PORT: "http" }, 'PORT must be a number from 0 to 65535, got "http"'],
  ];
  for (const [overrides, message] of cases) {
    let error: unknown;
    try {
      await startStandaloneRelay({ ...base, ...overrides });
    } catch (caught) {
      error = caught;
    }
    assert(error instanceof RelayConfigError, message);
    assertEquals(error.message, message);
  }
});

Deno.test("standalone: one client token attaches once across the in-app and the standalone relay", async () => {
  await withApps({}, async (app, relay, track) => {
    const user = await signup(app.url);
    // Used on the in-app relay first, then tried on the standalone one.
    const first = await createSession(app.url, user.cookie, { ideaId: "idea-1" });
    const inApp = track(new ScriptedClient(app.relayUrl, first.token));
    await inApp.meta(MetaLine.relay("waiting"));
    const replayedAlone = await refusedUpgrade(`${relay.relayUrl}/client?token=${first.token}`);
    assertEquals([replayedAlone.status, replayedAlone.body.error], [401, "token already used"]);
    // And the other way round.
    const second = await createSession(app.url, user.cookie, { ideaId: "idea-1" });
    const alone = track(new ScriptedClient(relay.relayUrl, second.token));
    await alone.meta(MetaLine.relay("waiting"));
    const replayedInApp = await refusedUpgrade(`${app.relayUrl}/client?token=${second.token}`);
    assertEquals([replayedInApp.status, replayedInApp.body.error], [401, "token already used"]);
  });
});

Deno.test("standalone: signing out closes the user's links 4401 at the next re-check", async () => {
  await withApps({ limits: { reverifyIntervalMs: 300 } }, async (app, relay, track) => {
    const user = await signup(app.url);
    const other = await signup(app.url);
    const paired = await pairRunner(app.url, user.cookie);
    const runner = track(new ScriptedRunner(relay.relayUrl, paired.runnerToken));
    await runner.welcome();
    const session = await createSession(app.url, user.cookie, { ideaId: "idea-1" });
    const client = track(new ScriptedClient(relay.relayUrl, session.token));
    await client.meta(MetaLine.session(session.sessionId));
    const otherSession = await createSession(app.url, other.cookie, { ideaId: "idea-o" });
    const otherClient = track(new ScriptedClient(relay.relayUrl, otherSession.token));
    await otherClient.meta(MetaLine.relay("waiting"));

    await apiJson(app.url, "/api/auth/logout", { method: "POST", cookie: user.cookie });
    await waitFor(() => client.isClosed, "the link closed after the sign-out", 5000);
    assertEquals(await client.closed, { code: CloseCode.UNAUTHORIZED, reason: "signed out" });
    await runner.next((m) => m.type === "detach" && m.sessionId === session.sessionId, "detach");
    assert(!otherClient.isClosed, "another user's link stays");

    // Signed in again, a new link reaches the runner.
    const cookie = await login(app.url, user.email, user.password);
    const again = await createSession(app.url, cookie, { ideaId: "idea-1" });
    const next = track(new ScriptedClient(relay.relayUrl, again.token));
    await next.meta(MetaLine.session(again.sessionId));
    next.send({ type: "stdin", sessionId: again.sessionId, data: "pwd\r" });
    await waitFor(() => runner.stdin(again.sessionId) === "pwd\r", "stdin after signing in again");
  });
});

Deno.test("standalone: a share's viewer is checked and reported through the app, and cut within 5 s of a revoke seen in the shared KV", async () => {
  const app = await startTestApp();
  const relay = await startStandaloneRelay(
    { ...standaloneRelayEnv(app), DEVMODE_KV_URL: app.config.kvUrl, DEVMODE_INSTANCE_ID: "alone" },
    { log: () => {} },
  );
  const peers: Peer[] = [];
  try {
    const user = await signup(app.url);
    const paired = await pairRunner(app.url, user.cookie);
    const runner = new ScriptedRunner(relay.relayUrl, paired.runnerToken);
    peers.push(runner);
    await runner.welcome();
    const session = await createSession(app.url, user.cookie, {
      ideaId: "idea-1",
      runnerId: paired.runnerId,
    });
    const owner = new ScriptedClient(relay.relayUrl, session.token);
    peers.push(owner);
    await owner.meta(MetaLine.session(session.sessionId));
    const shared = await shareSession(app.url, user.cookie, session.sessionId);
    const { token } = await (await watchTicket(app.url, shared.url)).json();
    const viewer = new ScriptedClient(relay.relayUrl, token);
    peers.push(viewer);
    await viewer.meta(MetaLine.session(session.sessionId));
    const path = `/api/devmode/sessions/${session.sessionId}/shares`;
    await waitFor(async () => {
      const shares = await apiJson<ShareView[]>(app.url, path, { cookie: user.cookie });
      return shares[0]?.viewers.length === 1;
    }, "the viewer reported to the app");
    viewer.send({ type: "stdin", sessionId: session.sessionId, data: "whoami\r" });
    const started = Date.now();
    await apiJson(app.url, `/api/devmode/shares/${shared.share.shareId}`, {
      cookie: user.cookie,
      method: "DELETE",
    });
    assertEquals((await viewer.closed).code, CloseCode.REVOKED);
    assert(Date.now() - started < 5000, `cut after ${Date.now() - started} ms`);
    assertEquals(runner.stdin(session.sessionId), "", "the viewer's keystrokes never reached the runner");
    assert(!owner.isClosed);
  } finally {
    await Promise.all(peers.map((peer) => peer.close()));
    await relay.close();
    await app.close();
  }
});
