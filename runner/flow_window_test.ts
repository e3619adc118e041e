import { deepEqual as assertEquals } from "node:assert/strict";
import { FlowWindow } from "./flow_window.ts";

const LIMITS = { highWatermark: 128 * 1024, lowWatermark: 32 * 1024, maxWindow: 1536 * 1024, windowMs: 100 };

/** A window driven by a clock the test moves. */
function windowAt() {
  let now = 0;
  const window = new FlowWindow(LIMITS, () => now);
  return { window, advance: (ms: number) => now += ms };
}

Deno.test("a client that renders 1 MB/s keeps the floor: little in flight ahead of a Ctrl-C", () => {
  const { window, advance } = windowAt();
  assertEquals([window.high, window.low], [128 * 1024, 32 * 1024], "every window starts at the floor");
  window.restart(0);
  for (let acked = 25_000; acked <= 1_000_000; acked += 25_000) {
    advance(25);
    window.acked(acked);
  }
  assertEquals([window.high, window.low], [128 * 1024, 32 * 1024]);
});

Deno.test("a client that takes 100 MB/s gets a window of its round trips, up to the ceiling", () => {
  const { window, advance } = windowAt();
  window.restart(0);
  let acked = 0;
  for (let i = 0; i < 20; i++) {
    advance(10);
    window.acked(acked += 1_000_000);
  }
  assertEquals([window.high, window.low], [1536 * 1024, 384 * 1024]);
});

Deno.test("idle time between bursts is not read as a slow client; acks closer than 10 ms are measured together", () => {
  const { window, advance } = windowAt();
  window.restart(0);
  advance(10);
  window.acked(50_000); // 5 MB/s: a 500 KB window
  assertEquals(window.high, 500_000);
  advance(60_000);
  window.restart(50_000);
  advance(4);
  window.acked(90_000);
  assertEquals(window.high, 500_000, "4 ms: not a sample yet");
  advance(6);
  window.acked(100_000);
  assertEquals(window.high, 500_000, "50 KB in 10 ms again, not 50 KB in a minute");
});

Deno.test("limit moves the ceiling for the clients at hand, never below the floor", () => {
  const { window, advance } = windowAt();
  window.restart(0);
  advance(10);
  window.acked(10_000_000);
  assertEquals(window.high, 1536 * 1024);
  window.limit(512 * 1024);
  assertEquals(window.high, 512 * 1024);
  window.limit(1024);
  assertEquals(window.high, 128 * 1024, "the floor");
  window.limit(4 * 1024 * 1024);
  assertEquals(window.high, 4 * 1024 * 1024, "the rate's window, up to the new ceiling");
});
