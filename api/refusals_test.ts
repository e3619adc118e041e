import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { type DomainFailure, refusal, unwrap } from "./refusals.ts";
import { failure, success } from "./result.ts";

const UNKNOWN_CODE = "unknown or expired code";

type Expected = [DomainFailure, number, string, Record<string, unknown>, Record<string, string>];

/** Each reason (every one: the type says so) with the answer the routes gave before the domain modules returned results. */
const EXPECTED: { [R in DomainFailure["reason"]]: Expected } = {
  start_limited: [
    failure("start_limited", 539_001),
    429,
    "too many pairings started from this address; try again later",
    {},
    { "retry-after": "540" },
  ],
  wrong_code_limited: [failure("wrong_code_limited", 1), 429, "too many wrong codes; try again later", {}, {
    "retry-after": "1",
  }],
  unknown_code: [failure("unknown_code"), 404, UNKNOWN_CODE, {}, {}],
  already_approved: [failure("already_approved"), 409, "this code was already approved", {}, {}],
  runner_not_found: [failure("runner_not_found"), 404, "runner not found", {}, {}],
  runner_not_yours: [failure("runner_not_yours"), 403, "this runner belongs to someone else", {}, {}],
  missing_poll_secret: [
    failure("missing_poll_secret"),
    403,
    "missing X-Pair-Secret header: send the pollSecret that POST /api/devmode/pair/start returned, " +
    "as X-Pair-Secret; the code alone never releases the runner token (RFC 8628 section 5.2)",
    {},
    {},
  ],
  not_a_code: [failure("not_a_code"), 400, "code is not a pairing code", {}, {}],
  session_ended: [failure("session_ended"), 410, "this session has ended", {}, {}],
  share_not_found: [failure("share_not_found"), 404, "no such share, or it was revoked", {}, {}],
  share_expired: [failure("share_expired"), 410, "this share has expired", {}, {}],
  share_not_invited: [failure("share_not_invited"), 403, "this share is for other accounts", {}, {}],
  share_wrong_secret: [failure("share_wrong_secret"), 403, "this link is not the share's", {}, {}],
  unknown_poll: [failure("unknown_poll"), 404, UNKNOWN_CODE, { status: "expired" }, {}],
  slow_down: [
    failure("slow_down", 5000),
    429,
    "polling too fast",
    { status: "slow_down", interval: 5 },
    { "retry-after": "5" },
  ],
  session_not_found: [failure("session_not_found"), 404, "session not found", {}, {}],
  session_not_yours: [failure("session_not_yours"), 403, "this session belongs to someone else", {}, {}],
  no_recording: [failure("no_recording"), 404, "no recording for this session", {}, {}],
  recording_deleted: [failure("recording_deleted"), 410, "this session's recording was deleted", {}, {}],
  recording_full: [failure("recording_full"), 413, "recording limit reached for this session", {}, {}],
  storage_full: [
    { ...failure("storage_full", 300_000), bytesPerUser: 1000 },
    429,
    "recording storage limit reached: 1000 bytes per user; delete recordings to record more",
    {},
    { "retry-after": "300" },
  ],
  session_limit: [
    failure("session_limit", 59_500),
    429,
    "session limit reached: at most 120 new sessions per 10 minutes",
    {},
    { "retry-after": "60" },
  ],
};

Deno.test("every failure reason is answered with the status, message, body fields and headers the routes always sent", () => {
  for (const [input, status, message, extra, headers] of Object.values(EXPECTED)) {
    const error = refusal(input);
    assertEquals(
      { status: error.status, message: error.message, extra: error.extra, headers: error.headers },
      { status, message, extra, headers },
      input.reason,
    );
  }
});

Deno.test("unwrap passes a value through and throws a failure's answer", () => {
  assertEquals(unwrap(success({ bytes: 3 })), { bytes: 3 });
  try {
    unwrap(failure("already_approved"));
    throw new Error("unwrap returned for a failure");
  } catch (error) {
    assertEquals(error, refusal(failure("already_approved")));
  }
});
