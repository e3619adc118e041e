import { deepStrictEqual as assertEquals, equal, match } from "node:assert/strict";
import { verifyClientToken } from "@coda/relay/tokens";
import { SHARE_EPOCH_KEY } from "@coda/relay";
import { withApi } from "./_test_fixture.ts";
import type { ShareView, WatchTicketSchema } from "./contract.ts";
import { apiJson, apiRequest, createSession, login, shareSession, signup, watchTicket } from "./testing.ts";

type WatchTicket = import("valibot").InferOutput<typeof WatchTicketSchema>;

Deno.test("shares: a link share lives an hour; its secret, kept in the fragment, gets a watch-only token for the owner's session", async () => {
  await withApi(async (api) => {
    const ada = await signup(api.url);
    const session = await createSession(api.url, ada.cookie, { ideaId: "i" });
    const created = await shareSession(api.url, ada.cookie, session.sessionId);
    const url = new URL(created.url);
    equal(url.origin, api.config.publicUrl);
    equal(url.pathname, `/devmode/watch/${created.share.shareId}`);
    match(url.hash, /^#[A-Za-z0-9_-]{40,}$/);
    equal(created.share.expiresAt - created.share.createdAt, 60 * 60_000);

    // Anyone with the link, signed in or not.
    const ticket = await watchTicket(api.url, created.url);
    equal(ticket.status, 201);
    const answer: WatchTicket = await ticket.json();
    const { claims } = await verifyClientToken(api.config.jwtSecret, answer.token, {
      now: new Date(api.clock.now()),
    });
    assertEquals(
      [claims.userId, claims.sessionId, claims.share, claims.resume, claims.viewer],
      [ada.userId, session.sessionId, created.share.shareId, true, undefined],
    );
    for (const wrong of [`${url.origin}${url.pathname}#not-the-secret`, `${url.origin}${url.pathname}`]) {
      const refused = await watchTicket(api.url, wrong);
      assertEquals([refused.status, (await refused.json()).error], [403, "this link is not the share's"]);
    }
  });
});

Deno.test("shares: a share for accounts opens only for those accounts, signed in", async () => {
  await withApi(async (api) => {
    const ada = await signup(api.url);
    const bob = await signup(api.url);
    const eve = await signup(api.url);
    const session = await createSession(api.url, ada.cookie, { ideaId: "i" });
    const created = await shareSession(api.url, ada.cookie, session.sessionId, {
      audience: "accounts",
      emails: [bob.email.toUpperCase()],
      minutes: 15,
    });
    equal(new URL(created.url).hash, "", "no secret in an accounts share's address");
    assertEquals(created.share.emails, [bob.email]);
    for (const cookie of [undefined, eve.cookie]) {
      const refused = await watchTicket(api.url, created.url, cookie);
      assertEquals([refused.status, (await refused.json()).error], [403, "this share is for other accounts"]);
    }
    const invited = await watchTicket(api.url, created.url, await login(api.url, bob.email, bob.password));
    equal(invited.status, 201);
    const { claims } = await verifyClientToken(api.config.jwtSecret, (await invited.json()).token, {
      now: new Date(api.clock.now()),
    });
    assertEquals([claims.userId, claims.viewer], [ada.userId, bob.email]);
    const none = await apiRequest(api.url, `/api/devmode/sessions/${session.sessionId}/shares`, {
      cookie: ada.cookie,
      body: { audience: "accounts", emails: [] },
    });
    equal(none.status, 400);
  });
});

Deno.test("shares: a user never shares, lists or revokes another user's session or share", async () => {
  await withApi(async (api) => {
    const ada = await signup(api.url);
    const eve = await signup(api.url);
    const session = await createSession(api.url, ada.cookie, { ideaId: "i" });
    const created = await shareSession(api.url, ada.cookie, session.sessionId);
    const path = `/api/devmode/sessions/${session.sessionId}/shares`;
    const share = await apiRequest(api.url, path, { cookie: eve.cookie, body: { audience: "link" } });
    equal(share.status, 403);
    equal((await apiRequest(api.url, path, { cookie: eve.cookie })).status, 403);
    const revoke = await apiRequest(api.url, `/api/devmode/shares/${created.share.shareId}`, {
      cookie: eve.cookie,
      method: "DELETE",
    });
    equal(revoke.status, 404);
    equal((await watchTicket(api.url, created.url)).status, 201, "still live");
    const unknown = await apiRequest(api.url, "/api/devmode/sessions/no-such-session/shares", {
      cookie: ada.cookie,
      body: { audience: "link" },
    });
    equal(unknown.status, 404);
  });
});

Deno.test("shares: the owner lists live shares with their viewers; revoked and expired ones stop opening", async () => {
  await withApi(async (api) => {
    const ada = await signup(api.url);
    const session = await createSession(api.url, ada.cookie, { ideaId: "i" });
    const first = await shareSession(api.url, ada.cookie, session.sessionId);
    api.clock.advance(1000);
    const second = await shareSession(api.url, ada.cookie, session.sessionId, {
      audience: "link",
      minutes: 5,
    });
    // What a standalone relay reports of a viewer (the in-app relay writes the same record).
    const report = await apiRequest(api.url, "/api/devmode/internal/share-viewer", {
      headers: { "x-relay-secret": api.config.relayInternalSecret },
      body: { shareId: first.share.shareId, clientId: "client-1", online: true },
    });
    equal(report.status, 204);
    const listed = await apiJson<ShareView[]>(api.url, `/api/devmode/sessions/${session.sessionId}/shares`, {
      cookie: ada.cookie,
    });
    assertEquals(listed.map((s) => [s.shareId, s.viewers.map((v) => v.viewer)]), [
      [first.share.shareId, [null]],
      [second.share.shareId, []],
    ]);

    const epoch = async () => (await api.kv.get<Deno.KvU64>(SHARE_EPOCH_KEY)).value?.value ?? 0n;
    const before = await epoch();
    await apiJson(api.url, `/api/devmode/shares/${first.share.shareId}`, {
      cookie: ada.cookie,
      method: "DELETE",
    });
    equal(await epoch(), before + 1n, "relays are told");
    const revoked = await watchTicket(api.url, first.url);
    assertEquals([revoked.status, (await revoked.json()).error], [404, "no such share, or it was revoked"]);
    api.clock.advance(5 * 60_000);
    const expired = await watchTicket(api.url, second.url);
    assertEquals([expired.status, (await expired.json()).error], [410, "this share has expired"]);
    const left = await apiJson<ShareView[]>(api.url, `/api/devmode/sessions/${session.sessionId}/shares`, {
      cookie: ada.cookie,
    });
    assertEquals(left, []);
    const live = await apiJson<{ live: string[] }>(api.url, "/api/devmode/internal/shares", {
      headers: { "x-relay-secret": api.config.relayInternalSecret },
      body: { shareIds: [first.share.shareId, second.share.shareId, "unknown"] },
    });
    assertEquals(live, { live: [] });
  });
});
