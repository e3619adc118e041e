/**
 * The terminal settings panel: font size and family, colour theme, cursor
 * style, scrollback. Every change applies at once to all open terminals and
 * is remembered in this browser.
 *
 * @module
 */
import type { JSX } from "preact";
import { useEffect, useId, useRef, useState } from "preact/hooks";
import {
  COLOUR_THEMES,
  CURSOR_STYLES,
  DEFAULT_SETTINGS,
  FONT_FAMILIES,
  MAX_FONT_SIZE,
  MIN_FONT_SIZE,
  onTerminalSettingsChange,
  SCROLLBACK_CHOICES,
  type TerminalSettings,
  terminalSettings,
  updateTerminalSettings,
} from "./settings.ts";

/** The panel. */
export function SettingsPanel(props: { onClose: () => void }): JSX.Element {
  const [settings, setSettings] = useState<TerminalSettings>(terminalSettings);
  useEffect(() => onTerminalSettingsChange(setSettings), []);
  const first = useRef<HTMLInputElement>(null);
  useEffect(() => first.current?.focus(), []);
  const id = useId();
  const change = (update: Partial<TerminalSettings>) => updateTerminalSettings(update);
  // A scrollback stored by an older choice list is still shown as itself.
  const scrollbacks = [...new Set([...SCROLLBACK_CHOICES, settings.scrollback])].sort((a, b) => a - b);

  return (
    <form
      class="pane-panel settings-panel"
      aria-label="Terminal settings"
      onSubmit={(e) => {
        e.preventDefault();
        props.onClose();
      }}
      onKeyDown={(e) => {
        if (e.key === "Escape") props.onClose();
      }}
    >
      <div class="field">
        <label for={`${id}-size`}>Font size</label>
        <input
          id={`${id}-size`}
          ref={first}
          type="number"
          min={MIN_FONT_SIZE}
          max={MAX_FONT_SIZE}
          step={1}
          value={settings.fontSize}
          title="Also Ctrl+= and Ctrl+- in the terminal; Ctrl+0 resets"
          onInput={(e) => {
            const size = e.currentTarget.valueAsNumber;
            if (Number.isInteger(size) && size >= MIN_FONT_SIZE && size <= MAX_FONT_SIZE) {
              change({
                fontSize: size,
              });
            }
          }}
        />
      </div>
      <div class="field">
        <label for={`${id}-family`}>Font</label>
        <select
          id={`${id}-family`}
          value={settings.fontFamily}
          onChange={(e) => change({ fontFamily: e.currentTarget.value as TerminalSettings["fontFamily"] })}
        >
          {Object.entries(FONT_FAMILIES).map(([value, family]) => (
            <option key={value} value={value}>{family.label}</option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for={`${id}-theme`}>Colours</label>
        <select
          id={`${id}-theme`}
          value={settings.theme}
          onChange={(e) => change({ theme: e.currentTarget.value as TerminalSettings["theme"] })}
        >
          {Object.entries(COLOUR_THEMES).map(([value, label]) => (
            <option key={value} value={value}>{label}</option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for={`${id}-cursor`}>Cursor</label>
        <select
          id={`${id}-cursor`}
          value={settings.cursorStyle}
          onChange={(e) => change({ cursorStyle: e.currentTarget.value as TerminalSettings["cursorStyle"] })}
        >
          {CURSOR_STYLES.map((style) => (
            <option key={style} value={style}>{style[0].toUpperCase() + style.slice(1)}</option>
          ))}
        </select>
      </div>
      <div class="field">
        <label for={`${id}-scrollback`}>Scrollback</label>
        <select
          id={`${id}-scrollback`}
          value={String(settings.scrollback)}
          onChange={(e) => change({ scrollback: Number(e.currentTarget.value) })}
        >
          {scrollbacks.map((lines) => (
            <option key={lines} value={String(lines)}>{lines.toLocaleString("en")} lines</option>
          ))}
        </select>
      </div>
      <button type="button" class="button small ghost" onClick={() => change({ ...DEFAULT_SETTINGS })}>
        Reset
      </button>
      <button type="submit" class="button small">Done</button>
    </form>
  );
}
