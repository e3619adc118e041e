import { deepEqual as assertEquals, match as assertMatch, throws as assertThrows } from "node:assert/strict";
import { parseCliArgs, UsageError } from "./cli_args.ts";

Deno.test("commands and flags", () => {
  assertEquals(parseCliArgs([]).command, "run");
  assertEquals(parseCliArgs(["--version"]).command, "version");
  assertEquals(parseCliArgs(["status", "--log-format", "json"]).logFormat, "json");
  assertEquals(
    parseCliArgs(["--log-file", "C:\\Users\\me\\coda-runner.log"]).logFile,
    "C:\\Users\\me\\coda-runner.log",
  );
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

Deno.test("usage errors name the flag or argument in this CLI's words", () => {
  const message = (args: string[]) => {
    try {
      parseCliArgs(args);
    } catch (error) {
      if (error instanceof UsageError) return error.message;
      throw error;
    }
    throw new Error(`${JSON.stringify(args)} parsed`);
  };
  assertEquals(message(["--verbose"]), "unknown option --verbose");
  assertEquals(message(["-x"]), "unknown option -x");
  assertEquals(message(["serve", "--port"]), "--port needs a value");
  assertMatch(message(["--log-format", "--yes"]), /^--log-format needs a value/);
  assertMatch(message(["-y=no"]), /^unknown option -/);
  assertEquals(message(["--yes=no"]), "--yes takes no value");
  assertEquals(message(["pair", "status"]), 'unexpected argument "status"');
  assertEquals(message(["launch"]), 'unknown command "launch"');
  assertEquals(message(["--host", "h"]), "--host is only valid with `coda-runner serve`");
  assertEquals(
    message(["pair", "--allow-origin", "https://a.example"]),
    "--allow-origin is only valid with `coda-runner serve`",
  );
  assertMatch(message(["serve", "--port", "65536"]), /from 0 to 65535/);
  assertMatch(message(["serve", "--allow-origin", "not a url"]), /must be an origin/);
});

Deno.test("help and version, inline values, repeated origins", () => {
  assertEquals(parseCliArgs(["-h"]).command, "help");
  assertEquals(parseCliArgs(["help"]).command, "help");
  assertEquals(parseCliArgs(["serve", "--help"]).command, "help");
  assertEquals(parseCliArgs(["-V"]).command, "version");
  assertEquals(parseCliArgs(["--log-format=json"]).logFormat, "json");
  const serve = parseCliArgs([
    "serve",
    "--port",
    "0",
    "--allow-origin=https://a.example",
    "--allow-origin",
    "http://b.example:81/",
  ]);
  assertEquals(serve.port, 0);
  assertEquals(serve.allowOrigins, ["https://a.example", "http://b.example:81"]);
  assertEquals(parseCliArgs(["logout"]), {
    command: "logout",
    logFormat: "text",
    allowOrigins: [],
    assumeYes: false,
  });
});
