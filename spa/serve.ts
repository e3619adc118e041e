/**
 * Serves the built browser app: hashed assets with a year-long immutable
 * cache, `index.html` (revalidated every time) for every other GET path so
 * client-side routes survive deep links and reloads, and security headers
 * with a Content-Security-Policy that allows only what the app needs.
 *
 * @module
 */
import { extname, join } from "node:path";
import { buildSpa } from "./build.ts";

/** Options of {@linkcode createSpaHandler}. */
export interface SpaHandlerOptions {
  /** The build output (`spa/dist`). */
  distDir: string;
  /** The relay's base URL (`ws://…` or `wss://…`): the page opens WebSockets to it. */
  relayUrl: string;
  /** The app's own origin as users reach it. */
  publicUrl: string;
}

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
  ".map": "application/json; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
};

/** Cache policy of content-hashed files: their name changes whenever their bytes do. */
export const IMMUTABLE_CACHE = "public, max-age=31536000, immutable";

/**
 * The Content-Security-Policy of every SPA response.
 *
 * `connect-src` allows the app's origin, the relay's origin and, for the
 * "Connect by URL" fallback, WebSockets to the user's own machine (the URL
 * `coda-runner serve` prints is `ws://127.0.0.1:PORT/client?token=…`).
 *
 * `style-src` needs `'unsafe-inline'`: xterm.js 6 injects `<style>` elements
 * for its theme and cell dimensions (DomRenderer, and the accessibility and
 * decoration layers), which `'self'` alone would block and the terminal would
 * render unstyled. Scripts stay `'self'` only.
 */
export function contentSecurityPolicy(options: Pick<SpaHandlerOptions, "relayUrl" | "publicUrl">): string {
  const connect = new Set(["'self'"]);
  for (const url of [options.relayUrl, options.publicUrl]) {
    const origin = new URL(url).origin;
    connect.add(origin);
    connect.add(origin.replace(/^http/, "ws"));
  }
  for (const local of ["ws://127.0.0.1:*", "ws://localhost:*"]) connect.add(local);
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    `connect-src ${[...connect].join(" ")}`,
    "img-src 'self' data:",
    "font-src 'self'",
    "worker-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "object-src 'none'",
  ].join("; ");
}

/** Builds the request handler for the SPA. It serves only files that exist directly in `distDir`. */
export function createSpaHandler(options: SpaHandlerOptions): (req: Request) => Promise<Response> {
  const csp = contentSecurityPolicy(options);
  const securityHeaders = (headers: Headers) => {
    headers.set("content-security-policy", csp);
    headers.set("x-content-type-options", "nosniff");
    headers.set("referrer-policy", "no-referrer");
    headers.set("x-frame-options", "DENY");
    headers.set("cross-origin-opener-policy", "same-origin");
    return headers;
  };
  const json = (status: number, error: string, extra: Record<string, string> = {}) =>
    new Response(JSON.stringify({ error }), {
      status,
      headers: securityHeaders(new Headers({ "content-type": CONTENT_TYPES[".json"], ...extra })),
    });

  const serveFile = async (req: Request, name: string, cacheControl: string): Promise<Response> => {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(join(options.distDir, name), { read: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        return name === "index.html"
          ? json(503, "The browser app is not built yet; run `deno task build`.")
          : json(404, "Not found");
      }
      throw error;
    }
    const { size } = await file.stat();
    const headers = securityHeaders(
      new Headers({
        "content-type": CONTENT_TYPES[extname(name)] ?? "application/octet-stream",
        "content-length": String(size),
        "cache-control": cacheControl,
      }),
    );
    if (req.method === "HEAD") {
      file.close();
      return new Response(null, { headers });
    }
    return new Response(file.readable, { headers });
  };

  return async (req) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      return json(405, "Method not allowed", { allow: "GET, HEAD" });
    }
    const path = new URL(req.url).pathname;
    const name = path.slice(1);
    if (isAssetPath(path)) {
      if (!isPlainFileName(name)) return json(404, "Not found");
      const unhashed = name === "index.html" || name === "manifest.json";
      return await serveFile(req, name, unhashed ? "no-cache" : IMMUTABLE_CACHE);
    }
    return await serveFile(req, "index.html", "no-cache");
  };
}

/** A path whose last segment has an extension names a file; anything else is a client-side route. */
function isAssetPath(path: string): boolean {
  const last = path.slice(path.lastIndexOf("/") + 1);
  return last.includes(".");
}

/** Build outputs live directly in the output directory: no separators, no dot-files, no traversal. */
function isPlainFileName(name: string): boolean {
  return /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/.test(name) && !name.includes("..");
}

/** Builds the SPA into `distDir` unless it already holds a build (an `index.html`). */
export async function ensureSpaBuilt(distDir: string): Promise<void> {
  try {
    await Deno.stat(join(distDir, "index.html"));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    console.log(`Building the browser app into ${distDir}…`);
    await buildSpa({ outDir: distDir });
  }
}
