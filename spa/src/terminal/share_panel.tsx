/**
 * The owner's share panel of a terminal: makes watch-only shares of its session (anyone with the
 * link, or named accounts), lists the live ones with who watches, and revokes them.
 *
 * @module
 */
import type { JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import { api, ApiError, formatTime, type ShareView } from "../api.ts";
import { showToast } from "../toasts.tsx";

/** How long a new share lasts, in minutes: the choices offered. */
const DURATIONS = [[15, "15 minutes"], [60, "1 hour"], [480, "8 hours"], [1440, "1 day"]] as const;
/** How often the open panel refreshes who watches. */
const REFRESH_MS = 5000;

function describe(share: ShareView): string {
  const who = share.audience === "link" ? "Anyone with the link" : share.emails.join(", ");
  const watching = share.viewers.length === 0
    ? "nobody watching"
    : `watching: ${share.viewers.map((v) => v.viewer ?? "someone with the link").join(", ")}`;
  return `${who} · until ${formatTime(share.expiresAt)} · ${watching}`;
}

/** Props of {@linkcode SharePanel}. */
export interface SharePanelProps {
  sessionId: string;
  onClose: () => void;
}

/** The share panel of one session. */
export function SharePanel(props: SharePanelProps): JSX.Element {
  const [shares, setShares] = useState<ShareView[]>([]);
  const [audience, setAudience] = useState<"link" | "accounts">("link");
  const [emails, setEmails] = useState("");
  const [minutes, setMinutes] = useState(60);
  const [link, setLink] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const refresh = () =>
    api.shares(props.sessionId).then(setShares, (error) => {
      if (!(error instanceof ApiError && error.status === 404)) showToast((error as Error).message, "error");
    });
  useEffect(() => {
    void refresh();
    const timer = setInterval(refresh, REFRESH_MS);
    return () => clearInterval(timer);
  }, [props.sessionId]);

  const create = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    try {
      const list = emails.split(/[\s,;]+/).filter((e) => e !== "");
      const created = await api.shareSession(props.sessionId, {
        audience,
        minutes,
        ...(audience === "accounts" ? { emails: list } : {}),
      });
      setLink(created.url);
      await refresh();
    } catch (error) {
      showToast((error as Error).message, "error");
    } finally {
      setBusy(false);
    }
  };

  const revoke = async (shareId: string) => {
    try {
      await api.revokeShare(shareId);
      await refresh();
    } catch (error) {
      showToast((error as Error).message, "error");
    }
  };

  return (
    <div class="pane-panel share-panel" role="region" aria-label="Share this terminal">
      <form class="share-form" onSubmit={create}>
        <span>Share watch-only with</span>
        <label>
          <input
            type="radio"
            name="audience"
            checked={audience === "link"}
            onChange={() => setAudience("link")}
          />{" "}
          anyone with the link
        </label>
        <label>
          <input
            type="radio"
            name="audience"
            checked={audience === "accounts"}
            onChange={() => setAudience("accounts")}
          />{" "}
          these accounts
        </label>
        {audience === "accounts" && (
          <input
            type="text"
            aria-label="Emails of the accounts"
            placeholder="ada@example.com, bob@example.com"
            value={emails}
            onInput={(e) => setEmails(e.currentTarget.value)}
          />
        )}
        <select
          aria-label="For how long"
          value={minutes}
          onChange={(e) => setMinutes(Number(e.currentTarget.value))}
        >
          {DURATIONS.map(([value, label]) => <option key={value} value={value}>for {label}</option>)}
        </select>
        <button type="submit" class="button small primary" disabled={busy}>Create link</button>
        <button type="button" class="button small ghost" onClick={props.onClose} aria-label="Close sharing">
          ×
        </button>
      </form>
      {link && (
        <div class="share-link">
          <input
            type="text"
            readOnly
            value={link}
            aria-label="Share link"
            onFocus={(e) => e.currentTarget.select()}
          />
          <button
            type="button"
            class="button small"
            onClick={() => navigator.clipboard.writeText(link).then(() => showToast("Link copied"), () => {})}
          >
            Copy
          </button>
        </div>
      )}
      {shares.length > 0 && (
        <ul class="share-list">
          {shares.map((share) => (
            <li key={share.shareId} data-share={share.shareId}>
              <span>{describe(share)}</span>
              <button type="button" class="button small danger" onClick={() => revoke(share.shareId)}>
                Stop sharing
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
