import { deepEqual as assertEquals } from "node:assert/strict";
import { JSON_STDOUT_OVERHEAD_BYTES } from "@coda/relay/utf8";
import { JsonInFlight } from "./json_in_flight.ts";

Deno.test("JsonInFlight counts each chunk's JSON until an ack reaches its end", () => {
  const inFlight = new JsonInFlight();
  inFlight.sent(100, new Uint8Array(100).fill(0x61));
  inFlight.sent(150, new Uint8Array(50).fill(0x1b));
  assertEquals(inFlight.bytes, 100 + 300 + 2 * JSON_STDOUT_OVERHEAD_BYTES);
  inFlight.acked(99);
  assertEquals(
    inFlight.bytes,
    100 + 300 + 2 * JSON_STDOUT_OVERHEAD_BYTES,
    "a chunk counts until all of it is acked",
  );
  inFlight.acked(100);
  assertEquals(inFlight.bytes, 300 + JSON_STDOUT_OVERHEAD_BYTES);
  inFlight.acked(1000);
  assertEquals(inFlight.bytes, 0);
  inFlight.sent(1100, new Uint8Array(100).fill(0x61));
  assertEquals(inFlight.bytes, 100 + JSON_STDOUT_OVERHEAD_BYTES);
  inFlight.clear();
  assertEquals(inFlight.bytes, 0);
});

Deno.test("JsonInFlight keeps its sum across many chunks acked a few at a time", () => {
  const inFlight = new JsonInFlight();
  let end = 0;
  for (let i = 0; i < 5000; i++) {
    end += 10;
    inFlight.sent(end, new Uint8Array(10).fill(0x61));
    // Acks trail by three chunks: the queue never empties, and is compacted as it goes.
    inFlight.acked(end - 30);
  }
  assertEquals(inFlight.bytes, 3 * (10 + JSON_STDOUT_OVERHEAD_BYTES));
  inFlight.acked(end);
  assertEquals(inFlight.bytes, 0);
});
