import { equal, ok } from "node:assert/strict";
import { addressSubject, type AttemptLimit, refundAttempt, takeAttempt } from "./rate_limit.ts";

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
    ok(old);
    equal(await takeAttempt(kv, limit, "subject", 500), null);
    // The window passed while the first attempt was being checked; a failure counts in the new one.
    ok(await takeAttempt(kv, limit, "subject", 1500));
    await refundAttempt(kv, old, 1600);
    equal(await takeAttempt(kv, limit, "subject", 1700), null, "the new window's failure still counts");
    const fresh = await takeAttempt(kv, limit, "other", 1700);
    ok(fresh);
    await refundAttempt(kv, fresh, 1800);
    ok(await takeAttempt(kv, limit, "other", 1900), "a refund in the same window frees the attempt");
  } finally {
    kv.close();
  }
});
