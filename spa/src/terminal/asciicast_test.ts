/// <reference lib="deno.ns" />
/// <reference lib="deno.unstable" />
import { deepEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { CastPlayer, compressIdle, parseAsciicast } from "./asciicast.ts";

const CAST = [
  JSON.stringify({ version: 2, width: 100, height: 30, timestamp: 1700000000 }),
  JSON.stringify([0.1, "o", "hello "]),
  JSON.stringify([0.2, "i", "typed"]),
  JSON.stringify([0.3, "o", "world\r\n"]),
  JSON.stringify([10.3, "o", "later"]),
  "",
].join("\n");

Deno.test("parseAsciicast reads the header and output events", () => {
  const cast = parseAsciicast(CAST);
  assertEquals(cast.header, { version: 2, width: 100, height: 30, timestamp: 1700000000, title: undefined });
  assertEquals(cast.events.map((e) => e.data), ["hello ", "world\r\n", "later"]);
  assertEquals(cast.duration, 10.3);
});

Deno.test("parseAsciicast explains what is wrong", () => {
  assertThrows(() => parseAsciicast(""), /empty/);
  assertThrows(() => parseAsciicast("nope"), /header/);
  assertThrows(() => parseAsciicast(JSON.stringify({ version: 1 })), /version 2/);
  assertThrows(() => parseAsciicast(`${JSON.stringify({ version: 2 })}\n{`), /Line 2/);
  assertThrows(() => parseAsciicast(`${JSON.stringify({ version: 2 })}\n{"a":1}`), /not an event/);
});

Deno.test("compressIdle caps pauses", () => {
  const cast = parseAsciicast(CAST);
  const times = compressIdle(cast.events, 2);
  assertEquals(times.map((t) => Math.round(t * 10) / 10), [0.1, 0.3, 2.3]);
});

Deno.test("CastPlayer writes every event in order and ends; restart resets", async () => {
  const cast = parseAsciicast(CAST);
  let written = "";
  let resets = 0;
  const ended = Promise.withResolvers<void>();
  const player = new CastPlayer(cast, {
    write: (data) => written += data,
    reset: () => {
      written = "";
      resets++;
    },
    onEnd: () => ended.resolve(),
    maxIdle: 0.05,
  });
  player.setSpeed(20);
  player.play();
  await ended.promise;
  assertEquals(written, "hello world\r\nlater");
  assertEquals(player.playing, false);
  player.restart();
  assertEquals([written, resets], ["", 1]);
  player.skipToEnd();
  assertEquals(written, "hello world\r\nlater");
  player.dispose();
});
