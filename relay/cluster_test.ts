import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { REVOCATION_EPOCH_KEY } from "./cluster.ts";
import { openSharedKv } from "./shared_kv.ts";
import { CloseCode, CloseReason, MetaLine } from "./protocol.ts";
import { FLY_REPLAY_SRC_HEADER } from "./routing.ts";
import {
  clientToken,
  MemoryBackend,
  type Peer,
  refusedUpgrade,
  runnerInstance,
  runnerToken,
  ScriptedClient,
  ScriptedRunner,
  startTestRelay,
  type TestRelay,
  uniqueId,
  waitFor,
} from "./testing.ts";

const LIMITS = { clusterPollMs: 50, instanceHeartbeatMs: 200, instanceTtlMs: 1000 };

interface Instances {
  a: TestRelay;
  b: TestRelay;
  backend: MemoryBackend;
  /** A third handle on the shared KV file, as another process would open it. */
  kv: Deno.Kv;
  track<P extends Peer>(peer: P): P;
  runner(relay: TestRelay, runnerId: string, userId: string): Promise<ScriptedRunner>;
}

/**
 * Two relay instances ("a" and "b") sharing one KV file, each through its own handle, and one
 * backend (the app's records: tokens, used jtis).
 */
async function withInstances(flyReplay: boolean, fn: (t: Instances) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/shared.kv`;
  // Three connections to one file, as three processes would have; opened one after the other.
  const kvs = [await openSharedKv(path), await openSharedKv(path), await openSharedKv(path)];
  const backend = new MemoryBackend(false);
  const start = (instanceId: string, kv: Deno.Kv) =>
    startTestRelay({ backend, instanceId, cluster: { kv, flyReplay }, limits: LIMITS });
  const a = start("a", kvs[0]);
  const b = start("b", kvs[1]);
  const peers: Peer[] = [];
  const track = <P extends Peer>(peer: P) => {
    peers.push(peer);
    return peer;
  };
  try {
    await fn({
      a,
      b,
      backend,
      kv: kvs[2],
      track,
      async runner(relay, runnerId, userId) {
        const { token } = await runnerToken(backend, runnerId, userId);
        const runner = track(new ScriptedRunner(relay.url, token));
        await runner.next((m) => m.type === "welcome", "welcome");
        return runner;
      },
    });
  } finally {
    await Promise.all(peers.map((peer) => peer.close()));
    await Promise.all([a.close(), b.close()]);
    for (const kv of kvs) kv.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Waits until the shared records show `runnerId` as connected to `relay`. */
async function located(t: Instances, relay: TestRelay, runnerId: string): Promise<void> {
  await waitFor(async () => await runnerInstance(t.kv, runnerId) === relay.relay.instanceId, "the record");
}

Deno.test("cluster: a client landing on the wrong instance is sent to its runner's with fly-replay, its token unused", async () => {
  await withInstances(true, async (t) => {
    const userId = uniqueId("user");
    const runnerId = uniqueId("runner");
    const runner = await t.runner(t.b, runnerId, userId);
    await located(t, t.b, runnerId);
    const sessionId = uniqueId("s");
    const token = await clientToken({ userId, sessionId, runnerId });
    const refused = await refusedUpgrade(`${t.a.url}/client?token=${token}`);
    assertEquals(refused.status, 421);
    assertEquals(refused.headers["fly-replay"], "instance=b");
    assertEquals(refused.body, { error: "the runner is connected to another relay instance", instance: "b" });
    assert(
      (await (await fetch(`${t.a.httpUrl}/metrics`)).text()).includes(
        'relay_replays_total{endpoint="client"} 1',
      ),
    );
    // What the proxy does with it: the same request, token included, on "b".
    const client = t.track(
      new ScriptedClient(t.b.url, token, { headers: { [FLY_REPLAY_SRC_HEADER]: "instance=a" } }),
    );
    await client.meta(MetaLine.session(sessionId));
    runner.write(sessionId, "hello from b");
    await client.waitOutput("hello from b");
  });
});

Deno.test("cluster: a replayed client whose runner is elsewhere again is closed 4307; without Fly's proxy 4308", async () => {
  for (const flyReplay of [true, false]) {
    await withInstances(flyReplay, async (t) => {
      const userId = uniqueId("user");
      const runnerId = uniqueId("runner");
      await t.runner(t.b, runnerId, userId);
      await located(t, t.b, runnerId);
      const token = await clientToken({ userId, sessionId: uniqueId("s"), runnerId });
      const headers = flyReplay ? { [FLY_REPLAY_SRC_HEADER]: "instance=b" } : undefined;
      const client = t.track(new ScriptedClient(t.a.url, token, { headers }));
      const closed = await client.closed;
      assertEquals(
        closed,
        flyReplay
          ? { code: CloseCode.ON_ANOTHER_INSTANCE, reason: CloseReason.ON_ANOTHER_INSTANCE }
          : { code: CloseCode.NO_ROUTE, reason: CloseReason.NO_ROUTE },
      );
      assertEquals(t.backend.usedClientJtis.size, 0, "a misrouted client's token is not used up");
    });
  }
});

Deno.test("cluster: the default runner is the same on every instance: the user's runner paired and connected first", async () => {
  await withInstances(true, async (t) => {
    const userId = uniqueId("user");
    const first = uniqueId("runner");
    const second = uniqueId("runner");
    await t.runner(t.a, first, userId);
    await located(t, t.a, first);
    await t.runner(t.b, second, userId);
    await located(t, t.b, second);
    const sessionId = uniqueId("s");
    const onB = await refusedUpgrade(`${t.b.url}/client?token=${await clientToken({ userId, sessionId })}`);
    assertEquals([onB.status, onB.headers["fly-replay"]], [421, "instance=a"]);
    // On "a" it stays, attached to the same runner.
    const client = t.track(new ScriptedClient(t.a.url, await clientToken({ userId, sessionId })));
    await client.meta(MetaLine.session(sessionId));
  });
});

Deno.test("cluster: another user's runner on another instance is never a route", async () => {
  await withInstances(true, async (t) => {
    const runnerId = uniqueId("runner");
    await t.runner(t.b, runnerId, uniqueId("owner"));
    await located(t, t.b, runnerId);
    const token = await clientToken({ userId: uniqueId("intruder"), sessionId: uniqueId("s"), runnerId });
    const client = t.track(new ScriptedClient(t.a.url, token));
    await client.meta(MetaLine.relay("waiting"));
  });
});

Deno.test("cluster: a client waiting on one instance follows its runner when it connects to another", async () => {
  await withInstances(true, async (t) => {
    const userId = uniqueId("user");
    const runnerId = uniqueId("runner");
    const token = await clientToken({ userId, sessionId: uniqueId("s"), runnerId });
    const waiting = t.track(new ScriptedClient(t.a.url, token));
    await waiting.meta(MetaLine.relay("waiting"));
    await t.runner(t.b, runnerId, userId);
    assertEquals(await waiting.closed, {
      code: CloseCode.ON_ANOTHER_INSTANCE,
      reason: CloseReason.ON_ANOTHER_INSTANCE,
    });
  });
});

Deno.test("cluster: a runner connecting to another instance replaces its connection here (4409); its clients follow (4307)", async () => {
  await withInstances(true, async (t) => {
    const userId = uniqueId("user");
    const runnerId = uniqueId("runner");
    const old = await t.runner(t.a, runnerId, userId);
    await located(t, t.a, runnerId);
    const sessionId = uniqueId("s");
    const client = t.track(new ScriptedClient(t.a.url, await clientToken({ userId, sessionId, runnerId })));
    await client.meta(MetaLine.session(sessionId));
    await t.runner(t.b, runnerId, userId);
    assertEquals(await old.closed, { code: CloseCode.REPLACED, reason: CloseReason.REPLACED });
    assertEquals(await client.closed, {
      code: CloseCode.ON_ANOTHER_INSTANCE,
      reason: CloseReason.ON_ANOTHER_INSTANCE,
    });
    await located(t, t.b, runnerId);
  });
});

Deno.test("cluster: a revocation recorded by another process reaches a relay that cannot watch, through the epoch", async () => {
  await withInstances(true, async (t) => {
    const userId = uniqueId("user");
    const runnerId = uniqueId("runner");
    const { token, jti } = await runnerToken(t.backend, runnerId, userId);
    const runner = t.track(new ScriptedRunner(t.b.url, token));
    await runner.next((m) => m.type === "welcome", "welcome");
    t.backend.revoke(jti);
    await t.kv.atomic().sum(REVOCATION_EPOCH_KEY, 1n).commit();
    const closed = await runner.closed;
    assertEquals(closed.code, CloseCode.REVOKED);
  });
});

Deno.test("cluster: a draining instance's runners are offline to the others, and it answers upgrades with fly-replay elsewhere", async () => {
  await withInstances(true, async (t) => {
    const userId = uniqueId("user");
    const runnerId = uniqueId("runner");
    await t.runner(t.b, runnerId, userId);
    await located(t, t.b, runnerId);
    const draining = t.b.relay.shutdown();
    const refused = await waitFor(async () => {
      const answer = await refusedUpgrade(`${t.b.url}/client?token=x`);
      return answer.status === 503 ? answer : null;
    }, "the draining answer");
    assertEquals(refused.headers["fly-replay"], "elsewhere=true");
    await draining;
    const token = await clientToken({ userId, sessionId: uniqueId("s"), runnerId });
    const client = t.track(new ScriptedClient(t.a.url, token));
    await client.meta(MetaLine.relay("waiting"));
  });
});

Deno.test("cluster: a runner's probe is replayed to the instance holding it", async () => {
  await withInstances(true, async (t) => {
    const userId = uniqueId("user");
    const runnerId = uniqueId("runner");
    await t.runner(t.b, runnerId, userId);
    await located(t, t.b, runnerId);
    const { token } = await runnerToken(t.backend, runnerId, userId);
    const refused = await refusedUpgrade(`${t.a.url}/runner?probe=1`, { authorization: `Bearer ${token}` });
    assertEquals([refused.status, refused.headers["fly-replay"]], [421, "instance=b"]);
  });
});

Deno.test("cluster: an instance that finds others in its KV without Fly's proxy says so at start", async () => {
  await withInstances(false, async (t) => {
    // Whichever started second sees the first.
    const warnings = () =>
      [t.a, t.b].flatMap((relay) => relay.logs).filter((record) => record.event === "cluster_without_proxy");
    await waitFor(() => warnings().length > 0, "the warning");
    assert(String(warnings()[0].warning).includes("closed 4308"));
  });
});
