import { deepEqual as assertEquals } from "node:assert/strict";
import { backoffDelay } from "./backoff.ts";

Deno.test("backoffDelay: exponential upper bounds, capped, with full jitter by default", () => {
  const options = { baseMs: 500, maxMs: 30_000 };
  const top = [0, 1, 2, 3, 4, 5, 6, 7, 1000].map((n) => backoffDelay(n, options, () => 0.999999));
  assertEquals(top, [499, 999, 1999, 3999, 7999, 15999, 29999, 29999, 29999]);
  assertEquals(backoffDelay(3, options, () => 0), 0, "full jitter reaches zero");
  assertEquals(backoffDelay(2, options, () => 0.5), 1000);
});

Deno.test("backoffDelay: equal jitter stays in [50%, 100%] of the bound", () => {
  const options = { baseMs: 500, maxMs: 15_000, jitter: 0.5 };
  assertEquals([0, 1, 2, 3].map((n) => backoffDelay(n, options, () => 1)), [500, 1000, 2000, 4000]);
  assertEquals(backoffDelay(20, options, () => 1), 15_000);
  assertEquals(backoffDelay(0, options, () => 0), 250);
  assertEquals(backoffDelay(1000, options, () => 0.5), 11_250);
});

Deno.test("backoffDelay: no jitter is the plain doubling the recorder and pairing wait", () => {
  const options = { baseMs: 1000, maxMs: 30_000, jitter: 0 };
  const delays = [0, 1, 2, 3, 4, 5, 6, 40].map((n) => backoffDelay(n, options, Math.random));
  assertEquals(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
});
