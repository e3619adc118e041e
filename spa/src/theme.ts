/**
 * Dark and light themes: the stored choice of the toggle wins, otherwise the
 * system's `prefers-color-scheme`. Applied as `data-theme` on `<html>`;
 * terminals read the matching xterm palette unless their settings pick one
 * of {@linkcode TERMINAL_THEMES}.
 *
 * @module
 */
import type { ITheme } from "@xterm/xterm";

/** The two themes. */
export type ThemeName = "dark" | "light";

const STORAGE_KEY = "coda.theme";
const listeners = new Set<(theme: ThemeName) => void>();

const SYSTEM_LIGHT = "(prefers-color-scheme: light)";

function storedTheme(): ThemeName | null {
  const stored = safeStorageGet(STORAGE_KEY);
  return stored === "light" || stored === "dark" ? stored : null;
}

function systemTheme(): ThemeName {
  return globalThis.matchMedia?.(SYSTEM_LIGHT).matches ? "light" : "dark";
}

/** The theme to use now: the one the user picked, else the system's. */
export function currentTheme(): ThemeName {
  return storedTheme() ?? systemTheme();
}

/** Follows changes of the system theme while the user has not picked one; returns the stop function. */
export function followSystemTheme(): () => void {
  const query = globalThis.matchMedia?.(SYSTEM_LIGHT);
  if (!query) return () => {};
  const onChange = () => {
    if (!storedTheme()) applyTheme(systemTheme());
  };
  query.addEventListener("change", onChange);
  return () => query.removeEventListener("change", onChange);
}

/** Applies `theme` to the page, remembers it when `store` is set, and tells subscribers. */
export function applyTheme(theme: ThemeName, store = false): void {
  document.documentElement.dataset.theme = theme;
  if (store) safeStorageSet(STORAGE_KEY, theme);
  listeners.forEach((listener) => listener(theme));
}

/** Calls `listener` on every theme change; returns the unsubscribe function. */
export function onThemeChange(listener: (theme: ThemeName) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The terminal colour themes: the app's two, and three more a terminal's settings can pick. */
export type TerminalThemeName = ThemeName | "solarized-dark" | "solarized-light" | "high-contrast";

/** xterm.js colours for each terminal theme (readable, WCAG AA contrast for the foreground). */
export const TERMINAL_THEMES: Record<TerminalThemeName, ITheme> = {
  dark: {
    background: "#11151c",
    foreground: "#d8dee9",
    cursor: "#7dd3a8",
    cursorAccent: "#11151c",
    selectionBackground: "#3b4a60",
    black: "#1b2230",
    red: "#f07178",
    green: "#7dd3a8",
    yellow: "#e6c07b",
    blue: "#82aaff",
    magenta: "#c792ea",
    cyan: "#89ddff",
    white: "#d8dee9",
    brightBlack: "#5c6773",
    brightRed: "#ff8b92",
    brightGreen: "#9be8c0",
    brightYellow: "#ffd68a",
    brightBlue: "#a4c2ff",
    brightMagenta: "#dcb3f5",
    brightCyan: "#b2ecff",
    brightWhite: "#ffffff",
  },
  light: {
    background: "#fbfbf8",
    foreground: "#24292f",
    cursor: "#1a7f5a",
    cursorAccent: "#fbfbf8",
    selectionBackground: "#c8d7ea",
    black: "#24292f",
    red: "#c4302b",
    green: "#1a7f37",
    yellow: "#9a6700",
    blue: "#0550ae",
    magenta: "#8250df",
    cyan: "#1b7c83",
    white: "#6e7781",
    brightBlack: "#57606a",
    brightRed: "#e5534b",
    brightGreen: "#2da44e",
    brightYellow: "#bf8700",
    brightBlue: "#218bff",
    brightMagenta: "#a475f9",
    brightCyan: "#3192aa",
    brightWhite: "#8c959f",
  },
  "solarized-dark": {
    background: "#002b36",
    foreground: "#93a1a1",
    cursor: "#93a1a1",
    cursorAccent: "#002b36",
    selectionBackground: "#184956",
    black: "#073642",
    red: "#dc322f",
    green: "#859900",
    yellow: "#b58900",
    blue: "#268bd2",
    magenta: "#d33682",
    cyan: "#2aa198",
    white: "#eee8d5",
    brightBlack: "#586e75",
    brightRed: "#cb4b16",
    brightGreen: "#9eb300",
    brightYellow: "#d4a600",
    brightBlue: "#6c9fd8",
    brightMagenta: "#6c71c4",
    brightCyan: "#3cc4b8",
    brightWhite: "#fdf6e3",
  },
  "solarized-light": {
    background: "#fdf6e3",
    foreground: "#4d5f66",
    cursor: "#4d5f66",
    cursorAccent: "#fdf6e3",
    selectionBackground: "#e6dfc8",
    black: "#073642",
    red: "#c42b28",
    green: "#6b7a00",
    yellow: "#8f6c00",
    blue: "#1f6fa8",
    magenta: "#b02c6c",
    cyan: "#1d7a73",
    white: "#93a1a1",
    brightBlack: "#586e75",
    brightRed: "#b3400f",
    brightGreen: "#5c6a00",
    brightYellow: "#7a5c00",
    brightBlue: "#3f5fa8",
    brightMagenta: "#5a5fb0",
    brightCyan: "#1a6b65",
    brightWhite: "#002b36",
  },
  "high-contrast": {
    background: "#000000",
    foreground: "#ffffff",
    cursor: "#ffff00",
    cursorAccent: "#000000",
    selectionBackground: "#264f78",
    black: "#000000",
    red: "#ff6b6b",
    green: "#5cff5c",
    yellow: "#ffff55",
    blue: "#7aa7ff",
    magenta: "#ff79ff",
    cyan: "#55ffff",
    white: "#e5e5e5",
    brightBlack: "#a0a0a0",
    brightRed: "#ff9e9e",
    brightGreen: "#a0ffa0",
    brightYellow: "#ffffa0",
    brightBlue: "#b0c8ff",
    brightMagenta: "#ffb0ff",
    brightCyan: "#b0ffff",
    brightWhite: "#ffffff",
  },
};

/** `localStorage.getItem` that tolerates storage being unavailable (private modes, policies). */
export function safeStorageGet(key: string): string | null {
  try {
    return globalThis.localStorage?.getItem(key) ?? null;
  } catch {
    return null;
  }
}

/** `localStorage.setItem` that tolerates storage being unavailable or full. */
export function safeStorageSet(key: string, value: string): void {
  try {
    globalThis.localStorage?.setItem(key, value);
  } catch {
    // Storage is a convenience here (theme, terminal settings, open tabs); the app works without it.
  }
}
