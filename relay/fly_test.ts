import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { parse } from "smol-toml";
import { DEFAULT_RELAY_PORT, HEALTH_PATH } from "./config.ts";
import { startStandaloneRelay } from "./main.ts";

const root = new URL("../", import.meta.url);

interface FlyConfig {
  kill_signal: string;
  kill_timeout: string;
  deploy: { strategy: string };
  build: { dockerfile: string };
  env: Record<string, string>;
  http_service: {
    internal_port: number;
    force_https: boolean;
    auto_stop_machines: string;
    min_machines_running: number;
    concurrency: { type: string; soft_limit: number; hard_limit: number };
    checks: { path: string; method: string }[];
  };
}

const fly = parse(await Deno.readTextFile(new URL("fly.toml", root))) as unknown as FlyConfig;

Deno.test("fly.toml routes to the port and health path the relay serves", async () => {
  const service = fly.http_service;
  assertEquals(service.internal_port, DEFAULT_RELAY_PORT);
  assertEquals(Number(fly.env.PORT), service.internal_port);
  assertEquals(fly.env.HOST, "0.0.0.0");
  assertEquals(service.checks.map((c) => [c.method, c.path]), [["GET", HEALTH_PATH]]);
  assertEquals(service.force_https, true);
  assertEquals(service.auto_stop_machines, "off");
  // Several machines, replaced one at a time (the relay routes between them through the shared KV).
  assert(service.min_machines_running >= 2);
  assertEquals(fly.deploy.strategy, "rolling");
  assert(/^\d+s$/.test(fly.kill_timeout), "runner/scale_out_test.ts holds the drain to it");
  assertEquals(service.concurrency.type, "connections");
  assert(service.concurrency.soft_limit <= service.concurrency.hard_limit);
  // The proxy's cap binds first; the relay's own sits just above it, and per-address caps see clients.
  assert(service.concurrency.hard_limit < Number(fly.env.DEVMODE_MAX_CONNECTIONS));
  assertEquals(fly.env.DEVMODE_CLIENT_IP_HEADER, "fly-client-ip");
  assertEquals(fly.kill_signal, "SIGTERM");

  // The relay, configured as fly.toml's [env] says, answers the health check on that path.
  const relay = await startStandaloneRelay({
    ...fly.env,
    HOST: "127.0.0.1",
    PORT: "0",
    DEVMODE_JWT_SECRET: "Jx7kQ2vR9mLp4WcN0tYb3HdD6gJf1uAe",
    RELAY_INTERNAL_SECRET: "Rz8mQ2vX7kLp4WcN9tYb3HsD6gJf1uAq",
  }, { log: () => {} });
  try {
    const health = await fetch(`${relay.url}${service.checks[0].path}`);
    assertEquals(health.status, 200);
    await health.body?.cancel();
    assertEquals(relay.config.port, 0);
  } finally {
    await relay.close();
  }
});

Deno.test("the Dockerfile fly.toml names runs deno task relay as a non-root user with cached deps", async () => {
  const dockerfile = await Deno.readTextFile(new URL(fly.build.dockerfile, root));
  const user = /^USER\s+(\S+)/m.exec(dockerfile)?.[1];
  assert(user && user !== "root" && user !== "0", `USER ${user}`);
  assert(/^RUN deno cache relay\/main\.ts$/m.test(dockerfile));
  assert(/^CMD \["deno", "task", "relay"\]$/m.test(dockerfile));
  assert(dockerfile.includes(`EXPOSE ${fly.http_service.internal_port}`));
  const tasks = JSON.parse(await Deno.readTextFile(new URL("deno.json", root))).tasks;
  assert(/relay\/main\.ts$/.test(tasks.relay), tasks.relay);
});

Deno.test("the spec's `cd relay && fly launch` is answered by the README: no config in relay/, the image needs the root", async () => {
  await Deno.stat(new URL("relay/fly.toml", root)).then(
    () => assert(false, "a relay/fly.toml would deploy from a build context that lacks the workspace files"),
    (error) => assert(error instanceof Deno.errors.NotFound),
  );
  const dockerfile = await Deno.readTextFile(new URL(fly.build.dockerfile, root));
  for (const file of ["deno.json", "deno.lock", "import_map.json"]) {
    assert(
      new RegExp(`^COPY .*\\b${file.replace(".", "\\.")}\\b`, "m").test(dockerfile),
      `the image copies ${file}`,
    );
  }
  const members: string[] = JSON.parse(await Deno.readTextFile(new URL("deno.json", root))).workspace;
  for (const member of members.map((path) => path.replace(/^\.\//, "")).filter((m) => m !== "relay")) {
    assert(
      new RegExp(`^COPY .*\\b${member}/deno\\.json\\b`, "m").test(dockerfile),
      `the image copies ${member}/deno.json, so Deno finds the whole workspace`,
    );
  }
  const readme = await Deno.readTextFile(new URL("relay/README.md", root));
  assert(readme.includes("`cd relay && fly launch`"));
  assert(readme.includes("fly launch --copy-config --no-deploy"));
});
