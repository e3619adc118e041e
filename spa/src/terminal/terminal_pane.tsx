/**
 * One terminal tab: an xterm.js terminal wired to a
 * {@linkcode TerminalConnection}, its toolbar (connection state, cwd,
 * record, working folder, upload, search with a match count, paste, keys,
 * settings, and a menu to rename the tab or end the session; it wraps on
 * narrow screens), file transfers (files dropped on the terminal upload into
 * the session's folder; `coda-download` offers appear with Save / Dismiss),
 * the touch key bar, and explanations with a next step when the session
 * cannot continue.
 *
 * @module
 */
import type { JSX } from "preact";
import { useEffect, useId, useLayoutEffect, useRef, useState } from "preact/hooks";
import { TERMINAL_THEMES, type ThemeName } from "../theme.ts";
import { showToast } from "../toasts.tsx";
import { Link } from "../router.tsx";
import { Menu } from "../menu.tsx";
import {
  type ConnectionState,
  type ConnectionStatus,
  type LinkHealth,
  TerminalConnection,
  type TicketSource,
  visibleInput,
} from "./connection.ts";
import { applyModifiers, arrowSequence, KeyBar, type Modifiers } from "./key_bar.tsx";
import { createTerminal, type SearchResults, type TerminalHandle, terminalPalette } from "./xterm_setup.ts";
import {
  DEFAULT_SETTINGS,
  onTerminalSettingsChange,
  stepFontSize,
  type TerminalSettings,
  terminalSettings,
  updateTerminalSettings,
} from "./settings.ts";
import { SettingsPanel } from "./settings_panel.tsx";
import { SharePanel } from "./share_panel.tsx";
import { MAX_TAB_NAME_LENGTH, normalizeTabName } from "./tabs_store.ts";
import { FileTransfers, type Transfer } from "./file_transfers.ts";
import { TransferBar } from "./transfer_bar.tsx";

/** What the pane needs to know about its tab. */
export interface PaneTab {
  id: string;
  /** `relay`: tokens from the app; `url`: a pasted `coda-runner serve` URL. */
  kind: "relay" | "url";
  ideaId: string;
  sessionId?: string;
  cwd?: string;
  /** The name the user gave the tab. */
  name?: string;
}

/** Props of {@linkcode TerminalPane}. */
export interface TerminalPaneProps {
  tab: PaneTab;
  active: boolean;
  theme: ThemeName;
  tickets: TicketSource;
  onSession: (sessionId: string) => void;
  onCwd: (path: string) => void;
  /** A program in the terminal set its title (OSC 0/2). */
  onTitle?: (title: string) => void;
  onStatus: (status: ConnectionStatus) => void;
  onNewSession: () => void;
  onClose: () => void;
  /** Renames the tab (`undefined`: back to the automatic title); without it the tab cannot be renamed. */
  onRename?: (name: string | undefined) => void;
  /** Set to open the rename form (a double-click on the tab); `onRenameShown` is called once it is open. */
  renaming?: boolean;
  onRenameShown?: () => void;
  /** The session can be shared watch-only (a relay tab of the user's own). */
  shareable?: boolean;
  /** A share's watch-only view: nothing typed or sized here reaches the session. */
  watchOnly?: boolean;
}

/** What end-to-end tests read through `window.__codaTerminals[tabId]`. */
export interface TerminalTestHook {
  tabId: string;
  sessionId: string | undefined;
  offset: number;
  status: ConnectionStatus;
  renderer: "webgl" | "dom";
  cols: number;
  rows: number;
  /** The settings the terminal is drawn with. */
  fontSize: number;
  fontFamily: string;
  cursorStyle: string;
  scrollback: number;
  background: string;
  /** The terminal buffer (scrollback and screen) as text, one line per row. */
  text(): string;
}

declare global {
  var __codaTerminals: Record<string, TerminalTestHook> | undefined;
}

/** Short labels for the status badge. */
export const STATUS_LABEL: Record<ConnectionStatus, string> = {
  connecting: "Connecting",
  waiting: "Waiting for runner",
  online: "Connected",
  "runner-offline": "Runner offline",
  reconnecting: "Reconnecting",
  ended: "Session ended",
  revoked: "Runner revoked",
  "no-runner": "Runner offline",
  unauthorized: "Not authorized",
  failed: "Disconnected",
  closed: "Closed",
};

const STOPPED: ConnectionStatus[] = ["ended", "revoked", "no-runner", "unauthorized", "failed"];
const TOUCH = globalThis.matchMedia?.("(pointer: coarse)").matches ?? false;

/** The pane. */
export function TerminalPane(props: TerminalPaneProps): JSX.Element {
  const latest = useRef(props);
  latest.current = props;
  const container = useRef<HTMLDivElement>(null);
  const handle = useRef<TerminalHandle | null>(null);
  const connection = useRef<TerminalConnection | null>(null);
  const fileTransfers = useRef<FileTransfers | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const [transfers, setTransfers] = useState<Transfer[]>([]);
  const [dropping, setDropping] = useState(false);
  const modifiers = useRef<Modifiers>({ ctrl: false, alt: false });
  // Whether xterm's replies to queries in newly received live output go to the shell: only in the tab the
  // person acts in, so a query is answered once however many tabs show the session. Replayed output, which
  // was answered when it was live, never is.
  const answering = useRef(!props.tab.sessionId);
  const [state, setState] = useState<ConnectionState>({ status: "connecting", detail: "Connecting…" });
  const [recording, setRecording] = useState(false);
  const [link, setLink] = useState<LinkHealth>({ silentForMs: 0 });
  const [pendingInput, setPendingInput] = useState("");
  const [panel, setPanel] = useState<"none" | "search" | "cwd" | "settings" | "rename" | "share">("none");
  const [settings, setSettings] = useState<TerminalSettings>(terminalSettings);
  const [keyBar, setKeyBar] = useState(TOUCH);
  const [mods, setMods] = useState<Modifiers>({ ctrl: false, alt: false });

  const setModifiers = (next: Modifiers) => {
    modifiers.current = next;
    setMods(next);
  };

  useEffect(() => {
    const element = container.current!;
    const terminal = createTerminal(element, {
      theme: terminalPalette(terminalSettings(), latest.current.theme),
      settings: terminalSettings(),
      onSearch: () => setPanel("search"),
      onFontSize: (step) =>
        updateTerminalSettings({
          fontSize: step === 0 ? DEFAULT_SETTINGS.fontSize : stepFontSize(terminalSettings().fontSize, step),
        }),
    });
    handle.current = terminal;
    const { term } = terminal;
    terminal.fitToContainer();

    // Each time a link comes online after the first, it attached to the existing session and replays; a JSON
    // link does not mark the replay, so this tab answers nothing on it until the person acts in it again.
    let attached = false;
    let linkOnline = false;
    const conn = new TerminalConnection({
      tickets: (sessionId) => latest.current.tickets(sessionId),
      sessionId: latest.current.tab.sessionId,
      watchOnly: latest.current.watchOnly,
      sink: {
        write: (data, rendered, replay) => terminal.write(data, answering.current && !replay, rendered),
        reset: () => term.reset(),
        notice: (text) => terminal.write(`\r\n\x1b[2m${text}\x1b[0m\r\n`, false),
        size: () =>
          element.clientWidth > 0 && element.clientHeight > 0 ? { cols: term.cols, rows: term.rows } : null,
      },
      onEvent: (event) => {
        switch (event.type) {
          case "state":
            if (event.state.status !== "online") files.linkLost();
            if (event.state.status === "online" && !linkOnline) {
              if (attached && !conn.binary) answering.current = false;
              attached = true;
            }
            linkOnline = event.state.status === "online";
            setState(event.state);
            latest.current.onStatus(event.state.status);
            return;
          case "session":
            latest.current.onSession(event.sessionId);
            return;
          case "cwd":
            latest.current.onCwd(event.path);
            return;
          case "record":
            setRecording(event.on);
            return;
          case "error":
            showToast(`Runner: ${event.message}`, "error");
            return;
          case "link":
            setLink(event.link);
            return;
          case "pending-input":
            setPendingInput(event.data);
            return;
          case "transfer":
            files.onMessage(event.message);
            return;
          case "file":
            files.onFrame(event.frame);
            return;
        }
      },
    });
    connection.current = conn;
    const files = new FileTransfers({
      link: {
        sessionId: () => conn.transferSessionId(),
        send: (message) => conn.sendTransfer(message),
        sendFrame: (frame) => conn.sendFileFrame(frame),
      },
      onChange: setTransfers,
      save: saveFile,
    });
    fileTransfers.current = files;

    const subscriptions = [
      terminal.onInput((data, fromPerson) => {
        if (fromPerson) answering.current = true;
        const mod = modifiers.current;
        if (mod.ctrl || mod.alt) {
          setModifiers({ ctrl: false, alt: false });
          conn.input(applyModifiers(data, mod));
        } else conn.input(data);
      }),
      term.onBinary((data) => conn.input(data)),
      term.onTitleChange((title) => latest.current.onTitle?.(title)),
      term.onResize(({ cols, rows }) => conn.resize(cols, rows)),
    ];

    let frame = 0;
    const observer = new ResizeObserver(() => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(() => terminal.fitToContainer());
    });
    observer.observe(element);

    const hooks = (globalThis.__codaTerminals ??= {});
    const tabId = latest.current.tab.id;
    hooks[tabId] = {
      tabId,
      get sessionId() {
        return conn.sessionId;
      },
      get offset() {
        return conn.offset;
      },
      get status() {
        return conn.state.status;
      },
      get renderer() {
        return terminal.renderer();
      },
      get cols() {
        return term.cols;
      },
      get rows() {
        return term.rows;
      },
      get fontSize() {
        return term.options.fontSize ?? 0;
      },
      get fontFamily() {
        return term.options.fontFamily ?? "";
      },
      get cursorStyle() {
        return term.options.cursorStyle ?? "";
      },
      get scrollback() {
        return term.options.scrollback ?? 0;
      },
      get background() {
        return term.options.theme?.background ?? "";
      },
      text: () => bufferText(terminal),
    };

    conn.start();
    return () => {
      delete hooks[tabId];
      observer.disconnect();
      cancelAnimationFrame(frame);
      subscriptions.forEach((s) => s.dispose());
      conn.dispose();
      terminal.dispose();
      handle.current = null;
      connection.current = null;
      fileTransfers.current = null;
    };
  }, []);

  useEffect(() => {
    if (!props.active) return;
    const frame = requestAnimationFrame(() => {
      handle.current?.fitToContainer();
      if (panel === "none") handle.current?.term.focus();
    });
    return () => cancelAnimationFrame(frame);
  }, [props.active]);

  useEffect(() => onTerminalSettingsChange(setSettings), []);
  useEffect(() => {
    handle.current?.setTheme(terminalPalette(settings, props.theme));
    handle.current?.applySettings(settings);
  }, [settings, props.theme]);

  useEffect(() => {
    if (!props.renaming) return;
    setPanel("rename");
    props.onRenameShown?.();
  }, [props.renaming]);

  const focusTerminal = () => {
    setPanel("none");
    requestAnimationFrame(() => handle.current?.term.focus());
  };

  const paste = async () => {
    try {
      const text = await navigator.clipboard.readText();
      if (text) handle.current?.paste(text);
    } catch {
      showToast("The browser did not allow reading the clipboard. Use Ctrl+Shift+V or the context menu.");
    }
    handle.current?.term.focus();
  };

  const upload = (files: Iterable<File>) => {
    for (const file of files) fileTransfers.current?.upload(file);
  };

  const dropHandlers = props.watchOnly ? {} : {
    onDragOver: (event: DragEvent) => {
      if (!event.dataTransfer?.types.includes("Files")) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      setDropping(true);
    },
    onDragLeave: () => setDropping(false),
    onDrop: (event: DragEvent) => {
      if (!event.dataTransfer?.files.length) return;
      event.preventDefault();
      setDropping(false);
      upload(event.dataTransfer.files);
    },
  };

  const endSession = () => {
    if (globalThis.confirm("End this session? The shell and everything running in it will be stopped.")) {
      connection.current?.kill();
    }
  };

  const sendKey = (key: "esc" | "tab" | "up" | "down" | "left" | "right") => {
    const term = handle.current?.term;
    if (!term) return;
    const applicationCursor = term.modes.applicationCursorKeysMode;
    const sequence = key === "esc" ? "\x1b" : key === "tab" ? "\t" : arrowSequence(key, applicationCursor);
    const mod = modifiers.current;
    setModifiers({ ctrl: false, alt: false });
    answering.current = true;
    connection.current?.input(mod.alt ? "\x1b" + sequence : sequence);
    term.focus();
  };

  const online = state.status === "online";
  const acting = online && !props.watchOnly;
  const stopped = STOPPED.includes(state.status);
  const sharedSessionId = connection.current?.sessionId ?? props.tab.sessionId;
  const transient = state.status === "reconnecting" || state.status === "runner-offline" ||
    state.status === "waiting";

  return (
    <div
      class="pane"
      id={`pane-${props.tab.id}`}
      role="tabpanel"
      aria-labelledby={`tab-${props.tab.id}`}
      hidden={!props.active}
      data-status={state.status}
    >
      <div class="pane-toolbar" role="toolbar" aria-label="Terminal controls">
        <span class={`status status-${state.status}`} role="status" aria-live="polite" title={state.detail}>
          <span class="dot" aria-hidden="true" />
          {STATUS_LABEL[state.status]}
          {online && link.rttMs !== undefined && (
            <span class="muted" title="Round trip to the relay">&nbsp;· {link.rttMs} ms</span>
          )}
        </span>
        <span class="cwd" title={props.tab.cwd}>{props.tab.cwd ?? ""}</span>
        {props.watchOnly && (
          <span class="watch-only" title="Nothing you type reaches this terminal">Watching</span>
        )}
        {!props.watchOnly && (
          <button
            type="button"
            class={`button small ${recording ? "recording" : "ghost"}`}
            aria-pressed={recording}
            disabled={!acting}
            onClick={() => connection.current?.setRecording(!recording)}
            title={recording ? "Stop recording this session" : "Record this session's output"}
          >
            {recording ? "● Recording" : "○ Record"}
          </button>
        )}
        {!props.watchOnly && (
          <button
            type="button"
            class="button small ghost"
            aria-expanded={panel === "cwd"}
            title="Change the working folder"
            disabled={!acting}
            onClick={() => setPanel(panel === "cwd" ? "none" : "cwd")}
          >
            Folder…
          </button>
        )}
        {!props.watchOnly && (
          <button
            type="button"
            class="button small ghost"
            title="Upload files into the session's folder (or drop them on the terminal)"
            disabled={!acting}
            onClick={() => fileInput.current?.click()}
          >
            Upload…
          </button>
        )}
        {!props.watchOnly && (
          <input
            ref={fileInput}
            type="file"
            multiple
            hidden
            aria-label="Upload files"
            onChange={(event) => {
              const input = event.currentTarget;
              upload([...(input.files ?? [])]);
              input.value = "";
            }}
          />
        )}
        {props.shareable && (
          <button
            type="button"
            class="button small ghost"
            aria-expanded={panel === "share"}
            title="Let others watch this terminal, read-only"
            disabled={sharedSessionId === undefined}
            onClick={() => setPanel(panel === "share" ? "none" : "share")}
          >
            Share…
          </button>
        )}
        <button
          type="button"
          class="button small ghost"
          aria-expanded={panel === "search"}
          title="Search (Ctrl+Shift+F)"
          onClick={() => setPanel(panel === "search" ? "none" : "search")}
        >
          Search
        </button>
        {!props.watchOnly && (
          <button type="button" class="button small ghost" onClick={paste} disabled={!acting}>Paste</button>
        )}
        {!props.watchOnly && (
          <button
            type="button"
            class="button small ghost"
            aria-pressed={keyBar}
            onClick={() => setKeyBar(!keyBar)}
            title="Show extra keys (Esc, Ctrl, Alt, Tab, arrows)"
          >
            Keys
          </button>
        )}
        <button
          type="button"
          class="button small ghost"
          aria-expanded={panel === "settings"}
          title="Terminal settings: font, colours, cursor, scrollback"
          onClick={() => setPanel(panel === "settings" ? "none" : "settings")}
        >
          Settings
        </button>
        {!props.watchOnly && (
          <Menu
            label="More ▾"
            title="More actions"
            items={[
              ...(props.onRename ? [{ label: "Rename tab…", onSelect: () => setPanel("rename") }] : []),
              { label: "End session", onSelect: endSession, disabled: !acting, danger: true },
            ]}
          />
        )}
      </div>
      <TransferBar
        transfers={transfers}
        onAccept={(key) => fileTransfers.current?.accept(key)}
        onDismiss={(key) => fileTransfers.current?.dismiss(key)}
      />
      {panel === "share" && sharedSessionId !== undefined && (
        <SharePanel sessionId={sharedSessionId} onClose={focusTerminal} />
      )}
      {props.watchOnly && online && (
        <div class="banner" role="status">
          <span>You are watching this terminal: what you type is not sent to it.</span>
        </div>
      )}
      {panel === "search" && handle.current && <SearchBar handle={handle.current} onClose={focusTerminal} />}
      {panel === "settings" && <SettingsPanel onClose={focusTerminal} />}
      {panel === "rename" && props.onRename && (
        <RenameForm
          current={props.tab.name ?? ""}
          onRename={(name) => {
            props.onRename?.(name);
            focusTerminal();
          }}
          onClose={focusTerminal}
        />
      )}
      {panel === "cwd" && (
        <CwdForm
          current={props.tab.cwd ?? ""}
          onPick={(path) => {
            connection.current?.pickCwd(path);
            focusTerminal();
          }}
          onClose={focusTerminal}
        />
      )}
      {link.detail && !stopped && state.status !== "reconnecting" && (
        <div class="banner" role="status">
          <span>{link.detail} Reconnecting if it stays silent…</span>
        </div>
      )}
      {pendingInput && (
        <div class="banner" role="alert">
          <span>
            Typed while disconnected, not sent: <code>{visibleInput(pendingInput)}</code>
          </span>
          <button
            type="button"
            class="button small"
            disabled={!online}
            onClick={() => {
              connection.current?.sendPendingInput();
              handle.current?.term.focus();
            }}
          >
            Send
          </button>
          <button
            type="button"
            class="button small ghost"
            onClick={() => {
              connection.current?.discardPendingInput();
              handle.current?.term.focus();
            }}
          >
            Discard
          </button>
        </div>
      )}
      {transient && (
        <div class="banner" role="status">
          <span>{state.detail}</span>
          {state.status === "reconnecting" && (
            <button
              type="button"
              class="button small"
              onClick={() => connection.current?.start()}
            >
              Retry now
            </button>
          )}
        </div>
      )}
      {/* The margin around the cells shows the terminal's own background, whichever palette it uses. */}
      <div
        class={`terminal-wrap${dropping ? " dropping" : ""}`}
        style={{ background: TERMINAL_THEMES[terminalPalette(settings, props.theme)].background }}
        {...dropHandlers}
      >
        <div class="terminal-host" ref={container} />
        {stopped && (
          <StoppedOverlay
            state={state}
            tabId={props.tab.id}
            kind={props.tab.kind}
            onRetry={() => connection.current?.start()}
            onNewSession={props.onNewSession}
            onClose={props.onClose}
          />
        )}
      </div>
      {keyBar && !props.watchOnly && <KeyBar modifiers={mods} onModifiers={setModifiers} onKey={sendKey} />}
    </div>
  );
}

function StoppedOverlay(props: {
  state: ConnectionState;
  tabId: string;
  kind: PaneTab["kind"];
  onRetry: () => void;
  onNewSession: () => void;
  onClose: () => void;
}): JSX.Element {
  const { status, detail } = props.state;
  const title = {
    ended: "Session ended",
    revoked: "Runner revoked",
    "no-runner": "Runner offline",
    unauthorized: "Not authorized",
    failed: "Disconnected",
  }[status as "ended" | "revoked" | "no-runner" | "unauthorized" | "failed"];
  return (
    <div
      class="overlay"
      role="alertdialog"
      aria-labelledby={`overlay-title-${props.tabId}`}
      aria-describedby={`overlay-detail-${props.tabId}`}
    >
      <div class="overlay-card">
        <h2 id={`overlay-title-${props.tabId}`}>{title}</h2>
        <p id={`overlay-detail-${props.tabId}`}>{detail}</p>
        <div class="actions">
          {status === "ended" && props.kind === "relay" && (
            <button type="button" class="button primary" onClick={props.onNewSession}>New session</button>
          )}
          {status === "revoked" && <Link href="/devmode/pair" class="button primary">Pair again</Link>}
          {status === "unauthorized" && props.kind === "relay" && (
            <Link href={`/signin?next=${encodeURIComponent("/devmode/terminal")}`} class="button">
              Sign in
            </Link>
          )}
          {(status === "no-runner" || status === "failed" || status === "unauthorized") && (
            <button type="button" class="button primary" onClick={props.onRetry}>Retry</button>
          )}
          <button type="button" class="button ghost" onClick={props.onClose}>Close tab</button>
        </div>
      </div>
    </div>
  );
}

/** "3 of 17", or the count alone when there are too many matches to number. */
function describeMatches(results: SearchResults): string {
  if (results.count === 0) return "No matches";
  if (results.index < 0) return `${results.count}+ matches`;
  return `${results.index + 1} of ${results.count}`;
}

function SearchBar(props: { handle: TerminalHandle; onClose: () => void }): JSX.Element {
  const input = useRef<HTMLInputElement>(null);
  const [query, setQuery] = useState("");
  const [results, setResults] = useState<SearchResults | null>(null);
  const id = useId();
  useEffect(() => {
    input.current?.focus();
    const subscription = props.handle.onSearchResults(setResults);
    return () => {
      subscription.dispose();
      props.handle.clearSearch();
    };
  }, []);
  const find = (backwards: boolean, incremental = false, term = query) => {
    if (!term) {
      props.handle.clearSearch();
      setResults(null);
      return;
    }
    props.handle.find(term, { backwards, incremental });
  };
  return (
    <form
      class="pane-panel"
      role="search"
      onSubmit={(e) => {
        e.preventDefault();
        find(false);
      }}
    >
      <label for={id}>Find</label>
      <input
        id={id}
        ref={input}
        value={query}
        onInput={(e) => {
          setQuery(e.currentTarget.value);
          find(false, true, e.currentTarget.value);
        }}
        onKeyDown={(e) => {
          if (e.key === "Escape") {
            props.onClose();
          } else if (e.key === "Enter" && e.shiftKey) {
            e.preventDefault();
            find(true);
          }
        }}
      />
      <button type="button" class="button small ghost" onClick={() => find(true)} aria-label="Previous match">
        ↑
      </button>
      <button type="submit" class="button small ghost" aria-label="Next match">↓</button>
      <span class="muted search-count" role="status" aria-live="polite">
        {query && results ? describeMatches(results) : ""}
      </span>
      <button type="button" class="button small ghost" onClick={props.onClose} aria-label="Close search">
        ×
      </button>
    </form>
  );
}

function RenameForm(
  props: { current: string; onRename: (name: string | undefined) => void; onClose: () => void },
): JSX.Element {
  const input = useRef<HTMLInputElement>(null);
  const [name, setName] = useState(props.current);
  const id = useId();
  // Before the browser handles another event: a key typed right after opening is never selected away.
  useLayoutEffect(() => input.current?.select(), []);
  return (
    <form
      class="pane-panel"
      onSubmit={(e) => {
        e.preventDefault();
        props.onRename(normalizeTabName(name));
      }}
    >
      <label for={id}>Tab name</label>
      <input
        id={id}
        ref={input}
        value={name}
        maxLength={MAX_TAB_NAME_LENGTH}
        spellcheck={false}
        autocomplete="off"
        placeholder="Empty: named after its folder"
        onInput={(e) => setName(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === "Escape") props.onClose();
        }}
      />
      <button type="submit" class="button small primary">Rename</button>
      <button type="button" class="button small ghost" onClick={props.onClose}>Cancel</button>
    </form>
  );
}

function CwdForm(
  props: { current: string; onPick: (path: string) => void; onClose: () => void },
): JSX.Element {
  const input = useRef<HTMLInputElement>(null);
  const [path, setPath] = useState(props.current);
  const id = useId();
  // Before the browser handles another event: a key typed right after opening is never selected away.
  useLayoutEffect(() => input.current?.select(), []);
  return (
    <form
      class="pane-panel"
      onSubmit={(e) => {
        e.preventDefault();
        if (path.trim()) props.onPick(path.trim());
      }}
    >
      <label for={id}>Working folder</label>
      <input
        id={id}
        ref={input}
        value={path}
        spellcheck={false}
        autocomplete="off"
        placeholder="~/projects/my-idea"
        onInput={(e) => setPath(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === "Escape") props.onClose();
        }}
      />
      <button type="submit" class="button small primary">Change folder</button>
      <button type="button" class="button small ghost" onClick={props.onClose}>Cancel</button>
    </form>
  );
}

/** Hands a downloaded file to the browser's own download (a Blob URL, freed a minute later). */
function saveFile(name: string, file: Blob): void {
  const url = URL.createObjectURL(file);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function bufferText(handle: TerminalHandle): string {
  const buffer = handle.term.buffer.active;
  const lines: string[] = [];
  for (let i = 0; i < buffer.length; i++) lines.push(buffer.getLine(i)?.translateToString(true) ?? "");
  return lines.join("\n");
}
