/**
 * Test fixture for the API's own tests: `createApi` served on 127.0.0.1 at a
 * random port, with a temporary KV file and a clock the test can move.
 *
 * @module
 */
import { join } from "node:path";
import { createApi } from "./app.ts";
import { type AppConfig, type Env, loadAppConfig } from "./config.ts";
import { contractChecker } from "./testing.ts";

/** A clock the test moves by hand, starting at the real time. */
export interface TestClock {
  now(): number;
  advance(ms: number): void;
}

/** Creates a {@linkcode TestClock}. */
export function testClock(start = Date.now()): TestClock {
  let time = start;
  return {
    now: () => time,
    advance: (ms) => {
      time += ms;
    },
  };
}

/** A running API for a test. */
export interface TestApi {
  url: string;
  origin: string;
  config: AppConfig;
  kv: Deno.Kv;
  clock: TestClock;
  dataDir: string;
  /** The answers that left the contract so far (a test that provokes one empties it); close throws on any. */
  contractViolations: string[];
  close(): Promise<void>;
}

/**
 * Serves the API like the app server does (the connection's info as the
 * app's env). `clientIp` overrides the connection's address, for rate-limit
 * tests.
 */
export async function startTestApi(
  options: { env?: Env; clientIp?: () => string | undefined } = {},
): Promise<TestApi> {
  const dataDir = await Deno.makeTempDir({ prefix: "coda-api-test-" });
  const clock = testClock();
  let handler: Deno.ServeHandler = () => new Response("starting", { status: 503 });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req, info) => handler(req, info),
  );
  const config = loadAppConfig({ PORT: "0", DEVMODE_DATA_DIR: dataDir, ...options.env }, server.addr.port);
  const kv = await Deno.openKv(join(dataDir, "test.kv"));
  const contract = contractChecker();
  const api = createApi({ config, kv, now: clock.now }, { around: contract.middleware });
  handler = (req, info) => {
    const hostname = options.clientIp?.() ?? (info.remoteAddr as Deno.NetAddr).hostname;
    // A fresh Request rather than `req`: copying the signal would tie it to the connection.
    return api.fetch(new Request(req.url, { method: req.method, headers: req.headers, body: req.body }), {
      ...info,
      remoteAddr: { ...(info.remoteAddr as Deno.NetAddr), hostname },
    });
  };
  const url = `http://127.0.0.1:${server.addr.port}`;
  return {
    url,
    origin: url,
    config,
    kv,
    clock,
    dataDir,
    contractViolations: contract.violations,
    async close() {
      await server.shutdown();
      kv.close();
      await Deno.remove(dataDir, { recursive: true });
      contract.assertConforming();
    },
  };
}

/** Runs `fn` against a fresh {@linkcode TestApi}, closing it afterwards. */
export async function withApi(
  fn: (api: TestApi) => Promise<void>,
  options: Parameters<typeof startTestApi>[0] = {},
): Promise<void> {
  const api = await startTestApi(options);
  try {
    await fn(api);
  } finally {
    await api.close();
  }
}
