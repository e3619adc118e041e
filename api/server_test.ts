import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { apiJson, approvePairing, signup, type StartedPairing, startTestApp } from "./testing.ts";

function startPairingVia(baseUrl: string, headers: Record<string, string>): Promise<StartedPairing> {
  return apiJson(baseUrl, "/api/devmode/pair/start", { body: { hostname: "h" }, headers, expected: 201 });
}

Deno.test("one port serves the API, the relay and the pages; unknown API routes are JSON 404", async () => {
  const app = await startTestApp();
  try {
    const health = await (await fetch(`${app.url}/healthz`)).json();
    assertEquals(health, { ok: true, instance: app.relay.instanceId });
    const missing = await fetch(`${app.url}/api/nothing-here`);
    assertEquals(missing.status, 404);
    assert(typeof (await missing.json()).error === "string");
    const metrics = await fetch(`${app.url}/metrics`);
    assertEquals(metrics.status, 200);
    assert((await metrics.text()).includes("relay_runners_connected"));
    const page = await fetch(`${app.url}/devmode/pair`);
    await page.body?.cancel();
    assert(page.status === 200 || page.status === 503, `SPA route answered ${page.status}`);
    assert(page.headers.get("content-security-policy"), "pages carry a CSP");
  } finally {
    await app.close();
  }
});

Deno.test("the client address comes from the connection, ignoring forwarded headers by default", async () => {
  const app = await startTestApp();
  try {
    const user = await signup(app.url);
    const started = await startPairingVia(app.url, { "x-forwarded-for": "203.0.113.9" });
    const info = await fetch(`${app.url}/api/devmode/pair/info?code=${started.code}`, {
      headers: { cookie: user.cookie },
    });
    assertEquals((await info.json()).ip, "127.0.0.1");
    await approvePairing(app.url, user.cookie, started.code);
  } finally {
    await app.close();
  }
});

Deno.test("behind a trusted proxy the configured header gives the client address", async () => {
  const app = await startTestApp({ env: { DEVMODE_CLIENT_IP_HEADER: "X-Forwarded-For" } });
  try {
    const user = await signup(app.url);
    const started = await startPairingVia(app.url, { "x-forwarded-for": "198.51.100.1, 203.0.113.9" });
    const info = await fetch(`${app.url}/api/devmode/pair/info?code=${started.code}`, {
      headers: { cookie: user.cookie },
    });
    assertEquals((await info.json()).ip, "203.0.113.9");
  } finally {
    await app.close();
  }
});

Deno.test("deno task start with a bad variable stops with one clear line and exit 1", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "coda-main-" });
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("./main.ts", import.meta.url).pathname],
      env: { PORT: "not-a-port", DEVMODE_DATA_DIR: dataDir, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr).trim();
    assertEquals(output.code, 1);
    assertEquals(stderr, 'Configuration error: PORT must be a number from 0 to 65535, got "not-a-port"');
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("the server's module graph holds no build tools and no test helpers", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "api/main.ts"],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(output.success, new TextDecoder().decode(output.stderr));
  const info: { modules: { specifier: string }[] } = JSON.parse(new TextDecoder().decode(output.stdout));
  const specifiers = info.modules.map((module) => module.specifier);
  assert(specifiers.some((specifier) => specifier.endsWith("/spa/serve.ts")), "the graph reaches the SPA");
  assertEquals(specifiers.filter((specifier) => /esbuild|testing\.ts/.test(specifier)), []);
});
