import { deepStrictEqual as assertEquals, equal } from "node:assert/strict";
import { withApi } from "./_test_fixture.ts";
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
