import { deepStrictEqual as assertEquals, equal, match, ok } from "node:assert/strict";
import { verifyRunnerToken } from "@coda/relay/tokens";
import { withApi } from "./_test_fixture.ts";
import {
  apiJson,
  apiRequest,
  approvePairing,
  checkPairing,
  pairRunner,
  signup,
  startPairing,
  type TestUser,
} from "./testing.ts";

const CODE = /^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$/;

async function approveStatus(url: string, user: TestUser, code: string, runnerId?: string) {
  const response = await apiRequest(url, "/api/devmode/pair/approve", {
    cookie: user.cookie,
    body: { code, runnerId },
  });
  return {
    status: response.status,
    body: await response.json(),
    retryAfter: response.headers.get("retry-after"),
  };
}

async function verifyStatus(url: string, secret: string, jti: string) {
  const response = await apiRequest(url, `/api/devmode/tokens/runner/verify?jti=${jti}`, {
    headers: { "x-relay-secret": secret },
  });
  return { status: response.status, body: await response.json() };
}

Deno.test("pair/start returns a readable code, a strong poll secret and the interval", async () => {
  await withApi(async (api) => {
    const started = await startPairing(api.url, { name: "laptop", hostname: "ada-mbp", os: "darwin" });
    match(started.code, CODE);
    match(started.pollSecret, /^[A-Za-z0-9_-]{43}$/);
    equal(started.interval, 5);
    equal(started.expiresAt, api.clock.now() + 10 * 60 * 1000);
    const empty = await apiRequest(api.url, "/api/devmode/pair/start", { method: "POST", origin: null });
    equal(empty.status, 201);
    await empty.body?.cancel();
    const record = [];
    for await (const entry of api.kv.list({ prefix: ["pairings"] })) record.push(JSON.stringify(entry.value));
    ok(!record.join().includes(started.pollSecret), "the poll secret is stored hashed");
  });
});

Deno.test("pair/start rejects bad input", async () => {
  await withApi(async (api) => {
    for (const body of [{ name: 5 }, { hostname: "x".repeat(256) }, ["array"], "text"]) {
      const response = await apiRequest(api.url, "/api/devmode/pair/start", { body });
      equal(response.status, 400, JSON.stringify(body));
      ok((await response.json()).error);
    }
  });
});

Deno.test("full flow: info, approve, token exactly once, then consumed", async () => {
  await withApi(async (api) => {
    const user = await signup(api.url, "ada@example.test");
    const started = await startPairing(api.url, { name: "laptop", hostname: "ada-mbp", os: "darwin" });
    const pending = await checkPairing(api.url, started.code, started.pollSecret);
    assertEquals(pending, { status: 200, body: { status: "pending" } });

    const info = await apiJson<Record<string, unknown>>(
      api.url,
      `/api/devmode/pair/info?code=${started.code}`,
      { cookie: user.cookie },
    );
    assertEquals(info, {
      code: started.code,
      name: "laptop",
      hostname: "ada-mbp",
      os: "darwin",
      ip: "127.0.0.1",
      requestedAt: api.clock.now(),
      expiresAt: started.expiresAt,
      sameAddress: true,
    });

    const { runnerId } = await approvePairing(api.url, user.cookie, started.code);
    match(runnerId, /^[A-Za-z0-9_-]{22}$/);

    api.clock.advance(5000);
    const approved = await checkPairing(api.url, started.code, started.pollSecret);
    equal(approved.status, 200);
    equal(approved.body.status, "approved");
    equal(approved.body.relayUrl, api.config.relayUrl);
    equal(approved.body.runnerId, runnerId);
    assertEquals(approved.body.user, { email: "ada@example.test" });
    const { claims } = await verifyRunnerToken(api.config.jwtSecret, approved.body.runnerToken as string, {
      now: new Date(api.clock.now()),
    });
    equal(claims.type, "runner");
    equal(claims.runnerId, runnerId);
    equal(claims.userId, user.userId);

    api.clock.advance(5000);
    assertEquals(await checkPairing(api.url, started.code, started.pollSecret), {
      status: 200,
      body: { status: "consumed" },
    });
    const verified = await verifyStatus(api.url, api.config.relayInternalSecret, claims.jti);
    assertEquals(verified, { status: 200, body: { valid: true, runnerId, userId: user.userId } });

    const runners = await apiJson<Record<string, unknown>[]>(api.url, "/api/devmode/runners", {
      cookie: user.cookie,
    });
    equal(runners.length, 1);
    equal(runners[0].name, "laptop");
  });
});

Deno.test("pair/check: a missing secret is 403 and says why, a wrong one 404; neither yields the token", async () => {
  await withApi(async (api) => {
    const user = await signup(api.url);
    const started = await startPairing(api.url);
    await approvePairing(api.url, user.cookie, started.code);
    // Polled as the spec writes it (the code alone): the refusal says what is missing and where it comes from.
    const missing = await apiRequest(api.url, `/api/devmode/pair/check?code=${started.code}`);
    equal(missing.status, 403);
    const refusal = await missing.json();
    assertEquals(Object.keys(refusal), ["error"]);
    match(refusal.error, /X-Pair-Secret/);
    match(refusal.error, /pollSecret/);
    match(refusal.error, /pair\/start/);
    const wrong = await checkPairing(api.url, started.code, "A".repeat(43));
    equal(wrong.status, 404);
    ok(!("runnerToken" in wrong.body));
    // Wrong-secret polls do not count toward the interval: the runner still gets its token at once.
    const right = await checkPairing(api.url, started.code, started.pollSecret);
    equal(right.body.status, "approved");
  });
});

Deno.test("pair/check: polling faster than the interval gets 429 slow_down", async () => {
  await withApi(async (api) => {
    const started = await startPairing(api.url);
    equal((await checkPairing(api.url, started.code, started.pollSecret)).status, 200);
    api.clock.advance(1000);
    const tooFast = await apiRequest(api.url, `/api/devmode/pair/check?code=${started.code}`, {
      headers: { "x-pair-secret": started.pollSecret },
    });
    equal(tooFast.status, 429);
    equal(tooFast.headers.get("retry-after"), "5");
    assertEquals(await tooFast.json(), { status: "slow_down", interval: 5, error: "polling too fast" });
    api.clock.advance(4000);
    equal((await checkPairing(api.url, started.code, started.pollSecret)).body.status, "pending");
  });
});

Deno.test("pair/check: bad or unknown codes", async () => {
  await withApi(async (api) => {
    const noCode = await apiRequest(api.url, "/api/devmode/pair/check", {
      headers: { "x-pair-secret": "s" },
    });
    equal(noCode.status, 400);
    await noCode.body?.cancel();
    const malformed = await checkPairing(api.url, "!!!", "secret");
    equal(malformed.status, 400);
    const unknown = await checkPairing(api.url, "AAAA-AAAA", "secret");
    equal(unknown.status, 404);
    equal(unknown.body.status, "expired");
  });
});

Deno.test("the token is delivered exactly once under concurrent polls", async () => {
  await withApi(async (api) => {
    const user = await signup(api.url);
    const started = await startPairing(api.url);
    await approvePairing(api.url, user.cookie, started.code);
    const results = await Promise.all(
      Array.from({ length: 8 }, () => checkPairing(api.url, started.code, started.pollSecret)),
    );
    const tokens = results.filter((r) => typeof r.body.runnerToken === "string");
    equal(tokens.length, 1);
    for (const result of results) {
      if (result !== tokens[0]) ok(result.status === 429 || result.body.status === "consumed");
    }
  });
});

Deno.test("pairings expire after 10 minutes (injected clock)", async () => {
  await withApi(async (api) => {
    const user = await signup(api.url);
    const started = await startPairing(api.url);
    api.clock.advance(10 * 60 * 1000);
    assertEquals(await checkPairing(api.url, started.code, started.pollSecret), {
      status: 200,
      body: { status: "expired" },
    });
    const approve = await approveStatus(api.url, user, started.code);
    equal(approve.status, 404);
    const info = await apiRequest(api.url, `/api/devmode/pair/info?code=${started.code}`, {
      cookie: user.cookie,
    });
    equal(info.status, 404);
    await info.body?.cancel();
  });
});

Deno.test("codes are case-insensitive with optional hyphen and spaces", async () => {
  await withApi(async (api) => {
    const user = await signup(api.url);
    const started = await startPairing(api.url);
    const typed = ` ${started.code.toLowerCase().replace("-", " ")} `;
    const approve = await approveStatus(api.url, user, typed);
    equal(approve.status, 200);
    equal(approve.body.ok, true);
    const again = await approveStatus(api.url, user, started.code.replace("-", ""));
    equal(again.status, 409);
  });
});

Deno.test("two concurrent approvals of one code: exactly one wins", async () => {
  // Each from its own address: at most 5 code attempts of one address are in flight at once.
  let ip = 0;
  await withApi(async (api) => {
    const ada = await signup(api.url);
    const bob = await signup(api.url);
    const started = await startPairing(api.url);
    const results = await Promise.all(
      [ada, bob, ada, bob, ada, bob].map((user) => approveStatus(api.url, user, started.code)),
    );
    equal(results.filter((r) => r.status === 200).length, 1);
    equal(results.filter((r) => r.status === 409).length, 5);
    const winner = results.find((r) => r.status === 200)!;
    const listed = await Promise.all(
      [ada, bob].map((user) =>
        apiJson<{ runnerId: string }[]>(api.url, "/api/devmode/runners", { cookie: user.cookie })
      ),
    );
    assertEquals(listed.flat().map((r) => r.runnerId), [winner.body.runnerId]);
  }, { clientIp: () => `10.2.0.${++ip % 250}` });
});

Deno.test("info and approve need a signed-in user and the app's Origin", async () => {
  await withApi(async (api) => {
    const user = await signup(api.url);
    const started = await startPairing(api.url);
    const info = await apiRequest(api.url, `/api/devmode/pair/info?code=${started.code}`);
    equal(info.status, 401);
    await info.body?.cancel();
    const anonymous = await apiRequest(api.url, "/api/devmode/pair/approve", {
      body: { code: started.code },
    });
    equal(anonymous.status, 401);
    await anonymous.body?.cancel();
    const crossSite = await apiRequest(api.url, "/api/devmode/pair/approve", {
      cookie: user.cookie,
      origin: "https://evil.example",
      body: { code: started.code },
    });
    equal(crossSite.status, 403);
    await crossSite.body?.cancel();
    const badBody = await apiRequest(api.url, "/api/devmode/pair/approve", {
      cookie: user.cookie,
      body: { code: 12345678 },
    });
    equal(badBody.status, 400);
    await badBody.body?.cancel();
  });
});

Deno.test("more than 5 wrong codes per user in 10 minutes: 429 with Retry-After, even for a right code", async () => {
  let ip = 0;
  await withApi(async (api) => {
    const user = await signup(api.url);
    const started = await startPairing(api.url);
    for (let i = 0; i < 5; i++) {
      equal((await approveStatus(api.url, user, `ZZZZ-ZZZ${i}`)).status, 404);
    }
    api.clock.advance(60 * 1000);
    const blocked = await approveStatus(api.url, user, started.code);
    equal(blocked.status, 429);
    equal(blocked.retryAfter, "540");
    const blockedInfo = await apiRequest(api.url, `/api/devmode/pair/info?code=${started.code}`, {
      cookie: user.cookie,
    });
    equal(blockedInfo.status, 429);
    equal(blockedInfo.headers.get("retry-after"), "540");
    await blockedInfo.body?.cancel();
    api.clock.advance(9 * 60 * 1000);
    const renewed = await startPairing(api.url);
    equal((await approveStatus(api.url, user, renewed.code)).status, 200);
  }, { clientIp: () => `10.0.0.${++ip % 250}` });
});

Deno.test("one account's wrong codes do not lock out another account at the same address", async () => {
  await withApi(async (api) => {
    const [eve, ada] = await Promise.all([signup(api.url), signup(api.url)]);
    const started = await startPairing(api.url);
    for (let i = 0; i < 5; i++) {
      const path = i % 2 ? `/api/devmode/pair/info?code=ZZZZ-ZZZ${i}` : "/api/devmode/pair/approve";
      const wrong = await apiRequest(api.url, path, {
        cookie: eve.cookie,
        body: i % 2 ? undefined : { code: `ZZZZ-ZZZ${i}` },
      });
      equal(wrong.status, 404);
      await wrong.body?.cancel();
    }
    equal((await approveStatus(api.url, eve, started.code)).status, 429);
    // This used to be 429 too: the wrong codes were also counted for the address, shared by everyone there.
    const own = await apiRequest(api.url, `/api/devmode/pair/info?code=${started.code}`, {
      cookie: ada.cookie,
    });
    equal(own.status, 200);
    await own.body?.cancel();
    equal((await approveStatus(api.url, ada, started.code)).status, 200);
  });
});

Deno.test("re-pairing a runner keeps its id, issues a new token and revokes the old one", async () => {
  await withApi(async (api) => {
    const user = await signup(api.url);
    const first = await pairRunner(api.url, user.cookie, { name: "desk" });
    const second = await pairRunner(api.url, user.cookie, { runnerId: first.runnerId });
    equal(second.runnerId, first.runnerId);
    ok(second.jti !== first.jti);
    const secret = api.config.relayInternalSecret;
    assertEquals(await verifyStatus(api.url, secret, first.jti), { status: 403, body: { valid: false } });
    equal((await verifyStatus(api.url, secret, second.jti)).status, 200);
    const runners = await apiJson<{ name: string }[]>(api.url, "/api/devmode/runners", {
      cookie: user.cookie,
    });
    assertEquals(runners.map((r) => r.name), ["desk"]);
  });
});

Deno.test("re-pairing someone else's runner is 403; an unknown runner 404", async () => {
  await withApi(async (api) => {
    const ada = await signup(api.url);
    const eve = await signup(api.url);
    const adas = await pairRunner(api.url, ada.cookie);
    const started = await startPairing(api.url);
    equal((await approveStatus(api.url, eve, started.code, adas.runnerId)).status, 403);
    equal((await approveStatus(api.url, eve, started.code, "unknown-runner-1")).status, 404);
    equal((await verifyStatus(api.url, api.config.relayInternalSecret, adas.jti)).status, 200);
  });
});

Deno.test("more than 100 pairing starts per IP in 10 minutes: 429", async () => {
  await withApi(async (api) => {
    for (let i = 0; i < 100; i++) await startPairing(api.url);
    api.clock.advance(60 * 1000);
    const blocked = await apiRequest(api.url, "/api/devmode/pair/start", { body: {} });
    equal(blocked.status, 429);
    equal(blocked.headers.get("retry-after"), "540");
    ok((await blocked.json()).error);
    api.clock.advance(10 * 60 * 1000);
    await startPairing(api.url);
  });
});

Deno.test("concurrent wrong codes cannot slip past the limit; right codes do not use it up", async () => {
  let ip = 0;
  await withApi(async (api) => {
    const user = await signup(api.url);
    // Right codes, one after another, count for nothing.
    for (let i = 0; i < 6; i++) {
      const started = await startPairing(api.url);
      equal((await approveStatus(api.url, user, started.code)).status, 200);
    }
    // 30 guesses at once: every check used to run before any guess was counted, so all 30 got through.
    const statuses = await Promise.all(
      Array.from(
        { length: 30 },
        (_, i) => approveStatus(api.url, user, `ZZZZ-ZZ${String(i).padStart(2, "0")}`).then((r) => r.status),
      ),
    );
    equal(statuses.filter((status) => status === 404).length, 5);
    equal(statuses.filter((status) => status === 429).length, 25);
  }, { clientIp: () => `10.1.0.${++ip % 250}` });
});

Deno.test("concurrent pairing starts cannot slip past the per-IP limit", async () => {
  await withApi(async (api) => {
    const statuses = await Promise.all(Array.from({ length: 130 }, async () => {
      const response = await apiRequest(api.url, "/api/devmode/pair/start", { body: {} });
      await response.body?.cancel();
      return response.status;
    }));
    equal(statuses.filter((status) => status === 201).length, 100);
    equal(statuses.filter((status) => status === 429).length, 30);
  });
});

Deno.test("pair/check without the poll secret cannot tell a live code from an unknown one", async () => {
  await withApi(async (api) => {
    const user = await signup(api.url);
    const pending = await startPairing(api.url);
    const approved = await startPairing(api.url);
    await approvePairing(api.url, user.cookie, approved.code);
    const unknown = await checkPairing(api.url, "ZZZZ-ZZZZ", "A".repeat(43));
    equal(unknown.status, 404);
    for (const live of [pending, approved]) {
      // Otherwise an unlimited, unauthenticated oracle finds live codes to approve with the attacker's account.
      assertEquals(await checkPairing(api.url, live.code, "A".repeat(43)), unknown);
    }
    equal((await checkPairing(api.url, approved.code, approved.pollSecret)).body.status, "approved");
  });
});

Deno.test("pair/info from another site is refused and spends none of the user's attempts", async () => {
  await withApi(async (api) => {
    const user = await signup(api.url);
    for (let i = 0; i < 6; i++) {
      // What a browser sends when another site navigates it here (cookies go along with SameSite=Lax).
      const lured = await apiRequest(api.url, `/api/devmode/pair/info?code=ZZZZ-ZZZ${i}`, {
        cookie: user.cookie,
        headers: { "sec-fetch-site": i % 2 ? "cross-site" : "same-site" },
      });
      equal(lured.status, 403);
      await lured.body?.cancel();
    }
    const started = await startPairing(api.url);
    for (const site of ["same-origin", "none"]) {
      const own = await apiRequest(api.url, `/api/devmode/pair/info?code=${started.code}`, {
        cookie: user.cookie,
        headers: { "sec-fetch-site": site },
      });
      equal(own.status, 200);
      await own.body?.cancel();
    }
    equal((await approveStatus(api.url, user, started.code)).status, 200);
  });
});

Deno.test("pair/start drops bidi and control characters from labels before the approve page and the list see them", async () => {
  await withApi(async (api) => {
    const user = await signup(api.url);
    // U+202E makes "xunil" read as "linux"; U+2066 isolates, U+200B hides, BEL and ESC reach terminals.
    const started = await startPairing(api.url, {
      name: "\u202Eevil\u2066 laptop\u200B\n",
      hostname: "host\u0007\u001b[2Jname",
      os: "\u202Exunil",
    });
    const info = await apiJson<Record<string, unknown>>(
      api.url,
      `/api/devmode/pair/info?code=${started.code}`,
      {
        cookie: user.cookie,
      },
    );
    assertEquals([info.name, info.hostname, info.os], ["evil laptop", "host[2Jname", "xunil"]);
    await approvePairing(api.url, user.cookie, started.code);
    const [runner] = await apiJson<Record<string, unknown>[]>(api.url, "/api/devmode/runners", {
      cookie: user.cookie,
    });
    assertEquals([runner.name, runner.hostname, runner.os], ["evil laptop", "host[2Jname", "xunil"]);
    // The cap counts what is kept: padding with invisible characters neither passes nor is needed.
    const padded = await apiRequest(api.url, "/api/devmode/pair/start", {
      body: { name: "\u202E".repeat(300) + "ok" },
    });
    equal(padded.status, 201);
    await padded.body?.cancel();
    const long = await apiRequest(api.url, "/api/devmode/pair/start", {
      body: { os: "\u202E" + "x".repeat(256) },
    });
    equal(long.status, 400);
    await long.body?.cancel();
  });
});

Deno.test("pair/unpair: a runner revokes its own pairing with its token, and only its own", async () => {
  await withApi(async (api) => {
    const mallory = await signup(api.url);
    const phished = await pairRunner(api.url, mallory.cookie);
    const other = await pairRunner(api.url, mallory.cookie);
    const unpair = (token?: string) =>
      apiRequest(api.url, "/api/devmode/pair/unpair", {
        method: "POST",
        origin: null,
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
    const anonymous = await unpair();
    equal(anonymous.status, 401);
    await anonymous.body?.cancel();
    const done = await unpair(phished.runnerToken);
    equal(done.status, 200);
    assertEquals(await done.json(), { ok: true, runnerId: phished.runnerId });
    const verified = await verifyStatus(api.url, api.config.relayInternalSecret, phished.jti);
    equal(verified.body.valid, false);
    const again = await unpair(phished.runnerToken);
    equal(again.status, 401, "a revoked token cannot act again");
    await again.body?.cancel();
    const runners = await apiJson<{ runnerId: string }[]>(api.url, "/api/devmode/runners", {
      cookie: mallory.cookie,
    });
    assertEquals(runners.map((r) => r.runnerId), [other.runnerId]);
  });
});

Deno.test("pair/info says whether the runner asked from the approving browser's address", async () => {
  let address = "203.0.113.9";
  await withApi(async (api) => {
    const user = await signup(api.url);
    // A phishing link: Mallory started the pairing on her machine, Ada opens it from home.
    const started = await startPairing(api.url, { hostname: "mallory-box" });
    address = "198.51.100.7";
    const info = await apiJson<Record<string, unknown>>(
      api.url,
      `/api/devmode/pair/info?code=${started.code}`,
      {
        cookie: user.cookie,
      },
    );
    assertEquals([info.ip, info.sameAddress], ["203.0.113.9", false]);
    const own = await startPairing(api.url, { hostname: "ada-pc" });
    const ownInfo = await apiJson<Record<string, unknown>>(
      api.url,
      `/api/devmode/pair/info?code=${own.code}`,
      {
        cookie: user.cookie,
      },
    );
    assertEquals([ownInfo.ip, ownInfo.sameAddress], ["198.51.100.7", true]);
  }, { clientIp: () => address });
});

Deno.test("pair/deny: Cancel on the approve page makes the runner's next poll answer denied, for good", async () => {
  await withApi(async (api) => {
    const user = await signup(api.url);
    const other = await signup(api.url);
    const started = await startPairing(api.url, { hostname: "phished-box" });
    equal((await checkPairing(api.url, started.code, started.pollSecret)).body.status, "pending");
    const deny = (who: TestUser, origin?: string | null) =>
      apiRequest(api.url, "/api/devmode/pair/deny", {
        cookie: who.cookie,
        origin,
        body: { code: started.code },
      });
    const anonymous = await apiRequest(api.url, "/api/devmode/pair/deny", { body: { code: started.code } });
    equal(anonymous.status, 401);
    await anonymous.body?.cancel();
    const crossSite = await deny(user, "https://evil.example");
    equal(crossSite.status, 403);
    await crossSite.body?.cancel();
    const noOrigin = await deny(user, null);
    equal(noOrigin.status, 403);
    await noOrigin.body?.cancel();
    api.clock.advance(5000);
    equal((await checkPairing(api.url, started.code, started.pollSecret)).body.status, "pending");

    const denied = await deny(user);
    equal(denied.status, 200);
    assertEquals(await denied.json(), { ok: true });
    api.clock.advance(5000);
    assertEquals(await checkPairing(api.url, started.code, started.pollSecret), {
      status: 200,
      body: { status: "denied" },
    });
    // A denied code can be approved by nobody, not even another account that got the link.
    equal((await approveStatus(api.url, other, started.code)).status, 409);
    api.clock.advance(5000);
    equal((await checkPairing(api.url, started.code, started.pollSecret)).body.status, "denied");
    const unknown = await apiRequest(api.url, "/api/devmode/pair/deny", {
      cookie: user.cookie,
      body: { code: "ZZZZ-ZZZZ" },
    });
    equal(unknown.status, 404);
    await unknown.body?.cancel();
  });
});
