import { deepEqual as assertEquals, ok as assert, throws as assertThrows } from "node:assert/strict";
import { parseEdgeConfig, RelayConfigError } from "./config.ts";
import { ConnectionCaps } from "./edge.ts";
import { MetaLine } from "./protocol.ts";
import {
  clientToken,
  drainUntilClosed,
  rawWebSocket,
  refusedUpgrade,
  runnerToken,
  ScriptedClient,
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
    { clientIpHeader: "fly-client-ip", fdLimit: null, maxConnections: 50, maxConnectionsPerIp: 5 },
  );
  for (
    const [env, message] of [
      [{ DEVMODE_MAX_CONNECTIONS: "0" }, 'DEVMODE_MAX_CONNECTIONS must be a whole number ≥ 1, got "0"'],
      [
        { DEVMODE_MAX_CONNECTIONS_PER_IP: "lots" },
        'DEVMODE_MAX_CONNECTIONS_PER_IP must be a whole number ≥ 1, got "lots"',
      ],
      [{ DEVMODE_CLIENT_IP_HEADER: "x y" }, 'DEVMODE_CLIENT_IP_HEADER must be a header name, got "x y"'],
    ] as const
  ) {
    assertThrows(() => parseEdgeConfig(env, fail, null), { name: "RelayConfigError", message });
  }
});
