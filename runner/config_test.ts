import { deepEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { DEFAULT_SESSION_GRACE_MS, loadRunnerEnv, parseDuration, RunnerConfigError } from "./config.ts";
import { defaultConfigPath } from "./credentials.ts";
import { DEFAULT_REPLAY_BYTES } from "./replay_buffer.ts";

Deno.test("defaults", () => {
  const config = loadRunnerEnv({});
  assertEquals(config.appUrl, "http://localhost:8080");
  assertEquals(config.tmux, false);
  assertEquals(config.tmuxSocket, "coda");
  assertEquals(config.sessionGraceMs, DEFAULT_SESSION_GRACE_MS);
  assertEquals(config.replayBytes, DEFAULT_REPLAY_BYTES);
  assertEquals(config.relayUrl, undefined);
});

Deno.test("values are parsed and bad ones fail fast with one clear line", () => {
  const config = loadRunnerEnv({
    RELAY_URL: "wss://relay.example/",
    APP_URL: "https://app.example",
    TTY_SYNC: "tmux",
    DEVMODE_SESSION_GRACE: "90s",
    CODA_REPLAY_BYTES: "3MiB",
  });
  assertEquals(config.relayUrl, "wss://relay.example");
  assertEquals(config.tmux, true);
  assertEquals(config.sessionGraceMs, 90_000);
  assertEquals(config.replayBytes, 3 * 1024 * 1024);
  assertThrows(() => loadRunnerEnv({ RELAY_URL: "http://relay" }), RunnerConfigError);
  assertThrows(() => loadRunnerEnv({ APP_URL: "nope" }), /APP_URL must be a URL/);
  assertThrows(() => loadRunnerEnv({ TTY_SYNC: "screen" }), /TTY_SYNC must be holder, tmux or off/);
  assertEquals(loadRunnerEnv({}).sync, "holder");
  assertEquals(loadRunnerEnv({ TTY_SYNC: "off" }).tmux, false);
  assertThrows(
    () => loadRunnerEnv({ CODA_RUNTIME_DIR: "relative/dir" }),
    /CODA_RUNTIME_DIR must be an absolute path/,
  );
  assertThrows(
    () => loadRunnerEnv({ CODA_HOLDER_CPU_PROF_DIR: "prof" }),
    /CODA_HOLDER_CPU_PROF_DIR must be an absolute path, got "prof"/,
  );
  assertEquals(loadRunnerEnv({ CODA_HOLDER_CPU_PROF_DIR: "/tmp/prof" }).holderCpuProfDir, "/tmp/prof");
  assertEquals(loadRunnerEnv({}).holderCpuProfDir, undefined);
  assertThrows(() => loadRunnerEnv({ DEVMODE_SESSION_GRACE: "soon" }), /DEVMODE_SESSION_GRACE/);
  assertThrows(() => loadRunnerEnv({ CODA_REPLAY_BYTES: "12" }), /between 1 KiB and 256 MiB/);
  assertThrows(() => loadRunnerEnv({ CODA_TMUX_SOCKET: "../x" }), /CODA_TMUX_SOCKET/);
  assertEquals(parseDuration("x", "900"), 900_000);
  assertEquals(parseDuration("x", "15m"), 900_000);
  assertEquals(parseDuration("x", "250ms"), 250);
});

Deno.test("config file path per OS, overridable", () => {
  assertEquals(defaultConfigPath({ HOME: "/h" }, "linux"), "/h/.config/coda-runner/config.json");
  assertEquals(
    defaultConfigPath({ HOME: "/h", XDG_CONFIG_HOME: "/x" }, "linux"),
    "/x/coda-runner/config.json",
  );
  assertEquals(
    defaultConfigPath({ HOME: "/Users/a" }, "darwin"),
    "/Users/a/Library/Application Support/Coda Runner/config.json",
  );
  assertEquals(defaultConfigPath({ HOME: "/h", CODA_RUNNER_CONFIG: "/c.json" }, "linux"), "/c.json");
});

Deno.test("CODA_TRANSFER_MAX_BYTES: 100 MiB by default, bytes or units up to 64 GiB, anything else fails fast", () => {
  assertEquals(loadRunnerEnv({}).transferMaxBytes, 100 * 1024 * 1024);
  assertEquals(loadRunnerEnv({ CODA_TRANSFER_MAX_BYTES: "1048576" }).transferMaxBytes, 1024 * 1024);
  assertEquals(loadRunnerEnv({ CODA_TRANSFER_MAX_BYTES: "2GiB" }).transferMaxBytes, 2 * 1024 ** 3);
  assertEquals(loadRunnerEnv({ CODA_TRANSFER_MAX_BYTES: "500k" }).transferMaxBytes, 500 * 1024);
  for (const bad of ["0", "-5", "1.5MiB", "lots", "65GiB", "10TB"]) {
    assertThrows(
      () => loadRunnerEnv({ CODA_TRANSFER_MAX_BYTES: bad }),
      /CODA_TRANSFER_MAX_BYTES must be a byte count/,
    );
  }
});
