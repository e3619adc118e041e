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
    dispose: () => term.dispose(),
  };
}
