/**
 * Creates an xterm.js 6 terminal with the addons the app uses: fit, WebGL
 * (falling back to the built-in DOM renderer when WebGL is unavailable or
 * its context is lost), clickable links, search with highlighted matches and
 * a match count, Unicode 11 widths, copy on selection, the user's
 * {@linkcode TerminalSettings}, and keyboard shortcuts for search, paste and
 * font size.
 *
 * @module
 */
import { type ITheme, Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import { type ISearchOptions, SearchAddon } from "@xterm/addon-search";
import { Unicode11Addon } from "@xterm/addon-unicode11";
import { WebLinksAddon } from "@xterm/addon-web-links";
import { WebglAddon } from "@xterm/addon-webgl";
import { TERMINAL_THEMES, type TerminalThemeName, type ThemeName } from "../theme.ts";
import { DEFAULT_SETTINGS, FONT_FAMILIES, type TerminalSettings } from "./settings.ts";

/** Where a search match stands: `index` is -1 when there are too many matches to number them. */
export interface SearchResults {
  index: number;
  count: number;
}

/** The palette a terminal shows: the settings' theme, or the app's own when the settings say `auto`. */
export function terminalPalette(settings: TerminalSettings, appTheme: ThemeName): TerminalThemeName {
  return settings.theme === "auto" ? appTheme : settings.theme;
}

/** A terminal and the addons the page talks to. */
export interface TerminalHandle {
  term: Terminal;
  fit: FitAddon;
  /** Which renderer draws the cells. */
  renderer(): "webgl" | "dom";
  /** Fits the terminal to its container if the container is visible; true when it did. */
  fitToContainer(): boolean;
  setTheme(theme: TerminalThemeName): void;
  /** Applies font, cursor and scrollback settings (the palette goes through {@linkcode setTheme}) and refits. */
  applySettings(settings: TerminalSettings): void;
  /** Finds the next (or, `backwards`, previous) match, highlighting all; `incremental` extends the current one as the term is typed. */
  find(term: string, options?: { backwards?: boolean; incremental?: boolean }): boolean;
  /** Calls `listener` when the matches of the last search change. */
  onSearchResults(listener: (results: SearchResults) => void): { dispose(): void };
  /** Removes the highlighted matches. */
  clearSearch(): void;
  /**
   * Writes session output; `answer` says whether the replies xterm.js makes to
   * terminal queries in it (device attributes, colours, mode and cursor
   * reports…) may go out as input. Output the session sent before this client
   * attached was already answered when it was live: answering its replay again
   * types the replies into the shell. All output must go through here, so
   * {@linkcode TerminalHandle.onInput} knows which write xterm is parsing.
   * Bytes are UTF-8, decoded by xterm (a character may be split across writes).
   */
  write(data: string | Uint8Array, answer: boolean, parsed?: () => void): void;
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
  /** Ctrl+= (larger, `1`), Ctrl+- (smaller, `-1`), Ctrl+0 (default size, `0`). */
  onFontSize?: (step: 1 | -1 | 0) => void;
}

/** Options shared by live terminals and the recording player. */
export interface CreateTerminalOptions extends TerminalShortcuts {
  theme: TerminalThemeName;
  /** Font, cursor and scrollback (the defaults when not given). */
  settings?: TerminalSettings;
  /** Read-only terminals (playback) take no input. */
  readOnly?: boolean;
  /** Try the WebGL renderer (default true). */
  webgl?: boolean;
  cols?: number;
  rows?: number;
}

/** Opens a terminal inside `container`. */
export function createTerminal(container: HTMLElement, options: CreateTerminalOptions): TerminalHandle {
  const settings = options.settings ?? DEFAULT_SETTINGS;
  let palette: ITheme = TERMINAL_THEMES[options.theme];
  const term = new Terminal({
    allowProposedApi: true,
    cursorBlink: !options.readOnly,
    disableStdin: options.readOnly ?? false,
    fontFamily: FONT_FAMILIES[settings.fontFamily].css,
    fontSize: settings.fontSize,
    cursorStyle: settings.cursorStyle,
    lineHeight: 1.15,
    scrollback: settings.scrollback,
    theme: palette,
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
      if (event.type !== "keydown" || event.altKey) return true;
      const step = fontSizeStep(event);
      if (step !== null && options.onFontSize) {
        event.preventDefault();
        options.onFontSize(step);
        return false;
      }
      if (!event.ctrlKey || !event.shiftKey) return true;
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
  const write = (data: string | Uint8Array, answer: boolean, parsed?: () => void) => {
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

  // Decorations make the addon count matches (onDidChangeResults); their colours must be #RRGGBB.
  const searchOptions = (incremental: boolean): ISearchOptions => ({
    incremental,
    decorations: {
      matchBackground: palette.selectionBackground,
      matchBorder: palette.yellow,
      matchOverviewRuler: palette.yellow ?? "#e6c07b",
      activeMatchBackground: palette.selectionBackground,
      activeMatchBorder: palette.cursor,
      activeMatchColorOverviewRuler: palette.cursor ?? "#7dd3a8",
    },
  });

  return {
    term,
    fit,
    renderer: () => renderer,
    fitToContainer,
    setTheme: (theme) => {
      palette = TERMINAL_THEMES[theme];
      term.options.theme = palette;
    },
    applySettings: (next) => {
      term.options.fontFamily = FONT_FAMILIES[next.fontFamily].css;
      term.options.fontSize = next.fontSize;
      term.options.cursorStyle = next.cursorStyle;
      term.options.scrollback = next.scrollback;
      fitToContainer();
    },
    find: (query, { backwards = false, incremental = false } = {}) =>
      backwards
        ? search.findPrevious(query, searchOptions(false))
        : search.findNext(query, searchOptions(incremental)),
    onSearchResults: (listener) =>
      search.onDidChangeResults(({ resultIndex, resultCount }) =>
        listener({ index: resultIndex, count: resultCount })
      ),
    clearSearch: () => search.clearDecorations(),
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

/**
 * The font-size shortcut a key press is, if any: Ctrl (or ⌘) with `=`/`+`, `-` or `0` resizes the
 * terminal's font instead of zooming the page, as in VS Code (so Ctrl+- no longer sends ^_).
 */
function fontSizeStep(event: KeyboardEvent): 1 | -1 | 0 | null {
  if (!event.ctrlKey && !event.metaKey) return null;
  if (event.key === "=" || event.key === "+") return 1;
  if (event.shiftKey) return null;
  return event.key === "-" ? -1 : event.key === "0" ? 0 : null;
}

/** Events a person causes (keys, text input, clipboard, pointer, focus), as opposed to a socket message or a timer. */
function isPersonEvent(event: Event | undefined): boolean {
  return event instanceof UIEvent || event instanceof ClipboardEvent;
}
