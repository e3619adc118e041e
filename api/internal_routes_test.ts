import { deepStrictEqual as assertEquals, equal } from "node:assert/strict";
import { withApi } from "./_test_fixture.ts";
import { createKvRelayBackend } from "./relay_backend.ts";
import { apiJson, apiRequest, pairRunner, signup } from "./testing.ts";

async function verify(url: string, jti: string | null, secret?: string) {
  const query = jti === null ? "" : `?jti=${encodeURIComponent(jti)}`;
  const response = await apiRequest(url, `/api/devmode/tokens/runner/verify${query}`, {
    headers: secret === undefined ? {} : { "x-relay-secret": secret },
  });
  return { status: response.status, body: await response.json() };
}

Deno.test("verify: valid, unknown, and secret checks", async () => {
  await withApi(async (api) => {
    const user = await signup(api.url);
    const runner = await pairRunner(api.url, user.cookie);
    const secret = api.config.relayInternalSecret;
    assertEquals(await verify(api.url, runner.jti, secret), {
      status: 200,
      body: { valid: true, runnerId: runner.runnerId, userId: user.userId },
    });
    assertEquals(await verify(api.url, "unknown-jti", secret), { status: 403, body: { valid: false } });
    equal((await verify(api.url, runner.jti)).status, 401);
    equal((await verify(api.url, runner.jti, secret + "x")).status, 401);
    equal((await verify(api.url, runner.jti, "")).status, 401);
    equal((await verify(api.url, null, secret)).status, 400);
  });
});

Deno.test("internal presence: writes presence with the relay secret only", async () => {
  await withApi(async (api) => {
    const user = await signup(api.url);
    const runner = await pairRunner(api.url, user.cookie);
    const body = { runnerId: runner.runnerId, userId: user.userId, online: true };
    const refused = await apiRequest(api.url, "/api/devmode/internal/presence", {
      body,
      headers: { "x-relay-secret": "wrong" },
    });
    equal(refused.status, 401);
    await refused.body?.cancel();
    const bad = await apiRequest(api.url, "/api/devmode/internal/presence", {
      body: { runnerId: runner.runnerId, online: "yes" },
      headers: { "x-relay-secret": api.config.relayInternalSecret },
    });
    equal(bad.status, 400);
    await bad.body?.cancel();
    const accepted = await apiRequest(api.url, "/api/devmode/internal/presence", {
      body,
      headers: { "x-relay-secret": api.config.relayInternalSecret },
    });
    equal(accepted.status, 204);
    await accepted.body?.cancel();
    const [listed] = await apiJson<{ online: boolean }[]>(api.url, "/api/devmode/runners", {
      cookie: user.cookie,
    });
    equal(listed.online, true);
    const presence = await api.kv.get<{ userId: string; expiresAt: number }>(["presence", runner.runnerId]);
    equal(presence.value?.userId, user.userId);
    equal(presence.value?.expiresAt, api.clock.now() + 90_000);
  });
});

Deno.test("internal client-jti: each jti is fresh once, in the store the in-app relay uses; secret and body checked", async () => {
  await withApi(async (api) => {
    const secret = api.config.relayInternalSecret;
    const consume = async (body: unknown, headers: Record<string, string> = { "x-relay-secret": secret }) => {
      const response = await apiRequest(api.url, "/api/devmode/internal/client-jti", { body, headers });
      return { status: response.status, body: await response.json() };
    };
    const expiresAt = api.clock.now() + 60_000;
    assertEquals(await consume({ jti: "jti-1", expiresAt }), { status: 200, body: { fresh: true } });
    assertEquals(await consume({ jti: "jti-1", expiresAt }), { status: 200, body: { fresh: false } });
    equal(
      await createKvRelayBackend(api.kv, api.clock.now).consumeClientJti("jti-1", new Date(expiresAt)),
      false,
    );
    equal((await consume({ jti: "jti-2", expiresAt }, { "x-relay-secret": "wrong" })).status, 401);
    equal((await consume({ jti: "jti-2", expiresAt }, {})).status, 401);
    equal((await consume({ jti: "", expiresAt })).status, 400);
    equal((await consume({ jti: "jti-2", expiresAt: "soon" })).status, 400);
    // A far-off expiry is cut to the longest a client token can live: the record lapses like any other.
    assertEquals(await consume({ jti: "jti-3", expiresAt: api.clock.now() + 86_400_000 }), {
      status: 200,
      body: { fresh: true },
    });
    api.clock.advance(181_000);
    assertEquals(await consume({ jti: "jti-3", expiresAt }), { status: 200, body: { fresh: true } });
  });
});

Deno.test("internal signed-out: last sign-out per user, with the relay secret only", async () => {
  await withApi(async (api) => {
    const secret = api.config.relayInternalSecret;
    const user = await signup(api.url);
    const other = await signup(api.url);
    const ask = async (body: unknown, headers: Record<string, string> = { "x-relay-secret": secret }) => {
      const response = await apiRequest(api.url, "/api/devmode/internal/signed-out", { body, headers });
      return { status: response.status, body: await response.json() };
    };
    assertEquals(await ask({ userIds: [user.userId, other.userId] }), {
      status: 200,
      body: { signedOut: {} },
    });
    await apiJson(api.url, "/api/auth/logout", { method: "POST", cookie: user.cookie });
    assertEquals(await ask({ userIds: [user.userId, other.userId] }), {
      status: 200,
      body: { signedOut: { [user.userId]: api.clock.now() } },
    });
    equal((await ask({ userIds: [user.userId] }, { "x-relay-secret": "wrong" })).status, 401);
    equal((await ask({ userIds: Array.from({ length: 501 }, (_, i) => `u${i}`) })).status, 400);
  });
});
