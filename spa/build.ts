/// <reference lib="deno.ns" />
/// <reference lib="deno.unstable" />
/**
 * Builds the browser app with esbuild: `spa/src/main.tsx` (and the CSS it
 * imports) into hashed, minified files, an `index.html` that references them,
 * and a `manifest.json` listing them.
 *
 * Bare specifiers (`preact`, `@xterm/xterm`, `valibot`, …) must be entries of
 * `import_map.json` — the same pinned versions Deno uses — and are read from
 * the `node_modules` directory Deno maintains (`"nodeModulesDir": "auto"`).
 *
 * Run as `deno task build` (which `deno task start` runs first); `deno task
 * dev` runs it with `--watch` in a process of its own, so the server never
 * imports esbuild.
 *
 * @module
 */
import * as esbuild from "esbuild";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Options of {@linkcode buildSpa}. */
export interface BuildSpaOptions {
  /** Output directory; replaced on every build. Default `spa/dist`. */
  outDir?: string;
  /** Minify (default `true`). */
  minify?: boolean;
  /** Keep rebuilding when sources change (default `false`); resolves after the first build. */
  watch?: boolean;
}

/** What a build produced, as written to `manifest.json`. */
export interface SpaManifest {
  /** The entry script, relative to the output directory. */
  entry: string;
  /** Stylesheets the page loads. */
  css: string[];
  /** Every file of the build except `index.html` and the manifest itself (all content-hashed). */
  files: string[];
  /** When the build ran (ISO 8601). */
  builtAt: string;
}

const SPA_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT_DIR = dirname(SPA_DIR);
const DEFAULT_OUT_DIR = join(SPA_DIR, "dist");

/** Builds the SPA into `outDir`. With `watch`, rebuilds on change until the process ends. */
export async function buildSpa(options: BuildSpaOptions = {}): Promise<void> {
  const outDir = resolve(options.outDir ?? DEFAULT_OUT_DIR);
  await ensureNodeModules();
  const importMapKeys = await readImportMapKeys();
  const workspaceExports = await readWorkspaceExports();
  const buildOptions: esbuild.BuildOptions = {
    absWorkingDir: ROOT_DIR,
    entryPoints: { entry: join(SPA_DIR, "src", "main.tsx"), styles: join(SPA_DIR, "src", "styles.css") },
    outdir: outDir,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "browser",
    target: ["es2022", "chrome110", "firefox115", "safari16"],
    minify: options.minify ?? true,
    sourcemap: false,
    legalComments: "none",
    metafile: true,
    write: true,
    entryNames: "[name]-[hash]",
    chunkNames: "chunk-[hash]",
    assetNames: "[hash]",
    jsx: "automatic",
    jsxImportSource: "preact",
    loader: { ".woff2": "file", ".svg": "file", ".png": "file" },
    logLevel: "silent",
    plugins: [importMapGuard(importMapKeys, workspaceExports), writeHtml(outDir)],
  };
  if (options.watch) {
    const context = await esbuild.context(buildOptions);
    await context.rebuild();
    await context.watch();
    return;
  }
  try {
    await Deno.remove(outDir, { recursive: true }).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
    await esbuild.build(buildOptions);
  } finally {
    await esbuild.stop();
  }
}

/** Runs `deno install` when the packages the bundle needs are not in `node_modules` yet. */
async function ensureNodeModules(): Promise<void> {
  try {
    await Deno.stat(join(ROOT_DIR, "node_modules", "@xterm", "xterm", "package.json"));
    await Deno.stat(join(ROOT_DIR, "node_modules", "preact", "package.json"));
    return;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["install"],
    cwd: ROOT_DIR,
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (!output.success) throw new Error("`deno install` failed; the SPA's npm packages are missing");
}

async function readImportMapKeys(): Promise<string[]> {
  const text = await Deno.readTextFile(join(ROOT_DIR, "import_map.json"));
  const map = JSON.parse(text) as { imports?: Record<string, string> };
  return Object.keys(map.imports ?? {});
}

/**
 * The workspace members' exports as esbuild sees them: `@coda/relay/protocol`
 * → the absolute path of `relay/protocol.ts`, as Deno resolves it.
 */
async function readWorkspaceExports(): Promise<Map<string, string>> {
  const root = JSON.parse(await Deno.readTextFile(join(ROOT_DIR, "deno.json"))) as { workspace?: string[] };
  const exports = new Map<string, string>();
  for (const member of root.workspace ?? []) {
    const dir = join(ROOT_DIR, member);
    const config = JSON.parse(await Deno.readTextFile(join(dir, "deno.json"))) as {
      name: string;
      exports: Record<string, string>;
    };
    for (const [subpath, file] of Object.entries(config.exports)) {
      exports.set(subpath === "." ? config.name : config.name + subpath.slice(1), join(dir, file));
    }
  }
  return exports;
}

/**
 * Resolves workspace members by their exports, and refuses other bare
 * specifiers in our own sources that `import_map.json` does not map, so the
 * bundle only ever contains the pinned packages Deno type-checks. Mapped ones
 * resolve through `node_modules` as usual.
 */
function importMapGuard(keys: string[], workspaceExports: Map<string, string>): esbuild.Plugin {
  const mapped = (specifier: string) =>
    keys.some((key) => key.endsWith("/") ? specifier.startsWith(key) : specifier === key);
  return {
    name: "import-map-guard",
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, (args) => {
        if (/[\\/]node_modules[\\/]/.test(args.importer)) return undefined;
        const member = workspaceExports.get(args.path);
        if (member) return { path: member };
        if (mapped(args.path)) return undefined;
        return {
          errors: [{ text: `"${args.path}" is not in import_map.json; add a pinned npm: entry for it` }],
        };
      });
    },
  };
}

/** After each successful build: writes `index.html` and `manifest.json`, removes stale files. */
function writeHtml(outDir: string): esbuild.Plugin {
  return {
    name: "write-html",
    setup(build) {
      build.onEnd(async (result) => {
        if (result.errors.length > 0 || !result.metafile) {
          for (const error of result.errors) console.error(`SPA build error: ${formatMessage(error)}`);
          return;
        }
        const outputs = Object.keys(result.metafile.outputs).map((path) =>
          relative(outDir, join(ROOT_DIR, path)).replaceAll("\\", "/")
        );
        const entry = outputs.find((file) => basename(file).startsWith("entry-") && file.endsWith(".js"));
        if (!entry) throw new Error("esbuild produced no entry script");
        const manifest: SpaManifest = {
          entry,
          css: outputs.filter((file) => file.endsWith(".css")),
          files: outputs.sort(),
          builtAt: new Date().toISOString(),
        };
        await Deno.writeTextFile(join(outDir, "index.html"), renderIndexHtml(manifest));
        await Deno.writeTextFile(join(outDir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
        await removeStaleFiles(outDir, new Set([...outputs, "index.html", "manifest.json"]));
      });
    },
  };
}

function formatMessage(message: esbuild.Message): string {
  const where = message.location ? `${message.location.file}:${message.location.line}: ` : "";
  return `${where}${message.text}`;
}

/** Watch mode writes new hashed files on every rebuild; only the current build's files are kept. */
async function removeStaleFiles(outDir: string, keep: Set<string>): Promise<void> {
  for await (const entry of Deno.readDir(outDir)) {
    if (entry.isFile && !keep.has(entry.name)) await Deno.remove(join(outDir, entry.name));
  }
}

const FAVICON = "data:image/svg+xml," + encodeURIComponent(
  `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#1b2230"/>` +
    `<path d="M8 11l6 5-6 5" stroke="#7dd3a8" stroke-width="3" fill="none" stroke-linecap="round" stroke-linejoin="round"/>` +
    `<path d="M16 22h8" stroke="#7dd3a8" stroke-width="3" stroke-linecap="round"/></svg>`,
);

/** The page shell. The theme is applied by the app script (no inline script: the CSP forbids it). */
export function renderIndexHtml(manifest: Pick<SpaManifest, "entry" | "css">): string {
  const styles = manifest.css.map((file) => `    <link rel="stylesheet" href="/${file}">\n`).join("");
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
    <meta name="color-scheme" content="dark light">
    <title>Coda Dev Mode</title>
    <link rel="icon" href="${FAVICON}">
${styles}    <script type="module" src="/${manifest.entry}"></script>
  </head>
  <body>
    <div id="app"></div>
    <noscript>Coda Dev Mode needs JavaScript.</noscript>
  </body>
</html>
`;
}

if (import.meta.main) {
  const watch = Deno.args.includes("--watch");
  const outArg = Deno.args.find((arg) => arg.startsWith("--out="));
  await buildSpa({ watch, minify: !Deno.args.includes("--no-minify"), outDir: outArg?.slice(6) });
  console.log(watch ? "Watching spa/src for changes." : "Built the SPA into spa/dist.");
}
