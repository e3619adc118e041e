/**
 * Creates an xterm.js 6 terminal with the addons the app uses: fit, WebGL
 * (falling back to the built-in DOM renderer when WebGL is unavailable or
 * its context is lost), clickable links, search, Unicode 11 widths, copy on
 * selection, and keyboard shortcuts for search and paste.
 *
 * @module
 */
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import { SearchAddon } from "@xterm/addon-search";
import { Unicode11Addon } from "@xterm/addon-unicode11";
import { WebLinksAddon } from "@xterm/addon-web-links";
import { WebglAddon } from "@xterm/addon-webgl";
import { TERMINAL_THEMES, type ThemeName } from "../theme.ts";

/** A terminal and the addons the page talks to. */
export interface TerminalHandle {
  term: Terminal;
  fit: FitAddon;
  search: SearchAddon;
  /** Which renderer draws the cells. */
  renderer(): "webgl" | "dom";
  /** Fits the terminal to its container if the container is visible; true when it did. */
  fitToContainer(): boolean;
  setTheme(theme: ThemeName): void;
  /**
   * Writes session output; `answer` says whether the replies xterm.js makes to
   * terminal queries in it (device attributes, colours, mode and cursor
   * reports…) may go out as input. Output the session sent before this client
   * attached was already answered when it was live: answering its replay again
   * types the replies into the shell. All output must go through here, so
   * {@linkcode TerminalHandle.onInput} knows which write xterm is parsing.
   */
  write(data: string, answer: boolean, parsed?: () => void): void;
  /** Pastes as the person would; the paste is input even while a replay is being written. */
  paste(text: string): void;
  /**
   * Input for the session: what the person types, pastes or clicks
   * (`fromPerson`), and xterm's replies to queries in output written with
   * `answer`; replies to other output are dropped.
   */
  onInput(listener: (data: string, fromPerson: boolean) => void): { dispose(): void };
  dispose(): void;
}

/** Hooks for shortcuts that open page UI. */
export interface TerminalShortcuts {
  /** Ctrl+Shift+F. */
  onSearch?: () => void;
}

/** Options shared by live terminals and the recording player. */
export interface CreateTerminalOptions extends TerminalShortcuts {
  theme: ThemeName;
  /** Read-only terminals (playback) take no input. */
  readOnly?: boolean;
  /** Try the WebGL renderer (default true). */
  webgl?: boolean;
  cols?: number;
  rows?: number;
}

/** Opens a terminal inside `container`. */
export function createTerminal(container: HTMLElement, options: CreateTerminalOptions): TerminalHandle {
  const term = new Terminal({
    allowProposedApi: true,
    cursorBlink: !options.readOnly,
    disableStdin: options.readOnly ?? false,
    fontFamily:
      '"JetBrains Mono", "Cascadia Code", "Fira Code", Menlo, Consolas, "DejaVu Sans Mono", monospace',
    fontSize: 14,
    lineHeight: 1.15,
    scrollback: 10_000,
    theme: TERMINAL_THEMES[options.theme],
    screenReaderMode: false,
    ...(options.cols && options.rows ? { cols: options.cols, rows: options.rows } : {}),
  });
  const fit = new FitAddon();
  const search = new SearchAddon();
  term.loadAddon(fit);
  term.loadAddon(search);
  term.loadAddon(new Unicode11Addon());
  term.unicode.activeVersion = "11";
  term.loadAddon(
    new WebLinksAddon((event, uri) => {
      event.preventDefault();
      globalThis.open(uri, "_blank", "noopener,noreferrer");
    }),
  );
  term.open(container);

  let renderer: "webgl" | "dom" = "dom";
  if (options.webgl ?? true) {
    try {
      const webgl = new WebglAddon();
      webgl.onContextLoss(() => {
        webgl.dispose();
        renderer = "dom";
      });
      term.loadAddon(webgl);
      renderer = "webgl";
    } catch {
      renderer = "dom";
    }
  }

  if (!options.readOnly) {
    term.onSelectionChange(() => {
      const selection = term.getSelection();
      if (selection) navigator.clipboard?.writeText(selection).catch(() => {});
    });
    term.attachCustomKeyEventHandler((event) => {
      if (event.type !== "keydown" || !event.ctrlKey || !event.shiftKey) return true;
      const key = event.key.toLowerCase();
      if (key === "f") {
        event.preventDefault();
        options.onSearch?.();
        return false;
      }
      if (key === "c") {
        const selection = term.getSelection();
        if (selection) navigator.clipboard?.writeText(selection).catch(() => {});
        event.preventDefault();
        return false;
      }
      // Ctrl+Shift+V: let the browser fire its paste event, which xterm turns into input.
      if (key === "v") return false;
      return true;
    });
  }

  // Whether each write still queued in xterm may be answered; xterm parses writes in order and calls
  // a write's callback right after parsing it, so the head is the write being parsed.
  const answers: boolean[] = [];
  let pasting = false;
  const write = (data: string, answer: boolean, parsed?: () => void) => {
    answers.push(answer);
    term.write(data, () => {
      answers.shift();
      parsed?.();
    });
  };
  const onInput = (listener: (data: string, fromPerson: boolean) => void) => {
    const forward = (data: string) => {
      // Keys, paste, mouse and focus reach onData inside the browser's event handlers; replies to
      // queries are made while xterm parses output, in its own tasks. IME text, which xterm commits
      // from a timer, is dropped only while output written without `answer` is being parsed.
      const fromPerson = pasting || isPersonEvent(globalThis.event);
      if (fromPerson || answers.length === 0 || answers[0]) listener(data, fromPerson);
    };
    return term.onData(forward);
  };

  const fitToContainer = () => {
    if (container.clientWidth === 0 || container.clientHeight === 0) return false;
    fit.fit();
    return true;
  };

  return {
    term,
    fit,
    search,
    renderer: () => renderer,
    fitToContainer,
    setTheme: (theme) => {
      term.options.theme = TERMINAL_THEMES[theme];
    },
    write,
    paste: (text) => {
      pasting = true;
      try {
        term.paste(text);
      } finally {
        pasting = false;
      }
    },
    onInput,
    dispose: () => term.dispose(),
  };
}

/** Events a person causes (keys, text input, clipboard, pointer, focus), as opposed to a socket message or a timer. */
function isPersonEvent(event: Event | undefined): boolean {
  return event instanceof UIEvent || event instanceof ClipboardEvent;
}
