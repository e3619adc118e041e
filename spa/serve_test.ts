/// <reference lib="deno.ns" />
/// <reference lib="deno.unstable" />
import { deepEqual as assertEquals, match as assertMatch, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { createSpaHandler, IMMUTABLE_CACHE } from "./serve.ts";

const RELAY = "wss://relay.example.com";
const PUBLIC = "https://app.example.com";
/** The policy for RELAY and PUBLIC, spelled out so any change to it shows here. */
const EXPECTED_CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
  "connect-src 'self' wss://relay.example.com https://app.example.com wss://app.example.com " +
  "ws://127.0.0.1:* ws://localhost:*; img-src 'self' data:; font-src 'self'; worker-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

async function fixture() {
  const distDir = await Deno.makeTempDir({ prefix: "spa-serve-" });
  await Deno.writeTextFile(join(distDir, "index.html"), "<!doctype html><title>app</title>");
  await Deno.writeTextFile(join(distDir, "entry-ABCD1234.js"), "console.log('app')");
  await Deno.writeTextFile(join(distDir, "styles-ABCD1234.css"), "body{}");
  await Deno.writeTextFile(join(distDir, "manifest.json"), "{}");
  const handler = createSpaHandler({ distDir, relayUrl: RELAY, publicUrl: PUBLIC });
  const get = (path: string, method = "GET") => handler(new Request(`${PUBLIC}${path}`, { method }));
  return {
    distDir,
    get,
    async [Symbol.asyncDispose]() {
      await Deno.remove(distDir, { recursive: true });
    },
  };
}

Deno.test("hashed assets get their content type and a year-long immutable cache", async () => {
  await using f = await fixture();
  const js = await f.get("/entry-ABCD1234.js");
  assertEquals(js.status, 200);
  assertEquals(js.headers.get("content-type"), "text/javascript; charset=utf-8");
  assertEquals(js.headers.get("cache-control"), IMMUTABLE_CACHE);
  assertEquals(await js.text(), "console.log('app')");
  const css = await f.get("/styles-ABCD1234.css");
  assertEquals(css.headers.get("content-type"), "text/css; charset=utf-8");
  assertEquals(css.headers.get("cache-control"), IMMUTABLE_CACHE);
  await css.body?.cancel();
  const manifest = await f.get("/manifest.json");
  assertEquals(manifest.headers.get("cache-control"), "no-cache");
  await manifest.body?.cancel();
});

Deno.test("every client-side route serves index.html, revalidated each time", async () => {
  await using f = await fixture();
  for (
    const path of ["/", "/index.html", "/signin", "/devmode/pair", "/devmode/terminal", "/some/deep/link"]
  ) {
    const response = await f.get(`${path}?code=ABCD-EFGH`);
    assertEquals(response.status, 200, path);
    assertEquals(response.headers.get("content-type"), "text/html; charset=utf-8");
    assertEquals(response.headers.get("cache-control"), "no-cache");
    assertEquals(await response.text(), "<!doctype html><title>app</title>");
  }
});

Deno.test("missing assets and traversal attempts are 404 JSON, not index.html", async () => {
  await using f = await fixture();
  for (
    const path of [
      "/entry-MISSING.js",
      "/favicon.ico",
      "/..%2f..%2fetc%2fpasswd.txt",
      "/%2e%2e/secret.js",
      "/.hidden.js",
      "/sub/entry-ABCD1234.js",
    ]
  ) {
    const response = await f.get(path);
    assertEquals(response.status, 404, path);
    assertEquals(await response.json(), { error: "Not found" });
  }
});

Deno.test("HEAD works, other methods get 405, and an unbuilt app says how to build it", async () => {
  await using f = await fixture();
  const head = await f.get("/entry-ABCD1234.js", "HEAD");
  assertEquals(head.status, 200);
  assertEquals(head.headers.get("content-length"), "18");
  assertEquals(await head.text(), "");
  const post = await f.get("/devmode/pair", "POST");
  assertEquals(post.status, 405);
  assertEquals(post.headers.get("allow"), "GET, HEAD");
  await post.body?.cancel();
  await Deno.remove(join(f.distDir, "index.html"));
  const unbuilt = await f.get("/");
  assertEquals(unbuilt.status, 503);
  assertMatch((await unbuilt.json()).error, /deno task build/);
});

Deno.test("every response carries a strict CSP and security headers", async () => {
  await using f = await fixture();
  const responses = [await f.get("/"), await f.get("/entry-ABCD1234.js"), await f.get("/missing.js")];
  responses.push(await f.get("/", "POST"));
  await Deno.remove(join(f.distDir, "index.html"));
  responses.push(await f.get("/"));
  for (const response of responses) {
    await response.body?.cancel();
    assertEquals(response.headers.get("content-security-policy"), EXPECTED_CSP, String(response.status));
    assertEquals(response.headers.get("x-content-type-options"), "nosniff");
    assertEquals(response.headers.get("referrer-policy"), "no-referrer");
    assertEquals(response.headers.get("x-frame-options"), "DENY");
    assertEquals(response.headers.get("cross-origin-opener-policy"), "same-origin");
    assertEquals(response.headers.get("strict-transport-security"), null);
  }
  const directives = Object.fromEntries(
    EXPECTED_CSP.split("; ").map((d) => {
      const [name, ...values] = d.split(" ");
      return [name, values];
    }),
  );
  assert(!directives["connect-src"].includes("*"), "no wildcard origin");
  assert(!directives["script-src"].includes("'unsafe-inline'"));
});
