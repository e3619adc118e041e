import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { renderQr } from "./qr.ts";

Deno.test("a QR code is drawn as equal-width lines of half blocks with a quiet zone", () => {
  const lines = renderQr("http://localhost:8080/devmode/pair?code=ABCD-EFGH").split("\n");
  const width = lines[0].length;
  assert(width >= 21 + 4, "at least a version-1 code plus the quiet zone");
  for (const line of lines) assertEquals(line.length, width);
  assert(/^[█▀▄ ]+$/.test(lines.join("")));
  assertEquals(lines[0], "█".repeat(width), "the top quiet zone is light");
  assertEquals(lines.length, Math.ceil(width / 2));
});
