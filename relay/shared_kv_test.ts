import { deepEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { isKvBusy, openSharedKv, retryKvBusy } from "./shared_kv.ts";

Deno.test("kv busy: a locked write is retried until it succeeds; other errors pass at once", async () => {
  let calls = 0;
  const value = await retryKvBusy(() => {
    calls++;
    if (calls < 3) return Promise.reject(new TypeError("database is locked"));
    return Promise.resolve("written");
  });
  assertEquals([value, calls], ["written", 3]);
  let other = 0;
  await rejects(
    retryKvBusy(() => {
      other++;
      return Promise.reject(new RangeError("value too large"));
    }),
    RangeError,
  );
  assertEquals(other, 1);
  await rejects(retryKvBusy(() => Promise.reject(new TypeError("database is locked"))), isKvBusy);
  assert(!isKvBusy("database is locked"), "only errors count");
});

Deno.test("kv busy: writes from two processes to one KV file opened with openSharedKv all land", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/shared.kv`;
  const module = JSON.stringify(new URL("./shared_kv.ts", import.meta.url).href);
  const writer = `
    const { openSharedKv } = await import(${module});
    const kv = await openSharedKv(${JSON.stringify(path)});
    for (let i = 0; i < 300; i++) {
      await kv.atomic().sum(["count"], 1n).set(["by", Deno.args[0], i], i).commit();
      await kv.set(["last", Deno.args[0]], i);
    }
    kv.close();
  `;
  try {
    const run = (name: string) =>
      new Deno.Command(Deno.execPath(), {
        args: ["eval", "--unstable-kv", writer, name],
        stdout: "null",
        stderr: "piped",
      }).output();
    const results = await Promise.all([run("a"), run("b")]);
    for (const result of results) assert(result.success, new TextDecoder().decode(result.stderr));
    const kv = await openSharedKv(path);
    assertEquals((await kv.get<Deno.KvU64>(["count"])).value?.value, 600n);
    assertEquals((await kv.getMany([["last", "a"], ["last", "b"]])).map((entry) => entry.value), [299, 299]);
    kv.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
