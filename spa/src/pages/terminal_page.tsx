/**
 * `/devmode/terminal`: terminals as tabs. Opens sessions through the relay
 * (`POST /api/devmode/sessions`, then `{relayUrl}/client?token=…`) or, as
 * the fallback, through a pasted `coda-runner serve` URL (`/devmode/connect`).
 * Relay tabs are remembered so a reload reattaches to the same sessions.
 *
 * @module
 */
import type { JSX } from "preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { clientLinkQuery, MAX_IDEA_ID_LENGTH } from "@coda/relay/protocol";
import { api, ApiError, type DevmodeConfig, type RecentSession, type Runner, type User } from "../api.ts";
import { Link, navigate, replaceQuery } from "../router.tsx";
import { currentTheme, onThemeChange, type ThemeName } from "../theme.ts";
import type { ConnectionStatus, TicketSource } from "../terminal/connection.ts";
import {
  isStoredId,
  loadTabs,
  newTabId,
  saveTabs,
  type StoredTab,
  tabTitle,
} from "../terminal/tabs_store.ts";
import { STATUS_LABEL, TerminalPane } from "../terminal/terminal_pane.tsx";
import { parseManualUrl } from "../terminal/manual_url.ts";
import { RecentSessions, ticketRefusal } from "./recent_sessions.tsx";

/** A tab on this page. */
interface Tab extends StoredTab {
  kind: "relay" | "url";
  /** `url` tabs: the pasted link (kept in memory only: it carries a token). */
  url?: string;
}

/** Props of {@linkcode TerminalPage}. */
export interface TerminalPageProps {
  user: User | null | undefined;
  config: DevmodeConfig;
  query: URLSearchParams;
  /** `/devmode/connect`: only the manual URL flow (works without an account). */
  manualOnly: boolean;
}

const NEW = "new";
/** The query parameter naming the session of the tab shown, so that a reload comes back to it. */
const SESSION_PARAM = "session";
/** The idea a terminal opens for when none is given. */
const DEFAULT_IDEA = "scratch";

/**
 * The tabs a page load starts with: the stored ones, showing the tab of `?session=` (reopened when
 * this browser has no tab for it, e.g. a link from another one), else the form for `?runner=`, else
 * the tab that was active.
 */
function initialTabs(userId: string | undefined, query: URLSearchParams): { tabs: Tab[]; activeId: string } {
  if (!userId) return { tabs: [], activeId: NEW };
  const stored = loadTabs(globalThis.localStorage, userId);
  const tabs = stored.tabs.map((t): Tab => ({ ...t, kind: "relay" }));
  const sessionId = query.get(SESSION_PARAM);
  if (sessionId && isStoredId(sessionId)) {
    const named = tabs.find((t) => t.sessionId === sessionId);
    if (named) return { tabs, activeId: named.id };
    // The API reattaches with the session's own idea; this one only titles the tab until its folder is known.
    const reopened: Tab = { id: newTabId(), kind: "relay", ideaId: DEFAULT_IDEA, sessionId };
    return { tabs: [...tabs, reopened], activeId: reopened.id };
  }
  if (query.get("runner")) return { tabs, activeId: NEW };
  return { tabs, activeId: stored.activeId ?? NEW };
}

/** Turns a failed `POST /api/devmode/sessions` into a stop (or rethrows it as retryable). */
function ticketError(error: unknown): unknown {
  return ticketRefusal(error) ?? error;
}

function relayTickets(tab: Tab): TicketSource {
  return async (sessionId) => {
    try {
      const ticket = await api.createSession({
        ideaId: tab.ideaId,
        runnerId: tab.runnerId,
        sessionId: sessionId ?? tab.sessionId,
      });
      const base = ticket.relayUrl.replace(/\/+$/, "");
      return { url: `${base}/client?${clientLinkQuery(ticket.token)}`, sessionId: ticket.sessionId };
    } catch (error) {
      throw ticketError(error);
    }
  };
}

/** The terminal page. */
export function TerminalPage(props: TerminalPageProps): JSX.Element {
  const userId = props.manualOnly ? undefined : props.user?.id;
  const [initial] = useState(() => initialTabs(userId, props.query));
  const [preselectRunner] = useState(() => props.query.get("runner") ?? undefined);
  const [tabs, setTabs] = useState<Tab[]>(initial.tabs);
  const [activeId, setActiveId] = useState<string>(initial.activeId);
  const [statuses, setStatuses] = useState<Record<string, ConnectionStatus>>({});
  const [renaming, setRenaming] = useState<string | null>(null);
  const [theme, setTheme] = useState<ThemeName>(currentTheme);
  useEffect(() => onThemeChange(setTheme), []);

  useEffect(() => {
    if (!userId) return;
    saveTabs(globalThis.localStorage, userId, {
      tabs: tabs.filter((t) => t.kind === "relay"),
      activeId: activeId === NEW ? null : activeId,
    });
  }, [tabs, activeId]);

  useEffect(() => {
    if (props.manualOnly) return;
    const active = tabs.find((t) => t.id === activeId);
    const query = new URLSearchParams();
    if (active?.kind === "relay" && active.sessionId) query.set(SESSION_PARAM, active.sessionId);
    else if (activeId === NEW && preselectRunner) query.set("runner", preselectRunner);
    replaceQuery(query);
  }, [tabs, activeId]);

  const tickets = useRef(new Map<string, TicketSource>());
  const ticketsFor = (tab: Tab): TicketSource => {
    let source = tickets.current.get(tab.id);
    if (!source) {
      const url = tab.url;
      source = tab.kind === "url" && url ? () => Promise.resolve({ url }) : relayTickets(tab);
      tickets.current.set(tab.id, source);
    }
    return source;
  };

  const update = (id: string, change: Partial<Tab>) =>
    setTabs((current) => current.map((t) => (t.id === id ? { ...t, ...change } : t)));

  const open = (tab: Tab) => {
    setTabs((current) => [...current, tab]);
    setActiveId(tab.id);
  };

  const close = (id: string) => {
    tickets.current.delete(id);
    const index = tabs.findIndex((t) => t.id === id);
    const next = tabs.filter((t) => t.id !== id);
    setTabs(next);
    if (activeId === id) setActiveId(next[Math.max(0, index - 1)]?.id ?? NEW);
  };

  const renew = (tab: Tab) => {
    const fresh: Tab = { id: newTabId(), kind: "relay", ideaId: tab.ideaId, runnerId: tab.runnerId };
    tickets.current.delete(tab.id);
    setTabs((current) => current.map((t) => (t.id === tab.id ? fresh : t)));
    setActiveId(fresh.id);
  };

  const onTabKey = (event: KeyboardEvent, index: number) => {
    const ids = [...tabs.map((t) => t.id), NEW];
    const move = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
    if (!move) return;
    event.preventDefault();
    const next = ids[(index + move + ids.length) % ids.length];
    setActiveId(next);
    document.getElementById(`tab-${next}`)?.focus();
  };

  return (
    <section class="terminal-page" aria-label="Terminals">
      <div class="tabbar" role="tablist" aria-label="Open terminals">
        {tabs.map((tab, index) => {
          const status = statuses[tab.id] ?? "connecting";
          const selected = tab.id === activeId;
          return (
            <div class={`tab ${selected ? "selected" : ""}`} key={tab.id}>
              <button
                type="button"
                role="tab"
                id={`tab-${tab.id}`}
                aria-selected={selected}
                aria-controls={`pane-${tab.id}`}
                tabIndex={selected ? 0 : -1}
                class="tab-label"
                title={`${tab.cwd ?? tab.ideaId} — ${STATUS_LABEL[status]}`}
                onClick={() => setActiveId(tab.id)}
                onDblClick={() => setRenaming(tab.id)}
                onKeyDown={(e) => onTabKey(e, index)}
              >
                <span class={`dot status-${status}`} aria-hidden="true" />
                {tab.kind === "url" ? "↗ " : ""}
                {tabTitle(tab)}
              </button>
              <button
                type="button"
                class="tab-close"
                aria-label={`Close ${tabTitle(tab)}`}
                onClick={() => close(tab.id)}
              >
                ×
              </button>
            </div>
          );
        })}
        <div class={`tab ${activeId === NEW ? "selected" : ""}`}>
          <button
            type="button"
            role="tab"
            id={`tab-${NEW}`}
            aria-selected={activeId === NEW}
            aria-controls={`pane-${NEW}`}
            tabIndex={activeId === NEW ? 0 : -1}
            class="tab-label"
            onClick={() => setActiveId(NEW)}
            onKeyDown={(e) => onTabKey(e, tabs.length)}
          >
            + New terminal
          </button>
        </div>
      </div>
      <div class="panes">
        <div id={`pane-${NEW}`} role="tabpanel" aria-labelledby={`tab-${NEW}`} hidden={activeId !== NEW}>
          <NewTerminal
            config={props.config}
            manualOnly={props.manualOnly}
            signedIn={!!props.user}
            preselectRunner={preselectRunner}
            openTabs={tabs}
            onOpen={open}
          />
        </div>
        {tabs.map((tab) => (
          <TerminalPane
            key={tab.id}
            tab={tab}
            active={tab.id === activeId}
            theme={theme}
            tickets={ticketsFor(tab)}
            onSession={(sessionId) => update(tab.id, { sessionId })}
            onCwd={(cwd) => update(tab.id, { cwd })}
            onTitle={(title) => update(tab.id, { title })}
            onStatus={(status) => setStatuses((current) => ({ ...current, [tab.id]: status }))}
            onNewSession={() => renew(tab)}
            onClose={() => close(tab.id)}
            onRename={(name) => update(tab.id, { name })}
            renaming={renaming === tab.id}
            onRenameShown={() => setRenaming(null)}
            shareable={tab.kind === "relay"}
          />
        ))}
      </div>
    </section>
  );
}

/**
 * How a runner is named in the picker: with its hostname, so two runners given the same name
 * (one of them approved through someone else's link, say) can be told apart.
 */
function runnerLabel(runner: Runner): string {
  const host = runner.hostname && runner.hostname !== runner.name ? ` · ${runner.hostname}` : "";
  const state = [runner.online ? "online" : "offline", ...(runner.isDefault ? ["default"] : [])].join(", ");
  return `${runner.name}${host} (${state})`;
}

function NewTerminal(props: {
  config: DevmodeConfig;
  manualOnly: boolean;
  signedIn: boolean;
  preselectRunner?: string;
  openTabs: Tab[];
  onOpen: (tab: Tab) => void;
}): JSX.Element {
  const relay = props.config.relayEnabled && !props.manualOnly && props.signedIn;
  const [runners, setRunners] = useState<Runner[] | null>(null);
  const [recent, setRecent] = useState<RecentSession[]>([]);
  const [runnerId, setRunnerId] = useState(props.preselectRunner ?? "");
  const [ideaId, setIdeaId] = useState(DEFAULT_IDEA);
  const [manualUrl, setManualUrl] = useState("");
  const [manualError, setManualError] = useState<string | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);

  useEffect(() => {
    if (!relay) return;
    const load = () =>
      api.runners().then((list) => {
        setRunners(list);
        setLoadError(null);
      }, (error) => setLoadError(error instanceof ApiError ? error.message : "Could not load your runners."));
    void load();
    api.recentSessions().then(setRecent, () => {});
    const timer = setInterval(load, 5000);
    return () => clearInterval(timer);
  }, [relay]);

  const ideas = useMemo(() => [...new Set(recent.map((s) => s.ideaId).filter(Boolean))].slice(0, 20), [
    recent,
  ]);
  const openIds = new Set(props.openTabs.map((t) => t.sessionId).filter(Boolean));
  const reattachable = recent.filter((s) => !openIds.has(s.sessionId)).slice(0, 5);
  const anyOnline = runners?.some((r) => r.online) ?? false;
  const defaultRunner = runners?.find((r) => r.isDefault);
  // Several online and none chosen as default: the user picks. Any automatic pick could be a runner
  // approved through someone else's link, and it would get this terminal's keystrokes.
  const mustChoose = !defaultRunner && (runners?.filter((r) => r.online).length ?? 0) > 1;
  const [chooseError, setChooseError] = useState<string | null>(null);

  const openRelay = (event: Event) => {
    event.preventDefault();
    if (mustChoose && !runnerId) {
      setChooseError("Several of your runners are online. Choose the one this terminal opens on.");
      return;
    }
    setChooseError(null);
    const idea = ideaId.trim() || DEFAULT_IDEA;
    props.onOpen({ id: newTabId(), kind: "relay", ideaId: idea, runnerId: runnerId || undefined });
  };

  const openManual = (event: Event) => {
    event.preventDefault();
    const parsed = parseManualUrl(manualUrl);
    if (!parsed.ok) {
      setManualError(parsed.error);
      return;
    }
    setManualError(null);
    setManualUrl("");
    const host = new URL(parsed.url).host;
    props.onOpen({ id: newTabId(), kind: "url", ideaId: host, url: parsed.url });
  };

  const manualForm = (
    <form class="form" onSubmit={openManual}>
      <p class="muted">
        Run <code>coda-runner serve</code> on your machine. It prints a link like{" "}
        <code>ws://127.0.0.1:7681/client?token=…</code>; paste it here to connect straight to it.
      </p>
      <label for="manual-url">Runner URL</label>
      <input
        id="manual-url"
        type="url"
        spellcheck={false}
        autocomplete="off"
        placeholder="ws://127.0.0.1:7681/client?token=…"
        value={manualUrl}
        aria-describedby={manualError ? "manual-error" : undefined}
        onInput={(e) => setManualUrl(e.currentTarget.value)}
      />
      {manualError && <p id="manual-error" class="error-text" role="alert">{manualError}</p>}
      <button type="submit" class="button">Connect by URL</button>
    </form>
  );

  return (
    <div class="page narrow new-terminal">
      <h1>New terminal</h1>
      {relay
        ? (
          <div class="card">
            {loadError && <p class="error-text" role="alert">{loadError}</p>}
            {runners?.length === 0 && (
              <p class="notice">
                You have no runners yet. Start <code>coda-runner</code> on your machine and{" "}
                <Link href="/devmode/pair">pair it</Link>.
              </p>
            )}
            {runners && runners.length > 0 && !anyOnline && (
              <p class="notice">
                None of your runners is online. Start <code>coda-runner</code>; the terminal waits for it.
              </p>
            )}
            <form class="form" onSubmit={openRelay}>
              <label for="runner-select">Runner</label>
              {mustChoose && (
                <p class="notice" id="runner-choose-hint">
                  Several of your runners are online and none is your default: choose one.{" "}
                  <Link href="/devmode/runners">Mark a default</Link> to skip this.
                </p>
              )}
              <select
                id="runner-select"
                value={runnerId}
                required={mustChoose}
                aria-describedby={mustChoose ? "runner-choose-hint" : undefined}
                onChange={(e) => {
                  setRunnerId(e.currentTarget.value);
                  setChooseError(null);
                }}
              >
                {mustChoose ? <option value="" disabled>Choose a runner…</option> : (
                  <option value="">
                    {defaultRunner ? `Default — ${defaultRunner.name}` : "Default — the runner paired first"}
                  </option>
                )}
                {runners?.map((runner) => (
                  <option key={runner.runnerId} value={runner.runnerId}>
                    {runnerLabel(runner)}
                  </option>
                ))}
              </select>
              {chooseError && <p class="error-text" role="alert">{chooseError}</p>}
              <label for="idea-input">Idea</label>
              <input
                id="idea-input"
                list="idea-options"
                maxLength={MAX_IDEA_ID_LENGTH}
                value={ideaId}
                aria-describedby="idea-hint"
                onInput={(e) => setIdeaId(e.currentTarget.value)}
              />
              <datalist id="idea-options">
                {ideas.map((idea) => <option key={idea} value={idea} />)}
              </datalist>
              <p id="idea-hint" class="hint">Sessions of the same idea share a working folder.</p>
              <button type="submit" class="button primary">Open terminal</button>
            </form>
            <RecentSessions
              sessions={reattachable}
              onReattach={(session) =>
                props.onOpen({
                  id: newTabId(),
                  kind: "relay",
                  ideaId: session.ideaId,
                  runnerId: session.runnerId,
                  sessionId: session.sessionId,
                  cwd: session.cwd ?? undefined,
                })}
            />
            <details class="manual">
              <summary>Connect by URL instead</summary>
              {manualForm}
            </details>
          </div>
        )
        : (
          <div class="card">
            {!props.config.relayEnabled && !props.manualOnly && (
              <p class="notice">
                The relay is turned off on this server, so connect to your runner directly.
              </p>
            )}
            {manualForm}
            {props.manualOnly && props.signedIn && (
              <p class="muted">
                Prefer the relay?{" "}
                <a
                  href="/devmode/terminal"
                  onClick={(e) => {
                    e.preventDefault();
                    navigate("/devmode/terminal");
                  }}
                >
                  Open a terminal through your paired runners
                </a>.
              </p>
            )}
          </div>
        )}
    </div>
  );
}
