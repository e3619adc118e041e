import { equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { verifyRunnerToken } from "@coda/relay/tokens";
import { loadAppConfig } from "./config.ts";
import { verifyRunnerJti } from "./runners.ts";
import { createUser } from "./users.ts";

const SCRIPT = join(import.meta.dirname!, "mint_runner_token.ts");

async function run(dataDir: string, args: string[]) {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-env", "--allow-read", "--allow-write", SCRIPT, ...args],
    cwd: join(import.meta.dirname!, ".."),
    env: { DEVMODE_DATA_DIR: dataDir, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: output.code, stdout: decoder.decode(output.stdout), stderr: decoder.decode(output.stderr) };
}

async function withDataDir(fn: (dataDir: string) => Promise<void>): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "coda-mint-test-" });
  try {
    await fn(dataDir);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
}

Deno.test("mint-runner-token registers a runner and prints a working token", async () => {
  await withDataDir(async (dataDir) => {
    const config = loadAppConfig({ DEVMODE_DATA_DIR: dataDir });
    let kv = await Deno.openKv(config.kvUrl);
    const user = await createUser(kv, {
      email: "ada@example.test",
      password: "long enough pw",
      now: Date.now(),
      signupClosed: false,
    });
    kv.close();
    ok(typeof user === "object");

    const result = await run(dataDir, ["--email", "ADA@example.test", "--name", "build box"]);
    equal(result.code, 0, result.stderr);
    match(result.stderr, /Registered runner "build box"/);
    const token = result.stdout.trim();
    const { claims } = await verifyRunnerToken(config.jwtSecret, token);
    equal(claims.userId, user.id);

    kv = await Deno.openKv(config.kvUrl);
    try {
      const identity = await verifyRunnerJti(kv, claims.jti);
      equal(identity?.runnerId, claims.runnerId);
      equal((await kv.get<{ name: string }>(["runners", claims.runnerId])).value?.name, "build box");
    } finally {
      kv.close();
    }
  });
});

Deno.test("mint-runner-token: unknown email and bad arguments exit 1 with one clear line", async () => {
  await withDataDir(async (dataDir) => {
    const unknown = await run(dataDir, ["--email", "nobody@example.test"]);
    equal(unknown.code, 1);
    equal(unknown.stdout, "");
    match(unknown.stderr, /no account with email nobody@example\.test/);
    const missing = await run(dataDir, []);
    equal(missing.code, 1);
    match(missing.stderr, /--email is required/);
    const extra = await run(dataDir, ["--email", "a@b.test", "--bogus"]);
    equal(extra.code, 1);
    match(extra.stderr, /usage:/);
  });
});
