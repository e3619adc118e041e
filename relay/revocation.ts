/**
 * Live revocation: re-verifies connected runners whenever the backend reports
 * a possible revocation (KV watch, in the app), or periodically when it cannot
 * watch (standalone). A revoked or expired runner is disconnected with 4403 /
 * 4401 and its clients are told `coda:relay:revoked`.
 *
 * @module
 */
import type { RelayBackend } from "./backend.ts";
import type { Broker } from "./broker.ts";
import type { RelayLimits } from "./limits.ts";
import type { RelayLog } from "./log.ts";
import { CloseCode } from "./protocol.ts";
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

/**
 * Starts re-verification: on every backend change notification (when the
 * backend can watch), and every `reverifyIntervalMs`. Returns a function that stops it and
 * resolves once a check in progress is over.
 */
export function watchRevocations(options: RevocationOptions): () => Promise<void> {
  const controller = new AbortController();
  let running: Promise<void> = Promise.resolve();
  let again = false;
  let busy = false;
  const check = () => {
    if (controller.signal.aborted) return;
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    running = (async () => {
      do {
        again = false;
        await reverifyRunners(options);
      } while (again && !controller.signal.aborted);
      busy = false;
    })();
  };
  options.backend.watchRevocations?.(check, controller.signal);
  // Also periodic with a watch: expired tokens are caught, and a watch that died is covered.
  const interval = setInterval(check, options.limits.reverifyIntervalMs);
  return async () => {
    controller.abort();
    clearInterval(interval);
    await running;
  };
}
