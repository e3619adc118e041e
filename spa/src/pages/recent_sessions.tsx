/**
 * "Recent sessions" on the new-terminal form: the sessions the app says can be
 * reattached (not ended, on one of the user's runners that is online), each
 * labelled by its runner, its folder and its age, and the sentences a failed
 * reattach is told in.
 *
 * @module
 */
import type { JSX } from "preact";
import { ApiError, formatAgo, type RecentSession } from "../api.ts";
import { TicketError } from "../terminal/connection.ts";

/**
 * What the user is told when a ticket for a session (new or reattached) is refused, by status; `null`
 * for a failure worth retrying (the app unreachable, 429, 5xx). Never the API's own text: that is
 * written for developers ("sessionId must be 8-64 characters…").
 */
export function ticketRefusal(error: unknown): TicketError | null {
  if (!(error instanceof ApiError)) return null;
  switch (error.status) {
    case 400:
      return new TicketError("failed", "The app could not open this session. Open a new terminal.");
    case 401:
      return new TicketError("unauthorized", "You are signed out. Sign in again, then retry.");
    case 403:
      return new TicketError("revoked", "This runner was revoked or is not yours any more. Pair it again.");
    case 404:
      return new TicketError("failed", "This runner or session no longer exists. Open a new terminal.");
    case 410:
      return new TicketError("ended", "This session has ended. Open a new terminal.");
    default:
      return null;
  }
}

/** The list, or nothing when no session can be reattached. */
export function RecentSessions(props: {
  sessions: RecentSession[];
  onReattach: (session: RecentSession) => void;
}): JSX.Element | null {
  if (props.sessions.length === 0) return null;
  return (
    <div class="recent">
      <h2>Recent sessions</h2>
      <ul>
        {props.sessions.map((session) => (
          <li key={session.sessionId} data-testid="recent-session" data-session-id={session.sessionId}>
            <span>
              <strong>{session.runnerName}</strong>
              {" · "}
              <code>{session.cwd ?? session.ideaId}</code>
              {" · "}
              <span class="muted">started {formatAgo(session.createdAt)}</span>
            </span>{" "}
            <button
              type="button"
              class="button small ghost"
              aria-label={`Reattach the session on ${session.runnerName} in ${session.cwd ?? session.ideaId}`}
              onClick={() =>
                props.onReattach(session)}
            >
              Reattach
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}
