import { deepStrictEqual as assertEquals, equal, ok } from "node:assert/strict";
import { withApi } from "./_test_fixture.ts";
import { createKvRelayBackend } from "./relay_backend.ts";
import type { RunnerView } from "./contract.ts";
import { apiJson, apiRequest, pairRunner, revokeRunner, signup } from "./testing.ts";

Deno.test("runners: list shows the user's runners with presence", async () => {
  await withApi(async (api) => {
    const ada = await signup(api.url);
    const eve = await signup(api.url);
    const runner = await pairRunner(api.url, ada.cookie, { name: "desk", hostname: "ada-pc", os: "linux" });
    await pairRunner(api.url, eve.cookie);
    const list = () => apiJson<RunnerView[]>(api.url, "/api/devmode/runners", { cookie: ada.cookie });
    assertEquals(await list(), [{
      runnerId: runner.runnerId,
      name: "desk",
      hostname: "ada-pc",
      os: "linux",
      createdAt: api.clock.now(),
      lastSeenAt: null,
      online: false,
      isDefault: false,
    }]);
    const backend = createKvRelayBackend(api.kv, api.clock.now);
    await backend.setPresence(runner.runnerId, ada.userId, true);
    const seenAt = api.clock.now();
    const [online] = await list();
    equal(online.online, true);
    equal(online.lastSeenAt, seenAt);
    api.clock.advance(91_000);
    equal((await list())[0].online, false, "presence lapses without a heartbeat");
    await backend.setPresence(runner.runnerId, ada.userId, true);
    await backend.setPresence(runner.runnerId, ada.userId, false);
    const [offline] = await list();
    equal(offline.online, false);
    equal(offline.lastSeenAt, api.clock.now());
  });
});

Deno.test("runners: rename, with validation and ownership", async () => {
  await withApi(async (api) => {
    const ada = await signup(api.url);
    const eve = await signup(api.url);
    const runner = await pairRunner(api.url, ada.cookie);
    const path = `/api/devmode/runners/${runner.runnerId}`;
    await apiJson(api.url, path, { cookie: ada.cookie, method: "PATCH", body: { name: "  studio " } });
    const [listed] = await apiJson<RunnerView[]>(api.url, "/api/devmode/runners", { cookie: ada.cookie });
    equal(listed.name, "studio");
    for (const body of [{ name: "" }, { name: 3 }, {}, { name: "x".repeat(256) }]) {
      const response = await apiRequest(api.url, path, { cookie: ada.cookie, method: "PATCH", body });
      equal(response.status, 400, JSON.stringify(body));
      await response.body?.cancel();
    }
    const foreign = await apiRequest(api.url, path, {
      cookie: eve.cookie,
      method: "PATCH",
      body: { name: "mine" },
    });
    equal(foreign.status, 403);
    await foreign.body?.cancel();
    const missing = await apiRequest(api.url, "/api/devmode/runners/nope-nope-nope", {
      cookie: ada.cookie,
      method: "PATCH",
      body: { name: "x" },
    });
    equal(missing.status, 404);
    await missing.body?.cancel();
    const crossSite = await apiRequest(api.url, path, {
      cookie: ada.cookie,
      method: "PATCH",
      origin: null,
      body: { name: "x" },
    });
    equal(crossSite.status, 403);
    await crossSite.body?.cancel();
  });
});

Deno.test("runners: revoke invalidates the token, bumps the epoch and hides the runner", async () => {
  await withApi(async (api) => {
    const ada = await signup(api.url);
    const eve = await signup(api.url);
    const runner = await pairRunner(api.url, ada.cookie);
    const foreign = await apiRequest(api.url, `/api/devmode/runners/${runner.runnerId}`, {
      cookie: eve.cookie,
      method: "DELETE",
    });
    equal(foreign.status, 403);
    await foreign.body?.cancel();
    const backend = createKvRelayBackend(api.kv, api.clock.now);
    ok(await backend.verifyRunnerJti(runner.jti));
    const before = (await api.kv.get<Deno.KvU64>(["revocation_epoch"])).value?.value ?? 0n;
    await revokeRunner(api.url, ada.cookie, runner.runnerId);
    equal(await backend.verifyRunnerJti(runner.jti), null);
    equal((await api.kv.get<Deno.KvU64>(["revocation_epoch"])).value?.value, before + 1n);
    assertEquals(await apiJson(api.url, "/api/devmode/runners", { cookie: ada.cookie }), []);
    const again = await apiRequest(api.url, `/api/devmode/runners/${runner.runnerId}`, {
      cookie: ada.cookie,
      method: "DELETE",
    });
    equal(again.status, 404);
    await again.body?.cancel();
  });
});
