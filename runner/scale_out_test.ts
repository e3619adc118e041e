/**
 * Several relay instances behind a stand-in for Fly's proxy, as deployed: the app's relay (in this
 * process) and two `deno task relay` processes, each with its own instance id, all on one KV file,
 * a real runner (PTYs) connecting through the proxy, clients connecting through it too.
 */
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { parse } from "smol-toml";
import {
  createSession,
  pairRunner,
  revokeRunner,
  signup,
  type StartedApp,
  startTestApp,
} from "@coda/api/testing";
import {
  type ReplayProxy,
  runnerInstance,
  type SpawnedTask,
  spawnTask,
  standaloneRelayEnv,
  startReplayProxy,
} from "@coda/relay/testing";
import { CloseCode } from "@coda/relay/protocol";
import {
  base64Lines,
  type InProcessRunner,
  onTerminal,
  startInProcessRunner,
  TestClient,
  waitFor,
} from "./testing.ts";

/** `kill_timeout` in fly.toml ("10s"): a SIGTERMed instance must be gone by then. */
const KILL_TIMEOUT_MS = Number(
  /^(\d+)s$/.exec(
    (parse(await Deno.readTextFile(new URL("../fly.toml", import.meta.url))) as { kill_timeout: string })
      .kill_timeout,
  )![1],
) * 1000;

interface Deployment {
  app: StartedApp;
  proxy: ReplayProxy;
  relays: Map<string, SpawnedTask>;
  cookie: string;
  runnerId: string;
  runnerToken: string;
  home: string;
  /** Starts the runner, its first connection landing on `instance`. */
  startRunner(instance: string): Promise<InProcessRunner>;
  /** Which instance the shared records say holds the runner. */
  holder(): Promise<string | null>;
  /** A client of `sessionId` through the proxy, its first hop `landing`, resuming at `offset`. */
  client(
    sessionId: string | undefined,
    landing: string,
    offset?: number,
  ): Promise<{ client: TestClient; sessionId: string }>;
}

async function deployment(fn: (d: Deployment) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "coda-scale-" });
  const kvPath = `${dir}/shared.kv`;
  const shared = { DEVMODE_KV_URL: kvPath, DEVMODE_FLY_REPLAY: "1" };
  const app = await startTestApp({ env: { ...shared, DEVMODE_INSTANCE_ID: "app" } });
  const relays = new Map<string, SpawnedTask>();
  const ports: Record<string, number> = { app: Number(new URL(app.url).port) };
  const runners: InProcessRunner[] = [];
  let proxy: ReplayProxy | undefined;
  try {
    for (const id of ["r1", "r2"]) {
      const task = await spawnTask("relay", {
        ...standaloneRelayEnv(app),
        ...shared,
        DEVMODE_INSTANCE_ID: id,
      });
      relays.set(id, task);
      const line = await task.line((l) => l.includes("relay_listening"), "relay_listening");
      ports[id] = Number(new URL(JSON.parse(line).url).port);
    }
    proxy = startReplayProxy(ports);
    const user = await signup(app.url);
    const paired = await pairRunner(app.url, user.cookie);
    const origin = { origin: app.config.publicUrl };
    const d: Deployment = {
      app,
      proxy,
      relays,
      cookie: user.cookie,
      runnerId: paired.runnerId,
      runnerToken: paired.runnerToken,
      home: dir,
      async startRunner(instance) {
        proxy!.nextFirstHop(instance);
        const runner = startInProcessRunner(proxy!.relayUrl, paired.runnerToken, dir);
        runners.push(runner);
        await waitFor(async () => await d.holder() === instance, `the runner on ${instance}`);
        return runner;
      },
      holder: () => runnerInstance(app.kv, paired.runnerId),
      async client(sessionId, landing, offset) {
        const created = await createSession(app.url, user.cookie, {
          ideaId: "idea-1",
          runnerId: paired.runnerId,
          ...(sessionId ? { sessionId } : {}),
        });
        proxy!.nextFirstHop(landing);
        const query = offset === undefined ? "" : `&offset=${offset}`;
        const client = new TestClient(`${proxy!.relayUrl}/client?token=${created.token}${query}`, origin, {
          binary: true,
        });
        await client.opened;
        return { client, sessionId: created.sessionId };
      },
    };
    await fn(d);
  } finally {
    for (const runner of runners) await runner.stop();
    await proxy?.close();
    for (const task of relays.values()) await task.kill();
    await app.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Follows a session through the proxy until `until` arrives: reconnects with its offset whenever
 * the link closes (an instance died, drained, or sent it on with 4307) or an upgrade fails (the
 * proxy found no instance), as the SPA does. Resolves every byte received, in order.
 */
async function follow(d: Deployment, sessionId: string, had: Uint8Array, until: string): Promise<Uint8Array> {
  const deadline = Date.now() + 60_000;
  let stream = had;
  const instances = ["app", "r1", "r2"];
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    let client: TestClient;
    try {
      ({ client } = await d.client(sessionId, instances[attempt % instances.length], stream.length));
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 200));
      continue;
    }
    const finished = client.waitForOutput(until, 60_000).then(() => true, () => false);
    const done = await Promise.race([finished, client.closed.then(() => false)]);
    assert(
      !client.metas().some((m) => m.startsWith("coda:gap") || m === "coda:reset"),
      client.metas().join(),
    );
    const received = client.received();
    const next = new Uint8Array(stream.length + received.length);
    next.set(stream);
    next.set(received, stream.length);
    stream = next;
    await client.close();
    if (done) return stream;
  }
  throw new Error(`"${until}" never arrived`);
}

Deno.test("scale-out: a client reaches its runner whichever instance it lands on, and clients on different instances see the same bytes", async () => {
  await deployment(async (d) => {
    await d.startRunner("r1");
    const { client: first, sessionId } = await d.client(undefined, "app");
    const second = (await d.client(sessionId, "r1")).client;
    const third = (await d.client(sessionId, "r2")).client;
    const clients = [first, second, third];
    await waitFor(
      () => clients.every((c) => c.metas().includes(`coda:session:${sessionId}`)),
      "three attaches",
    );
    first.send({ type: "stdin", sessionId, data: "echo hi-$((6 * 7))\r" });
    for (const client of clients) await client.waitForOutput("hi-42");
    await waitFor(
      () => new Set(clients.map((c) => c.received().length)).size === 1,
      "the three streams to line up",
    );
    assertEquals(second.received(), first.received());
    assertEquals(third.received(), first.received());
    // The proxy's view: "app" and "r2" sent their client on to "r1" before any socket; "r1" kept its own.
    const clientHops = d.proxy.hops.slice(-3);
    assertEquals(clientHops, [["app", "r1"], ["r1"], ["r2", "r1"]]);
    for (const client of clients) await client.close();
  });
});

Deno.test("scale-out: SIGKILL of the instance holding a runner mid-stream: the runner moves, its client follows, byte-exact", async () => {
  await deployment(async (d) => {
    await d.startRunner("r1");
    const data = base64Lines(3_000_000);
    await Deno.writeTextFile(`${d.home}/data.b64`, data);
    const { client, sessionId } = await d.client(undefined, "r2");
    await waitFor(() => client.metas().includes(`coda:session:${sessionId}`), "the attach");
    client.send({ type: "stdin", sessionId, data: "cat data.b64; echo done-$((6 * 7))\r" });
    await waitFor(() => client.offset > 256 * 1024, "the stream to be under way");
    await d.relays.get("r1")!.kill();
    await client.closed;
    const had = client.received();
    assert(!new TextDecoder().decode(had).includes("done-42"), "cat was still running when r1 died");
    d.proxy.setInstance("r1", null);
    const whole = await follow(d, sessionId, had, "done-42");
    assert(new TextDecoder().decode(whole).includes(onTerminal(data)), "every byte of the stream, once");
    const holder = await d.holder();
    assert(holder === "app" || holder === "r2", `the runner is on a live instance (${holder})`);
  });
});

Deno.test("scale-out: SIGTERM drains an instance within kill_timeout: peers leave with 1012 and land on the others", async () => {
  await deployment(async (d) => {
    await d.startRunner("r2");
    const { client, sessionId } = await d.client(undefined, "r2");
    await waitFor(() => client.metas().includes(`coda:session:${sessionId}`), "the attach");
    const r2 = d.relays.get("r2")!;
    const started = Date.now();
    r2.child.kill("SIGTERM");
    assertEquals((await client.closed).code, CloseCode.RESTART);
    const status = await r2.child.status;
    const took = Date.now() - started;
    assert(status.success, `r2 exited ${status.code}`);
    assert(took < KILL_TIMEOUT_MS, `drained in ${took} ms`);
    d.proxy.setInstance("r2", null);
    await waitFor(async () => {
      const holder = await d.holder();
      return holder === "app" || holder === "r1";
    }, "the runner on another instance");
    const { client: again } = await d.client(sessionId, "r1", client.received().length);
    again.send({ type: "stdin", sessionId, data: "echo back-$((6 * 7))\r" });
    await again.waitForOutput("back-42");
    await again.close();
  });
});

Deno.test("scale-out: revoking a runner through the app cuts it on another instance within 5 s", async () => {
  await deployment(async (d) => {
    const runner = await d.startRunner("r2");
    const started = Date.now();
    await revokeRunner(d.app.url, d.cookie, d.runnerId);
    assertEquals(await runner.done, "revoked");
    const took = Date.now() - started;
    assert(took < 5000, `cut after ${took} ms`);
  });
});
