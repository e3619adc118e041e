import { deepEqual as assertEquals } from "node:assert/strict";
import { topSelfTime } from "./profile.ts";

Deno.test("topSelfTime sums self samples per function, most first, as shares of the busy time", () => {
  const frame = (functionName: string, url = "", lineNumber = 0) => ({ functionName, url, lineNumber });
  const profile = JSON.stringify({
    nodes: [
      { id: 1, callFrame: frame("(root)"), hitCount: 0 },
      { id: 2, callFrame: frame("utf8Length", "file:///x/relay/utf8.ts", 9), hitCount: 6 },
      { id: 3, callFrame: frame("(garbage collector)"), hitCount: 2 },
      { id: 5, callFrame: frame("(idle)"), hitCount: 90 },
      { id: 4, callFrame: frame("utf8Length", "file:///x/relay/utf8.ts", 9), hitCount: 2 },
    ],
  });
  assertEquals(topSelfTime(profile, 5), [
    { name: "utf8Length (utf8.ts:10)", selfShare: 0.8 },
    { name: "(garbage collector)", selfShare: 0.2 },
  ]);
});
