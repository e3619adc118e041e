import { deepEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { parseCliArgs, UsageError } from "./cli_args.ts";

Deno.test("commands and flags", () => {
  assertEquals(parseCliArgs([]).command, "run");
  assertEquals(parseCliArgs(["--version"]).command, "version");
  assertEquals(parseCliArgs(["status", "--log-format", "json"]).logFormat, "json");
  assertEquals(
    parseCliArgs(["serve", "--port=9000", "--host", "0.0.0.0", "--allow-origin", "https://a.example/x"]),
    {
      command: "serve",
      logFormat: "text",
      port: 9000,
      host: "0.0.0.0",
      allowOrigins: ["https://a.example"],
      assumeYes: false,
    },
  );
  assertEquals(parseCliArgs(["pair", "--yes"]).assumeYes, true);
  assertEquals(parseCliArgs(["-y"]).assumeYes, true);
  assertThrows(() => parseCliArgs(["--yes=no"]), /takes no value/);
});

Deno.test("unknown commands and flags are usage errors", () => {
  assertThrows(() => parseCliArgs(["launch"]), UsageError);
  assertThrows(() => parseCliArgs(["toString"]), UsageError);
  assertThrows(() => parseCliArgs(["--verbose"]), UsageError);
  assertThrows(() => parseCliArgs(["pair", "status"]), UsageError);
  assertThrows(() => parseCliArgs(["serve", "--port", "http"]), /--port must be a number/);
  assertThrows(() => parseCliArgs(["--port", "1"]), /only valid with `coda-runner serve`/);
  assertThrows(() => parseCliArgs(["--log-format", "xml"]), /text or json/);
  assertThrows(() => parseCliArgs(["--log-format"]), /needs a value/);
});
