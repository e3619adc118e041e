/**
 * Short-lived messages in a polite live region (errors from the runner,
 * confirmations), shown bottom-right.
 *
 * @module
 */
import type { JSX } from "preact";
import { useEffect, useState } from "preact/hooks";

/** One message. */
export interface Toast {
  id: number;
  text: string;
  kind: "info" | "error";
}

let nextId = 1;
let toasts: Toast[] = [];
const listeners = new Set<(toasts: Toast[]) => void>();

function publish(next: Toast[]) {
  toasts = next;
  listeners.forEach((listener) => listener(toasts));
}

/** Shows `text` for a few seconds. */
export function showToast(text: string, kind: Toast["kind"] = "info"): void {
  const toast = { id: nextId++, text, kind };
  publish([...toasts.slice(-3), toast]);
  setTimeout(() => publish(toasts.filter((t) => t.id !== toast.id)), kind === "error" ? 8000 : 4000);
}

/** The region that shows the toasts. */
export function Toasts(): JSX.Element {
  const [items, setItems] = useState(toasts);
  useEffect(() => {
    listeners.add(setItems);
    return () => void listeners.delete(setItems);
  }, []);
  return (
    <div class="toasts" role="status" aria-live="polite">
      {items.map((toast) => (
        <div key={toast.id} class={`toast toast-${toast.kind}`}>
          <span>{toast.text}</span>
          <button
            type="button"
            class="icon-button"
            aria-label="Dismiss"
            onClick={() => publish(toasts.filter((t) => t.id !== toast.id))}
          >
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
