import { deepStrictEqual as assertEquals, equal, ok } from "node:assert/strict";
import {
  addressSubject,
  type AttemptLimit,
  type Backoff,
  clearBackoff,
  isRefusal,
  refundAttempt,
  takeAttempt,
  takeBackoffAttempt,
} from "./rate_limit.ts";

Deno.test("addressSubject: IPv4 as is, IPv6 by its /64, IPv4-mapped IPv6 as IPv4", () => {
  equal(addressSubject("198.51.100.7"), "198.51.100.7");
  equal(addressSubject("2001:db8:1:2::1"), "2001:db8:1:2::/64");
  equal(addressSubject("2001:DB8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::/64");
  equal(addressSubject("[2001:0db8:0001:0002::ffff]"), "2001:db8:1:2::/64");
  equal(addressSubject("2001:db8::1"), "2001:db8:0:0::/64");
  equal(addressSubject("fe80::1%eth0"), "fe80:0:0:0::/64");
  equal(addressSubject("::1"), "0:0:0:0::/64");
  equal(addressSubject("::ffff:198.51.100.7"), "198.51.100.7");
  equal(addressSubject("0:0:0:0:0:ffff:c633:6407"), "198.51.100.7");
  equal(addressSubject("2001:db8:1:2::198.51.100.7"), "2001:db8:1:2::/64");
  equal(addressSubject("unknown"), "unknown");
  equal(addressSubject("1::2::3"), "1::2::3");
});

Deno.test("refundAttempt gives back only within the window the attempt was taken in", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const limit: AttemptLimit = { scope: "test", max: 1, windowMs: 1000 };
    const old = await takeAttempt(kv, limit, "subject", 0);
    if (isRefusal(old)) throw new Error("the first attempt is refused");
    assertEquals(await takeAttempt(kv, limit, "subject", 500), { retryAfterMs: 500 });
    // The window passed while the first attempt was being checked; a failure counts in the new one.
    ok(!isRefusal(await takeAttempt(kv, limit, "subject", 1500)));
    await refundAttempt(kv, old, 1600);
    assertEquals(
      await takeAttempt(kv, limit, "subject", 1700),
      { retryAfterMs: 800 },
      "the new window's failure still counts",
    );
    const fresh = await takeAttempt(kv, limit, "other", 1700);
    if (isRefusal(fresh)) throw new Error("a fresh subject is refused");
    await refundAttempt(kv, fresh, 1800);
    ok(
      !isRefusal(await takeAttempt(kv, limit, "other", 1900)),
      "a refund in the same window frees the attempt",
    );
  } finally {
    kv.close();
  }
});

Deno.test("takeBackoffAttempt: free failures, then a wait doubling up to the cap; forgotten or cleared", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const backoff: Backoff = {
      scope: "test",
      failuresBeforeDelay: 2,
      firstDelayMs: 1000,
      maxDelayMs: 3000,
      forgetMs: 60_000,
    };
    equal(await takeBackoffAttempt(kv, backoff, "a", 0), null);
    equal(await takeBackoffAttempt(kv, backoff, "a", 0), null);
    assertEquals(await takeBackoffAttempt(kv, backoff, "a", 0), { retryAfterMs: 1000 });
    assertEquals(await takeBackoffAttempt(kv, backoff, "a", 400), { retryAfterMs: 600 });
    equal(await takeBackoffAttempt(kv, backoff, "b", 400), null, "other subjects are not affected");
    equal(await takeBackoffAttempt(kv, backoff, "a", 1000), null);
    assertEquals(await takeBackoffAttempt(kv, backoff, "a", 1000), { retryAfterMs: 2000 });
    equal(await takeBackoffAttempt(kv, backoff, "a", 3000), null);
    assertEquals(await takeBackoffAttempt(kv, backoff, "a", 3000), { retryAfterMs: 3000 }, "capped");
    equal(await takeBackoffAttempt(kv, backoff, "a", 70_000), null, "forgotten a minute after the last");
    equal(await takeBackoffAttempt(kv, backoff, "a", 70_000), null);
    ok(await takeBackoffAttempt(kv, backoff, "a", 70_000));
    await clearBackoff(kv, backoff, "a");
    equal(await takeBackoffAttempt(kv, backoff, "a", 70_000), null, "cleared");
  } finally {
    kv.close();
  }
});
