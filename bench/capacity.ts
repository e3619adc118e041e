/**
 * What one relay instance holds (issue 11): idle sessions and MB per 1,000 of them, session setups
 * per second, and the extra attach time of a client that lands on the wrong instance and is
 * replayed (`fly-replay`) to its runner's. Two standalone relays (`relay/main.ts`) run as real
 * subprocesses sharing one KV file, as deployed; runners and clients are scripted peers speaking
 * the protocol (no PTYs), and the app's endpoints are a stub in this process that accepts every
 * token, so the figures are the relay's own.
 *
 * @module
 */
import { signClientToken, signRunnerToken } from "@coda/relay/tokens";
import { ScriptedRunner, startReplayProxy } from "@coda/relay/testing";
import { type Figure, figure, median } from "./figures.ts";
import { Child, denoDir, freePort, RELAY_FLAGS, ROOT, rssBytes } from "./procs.ts";

/** How much the capacity part measures. */
export interface CapacityPlan {
  /** Users, each with one runner. */
  runners: number;
  /** Idle sessions (one client each), spread over the runners. */
  sessions: number;
  /** Attaches per path (direct, replayed), interleaved, per round. */
  replayAttaches: number;
  /** Rounds, each with fresh relays. */
  rounds: number;
}

/** Session setups in flight at once. */
const SETUP_CONCURRENCY = 64;
/** What a 512 MB machine has for sessions, after the process itself. */
const MACHINE_BYTES = 512 * 1e6;
const MB = 1e6;
const step = (what: string) => console.error(`… ${what}`);

/** The app's relay endpoints, answering for every token the bench minted. */
function startAppStub(
  identities: Map<string, { runnerId: string; userId: string }>,
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    await req.body?.cancel();
    if (url.pathname === "/api/devmode/tokens/runner/verify") {
      const identity = identities.get(url.searchParams.get("jti") ?? "");
      return identity
        ? Response.json({ valid: true, ...identity })
        : Response.json({ error: "revoked" }, { status: 403 });
    }
    if (url.pathname === "/api/devmode/internal/client-jti") return Response.json({ fresh: true });
    if (url.pathname === "/api/devmode/internal/signed-out") return Response.json({ signedOut: {} });
    return new Response(null, { status: 204 });
  });
}

/** Opens a client and resolves once its session is attached (the runner's `coda:session:` line), in ms. */
function attach(url: string): Promise<{ socket: WebSocket; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    const timer = setTimeout(() => reject(new Error("no attach in 30 s")), 30_000);
    socket.onmessage = (event) => {
      if (typeof event.data !== "string" || !event.data.includes("coda:session:")) return;
      clearTimeout(timer);
      socket.onmessage = null;
      resolve({ socket, ms: performance.now() - started });
    };
    socket.onclose = (event) => {
      clearTimeout(timer);
      reject(new Error(`closed ${event.code} ${event.reason} before attaching`));
    };
  });
}

/** What one round measured. */
interface CapacityRound {
  perThousandMb: number;
  fits: number;
  setupsPerSecond: number;
  heldMb: number;
  direct: number[];
  replayed: number[];
}

/**
 * Measures one instance's idle capacity and setup rate, and the replayed attach, in `plan.rounds`
 * rounds, each with fresh relay processes (memory a relay once held is not given back at once).
 */
export async function capacityFigures(plan: CapacityPlan, dir: string): Promise<Figure[]> {
  const rounds: CapacityRound[] = [];
  for (let round = 1; round <= plan.rounds; round++) {
    step(`capacity: round ${round}/${plan.rounds}`);
    rounds.push(await capacityRound(plan, `${dir}/capacity-${round}`));
  }
  const all = (pick: (round: CapacityRound) => number) => rounds.map(pick);
  const extra = rounds.map((round) => median(round.replayed) - median(round.direct));
  return [
    figure(
      `relay RSS per 1,000 idle sessions (${plan.sessions} sessions, ${plan.runners} runners)`,
      all((r) => r.perThousandMb),
      "MB",
      "≤ 30 MB",
      (v) => v <= 30,
      `the relay held ${median(all((r) => r.heldMb)).toFixed(0)} MB`,
    ),
    figure(
      "idle sessions per 512 MB instance",
      all((r) => r.fits),
      "sessions",
      "≥ 10,000",
      (v) => v >= 10_000,
    ),
    figure(
      "session setups per second, one instance",
      all((r) => r.setupsPerSecond),
      "/s",
      "≥ 500",
      (v) => v >= 500,
    ),
    figure("attach through the proxy, direct", rounds.flatMap((r) => r.direct), "ms", "reported"),
    figure(
      "attach replayed to the runner's instance, over direct",
      extra,
      "ms",
      "≤ 10 ms",
      (v) => v <= 10,
      `replayed median ${median(rounds.flatMap((r) => r.replayed)).toFixed(1)} ms`,
    ),
  ];
}

/** One round: fresh relays, the idle sessions, then the attaches. */
async function capacityRound(plan: CapacityPlan, dir: string): Promise<CapacityRound> {
  await Deno.mkdir(dir, { recursive: true });
  const secret = Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
  const jwtSecret = new TextEncoder().encode(secret);
  const identities = new Map<string, { runnerId: string; userId: string }>();
  const stub = startAppStub(identities);
  const relays: Child[] = [];
  const sockets: WebSocket[] = [];
  const runners: ScriptedRunner[] = [];
  let proxy: ReturnType<typeof startReplayProxy> | undefined;
  try {
    const env = {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      DENO_DIR: await denoDir(),
      HOME: dir,
      NO_COLOR: "1",
      HOST: "127.0.0.1",
      DEVMODE_JWT_SECRET: secret,
      RELAY_INTERNAL_SECRET: secret.split("").reverse().join(""),
      DEVMODE_APP_URL: `http://127.0.0.1:${stub.addr.port}`,
      DEVMODE_ALLOWED_ORIGINS: "http://bench.test",
      DEVMODE_KV_URL: `${dir}/relays.kv`,
      DEVMODE_FLY_REPLAY: "1",
      // Every peer comes from 127.0.0.1: the per-address cap would count them all as one.
      DEVMODE_MAX_CONNECTIONS_PER_IP: "100000",
    };
    const ports: Record<string, number> = {};
    for (const id of ["r1", "r2"]) {
      ports[id] = freePort();
      const relay = new Child(id, ["run", ...RELAY_FLAGS, `${ROOT}relay/main.ts`], {
        ...env,
        PORT: String(ports[id]),
        DEVMODE_INSTANCE_ID: id,
      });
      relays.push(relay);
      await relay.line(/relay_listening/);
    }
    const [r1] = relays;
    const r1Url = `ws://127.0.0.1:${ports.r1}`;

    step(`capacity: ${plan.runners} runners on r1`);
    const users: { userId: string; runnerId: string }[] = [];
    for (let i = 0; i < plan.runners; i++) {
      const identity = { userId: `user-${i}`, runnerId: `runner-${i}` };
      const jti = crypto.randomUUID();
      identities.set(jti, identity);
      users.push(identity);
      runners.push(new ScriptedRunner(r1Url, await signRunnerToken(jwtSecret, { ...identity, jti })));
    }
    await Promise.all(runners.map((runner) => runner.opened));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const withRunners = rssBytes(r1.pid);

    step(`capacity: ${plan.sessions} sessions, ${SETUP_CONCURRENCY} setting up at once`);
    const tokens = await Promise.all(Array.from({ length: plan.sessions }, (_, i) => {
      const user = users[i % users.length];
      return signClientToken(jwtSecret, { ...user, sessionId: `session-${i}`, jti: crypto.randomUUID() });
    }));
    let next = 0;
    const started = performance.now();
    await Promise.all(Array.from({ length: SETUP_CONCURRENCY }, async () => {
      while (next < tokens.length) {
        const token = tokens[next++];
        sockets.push((await attach(`${r1Url}/client?token=${token}`)).socket);
      }
    }));
    const setupSeconds = (performance.now() - started) / 1000;
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const withSessions = rssBytes(r1.pid);
    const perThousand = (withSessions - withRunners) / plan.sessions * 1000 / MB;
    const fits = Math.floor((MACHINE_BYTES - withRunners) / ((withSessions - withRunners) / plan.sessions));

    step(`capacity: ${plan.replayAttaches} direct and ${plan.replayAttaches} replayed attaches`);
    proxy = startReplayProxy(ports);
    const direct: number[] = [];
    const replayed: number[] = [];
    for (let i = 0; i < plan.replayAttaches * 2; i++) {
      const replay = i % 2 === 1;
      const user = users[i % users.length];
      const token = await signClientToken(jwtSecret, {
        ...user,
        sessionId: `attach-${i}`,
        jti: crypto.randomUUID(),
      });
      proxy.nextFirstHop(replay ? "r2" : "r1");
      const { socket, ms } = await attach(`${proxy.relayUrl}/client?token=${token}`);
      (replay ? replayed : direct).push(ms);
      socket.close();
    }
    return {
      perThousandMb: perThousand,
      fits,
      setupsPerSecond: plan.sessions / setupSeconds,
      heldMb: withSessions / MB,
      direct,
      replayed,
    };
  } finally {
    for (const socket of sockets) socket.close();
    for (const runner of runners) await runner.close();
    await proxy?.close();
    for (const relay of relays) await relay.stop();
    await stub.shutdown();
  }
}
