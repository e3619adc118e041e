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

Deno.test("topSelfTime merges several profiles, as of a runner's session holders", () => {
  const profile = (hits: number, idle: number) =>
    JSON.stringify({
      nodes: [
        {
          id: 1,
          callFrame: { functionName: "indexOfByte", url: "file:///x/relay/bytes.ts", lineNumber: 30 },
          hitCount: hits,
        },
        { id: 2, callFrame: { functionName: "(idle)", url: "", lineNumber: 0 }, hitCount: idle },
        { id: 3, callFrame: { functionName: "(program)", url: "", lineNumber: 0 }, hitCount: 1 },
      ],
    });
  assertEquals(topSelfTime([profile(3, 50), profile(4, 10)], 5), [
    { name: "indexOfByte (bytes.ts:31)", selfShare: 7 / 9 },
    { name: "(program)", selfShare: 2 / 9 },
  ]);
});
