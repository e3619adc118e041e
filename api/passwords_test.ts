import { equal, match } from "node:assert/strict";
import { hashPassword, PBKDF2_ITERATIONS, verifyPassword } from "./passwords.ts";

Deno.test("hashPassword: salted PBKDF2-SHA256 with at least 600,000 iterations", async () => {
  const a = await hashPassword("correct horse battery");
  const b = await hashPassword("correct horse battery");
  match(a, /^pbkdf2-sha256\$600000\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
  equal(PBKDF2_ITERATIONS >= 600_000, true);
  equal(a === b, false, "a fresh salt every time");
  equal(await verifyPassword("correct horse battery", a), true);
  equal(await verifyPassword("correct horse batterY", a), false);
});

Deno.test("verifyPassword: malformed hashes never verify", async () => {
  for (const stored of ["", "plain", "pbkdf2-sha256$x$y$z", "md5$1$AA$AA", "pbkdf2-sha256$1$!!$AA"]) {
    equal(await verifyPassword("anything", stored), false, stored);
  }
});
