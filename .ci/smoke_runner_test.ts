import { ok as assert, rejects as assertRejects } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { smokeLine, smokeTest } from "./smoke_runner.ts";

const MAIN = fileURLToPath(new URL("../runner/main.ts", import.meta.url));

Deno.test("smoke_runner: the runner from source pairs, attaches over the relay and round-trips an echo", async () => {
  await smokeTest([Deno.execPath(), "run", "-A", MAIN]);
});

Deno.test("smoke_runner: a runner command that is not a runner fails, with its output", async () => {
  await assertRejects(
    () =>
      smokeTest([Deno.execPath(), "eval", "console.log('not a runner'); await new Promise(() => {})"], 3000),
    (error: Error) => {
      assert(error.message.includes("not a runner"), error.message);
      return true;
    },
  );
});

Deno.test("smoke_runner: the typed line never contains what the shell prints for it", () => {
  for (const os of ["linux", "darwin", "windows"] as const) {
    const { typed, expected } = smokeLine(os);
    assert(!typed.includes(expected), os);
  }
});
