import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { BatchPool } from "./batch_pool.ts";

const BATCH = 64 * 1024;
const SESSION = "session-0001";

Deno.test("a full batch's buffer is used again once the ring let go of it and the link is past it", () => {
  const pool = new BatchPool(SESSION, BATCH);
  const first = pool.take(BATCH, 0, 0);
  pool.retire({ offset: 0, data: first });
  // 36 KiB of newer output, and the link still queues 50 KiB: the first batch may be in that queue.
  const second = pool.take(BATCH, BATCH + 36 * 1024, 50 * 1024);
  assert(second.buffer !== first.buffer, "not while the link may still send from it");
  // Once the stream is further past it than the link queues, it is free.
  const third = pool.take(BATCH + 100, 3 * BATCH, 50 * 1024);
  assertEquals(third.buffer, first.buffer);
  assertEquals(third.length, BATCH + 100);
});

Deno.test("a buffer comes back once: retiring its chunk twice does not hand it out twice", () => {
  const pool = new BatchPool(SESSION, BATCH);
  const batch = pool.take(BATCH, 0, 0);
  pool.retire({ offset: 0, data: batch });
  pool.retire({ offset: 0, data: batch.subarray(10) });
  const a = pool.take(BATCH, 10 * BATCH, 0);
  const b = pool.take(BATCH, 10 * BATCH, 0);
  assertEquals(a.buffer, batch.buffer);
  assert(b.buffer !== batch.buffer);
});

Deno.test("small or oversized batches and foreign chunks never come from or go into the pool", () => {
  const pool = new BatchPool(SESSION, BATCH);
  const small = pool.take(100, 0, 0);
  assertEquals(small.buffer.byteLength < 1024, true, "a prompt is not kept in a batch-sized buffer");
  pool.retire({ offset: 0, data: small });
  const huge = pool.take(2 * BATCH, 0, 0);
  pool.retire({ offset: 100, data: huge });
  pool.retire({ offset: 0, data: new Uint8Array(BATCH) });
  const next = pool.take(BATCH, 100 * BATCH, 0);
  assert(next.buffer !== small.buffer && next.buffer !== huge.buffer);
  // A stripped chunk (a view further into a pooled buffer) still gives its buffer back.
  pool.retire({ offset: 0, data: next.subarray(1000) });
  assertEquals(pool.take(BATCH, 200 * BATCH, 0).buffer, next.buffer);
});
