import { deepEqual, equal, match, throws } from "node:assert/strict";
import { Hono } from "hono";
import { withApi } from "./_test_fixture.ts";
import { createApi } from "./app.ts";
import type * as contract from "./contract.ts";
import { ROUTES } from "./contract.ts";
import type { DevSession } from "./devmode_sessions.ts";
import type { LogSummary } from "./logs.ts";
import type { PairingInfo, PairingStarted, PairingStatus } from "./pairing.ts";
import type { RunnerView } from "./runners.ts";
import type { ApiEnv } from "./http.ts";
import { apiRequest, contractChecker, signup } from "./testing.ts";

Deno.test("every route the app serves has a contract entry, and every entry is served", async () => {
  await withApi(({ config, kv, clock }) => {
    const served = new Set(
      createApi({ config, kv, now: clock.now }).routes
        .filter((route) => route.method !== "ALL")
        .map((route) => `${route.method} ${route.path}`),
    );
    deepEqual([...served].sort(), Object.keys(ROUTES).sort());
    return Promise.resolve();
  });
});

Deno.test("an answer that leaves its schema fails the test: a 500 naming the field, and a recorded violation", async () => {
  await withApi(async (api) => {
    const user = await signup(api.url);
    // A session record whose ideaId is not a string: the list answer now breaks RecentSessionSchema.
    const sessionId = "s".repeat(22);
    const createdAt = api.clock.now();
    await api.kv.atomic()
      .set(["devmode_sessions", sessionId], {
        sessionId,
        userId: user.userId,
        ideaId: 42,
        runnerId: null,
        createdAt,
      })
      .set(["devmode_sessions_by_user", user.userId, createdAt, sessionId], true)
      .commit();
    const response = await apiRequest(api.url, "/api/devmode/sessions", { cookie: user.cookie });
    equal(response.status, 500);
    match(
      (await response.json()).error,
      /^contract violation: GET \/api\/devmode\/sessions → 200: 0\.ideaId: /,
    );
    equal(api.contractViolations.length, 1);
    // Provoked on purpose: the fixture would otherwise fail this test on close.
    api.contractViolations.length = 0;
  });
});

Deno.test("the checker refuses an unlisted success status and an error without {error}", async () => {
  const contract = contractChecker();
  const app = new Hono<ApiEnv>();
  app.use("*", contract.middleware);
  app.get("/healthz", (c) => c.json({ ok: true }, 202));
  app.get("/api/devmode/config", (c) => c.json({ message: "no" }, 503));
  app.get("/api/elsewhere", (c) => c.json({ anything: true }));
  equal((await app.request("/healthz")).status, 500);
  equal((await app.request("/api/devmode/config")).status, 500);
  equal((await app.request("/api/elsewhere")).status, 200, "routes outside the contract are not checked");
  deepEqual(contract.violations, [
    "GET /healthz → 202: status not in the contract",
    'GET /api/devmode/config → 503: error: Invalid key: Expected "error" but received undefined',
  ]);
  throws(() => contract.assertConforming(), /answers left the contract/);
});

/** `true` when `A` and `B` are assignable to each other. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

Deno.test("the domain's result types are the contract's answer types (checked when type-checking)", () => {
  const same: true[] = [
    true satisfies Same<RunnerView, contract.RunnerView>,
    true satisfies Same<LogSummary, contract.LogSummary>,
    true satisfies Same<PairingStarted, contract.PairStarted>,
    true satisfies Same<PairingStatus, contract.PairStatus>,
    true satisfies Same<PairingInfo, contract.PairInfo>,
    true satisfies Same<Pick<DevSession, keyof contract.RecentSession>, contract.RecentSession>,
  ];
  equal(same.length, 6);
});
