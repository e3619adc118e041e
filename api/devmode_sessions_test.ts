import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { withApi } from "./_test_fixture.ts";
import { createDevSession, findOwnSession, MAX_NEW_SESSIONS, SESSION_WINDOW_MS } from "./devmode_sessions.ts";

Deno.test("findOwnSession and createDevSession return why they refuse", async () => {
  await withApi(async ({ kv, clock }) => {
    const create = () =>
      createDevSession(kv, { userId: "ada", ideaId: "i", runnerId: null, now: clock.now() });
    const first = await create();
    ok(first.ok);
    assertEquals(await findOwnSession(kv, first.value.sessionId, "ada"), first);
    assertEquals(await findOwnSession(kv, first.value.sessionId, "eve"), {
      ok: false,
      reason: "session_not_yours",
    });
    assertEquals(await findOwnSession(kv, "AAAAAAAAAAAAAAAAAAAAAA", "ada"), {
      ok: false,
      reason: "session_not_found",
    });

    clock.advance(1000);
    for (let i = 1; i < MAX_NEW_SESSIONS; i++) ok((await create()).ok);
    assertEquals(await create(), {
      ok: false,
      reason: "session_limit",
      retryAfterMs: SESSION_WINDOW_MS - 1000,
    });
  });
});
