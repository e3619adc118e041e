import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { IngestBody } from "@coda/api/contract";
import { Recorder } from "./recorder.ts";
import { silentLogger } from "./log.ts";
import { waitFor } from "./testing.ts";

/** A small ingest endpoint on a real port that fails while `failing` is set. */
function ingestServer() {
  const state = { failing: 0, bodies: [] as IngestBody[], auth: [] as string[] };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const body = await req.json();
    state.auth.push(req.headers.get("authorization") ?? "");
    if (state.failing > 0) {
      state.failing--;
      return Response.json({ error: "down" }, { status: 503 });
    }
    state.bodies.push(body);
    return Response.json({ ok: true });
  });
  return { state, url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

Deno.test("recorder batches output, retries failures, and sends in order", async () => {
  const ingest = ingestServer();
  ingest.state.failing = 2;
  const recorder = new Recorder({
    appUrl: ingest.url,
    runnerToken: "runner.token.x",
    sessionId: "session-0001",
    size: () => ({ cols: 80, rows: 24 }),
    log: silentLogger,
    flushMs: 50,
    retryMs: 20,
  });
  try {
    const bytes = new TextEncoder().encode("one two é");
    recorder.push(bytes.subarray(0, 4));
    // "é" split between two reads is recorded whole.
    recorder.push(bytes.subarray(4, 9));
    recorder.push(bytes.subarray(9));
    await waitFor(() => ingest.state.bodies.length === 1, "the first batch after retries");
    recorder.push(new TextEncoder().encode("three"));
    await waitFor(() => ingest.state.bodies.length === 2, "the second batch");
    const [first, second] = ingest.state.bodies;
    assertEquals(first.chunks.map((c) => c.data), ["one ", "two ", "é"]);
    assertEquals(second.chunks.map((c) => c.data), ["three"]);
    assertEquals([first.sessionId, first.cols, first.rows], ["session-0001", 80, 24]);
    assert(Math.abs(first.chunks[0].t - Date.now()) < 60_000, "t is a wall-clock time in ms");
    assertEquals(ingest.state.auth[0], "Bearer runner.token.x");
    assertEquals(recorder.dropped, 0);
  } finally {
    await recorder.stop();
    await ingest.close();
  }
});

Deno.test("recorder: a long outage drops the oldest batches instead of growing", async () => {
  const ingest = ingestServer();
  ingest.state.failing = Number.MAX_SAFE_INTEGER;
  const recorder = new Recorder({
    appUrl: ingest.url,
    runnerToken: "t",
    sessionId: "session-0001",
    size: () => ({ cols: 80, rows: 24 }),
    log: silentLogger,
    batchBytes: 1024,
    maxQueueBytes: 4096,
    retryMs: 10_000,
  });
  try {
    for (let i = 0; i < 100; i++) recorder.push(new Uint8Array(1024).fill(0x78));
    assert(recorder.backlogBytes <= 4096 + 1024, `backlog ${recorder.backlogBytes}`);
    assert(recorder.dropped >= 90);
  } finally {
    await recorder.stop(200);
    await ingest.close();
  }
});
