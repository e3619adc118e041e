import { deepEqual as assertEquals, ok as assert, rejects as assertRejects } from "node:assert/strict";
import { SignJWT, UnsecuredJWT } from "jose";
import { CloseCode, MetaLine } from "./protocol.ts";
import { TOKEN_AUDIENCE, TOKEN_ISSUER } from "./tokens.ts";
import {
  clientToken,
  drainUntilClosed,
  MemoryBackend,
  Peer,
  rawWebSocket,
  refusedUpgrade,
  runnerToken,
  ScriptedClient,
  ScriptedRunner,
  startTestRelay,
  TEST_ORIGIN,
  TEST_SECRET,
  type TestRelay,
  uniqueId,
  waitFor,
} from "./testing.ts";
import type { RelayLimits } from "./limits.ts";

const OTHER_SECRET = new TextEncoder().encode("other-secret-".repeat(4));

interface Harness {
  relay: TestRelay;
  backend: MemoryBackend;
  runner(runnerId: string, userId: string, via?: "header" | "query"): Promise<ScriptedRunner>;
  track<P extends Peer>(peer: P): P;
  metrics(): Promise<string>;
}

/** Runs `fn` against a fresh relay and closes every peer and the relay afterwards. */
function relayTest(
  name: string,
  fn: (h: Harness) => Promise<void>,
  options: { limits?: Partial<RelayLimits>; backend?: MemoryBackend } = {},
): void {
  Deno.test(name, async () => {
    const relay = startTestRelay({ limits: options.limits, backend: options.backend });
    const peers: Peer[] = [];
    const track = <P extends Peer>(peer: P): P => {
      peers.push(peer);
      return peer;
    };
    const h: Harness = {
      relay,
      backend: relay.backend,
      async runner(runnerId, userId, via = "header") {
        const { token } = await runnerToken(relay.backend, runnerId, userId);
        return track(new ScriptedRunner(relay.url, token, via));
      },
      track,
      async metrics() {
        return await (await fetch(`${relay.httpUrl}/metrics`)).text();
      },
    };
    try {
      await fn(h);
    } finally {
      await Promise.all(peers.map((peer) => peer.close()));
      await relay.close();
    }
  });
}

/** Opens a scripted client with a freshly signed token. */
async function connectClient(
  h: Harness,
  claims: { userId: string; sessionId: string; runnerId?: string },
  options: ConstructorParameters<typeof ScriptedClient>[2] = {},
): Promise<ScriptedClient> {
  const token = await clientToken(claims);
  return h.track(new ScriptedClient(h.relay.url, token, options));
}

const FAST: Partial<RelayLimits> = { runnerWaitMs: 1500 };

relayTest("a runner authenticates by header or query and gets welcome", async (h) => {
  for (const via of ["header", "query"] as const) {
    const runnerId = uniqueId("runner");
    const runner = await h.runner(runnerId, "user-1", via);
    assertEquals((await runner.welcome()).runnerId, runnerId);
    await waitFor(() => h.backend.presence.get(runnerId) === true, "presence on");
    await runner.close();
    await waitFor(() => h.backend.presence.get(runnerId) === false, "presence off");
  }
});

relayTest("presence is refreshed at every heartbeat interval while the runner is connected", async (h) => {
  const runner = await h.runner("runner-pres01", "user-1");
  await runner.welcome();
  const reports = h.backend.presenceReports;
  await waitFor(() => h.backend.presenceReports >= reports + 3, "three presence refreshes");
  assertEquals(h.backend.presence.get("runner-pres01"), true);
}, { limits: { pingIntervalMs: 100 } });

relayTest("client and runner exchange the spec's messages", async (h) => {
  const runner = await h.runner("runner-main01", "user-1");
  await runner.welcome();
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId }, { cols: 100, rows: 30 });
  const attach = await runner.next((m) => m.type === "attach");
  assertEquals({ ...attach, clientId: "x" }, {
    type: "attach",
    sessionId,
    clientId: "x",
    cols: 100,
    rows: 30,
  });
  await client.meta(MetaLine.session(sessionId));
  await client.meta(MetaLine.cwd("/home/test"));
  client.send({ type: "stdin", sessionId, data: "ls\r" });
  client.send({ type: "resize", sessionId, cols: 120, rows: 40 });
  client.send({ type: "record", sessionId, on: true });
  client.send({ type: "pick-cwd", sessionId, path: "/tmp" });
  await runner.next((m) => m.type === "pick-cwd");
  assertEquals(runner.stdin(sessionId), "ls\r");
  assert(runner.received.some((m) => m.type === "resize" && m.cols === 120 && m.rows === 40));
  assert(runner.received.some((m) => m.type === "record" && m.on === true));
  runner.write(sessionId, "héllo\r\n");
  await client.waitOutput("héllo");
  const stdout = client.received.find((m) => m.type === "stdout")!;
  assertEquals(stdout, { type: "stdout", sessionId, data: "héllo\r\n", offset: 0 });
  // Without ack=1 the relay acknowledges for the client once the bytes left.
  await runner.next((m) => m.type === "ack" && m.offset === 8, "relay ack");
  runner.exit(sessionId, 0);
  await client.meta(MetaLine.exit(0));
  assertEquals(await client.closed, { code: CloseCode.NORMAL, reason: "session ended" });
  const metrics = await h.metrics();
  assert(metrics.includes('relay_frames_total{direction="client_to_runner"} 4'), metrics);
  assert(metrics.includes("relay_runners_connected 1"), metrics);
});

relayTest("a client goes to its token's runner, else to its user's earliest runner", async (h) => {
  const older = await h.runner("runner-older1", "user-1");
  await older.welcome();
  const newer = await h.runner("runner-newer1", "user-1");
  await newer.welcome();
  const other = await h.runner("runner-other1", "user-2");
  await other.welcome();
  const s1 = uniqueId("session");
  await connectClient(h, { userId: "user-1", sessionId: s1 });
  await older.next((m) => m.type === "attach" && m.sessionId === s1);
  const s2 = uniqueId("session");
  await connectClient(h, { userId: "user-1", sessionId: s2, runnerId: "runner-newer1" });
  await newer.next((m) => m.type === "attach" && m.sessionId === s2);
  const s3 = uniqueId("session");
  await connectClient(h, { userId: "user-2", sessionId: s3 });
  await other.next((m) => m.type === "attach" && m.sessionId === s3);
  assert(!older.received.some((m) => m.sessionId === s2 || m.sessionId === s3));
  assert(!newer.received.some((m) => m.sessionId === s1 || m.sessionId === s3));
  assert(!other.received.some((m) => m.sessionId === s1 || m.sessionId === s2));
});

relayTest("a client never reaches another user's runner", async (h) => {
  const victim = await h.runner("runner-victim", "user-1");
  await victim.welcome();
  const sessionId = uniqueId("session");
  const intruder = await connectClient(h, { userId: "user-2", sessionId, runnerId: "runner-victim" });
  await intruder.meta(MetaLine.relay("waiting"));
  intruder.send({ type: "stdin", sessionId, data: "rm -rf ~\r" });
  const intruder2 = await connectClient(h, { userId: "user-2", sessionId: uniqueId("session") });
  await intruder2.meta(MetaLine.relay("waiting"));
  assertEquals(await intruder.closed, { code: CloseCode.NO_RUNNER, reason: "no runner online" });
  assertEquals((await intruder2.closed).code, CloseCode.NO_RUNNER);
  assert(!victim.received.some((m) => m.type !== "welcome"), JSON.stringify(victim.received));
}, { limits: FAST });

relayTest("a client waits for a runner, then attaches when one connects", async (h) => {
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId });
  await client.meta(MetaLine.relay("waiting"));
  client.send({ type: "stdin", sessionId, data: "early\r" });
  const runner = await h.runner("runner-late01", "user-1");
  await runner.next((m) => m.type === "attach");
  await client.meta(MetaLine.relay("online"));
  await waitFor(() => runner.stdin(sessionId) === "early\r", "early stdin forwarded after attach");
  const kinds = runner.received.map((m) => m.type);
  assert(kinds.indexOf("attach") < kinds.indexOf("stdin"), kinds.join());
});

relayTest(
  "runner endpoint refuses bad tokens with HTTP 401 and revoked ones with 403, before any upgrade",
  async (h) => {
    const now = Math.floor(Date.now() / 1000);
    const sessionId = uniqueId("session");
    const claims = { type: "runner", runnerId: "runner-bad001", userId: "user-1" };
    const cases: [string, string, number, string][] = [
      ["client token", await clientToken({ userId: "user-1", sessionId }), 401, "token wrong-type"],
      [
        "expired",
        await new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuer(TOKEN_ISSUER)
          .setAudience(TOKEN_AUDIENCE).setJti("pair-x").setIssuedAt(now - 7200).setExpirationTime(now - 3600)
          .sign(TEST_SECRET),
        401,
        "token expired",
      ],
      [
        "bad signature",
        (await runnerToken(h.backend, "runner-bad001", "user-1", { secret: OTHER_SECRET })).token,
        401,
        "token invalid",
      ],
      [
        "alg none",
        new UnsecuredJWT(claims).setIssuer(TOKEN_ISSUER).setAudience(TOKEN_AUDIENCE).setJti("pair-y")
          .setIssuedAt(now).setExpirationTime(now + 3600).encode(),
        401,
        "token invalid",
      ],
      ["garbage", "not-a-jwt", 401, "token invalid"],
      [
        "revoked",
        (await runnerToken(undefined, "runner-bad001", "user-1")).token,
        403,
        "runner token revoked",
      ],
    ];
    for (const [name, token, status, error] of cases) {
      const refused = await refusedUpgrade(`${h.relay.url}/runner`, { authorization: `Bearer ${token}` });
      assertEquals({ status: refused.status, error: refused.body.error }, { status, error }, name);
    }
    const mismatch = await runnerToken(undefined, "runner-bad001", "user-1");
    h.backend.allow(mismatch.jti, { runnerId: "runner-bad001", userId: "user-2" });
    assertEquals((await refusedUpgrade(`${h.relay.url}/runner?token=${mismatch.token}`)).status, 403);
    const missing = await refusedUpgrade(`${h.relay.url}/runner`);
    assertEquals(missing.status, 401);
    assert(missing.body.error?.includes("Authorization: Bearer"), missing.body.error);
    const browserLike = h.track(new ScriptedRunner(h.relay.url, "not-a-jwt"));
    await assertRejects(browserLike.opened);
    const metrics = await h.metrics();
    assert(metrics.includes("relay_websockets_open 0"), metrics);
    assert(metrics.includes('relay_auth_failures_total{endpoint="runner",reason="wrong-type"} 1'), metrics);
    assert(metrics.includes('relay_auth_failures_total{endpoint="runner",reason="expired"} 1'), metrics);
    assert(metrics.includes('relay_auth_failures_total{endpoint="runner",reason="revoked"} 2'), metrics);
    assert(!JSON.stringify(h.relay.logs).includes(cases[0][1]), "tokens never logged");
  },
);

relayTest("verify unavailable: the runner is refused with 503 and Retry-After (fail closed)", async (h) => {
  h.backend.down = true;
  const { token } = await runnerToken(h.backend, "runner-down01", "user-1");
  const refused = await refusedUpgrade(`${h.relay.url}/runner`, { authorization: `Bearer ${token}` });
  assertEquals(refused.status, 503);
  assertEquals(refused.headers["retry-after"], "5");
});

relayTest("client endpoint refuses wrong-type, expired, forged, alg:none and reused tokens", async (h) => {
  const sessionId = uniqueId("session");
  const now = Math.floor(Date.now() / 1000);
  const claims = { type: "client", userId: "user-1", sessionId };
  const reused = await clientToken({ userId: "user-1", sessionId });
  const cases: [string, string, string][] = [
    ["runner token", (await runnerToken(h.backend, "runner-x00001", "user-1")).token, "token wrong-type"],
    [
      "expired",
      await new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuer(TOKEN_ISSUER)
        .setAudience(TOKEN_AUDIENCE).setJti("c-old").setIssuedAt(now - 600).setExpirationTime(now - 300)
        .sign(TEST_SECRET),
      "token expired",
    ],
    ["bad signature", await clientToken({ userId: "user-1", sessionId }, OTHER_SECRET), "token invalid"],
    [
      "alg none",
      new UnsecuredJWT(claims).setIssuer(TOKEN_ISSUER).setAudience(TOKEN_AUDIENCE).setJti("c-none")
        .setIssuedAt(now).setExpirationTime(now + 60).encode(),
      "token invalid",
    ],
    ["missing", "", "token missing"],
  ];
  for (const [name, token, reason] of cases) {
    const refused = await refusedUpgrade(`${h.relay.url}/client?token=${token}`);
    assertEquals({ status: refused.status, error: refused.body.error }, { status: 401, error: reason }, name);
  }
  const first = h.track(new ScriptedClient(h.relay.url, reused));
  await first.meta(MetaLine.relay("waiting"));
  const second = await refusedUpgrade(`${h.relay.url}/client?token=${reused}`);
  assertEquals({ status: second.status, error: second.body.error }, {
    status: 401,
    error: "token already used",
  });
  assert((await h.metrics()).includes('relay_auth_failures_total{endpoint="client",reason="reused"} 1'));
});

relayTest("foreign and look-alike origins get HTTP 403 before the upgrade; bad queries 400", async (h) => {
  const token = await clientToken({ userId: "user-1", sessionId: uniqueId("session") });
  for (
    const origin of [
      "http://evil.test",
      `${TEST_ORIGIN}.evil.test`,
      "http://app.test",
      "https://app.test:8080",
    ]
  ) {
    const client = h.track(new ScriptedClient(h.relay.url, token, { origin }));
    await client.closed;
    assert(client.error?.includes("403"), `${origin}: ${client.error}`);
  }
  const runner = h.track(new Peer(`${h.relay.url}/runner`, { origin: "http://evil.test" }));
  await runner.closed;
  assert(runner.error?.includes("403"), runner.error);
  const allowed = h.track(new ScriptedClient(h.relay.url, token, { origin: TEST_ORIGIN }));
  await allowed.meta(MetaLine.relay("waiting"));
  const res = await fetch(`${h.relay.httpUrl}/client?token=x&offset=-1`, {
    headers: { upgrade: "websocket" },
  });
  assertEquals(res.status, 400);
  assertEquals((await res.json()).error, "offset must be a whole number");
  const { token: runnerTokenValue } = await runnerToken(h.backend, "runner-hand01", "user-1");
  const handshake = await fetch(`${h.relay.httpUrl}/runner`, {
    headers: { upgrade: "websocket", authorization: `Bearer ${runnerTokenValue}` },
  });
  assertEquals([handshake.status, await handshake.json()], [400, { error: "invalid WebSocket handshake" }]);
  const plain = await fetch(`${h.relay.httpUrl}/runner`);
  assertEquals(plain.status, 400);
  assertEquals(await plain.json(), { error: "expected a WebSocket upgrade" });
});

relayTest("frames for a foreign session are dropped and counted; ten bad frames close 1008", async (h) => {
  const runner = await h.runner("runner-polic1", "user-1");
  await runner.welcome();
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId });
  await client.meta(MetaLine.cwd("/home/test"));
  client.send({ type: "stdin", sessionId: "someone-elses", data: "evil" });
  client.send({ type: "stdin", sessionId, data: "mine" });
  await waitFor(() => runner.stdin(sessionId) === "mine", "own stdin");
  assert(!runner.received.some((m) => m.sessionId === "someone-elses"));
  assert((await h.metrics()).includes('relay_frames_dropped_total{reason="foreign_session"} 1'));
  for (let i = 0; i < 8; i++) client.send(i % 2 ? "{not json" : { type: "launch-missiles", sessionId });
  client.send(new Uint8Array([1, 2, 3]));
  assertEquals(await client.closed, {
    code: CloseCode.POLICY,
    reason: "too many malformed or forbidden frames",
  });
  assertEquals((await runner.next((m) => m.type === "detach")).sessionId, sessionId);
});

relayTest("a runner cannot reach another runner's clients; ten malformed frames close it 1008", async (h) => {
  const owner = await h.runner("runner-own001", "user-1");
  await owner.welcome();
  const other = await h.runner("runner-oth001", "user-2");
  await other.welcome();
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId });
  const attach = await owner.next((m) => m.type === "attach");
  await client.meta(MetaLine.cwd("/home/test"));
  other.send({ type: "stdout", sessionId, clientId: attach.clientId, data: "spoofed", offset: 0 });
  other.send({ type: "stdout", sessionId, data: "spoofed", offset: 0 });
  other.send({ type: "end", sessionId, exitCode: 0 });
  owner.write(sessionId, "real\n");
  await client.waitOutput("real\n");
  assertEquals(client.output(), "real\n");
  assert(!client.isClosed);
  for (let i = 0; i < 10; i++) other.send(i % 2 ? "[]" : { type: "stdout" });
  assertEquals(await other.closed, { code: CloseCode.POLICY, reason: "too many malformed frames" });
});

relayTest("an oversized frame closes the link 1009", async (h) => {
  const runner = await h.runner("runner-big001", "user-1");
  await runner.welcome();
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId });
  await client.meta(MetaLine.cwd("/home/test"));
  client.send({ type: "stdin", sessionId, data: "x".repeat(1024 * 1024) });
  assertEquals((await client.closed).code, CloseCode.TOO_BIG);
  runner.send({ type: "stdout", sessionId, data: "é".repeat(600 * 1024) });
  assertEquals((await runner.closed).code, CloseCode.TOO_BIG);
});

relayTest("the per-user client cap refuses the extra upgrade with 429 and Retry-After", async (h) => {
  const clients = [];
  for (let i = 0; i < 3; i++) {
    const client = await connectClient(h, { userId: "user-1", sessionId: uniqueId("session") });
    await client.meta(MetaLine.relay("waiting"));
    clients.push(client);
  }
  const extraToken = await clientToken({ userId: "user-1", sessionId: uniqueId("session") });
  const extra = await refusedUpgrade(`${h.relay.url}/client?token=${extraToken}`);
  assertEquals([extra.status, extra.headers["retry-after"], extra.body.error], [
    429,
    "5",
    "too many connections for this user",
  ]);
  const otherUser = await connectClient(h, { userId: "user-2", sessionId: uniqueId("session") });
  await otherUser.meta(MetaLine.relay("waiting"));
}, { limits: { maxClientsPerUser: 3 } });

relayTest("a peer gone before its upgrade completed is released after openTimeoutMs", async (h) => {
  const { promise: gate, resolve: release } = Promise.withResolvers<void>();
  h.backend.clientJtiGate = gate;
  const token = await clientToken({ userId: "user-1", sessionId: uniqueId("session") });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(h.relay.url).port) });
  await conn.write(new TextEncoder().encode(
    `GET /client?token=${token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  ));
  await waitFor(() => h.backend.usedClientJtis.size === 1, "the token check started");
  const request = h.relay.requests.at(-1)!;
  const aborted = new Promise((resolve) => request.signal.addEventListener("abort", resolve, { once: true }));
  conn.close();
  await aborted;
  h.backend.clientJtiGate = undefined;
  release();
  await waitFor(
    async () => (await h.metrics()).includes("relay_websockets_open 0"),
    "the stale socket released",
  );
  const next = await connectClient(h, { userId: "user-1", sessionId: uniqueId("session") });
  await next.meta(MetaLine.relay("waiting"));
}, { limits: { maxClientsPerUser: 1, openTimeoutMs: 300 } });

relayTest("resume by offset: a client that reattaches gets only what follows", async (h) => {
  const runner = await h.runner("runner-resum1", "user-1");
  await runner.welcome();
  const sessionId = uniqueId("session");
  const first = await connectClient(h, { userId: "user-1", sessionId });
  await first.meta(MetaLine.cwd("/home/test"));
  runner.write(sessionId, "one\n");
  runner.write(sessionId, "twö\n");
  await first.waitOutput("twö\n");
  await first.close();
  await runner.next((m) => m.type === "detach");
  runner.write(sessionId, "three\n");
  const second = await connectClient(h, { userId: "user-1", sessionId }, { offset: 4 });
  assertEquals((await runner.next((m) => m.type === "attach" && m.offset === 4)).sessionId, sessionId);
  await second.waitOutput("three\n");
  runner.write(sessionId, "four\n");
  await second.waitOutput("four\n");
  assertEquals(second.output(), "twö\nthree\nfour\n");
  const offsets = second.received.filter((m) => m.type === "stdout").map((m) => m.offset);
  assertEquals(offsets, [4, 9, 15]);
});

relayTest("a reset stream is delivered from 0 even though the client asked for a later offset", async (h) => {
  const runner = await h.runner("runner-reset1", "user-1");
  runner.autoAttach = false;
  await runner.welcome();
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId }, { offset: 100 });
  const attach = await runner.next((m) => m.type === "attach");
  assertEquals(attach.offset, 100);
  const clientId = attach.clientId;
  runner.send({ type: "meta", sessionId, clientId, data: MetaLine.reset() });
  runner.send({ type: "stdout", sessionId, clientId, data: "fresh\n", offset: 0 });
  runner.send({ type: "attached", sessionId, clientId, offset: 6 });
  runner.send({ type: "stdout", sessionId, data: "live\n", offset: 6 });
  await client.waitOutput("live\n");
  assertEquals(client.output(), "fresh\nlive\n");
  await client.meta(MetaLine.reset());
});

relayTest("two clients on one session both see output and both type", async (h) => {
  const runner = await h.runner("runner-twoc01", "user-1");
  await runner.welcome();
  const sessionId = uniqueId("session");
  const tab = await connectClient(h, { userId: "user-1", sessionId });
  await tab.meta(MetaLine.cwd("/home/test"));
  runner.write(sessionId, "before\n");
  await tab.waitOutput("before\n");
  const phone = await connectClient(h, { userId: "user-1", sessionId }, { ack: true });
  await phone.waitOutput("before\n");
  tab.send({ type: "stdin", sessionId, data: "a" });
  phone.send({ type: "stdin", sessionId, data: "b" });
  phone.send({ type: "ack", sessionId, offset: 7 });
  await waitFor(() => runner.stdin(sessionId).length === 2, "both keystrokes");
  await runner.next((m) => m.type === "ack" && m.offset === 7);
  runner.write(sessionId, "after\n");
  await tab.waitOutput("after\n");
  await phone.waitOutput("after\n");
  assertEquals(tab.output(), "before\nafter\n");
  assertEquals(phone.output(), "before\nafter\n");
  // Each client's replay went only to it.
  assertEquals(tab.received.filter((m) => m.data === MetaLine.session(sessionId)).length, 1);
});

relayTest(
  "a slow client is closed 4413 with bounded relay memory while its peer keeps flowing",
  async (h) => {
    const runner = await h.runner("runner-slow01", "user-1");
    await runner.welcome();
    const sessionId = uniqueId("session");
    const fast = await connectClient(h, { userId: "user-1", sessionId }, { ack: true });
    await fast.meta(MetaLine.cwd("/home/test"));
    const slowToken = await clientToken({ userId: "user-1", sessionId });
    const slow = await rawWebSocket(`${h.relay.url}/client?token=${slowToken}`);
    await waitFor(
      () => runner.received.filter((m) => m.type === "attach").length === 2,
      "slow client attached",
    );
    // The scripted runner paces itself on the fast client, as a real runner does through acks.
    const chunk = "x".repeat(64 * 1024 - 1) + "\n";
    let written = 0;
    while (!h.relay.logs.some((l) => l.event === "slow_consumer")) {
      runner.write(sessionId, chunk);
      written++;
      await waitFor(() => fast.output().length >= written * chunk.length, "fast client keeps up");
      assert(written < 2000, "the slow client was never closed");
    }
    const record = h.relay.logs.find((l) => l.event === "slow_consumer")!;
    assert((record.buffered as number) <= 256 * 1024, `relay held ${record.buffered} bytes`);
    runner.write(sessionId, "tail\n");
    await fast.waitOutput("tail\n");
    assertEquals(fast.output().length, written * chunk.length + 5);
    assert((await h.metrics()).includes('relay_connections_closed_total{code="4413"} 1'));
    assert(!fast.isClosed);
    slow.close();
  },
  { limits: { maxClientBufferedBytes: 256 * 1024 } },
);

relayTest("runner link drop: clients wait, then continue without loss or duplicates", async (h) => {
  const first = await h.runner("runner-drop01", "user-1");
  await first.welcome();
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId });
  await client.meta(MetaLine.cwd("/home/test"));
  first.write(sessionId, "before\n");
  await client.waitOutput("before\n");
  await first.close();
  await client.meta(MetaLine.relay("offline"));
  const second = await h.runner("runner-drop01", "user-1");
  second.adopt(first);
  await second.welcome();
  second.write(sessionId, "while away\n");
  const attach = await second.next((m) => m.type === "attach");
  assertEquals(attach.offset, 7);
  await client.meta(MetaLine.relay("online"));
  await client.waitOutput("while away\n");
  second.write(sessionId, "after\n");
  await client.waitOutput("after\n");
  assertEquals(client.output(), "before\nwhile away\nafter\n");
}, { limits: { runnerWaitMs: 10_000 } });

relayTest("a runner that does not come back: its clients are closed 4404", async (h) => {
  const runner = await h.runner("runner-gone01", "user-1");
  await runner.welcome();
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId });
  await client.meta(MetaLine.cwd("/home/test"));
  await runner.close();
  await client.meta(MetaLine.relay("offline"));
  assertEquals(await client.closed, { code: CloseCode.NO_RUNNER, reason: "runner did not come back" });
}, { limits: FAST });

relayTest("a second connection of the same runner replaces the first (4409)", async (h) => {
  const first = await h.runner("runner-repl01", "user-1");
  await first.welcome();
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId });
  await client.meta(MetaLine.cwd("/home/test"));
  first.write(sessionId, "one\n");
  await client.waitOutput("one\n");
  const second = await h.runner("runner-repl01", "user-1");
  second.adopt(first);
  assertEquals((await first.closed).code, CloseCode.REPLACED);
  await second.next((m) => m.type === "attach" && m.offset === 4);
  second.write(sessionId, "two\n");
  await client.waitOutput("two\n");
  assertEquals(client.output(), "one\ntwo\n");
  assert(!client.received.some((m) => m.data === MetaLine.relay("offline")));
});

for (const watch of [true, false]) {
  relayTest(
    `revocation disconnects the runner and tells its clients (${watch ? "watch" : "periodic"})`,
    async (h) => {
      const { token, jti } = await runnerToken(h.backend, "runner-revok1", "user-1");
      const runner = h.track(new ScriptedRunner(h.relay.url, token));
      await runner.welcome();
      const sessionId = uniqueId("session");
      const client = await connectClient(h, { userId: "user-1", sessionId });
      await client.meta(MetaLine.cwd("/home/test"));
      const bystander = await h.runner("runner-keep01", "user-1");
      await bystander.welcome();
      h.backend.revoke(jti);
      assertEquals(await runner.closed, { code: CloseCode.REVOKED, reason: "runner token revoked" });
      await client.meta(MetaLine.relay("revoked"));
      assertEquals(await client.closed, { code: CloseCode.REVOKED, reason: "runner revoked" });
      assert(!bystander.isClosed);
      assertEquals(h.backend.presence.get("runner-revok1"), false);
    },
    { backend: new MemoryBackend(watch), limits: { reverifyIntervalMs: 300 } },
  );
}

relayTest("dead peers are reaped by the ping timeout; live idle peers stay", async (h) => {
  const live = await h.runner("runner-live01", "user-1");
  await live.welcome();
  const { token } = await runnerToken(h.backend, "runner-dead01", "user-1");
  const conn = await rawWebSocket(`${h.relay.url}/runner?token=${token}`);
  await waitFor(() => h.backend.presence.get("runner-dead01") === true, "runner online");
  await drainUntilClosed(conn);
  conn.close();
  await waitFor(() => h.backend.presence.get("runner-dead01") === false, "dead runner reaped");
  // The live runner has been idle longer than the dead one was, answering the same pings. A client's
  // attach reaching it over its own socket after the reap proves the relay had not closed that socket.
  const sessionId = uniqueId("session");
  const client = await connectClient(h, { userId: "user-1", sessionId });
  await live.next((m) => m.type === "attach" && m.sessionId === sessionId, "the attach on the live runner");
  await client.meta(MetaLine.cwd("/home/test"));
  assert(!live.isClosed);
  assertEquals(h.backend.presence.get("runner-live01"), true);
}, { limits: { pingIntervalMs: 1000, deadPeerMs: 2000 } });

relayTest("shutdown closes every peer with 1012", async (h) => {
  const runner = await h.runner("runner-shut01", "user-1");
  await runner.welcome();
  const client = await connectClient(h, { userId: "user-1", sessionId: uniqueId("session") });
  await client.meta(MetaLine.cwd("/home/test"));
  await h.relay.relay.shutdown();
  assertEquals((await runner.closed).code, CloseCode.RESTART);
  assertEquals((await client.closed).code, CloseCode.RESTART);
  const late = await fetch(`${h.relay.httpUrl}/runner`, { headers: { upgrade: "websocket" } });
  assertEquals(late.status, 503);
  await late.body?.cancel();
});

relayTest(
  "a sign-out closes the user's links opened before it (4401), not later ones or others'",
  async (h) => {
    // Signed out before any link opened: nothing to close.
    h.backend.signOuts.set("user-1", Date.now() - 1000);
    const runner = await h.runner("runner-sign01", "user-1");
    await runner.welcome();
    const sessionId = uniqueId("session");
    const before = await connectClient(h, { userId: "user-1", sessionId });
    await before.meta(MetaLine.cwd("/home/test"));
    const other = await connectClient(h, { userId: "user-2", sessionId: uniqueId("session") });
    await other.meta(MetaLine.relay("waiting"));

    await h.backend.signOut("user-1", Date.now());
    // Acted on before signOut resolved: the link is out of the broker, whatever it sends now is dropped.
    before.send({ type: "stdin", sessionId, data: "touch /tmp/pwned\r" });
    await waitFor(() => before.isClosed, "the link closed", 5000);
    assertEquals(await before.closed, { code: CloseCode.UNAUTHORIZED, reason: "signed out" });
    await runner.next((m) => m.type === "detach" && m.sessionId === sessionId, "detach");
    assertEquals(runner.stdin(sessionId), "");
    assert(!other.isClosed);

    const later = await connectClient(h, { userId: "user-1", sessionId });
    await later.meta(MetaLine.cwd("/home/test"));
    await h.backend.signOut("user-2", Date.now());
    await waitFor(() => other.isClosed, "the other user's link closed", 5000);
    assertEquals((await other.closed).code, CloseCode.UNAUTHORIZED);
    assert(!later.isClosed, "opened after the sign-out");
    later.send({ type: "stdin", sessionId, data: "pwd\r" });
    await waitFor(() => runner.stdin(sessionId) === "pwd\r", "stdin of the later link");
  },
);
