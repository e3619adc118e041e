/**
 * Test helpers: {@linkcode startTestApp} runs the app on loopback, and the
 * rest drive it over real HTTP: sign up, pair a runner, mint session tokens,
 * revoke. For the API, relay, runner and SPA tests; the server never imports it.
 *
 * Every cookie-authenticated write carries an `Origin` equal to the app's
 * origin, as a browser would send it.
 *
 * @example
 * ```ts
 * const app = await startTestApp();
 * const { cookie } = await signup(app.url);
 * const { runnerId, runnerToken } = await pairRunner(app.url, cookie);
 * const { token, sessionId } = await createSession(app.url, cookie, { ideaId: "idea-1", runnerId });
 * ```
 *
 * @module
 */
import { decodeJwt } from "jose";
import type { MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import * as v from "valibot";
import { describeIssues } from "@coda/relay/protocol";
import {
  type CreateSessionBody,
  type CreateShareSchema,
  type PairStarted,
  responseSchema,
  routeContract,
  type RunnerOk,
  type SessionTicket,
  type ShareCreated,
  type UserAnswer,
} from "./contract.ts";
import { randomId } from "./crypto.ts";
import type { Env } from "./config.ts";
import type { ApiEnv } from "./http.ts";
import { startApp, type StartAppOptions, type StartedApp } from "./server.ts";

export type { StartedApp };
import type { RelayLog } from "@coda/relay";

/** Options of {@linkcode apiRequest}. */
export interface ApiRequestOptions {
  method?: string;
  /** Sent as JSON. */
  body?: unknown;
  /** `name=value` of the session cookie. */
  cookie?: string;
  /** `Origin` header; defaults to the app's origin for writes that carry a cookie. Pass `null` to omit. */
  origin?: string | null;
  headers?: Record<string, string>;
}

/** Sends one request to the API and returns the raw response. */
export function apiRequest(
  baseUrl: string,
  path: string,
  options: ApiRequestOptions = {},
): Promise<Response> {
  const method = options.method ?? (options.body === undefined ? "GET" : "POST");
  const headers = new Headers(options.headers);
  if (options.body !== undefined) headers.set("content-type", "application/json");
  if (options.cookie) headers.set("cookie", options.cookie);
  const origin = options.origin === undefined
    ? (method === "GET" ? null : new URL(baseUrl).origin)
    : options.origin;
  if (origin !== null) headers.set("origin", origin);
  return fetch(new URL(path, baseUrl), {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
}

/** Sends a request and returns its JSON body, throwing unless the status is `expected`. */
export async function apiJson<T>(
  baseUrl: string,
  path: string,
  options: ApiRequestOptions & { expected?: number } = {},
): Promise<T> {
  const response = await apiRequest(baseUrl, path, options);
  const text = await response.text();
  const expected = options.expected ?? 200;
  if (response.status !== expected) {
    throw new Error(
      `${options.method ?? "request"} ${path}: expected ${expected}, got ${response.status} ${text}`,
    );
  }
  return (text ? JSON.parse(text) : null) as T;
}

/** The `name=value` part of a response's session cookie, or `null`. */
export function sessionCookie(response: Response): string | null {
  for (const cookie of response.headers.getSetCookie()) {
    const pair = cookie.split(";")[0];
    const name = pair.slice(0, pair.indexOf("="));
    if ((name === "coda_session" || name === "__Host-coda_session") && pair.length > name.length + 1) {
      return pair;
    }
  }
  return null;
}

/** A signed-in test user. */
export interface TestUser {
  cookie: string;
  userId: string;
  email: string;
  password: string;
}

/** Signs up a user (a random email unless given) and returns its session cookie. */
export async function signup(
  baseUrl: string,
  email = `user-${randomId(6)}@example.test`,
  password = "correct horse battery",
): Promise<TestUser> {
  const response = await apiRequest(baseUrl, "/api/auth/signup", { body: { email, password } });
  const text = await response.text();
  if (response.status !== 201) throw new Error(`signup: ${response.status} ${text}`);
  const cookie = sessionCookie(response);
  if (!cookie) throw new Error("signup: no session cookie");
  const { user } = JSON.parse(text) as UserAnswer;
  return { cookie, userId: user.id, email: user.email, password };
}

/** Signs an existing user in and returns a fresh session cookie. */
export async function login(baseUrl: string, email: string, password: string): Promise<string> {
  const response = await apiRequest(baseUrl, "/api/auth/login", { body: { email, password } });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`login: ${response.status} ${text}`);
  const cookie = sessionCookie(response);
  if (!cookie) throw new Error("login: no session cookie");
  return cookie;
}

/** Answer of `pair/start`. */
export type StartedPairing = PairStarted;

/** Starts a pairing as a runner would. */
export function startPairing(
  baseUrl: string,
  info: { name?: string; hostname?: string; os?: string } = {},
): Promise<StartedPairing> {
  return apiJson(baseUrl, "/api/devmode/pair/start", { body: info, expected: 201 });
}

/** Approves a pairing code as the signed-in user; `runnerId` re-pairs that runner. */
export function approvePairing(
  baseUrl: string,
  cookie: string,
  code: string,
  runnerId?: string,
): Promise<RunnerOk> {
  return apiJson(baseUrl, "/api/devmode/pair/approve", { cookie, body: { code, runnerId } });
}

/** Polls a pairing once as the runner; returns status and body. */
export async function checkPairing(
  baseUrl: string,
  code: string,
  pollSecret: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await apiRequest(baseUrl, `/api/devmode/pair/check?code=${encodeURIComponent(code)}`, {
    headers: { "x-pair-secret": pollSecret },
  });
  return { status: response.status, body: await response.json() };
}

/** A paired test runner. */
export interface PairedRunner {
  runnerId: string;
  runnerToken: string;
  relayUrl: string;
  /** The token's jti (the pairing id). */
  jti: string;
}

/**
 * Pairs a runner for the signed-in user: start, approve, check. With
 * `runnerId`, re-pairs that runner (its previous token is revoked).
 */
export async function pairRunner(
  baseUrl: string,
  cookie: string,
  info: { name?: string; hostname?: string; os?: string; runnerId?: string } = {},
): Promise<PairedRunner> {
  const { runnerId: repair, ...description } = info;
  const started = await startPairing(baseUrl, { hostname: "test-host", os: "linux", ...description });
  await approvePairing(baseUrl, cookie, started.code, repair);
  const { status, body } = await checkPairing(baseUrl, started.code, started.pollSecret);
  if (status !== 200 || body.status !== "approved") {
    throw new Error(`pairRunner: ${status} ${JSON.stringify(body)}`);
  }
  const runnerToken = body.runnerToken as string;
  return {
    runnerId: body.runnerId as string,
    runnerToken,
    relayUrl: body.relayUrl as string,
    jti: decodeJwt(runnerToken).jti as string,
  };
}

/** A client token for a session. */
export type CreatedSession = SessionTicket;

/** Mints a client token: a new session, or with `sessionId` a fresh token for an existing one. */
export function createSession(
  baseUrl: string,
  cookie: string,
  body: CreateSessionBody = { ideaId: "test-idea" },
): Promise<CreatedSession> {
  return apiJson(baseUrl, "/api/devmode/sessions", { cookie, body, expected: 201 });
}

/** Shares a session of the signed-in user (a link share for an hour unless `body` says otherwise). */
export function shareSession(
  baseUrl: string,
  cookie: string,
  sessionId: string,
  body: v.InferInput<typeof CreateShareSchema> = { audience: "link" },
): Promise<ShareCreated> {
  return apiJson(baseUrl, `/api/devmode/sessions/${sessionId}/shares`, { cookie, body, expected: 201 });
}

/** Asks for a watch ticket of the share an address names (its fragment is a link share's secret). */
export function watchTicket(baseUrl: string, url: string, cookie?: string): Promise<Response> {
  const { pathname, hash } = new URL(url);
  const shareId = pathname.split("/").at(-1)!;
  const secret = hash.slice(1);
  return apiRequest(baseUrl, `/api/devmode/shares/${shareId}/ticket`, {
    cookie,
    body: secret ? { secret } : {},
  });
}

/** Revokes (deletes) a runner of the signed-in user. */
export async function revokeRunner(baseUrl: string, cookie: string, runnerId: string): Promise<void> {
  await apiJson(baseUrl, `/api/devmode/runners/${encodeURIComponent(runnerId)}`, {
    cookie,
    method: "DELETE",
  });
}

/** Checks the API's answers against the contract (`api/contract.ts`). */
export interface ContractChecker {
  /** For `createApi`'s `around` option: records a nonconforming answer and replaces it with a 500 naming it. */
  middleware: MiddlewareHandler<ApiEnv>;
  /** Every nonconforming answer so far, as `METHOD path → status: problem`. */
  violations: string[];
  /** Throws when any answer left its schema (also those the test never read). */
  assertConforming(): void;
}

/** A {@linkcode ContractChecker}: every test app has one, so every API test exercises the schemas. */
export function contractChecker(): ContractChecker {
  const violations: string[] = [];
  const problem = async (res: Response, route: ReturnType<typeof routeContract>) => {
    if (!route) return null;
    const schema = responseSchema(route, res.status);
    if (schema === undefined) return "status not in the contract";
    if (schema === null) return null;
    let body: unknown;
    try {
      body = JSON.parse(await res.clone().text());
    } catch {
      return "body is not JSON";
    }
    const result = v.safeParse(schema, body);
    return result.success ? null : describeIssues(result.issues);
  };
  return {
    violations,
    middleware: async (c, next) => {
      await next();
      // The last route that matched with a method of its own is the handler (middleware is `ALL`).
      const handler = matchedRoutes(c).findLast((route) => route.method !== "ALL");
      const found = await problem(c.res, handler && routeContract(handler.method, handler.path));
      if (found === null) return;
      const violation = `${c.req.method} ${c.req.path} → ${c.res.status}: ${found}`;
      violations.push(violation);
      c.res = c.json({ error: `contract violation: ${violation}` }, 500);
    },
    assertConforming() {
      if (violations.length > 0) throw new Error(`answers left the contract:\n${violations.join("\n")}`);
    },
  };
}

/** Options of {@linkcode startTestApp}. */
export interface StartTestAppOptions extends Omit<StartAppOptions, "env"> {
  /** Extra variables; `PORT` and `DEVMODE_DATA_DIR` given here are kept (to restart on the same port and data). */
  env?: Env;
}

/**
 * Starts the app for a test: loopback, a free port, a temporary data directory
 * (removed on close unless the caller passed `DEVMODE_DATA_DIR`), and relay
 * logs kept quiet unless `CODA_TEST_LOGS=1` or `relayLog` is given. Pages are
 * served from `spa/dist` as the last build left it.
 */
export async function startTestApp(options: StartTestAppOptions = {}): Promise<StartedApp> {
  const ownDataDir = !options.env?.DEVMODE_DATA_DIR;
  const dataDir = options.env?.DEVMODE_DATA_DIR ?? await Deno.makeTempDir({ prefix: "coda-test-" });
  const quiet: RelayLog = () => {};
  const contract = contractChecker();
  const app = await startApp({
    relayLog: Deno.env.get("CODA_TEST_LOGS") === "1" ? undefined : quiet,
    ...options,
    api: { around: contract.middleware },
    env: { HOST: "127.0.0.1", PORT: "0", ...options.env, DEVMODE_DATA_DIR: dataDir },
  });
  return {
    ...app,
    async close() {
      await app.close();
      if (ownDataDir) await Deno.remove(dataDir, { recursive: true });
      contract.assertConforming();
    },
  };
}
