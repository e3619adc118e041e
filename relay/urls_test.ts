import { deepEqual as assertEquals, throws } from "node:assert/strict";
import { parseUrl, sameSiteOrigins } from "./urls.ts";

class TestError extends Error {}
const fail = (message: string) => new TestError(message);

Deno.test("parseUrl trims trailing slashes and reports bad values through the caller's error", () => {
  assertEquals(
    parseUrl("APP_URL", "https://coda.example.com//", ["http:", "https:"], fail),
    "https://coda.example.com",
  );
  throws(
    () => parseUrl("APP_URL", "nope", ["http:"], fail),
    (e) => e instanceof TestError && /must be a URL/.test(e.message),
  );
  throws(
    () => parseUrl("RELAY_URL", "http://x", ["ws:", "wss:"], fail),
    (e) =>
      e instanceof TestError && e.message === 'RELAY_URL must start with ws:// or wss://, got "http://x"',
  );
});

Deno.test("sameSiteOrigins adds every localhost alias for a local URL only", () => {
  assertEquals(sameSiteOrigins("http://[::1]:7681/x"), [
    "http://[::1]:7681",
    "http://localhost:7681",
    "http://127.0.0.1:7681",
  ]);
  assertEquals(sameSiteOrigins("https://coda.example.com"), ["https://coda.example.com"]);
});
