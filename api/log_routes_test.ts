import { deepStrictEqual as assertEquals, equal, match, ok } from "node:assert/strict";
import { decodeJwt, SignJWT, UnsecuredJWT } from "jose";
import { TOKEN_AUDIENCE, TOKEN_ISSUER } from "@coda/relay/tokens";
import { type TestApi, withApi } from "./_test_fixture.ts";
import { apiJson, apiRequest, createSession, pairRunner, revokeRunner, signup } from "./testing.ts";

function ingest(api: TestApi, token: string | null, body: unknown): Promise<Response> {
  return fetch(`${api.url}/api/devmode/logs/ingest`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

async function expectStatus(response: Promise<Response>, status: number): Promise<Record<string, unknown>> {
  const res = await response;
  const body = await res.json();
  equal(res.status, status, JSON.stringify(body));
  return body;
}

async function setup(api: TestApi) {
  const user = await signup(api.url);
  const runner = await pairRunner(api.url, user.cookie);
  const session = await createSession(api.url, user.cookie, { ideaId: "idea", runnerId: runner.runnerId });
  return { user, runner, session };
}

Deno.test("logs: ingest then download as asciicast v2", async () => {
  await withApi(async (api) => {
    const { user, runner, session } = await setup(api);
    const t0 = api.clock.now();
    const body = await expectStatus(
      ingest(api, runner.runnerToken, {
        sessionId: session.sessionId,
        cols: 120,
        rows: 40,
        chunks: [{ t: t0, data: "$ ls\r\n" }, { t: t0 + 1500, data: "a.txt  b.txt\r\n" }],
      }),
      200,
    );
    assertEquals(body, { ok: true, bytes: 20 });
    await expectStatus(
      ingest(api, runner.runnerToken, {
        sessionId: session.sessionId,
        chunks: [{ t: t0 + 2250, data: "é\u{1F600}" }],
      }),
      200,
    );
    const response = await apiRequest(api.url, `/api/devmode/logs/${session.sessionId}`, {
      cookie: user.cookie,
    });
    equal(response.status, 200);
    equal(response.headers.get("content-type"), "application/x-asciicast");
    const lines = (await response.text()).trimEnd().split("\n").map((line) => JSON.parse(line));
    assertEquals(lines, [
      { version: 2, width: 120, height: 40, timestamp: Math.floor(t0 / 1000) },
      [0, "o", "$ ls\r\n"],
      [1.5, "o", "a.txt  b.txt\r\n"],
      [2.25, "o", "é\u{1F600}"],
    ]);
    const listed = await apiJson(api.url, "/api/devmode/logs", { cookie: user.cookie });
    assertEquals(listed, [{ sessionId: session.sessionId, ideaId: "idea", startedAt: t0, bytes: 26 }]);
  });
});

Deno.test("logs: large output is split under the KV value limit and comes back intact", async () => {
  await withApi(async (api) => {
    const { user, runner, session } = await setup(api);
    const t = api.clock.now();
    const big = "é".repeat(100_000) + "\u{1F600}".repeat(50_000) + "x".repeat(100_000);
    await expectStatus(
      ingest(api, runner.runnerToken, { sessionId: session.sessionId, chunks: [{ t, data: big }] }),
      200,
    );
    let values = 0;
    for await (const _ of api.kv.list({ prefix: ["log_chunks", session.sessionId] })) values++;
    ok(values > 5, `split into ${values} values`);
    const text =
      await (await apiRequest(api.url, `/api/devmode/logs/${session.sessionId}`, { cookie: user.cookie }))
        .text();
    const events = text.trimEnd().split("\n").slice(1).map((line) => JSON.parse(line));
    equal(events.map((event) => event[2]).join(""), big);
  });
});

Deno.test("logs: download and listing are owner-only", async () => {
  await withApi(async (api) => {
    const { runner, session } = await setup(api);
    const eve = await signup(api.url);
    await expectStatus(
      ingest(api, runner.runnerToken, { sessionId: session.sessionId, chunks: [{ t: 1, data: "x" }] }),
      200,
    );
    await expectStatus(
      apiRequest(api.url, `/api/devmode/logs/${session.sessionId}`, { cookie: eve.cookie }),
      403,
    );
    await expectStatus(apiRequest(api.url, `/api/devmode/logs/${session.sessionId}`), 401);
    assertEquals(await apiJson(api.url, "/api/devmode/logs", { cookie: eve.cookie }), []);
    const fresh = await createSession(api.url, eve.cookie, { ideaId: "i" });
    await expectStatus(
      apiRequest(api.url, `/api/devmode/logs/${fresh.sessionId}`, { cookie: eve.cookie }),
      404,
    );
  });
});

Deno.test("logs ingest: the session must be the runner's user's", async () => {
  await withApi(async (api) => {
    const { runner } = await setup(api);
    const eve = await signup(api.url);
    const evesSession = await createSession(api.url, eve.cookie, { ideaId: "i" });
    await expectStatus(
      ingest(api, runner.runnerToken, { sessionId: evesSession.sessionId, chunks: [{ t: 1, data: "x" }] }),
      403,
    );
    await expectStatus(
      ingest(api, runner.runnerToken, { sessionId: "AAAAAAAAAAAAAAAAAAAAAA", chunks: [{ t: 1, data: "x" }] }),
      404,
    );
  });
});

Deno.test("logs ingest: token confusion, alg:none, wrong key, expiry and revocation are 401", async () => {
  await withApi(async (api) => {
    const { user, runner, session } = await setup(api);
    const body = { sessionId: session.sessionId, chunks: [{ t: 1, data: "x" }] };
    await expectStatus(ingest(api, null, body), 401);
    const clientToken =
      (await createSession(api.url, user.cookie, { ideaId: "i", sessionId: session.sessionId }))
        .token;
    match(String((await expectStatus(ingest(api, clientToken, body), 401)).error), /wrong-type/);
    const claims = decodeJwt(runner.runnerToken);
    const unsecured = new UnsecuredJWT(claims).encode();
    await expectStatus(ingest(api, unsecured, body), 401);
    const wrongKey = await new SignJWT(claims)
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .sign(new TextEncoder().encode("w".repeat(32)));
    await expectStatus(ingest(api, wrongKey, body), 401);
    api.clock.advance((api.config.runnerTokenTtlSeconds + 61) * 1000);
    match(String((await expectStatus(ingest(api, runner.runnerToken, body), 401)).error), /expired/);
    api.clock.advance(-(api.config.runnerTokenTtlSeconds + 61) * 1000);
    await expectStatus(ingest(api, runner.runnerToken, body), 200);
    await revokeRunner(api.url, user.cookie, runner.runnerId);
    match(String((await expectStatus(ingest(api, runner.runnerToken, body), 401)).error), /revoked/);
  });
});

Deno.test("logs ingest: malformed JSON and wrong types are 400, over 1 MiB is 413", async () => {
  await withApi(async (api) => {
    const { runner, session } = await setup(api);
    await expectStatus(ingest(api, runner.runnerToken, "{not json"), 400);
    await expectStatus(ingest(api, runner.runnerToken, { sessionId: session.sessionId, chunks: "x" }), 400);
    await expectStatus(
      ingest(api, runner.runnerToken, { sessionId: session.sessionId, chunks: [{ t: "now", data: "x" }] }),
      400,
    );
    await expectStatus(
      ingest(api, runner.runnerToken, { sessionId: session.sessionId, chunks: [{ t: 1, data: 5 }] }),
      400,
    );
    const huge = { sessionId: session.sessionId, chunks: [{ t: 1, data: "x".repeat(1024 * 1024) }] };
    await expectStatus(ingest(api, runner.runnerToken, huge), 413);
  });
});

Deno.test("logs ingest: past the per-user storage total is 429; another user still records", async () => {
  const limit = 100_000;
  await withApi(async (api) => {
    const ada = await setup(api);
    const eve = await setup(api);
    equal(api.config.recordingBytesPerUser, limit);
    // The abuse: many sessions, each well under the per-recording cap, all ingesting at once.
    const sessions = await Promise.all(
      Array.from({ length: 4 }, () => createSession(api.url, ada.user.cookie, { ideaId: "i" })),
    );
    const batch = (sessionId: string) => ({ sessionId, chunks: [{ t: 1, data: "x".repeat(limit / 10) }] });
    const responses = await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) => ingest(api, ada.runner.runnerToken, batch(sessions[i % 4].sessionId)),
      ),
    );
    const bodies = await Promise.all(responses.map((response) => response.json()));
    equal(responses.filter((response) => response.status === 200).length, 10);
    responses.forEach((response, i) => {
      if (response.status === 200) return;
      equal(response.status, 429);
      equal(
        bodies[i].error,
        `recording storage limit reached: ${limit} bytes per user; delete recordings to record more`,
      );
    });
    const listed = await apiJson<{ bytes: number }[]>(api.url, "/api/devmode/logs", {
      cookie: ada.user.cookie,
    });
    equal(listed.reduce((sum, { bytes }) => sum + bytes, 0), limit);
    await expectStatus(
      ingest(api, ada.runner.runnerToken, {
        sessionId: ada.session.sessionId,
        chunks: [{ t: 2, data: "y" }],
      }),
      429,
    );
    assertEquals(
      await expectStatus(ingest(api, eve.runner.runnerToken, batch(eve.session.sessionId)), 200),
      { ok: true, bytes: limit / 10 },
    );
  }, { env: { DEVMODE_RECORDING_BYTES_PER_USER: String(limit) } });
});

Deno.test("logs: deleting a recording gives its bytes back; the session records no more", async () => {
  const limit = 100_000;
  await withApi(async (api) => {
    const { user, runner, session } = await setup(api);
    const eve = await signup(api.url);
    const other = await createSession(api.url, user.cookie, { ideaId: "i" });
    const fill = (sessionId: string, bytes: number) =>
      ingest(api, runner.runnerToken, { sessionId, chunks: [{ t: 1, data: "x".repeat(bytes) }] });
    await expectStatus(fill(session.sessionId, 60_000), 200);
    await expectStatus(fill(other.sessionId, 40_000), 200);
    await expectStatus(fill(other.sessionId, 1), 429);
    const path = `/api/devmode/logs/${session.sessionId}`;
    await expectStatus(apiRequest(api.url, path, { method: "DELETE", cookie: eve.cookie }), 403);
    await expectStatus(apiRequest(api.url, path, { method: "DELETE" }), 401);
    assertEquals(
      await expectStatus(apiRequest(api.url, path, { method: "DELETE", cookie: user.cookie }), 200),
      { ok: true },
    );
    await expectStatus(apiRequest(api.url, path, { cookie: user.cookie }), 404);
    await expectStatus(apiRequest(api.url, path, { method: "DELETE", cookie: user.cookie }), 404);
    let chunks = 0;
    for await (const _ of api.kv.list({ prefix: ["log_chunks", session.sessionId] })) chunks++;
    equal(chunks, 0);
    await expectStatus(fill(session.sessionId, 1), 410);
    await expectStatus(fill(other.sessionId, 60_000), 200);
    await expectStatus(fill(other.sessionId, 1), 429);
    assertEquals(
      (await apiJson<{ sessionId: string; bytes: number }[]>(api.url, "/api/devmode/logs", {
        cookie: user.cookie,
      }))
        .map(({ sessionId, bytes }) => [sessionId, bytes]),
      [[other.sessionId, limit]],
    );
  }, { env: { DEVMODE_RECORDING_BYTES_PER_USER: String(limit) } });
});
