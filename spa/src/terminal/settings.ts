/**
 * Terminal settings: font size and family, colour theme, cursor style and
 * scrollback. Kept in `localStorage` for every terminal of this browser and
 * validated field by field on load: a malformed or hostile stored value
 * falls back to its default instead of reaching xterm.js. Changes reach open
 * terminals through {@linkcode onTerminalSettingsChange}.
 *
 * @module
 */
import type { TerminalThemeName } from "../theme.ts";

/** Font stacks to choose from (a fixed list: a stored family never becomes arbitrary CSS). */
export const FONT_FAMILIES = {
  default: {
    label: "Default (JetBrains Mono, Cascadia, Fira…)",
    css: '"JetBrains Mono", "Cascadia Code", "Fira Code", Menlo, Consolas, "DejaVu Sans Mono", monospace',
  },
  system: { label: "System monospace", css: "monospace" },
  dejavu: { label: "DejaVu Sans Mono", css: '"DejaVu Sans Mono", Menlo, Consolas, monospace' },
  courier: { label: "Courier", css: '"Courier New", Courier, monospace' },
} as const;

/** A key of {@linkcode FONT_FAMILIES}. */
export type FontFamilyId = keyof typeof FONT_FAMILIES;

/** A terminal colour theme, or `auto`: the palette of the app's light or dark theme. */
export type TerminalColourTheme = "auto" | TerminalThemeName;

/** The colour themes, with their labels, in the order the settings list them. */
export const COLOUR_THEMES: Record<TerminalColourTheme, string> = {
  auto: "Match the app (light or dark)",
  dark: "Coda dark",
  light: "Coda light",
  "solarized-dark": "Solarized dark",
  "solarized-light": "Solarized light",
  "high-contrast": "High contrast",
};

/** xterm.js cursor styles. */
export const CURSOR_STYLES = ["block", "bar", "underline"] as const;

/** A cursor style. */
export type CursorStyle = (typeof CURSOR_STYLES)[number];

/** Smallest font size, in CSS pixels. */
export const MIN_FONT_SIZE = 8;
/** Largest font size, in CSS pixels. */
export const MAX_FONT_SIZE = 32;
/** Scrollback lengths offered; the largest bounds what a stored value may ask of memory. */
export const SCROLLBACK_CHOICES = [1_000, 5_000, 10_000, 50_000, 100_000] as const;

/** The settings. */
export interface TerminalSettings {
  fontSize: number;
  fontFamily: FontFamilyId;
  theme: TerminalColourTheme;
  cursorStyle: CursorStyle;
  /** Lines kept above the screen. */
  scrollback: number;
}

/** What a browser starts with. */
export const DEFAULT_SETTINGS: Readonly<TerminalSettings> = Object.freeze({
  fontSize: 14,
  fontFamily: "default",
  theme: "auto",
  cursorStyle: "block",
  scrollback: 10_000,
});

/** The `localStorage` key. */
export const SETTINGS_KEY = "coda.terminal.settings";

/** The subset of `Storage` this needs. */
export type SettingsStorage = Pick<Storage, "getItem" | "setItem">;

const own = (record: object, key: unknown): boolean =>
  typeof key === "string" && Object.prototype.hasOwnProperty.call(record, key);

function isFontSize(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= MIN_FONT_SIZE && (value as number) <= MAX_FONT_SIZE;
}

function isScrollback(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 &&
    (value as number) <= SCROLLBACK_CHOICES[SCROLLBACK_CHOICES.length - 1];
}

/**
 * Settings from untrusted input (stored JSON, a form): each field that is
 * missing or invalid takes its value from `fallback`, so one bad field does
 * not throw the others away.
 */
export function validateSettings(
  value: unknown,
  fallback: TerminalSettings = DEFAULT_SETTINGS,
): TerminalSettings {
  const input = value && typeof value === "object" && !Array.isArray(value)
    ? value as Record<string, unknown>
    : {};
  return {
    fontSize: isFontSize(input.fontSize) ? input.fontSize : fallback.fontSize,
    fontFamily: own(FONT_FAMILIES, input.fontFamily) ? input.fontFamily as FontFamilyId : fallback.fontFamily,
    theme: own(COLOUR_THEMES, input.theme) ? input.theme as TerminalColourTheme : fallback.theme,
    cursorStyle: CURSOR_STYLES.includes(input.cursorStyle as CursorStyle)
      ? input.cursorStyle as CursorStyle
      : fallback.cursorStyle,
    scrollback: isScrollback(input.scrollback) ? input.scrollback : fallback.scrollback,
  };
}

/** Settings from their stored text; unreadable text gives the defaults. */
export function parseSettings(raw: string | null): TerminalSettings {
  if (!raw) return { ...DEFAULT_SETTINGS };
  try {
    return validateSettings(JSON.parse(raw));
  } catch {
    return { ...DEFAULT_SETTINGS };
  }
}

/** Reads the stored settings (defaults when storage is unavailable). */
export function loadSettings(storage: SettingsStorage | undefined): TerminalSettings {
  let raw: string | null = null;
  try {
    raw = storage?.getItem(SETTINGS_KEY) ?? null;
  } catch {
    raw = null;
  }
  return parseSettings(raw);
}

/** Stores the settings (best effort: storage may be full or disabled). */
export function saveSettings(storage: SettingsStorage | undefined, settings: TerminalSettings): void {
  try {
    storage?.setItem(SETTINGS_KEY, JSON.stringify(validateSettings(settings)));
  } catch {
    // The settings still apply to this page; only the next load starts from the stored ones.
  }
}

/** The font size one step larger (`1`) or smaller (`-1`), within the limits. */
export function stepFontSize(size: number, step: 1 | -1): number {
  return Math.min(MAX_FONT_SIZE, Math.max(MIN_FONT_SIZE, Math.round(size) + step));
}

let current: TerminalSettings | null = null;
const listeners = new Set<(settings: TerminalSettings) => void>();

/** The settings of this page (read from storage on first use). */
export function terminalSettings(): TerminalSettings {
  current ??= loadSettings(globalThis.localStorage);
  return current;
}

/** Changes settings (invalid values are ignored), stores them and tells every open terminal. */
export function updateTerminalSettings(change: Partial<TerminalSettings>): TerminalSettings {
  const next = validateSettings({ ...terminalSettings(), ...change }, terminalSettings());
  current = next;
  saveSettings(globalThis.localStorage, next);
  listeners.forEach((listener) => listener(next));
  return next;
}

/** Calls `listener` on every change; returns the unsubscribe function. */
export function onTerminalSettingsChange(listener: (settings: TerminalSettings) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
