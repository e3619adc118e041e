import { deepEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { join } from "node:path";
import { ConfigError, loadAppConfig } from "./config.ts";
import { sameSiteOrigins } from "@coda/relay/urls";
import { loadRelayConfig, MIN_SECRET_BYTES } from "@coda/relay";

async function withDataDir(fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "coda-config-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("defaults: localhost:8080, KV in the data dir, relay on the same port, signup open", () =>
  withDataDir((dir) => {
    const config = loadAppConfig({ DEVMODE_DATA_DIR: dir });
    assertEquals(config.host, "127.0.0.1");
    assertEquals(config.port, 8080);
    assertEquals(config.kvUrl, join(dir, "devmode.kv"));
    assertEquals(config.publicUrl, "http://localhost:8080");
    assertEquals(config.relayUrl, "ws://localhost:8080");
    assertEquals(config.relayEnabled, true);
    assertEquals(config.signup, "open");
    assertEquals(config.runnerTokenTtlSeconds, 30 * 24 * 3600);
    assertEquals(config.recordingBytesPerUser, 256 * 1024 * 1024);
    assertEquals(config.edge.clientIpHeader, null);
    assertEquals(config.allowedOrigins, [
      "http://localhost:8080",
      "http://127.0.0.1:8080",
      "http://[::1]:8080",
    ]);
  }));

Deno.test("the bound port replaces port 0 in the default URLs", () =>
  withDataDir((dir) => {
    const config = loadAppConfig({ DEVMODE_DATA_DIR: dir, PORT: "0" }, 43210);
    assertEquals(config.port, 0);
    assertEquals(config.publicUrl, "http://localhost:43210");
    assertEquals(config.relayUrl, "ws://localhost:43210");
  }));

Deno.test("generated secrets are stored 0600 and reused; given ones are used as they are", () =>
  withDataDir((dir) => {
    const first = loadAppConfig({ DEVMODE_DATA_DIR: dir });
    const again = loadAppConfig({ DEVMODE_DATA_DIR: dir });
    assertEquals(first.jwtSecret, again.jwtSecret);
    assertEquals(first.relayInternalSecret, again.relayInternalSecret);
    assert(first.jwtSecret.length >= MIN_SECRET_BYTES);
    assert(first.relayInternalSecret !== new TextDecoder().decode(first.jwtSecret), "two different secrets");
    if (Deno.build.os !== "windows") {
      assertEquals(Deno.statSync(join(dir, "jwt_secret")).mode! & 0o777, 0o600);
      assertEquals(Deno.statSync(join(dir, "relay_internal_secret")).mode! & 0o777, 0o600);
    }
    const secret = "Kq3v9ZrX0tWb7nLm2YpD5sHc8JgF4uAe";
    const given = loadAppConfig({
      DEVMODE_DATA_DIR: dir,
      DEVMODE_JWT_SECRET: secret,
      RELAY_INTERNAL_SECRET: secret,
    });
    assertEquals(new TextDecoder().decode(given.jwtSecret), secret);
    assertEquals(given.relayInternalSecret, secret);
  }));

Deno.test("the app and the relay refuse the same weak secrets with the same words", () =>
  withDataDir((dir) => {
    const relayEnv = {
      RELAY_INTERNAL_SECRET: "Zr8mQ2vX7kLp4WcN9tYb3HsD6gJf1uAe",
      DEVMODE_APP_URL: "https://app.example.com",
      DEVMODE_ALLOWED_ORIGINS: "https://app.example.com",
    };
    const weak: [string, string][] = [
      [" ".repeat(32), "DEVMODE_JWT_SECRET must not be empty or whitespace"],
      [" Kq3v9ZrX0tWb7nLm2YpD5sHc8JgF4uAe", "DEVMODE_JWT_SECRET must not start or end with whitespace"],
      ["s".repeat(32), "DEVMODE_JWT_SECRET is a repeated pattern; generate one with `openssl rand -hex 32`"],
      [
        "test-secret-".repeat(4),
        "DEVMODE_JWT_SECRET is a repeated pattern; generate one with `openssl rand -hex 32`",
      ],
      [
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
        "DEVMODE_JWT_SECRET is too predictable (about 6 bits); generate one with `openssl rand -hex 32`",
      ],
    ];
    for (const [value, message] of weak) {
      throws(() => loadAppConfig({ DEVMODE_DATA_DIR: dir, DEVMODE_JWT_SECRET: value }), {
        name: "ConfigError",
        message,
      });
      throws(() => loadRelayConfig({ ...relayEnv, DEVMODE_JWT_SECRET: value }), {
        name: "RelayConfigError",
        message,
      });
    }
    const strong = crypto.randomUUID() + crypto.randomUUID();
    assertEquals(
      new TextDecoder().decode(
        loadAppConfig({ DEVMODE_DATA_DIR: dir, DEVMODE_JWT_SECRET: strong }).jwtSecret,
      ),
      strong,
    );
    assertEquals(
      new TextDecoder().decode(loadRelayConfig({ ...relayEnv, DEVMODE_JWT_SECRET: strong }).jwtSecret),
      strong,
    );
  }));

Deno.test("bad values stop with one clear line naming the variable", () =>
  withDataDir((dir) => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ PORT: "http" }, /^PORT must be a number/],
      [{ PORT: "70000" }, /^PORT must be a number/],
      [{ DEVMODE_JWT_SECRET: "short" }, /^DEVMODE_JWT_SECRET must be at least 32 bytes/],
      [{ RELAY_INTERNAL_SECRET: "x".repeat(31) }, /^RELAY_INTERNAL_SECRET must be at least 32 bytes/],
      [{ DEVMODE_PUBLIC_URL: "localhost:8080" }, /^DEVMODE_PUBLIC_URL must/],
      [
        { DEVMODE_PUBLIC_URL: "ftp://example.com" },
        /^DEVMODE_PUBLIC_URL must start with http:\/\/ or https:\/\//,
      ],
      [
        { DEVMODE_RELAY_URL: "https://relay.example.com" },
        /^DEVMODE_RELAY_URL must start with ws:\/\/ or wss:\/\//,
      ],
      [{ DEVMODE_RELAY_ENABLED: "maybe" }, /^DEVMODE_RELAY_ENABLED must be 1 or 0/],
      [{ NEXT_PUBLIC_DEVMODE_RELAY_ENABLED: "maybe" }, /^NEXT_PUBLIC_DEVMODE_RELAY_ENABLED must be 1 or 0/],
      [{ DEVMODE_SIGNUP: "invite" }, /^DEVMODE_SIGNUP must be "open" or "closed"/],
      [{ DEVMODE_RUNNER_TOKEN_TTL: "5" }, /^DEVMODE_RUNNER_TOKEN_TTL must be a number of seconds/],
      [{ DEVMODE_RECORDING_BYTES_PER_USER: "0" }, /^DEVMODE_RECORDING_BYTES_PER_USER must be a number/],
      [{ DEVMODE_RECORDING_BYTES_PER_USER: "1G" }, /^DEVMODE_RECORDING_BYTES_PER_USER must be a number/],
      [{ DEVMODE_CLIENT_IP_HEADER: "x forwarded" }, /^DEVMODE_CLIENT_IP_HEADER must be a header name/],
    ];
    for (const [env, message] of cases) {
      throws(() => loadAppConfig({ DEVMODE_DATA_DIR: dir, ...env }), (error: unknown) => {
        assert(error instanceof ConfigError, `${JSON.stringify(env)}: ${error}`);
        assert(message.test(error.message), `${JSON.stringify(env)}: ${error.message}`);
        assert(!error.message.includes("\n"));
        return true;
      });
    }
  }));

Deno.test("the spec's NEXT_PUBLIC_DEVMODE_RELAY_ENABLED is an alias that wins a conflict, with one notice", () =>
  withDataDir((dir) => {
    const alias = loadAppConfig({ DEVMODE_DATA_DIR: dir, NEXT_PUBLIC_DEVMODE_RELAY_ENABLED: "0" });
    assertEquals([alias.relayEnabled, alias.notices], [false, []]);
    const agreeing = loadAppConfig({
      DEVMODE_DATA_DIR: dir,
      NEXT_PUBLIC_DEVMODE_RELAY_ENABLED: "1",
      DEVMODE_RELAY_ENABLED: "yes",
    });
    assertEquals([agreeing.relayEnabled, agreeing.notices], [true, []]);
    const conflict = loadAppConfig({
      DEVMODE_DATA_DIR: dir,
      NEXT_PUBLIC_DEVMODE_RELAY_ENABLED: "1",
      DEVMODE_RELAY_ENABLED: "0",
    });
    assertEquals(conflict.relayEnabled, true);
    assertEquals(conflict.notices.length, 1);
    assert(/using NEXT_PUBLIC_DEVMODE_RELAY_ENABLED/.test(conflict.notices[0]));
  }));

Deno.test("a public https origin has no aliases; trailing slashes are dropped", () =>
  withDataDir((dir) => {
    const config = loadAppConfig({
      DEVMODE_DATA_DIR: dir,
      DEVMODE_PUBLIC_URL: "https://coda.example.com/",
      DEVMODE_RELAY_URL: "wss://relay.example.com/",
      DEVMODE_RELAY_ENABLED: "0",
      DEVMODE_CLIENT_IP_HEADER: "Fly-Client-IP",
    });
    assertEquals(config.publicUrl, "https://coda.example.com");
    assertEquals(config.relayUrl, "wss://relay.example.com");
    assertEquals(config.allowedOrigins, ["https://coda.example.com"]);
    assertEquals(config.relayEnabled, false);
    assertEquals(config.edge.clientIpHeader, "fly-client-ip");
    assertEquals(sameSiteOrigins("http://127.0.0.1:9000"), [
      "http://127.0.0.1:9000",
      "http://localhost:9000",
      "http://[::1]:9000",
    ]);
  }));
