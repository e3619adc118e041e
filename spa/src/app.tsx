/**
 * The app shell: who is signed in, the navigation, the theme toggle, and the
 * routes. On narrow screens the navigation, theme toggle and Sign out fold
 * into a menu under one button. The terminal and recordings pages (which carry xterm.js) load on
 * demand so the sign-in and pairing pages stay light.
 *
 * @module
 */
import type { ComponentType, JSX } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, type DevmodeConfig, type User } from "./api.ts";
import { Link, navigate, safeNext, useLocation } from "./router.tsx";
import { applyTheme, currentTheme, followSystemTheme, onThemeChange, type ThemeName } from "./theme.ts";
import { showToast, Toasts } from "./toasts.tsx";
import { SignInPage, SignUpPage } from "./pages/auth.tsx";
import { PairPage } from "./pages/pair.tsx";
import { RunnersPage } from "./pages/runners.tsx";

/** What every page gets. */
export interface PageProps {
  user: User;
  config: DevmodeConfig;
  query: URLSearchParams;
}

const NAV = [
  { href: "/devmode/terminal", label: "Terminal" },
  { href: "/devmode/runners", label: "Runners" },
  { href: "/devmode/pair", label: "Pair a runner" },
  { href: "/devmode/recordings", label: "Recordings" },
];

/** The document title of each page (screen readers announce it on navigation). */
const PAGE_TITLES: Record<string, string> = {
  "/signin": "Sign in",
  "/signup": "Sign up",
  "/devmode": "Terminal",
  "/devmode/terminal": "Terminal",
  "/devmode/connect": "Connect by URL",
  "/devmode/pair": "Enable Dev Mode",
  "/devmode/runners": "Runners",
  "/devmode/recordings": "Recordings",
};

/** Routes that need no account. */
const PUBLIC_PATHS = new Set(["/signin", "/signup"]);
/** A share's watch-only view: open to anyone (a link share's secret is in the fragment). */
const WATCH_PATH = /^\/devmode\/watch\/([A-Za-z0-9_-]{1,128})$/;

/** The whole app. */
export function App(): JSX.Element {
  const location = useLocation();
  const [user, setUser] = useState<User | null | undefined>(undefined);
  const [config, setConfig] = useState<DevmodeConfig>({ relayEnabled: true, relayUrl: "" });
  const [menuOpen, setMenuOpen] = useState(false);
  const header = useRef<HTMLElement>(null);

  useEffect(() => followSystemTheme(), []);
  useEffect(() => setMenuOpen(false), [location.path, user]);
  useEffect(() => {
    if (!menuOpen) return;
    const away = (event: PointerEvent) => {
      if (!header.current?.contains(event.target as Node)) setMenuOpen(false);
    };
    const escape = (event: KeyboardEvent) => {
      if (event.key === "Escape") setMenuOpen(false);
    };
    document.addEventListener("pointerdown", away);
    document.addEventListener("keydown", escape);
    return () => {
      document.removeEventListener("pointerdown", away);
      document.removeEventListener("keydown", escape);
    };
  }, [menuOpen]);

  useEffect(() => {
    api.me().then(setUser, (error) => {
      setUser(null);
      if (!(error instanceof ApiError && error.status === 401)) showToast(error.message, "error");
    });
    api.config().then(setConfig, () => {});
  }, []);

  useEffect(() => {
    const page = PAGE_TITLES[location.path];
    document.title = page ? `${page} · Coda Dev Mode` : "Coda Dev Mode";
  }, [location.path]);

  useEffect(() => {
    if (user === undefined) return;
    const here = location.path + (location.query.size ? `?${location.query}` : "");
    const open = PUBLIC_PATHS.has(location.path) || location.path === "/devmode/connect" ||
      WATCH_PATH.test(location.path);
    if (user === null && !open) {
      navigate(`/signin?next=${encodeURIComponent(here)}`, { replace: true });
    } else if (user && (PUBLIC_PATHS.has(location.path) || location.path === "/")) {
      navigate(safeNext(location.query.get("next"), "/devmode/terminal"), { replace: true });
    }
  }, [user, location.path]);

  const signOut = async () => {
    try {
      await api.logout();
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) {
        showToast((error as Error).message, "error");
        return;
      }
    }
    setUser(null);
    navigate("/signin", { replace: true });
  };

  return (
    <div class="shell">
      <a class="skip-link" href="#main">Skip to content</a>
      <header class={`topbar${user ? " has-menu" : ""}${menuOpen ? " menu-open" : ""}`} ref={header}>
        <Link href="/" class="brand" aria-label="Coda Dev Mode, home">
          <span class="brand-mark" aria-hidden="true">›_</span> Coda <span class="brand-sub">Dev Mode</span>
        </Link>
        {user && (
          <button
            type="button"
            class="button ghost small menu-toggle"
            aria-expanded={menuOpen}
            aria-controls="topbar-menu"
            onClick={() => setMenuOpen(!menuOpen)}
          >
            {menuOpen ? "✕ Close" : "☰ Menu"}
          </button>
        )}
        <div
          class="topbar-menu"
          id="topbar-menu"
          onClick={(e) => {
            if ((e.target as Element).closest("a")) setMenuOpen(false);
          }}
        >
          {user && (
            <nav aria-label="Main">
              <ul class="nav">
                {NAV.map((item) => (
                  <li key={item.href}>
                    <Link
                      href={item.href}
                      aria-current={location.path.startsWith(item.href) ? "page" : undefined}
                    >
                      {item.label}
                    </Link>
                  </li>
                ))}
              </ul>
            </nav>
          )}
          <div class="topbar-end">
            <ThemeToggle />
            {user && (
              <>
                <span class="user-email" title="Signed in">{user.email}</span>
                <button type="button" class="button ghost small" onClick={signOut}>Sign out</button>
              </>
            )}
          </div>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <Routes user={user} config={config} onSignedIn={setUser} />
      </main>
      <Toasts />
    </div>
  );
}

function Routes(
  props: { user: User | null | undefined; config: DevmodeConfig; onSignedIn: (user: User) => void },
): JSX.Element | null {
  const { path, query } = useLocation();
  const { user, config } = props;
  if (path === "/signin") return <SignInPage onSignedIn={props.onSignedIn} query={query} />;
  if (path === "/signup") return <SignUpPage onSignedIn={props.onSignedIn} query={query} />;
  if (path === "/devmode/connect") {
    return <Lazy key="connect" load={loadTerminalPage} props={{ user, config, query, manualOnly: true }} />;
  }
  const watched = WATCH_PATH.exec(path);
  if (watched) {
    if (user === undefined) return <p class="loading" aria-busy="true">Loading…</p>;
    return <Lazy key="watch" load={loadWatchPage} props={{ shareId: watched[1], signedIn: user !== null }} />;
  }
  if (user === undefined) return <p class="loading" aria-busy="true">Loading…</p>;
  if (user === null) return null;
  const pageProps: PageProps = { user, config, query };
  switch (path) {
    case "/":
      return null;
    case "/devmode":
    case "/devmode/terminal":
      return <Lazy key="terminal" load={loadTerminalPage} props={{ ...pageProps, manualOnly: false }} />;
    case "/devmode/pair":
      return <PairPage {...pageProps} />;
    case "/devmode/runners":
      return <RunnersPage {...pageProps} />;
    case "/devmode/recordings":
      return <Lazy key="recordings" load={loadRecordingsPage} props={pageProps} />;
    default:
      return (
        <section class="page narrow">
          <h1>Page not found</h1>
          <p>
            There is nothing at <code>{path}</code>. <Link href="/devmode/terminal">Open a terminal</Link>.
          </p>
        </section>
      );
  }
}

// deno-lint-ignore no-explicit-any
type AnyComponent = ComponentType<any>;
const loadTerminalPage = () =>
  import("./pages/terminal_page.tsx").then((m) => m.TerminalPage as AnyComponent);
const loadWatchPage = () => import("./pages/watch_page.tsx").then((m) => m.WatchPage as AnyComponent);
const loadRecordingsPage = () =>
  import("./pages/recordings.tsx").then((m) => m.RecordingsPage as AnyComponent);
const loaded = new Map<() => Promise<AnyComponent>, AnyComponent>();

/** Renders a component from a chunk that loads on first use. */
function Lazy(props: { load: () => Promise<AnyComponent>; props: object }): JSX.Element {
  const [Component, setComponent] = useState<AnyComponent | undefined>(() => loaded.get(props.load));
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (Component) return;
    props.load().then(
      (component) => {
        loaded.set(props.load, component);
        setComponent(() => component);
      },
      () => setError("This page failed to load. Check your connection and reload."),
    );
  }, [props.load]);
  if (error) return <p class="error-text" role="alert">{error}</p>;
  if (!Component) return <p class="loading" aria-busy="true">Loading…</p>;
  return <Component {...props.props} />;
}

function ThemeToggle(): JSX.Element {
  const [theme, setTheme] = useState<ThemeName>(currentTheme);
  useEffect(() => onThemeChange(setTheme), []);
  const next = theme === "dark" ? "light" : "dark";
  return (
    <button
      type="button"
      class="button ghost small"
      aria-label={`Switch to the ${next} theme`}
      title={`Switch to the ${next} theme`}
      onClick={() => applyTheme(next, true)}
    >
      {theme === "dark" ? "☀ Light" : "☾ Dark"}
    </button>
  );
}
