import { deepStrictEqual as assertEquals, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { createApi } from "./app.ts";
import { loadAppConfig } from "./config.ts";
import { withApi } from "./_test_fixture.ts";
import { apiRequest, signup, startTestApp } from "./testing.ts";

Deno.test("healthz and config", async () => {
  await withApi(async (api) => {
    const health = await apiRequest(api.url, "/healthz");
    equal(health.status, 200);
    assertEquals(await health.json(), { ok: true, instance: "app-one" });
    const config = await apiRequest(api.url, "/api/devmode/config");
    assertEquals(await config.json(), { relayEnabled: false, relayUrl: "wss://relay.example" });
  }, {
    env: {
      DEVMODE_RELAY_ENABLED: "0",
      DEVMODE_RELAY_URL: "wss://relay.example",
      DEVMODE_INSTANCE_ID: "app-one",
    },
  });
});

Deno.test("the spec's NEXT_PUBLIC_DEVMODE_RELAY_ENABLED switches the SPA's preference, and wins a conflict", async () => {
  await withApi(async (api) => {
    const config = await apiRequest(api.url, "/api/devmode/config");
    equal((await config.json()).relayEnabled, false);
  }, { env: { NEXT_PUBLIC_DEVMODE_RELAY_ENABLED: "0" } });
  await withApi(async (api) => {
    const config = await apiRequest(api.url, "/api/devmode/config");
    equal((await config.json()).relayEnabled, true);
  }, { env: { NEXT_PUBLIC_DEVMODE_RELAY_ENABLED: "1", DEVMODE_RELAY_ENABLED: "0" } });
});

Deno.test("unknown routes under /api are 404 JSON", async () => {
  await withApi(async (api) => {
    for (const path of ["/api/nope", "/api/devmode/nope", "/api", "/api/auth/me/extra"]) {
      const response = await apiRequest(api.url, path);
      equal(response.status, 404, path);
      match(response.headers.get("content-type") ?? "", /application\/json/);
      assertEquals(await response.json(), { error: "not found" });
    }
  });
});

Deno.test("malformed JSON and non-object bodies are 400 with {error}", async () => {
  await withApi(async (api) => {
    for (const body of ["{", "", "null", "[1]", '"text"', "12"]) {
      const response = await fetch(`${api.url}/api/auth/signup`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      equal(response.status, 400, JSON.stringify(body));
      ok(typeof (await response.json()).error === "string");
    }
  });
});

Deno.test("bodies over 1 MiB are 413, with or without Content-Length", async () => {
  await withApi(async (api) => {
    const big = JSON.stringify({ email: "a@b.test", password: "x".repeat(1024 * 1024) });
    const sized = await fetch(`${api.url}/api/auth/signup`, { method: "POST", body: big });
    equal(sized.status, 413);
    ok((await sized.json()).error);
    const bytes = new TextEncoder().encode(big);
    const streamed = await fetch(`${api.url}/api/auth/signup`, {
      method: "POST",
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < bytes.length; i += 64 * 1024) controller.enqueue(bytes.slice(i, i + 64 * 1024));
          controller.close();
        },
      }),
    });
    equal(streamed.status, 413);
    ok((await streamed.json()).error);
  });
});

Deno.test("API responses are not cached", async () => {
  await withApi(async (api) => {
    const { cookie } = await signup(api.url);
    const response = await apiRequest(api.url, "/api/auth/me", { cookie });
    equal(response.headers.get("cache-control"), "no-store");
    await response.body?.cancel();
  });
});

Deno.test("unexpected errors are 500 JSON without details", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "coda-api-test-" });
  const kv = await Deno.openKv(join(dataDir, "test.kv"));
  kv.close();
  const originalError = console.error;
  const logged: string[] = [];
  console.error = (...args: unknown[]) => logged.push(args.join(" "));
  try {
    const api = createApi({ config: loadAppConfig({ DEVMODE_DATA_DIR: dataDir }), kv, now: Date.now });
    const response = await api.request("/api/auth/me", {
      headers: { cookie: `coda_session=${"a".repeat(43)}` },
    });
    equal(response.status, 500);
    assertEquals(await response.json(), { error: "internal error" });
    equal(logged.length, 1);
    ok(!logged[0].includes("a".repeat(43)), "the cookie is not logged");
  } finally {
    console.error = originalError;
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a JSON body cut off by its client is 400, not 500, on every JSON route", async () => {
  const app = await startTestApp();
  try {
    const target = new URL(app.url);
    for (const path of ["/api/auth/signup", "/api/auth/login", "/api/devmode/pair/start"]) {
      const conn = await Deno.connect({ hostname: target.hostname, port: Number(target.port) });
      await conn.write(new TextEncoder().encode(
        `POST ${path} HTTP/1.1\r\nHost: ${target.host}\r\nOrigin: ${app.config.publicUrl}\r\n` +
          'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"email":"a@',
      ));
      await conn.closeWrite();
      const answer = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
      ok(answer.startsWith("HTTP/1.1 400"), `${path}: ${answer.split("\r\n")[0]}`);
      ok(answer.includes("request body ended before its Content-Length"), answer);
    }
  } finally {
    await app.close();
  }
});
