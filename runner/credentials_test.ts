import { deepEqual as assertEquals, rejects } from "node:assert/strict";
import { dirname, join } from "node:path";
import { CorruptConfigError, readRunnerFile, RunnerFileStore } from "./credentials.ts";

const CREDENTIALS = {
  relayUrl: "wss://relay.example",
  runnerId: "runner-123456",
  runnerToken: "a.b.c",
  appUrl: "https://app.example",
  email: "a@example.test",
};

Deno.test("credentials are written atomically, 0600 in a 0700 directory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = new RunnerFileStore(join(dir, "nested", "config.json"));
    assertEquals(await store.read(), { version: 1, cwds: {} });
    await store.saveCredentials(CREDENTIALS);
    await store.rememberCwd("idea-1", "/tmp");
    assertEquals(await store.read(), { version: 1, credentials: CREDENTIALS, cwds: { "idea-1": "/tmp" } });
    assertEquals((await Deno.stat(store.path)).mode! & 0o777, 0o600);
    assertEquals((await Deno.stat(dirname(store.path))).mode! & 0o777, 0o700);
    const leftovers = [...Deno.readDirSync(dirname(store.path))].map((e) => e.name);
    assertEquals(leftovers, ["config.json"], "no temporary files left behind");
    await store.clearCredentials();
    assertEquals(await store.read(), { version: 1, cwds: { "idea-1": "/tmp" } });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("concurrent updates do not overwrite each other", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = new RunnerFileStore(join(dir, "config.json"));
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.rememberCwd(`idea-${i}`, `/d${i}`)));
    assertEquals(Object.keys((await store.read()).cwds).length, 20);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a corrupt file is a clear error pointing to pair, and pairing replaces it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "config.json");
    await Deno.writeTextFile(path, "{ broken");
    await rejects(readRunnerFile(path), (error: Error) => {
      assertEquals(error instanceof CorruptConfigError, true);
      assertEquals(error.message.includes("coda-runner pair"), true);
      return true;
    });
    await Deno.writeTextFile(path, JSON.stringify({ version: 1, credentials: { relayUrl: "http://x" } }));
    await rejects(readRunnerFile(path), CorruptConfigError);
    const store = new RunnerFileStore(path);
    await rejects(store.rememberCwd("i", "/tmp"), CorruptConfigError);
    await store.saveCredentials(CREDENTIALS);
    assertEquals((await store.read()).credentials, CREDENTIALS);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
