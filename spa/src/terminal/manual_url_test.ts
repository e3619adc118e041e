/// <reference lib="deno.ns" />
/// <reference lib="deno.unstable" />
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { parseManualUrl } from "./manual_url.ts";

Deno.test("parseManualUrl accepts the serve link and explains bad input", () => {
  assertEquals(parseManualUrl(" ws://127.0.0.1:7681/client?token=abc "), {
    ok: true,
    url: "ws://127.0.0.1:7681/client?token=abc",
  });
  assertEquals(parseManualUrl("http://localhost:7681/client?token=abc"), {
    ok: true,
    url: "ws://localhost:7681/client?token=abc",
  });
  const bad = ["not a url", "ftp://x/client?token=a", "ws://127.0.0.1:7681/other?token=a", "ws://h/client"];
  for (const input of bad) {
    const result = parseManualUrl(input);
    assert(!result.ok && result.error.length > 0, input);
  }
});
