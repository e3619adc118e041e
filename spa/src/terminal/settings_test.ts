/// <reference lib="deno.ns" />
/// <reference lib="deno.unstable" />
import { deepEqual as assertEquals } from "node:assert/strict";
import {
  DEFAULT_SETTINGS,
  loadSettings,
  MAX_FONT_SIZE,
  MIN_FONT_SIZE,
  parseSettings,
  saveSettings,
  SETTINGS_KEY,
  stepFontSize,
  type TerminalSettings,
  validateSettings,
} from "./settings.ts";

class MemoryStorage {
  items = new Map<string, string>();
  getItem(key: string) {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    this.items.set(key, value);
  }
}

const CHOSEN: TerminalSettings = {
  fontSize: 18,
  fontFamily: "dejavu",
  theme: "solarized-dark",
  cursorStyle: "bar",
  scrollback: 50_000,
};

Deno.test("settings round-trip through storage", () => {
  const storage = new MemoryStorage();
  assertEquals(loadSettings(storage), DEFAULT_SETTINGS);
  saveSettings(storage, CHOSEN);
  assertEquals(loadSettings(storage), CHOSEN);
  assertEquals(JSON.parse(storage.getItem(SETTINGS_KEY)!), CHOSEN);
});

Deno.test("malformed or hostile stored settings fall back to the defaults, field by field", () => {
  const storage = new MemoryStorage();
  for (const raw of ["{not json", "null", "[]", '"dark"', "42"]) {
    storage.setItem(SETTINGS_KEY, raw);
    assertEquals(loadSettings(storage), DEFAULT_SETTINGS, raw);
  }
  storage.setItem(
    SETTINGS_KEY,
    JSON.stringify({
      fontSize: 1e9,
      fontFamily: "x; } body { display: none",
      theme: "__proto__",
      cursorStyle: "toString",
      scrollback: 1e12,
    }),
  );
  assertEquals(loadSettings(storage), DEFAULT_SETTINGS);
  storage.setItem(SETTINGS_KEY, JSON.stringify({ fontSize: "20", scrollback: -1, theme: "light", extra: 1 }));
  assertEquals(loadSettings(storage), { ...DEFAULT_SETTINGS, theme: "light" });
  storage.setItem(SETTINGS_KEY, JSON.stringify({ fontSize: 12.5, cursorStyle: "underline" }));
  assertEquals(loadSettings(storage), { ...DEFAULT_SETTINGS, cursorStyle: "underline" });
  assertEquals(loadSettings(undefined), DEFAULT_SETTINGS);
  const throwing = {
    getItem(): string | null {
      throw new Error("denied");
    },
    setItem() {
      throw new Error("denied");
    },
  };
  assertEquals(loadSettings(throwing), DEFAULT_SETTINGS);
  saveSettings(throwing, CHOSEN);
});

Deno.test("validation keeps the valid fields and takes the rest from the fallback", () => {
  assertEquals(validateSettings({ fontSize: 40, theme: "dark" }, CHOSEN), { ...CHOSEN, theme: "dark" });
  assertEquals(parseSettings(null), DEFAULT_SETTINGS);
  assertEquals(parseSettings(JSON.stringify({ fontSize: MAX_FONT_SIZE })).fontSize, MAX_FONT_SIZE);
});

Deno.test("font size steps stay within the limits", () => {
  assertEquals(stepFontSize(14, 1), 15);
  assertEquals(stepFontSize(14, -1), 13);
  assertEquals(stepFontSize(MAX_FONT_SIZE, 1), MAX_FONT_SIZE);
  assertEquals(stepFontSize(MIN_FONT_SIZE, -1), MIN_FONT_SIZE);
});
