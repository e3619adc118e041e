import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { createLogger, redact } from "./log.ts";

const JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";

Deno.test("tokens never reach the log", () => {
  const lines: string[] = [];
  const log = createLogger({ format: "json", write: (line) => lines.push(line), now: () => new Date(0) });
  log.info(`connecting with ${JWT}`, { runnerToken: "secret", url: `ws://x/client?token=${JWT}&offset=1` });
  assertEquals(JSON.parse(lines[0]), {
    time: "1970-01-01T00:00:00.000Z",
    level: "info",
    msg: "connecting with [redacted]",
    runnerToken: "[redacted]",
    url: "ws://x/client?token=[redacted]&offset=1",
  });
  assertEquals(redact("plain"), "plain");
});

Deno.test("text format is one readable line", () => {
  const lines: string[] = [];
  const log = createLogger({ write: (line) => lines.push(line) });
  log.warn("lost the relay link", { code: 1006 });
  log.debug("hidden");
  assertEquals(lines, ["warn: lost the relay link code=1006"]);
  assert(!lines[0].includes("{"));
});
