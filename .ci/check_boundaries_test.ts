import { deepEqual as assertEquals } from "node:assert/strict";
import { join } from "node:path";
import { findBoundaryViolations, importSpecifiers } from "./check_boundaries.ts";

function writeTree(root: string, files: Record<string, string>): void {
  for (const [path, text] of Object.entries(files)) {
    Deno.mkdirSync(join(root, path, ".."), { recursive: true });
    Deno.writeTextFileSync(join(root, path), text);
  }
}

Deno.test("importSpecifiers finds static, type-only, multi-line, side-effect, re-export and dynamic imports", () => {
  const source = [
    `import { a } from "./a.ts";`,
    `import type { B } from '../b.ts';`,
    `import {\n  c,\n  d,\n} from "./c.ts";`,
    `import "./side.ts";`,
    `export { e } from "./e.ts";`,
    `export * from "./f.ts";`,
    `const g = await import("./g.ts");`,
  ].join("\n");
  assertEquals(importSpecifiers(source).sort(), [
    "../b.ts",
    "./a.ts",
    "./c.ts",
    "./e.ts",
    "./f.ts",
    "./g.ts",
    "./side.ts",
  ]);
});

Deno.test("a relative import into another member's files is a violation; package names and own files are not", () => {
  const root = Deno.makeTempDirSync();
  try {
    writeTree(root, {
      "deno.json": JSON.stringify({ workspace: ["./one", "./two"] }),
      "one/deno.json": JSON.stringify({ name: "@x/one", exports: { ".": "./mod.ts" } }),
      "one/mod.ts": `export { inner } from "./inner.ts";\n`,
      "one/inner.ts": `export const inner = 1;\n`,
      "two/deno.json": JSON.stringify({ name: "@x/two", exports: { ".": "./mod.ts" } }),
      "two/mod.ts": `import { inner } from "../one/inner.ts";\nimport { inner as ok } from "@x/one";\n`,
      "tools/bench.ts": `import "../two/mod.ts";\nimport "./local.ts";\n`,
      "tools/local.ts": ``,
      "node_modules/pkg/index.ts": `import "../../one/inner.ts";\n`,
    });
    assertEquals(findBoundaryViolations(root).sort((a, b) => a.file.localeCompare(b.file)), [
      { file: "tools/bench.ts", specifier: "../two/mod.ts", member: "two", packageName: "@x/two" },
      { file: join("two", "mod.ts"), specifier: "../one/inner.ts", member: "one", packageName: "@x/one" },
    ]);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
