import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { signup, startTestApp } from "./testing.ts";

const mode = (path: string) => Deno.statSync(path).mode! & 0o777;

Deno.test("the KV file and its -wal/-shm are created 0600; a loose data directory is tightened with a notice", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "coda-perm-" });
  try {
    Deno.chmodSync(dataDir, 0o755);
    // A KV file left by an earlier version, created with the default umask.
    const kvPath = join(dataDir, "devmode.kv");
    const old = await Deno.openKv(kvPath);
    await old.set(["left", "over"], 1);
    old.close();
    Deno.chmodSync(kvPath, 0o644);
    assertEquals(mode(kvPath), 0o644);

    const app = await startTestApp({ env: { DEVMODE_DATA_DIR: dataDir } });
    try {
      await signup(app.url);
      assertEquals(mode(dataDir), 0o700);
      for (const path of [kvPath, `${kvPath}-wal`, `${kvPath}-shm`]) {
        assertEquals([path, mode(path)], [path, 0o600]);
      }
      assert(
        app.config.notices.includes(`${dataDir} was readable by others; it is now 0700`),
        app.config.notices.join(),
      );
      assert(
        app.config.notices.includes(`${kvPath} was readable by others; it is now 0600`),
        app.config.notices.join(),
      );
    } finally {
      await app.close();
    }

    const fresh = await Deno.makeTempDir({ prefix: "coda-perm-" });
    const second = await startTestApp({ env: { DEVMODE_DATA_DIR: fresh } });
    try {
      await signup(second.url);
      const freshKv = join(fresh, "devmode.kv");
      for (const path of [freshKv, `${freshKv}-wal`, `${freshKv}-shm`]) {
        assertEquals([path, mode(path)], [path, 0o600]);
      }
      assertEquals(second.config.notices, []);
    } finally {
      await second.close();
      await Deno.remove(fresh, { recursive: true });
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
