import { deepStrictEqual as assertEquals, equal, ok } from "node:assert/strict";
import { withApi } from "./_test_fixture.ts";
import { createDevSession } from "./devmode_sessions.ts";
import {
  appendLog,
  CHUNK_CODE_UNITS,
  deleteLog,
  findOwnLog,
  findRecording,
  type LogEvent,
  MAX_RECORDING_BYTES,
  packEvents,
  RECORDING_FULL_RETRY_MS,
} from "./logs.ts";

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

Deno.test("appendLog, findRecording and findOwnLog return why they refuse", async () => {
  await withApi(async ({ kv, clock }) => {
    const created = await createDevSession(kv, {
      userId: "ada",
      ideaId: "i",
      runnerId: null,
      now: clock.now(),
    });
    ok(created.ok);
    const { sessionId } = created.value;
    const append = (userId: string, data: string, bytesPerUser = 1000, id = sessionId) =>
      appendLog(kv, { sessionId: id, userId, runnerId: "r", chunks: [{ t: 1, data }], bytesPerUser });
    const unknown = "AAAAAAAAAAAAAAAAAAAAAA";

    assertEquals(await append("ada", "x", 1000, unknown), { ok: false, reason: "session_not_found" });
    assertEquals(await append("eve", "x"), { ok: false, reason: "session_not_yours" });
    assertEquals(await findRecording(kv, sessionId, "ada"), { ok: false, reason: "no_recording" });
    assertEquals(await findOwnLog(kv, sessionId, "ada"), { ok: false, reason: "no_recording" });

    assertEquals(await append("ada", "x".repeat(600)), { ok: true, value: { bytes: 600 } });
    assertEquals(await append("ada", "x".repeat(500)), {
      ok: false,
      reason: "storage_full",
      retryAfterMs: RECORDING_FULL_RETRY_MS,
      bytesPerUser: 1000,
    });
    assertEquals(await findRecording(kv, unknown, "ada"), { ok: false, reason: "session_not_found" });
    assertEquals(await findRecording(kv, sessionId, "eve"), { ok: false, reason: "session_not_yours" });
    assertEquals(await findOwnLog(kv, sessionId, "eve"), { ok: false, reason: "session_not_yours" });
    const found = await findOwnLog(kv, sessionId, "ada");
    ok(found.ok);
    assertEquals(await findRecording(kv, sessionId, "ada"), found);

    // A recording at the per-session cap, without writing 64 MiB of output to reach it.
    await kv.set(["logs", sessionId], { ...found.value, bytes: MAX_RECORDING_BYTES });
    assertEquals(await append("ada", "x", Infinity), { ok: false, reason: "recording_full" });

    await deleteLog(kv, found.value);
    assertEquals(await append("ada", "x", Infinity), { ok: false, reason: "recording_deleted" });
  });
});
