import { deepStrictEqual as assertEquals, equal, ok } from "node:assert/strict";
import { withApi } from "./_test_fixture.ts";
import { createKvRelayBackend } from "./relay_backend.ts";
import { apiRequest, pairRunner, revokeRunner, signup } from "./testing.ts";
import { waitFor } from "@coda/relay/testing";

Deno.test("consumeClientJti: once only, also under concurrency", async () => {
  await withApi(async (api) => {
    const backend = createKvRelayBackend(api.kv, api.clock.now);
    const expiresAt = new Date(api.clock.now() + 60_000);
    equal(await backend.consumeClientJti("jti-1", expiresAt), true);
    equal(await backend.consumeClientJti("jti-1", expiresAt), false);
    const results = await Promise.all(
      Array.from({ length: 10 }, () => backend.consumeClientJti("jti-2", expiresAt)),
    );
    equal(results.filter(Boolean).length, 1);
  });
});

Deno.test("consumeClientJti: the record outlives the token's skew window, then lapses", async () => {
  await withApi(async (api) => {
    const backend = createKvRelayBackend(api.kv, api.clock.now);
    const expiresAt = new Date(api.clock.now() + 60_000);
    equal(await backend.consumeClientJti("jti", expiresAt), true);
    api.clock.advance(60_000 + 59_000);
    equal(await backend.consumeClientJti("jti", expiresAt), false, "still inside the 60 s tolerance");
    api.clock.advance(2_000);
    equal(await backend.consumeClientJti("jti", expiresAt), true, "stale record replaced");
  });
});

Deno.test("verifyRunnerJti and setPresence go through the app's records", async () => {
  await withApi(async (api) => {
    const user = await signup(api.url);
    const runner = await pairRunner(api.url, user.cookie);
    const backend = createKvRelayBackend(api.kv, api.clock.now);
    assertEquals(await backend.verifyRunnerJti(runner.jti), {
      runnerId: runner.runnerId,
      userId: user.userId,
    });
    equal(await backend.verifyRunnerJti("nope"), null);
    await backend.setPresence(runner.runnerId, "someone-else", true);
    equal((await api.kv.get(["presence", runner.runnerId])).value, null, "wrong user: nothing written");
    await backend.setPresence(runner.runnerId, user.userId, true);
    ok((await api.kv.get(["presence", runner.runnerId])).value);
  });
});

Deno.test("watchRevocations: fires on revocations and re-pairing, stops on abort", async () => {
  await withApi(async (api) => {
    const user = await signup(api.url);
    const first = await pairRunner(api.url, user.cookie);
    const second = await pairRunner(api.url, user.cookie);
    const backend = createKvRelayBackend(api.kv, api.clock.now);
    const controller = new AbortController();
    let changes = 0;
    backend.watchRevocations!(() => {
      changes++;
      return Promise.resolve();
    }, controller.signal);
    // The watch starts asynchronously: bump the epoch until it reports, so it is known to be live.
    while (changes === 0) {
      await api.kv.atomic().sum(["revocation_epoch"], 1n).commit();
      await waitFor(() => changes > 0, "the watch to report", 200).catch(() => {});
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    const live = changes;
    await revokeRunner(api.url, user.cookie, first.runnerId);
    await waitFor(() => changes > live, "the revocation to be reported");
    const afterRevoke = changes;
    await pairRunner(api.url, user.cookie, { runnerId: second.runnerId });
    await waitFor(() => changes > afterRevoke, "the re-pairing to be reported");
    controller.abort();
    const stopped = changes;
    await revokeRunner(api.url, user.cookie, second.runnerId);
    await new Promise((resolve) => setTimeout(resolve, 300));
    equal(changes, stopped);
  });
});

Deno.test("sign-out: recorded per user, acted on by this process's relays before logout answers", async () => {
  await withApi(async (api) => {
    const user = await signup(api.url);
    const other = await signup(api.url);
    const backend = createKvRelayBackend(api.kv, api.clock.now);
    assertEquals(await backend.signedOutAt([user.userId, other.userId]), new Map());
    const controller = new AbortController();
    let seen: Map<string, number> | undefined;
    backend.watchRevocations!(async () => {
      seen = await backend.signedOutAt([user.userId, other.userId]);
    }, controller.signal);
    const response = await apiRequest(api.url, "/api/auth/logout", { method: "POST", cookie: user.cookie });
    equal(response.status, 200);
    await response.body?.cancel();
    // Not waited for: the check ran before the answer was sent.
    assertEquals(seen, new Map([[user.userId, api.clock.now()]]));
    const ids = Array.from({ length: 25 }, (_, i) => `nobody-${i}`);
    assertEquals(await backend.signedOutAt([...ids, user.userId]), new Map([[user.userId, api.clock.now()]]));
    controller.abort();
  });
});
