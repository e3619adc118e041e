/**
 * What each refusal of a domain operation looks like over HTTP: one status,
 * message, and extra headers or body fields per failure reason, so every
 * route that meets a reason answers it the same way.
 *
 * @module
 */
import {
  type CreateSessionFailure,
  MAX_NEW_SESSIONS,
  type OwnSessionFailure,
  type ReattachFailure,
  SESSION_WINDOW_MS,
} from "./devmode_sessions.ts";
import { ApiError, tooManyRequests } from "./http.ts";
import type { AppendLogFailure, OwnLogFailure, RecordingFailure } from "./logs.ts";
import {
  type ApproveFailure,
  type CheckFailure,
  POLL_INTERVAL_SECONDS,
  type StartFailure,
} from "./pairing.ts";
import type { Failure, Result } from "./result.ts";
import type { OpenShareFailure } from "./shares.ts";
import type { OwnRunnerFailure } from "./runners.ts";

/** Every failure a domain operation behind a route can return. */
export type DomainFailure =
  | StartFailure
  | ApproveFailure
  | CheckFailure
  | AppendLogFailure
  | RecordingFailure
  | OwnLogFailure
  | CreateSessionFailure
  | OwnSessionFailure
  | ReattachFailure
  | OwnRunnerFailure
  | OpenShareFailure
  | Failure<"share_not_invited" | "share_wrong_secret">;

/** A reason a domain operation can give. */
type Reason = DomainFailure["reason"];

const UNKNOWN_CODE = "unknown or expired code";

/**
 * The refusal of a poll without its secret, worded for a client written from
 * the spec (which polls with the code alone): RFC 8628 §5.2 says the user code
 * must never release the token by itself, so the poll also needs the secret
 * that only the runner got back from `pair/start`.
 */
const MISSING_POLL_SECRET =
  "missing X-Pair-Secret header: send the pollSecret that POST /api/devmode/pair/start returned, " +
  "as X-Pair-Secret; the code alone never releases the runner token (RFC 8628 section 5.2)";

const ANSWERS: { [R in Reason]: (failure: Extract<DomainFailure, { reason: R }>) => ApiError } = {
  start_limited: (f) =>
    tooManyRequests("too many pairings started from this address; try again later", f.retryAfterMs),
  wrong_code_limited: (f) => tooManyRequests("too many wrong codes; try again later", f.retryAfterMs),
  unknown_code: () => new ApiError(404, UNKNOWN_CODE),
  already_approved: () => new ApiError(409, "this code was already approved"),
  runner_not_found: () => new ApiError(404, "runner not found"),
  runner_not_yours: () => new ApiError(403, "this runner belongs to someone else"),
  missing_poll_secret: () => new ApiError(403, MISSING_POLL_SECRET),
  not_a_code: () => new ApiError(400, "code is not a pairing code"),
  // `status` as in a lapsed code's answer, so a runner stops polling either way.
  unknown_poll: () => new ApiError(404, UNKNOWN_CODE, { status: "expired" }),
  slow_down: (f) =>
    tooManyRequests("polling too fast", f.retryAfterMs, {
      status: "slow_down",
      interval: POLL_INTERVAL_SECONDS,
    }),
  session_not_found: () => new ApiError(404, "session not found"),
  session_not_yours: () => new ApiError(403, "this session belongs to someone else"),
  session_ended: () => new ApiError(410, "this session has ended"),
  share_not_found: () => new ApiError(404, "no such share, or it was revoked"),
  share_expired: () => new ApiError(410, "this share has expired"),
  share_not_invited: () => new ApiError(403, "this share is for other accounts"),
  share_wrong_secret: () => new ApiError(403, "this link is not the share's"),
  no_recording: () => new ApiError(404, "no recording for this session"),
  recording_deleted: () => new ApiError(410, "this session's recording was deleted"),
  recording_full: () => new ApiError(413, "recording limit reached for this session"),
  storage_full: (f) =>
    tooManyRequests(
      `recording storage limit reached: ${f.bytesPerUser} bytes per user; delete recordings to record more`,
      f.retryAfterMs,
    ),
  session_limit: (f) =>
    tooManyRequests(
      `session limit reached: at most ${MAX_NEW_SESSIONS} new sessions per ${
        SESSION_WINDOW_MS / 60_000
      } minutes`,
      f.retryAfterMs,
    ),
};

/** The HTTP error that answers `failure`. */
export function refusal(failure: DomainFailure): ApiError {
  return (ANSWERS[failure.reason] as (failure: DomainFailure) => ApiError)(failure);
}

/** The value of `result`, or throws the HTTP error that answers its failure. */
export function unwrap<T>(result: Result<T, DomainFailure>): T {
  if (!result.ok) throw refusal(result);
  return result.value;
}
