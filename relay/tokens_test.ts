import { deepEqual as assertEquals, rejects } from "node:assert/strict";
import { SignJWT, UnsecuredJWT } from "jose";
import {
  peekExpiry,
  signClientToken,
  signRunnerToken,
  TOKEN_AUDIENCE,
  TOKEN_ISSUER,
  TokenError,
  verifyClientToken,
  verifyRunnerToken,
} from "./tokens.ts";

const secret = new TextEncoder().encode("k".repeat(32));
const otherSecret = new TextEncoder().encode("x".repeat(32));
const runner = { runnerId: "runner-0001", userId: "user-1", jti: "pair-1" };
const client = { userId: "user-1", sessionId: "session-0001", jti: "client-1" };

async function failure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof TokenError) return error.reason;
    throw error;
  }
  throw new Error("expected a TokenError");
}

Deno.test("runner token round-trips its claims and expiry", async () => {
  const now = new Date("2026-01-01T00:00:00Z");
  const token = await signRunnerToken(secret, runner, { now, ttlSeconds: 3600 });
  const { claims, exp } = await verifyRunnerToken(secret, token, { now });
  assertEquals(claims, { type: "runner", ...runner });
  assertEquals(exp, now.getTime() / 1000 + 3600);
  assertEquals(peekExpiry(token)?.getTime(), now.getTime() + 3600_000);
});

Deno.test("client token round-trips and lives 60 seconds, with 60 seconds of skew", async () => {
  const now = new Date("2026-01-01T00:00:00Z");
  const token = await signClientToken(secret, { ...client, ideaId: "idea" }, { now });
  assertEquals((await verifyClientToken(secret, token, { now })).claims.ideaId, "idea");
  const later = (s: number) => ({ now: new Date(now.getTime() + s * 1000) });
  assertEquals((await verifyClientToken(secret, token, later(119))).claims.sessionId, client.sessionId);
  assertEquals(await failure(verifyClientToken(secret, token, later(121))), "expired");
});

Deno.test("a token of one type is refused where the other is expected", async () => {
  const runnerToken = await signRunnerToken(secret, runner);
  const clientToken = await signClientToken(secret, client);
  assertEquals(await failure(verifyClientToken(secret, runnerToken)), "wrong-type");
  assertEquals(await failure(verifyRunnerToken(secret, clientToken)), "wrong-type");
});

Deno.test("wrong key, alg none, other algorithms, issuers and audiences are refused", async () => {
  assertEquals(
    await failure(verifyRunnerToken(secret, await signRunnerToken(otherSecret, runner))),
    "invalid",
  );
  const unsecured = new UnsecuredJWT({ type: "runner", ...runner })
    .setIssuer(TOKEN_ISSUER).setAudience(TOKEN_AUDIENCE).setIssuedAt().setExpirationTime("1h").encode();
  assertEquals(await failure(verifyRunnerToken(secret, unsecured)), "invalid");
  const hs512 = await new SignJWT({ type: "runner", runnerId: runner.runnerId, userId: runner.userId })
    .setProtectedHeader({ alg: "HS512" }).setJti("j").setIssuer(TOKEN_ISSUER).setAudience(TOKEN_AUDIENCE)
    .setIssuedAt().setExpirationTime("1h").sign(new TextEncoder().encode("k".repeat(64)));
  assertEquals(await failure(verifyRunnerToken(secret, hs512)), "invalid");
  for (const [iss, aud] of [["someone-else", TOKEN_AUDIENCE], [TOKEN_ISSUER, "someone-else"]]) {
    const token = await new SignJWT({ type: "runner", runnerId: runner.runnerId, userId: runner.userId })
      .setProtectedHeader({ alg: "HS256" }).setJti("j").setIssuer(iss).setAudience(aud)
      .setIssuedAt().setExpirationTime("1h").sign(secret);
    assertEquals(await failure(verifyRunnerToken(secret, token)), "invalid");
  }
});

Deno.test("tokens without a jti or with malformed claims are refused", async () => {
  const noJti = await new SignJWT({ type: "runner", runnerId: runner.runnerId, userId: runner.userId })
    .setProtectedHeader({ alg: "HS256" }).setIssuer(TOKEN_ISSUER).setAudience(TOKEN_AUDIENCE)
    .setIssuedAt().setExpirationTime("1h").sign(secret);
  assertEquals(await failure(verifyRunnerToken(secret, noJti)), "invalid");
  const badRunnerId = await new SignJWT({ type: "runner", runnerId: "../x", userId: runner.userId })
    .setProtectedHeader({ alg: "HS256" }).setJti("j").setIssuer(TOKEN_ISSUER).setAudience(TOKEN_AUDIENCE)
    .setIssuedAt().setExpirationTime("1h").sign(secret);
  assertEquals(await failure(verifyRunnerToken(secret, badRunnerId)), "invalid");
  assertEquals(await failure(verifyRunnerToken(secret, "not.a.token")), "invalid");
  assertEquals(peekExpiry("garbage"), null);
});

Deno.test("an expired runner token is reported as expired", async () => {
  const now = new Date("2026-01-01T00:00:00Z");
  const token = await signRunnerToken(secret, runner, { now, ttlSeconds: 60 });
  await rejects(verifyRunnerToken(secret, token, { now: new Date(now.getTime() + 200_000) }), TokenError);
});

Deno.test("client tokens living past their TTL and tokens issued in the future are refused", async () => {
  const mint = (type: string, claims: object, iat: number, exp: number) =>
    new SignJWT({ type, ...claims }).setProtectedHeader({ alg: "HS256" }).setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE).setIssuedAt(iat).setExpirationTime(exp).sign(secret);
  const now = Math.floor(Date.now() / 1000);
  const yearLong = await mint("client", client, now, now + 365 * 24 * 3600);
  assertEquals(await failure(verifyClientToken(secret, yearLong)), "invalid");
  const future = await mint("client", client, now + 3600, now + 3630);
  assertEquals(await failure(verifyClientToken(secret, future)), "invalid");
  const futureRunner = await mint("runner", runner, now + 3600, now + 7200);
  assertEquals(await failure(verifyRunnerToken(secret, futureRunner)), "invalid");
  const withinSkew = await mint("client", client, now + 30, now + 90);
  assertEquals((await verifyClientToken(secret, withinSkew)).claims.sessionId, client.sessionId);
});
