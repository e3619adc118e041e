import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { loadTabs, MAX_STORED_TABS, saveTabs, tabsKey, tabTitle } from "./tabs_store.ts";

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
    { id: "t1", ideaId: "idea", runnerId: "runner_12345678", sessionId: "sess_12345678", cwd: "/home/me/x" },
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
      },
      { id: "t2", ideaId: "other", runnerId: undefined, sessionId: undefined, cwd: undefined },
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

Deno.test("tab titles use the last folder of the cwd, else the idea", () => {
  assertEquals(tabTitle({ cwd: "/home/me/project/", ideaId: "x" }), "project");
  assertEquals(tabTitle({ cwd: "/", ideaId: "x" }), "/");
  assertEquals(tabTitle({ ideaId: "idea-1" }), "idea-1");
});
