/**
 * `coda-runner serve`: the manual-URL fallback. Serves the client protocol
 * (`/client?token=…&offset=…&cols=…&rows=…&ack=1`, the `coda.v2` binary
 * subprotocol) straight from this process: the relay's own broker and client
 * link (`@coda/relay/local`) with the session manager wired in as its runner,
 * so messages, meta lines, limits and close codes are the relay's.
 *
 * - Access: a random access token (256 bits), printed once inside the URL.
 *   A missing or wrong token is refused with HTTP 401 before the upgrade.
 * - Origin: a browser's `Origin` must be in the allowed list (403 otherwise);
 *   requests without one (non-browser tools) rely on the token alone.
 * - Session: the `session` query parameter picks the session to attach to
 *   (8-64 characters of `[A-Za-z0-9_-]`); without it a new one is made. The
 *   id is announced in the first meta line, `coda:session:<id>`, so a client
 *   reconnects to it with `&session=<id>&offset=<bytes it has>`. An optional
 *   `idea` parameter plays the part of the token's `ideaId`.
 *
 * @module
 */
import { createLocalRelay, type LocalRelayOptions } from "@coda/relay/local";
import { sameSiteOrigins } from "@coda/relay/urls";
import { DEFAULT_RELAY_LIMITS } from "@coda/relay/limits";
import { SessionManager, type SessionManagerOptions } from "./session_manager.ts";
import type { Logger } from "./log.ts";

/** Default port of `coda-runner serve`. */
export const DEFAULT_SERVE_PORT = 7681;

/** The app origins a browser may connect from by default. */
export function defaultServeOrigins(appUrl = "http://localhost:8080"): string[] {
  return sameSiteOrigins(appUrl);
}

/** Options of {@linkcode startServe}. */
export interface ServeOptions {
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 7681; 0 picks a free one). */
  port?: number;
  /** The access token clients must present (default: 32 random bytes). */
  accessToken?: string;
  /** Browser origins allowed to connect. */
  allowedOrigins: string[];
  log: Logger;
  /** Everything the session manager needs but its sink. */
  sessions: Omit<SessionManagerOptions, "sink" | "log">;
  /** Malformed or forbidden frames a client may send before close 1008 (default: the relay's). */
  malformedFrameLimit?: number;
  /** Bytes a client may have queued before close 4413 (default: the relay's). */
  maxClientBufferedBytes?: number;
}

/** A running `serve`. */
export interface ServeHandle {
  /** `ws://HOST:PORT/client?token=…`: the URL to paste into the app (contains the token). */
  clientUrl: string;
  /** `ws://HOST:PORT`. */
  baseUrl: string;
  accessToken: string;
  manager: SessionManager;
  /** Closes every client and session and stops listening. */
  close(): Promise<void>;
}

/** A new random access token (256 bits, base64url). */
export function newAccessToken(): string {
  return crypto.getRandomValues(new Uint8Array(32)).toBase64({ alphabet: "base64url", omitPadding: true });
}

/** The broker's records as runner log lines: refusals are warnings, the rest information. */
function relayLogOf(log: Logger): LocalRelayOptions["log"] {
  return ({ event, ...fields }) => {
    const message = String(event);
    if (message === "client_refused" || message.endsWith("_policy_close")) log.warn(message, fields);
    else log.info(message, fields);
  };
}

/** Starts serving the client protocol locally. */
export function startServe(options: ServeOptions): Promise<ServeHandle> {
  const accessToken = options.accessToken ?? newAccessToken();
  const relay = createLocalRelay({
    accessToken,
    allowedOrigins: options.allowedOrigins,
    // Called only once a client is attached, long after `manager` below exists.
    toRunner: (message) => void manager.handle(message),
    limits: {
      malformedFrameLimit: options.malformedFrameLimit ?? DEFAULT_RELAY_LIMITS.malformedFrameLimit,
      maxClientBufferedBytes: options.maxClientBufferedBytes ?? DEFAULT_RELAY_LIMITS.maxClientBufferedBytes,
    },
    log: relayLogOf(options.log),
  });
  const manager = new SessionManager({ ...options.sessions, sink: relay.runnerSink, log: options.log });

  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: options.host ?? "127.0.0.1",
      port: options.port ?? DEFAULT_SERVE_PORT,
      onListen(addr) {
        const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
        const baseUrl = `ws://${host}:${addr.port}`;
        let closed: Promise<void> | undefined;
        resolve({
          baseUrl,
          clientUrl: `${baseUrl}/client?token=${accessToken}`,
          accessToken,
          manager,
          close() {
            closed ??= (async () => {
              await relay.shutdown();
              await manager.shutdown();
              await server.shutdown();
            })();
            return closed;
          },
        });
      },
    }, (req) => relay.handle(req));
  });
}
