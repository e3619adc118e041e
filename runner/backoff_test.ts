import { deepEqual as assertEquals } from "node:assert/strict";
import { Backoff } from "./backoff.ts";

Deno.test("backoff: exponential ceilings with full jitter, capped, reset after a long or a working connection", () => {
  const backoff = new Backoff({ initialMs: 500, maxMs: 30_000, resetAfterMs: 30_000, random: () => 0.999 });
  const ceilings: number[] = [];
  for (let i = 0; i < 9; i++) {
    ceilings.push(backoff.ceiling);
    backoff.next();
  }
  assertEquals(ceilings, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  backoff.connectionEnded(1000, false);
  assertEquals(backoff.ceiling, 30_000);
  backoff.connectionEnded(30_000, false);
  assertEquals(backoff.ceiling, 500);
  for (let i = 0; i < 5; i++) backoff.next();
  backoff.connectionEnded(1000, true);
  assertEquals(backoff.ceiling, 500, "a short link that carried traffic resets too");
  const low = new Backoff({ random: () => 0 });
  assertEquals(low.next(), 0, "full jitter reaches zero");
});
