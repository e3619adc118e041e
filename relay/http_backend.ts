/**
 * The relay's backend when it runs alone (on Fly.io): everything goes to the
 * app over HTTP — runner tokens are verified, presence is reported, client-token
 * jtis are consumed in the app's KV (the store the in-app relay uses too, so a
 * token works once across both), and sign-outs are read.
 *
 * - `GET {appUrl}/api/devmode/tokens/runner/verify?jti=…` with `X-Relay-Secret`:
 *   200 `{valid:true, runnerId, userId}` accepts, 403 refuses; anything else,
 *   a network error or no answer within the timeout rejects (the relay then
 *   refuses the runner: fail closed). Positive answers are cached for `cacheMs`.
 * - `POST {appUrl}/api/devmode/internal/presence {runnerId, userId, online}`.
 * - `POST {appUrl}/api/devmode/internal/client-jti {jti, expiresAt}` → `{fresh}`;
 *   any failure rejects (the relay then refuses the client: fail closed).
 * - `POST {appUrl}/api/devmode/internal/signed-out {userIds}` → `{signedOut: {userId: ms}}`.
 * - `POST {appUrl}/api/devmode/internal/shares {shareIds}` → `{live: [shareId]}`; any failure rejects
 *   (the relay then refuses the viewer: fail closed).
 * - `POST {appUrl}/api/devmode/internal/share-viewer {shareId, clientId, viewer?, online}`.
 *
 * @module
 */
import * as v from "valibot";
import { MAX_SIGN_OUT_QUERY, type RelayBackend, type RunnerIdentity } from "./backend.ts";

/** Options of {@linkcode createHttpRelayBackend}. */
export interface HttpBackendOptions {
  /** The app's origin, e.g. `https://app.example.com`. */
  appUrl: string;
  /** `RELAY_INTERNAL_SECRET`, sent as `X-Relay-Secret`. */
  relaySecret: string;
  /** Clock, ms since the epoch. */
  now?: () => number;
  /** Per-request timeout (default 5 s). */
  timeoutMs?: number;
  /**
   * How long a positive verification is reused (default 25 s, at most 60 s).
   * Kept below the re-verify interval so every periodic re-verification asks the app.
   */
  cacheMs?: number;
}

/** Default time a positive verification is reused. */
export const DEFAULT_VERIFY_CACHE_MS = 25_000;

const VerifyAnswer = v.object({
  valid: v.literal(true),
  runnerId: v.string(),
  userId: v.string(),
});

const ClientJtiAnswer = v.object({ fresh: v.boolean() });

const SignedOutAnswer = v.object({ signedOut: v.record(v.string(), v.number()) });

const LiveSharesAnswer = v.object({ live: v.array(v.string()) });

/** Creates the HTTP-backed {@linkcode RelayBackend}. It offers no revocation watch. */
export function createHttpRelayBackend(options: HttpBackendOptions): RelayBackend {
  const now = options.now ?? Date.now;
  const timeoutMs = options.timeoutMs ?? 5000;
  const cacheMs = Math.min(options.cacheMs ?? DEFAULT_VERIFY_CACHE_MS, 60_000);
  const appUrl = options.appUrl.replace(/\/+$/, "");
  const cache = new Map<string, { identity: RunnerIdentity; until: number }>();
  /**
   * Every call to the app: the secret, a timeout, and no redirects followed — a redirect would re-send
   * `X-Relay-Secret` to wherever `Location` points; `redirect: "error"` makes one a failed check (1011).
   */
  const callApp = (path: string, init: { method?: string; json?: unknown } = {}) => {
    const headers: Record<string, string> = { "x-relay-secret": options.relaySecret };
    if (init.json !== undefined) headers["content-type"] = "application/json";
    return fetch(`${appUrl}${path}`, {
      method: init.method ?? "GET",
      headers,
      body: init.json === undefined ? undefined : JSON.stringify(init.json),
      redirect: "error",
      signal: AbortSignal.timeout(timeoutMs),
    });
  };

  return {
    async verifyRunnerJti(jti) {
      const cached = cache.get(jti);
      if (cached && cached.until > now()) return cached.identity;
      cache.delete(jti);
      const response = await callApp(`/api/devmode/tokens/runner/verify?jti=${encodeURIComponent(jti)}`);
      const body = await response.text();
      if (response.status === 403) return null;
      if (response.status !== 200) throw new Error(`verify endpoint answered ${response.status}`);
      let parsed;
      try {
        parsed = v.safeParse(VerifyAnswer, JSON.parse(body));
      } catch {
        throw new Error("verify endpoint answered invalid JSON");
      }
      if (!parsed.success) throw new Error("verify endpoint answered an unexpected body");
      const identity = { runnerId: parsed.output.runnerId, userId: parsed.output.userId };
      if (cache.size > 10_000) cache.clear();
      cache.set(jti, { identity, until: now() + cacheMs });
      return identity;
    },

    forgetVerifications() {
      cache.clear();
    },

    async consumeClientJti(jti, expiresAt) {
      const response = await callApp("/api/devmode/internal/client-jti", {
        method: "POST",
        json: { jti, expiresAt: expiresAt.getTime() },
      });
      return (await readAnswer(response, ClientJtiAnswer, "client-jti")).fresh;
    },

    async signedOutAt(userIds) {
      if (userIds.length > MAX_SIGN_OUT_QUERY) {
        throw new RangeError(`at most ${MAX_SIGN_OUT_QUERY} users per query`);
      }
      const response = await callApp("/api/devmode/internal/signed-out", {
        method: "POST",
        json: { userIds },
      });
      return new Map(Object.entries((await readAnswer(response, SignedOutAnswer, "signed-out")).signedOut));
    },

    async liveShares(shareIds) {
      if (shareIds.length > MAX_SIGN_OUT_QUERY) {
        throw new RangeError(`at most ${MAX_SIGN_OUT_QUERY} shares per query`);
      }
      const response = await callApp("/api/devmode/internal/shares", { method: "POST", json: { shareIds } });
      return new Set((await readAnswer(response, LiveSharesAnswer, "shares")).live);
    },

    async reportViewer(report) {
      const response = await callApp("/api/devmode/internal/share-viewer", { method: "POST", json: report });
      await response.body?.cancel();
      if (!response.ok) throw new Error(`share-viewer endpoint answered ${response.status}`);
    },

    async setPresence(runnerId, userId, online) {
      const response = await callApp("/api/devmode/internal/presence", {
        method: "POST",
        json: { runnerId, userId, online },
      });
      await response.body?.cancel();
      if (!response.ok) throw new Error(`presence endpoint answered ${response.status}`);
    },

    async reportSession(report) {
      const response = await callApp("/api/devmode/internal/session", { method: "POST", json: report });
      await response.body?.cancel();
      if (!response.ok) throw new Error(`session endpoint answered ${response.status}`);
    },
  };
}

/** The 200 body of an internal endpoint, parsed; anything else rejects. */
async function readAnswer<S extends v.GenericSchema>(
  response: Response,
  schema: S,
  endpoint: string,
): Promise<v.InferOutput<S>> {
  const body = await response.text();
  if (response.status !== 200) throw new Error(`${endpoint} endpoint answered ${response.status}`);
  let parsed;
  try {
    parsed = v.safeParse(schema, JSON.parse(body));
  } catch {
    throw new Error(`${endpoint} endpoint answered invalid JSON`);
  }
  if (!parsed.success) throw new Error(`${endpoint} endpoint answered an unexpected body`);
  return parsed.output;
}
