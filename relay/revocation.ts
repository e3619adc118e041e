/**
 * Live revocation: re-verifies connected runners and re-checks connected
 * clients' users whenever the backend reports a possible revocation or
 * sign-out (KV watch, in the app), and periodically (the only way when alone).
 * A revoked or expired runner is disconnected with 4403 / 4401 and its clients
 * are told `coda:relay:revoked`; a client link opened before its user signed
 * out is closed 4401 `signed out`.
 *
 * @module
 */
import { MAX_SIGN_OUT_QUERY, type RelayBackend } from "./backend.ts";
import type { Broker } from "./broker.ts";
import type { RelayLimits } from "./limits.ts";
import type { RelayLog } from "./log.ts";
import type { ClientPeer } from "./peers.ts";
import { CloseCode, CloseReason } from "./protocol.ts";
import { CLOCK_TOLERANCE_SECONDS } from "./tokens.ts";

/** Options of {@linkcode watchRevocations}. */
export interface RevocationOptions {
  broker: Broker;
  backend: RelayBackend;
  limits: RelayLimits;
  log: RelayLog;
  now: () => number;
}

/** Re-verifies every connected runner once; resolves when all checks are done. */
export async function reverifyRunners(options: RevocationOptions): Promise<void> {
  const { broker, backend, log, now } = options;
  await Promise.all([...broker.runners.values()].map(async (runner) => {
    if (runner.exp + CLOCK_TOLERANCE_SECONDS < now() / 1000) {
      broker.revokeRunner(runner, CloseCode.UNAUTHORIZED, "token expired");
      return;
    }
    let identity;
    try {
      identity = await backend.verifyRunnerJti(runner.jti);
    } catch (error) {
      // A verify outage must not drop every runner; new connections still fail closed.
      log({ event: "reverify_failed", runnerId: runner.runnerId, error: String(error) });
      return;
    }
    if (broker.runners.get(runner.runnerId) !== runner) return;
    if (!identity || identity.runnerId !== runner.runnerId || identity.userId !== runner.userId) {
      broker.revokeRunner(runner, CloseCode.REVOKED, "runner token revoked");
    }
  }));
}

/** Reason sent with close 4401 to the links of a user who signed out. */
export const SIGNED_OUT_REASON = "signed out";

/**
 * Closes the client links opened before their user's last sign-out. A link
 * records no opening time, so each check bounds it: a link first seen by a
 * check opened after the previous check started. A link that may have opened
 * before the sign-out is closed (fail closed): one opened within a check
 * interval after signing out and in again may go too, and reconnects.
 */
export class SignOutCheck {
  /** Per link: it opened no earlier than this (ms since the epoch). */
  readonly #openedAfter = new WeakMap<ClientPeer, number>();
  #lastStart: number;

  /** @param startedAt when the relay started: no link opened before. */
  constructor(startedAt: number) {
    this.#lastStart = startedAt;
  }

  /** Checks every connected client once; resolves when done. */
  async run(options: RevocationOptions): Promise<void> {
    const { broker, backend, log, now } = options;
    const start = now();
    const userIds = new Set<string>();
    for (const client of broker.clients) {
      if (!this.#openedAfter.has(client)) this.#openedAfter.set(client, this.#lastStart);
      userIds.add(client.userId);
    }
    this.#lastStart = start;
    const users = [...userIds];
    for (let i = 0; i < users.length; i += MAX_SIGN_OUT_QUERY) {
      let signedOut;
      try {
        signedOut = await backend.signedOutAt(users.slice(i, i + MAX_SIGN_OUT_QUERY));
      } catch (error) {
        log({ event: "sign_out_check_failed", error: String(error) });
        continue;
      }
      for (const [userId, at] of signedOut) {
        broker.closeUserClients(userId, CloseCode.UNAUTHORIZED, SIGNED_OUT_REASON, (client) => {
          const openedAfter = this.#openedAfter.get(client);
          return openedAfter !== undefined && openedAfter < at;
        });
      }
    }
  }
}

/** Running re-verification. */
export interface RevocationWatch {
  /** Checks now (a check running goes round again); resolves once a check that started after the call is over. */
  check(): Promise<void>;
  /** Stops it; resolves once a check in progress is over. */
  stop(): Promise<void>;
}

/** Closes the viewers of shares that were revoked or expired (`4403 share revoked`). */
export async function recheckShares(options: RevocationOptions): Promise<void> {
  const { broker, backend, log } = options;
  if (!backend.liveShares) return;
  // Each share's owner: its viewers' tokens name the owner as their user.
  const owners = new Map<string, string>();
  for (const client of broker.clients) {
    if (client.claims.share) owners.set(client.claims.share, client.userId);
  }
  const shareIds = [...owners.keys()];
  for (let i = 0; i < shareIds.length; i += MAX_SIGN_OUT_QUERY) {
    const chunk = shareIds.slice(i, i + MAX_SIGN_OUT_QUERY);
    let live;
    try {
      live = await backend.liveShares(chunk);
    } catch (error) {
      log({ event: "share_check_failed", error: String(error) });
      continue;
    }
    for (const shareId of chunk) {
      if (live.has(shareId)) continue;
      broker.closeUserClients(
        owners.get(shareId)!,
        CloseCode.REVOKED,
        CloseReason.SHARE_REVOKED,
        (client) => client.claims.share === shareId,
      );
    }
  }
}

/**
 * Starts re-verification: on every backend change notification (when the backend can watch; the
 * notification resolves once it is acted on), on every {@linkcode RevocationWatch.check} (other
 * instances' changes, seen in shared KV), and every `reverifyIntervalMs`.
 */
export function watchRevocations(options: RevocationOptions): RevocationWatch {
  const controller = new AbortController();
  let running: Promise<void> = Promise.resolve();
  let again = false;
  let busy = false;
  const signOuts = new SignOutCheck(options.now());
  // Resolves once a check that started after this call is over (a running one goes round again).
  const check = (): Promise<void> => {
    if (controller.signal.aborted) return running;
    if (busy) {
      again = true;
      return running;
    }
    busy = true;
    running = (async () => {
      do {
        again = false;
        await Promise.all([reverifyRunners(options), signOuts.run(options), recheckShares(options)]);
      } while (again && !controller.signal.aborted);
      busy = false;
    })();
    return running;
  };
  options.backend.watchRevocations?.(check, controller.signal);
  // Also periodic with a watch: expired tokens are caught, and a watch that died is covered.
  const interval = setInterval(check, options.limits.reverifyIntervalMs);
  return {
    check,
    async stop() {
      controller.abort();
      clearInterval(interval);
      await running;
    },
  };
}
