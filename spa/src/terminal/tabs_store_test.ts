/// <reference lib="deno.ns" />
/// <reference lib="deno.unstable" />
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  loadTabs,
  MAX_STORED_TABS,
  MAX_TAB_NAME_LENGTH,
  normalizeTabName,
  saveTabs,
  tabsKey,
  tabTitle,
} from "./tabs_store.ts";

const USER = "user_1";
const TABS_KEY = tabsKey(USER);

class MemoryStorage {
  items = new Map<string, string>();
  getItem(key: string) {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    this.items.set(key, value);
  }
}

Deno.test("tabs round-trip through storage without anything but identifiers", () => {
  const storage = new MemoryStorage();
  const tabs = [
    {
      id: "t1",
      ideaId: "idea",
      runnerId: "runner_12345678",
      sessionId: "sess_12345678",
      cwd: "/home/me/x",
      name: "build box",
    },
    { id: "t2", ideaId: "other", token: "secret" } as never,
  ];
  saveTabs(storage, USER, { tabs, activeId: "t2" });
  assert(!storage.getItem(TABS_KEY)!.includes("secret"));
  assertEquals(loadTabs(storage, USER), {
    tabs: [
      {
        id: "t1",
        ideaId: "idea",
        runnerId: "runner_12345678",
        sessionId: "sess_12345678",
        cwd: "/home/me/x",
        name: "build box",
      },
      {
        id: "t2",
        ideaId: "other",
        runnerId: undefined,
        sessionId: undefined,
        cwd: undefined,
        name: undefined,
      },
    ],
    activeId: "t2",
  });
});

Deno.test("malformed or hostile stored tabs are ignored", () => {
  const storage = new MemoryStorage();
  assertEquals(loadTabs(storage, USER), { tabs: [], activeId: null });
  storage.setItem(TABS_KEY, "{not json");
  assertEquals(loadTabs(storage, USER), { tabs: [], activeId: null });
  storage.setItem(
    TABS_KEY,
    JSON.stringify({
      tabs: [{ id: "../x", ideaId: "a" }, { id: "ok", ideaId: "a", sessionId: "bad id!" }, {
        id: "good",
        ideaId: "b",
      }],
      activeId: "missing",
    }),
  );
  assertEquals(loadTabs(storage, USER).tabs.map((t) => t.id), ["good"]);
  assertEquals(loadTabs(storage, USER).activeId, "good");
  const many = Array.from({ length: 50 }, (_, i) => ({ id: `t${i}`, ideaId: "x" }));
  storage.setItem(TABS_KEY, JSON.stringify({ tabs: many, activeId: null }));
  assertEquals(loadTabs(storage, USER).tabs.length, MAX_STORED_TABS);
  assertEquals(loadTabs(undefined, USER), { tabs: [], activeId: null });
});

Deno.test("stored tab names are validated: a hostile or oversized one is dropped, its tab kept", () => {
  const storage = new MemoryStorage();
  const names = [
    "ok name",
    "\x1b]0;pwned\x07",
    "evil\u202egnp.exe",
    "x".repeat(MAX_TAB_NAME_LENGTH + 1),
    " padded ",
    "",
    42,
  ];
  storage.setItem(
    TABS_KEY,
    JSON.stringify({ tabs: names.map((name, i) => ({ id: `t${i}`, ideaId: "a", name })), activeId: null }),
  );
  assertEquals(loadTabs(storage, USER).tabs.map((t) => [t.id, t.name]), [
    ["t0", "ok name"],
    ...names.slice(1).map((_, i) => [`t${i + 1}`, undefined]),
  ]);
});

Deno.test("typed tab names are cleaned, cut to the limit, and blank means the automatic title", () => {
  assertEquals(normalizeTabName("  logs \x07 "), "logs");
  assertEquals(normalizeTabName("a\u202eb\u2066c"), "abc");
  assertEquals(normalizeTabName("é".repeat(100)), "é".repeat(MAX_TAB_NAME_LENGTH));
  assertEquals(normalizeTabName(" \t "), undefined);
  assertEquals(tabTitle({ name: "mine", title: "vim", cwd: "/x/y", ideaId: "i" }), "mine");
});

Deno.test("tab titles use the last folder of the cwd, else the idea", () => {
  assertEquals(tabTitle({ cwd: "/home/me/project/", ideaId: "x" }), "project");
  assertEquals(tabTitle({ cwd: "/", ideaId: "x" }), "/");
  assertEquals(tabTitle({ ideaId: "idea-1" }), "idea-1");
});
