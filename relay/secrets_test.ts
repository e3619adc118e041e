import { equal } from "node:assert/strict";
import { secretsEqual } from "./secrets.ts";

Deno.test("secretsEqual: equal only for the same string, whatever the lengths", () => {
  equal(secretsEqual("a-secret-value", "a-secret-value"), true);
  equal(secretsEqual("a-secret-value", "a-secret-valuf"), false);
  equal(secretsEqual("", "a-secret-value"), false);
  equal(secretsEqual("a-secret-value-and-more", "a-secret-value"), false);
});
