/**
 * `/devmode/watch/<shareId>#<secret>`: a share's watch-only view of someone's terminal. The secret
 * of a link share is the address's fragment, which the browser never sends to a server; a share
 * for accounts needs the invited account signed in. Nothing typed here reaches the terminal.
 *
 * @module
 */
import type { JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, ApiError } from "../api.ts";
import { Link } from "../router.tsx";
import { currentTheme, onThemeChange, type ThemeName } from "../theme.ts";
import { TicketError, type TicketSource } from "../terminal/connection.ts";
import { TerminalPane } from "../terminal/terminal_pane.tsx";

/** Props of {@linkcode WatchPage}. */
export interface WatchPageProps {
  shareId: string;
  signedIn: boolean;
}

/** Why a watch ticket was refused, for the person watching. */
function watchRefusal(error: unknown, signedIn: boolean): TicketError | null {
  if (!(error instanceof ApiError)) return null;
  switch (error.status) {
    case 403:
      return new TicketError(
        "unauthorized",
        signedIn || error.message.includes("link")
          ? `${error.message}.`
          : "This share is for invited accounts: sign in with yours, then open the link again.",
      );
    case 404:
      return new TicketError("failed", "This share was revoked, or the link is wrong.");
    case 410:
      return new TicketError("failed", "This share has expired.");
    default:
      return null;
  }
}

/** The watch-only view of one share. */
export function WatchPage(props: WatchPageProps): JSX.Element {
  const [theme, setTheme] = useState<ThemeName>(currentTheme);
  useEffect(() => onThemeChange(setTheme), []);
  const [secret] = useState(() => globalThis.location.hash.slice(1) || undefined);
  const [cwd, setCwd] = useState<string | undefined>(undefined);
  const tickets: TicketSource = async () => {
    try {
      const ticket = await api.watchTicket(props.shareId, secret);
      return {
        url: `${ticket.relayUrl}/client?token=${encodeURIComponent(ticket.token)}`,
        sessionId: ticket.sessionId,
      };
    } catch (error) {
      throw watchRefusal(error, props.signedIn) ?? error;
    }
  };
  return (
    <section class="terminal-page watch-page" aria-label="A shared terminal">
      <div class="tabbar">
        <span class="tab selected">
          <span class="tab-label">Shared terminal (watch-only)</span>
        </span>
        {!props.signedIn && (
          <Link
            href={`/signin?next=${encodeURIComponent(`/devmode/watch/${props.shareId}`)}`}
            class="button small ghost"
          >
            Sign in
          </Link>
        )}
      </div>
      <div class="panes">
        <TerminalPane
          tab={{ id: "watch", kind: "relay", ideaId: "watch", cwd }}
          active
          theme={theme}
          tickets={tickets}
          watchOnly
          onSession={() => {}}
          onCwd={setCwd}
          onStatus={() => {}}
          onNewSession={() => {}}
          onClose={() => {}}
        />
      </div>
    </section>
  );
}
