import { deepEqual as assertEquals, ok as assert, rejects as assertRejects } from "node:assert/strict";
import { join } from "node:path";
import {
  BrokenBinaryError,
  compileArgs,
  compileRunner,
  outputPath,
  RUNNER_PERMISSIONS,
  verifyBinary,
} from "./compile.ts";
import { VERSION } from "./version.ts";

Deno.test("compile: exact permissions, never -A, and node-pty's binary for the target", () => {
  const args = compileArgs("aarch64-apple-darwin", "1.1.0", "/tmp/out");
  assert(!args.includes("-A") && !args.includes("--allow-all"));
  for (const permission of RUNNER_PERMISSIONS) assert(args.includes(permission));
  assert(args.includes("npm:@lydell/node-pty-darwin-arm64@1.1.0"));
  assert(args.includes("--self-extracting"), "node-pty's helpers need real paths");
  assertEquals(args.slice(args.indexOf("--target"), args.indexOf("--target") + 2), [
    "--target",
    "aarch64-apple-darwin",
  ]);
  assert(outputPath("x86_64-pc-windows-msvc", "/d").endsWith("coda-runner-x86_64-pc-windows-msvc.exe"));
});

Deno.test({
  name: "compile: the binary builds, prints its version and passes selfcheck (needs DENORT_BIN)",
  ignore: !Deno.env.get("DENORT_BIN"),
  async fn() {
    const outDir = await Deno.makeTempDir({ prefix: "coda-compile-" });
    try {
      const binary = await compileRunner("x86_64-unknown-linux-gnu", outDir);
      await verifyBinary(binary);
    } finally {
      await Deno.remove(outDir, { recursive: true });
    }
  },
});

/** An executable script standing in for a built binary: `--version` prints `version`, `selfcheck` exits `check`. */
async function fakeBinary(
  dir: string,
  version: string,
  check: { code: number; output: string },
): Promise<string> {
  const path = join(dir, "coda-runner-fake");
  await Deno.writeTextFile(
    path,
    `#!/bin/sh\nif [ "$1" = --version ]; then echo "${version}"; exit 0; fi\n` +
      `if [ "$1" = selfcheck ]; then echo "${check.output}"; exit ${check.code}; fi\nexit 2\n`,
  );
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test({
  name: "compile: a binary that answers --version as deno, or fails selfcheck, fails the build",
  ignore: Deno.build.os === "windows",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "coda-verify-" });
    try {
      // What the full deno CLI given as DENORT_BIN builds: it ignores the embedded program.
      const deno = await fakeBinary(dir, "deno 2.9.5", { code: 0, output: "" });
      await assertRejects(() => verifyBinary(deno), (error: Error) => {
        assert(error instanceof BrokenBinaryError);
        assert(error.message.includes('answered "deno 2.9.5"'), error.message);
        return true;
      });
      const noPty = await fakeBinary(dir, `coda-runner ${VERSION}`, {
        code: 1,
        output: "FAIL pty: posix_spawnp failed",
      });
      await assertRejects(() => verifyBinary(noPty), (error: Error) => {
        assert(error instanceof BrokenBinaryError && error.message.includes("FAIL pty: posix_spawnp failed"));
        return true;
      });
      const good = await fakeBinary(dir, `coda-runner ${VERSION}`, { code: 0, output: "ok   pty: fine" });
      await verifyBinary(good);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
