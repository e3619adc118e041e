/**
 * Dark (default) and light themes: the stored choice of the toggle wins,
 * otherwise dark. Applied as `data-theme` on `<html>`; terminals read the
 * matching xterm palette.
 *
 * @module
 */
import type { ITheme } from "@xterm/xterm";

/** The two themes. */
export type ThemeName = "dark" | "light";

const STORAGE_KEY = "coda.theme";
const listeners = new Set<(theme: ThemeName) => void>();

/** The theme to use now: the one the user picked, else dark (the app's default look). */
export function currentTheme(): ThemeName {
  const stored = safeStorageGet(STORAGE_KEY);
  return stored === "light" ? "light" : "dark";
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

/** xterm.js colours for each theme (calm, readable, WCAG AA contrast for the foreground). */
export const TERMINAL_THEMES: Record<ThemeName, ITheme> = {
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
    // Storage is a convenience here (theme, open tabs); the app works without it.
  }
}
