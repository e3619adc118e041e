/**
 * The app's HTTP API as the browser uses it: same-origin `fetch` with the
 * session cookie, JSON in and out, and an {@linkcode ApiError} carrying the
 * server's `{error}` message for anything that is not 2xx.
 *
 * @module
 */
// Types only: the contract's schemas (and valibot) stay out of the browser bundle.
import type {
  CreateSessionBody,
  DevmodeConfig,
  LogSummary,
  MeAnswer,
  OkAnswer,
  PairInfo,
  RecentSession,
  RunnerOk,
  RunnerUpdated,
  RunnerView,
  SessionTicket,
  ShareCreated,
  ShareView,
  User,
  UserAnswer,
  WatchTicket,
} from "@coda/api/contract";

export type {
  DevmodeConfig,
  PairInfo,
  RecentSession,
  SessionTicket,
  ShareCreated,
  ShareView,
  User,
  WatchTicket,
};

/** A non-2xx answer (or no answer: `status` 0). */
export class ApiError extends Error {
  /** HTTP status, 0 when the request did not reach the app. */
  readonly status: number;
  /** The parsed body, when it was JSON. */
  readonly body: unknown;
  constructor(status: number, message: string, body: unknown = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }
}

/** A paired runner as listed to its owner. */
export type Runner = RunnerView;

/** A recorded session. */
export type Recording = LogSummary;

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? { accept: "application/json" } : {
        accept: "application/json",
        "content-type": "application/json",
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "No answer from the app; check your connection.");
  }
  const text = await response.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const message = json && typeof json === "object" && "error" in json && typeof json.error === "string"
      ? json.error
      : `Request failed (${response.status})`;
    throw new ApiError(response.status, message, json);
  }
  return json as T;
}

/** The API calls the pages make. */
export const api = {
  me: () => request<MeAnswer>("GET", "/api/auth/me").then((r) => r.user),
  signup: (email: string, password: string) =>
    request<UserAnswer>("POST", "/api/auth/signup", { email, password }).then((r) => r.user),
  login: (email: string, password: string) =>
    request<UserAnswer>("POST", "/api/auth/login", { email, password }).then((r) => r.user),
  logout: () => request<OkAnswer>("POST", "/api/auth/logout", {}),
  config: () => request<DevmodeConfig>("GET", "/api/devmode/config"),
  pairInfo: (code: string) =>
    request<PairInfo>("GET", `/api/devmode/pair/info?code=${encodeURIComponent(code)}`),
  pairApprove: (code: string) => request<RunnerOk>("POST", "/api/devmode/pair/approve", { code }),
  /** Refuses the code: the runner's next poll is told, and it stops asking. */
  pairDeny: (code: string) => request<OkAnswer>("POST", "/api/devmode/pair/deny", { code }),
  runners: () => request<Runner[]>("GET", "/api/devmode/runners"),
  renameRunner: (runnerId: string, name: string) =>
    request<RunnerUpdated>("PATCH", `/api/devmode/runners/${encodeURIComponent(runnerId)}`, { name }),
  /** Marks the runner as where new terminals go (`true`), or clears that mark (`false`). */
  setDefaultRunner: (runnerId: string, isDefault: boolean) =>
    request<RunnerUpdated>("PATCH", `/api/devmode/runners/${encodeURIComponent(runnerId)}`, {
      default: isDefault,
    }),
  revokeRunner: (runnerId: string) =>
    request<RunnerOk>("DELETE", `/api/devmode/runners/${encodeURIComponent(runnerId)}`),
  createSession: (body: CreateSessionBody) => request<SessionTicket>("POST", "/api/devmode/sessions", body),
  recentSessions: () => request<RecentSession[]>("GET", "/api/devmode/sessions"),
  /** Shares a session watch-only: with anyone holding the link, or with the accounts of `emails`. */
  shareSession: (
    sessionId: string,
    body: { audience: "link" | "accounts"; emails?: string[]; minutes: number },
  ) => request<ShareCreated>("POST", `/api/devmode/sessions/${encodeURIComponent(sessionId)}/shares`, body),
  shares: (sessionId: string) =>
    request<ShareView[]>("GET", `/api/devmode/sessions/${encodeURIComponent(sessionId)}/shares`),
  revokeShare: (shareId: string) =>
    request<OkAnswer>("DELETE", `/api/devmode/shares/${encodeURIComponent(shareId)}`),
  /** A watch-only token for a share; `secret` is a link share's, from the address's fragment. */
  watchTicket: (shareId: string, secret: string | undefined) =>
    request<WatchTicket>(
      "POST",
      `/api/devmode/shares/${encodeURIComponent(shareId)}/ticket`,
      secret ? { secret } : {},
    ),
  recordings: () => request<Recording[]>("GET", "/api/devmode/logs"),
  /** The asciicast v2 text of a recording. */
  async recording(sessionId: string): Promise<string> {
    const response = await fetch(`/api/devmode/logs/${encodeURIComponent(sessionId)}`, {
      credentials: "same-origin",
    });
    if (!response.ok) {
      throw new ApiError(response.status, `Could not load the recording (${response.status})`);
    }
    return await response.text();
  },
};

/** Formats a timestamp (ms or ISO) for people; "never" for none. */
export function formatTime(value: number | string | null | undefined): string {
  if (value === null || value === undefined || value === "") return "never";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toLocaleString();
}

/** "3 minutes ago"-style text. */
export function formatAgo(value: number | null | undefined, now = Date.now()): string {
  if (!value) return "never";
  const seconds = Math.max(0, Math.round((now - value) / 1000));
  if (seconds < 45) return "just now";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} minute${minutes === 1 ? "" : "s"} ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 24) return `${hours} hour${hours === 1 ? "" : "s"} ago`;
  const days = Math.round(hours / 24);
  return `${days} day${days === 1 ? "" : "s"} ago`;
}
