import { deepEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { createKvRelayBackend } from "@coda/api";
import { apiJson, createSession, pairRunner, signup, startTestApp } from "@coda/api/testing";
import { createHttpRelayBackend } from "./http_backend.ts";

const SECRET = "s".repeat(32);

interface FakeApp {
  url: string;
  requests: { path: string; secret: string | null; body: unknown }[];
  close(): Promise<void>;
}

/** A real HTTP server answering like the app's internal routes, driven by `answer`. */
function serveApp(answer: (path: string, jti: string | null) => Response | Promise<Response>): FakeApp {
  const requests: FakeApp["requests"] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    const body = req.method === "POST" ? await req.json() : undefined;
    requests.push({ path: url.pathname, secret: req.headers.get("x-relay-secret"), body });
    return answer(url.pathname, url.searchParams.get("jti"));
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, requests, close: () => server.shutdown() };
}

Deno.test("http backend: accepts 200 valid, refuses 403, caches positives for cacheMs", async () => {
  let clock = 1_000_000;
  const app = serveApp((path, jti) =>
    path === "/api/devmode/internal/presence"
      ? new Response(null, { status: 204 })
      : jti === "good"
      ? Response.json({ valid: true, runnerId: "runner-0001", userId: "user-1" })
      : Response.json({ valid: false }, { status: 403 })
  );
  {
    const backend = createHttpRelayBackend({
      appUrl: app.url + "/",
      relaySecret: SECRET,
      now: () => clock,
      cacheMs: 1000,
    });
    assertEquals(await backend.verifyRunnerJti("good"), { runnerId: "runner-0001", userId: "user-1" });
    assertEquals(await backend.verifyRunnerJti("good"), { runnerId: "runner-0001", userId: "user-1" });
    assertEquals(app.requests.length, 1);
    clock += 1001;
    await backend.verifyRunnerJti("good");
    assertEquals(app.requests.length, 2);
    assertEquals(await backend.verifyRunnerJti("revoked"), null);
    assertEquals(app.requests.at(-1), {
      path: "/api/devmode/tokens/runner/verify",
      secret: SECRET,
      body: undefined,
    });
    await backend.setPresence("runner-0001", "user-1", true);
    assertEquals(app.requests.at(-1), {
      path: "/api/devmode/internal/presence",
      secret: SECRET,
      body: { runnerId: "runner-0001", userId: "user-1", online: true },
    });
  }
  await app.close();
});

Deno.test("http backend: fails closed on errors, odd answers, timeouts and a closed app", async () => {
  let mode = "401";
  const app = serveApp(async () => {
    if (mode === "401") return Response.json({ error: "missing or wrong X-Relay-Secret" }, { status: 401 });
    if (mode === "500") return new Response("boom", { status: 500 });
    if (mode === "odd") return Response.json({ valid: "yes" });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    return Response.json({ valid: true, runnerId: "runner-0001", userId: "user-1" });
  });
  const backend = createHttpRelayBackend({ appUrl: app.url, relaySecret: SECRET, timeoutMs: 300 });
  for (const next of ["401", "500", "odd", "slow"]) {
    mode = next;
    await rejects(backend.verifyRunnerJti("good"), next);
    await rejects(backend.consumeClientJti("jti", new Date(Date.now() + 60_000)), next);
    await rejects(backend.signedOutAt(["user-1"]), next);
  }
  await rejects(backend.setPresence("runner-0001", "user-1", false));
  await app.close();
  await rejects(backend.verifyRunnerJti("good"));
  await rejects(backend.consumeClientJti("jti", new Date(Date.now() + 60_000)));
  await rejects(backend.signedOutAt(["user-1"]));
});

Deno.test("http backend: a redirecting app never gets X-Relay-Secret sent on, and the check fails", async () => {
  const elsewhere = serveApp(() => Response.json({ valid: true, runnerId: "runner-0001", userId: "user-1" }));
  const app = serveApp((path) =>
    new Response(null, { status: 302, headers: { location: `${elsewhere.url}${path}?jti=good` } })
  );
  const backend = createHttpRelayBackend({ appUrl: app.url, relaySecret: SECRET });
  await rejects(backend.verifyRunnerJti("good"));
  await rejects(backend.setPresence("runner-0001", "user-1", true));
  assertEquals(app.requests.map((r) => r.secret), [SECRET, SECRET]);
  assertEquals(elsewhere.requests, []);
  await app.close();
  await elsewhere.close();
});

Deno.test("http backend: client jtis are consumed in the app's KV, the store the in-app relay uses", async () => {
  const app = await startTestApp();
  try {
    const backend = createHttpRelayBackend({ appUrl: app.url, relaySecret: app.config.relayInternalSecret });
    const inApp = createKvRelayBackend(app.kv, Date.now);
    const expiresAt = new Date(Date.now() + 60_000);
    assert(await backend.consumeClientJti("jti-1", expiresAt));
    assert(!(await backend.consumeClientJti("jti-1", expiresAt)), "twice through the app");
    assert(!(await inApp.consumeClientJti("jti-1", expiresAt)), "then in the app");
    assert(await inApp.consumeClientJti("jti-2", expiresAt));
    assert(!(await backend.consumeClientJti("jti-2", expiresAt)), "used in the app, then alone");
    const concurrent = await Promise.all(
      Array.from({ length: 8 }, (_, i) => (i % 2 ? inApp : backend).consumeClientJti("jti-3", expiresAt)),
    );
    assertEquals(concurrent.filter(Boolean).length, 1);
  } finally {
    await app.close();
  }
});

Deno.test("http backend: sign-outs are read from the app", async () => {
  const app = await startTestApp();
  try {
    const backend = createHttpRelayBackend({ appUrl: app.url, relaySecret: app.config.relayInternalSecret });
    const user = await signup(app.url);
    const other = await signup(app.url);
    assertEquals(await backend.signedOutAt([user.userId, other.userId]), new Map());
    const before = Date.now();
    await apiJson(app.url, "/api/auth/logout", { method: "POST", cookie: user.cookie });
    const signedOut = await backend.signedOutAt([user.userId, other.userId]);
    assertEquals([...signedOut.keys()], [user.userId]);
    assert(signedOut.get(user.userId)! >= before);
    const wrong = createHttpRelayBackend({ appUrl: app.url, relaySecret: "w".repeat(32) });
    await rejects(wrong.signedOutAt([user.userId]), /401/);
    await rejects(wrong.consumeClientJti("jti", new Date(Date.now() + 60_000)), /401/);
  } finally {
    await app.close();
  }
});

Deno.test("http backend: session reports reach the app's list; one about another user's session changes nothing", async () => {
  const app = await startTestApp();
  try {
    const backend = createHttpRelayBackend({ appUrl: app.url, relaySecret: app.config.relayInternalSecret });
    const user = await signup(app.url);
    const other = await signup(app.url);
    const paired = await pairRunner(app.url, user.cookie, { name: "alone" });
    await backend.setPresence(paired.runnerId, user.userId, true);
    const created = await createSession(app.url, user.cookie, { ideaId: "idea", runnerId: paired.runnerId });
    const list = () =>
      apiJson<{ sessionId: string; cwd: string | null }[]>(app.url, "/api/devmode/sessions", {
        cookie: user.cookie,
      });
    const { sessionId } = created;
    await backend.reportSession!({ sessionId, userId: other.userId, runnerId: paired.runnerId });
    assertEquals(await list(), []);
    await backend.reportSession!({ sessionId, userId: user.userId, runnerId: paired.runnerId });
    await backend.reportSession!({ sessionId, userId: user.userId, cwd: "/srv/\u202eapp" });
    assertEquals((await list()).map((s) => [s.sessionId, s.cwd]), [[sessionId, "/srv/app"]]);
    await backend.reportSession!({ sessionId, userId: other.userId, ended: true });
    assertEquals((await list()).length, 1);
    await backend.reportSession!({ sessionId, userId: user.userId, ended: true });
    assertEquals(await list(), []);
    const wrong = createHttpRelayBackend({ appUrl: app.url, relaySecret: "w".repeat(32) });
    await rejects(wrong.reportSession!({ sessionId, userId: user.userId, ended: false }), /401/);
  } finally {
    await app.close();
  }
});
