/**
 * Open terminal tabs, kept in `localStorage` so a reload reattaches to the
 * same sessions. Only identifiers are stored — never tokens, and never tabs
 * opened by URL (their URL carries a token).
 *
 * @module
 */
import { MAX_IDEA_ID_LENGTH } from "@coda/relay/protocol";

/** A tab that can be restored. */
export interface StoredTab {
  /** Local id of the tab. */
  id: string;
  ideaId: string;
  /** Pinned runner, if the user chose one. */
  runnerId?: string;
  /** The session, once the relay assigned one. */
  sessionId?: string;
  /** Last known working folder (the tab title until the runner says again). */
  cwd?: string;
  /** The title the terminal's programs set (OSC 0/2) while the tab is open; never stored. */
  title?: string;
  /** The name the user gave the tab (stored; it wins over every other title). */
  name?: string;
}

/** What is stored. */
export interface StoredTabs {
  tabs: StoredTab[];
  activeId: string | null;
}

/** The `localStorage` key of a user's tabs (per user: a shared browser never offers another account's sessions). */
export function tabsKey(userId: string): string {
  return `coda.terminal.tabs.${userId}`;
}

/** Most tabs kept. */
export const MAX_STORED_TABS = 20;

/** Longest name a tab may be given. */
export const MAX_TAB_NAME_LENGTH = 60;

/** Control characters, bidirectional overrides and isolates: kept out of names so a name cannot disguise itself. */
const UNSAFE_NAME = /[\p{Cc}\u202a-\u202e\u2066-\u2069]/gu;

/**
 * A name typed for a tab, made safe to keep: unsafe characters dropped, blanks trimmed, cut at
 * {@linkcode MAX_TAB_NAME_LENGTH}; `undefined` (the automatic title) when nothing is left.
 */
export function normalizeTabName(input: string): string | undefined {
  const cleaned = [...input.replace(UNSAFE_NAME, "").trim()].slice(0, MAX_TAB_NAME_LENGTH).join("").trim();
  return cleaned || undefined;
}

function isTabName(value: unknown): value is string {
  return typeof value === "string" && value !== "" && normalizeTabName(value) === value;
}

/** The subset of `Storage` this needs. */
export type TabStorage = Pick<Storage, "getItem" | "setItem">;

const ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Whether `value` has the shape of a session (or tab, runner) id, e.g. one read from the address bar. */
export function isStoredId(value: string): boolean {
  return ID.test(value);
}

function isStoredTab(value: unknown): value is StoredTab {
  if (!value || typeof value !== "object") return false;
  const tab = value as Record<string, unknown>;
  return typeof tab.id === "string" && ID.test(tab.id) &&
    typeof tab.ideaId === "string" && tab.ideaId.length <= MAX_IDEA_ID_LENGTH &&
    (tab.runnerId === undefined || (typeof tab.runnerId === "string" && ID.test(tab.runnerId))) &&
    (tab.sessionId === undefined || (typeof tab.sessionId === "string" && ID.test(tab.sessionId))) &&
    (tab.cwd === undefined || typeof tab.cwd === "string");
}

/**
 * Reads the stored tabs; anything malformed is ignored rather than trusted. A
 * bad name costs only the name: the tab keeps its session to reattach.
 */
export function loadTabs(storage: TabStorage | undefined, userId: string): StoredTabs {
  let raw: string | null = null;
  try {
    raw = storage?.getItem(tabsKey(userId)) ?? null;
  } catch {
    raw = null;
  }
  if (!raw) return { tabs: [], activeId: null };
  try {
    const parsed = JSON.parse(raw) as { tabs?: unknown; activeId?: unknown };
    const tabs = Array.isArray(parsed.tabs) ? parsed.tabs.filter(isStoredTab).slice(0, MAX_STORED_TABS) : [];
    const activeId = typeof parsed.activeId === "string" && tabs.some((t) => t.id === parsed.activeId)
      ? parsed.activeId
      : tabs[0]?.id ?? null;
    return {
      tabs: tabs.map(({ id, ideaId, runnerId, sessionId, cwd, name }) => ({
        id,
        ideaId,
        runnerId,
        sessionId,
        cwd,
        name: isTabName(name) ? name : undefined,
      })),
      activeId,
    };
  } catch {
    return { tabs: [], activeId: null };
  }
}

/** Stores the tabs (best effort: storage may be full or disabled). */
export function saveTabs(storage: TabStorage | undefined, userId: string, value: StoredTabs): void {
  const tabs = value.tabs.slice(0, MAX_STORED_TABS).map(({ id, ideaId, runnerId, sessionId, cwd, name }) => ({
    id,
    ideaId,
    runnerId,
    sessionId,
    cwd,
    name,
  }));
  try {
    storage?.setItem(tabsKey(userId), JSON.stringify({ tabs, activeId: value.activeId }));
  } catch {
    // Restoring tabs after a reload is a convenience; the open tabs keep working.
  }
}

/** A random tab id. */
export function newTabId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return "t" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The tab title: the name the user gave it, else what the shell titled it, else the last folder of the cwd, else the idea. */
export function tabTitle(tab: Pick<StoredTab, "cwd" | "ideaId" | "title" | "name">): string {
  if (tab.name) return tab.name;
  if (tab.title) return tab.title;
  if (tab.cwd) {
    const trimmed = tab.cwd.replace(/[\\/]+$/, "");
    const last = trimmed.split(/[\\/]/).pop();
    return last || tab.cwd;
  }
  return tab.ideaId || "terminal";
}
