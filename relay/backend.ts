/**
 * What the relay needs from the app, as an interface with two implementations:
 * KV-backed when the relay runs inside the app (`api/relay_backend.ts`), and
 * HTTP-backed when it runs alone (`relay/http_backend.ts`).
 *
 * @module
 */

/** Most user ids asked about in one {@linkcode RelayBackend.signedOutAt} call (and one internal request). */
export const MAX_SIGN_OUT_QUERY = 500;

/** Who a runner token belongs to, as the app's records say. */
export interface RunnerIdentity {
  runnerId: string;
  userId: string;
}

/**
 * What the relay saw of a session, for the app's list of sessions a user can reattach. Only the
 * fields that changed are set.
 */
export interface SessionReport {
  sessionId: string;
  /** The user of the runner that sent it: a report about another user's session is ignored. */
  userId: string;
  /** The runner answered `attached`: the session runs a shell there (again). */
  runnerId?: string;
  /** Its working directory (`coda:cwd`). */
  cwd?: string;
  /** The runner sent `end`: the session is over. */
  ended?: boolean;
}

/** A viewer came or went on a share's watch-only link. */
export interface ViewerReport {
  shareId: string;
  /** The link's client id. */
  clientId: string;
  /** The invited account's email; absent for anyone holding the link. */
  viewer?: string;
  online: boolean;
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
  /**
   * When each of `userIds` (at most {@linkcode MAX_SIGN_OUT_QUERY}) last signed
   * out, ms since the epoch; users who never did are absent. Rejects when the
   * check could not be made.
   */
  signedOutAt(userIds: readonly string[]): Promise<Map<string, number>>;
  /** Records a runner online (refreshed at every heartbeat) or offline. Best effort. */
  setPresence(runnerId: string, userId: string, online: boolean): Promise<void>;
  /** Records what the relay saw of a session. Best effort; absent when nothing keeps sessions. */
  reportSession?(report: SessionReport): Promise<void>;
  /**
   * Calls `onChange` whenever runner tokens may have been revoked or a user
   * signed out, until `signal` aborts; it resolves once the relay has acted on
   * the change. Absent when the backend cannot watch; the relay then re-checks
   * connected runners and clients periodically.
   */
  watchRevocations?(onChange: () => Promise<void>, signal: AbortSignal): void;
  /**
   * Of `shareIds` (at most {@linkcode MAX_SIGN_OUT_QUERY}), the shares still live: not revoked, not
   * expired. Rejects when the check could not be made. Absent where nothing issues shares: the relay
   * then refuses watch-only links (fail closed).
   */
  liveShares?(shareIds: readonly string[]): Promise<Set<string>>;
  /** Records who watches through a share, for its owner. Best effort. */
  reportViewer?(report: ViewerReport): Promise<void>;
  /**
   * Forgets cached verifications: a revocation was recorded (seen in the KV instances share), so
   * the next {@linkcode verifyRunnerJti} asks the records. Absent when nothing is cached.
   */
  forgetVerifications?(): void;
}
