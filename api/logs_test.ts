import { equal, ok } from "node:assert/strict";
import { CHUNK_CODE_UNITS, type LogEvent, packEvents } from "./logs.ts";

Deno.test("packEvents keeps every value small and never splits a surrogate pair", () => {
  const events: LogEvent[] = [
    [1, "a".repeat(CHUNK_CODE_UNITS - 1) + "\u{1F600}" + "b".repeat(10)],
    [2, "small"],
    [3, "\u{1F600}".repeat(CHUNK_CODE_UNITS)],
  ];
  const values = packEvents(events);
  for (const value of values) {
    const units = value.reduce((sum, [, data]) => sum + data.length, 0);
    ok(units <= CHUNK_CODE_UNITS, `value of ${units} code units`);
    for (const [, data] of value) {
      ok(!/[\uD800-\uDBFF]$/.test(data), "no lone high surrogate at a piece's end");
      ok(!/^[\uDC00-\uDFFF]/.test(data), "no lone low surrogate at a piece's start");
    }
  }
  const joined = (t: number) => values.flat().filter(([time]) => time === t).map(([, d]) => d).join("");
  for (const [t, data] of events) equal(joined(t), data);
});
