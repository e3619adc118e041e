/**
 * What the relay needs from the app, as an interface with two implementations:
 * KV-backed when the relay runs inside the app (`api/relay_backend.ts`), and
 * HTTP-backed when it runs alone (`relay/http_backend.ts`).
 *
 * @module
 */

/** Who a runner token belongs to, as the app's records say. */
export interface RunnerIdentity {
  runnerId: string;
  userId: string;
}

/** The app-side checks and records the relay relies on. */
export interface RelayBackend {
  /**
   * Checks that a runner token's `jti` is current and not revoked. Resolves
   * the identity on record, or `null` when revoked or unknown. Rejects when
   * the check could not be made: the relay then refuses the runner (fail closed).
   */
  verifyRunnerJti(jti: string): Promise<RunnerIdentity | null>;
  /**
   * Marks a client token's `jti` as used until `expiresAt`. Resolves `false`
   * when it had been used before (the token is then refused).
   */
  consumeClientJti(jti: string, expiresAt: Date): Promise<boolean>;
  /** Records a runner online (refreshed at every heartbeat) or offline. Best effort. */
  setPresence(runnerId: string, userId: string, online: boolean): Promise<void>;
  /**
   * Calls `onChange` whenever runner tokens may have been revoked, until
   * `signal` aborts. Absent when the backend cannot watch; the relay then
   * re-verifies connected runners periodically.
   */
  watchRevocations?(onChange: () => void, signal: AbortSignal): void;
}
