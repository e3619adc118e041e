import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { compileArgs, compileRunner, outputPath, RUNNER_PERMISSIONS } from "./compile.ts";
import { VERSION } from "./version.ts";

Deno.test("compile: exact permissions, never -A, and node-pty's binary for the target", () => {
  const args = compileArgs("aarch64-apple-darwin", "1.1.0", "/tmp/out");
  assert(!args.includes("-A") && !args.includes("--allow-all"));
  for (const permission of RUNNER_PERMISSIONS) assert(args.includes(permission));
  assert(args.includes("npm:@lydell/node-pty-darwin-arm64@1.1.0"));
  assertEquals(args.slice(args.indexOf("--target"), args.indexOf("--target") + 2), [
    "--target",
    "aarch64-apple-darwin",
  ]);
  assert(outputPath("x86_64-pc-windows-msvc", "/d").endsWith("coda-runner-x86_64-pc-windows-msvc.exe"));
});

Deno.test({
  name: "compile: the binary builds and prints its version (needs DENORT_BIN)",
  ignore: !Deno.env.get("DENORT_BIN"),
  async fn() {
    const outDir = await Deno.makeTempDir({ prefix: "coda-compile-" });
    try {
      const binary = await compileRunner("x86_64-unknown-linux-gnu", outDir);
      const result = await new Deno.Command(binary, { args: ["--version"], stdout: "piped" }).output();
      assert(result.success);
      assertEquals(new TextDecoder().decode(result.stdout).trim(), `coda-runner ${VERSION}`);
    } finally {
      await Deno.remove(outDir, { recursive: true });
    }
  },
});
