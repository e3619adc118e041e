import { deepEqual as assertEquals, ok as assert, throws as assertThrows } from "node:assert/strict";
import { parseEdgeConfig, RelayConfigError } from "./config.ts";
import { ConnectionCaps } from "./edge.ts";
import { startStandaloneRelay } from "./main.ts";
import { isLoopback } from "./mod.ts";
import { MetaLine } from "./protocol.ts";
import {
  clientToken,
  drainUntilClosed,
  rawWebSocket,
  refusedUpgrade,
  runnerToken,
  ScriptedClient,
  ScriptedRunner,
  startTestRelay,
  uniqueId,
  waitFor,
} from "./testing.ts";

Deno.test("the per-address cap refuses the extra upgrade with 429, the total cap with 503, and places come back", async () => {
  const caps = new ConnectionCaps({ maxConnections: 4, maxConnectionsPerIp: 3 });
  const relay = startTestRelay({ caps });
  const clients: ScriptedClient[] = [];
  const open = async () => {
    const token = await clientToken({ userId: uniqueId("user"), sessionId: uniqueId("session") });
    const client = new ScriptedClient(relay.url, token);
    clients.push(client);
    await client.meta(MetaLine.relay("waiting"));
  };
  try {
    for (let i = 0; i < 3; i++) await open();
    const token = await clientToken({ userId: uniqueId("user"), sessionId: uniqueId("session") });
    const extra = await refusedUpgrade(`${relay.url}/client?token=${token}`);
    assertEquals([extra.status, extra.body.error, extra.headers["retry-after"]], [
      429,
      "too many connections from your address",
      "5",
    ]);
    // Another address would still be let in: only the total cap is near.
    const other = caps.admit("192.0.2.7");
    assert(typeof other === "function");
    const full = await refusedUpgrade(`${relay.url}/client?token=${token}`);
    assertEquals([full.status, full.body.error], [503, "the server is at its connection limit, retry later"]);
    other();
    await clients.shift()!.close();
    await waitFor(() => caps.total === 2, "the closed client's place released");
    await open();
    assertEquals(caps.total, 3);
  } finally {
    await Promise.all(clients.map((client) => client.close()));
    await relay.close();
  }
});

Deno.test("a peer that never answers the relay's close frame is dropped at the TCP level", async () => {
  const relay = startTestRelay({ limits: { closeGraceMs: 200 } });
  try {
    const { token, jti } = await runnerToken(relay.backend, "runner-mute01", "user-1");
    const conn = await rawWebSocket(`${relay.url}/runner?token=${token}`);
    await waitFor(() => relay.backend.presence.get("runner-mute01") === true, "runner online");
    const startedAt = Date.now();
    relay.backend.revoke(jti);
    let deadline: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      drainUntilClosed(conn).then(() => "dropped"),
      new Promise((resolve) => deadline = setTimeout(() => resolve("still open"), 10_000)),
    ]);
    clearTimeout(deadline);
    conn.close();
    assertEquals(outcome, "dropped");
    console.log(`silent peer dropped ${Date.now() - startedAt} ms after its close frame (grace 200 ms)`);
    await waitFor(() => relay.backend.presence.get("runner-mute01") === false, "presence off");
  } finally {
    await relay.close();
  }
});

Deno.test("connection caps: defaults follow the open-file limit; bad values are one clear line", () => {
  const fail = (message: string) => new RelayConfigError(message);
  assertEquals(parseEdgeConfig({}, fail, { soft: 1024, hard: 4096 }), {
    clientIpHeader: null,
    fdLimit: { soft: 1024, hard: 4096 },
    metricsToken: null,
    metricsAddr: null,
    maxConnections: 896,
    maxConnectionsPerIp: 128,
  });
  assertEquals(parseEdgeConfig({}, fail, null).maxConnections, 1024);
  assertEquals(
    parseEdgeConfig(
      {
        DEVMODE_MAX_CONNECTIONS: "50",
        DEVMODE_MAX_CONNECTIONS_PER_IP: "5",
        DEVMODE_CLIENT_IP_HEADER: "Fly-Client-IP",
      },
      fail,
      null,
    ),
    {
      clientIpHeader: "fly-client-ip",
      fdLimit: null,
      metricsToken: null,
      metricsAddr: null,
      maxConnections: 50,
      maxConnectionsPerIp: 5,
    },
  );
  for (
    const [env, message] of [
      [{ DEVMODE_MAX_CONNECTIONS: "0" }, 'DEVMODE_MAX_CONNECTIONS must be a whole number ≥ 1, got "0"'],
      [
        { DEVMODE_MAX_CONNECTIONS_PER_IP: "lots" },
        'DEVMODE_MAX_CONNECTIONS_PER_IP must be a whole number ≥ 1, got "lots"',
      ],
      [{ DEVMODE_CLIENT_IP_HEADER: "x y" }, 'DEVMODE_CLIENT_IP_HEADER must be a header name, got "x y"'],
      [
        { DEVMODE_METRICS_ADDR: "9091" },
        'DEVMODE_METRICS_ADDR must be host:port, e.g. 127.0.0.1:9091, got "9091"',
      ],
      [{ DEVMODE_METRICS_TOKEN: "metrics" }, "DEVMODE_METRICS_TOKEN must be at least 32 bytes long (got 7)"],
    ] as const
  ) {
    assertThrows(() => parseEdgeConfig(env, fail, null), { name: "RelayConfigError", message });
  }
});

Deno.test("/metrics: a bearer token when DEVMODE_METRICS_TOKEN is set, else loopback connections only", async () => {
  const token = crypto.randomUUID() + crypto.randomUUID();
  const guarded = startTestRelay({ metricsToken: token });
  const open = startTestRelay();
  try {
    const without = await fetch(`${guarded.httpUrl}/metrics`);
    assertEquals([without.status, (await without.json()).error], [
      401,
      "metrics need Authorization: Bearer <DEVMODE_METRICS_TOKEN>",
    ]);
    const wrong = await fetch(`${guarded.httpUrl}/metrics`, {
      headers: { authorization: `Bearer ${token}x` },
    });
    assertEquals(wrong.status, 401);
    await wrong.body?.cancel();
    const right = await fetch(`${guarded.httpUrl}/metrics`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert((await right.text()).includes("relay_websockets_open 0"));
    const loopback = await fetch(`${open.httpUrl}/metrics`);
    assertEquals(loopback.status, 200);
    await loopback.body?.cancel();
    // The same relay asked by a connection from elsewhere (as Deno.serve reports one).
    const remote = await open.relay.handle(new Request(`${open.httpUrl}/metrics`), {
      remoteAddr: { transport: "tcp", hostname: "203.0.113.9", port: 40000 },
      completed: Promise.resolve(),
    });
    assertEquals(remote?.status, 403);
    assertEquals(
      [isLoopback("127.0.0.1"), isLoopback("::1"), isLoopback("::ffff:127.0.0.2"), isLoopback("10.0.0.1")],
      [true, true, true, false],
    );
  } finally {
    await guarded.close();
    await open.close();
  }
});

Deno.test("DEVMODE_METRICS_ADDR serves /metrics alone on its own listener", async () => {
  const relay = await startStandaloneRelay({
    HOST: "127.0.0.1",
    PORT: "0",
    DEVMODE_JWT_SECRET: crypto.randomUUID() + crypto.randomUUID(),
    RELAY_INTERNAL_SECRET: crypto.randomUUID() + crypto.randomUUID(),
    DEVMODE_APP_URL: "http://127.0.0.1:9",
    DEVMODE_ALLOWED_ORIGINS: "http://127.0.0.1:9",
    DEVMODE_METRICS_ADDR: "127.0.0.1:0",
  }, { log: () => {} });
  try {
    const metrics = await fetch(relay.metricsUrl!);
    assert((await metrics.text()).includes("relay_runners_connected 0"));
    const other = await fetch(relay.metricsUrl!.replace("/metrics", "/client"));
    assertEquals(other.status, 404);
    await other.body?.cancel();
  } finally {
    await relay.close();
  }
});

Deno.test("runner error frames reach the log cut to size and at most 10 a minute", async () => {
  const relay = startTestRelay();
  const { token } = await runnerToken(relay.backend, "runner-noisy1", "user-1");
  const runner = new ScriptedRunner(relay.url, token);
  try {
    await runner.welcome();
    for (let i = 0; i < 50; i++) {
      runner.send({ type: "error", code: "x".repeat(200), message: "y".repeat(10_000) });
    }
    await waitFor(
      async () =>
        (await (await fetch(`${relay.httpUrl}/metrics`)).text()).includes('reason="error_log_rate"} 40'),
      "the 40 frames past the rate counted",
    );
    const logged = relay.logs.filter((record) => record.event === "runner_error");
    assertEquals(logged.length, 10);
    assert(
      logged.every((record) =>
        (record.message as string).length === 512 && (record.code as string).length === 64
      ),
    );
  } finally {
    await runner.close();
    await relay.close();
  }
});

Deno.test("a client token minted before its user signed out is refused 401 `signed out`", async () => {
  const relay = startTestRelay();
  try {
    const before = await clientToken({ userId: "user-out1", sessionId: uniqueId("session") });
    await relay.backend.signOut("user-out1", Date.now() + 2000);
    const refused = await refusedUpgrade(`${relay.url}/client?token=${before}`);
    assertEquals([refused.status, refused.body.error], [401, "signed out"]);
    const other = await clientToken({ userId: "user-in01", sessionId: uniqueId("session") });
    const client = new ScriptedClient(relay.url, other);
    await client.meta(MetaLine.relay("waiting"));
    await client.close();
  } finally {
    await relay.close();
  }
});

Deno.test("refused upgrades reach the log at most 60 a minute; the rest are counted", async () => {
  let now = Date.now();
  const relay = startTestRelay({ now: () => now });
  try {
    for (let i = 0; i < 100; i++) {
      assertEquals((await refusedUpgrade(`${relay.url}/client?token=garbage-${i}`)).status, 401);
    }
    assertEquals(relay.logs.filter((record) => record.event === "auth_failed").length, 60);
    const metrics = await (await fetch(`${relay.httpUrl}/metrics`)).text();
    assert(metrics.includes('relay_auth_failures_total{endpoint="client",reason="invalid"} 100'), metrics);
    now += 60_000;
    await refusedUpgrade(`${relay.url}/client?token=garbage-next`);
    const suppressed = relay.logs.filter((record) => record.event === "auth_failed_suppressed");
    assertEquals(suppressed.map(({ event, count }) => ({ event, count })), [
      { event: "auth_failed_suppressed", count: 40 },
    ]);
  } finally {
    await relay.close();
  }
});
