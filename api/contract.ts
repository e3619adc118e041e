/**
 * The HTTP contract: one valibot schema for every request the API reads and
 * every JSON answer it gives, and the TypeScript types inferred from them.
 * The API validates requests with these schemas, its tests check every
 * answer against them ({@linkcode ROUTES}), the runner parses the answers it
 * relies on with them, and the SPA imports the types (`import type` only, so
 * valibot stays out of the browser bundle).
 *
 * @module
 */
import * as v from "valibot";
import { MAX_SIGN_OUT_QUERY } from "@coda/relay/backend";
import { MAX_FRAME_BYTES, MAX_IDEA_ID_LENGTH, RunnerIdSchema, SessionIdSchema } from "@coda/relay/protocol";

/** Minimum password length. */
export const MIN_PASSWORD_LENGTH = 10;

/** Longest pairing code accepted as typed (hyphens and spaces included). */
const MAX_TYPED_CODE = 32;

/** Every error answer: a message that is safe to show (some carry more fields, see {@linkcode ROUTES}). */
export const ErrorBodySchema = v.object({ error: v.string() });
/** An error answer. */
export type ErrorBody = v.InferOutput<typeof ErrorBodySchema>;

const Ok = v.literal(true);

// ---- /healthz and /api/devmode/config

/** Answer of `GET /healthz`. */
export const HealthSchema = v.object({
  ok: Ok,
  /** The instance that answered (`FLY_MACHINE_ID`, `DEVMODE_INSTANCE_ID` or a random id). */
  instance: v.string(),
});

/** Answer of `GET /api/devmode/config`: the public configuration. */
export const DevmodeConfigSchema = v.object({ relayEnabled: v.boolean(), relayUrl: v.string() });
/** The public configuration. */
export type DevmodeConfig = v.InferOutput<typeof DevmodeConfigSchema>;

// ---- /api/auth

const EmailSchema = v.pipe(v.string(), v.trim(), v.maxLength(254), v.email("email is not a valid address"));

/** Body of `POST /api/auth/signup`. */
export const SignupSchema = v.object({
  email: EmailSchema,
  password: v.pipe(
    v.string(),
    v.minLength(MIN_PASSWORD_LENGTH, `password must be at least ${MIN_PASSWORD_LENGTH} characters`),
    v.maxLength(1024, "password must be at most 1024 characters"),
  ),
});

/** Body of `POST /api/auth/login`. */
export const LoginSchema = v.object({
  email: v.pipe(v.string(), v.maxLength(254)),
  password: v.pipe(v.string(), v.maxLength(1024)),
});

/** A signed-in user. */
export const UserSchema = v.object({ id: v.string(), email: v.string() });
/** A signed-in user. */
export type User = v.InferOutput<typeof UserSchema>;

/** Answer of sign-up and sign-in. */
export const UserAnswerSchema = v.object({ user: UserSchema });
/** Answer of sign-up and sign-in. */
export type UserAnswer = v.InferOutput<typeof UserAnswerSchema>;

/** Answer of `GET /api/auth/me` (`user` is `null` when signed out). */
export const MeAnswerSchema = v.object({ user: v.nullable(UserSchema) });
/** Answer of `GET /api/auth/me`. */
export type MeAnswer = v.InferOutput<typeof MeAnswerSchema>;

/** Answer of writes that only confirm. */
export const OkSchema = v.object({ ok: Ok });
/** Answer of writes that only confirm. */
export type OkAnswer = v.InferOutput<typeof OkSchema>;

// ---- /api/devmode/pair

/** Longest runner name (and hostname, OS label): a DNS name fits. */
export const MAX_RUNNER_NAME = 255;

/**
 * Control, format (bidi overrides and isolates, zero-width marks) and line/paragraph separator
 * characters: shown to the approving user, they could make "linux" of an attacker's U+202E-reversed
 * OS string, hide text, or break a line the runner list draws.
 */
const UNSAFE_LABEL_CHARS = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

/** A runner label (name, hostname, OS) with unsafe characters removed and surrounding space trimmed. */
export function cleanLabel(label: string): string {
  return label.replace(UNSAFE_LABEL_CHARS, "").trim();
}

/** A label from an unauthenticated runner: unsafe characters dropped before the length is checked. */
const Label = v.optional(
  v.pipe(
    v.string(),
    v.transform(cleanLabel),
    v.maxLength(MAX_RUNNER_NAME, `at most ${MAX_RUNNER_NAME} characters`),
  ),
);

/** Body of `POST /api/devmode/pair/start`. */
export const PairStartSchema = v.object({ name: Label, hostname: Label, os: Label });

/** Answer of `POST /api/devmode/pair/start`. */
export const PairStartedSchema = v.object({
  code: v.string(),
  /** ms since the epoch. */
  expiresAt: v.number(),
  pollSecret: v.string(),
  /** Seconds between polls. */
  interval: v.number(),
});
/** Answer of `POST /api/devmode/pair/start`. */
export type PairStarted = v.InferOutput<typeof PairStartedSchema>;

/** The `code` query parameter of `pair/check` and `pair/info`. */
export const PairCodeParamSchema = v.pipe(
  v.string("code query parameter is required"),
  v.minLength(1, "code query parameter is required"),
  v.maxLength(MAX_TYPED_CODE, "code is too long"),
);

/** Answer of `GET /api/devmode/pair/check` (200). */
export const PairStatusSchema = v.variant("status", [
  v.object({ status: v.literal("pending") }),
  v.object({
    status: v.literal("approved"),
    relayUrl: v.string(),
    runnerId: v.string(),
    runnerToken: v.string(),
    user: v.object({ email: v.string() }),
  }),
  v.object({ status: v.literal("consumed") }),
  v.object({ status: v.literal("expired") }),
  /** The user pressed Cancel on the approve page (`pair/deny`): stop polling, do not start again. */
  v.object({ status: v.literal("denied") }),
]);
/** Answer of `GET /api/devmode/pair/check`. */
export type PairStatus = v.InferOutput<typeof PairStatusSchema>;

/** The RFC 8628 `slow_down` answer (429) to a poll that came too soon. */
export const SlowDownSchema = v.object({
  error: v.string(),
  status: v.literal("slow_down"),
  /** Seconds to wait between polls. */
  interval: v.number(),
});

/** Answer of `GET /api/devmode/pair/info`: what approving the code would authorize. */
export const PairInfoSchema = v.object({
  code: v.string(),
  name: v.nullable(v.string()),
  hostname: v.nullable(v.string()),
  os: v.nullable(v.string()),
  ip: v.string(),
  requestedAt: v.number(),
  expiresAt: v.number(),
  /**
   * Whether the runner asked from the approving browser's address. When not, the approve page
   * warns: a phishing link carries a code started on the attacker's machine.
   */
  sameAddress: v.boolean(),
});
/** What `pair/info` shows the approving user. */
export type PairInfo = v.InferOutput<typeof PairInfoSchema>;

/** Body of `POST /api/devmode/pair/approve`. */
export const PairApproveSchema = v.object({
  code: v.pipe(v.string("code is required"), v.maxLength(MAX_TYPED_CODE, "code is too long")),
  runnerId: v.optional(RunnerIdSchema),
});

/** Body of `POST /api/devmode/pair/deny`: the code the user refused on the approve page. */
export const PairDenySchema = v.object({
  code: v.pipe(v.string("code is required"), v.maxLength(MAX_TYPED_CODE, "code is too long")),
});

/** Answer of writes about one runner (approve, unpair, revoke). */
export const RunnerOkSchema = v.object({ ok: Ok, runnerId: v.string() });
/** Answer of writes about one runner. */
export type RunnerOk = v.InferOutput<typeof RunnerOkSchema>;

// ---- /api/devmode/sessions

/** Body of `POST /api/devmode/sessions`. */
export const CreateSessionSchema = v.object({
  ideaId: v.pipe(
    v.string("ideaId is required"),
    v.minLength(1, "ideaId is required"),
    v.maxLength(MAX_IDEA_ID_LENGTH),
  ),
  runnerId: v.optional(RunnerIdSchema),
  sessionId: v.optional(SessionIdSchema),
});
/** What a client sends to `POST /api/devmode/sessions` (`runnerId` is left out, never `null`, for "no runner named"). */
export type CreateSessionBody = v.InferInput<typeof CreateSessionSchema>;

/** Answer of `POST /api/devmode/sessions`: a client token for the session. */
export const SessionTicketSchema = v.object({
  relayUrl: v.string(),
  sessionId: v.string(),
  token: v.string(),
});
/** A ticket for a terminal session. */
export type SessionTicket = v.InferOutput<typeof SessionTicketSchema>;

/**
 * A session as `GET /api/devmode/sessions` lists it: only sessions that can be reattached (not
 * ended, on one of the user's runners that is online).
 */
export const RecentSessionSchema = v.object({
  sessionId: v.string(),
  ideaId: v.string(),
  /** The runner it runs on (reattach names it). */
  runnerId: v.string(),
  /** That runner's name, as the runner list shows it. */
  runnerName: v.string(),
  /** Its working directory as last reported, `null` before any. */
  cwd: v.nullable(v.string()),
  /** ms since the epoch. */
  createdAt: v.number(),
});
/** A session the user can reattach. */
export type RecentSession = v.InferOutput<typeof RecentSessionSchema>;

// ---- /api/devmode/runners

/** A runner as listed to its owner. */
export const RunnerViewSchema = v.object({
  runnerId: v.string(),
  name: v.string(),
  hostname: v.string(),
  os: v.string(),
  createdAt: v.number(),
  lastSeenAt: v.nullable(v.number()),
  online: v.boolean(),
  /** The user marked it as the runner new terminals go to. */
  isDefault: v.boolean(),
});
/** A runner as listed to its owner. */
export type RunnerView = v.InferOutput<typeof RunnerViewSchema>;

/** Body of `PATCH /api/devmode/runners/:runnerId`: a new name, the default mark, or both. */
export const UpdateRunnerSchema = v.pipe(
  v.object({
    name: v.optional(v.pipe(
      v.string("name must be a string"),
      v.transform(cleanLabel),
      v.minLength(1, "name must not be empty"),
      v.maxLength(MAX_RUNNER_NAME, `name must be at most ${MAX_RUNNER_NAME} characters`),
    )),
    default: v.optional(v.boolean("default must be true or false")),
  }),
  v.check((body) => body.name !== undefined || body.default !== undefined, "name or default is required"),
);

/** Answer of `PATCH /api/devmode/runners/:runnerId`: what changed. */
export const RunnerUpdatedSchema = v.object({
  ok: Ok,
  runnerId: v.string(),
  name: v.optional(v.string()),
  default: v.optional(v.boolean()),
});
/** Answer of `PATCH /api/devmode/runners/:runnerId`. */
export type RunnerUpdated = v.InferOutput<typeof RunnerUpdatedSchema>;

// ---- /api/devmode/logs

const Dimension = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1000));

/** Body of `POST /api/devmode/logs/ingest`. */
export const IngestSchema = v.object({
  sessionId: SessionIdSchema,
  chunks: v.pipe(
    v.array(v.object({
      /** When the output was produced, ms since the epoch. */
      t: v.pipe(v.number(), v.finite(), v.minValue(0), v.maxValue(Number.MAX_SAFE_INTEGER)),
      data: v.string(),
    })),
    v.maxLength(100_000),
  ),
  cols: v.optional(Dimension),
  rows: v.optional(Dimension),
});
/** What a runner sends to `POST /api/devmode/logs/ingest`. */
export type IngestBody = v.InferInput<typeof IngestSchema>;

/** Answer of `POST /api/devmode/logs/ingest`: the recording's size so far. */
export const IngestedSchema = v.object({ ok: Ok, bytes: v.number() });

/** A recording as listed to its owner. */
export const LogSummarySchema = v.object({
  sessionId: v.string(),
  /** The idea the session was opened for, when the session is still on record. */
  ideaId: v.nullable(v.string()),
  startedAt: v.number(),
  bytes: v.number(),
});
/** A recording as listed to its owner. */
export type LogSummary = v.InferOutput<typeof LogSummarySchema>;

// ---- relay-facing routes (X-Relay-Secret)

const UserIdSchema = v.pipe(v.string(), v.minLength(1), v.maxLength(128));

/** The `jti` query parameter of `GET /api/devmode/tokens/runner/verify`. */
export const JtiParamSchema = v.pipe(
  v.string("jti query parameter is required"),
  v.minLength(1, "jti query parameter is required"),
  v.maxLength(128, "jti query parameter is required"),
);

/** Answer of `GET /api/devmode/tokens/runner/verify` when the jti is current (200). */
export const RunnerVerifiedSchema = v.object({
  valid: v.literal(true),
  runnerId: v.string(),
  userId: v.string(),
});

/** Answer of `GET /api/devmode/tokens/runner/verify` when it is not (403). */
export const RunnerRejectedSchema = v.object({ valid: v.literal(false) });

/** Body of `POST /api/devmode/internal/presence`. */
export const PresenceSchema = v.object({
  runnerId: RunnerIdSchema,
  userId: UserIdSchema,
  online: v.boolean(),
});

/** Body of `POST /api/devmode/internal/client-jti`: a client token's jti and its expiry (ms since the epoch). */
export const ClientJtiSchema = v.object({
  jti: v.pipe(v.string(), v.minLength(1), v.maxLength(128)),
  expiresAt: v.pipe(v.number(), v.safeInteger(), v.minValue(0)),
});

/** Body of `POST /api/devmode/internal/session`: what a standalone relay saw of a session. */
export const SessionReportSchema = v.object({
  sessionId: SessionIdSchema,
  userId: UserIdSchema,
  runnerId: v.optional(RunnerIdSchema),
  /** As the runner sent it, at most a frame long (the app keeps the first `MAX_SESSION_CWD_LENGTH`). */
  cwd: v.optional(v.pipe(v.string(), v.maxLength(MAX_FRAME_BYTES))),
  ended: v.optional(v.boolean()),
});

/** Answer of `POST /api/devmode/internal/client-jti`: whether the jti was seen for the first time. */
export const ClientJtiAnswerSchema = v.object({ fresh: v.boolean() });

/** Body of `POST /api/devmode/internal/signed-out`: the users whose last sign-out is wanted. */
export const SignedOutSchema = v.object({
  userIds: v.pipe(v.array(UserIdSchema), v.maxLength(MAX_SIGN_OUT_QUERY)),
});

/** Answer of `POST /api/devmode/internal/signed-out`: each known user's last sign-out (ms since the epoch). */
export const SignedOutAnswerSchema = v.object({ signedOut: v.record(v.string(), v.number()) });

// ---- /api/devmode/sessions/:sessionId/shares, /api/devmode/shares

/** Default lifetime of a share, in minutes. */
export const DEFAULT_SHARE_MINUTES = 60;
/** Longest lifetime of a share: a week. */
export const MAX_SHARE_MINUTES = 7 * 24 * 60;
/** Most accounts one share names. */
export const MAX_SHARE_EMAILS = 20;

/** Body of `POST /api/devmode/sessions/:sessionId/shares`. */
export const CreateShareSchema = v.pipe(
  v.object({
    /** `link`: anyone holding the link; `accounts`: the signed-in accounts of `emails`. */
    audience: v.picklist(["link", "accounts"], 'audience must be "link" or "accounts"'),
    emails: v.optional(
      v.pipe(v.array(EmailSchema), v.maxLength(MAX_SHARE_EMAILS, `at most ${MAX_SHARE_EMAILS} emails`)),
    ),
    /** Default {@linkcode DEFAULT_SHARE_MINUTES}. */
    minutes: v.optional(
      v.pipe(
        v.number("minutes must be a number"),
        v.integer("minutes must be whole"),
        v.minValue(1, "minutes must be at least 1"),
        v.maxValue(MAX_SHARE_MINUTES, `minutes must be at most ${MAX_SHARE_MINUTES}`),
      ),
    ),
  }),
  v.check(
    (body) => body.audience === "link" || (body.emails?.length ?? 0) > 0,
    "a share for accounts names at least one email",
  ),
);

/** A share as its owner sees it. */
export const ShareViewSchema = v.object({
  shareId: v.string(),
  audience: v.picklist(["link", "accounts"]),
  emails: v.array(v.string()),
  createdAt: v.number(),
  expiresAt: v.number(),
  /** Who watches now: an invited account's email, or null for someone with the link. */
  viewers: v.array(v.object({ viewer: v.nullable(v.string()), since: v.number() })),
});
/** A share as its owner sees it. */
export type ShareView = v.InferOutput<typeof ShareViewSchema>;

/** Answer of `POST /api/devmode/sessions/:sessionId/shares`: the share and the address to hand out. */
export const ShareCreatedSchema = v.object({
  share: ShareViewSchema,
  /** `…/devmode/watch/<shareId>`, with the secret in the fragment for a link share. */
  url: v.string(),
});
/** Answer of `POST /api/devmode/sessions/:sessionId/shares`. */
export type ShareCreated = v.InferOutput<typeof ShareCreatedSchema>;

/** Body of `POST /api/devmode/shares/:shareId/ticket`: a link share's secret (from the URL's fragment). */
export const WatchTicketRequestSchema = v.object({
  secret: v.optional(v.pipe(v.string(), v.maxLength(256))),
});

/** Answer of `POST /api/devmode/shares/:shareId/ticket`: a watch-only client token. */
export const WatchTicketSchema = v.object({
  relayUrl: v.string(),
  sessionId: v.string(),
  token: v.string(),
  expiresAt: v.number(),
});
/** Answer of `POST /api/devmode/shares/:shareId/ticket`. */
export type WatchTicket = v.InferOutput<typeof WatchTicketSchema>;

/** Body of `POST /api/devmode/internal/shares`: the shares a relay's viewers watch through. */
export const LiveSharesSchema = v.object({
  shareIds: v.pipe(v.array(v.pipe(v.string(), v.maxLength(128))), v.maxLength(MAX_SIGN_OUT_QUERY)),
});

/** Answer of `POST /api/devmode/internal/shares`: those still live. */
export const LiveSharesAnswerSchema = v.object({ live: v.array(v.string()) });

/** Body of `POST /api/devmode/internal/share-viewer`. */
export const ViewerReportSchema = v.object({
  shareId: v.pipe(v.string(), v.minLength(1), v.maxLength(128)),
  clientId: v.pipe(v.string(), v.minLength(1), v.maxLength(128)),
  viewer: v.optional(v.pipe(v.string(), v.maxLength(320))),
  online: v.boolean(),
});

// ---- the route table

/** One route: what it reads, and what it answers by status. */
export interface RouteContract {
  /** Its JSON body. */
  body?: v.GenericSchema;
  /** Its query parameters, each validated on its own (so messages name no path). */
  query?: Record<string, v.GenericSchema>;
  /**
   * Its answers by status: a schema for a JSON body, `null` for none or a non-JSON one (a download).
   * Any status not listed must be an error (400 or above) with an {@linkcode ErrorBody}.
   */
  responses: Record<number, v.GenericSchema | null>;
}

/** Every route the API serves, keyed `METHOD /path` as Hono lists them (`app.routes`). */
export const ROUTES = {
  "GET /healthz": { responses: { 200: HealthSchema } },
  "GET /api/devmode/config": { responses: { 200: DevmodeConfigSchema } },

  "POST /api/auth/signup": { body: SignupSchema, responses: { 201: UserAnswerSchema } },
  "POST /api/auth/login": { body: LoginSchema, responses: { 200: UserAnswerSchema } },
  "POST /api/auth/logout": { responses: { 200: OkSchema } },
  "GET /api/auth/me": { responses: { 200: MeAnswerSchema } },

  "POST /api/devmode/pair/start": { body: PairStartSchema, responses: { 201: PairStartedSchema } },
  "GET /api/devmode/pair/check": {
    query: { code: PairCodeParamSchema },
    responses: { 200: PairStatusSchema, 429: SlowDownSchema },
  },
  "GET /api/devmode/pair/info": { query: { code: PairCodeParamSchema }, responses: { 200: PairInfoSchema } },
  "POST /api/devmode/pair/approve": { body: PairApproveSchema, responses: { 200: RunnerOkSchema } },
  "POST /api/devmode/pair/deny": { body: PairDenySchema, responses: { 200: OkSchema } },
  "POST /api/devmode/pair/unpair": { responses: { 200: RunnerOkSchema } },

  "POST /api/devmode/sessions": { body: CreateSessionSchema, responses: { 201: SessionTicketSchema } },
  "GET /api/devmode/sessions": { responses: { 200: v.array(RecentSessionSchema) } },
  "POST /api/devmode/sessions/:sessionId/shares": {
    body: CreateShareSchema,
    responses: { 201: ShareCreatedSchema },
  },
  "GET /api/devmode/sessions/:sessionId/shares": { responses: { 200: v.array(ShareViewSchema) } },
  "DELETE /api/devmode/shares/:shareId": { responses: { 200: OkSchema } },
  "POST /api/devmode/shares/:shareId/ticket": {
    body: WatchTicketRequestSchema,
    responses: { 201: WatchTicketSchema },
  },

  "GET /api/devmode/runners": { responses: { 200: v.array(RunnerViewSchema) } },
  "PATCH /api/devmode/runners/:runnerId": {
    body: UpdateRunnerSchema,
    responses: { 200: RunnerUpdatedSchema },
  },
  "DELETE /api/devmode/runners/:runnerId": { responses: { 200: RunnerOkSchema } },

  "POST /api/devmode/logs/ingest": { body: IngestSchema, responses: { 200: IngestedSchema } },
  "GET /api/devmode/logs": { responses: { 200: v.array(LogSummarySchema) } },
  /** The recording as an asciicast v2 download. */
  "GET /api/devmode/logs/:sessionId": { responses: { 200: null } },
  "DELETE /api/devmode/logs/:sessionId": { responses: { 200: OkSchema } },

  "GET /api/devmode/tokens/runner/verify": {
    query: { jti: JtiParamSchema },
    responses: { 200: RunnerVerifiedSchema, 403: RunnerRejectedSchema },
  },
  "POST /api/devmode/internal/presence": { body: PresenceSchema, responses: { 204: null } },
  "POST /api/devmode/internal/client-jti": {
    body: ClientJtiSchema,
    responses: { 200: ClientJtiAnswerSchema },
  },
  "POST /api/devmode/internal/session": { body: SessionReportSchema, responses: { 204: null } },
  "POST /api/devmode/internal/signed-out": {
    body: SignedOutSchema,
    responses: { 200: SignedOutAnswerSchema },
  },
  "POST /api/devmode/internal/shares": { body: LiveSharesSchema, responses: { 200: LiveSharesAnswerSchema } },
  "POST /api/devmode/internal/share-viewer": { body: ViewerReportSchema, responses: { 204: null } },
} as const satisfies Record<string, RouteContract>;

/** A route's key in {@linkcode ROUTES}. */
export type RouteKey = keyof typeof ROUTES;

/** The contract of `METHOD path` (`path` as the router lists it, e.g. `/api/devmode/runners/:runnerId`), or `undefined`. */
export function routeContract(method: string, path: string): RouteContract | undefined {
  return (ROUTES as Record<string, RouteContract>)[`${method} ${path}`];
}

/**
 * The schema an answer of `route` with `status` must match: its own, {@linkcode ErrorBodySchema}
 * for an unlisted error status, `null` when its body is not JSON, `undefined` when the status is
 * not in the contract.
 */
export function responseSchema(route: RouteContract, status: number): v.GenericSchema | null | undefined {
  if (status in route.responses) return route.responses[status];
  return status >= 400 ? ErrorBodySchema : undefined;
}
