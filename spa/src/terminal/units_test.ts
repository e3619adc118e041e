import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { applyModifiers, arrowSequence } from "./key_bar.tsx";
import { parseManualUrl } from "./manual_url.ts";
import { loadTabs, MAX_STORED_TABS, saveTabs, tabsKey, tabTitle } from "./tabs_store.ts";

const USER = "user_1";
const TABS_KEY = tabsKey(USER);
import { formatCode, normalizeCode } from "../pages/pair.tsx";

Deno.test("sticky Ctrl and Alt transform the next key", () => {
  assertEquals(applyModifiers("c", { ctrl: true, alt: false }), "\x03");
  assertEquals(applyModifiers("C", { ctrl: true, alt: false }), "\x03");
  assertEquals(applyModifiers("[", { ctrl: true, alt: false }), "\x1b");
  assertEquals(applyModifiers(" ", { ctrl: true, alt: false }), "\x00");
  assertEquals(applyModifiers("b", { ctrl: false, alt: true }), "\x1bb");
  assertEquals(applyModifiers("x", { ctrl: true, alt: true }), "\x1b\x18");
  assertEquals(applyModifiers("hello", { ctrl: true, alt: false }), "hello");
  assertEquals(arrowSequence("up", false), "\x1b[A");
  assertEquals(arrowSequence("left", true), "\x1bOD");
});

Deno.test("parseManualUrl accepts the serve link and explains bad input", () => {
  assertEquals(parseManualUrl(" ws://127.0.0.1:7681/client?token=abc "), {
    ok: true,
    url: "ws://127.0.0.1:7681/client?token=abc",
  });
  assertEquals(parseManualUrl("http://localhost:7681/client?token=abc"), {
    ok: true,
    url: "ws://localhost:7681/client?token=abc",
  });
  const bad = ["not a url", "ftp://x/client?token=a", "ws://127.0.0.1:7681/other?token=a", "ws://h/client"];
  for (const input of bad) {
    const result = parseManualUrl(input);
    assert(!result.ok && result.error.length > 0, input);
  }
});

Deno.test("pairing codes are normalized and displayed as XXXX-XXXX", () => {
  assertEquals(normalizeCode(" k7qd-m2xp "), "K7QDM2XP");
  assertEquals(normalizeCode("k7qd m2xp"), "K7QDM2XP");
  assertEquals(formatCode("k7qdm2xp"), "K7QD-M2XP");
  assertEquals(formatCode("k7q"), "K7Q");
});

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
