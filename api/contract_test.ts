import { deepEqual, equal, match, throws } from "node:assert/strict";
import { Hono } from "hono";
import { withApi } from "./_test_fixture.ts";
import { createApi } from "./app.ts";
import type * as contract from "./contract.ts";
import { ROUTES } from "./contract.ts";
import type { DevSession } from "./devmode_sessions.ts";
import type { ApiEnv } from "./http.ts";
import { setPresence } from "./runners.ts";
import { apiRequest, contractChecker, pairRunner, signup } from "./testing.ts";

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
    // Listed only while its runner is online.
    const { runnerId } = await pairRunner(api.url, user.cookie);
    await setPresence(api.kv, runnerId, user.userId, true, api.clock.now());
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
        servedBy: runnerId,
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

Deno.test("a session record holds the fields the contract copies from it (checked when type-checking)", () => {
  // The rest (runner name, directory) the listing looks up; it builds each answer as a RecentSession.
  type Copied = "sessionId" | "ideaId" | "createdAt";
  const same: true[] = [
    true satisfies Same<Pick<DevSession, Copied>, Pick<contract.RecentSession, Copied>>,
  ];
  equal(same.length, 1);
});
