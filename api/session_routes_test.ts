import { deepStrictEqual as assertEquals, equal, match, ok } from "node:assert/strict";
import { verifyClientToken } from "@coda/relay/tokens";
import { withApi } from "./_test_fixture.ts";
import { MAX_NEW_SESSIONS, SESSION_WINDOW_MS } from "./devmode_sessions.ts";
import { ScriptedClient, ScriptedRunner, waitFor } from "@coda/relay/testing";
import type { RecentSession } from "./contract.ts";
import {
  apiJson,
  apiRequest,
  createSession,
  pairRunner,
  revokeRunner,
  signup,
  startTestApp,
  type TestUser,
} from "./testing.ts";

Deno.test("sessions: a new session gets a 60 s client token for the relay", async () => {
  await withApi(async (api) => {
    const user = await signup(api.url);
    const created = await createSession(api.url, user.cookie, { ideaId: "idea-1" });
    equal(created.relayUrl, api.config.relayUrl);
    match(created.sessionId, /^[A-Za-z0-9_-]{22}$/);
    const { claims, exp } = await verifyClientToken(api.config.jwtSecret, created.token, {
      now: new Date(api.clock.now()),
    });
    equal(claims.type, "client");
    equal(claims.userId, user.userId);
    equal(claims.sessionId, created.sessionId);
    equal(claims.ideaId, "idea-1");
    equal(claims.runnerId, undefined);
    equal(exp, Math.floor(api.clock.now() / 1000) + 60);
  });
});

Deno.test("sessions: runnerId must be the user's", async () => {
  await withApi(async (api) => {
    const ada = await signup(api.url);
    const eve = await signup(api.url);
    const runner = await pairRunner(api.url, ada.cookie);
    const own = await createSession(api.url, ada.cookie, { ideaId: "i", runnerId: runner.runnerId });
    const { claims } = await verifyClientToken(api.config.jwtSecret, own.token, {
      now: new Date(api.clock.now()),
    });
    equal(claims.runnerId, runner.runnerId);
    for (const runnerId of [runner.runnerId, "no-such-runner"]) {
      const response = await apiRequest(api.url, "/api/devmode/sessions", {
        cookie: eve.cookie,
        body: { ideaId: "i", runnerId },
      });
      equal(response.status, 403);
      ok((await response.json()).error);
    }
  });
});

Deno.test("sessions: reattach gets a fresh token for the same session; another user's is 403", async () => {
  await withApi(async (api) => {
    const ada = await signup(api.url);
    const eve = await signup(api.url);
    const runner = await pairRunner(api.url, ada.cookie);
    const first = await createSession(api.url, ada.cookie, { ideaId: "idea-1", runnerId: runner.runnerId });
    const again = await createSession(api.url, ada.cookie, { ideaId: "idea-1", sessionId: first.sessionId });
    equal(again.sessionId, first.sessionId);
    ok(again.token !== first.token);
    const { claims } = await verifyClientToken(api.config.jwtSecret, again.token, {
      now: new Date(api.clock.now()),
    });
    equal(claims.runnerId, runner.runnerId, "the session keeps its runner");
    const stolen = await apiRequest(api.url, "/api/devmode/sessions", {
      cookie: eve.cookie,
      body: { ideaId: "idea-1", sessionId: first.sessionId },
    });
    equal(stolen.status, 403);
    await stolen.body?.cancel();
    const unknown = await apiRequest(api.url, "/api/devmode/sessions", {
      cookie: ada.cookie,
      body: { ideaId: "idea-1", sessionId: "AAAAAAAAAAAAAAAAAAAAAA" },
    });
    equal(unknown.status, 404);
    await unknown.body?.cancel();
  });
});

Deno.test("sessions: bad input is 400, no sign-in 401", async () => {
  await withApi(async (api) => {
    const user = await signup(api.url);
    for (
      const body of [{}, { ideaId: "" }, { ideaId: 7 }, { ideaId: "i", sessionId: "../x" }, {
        ideaId: "i",
        runnerId: 1,
      }]
    ) {
      const response = await apiRequest(api.url, "/api/devmode/sessions", { cookie: user.cookie, body });
      equal(response.status, 400, JSON.stringify(body));
      ok((await response.json()).error);
    }
    const anonymous = await apiRequest(api.url, "/api/devmode/sessions", { body: { ideaId: "i" } });
    equal(anonymous.status, 401);
    await anonymous.body?.cancel();
  });
});

Deno.test("sessions: GET lists only sessions that can be reattached, by runner name, directory and age", async () => {
  const app = await startTestApp();
  const peers: { close(): Promise<unknown> }[] = [];
  const runnerFor = async (token: string) => {
    const runner = new ScriptedRunner(app.relayUrl, token);
    peers.push(runner);
    await runner.welcome();
    return runner;
  };
  try {
    const ada = await signup(app.url);
    const eve = await signup(app.url);
    const laptop = await pairRunner(app.url, ada.cookie, { name: "laptop" });
    const spare = await pairRunner(app.url, ada.cookie, { name: "spare" });
    const gone = await pairRunner(app.url, ada.cookie, { name: "gone" });
    const eveBox = await pairRunner(app.url, eve.cookie, { name: "eve-box" });
    const [onLaptop, onSpare, onGone] = await Promise.all(
      [laptop, spare, gone, eveBox].map((paired) => runnerFor(paired.runnerToken)),
    );
    const list = (who: TestUser) =>
      apiJson<RecentSession[]>(app.url, "/api/devmode/sessions", { cookie: who.cookie });
    /** A session on `runnerId`, attached once by a client that then left (the shell keeps running). */
    const ran = async (who: TestUser, runnerId: string, ideaId: string) => {
      const created = await createSession(app.url, who.cookie, { ideaId, runnerId });
      const client = new ScriptedClient(app.relayUrl, created.token);
      peers.push(client);
      await client.meta("coda:cwd:/home/test");
      await client.close();
      return created.sessionId;
    };

    const live = await ran(ada, laptop.runnerId, "live-one");
    const exited = await ran(ada, laptop.runnerId, "exited");
    onLaptop.exit(exited, 0);
    await ran(ada, gone.runnerId, "revoked");
    await ran(ada, spare.runnerId, "offline");
    await ran(eve, eveBox.runnerId, "eve's");
    // Created, but no runner ever answered for it: there is no shell to go back to.
    await createSession(app.url, ada.cookie, { ideaId: "never-ran", runnerId: laptop.runnerId });
    const newer = await ran(ada, laptop.runnerId, "live-two");

    const expected = (sessionId: string, ideaId: string) => ({
      sessionId,
      ideaId,
      runnerId: laptop.runnerId,
      runnerName: "laptop",
      cwd: "/home/test",
    });
    await waitFor(async () => (await list(ada)).length === 4, "every session to be reported");
    await revokeRunner(app.url, ada.cookie, gone.runnerId);
    await onSpare.close();
    await onGone.closed;
    await waitFor(async () => {
      const listed = (await list(ada)).map(({ createdAt: _, ...rest }) => rest);
      return JSON.stringify(listed) ===
        JSON.stringify([expected(newer, "live-two"), expected(live, "live-one")]);
    }, "only the live sessions, newest first");
    const [first] = await list(ada);
    ok(Math.abs(first.createdAt - Date.now()) < 60_000);
    equal((await list(eve)).length, 1);

    // Reattaching an ended session is refused in words; a live one is marked as one that ran.
    const refused = await apiRequest(app.url, "/api/devmode/sessions", {
      cookie: ada.cookie,
      body: { ideaId: "exited", sessionId: exited },
    });
    equal(refused.status, 410);
    assertEquals(await refused.json(), { error: "this session has ended" });
    const again = await createSession(app.url, ada.cookie, { ideaId: "live-one", sessionId: live });
    equal((await verifyClientToken(app.config.jwtSecret, again.token)).claims.resume, true);
    const fresh = await createSession(app.url, ada.cookie, { ideaId: "new" });
    equal((await verifyClientToken(app.config.jwtSecret, fresh.token)).claims.resume, undefined);
  } finally {
    for (const peer of peers) await peer.close();
    await app.close();
  }
});

Deno.test("sessions: creating past the per-user quota is 429 with Retry-After; others and reattach unaffected", async () => {
  await withApi(async (api) => {
    const ada = await signup(api.url);
    const eve = await signup(api.url);
    // The abuse: a burst of creations, all in flight at once, so the count must be atomic.
    const responses = await Promise.all(
      Array.from(
        { length: MAX_NEW_SESSIONS + 30 },
        () => apiRequest(api.url, "/api/devmode/sessions", { cookie: ada.cookie, body: { ideaId: "i" } }),
      ),
    );
    const refused = responses.filter((response) => response.status === 429);
    equal(responses.filter((response) => response.status === 201).length, MAX_NEW_SESSIONS);
    equal(refused.length, 30);
    const created: string[] = [];
    for (const response of responses) {
      const body = await response.json();
      if (response.status === 201) created.push(body.sessionId);
      if (response.status !== 429) continue;
      equal(body.error, `session limit reached: at most ${MAX_NEW_SESSIONS} new sessions per 10 minutes`);
      equal(response.headers.get("retry-after"), String(SESSION_WINDOW_MS / 1000));
    }
    await createSession(api.url, ada.cookie, { ideaId: "i", sessionId: created[0] });
    await createSession(api.url, eve.cookie, { ideaId: "i" });

    api.clock.advance(SESSION_WINDOW_MS - 60_000);
    const later = await apiRequest(api.url, "/api/devmode/sessions", {
      cookie: ada.cookie,
      body: { ideaId: "i" },
    });
    equal(later.status, 429);
    equal(later.headers.get("retry-after"), "60");
    await later.body?.cancel();
    api.clock.advance(60_000);
    await createSession(api.url, ada.cookie, { ideaId: "i" });
  });
});

Deno.test("sessions: a runner paired later never becomes the default; the runner the user marked does", async () => {
  await withApi(async (api) => {
    const ada = await signup(api.url);
    const eve = await signup(api.url);
    const real = await pairRunner(api.url, ada.cookie, { name: "desk" });
    const runnerOf = async (body: { ideaId: string; runnerId?: string } = { ideaId: "i" }) => {
      const created = await createSession(api.url, ada.cookie, body);
      const { claims } = await verifyClientToken(api.config.jwtSecret, created.token, {
        now: new Date(api.clock.now()),
      });
      return claims.runnerId;
    };
    const mark = (runnerId: string, isDefault: boolean, cookie = ada.cookie) =>
      apiRequest(api.url, `/api/devmode/runners/${runnerId}`, {
        cookie,
        method: "PATCH",
        body: { default: isDefault },
      });
    const listed = () =>
      apiJson<{ runnerId: string; isDefault: boolean }[]>(api.url, "/api/devmode/runners", {
        cookie: ada.cookie,
      });
    equal((await mark(real.runnerId, true)).status, 200);
    api.clock.advance(60_000);
    // Mallory's runner, approved by Ada through a phishing link, after she chose her default.
    const phished = await pairRunner(api.url, ada.cookie, { name: "desk" });
    assertEquals((await listed()).map((r) => [r.runnerId, r.isDefault]), [
      [real.runnerId, true],
      [phished.runnerId, false],
    ]);
    equal(await runnerOf(), real.runnerId);
    // Naming a runner still wins over the default.
    equal(await runnerOf({ ideaId: "i", runnerId: phished.runnerId }), phished.runnerId);
    // Another user cannot move Ada's default; a wrong body is 400.
    equal((await mark(real.runnerId, false, eve.cookie)).status, 403);
    const bad = await apiRequest(api.url, `/api/devmode/runners/${real.runnerId}`, {
      cookie: ada.cookie,
      method: "PATCH",
      body: { default: "yes" },
    });
    equal(bad.status, 400);
    await bad.body?.cancel();
    // Cleared (or its runner revoked): no runner is named and the relay picks the one paired longest ago.
    equal((await mark(phished.runnerId, false)).status, 200);
    equal(await runnerOf(), real.runnerId, "clearing another runner's mark leaves the default alone");
    equal((await mark(real.runnerId, false)).status, 200);
    equal(await runnerOf(), undefined);
    equal((await mark(phished.runnerId, true)).status, 200);
    await apiJson(api.url, `/api/devmode/runners/${phished.runnerId}`, {
      cookie: ada.cookie,
      method: "DELETE",
    });
    equal(await runnerOf(), undefined);
  });
});
