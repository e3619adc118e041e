/**
 * A tiny router over the History API: the current location as a hook,
 * `navigate()`, and a `<Link>` that navigates without reloading.
 *
 * @module
 */
import type { ComponentChildren, JSX } from "preact";
import { useEffect, useState } from "preact/hooks";

/** The current path and query. */
export interface Location {
  path: string;
  query: URLSearchParams;
}

const listeners = new Set<() => void>();

function current(): Location {
  return { path: globalThis.location.pathname, query: new URLSearchParams(globalThis.location.search) };
}

/** Goes to `to` (a same-origin path with optional query); `replace` keeps history clean for redirects. */
export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (options.replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  listeners.forEach((listener) => listener());
  globalThis.scrollTo?.(0, 0);
}

/**
 * Rewrites the query in the address bar without a history entry or a scroll, so that a reload
 * comes back to what the page shows.
 */
export function replaceQuery(query: URLSearchParams): void {
  const search = query.size ? `?${query}` : "";
  if (search === globalThis.location.search) return;
  history.replaceState(null, "", globalThis.location.pathname + search + globalThis.location.hash);
  listeners.forEach((listener) => listener());
}

/** Re-renders on navigation and returns the current location. */
export function useLocation(): Location {
  const [location, setLocation] = useState(current);
  useEffect(() => {
    const update = () => setLocation(current());
    listeners.add(update);
    globalThis.addEventListener("popstate", update);
    return () => {
      listeners.delete(update);
      globalThis.removeEventListener("popstate", update);
    };
  }, []);
  return location;
}

/** Only same-origin paths are followed after sign-in (no open redirects). */
export function safeNext(next: string | null, fallback: string): string {
  if (!next || !next.startsWith("/") || next.startsWith("//") || next.startsWith("/\\")) return fallback;
  return next;
}

/** Props of {@linkcode Link}. */
export interface LinkProps {
  href: string;
  children: ComponentChildren;
  class?: string;
  title?: string;
  "aria-label"?: string;
  "aria-current"?: "page";
}

/** An `<a>` that navigates in-app on a plain left click. */
export function Link(props: LinkProps): JSX.Element {
  const { href, children, ...rest } = props;
  const onClick = (event: MouseEvent) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(href);
  };
  return <a href={href} onClick={onClick} {...rest}>{children}</a>;
}
