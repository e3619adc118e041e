import { deepEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
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

async function withKv(fn: (kv: Deno.Kv) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(`${dir}/relay.kv`);
  try {
    await fn(kv);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
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
  await withKv(async (kv) => {
    const backend = createHttpRelayBackend({
      appUrl: app.url + "/",
      relaySecret: SECRET,
      kv,
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
  });
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
  await withKv(async (kv) => {
    const backend = createHttpRelayBackend({ appUrl: app.url, relaySecret: SECRET, kv, timeoutMs: 300 });
    for (const next of ["401", "500", "odd", "slow"]) {
      mode = next;
      await rejects(backend.verifyRunnerJti("good"), next);
    }
    await rejects(backend.setPresence("runner-0001", "user-1", false));
  });
  await app.close();
  await withKv(async (kv) => {
    const backend = createHttpRelayBackend({ appUrl: app.url, relaySecret: SECRET, kv });
    await rejects(backend.verifyRunnerJti("good"));
  });
});

Deno.test("http backend: a redirecting app never gets X-Relay-Secret sent on, and the check fails", async () => {
  const elsewhere = serveApp(() => Response.json({ valid: true, runnerId: "runner-0001", userId: "user-1" }));
  const app = serveApp((path) =>
    new Response(null, { status: 302, headers: { location: `${elsewhere.url}${path}?jti=good` } })
  );
  await withKv(async (kv) => {
    const backend = createHttpRelayBackend({ appUrl: app.url, relaySecret: SECRET, kv });
    await rejects(backend.verifyRunnerJti("good"));
    await rejects(backend.setPresence("runner-0001", "user-1", true));
  });
  assertEquals(app.requests.map((r) => r.secret), [SECRET, SECRET]);
  assertEquals(elsewhere.requests, []);
  await app.close();
  await elsewhere.close();
});

Deno.test("http backend: each client jti is accepted once until its token expires", async () => {
  let clock = Date.parse("2026-01-01T00:00:00Z");
  await withKv(async (kv) => {
    const backend = createHttpRelayBackend({
      appUrl: "http://127.0.0.1:9",
      relaySecret: SECRET,
      kv,
      now: () => clock,
    });
    const expiresAt = new Date(clock + 60_000);
    assert(await backend.consumeClientJti("jti-1", expiresAt));
    assert(!(await backend.consumeClientJti("jti-1", expiresAt)));
    assert(await backend.consumeClientJti("jti-2", expiresAt));
    // Past expiry plus clock tolerance the record no longer guards anything (KV expiry is lazy).
    clock += 60_000 + 60_000 + 1;
    assert(await backend.consumeClientJti("jti-1", expiresAt));
  });
});
