/**
 * Keys touch keyboards lack: Esc, Ctrl and Alt (sticky: they apply to the
 * next key typed), Tab and the arrows.
 *
 * @module
 */
import type { JSX } from "preact";

/** Sticky modifiers waiting for the next key. */
export interface Modifiers {
  ctrl: boolean;
  alt: boolean;
}

/**
 * Applies sticky modifiers to typed input: Ctrl turns a letter (or `@[\]^_`
 * and space) into its control character; Alt prefixes ESC.
 */
export function applyModifiers(data: string, modifiers: Modifiers): string {
  let out = data;
  if (modifiers.ctrl && data.length === 1) {
    const upper = data.toUpperCase();
    const code = upper.charCodeAt(0);
    if (code >= 0x40 && code <= 0x5f) out = String.fromCharCode(code & 0x1f);
    else if (data === " ") out = "\x00";
    else if (data === "?") out = "\x7f";
  }
  if (modifiers.alt) out = "\x1b" + out;
  return out;
}

/** Escape sequence of an arrow key, honouring application cursor mode. */
export function arrowSequence(
  direction: "up" | "down" | "right" | "left",
  applicationCursor: boolean,
): string {
  const letter = { up: "A", down: "B", right: "C", left: "D" }[direction];
  return `\x1b${applicationCursor ? "O" : "["}${letter}`;
}

/** The bar. Buttons keep focus in the terminal so the on-screen keyboard stays open. */
export function KeyBar(props: {
  modifiers: Modifiers;
  onModifiers: (modifiers: Modifiers) => void;
  onKey: (key: "esc" | "tab" | "up" | "down" | "left" | "right") => void;
}): JSX.Element {
  const keep = (event: Event) => event.preventDefault();
  const key = (name: "esc" | "tab" | "up" | "down" | "left" | "right", label: string, aria: string) => (
    <button
      type="button"
      class="key"
      aria-label={aria}
      onPointerDown={keep}
      onClick={() => props.onKey(name)}
    >
      {label}
    </button>
  );
  const { ctrl, alt } = props.modifiers;
  return (
    <div class="key-bar" role="toolbar" aria-label="Extra keys">
      {key("esc", "Esc", "Escape")}
      <button
        type="button"
        class="key"
        aria-pressed={ctrl}
        onPointerDown={keep}
        onClick={() => props.onModifiers({ ctrl: !ctrl, alt })}
      >
        Ctrl
      </button>
      <button
        type="button"
        class="key"
        aria-pressed={alt}
        onPointerDown={keep}
        onClick={() => props.onModifiers({ ctrl, alt: !alt })}
      >
        Alt
      </button>
      {key("tab", "Tab", "Tab")}
      {key("left", "←", "Left arrow")}
      {key("up", "↑", "Up arrow")}
      {key("down", "↓", "Down arrow")}
      {key("right", "→", "Right arrow")}
    </div>
  );
}
