/// <reference lib="deno.ns" />
/// <reference lib="deno.unstable" />
import { deepEqual as assertEquals, match as assertMatch, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { buildSpa, type SpaManifest } from "./build.ts";

/** The budget from the issue: JavaScript the terminal page loads, gzip-compressed. */
const JS_BUDGET_GZIP_BYTES = 200 * 1024;

async function gzipSize(bytes: Uint8Array): Promise<number> {
  const stream = new Blob([bytes as BlobPart]).stream().pipeThrough(new CompressionStream("gzip"));
  return (await new Response(stream).arrayBuffer()).byteLength;
}

Deno.test("buildSpa builds hashed, minified files, an index.html and a manifest within the JS budget", async () => {
  const outDir = await Deno.makeTempDir({ prefix: "spa-build-" });
  const distDir = join(outDir, "dist");
  try {
    await buildSpa({ outDir: distDir });
    const manifest: SpaManifest = JSON.parse(await Deno.readTextFile(join(distDir, "manifest.json")));
    assertMatch(manifest.entry, /^entry-[A-Z0-9]{8}\.js$/);
    assertEquals(manifest.css.length, 1);
    assertMatch(manifest.css[0], /^styles-[A-Z0-9]{8}\.css$/);
    for (const file of manifest.files) assertMatch(file, /-[A-Z0-9]{8}\.(js|css)$/);

    const onDisk = [];
    for await (const entry of Deno.readDir(distDir)) onDisk.push(entry.name);
    assertEquals(onDisk.sort(), [...manifest.files, "index.html", "manifest.json"].sort());

    const html = await Deno.readTextFile(join(distDir, "index.html"));
    assert(html.includes(`<script type="module" src="/${manifest.entry}"></script>`));
    assert(html.includes(`<link rel="stylesheet" href="/${manifest.css[0]}">`));
    assert(!/<script>(?!<)/.test(html) && !html.includes("<style"), "no inline script or style (CSP)");

    const entry = await Deno.readTextFile(join(distDir, manifest.entry));
    assert(!entry.includes("\n  "), "minified");
    const css = await Deno.readTextFile(join(distDir, manifest.css[0]));
    assert(css.includes(".xterm"), "xterm's stylesheet is bundled");

    // Every JS file of the build is an upper bound of what the terminal page loads.
    let total = 0;
    for (const file of manifest.files.filter((f) => f.endsWith(".js"))) {
      total += await gzipSize(await Deno.readFile(join(distDir, file)));
    }
    assert(total <= JS_BUDGET_GZIP_BYTES, `JS is ${total} bytes gzip, budget ${JS_BUDGET_GZIP_BYTES}`);
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
});

Deno.test("a rebuild replaces the previous output", async () => {
  const outDir = await Deno.makeTempDir({ prefix: "spa-build-" });
  try {
    await Deno.writeTextFile(join(outDir, "stale-OLDHASH1.js"), "old");
    await buildSpa({ outDir, minify: false });
    const names = [];
    for await (const entry of Deno.readDir(outDir)) names.push(entry.name);
    assert(!names.includes("stale-OLDHASH1.js"));
    assert(names.includes("index.html"));
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
});
