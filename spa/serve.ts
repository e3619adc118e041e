/// <reference lib="deno.ns" />
/// <reference lib="deno.unstable" />
/**
 * Serves the built browser app: hashed assets with a year-long immutable
 * cache, `index.html` (revalidated every time) for every other GET path so
 * client-side routes survive deep links and reloads, and security headers
 * with a Content-Security-Policy that allows only what the app needs.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { serveStatic } from "hono/deno";
import { secureHeaders } from "hono/secure-headers";

/** The directives `secureHeaders` takes (hono does not export the type by name). */
export type CspDirectives = NonNullable<
  NonNullable<Parameters<typeof secureHeaders>[0]>["contentSecurityPolicy"]
>;

/** Options of {@linkcode createSpaHandler}. */
export interface SpaHandlerOptions {
  /** The build output (`spa/dist`). */
  distDir: string;
  /** The relay's base URL (`ws://…` or `wss://…`): the page opens WebSockets to it. */
  relayUrl: string;
  /** The app's own origin as users reach it. */
  publicUrl: string;
}

/** Cache policy of content-hashed files: their name changes whenever their bytes do. */
export const IMMUTABLE_CACHE = "public, max-age=31536000, immutable";

/** Build outputs whose names stay the same from build to build, so browsers revalidate them. */
const UNHASHED_FILES = new Set(["index.html", "manifest.json"]);

/**
 * The Content-Security-Policy of every SPA response, as `secureHeaders` directives.
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
export function contentSecurityPolicy(
  options: Pick<SpaHandlerOptions, "relayUrl" | "publicUrl">,
): CspDirectives {
  const connect = new Set(["'self'"]);
  for (const url of [options.relayUrl, options.publicUrl]) {
    const origin = new URL(url).origin;
    connect.add(origin);
    connect.add(origin.replace(/^http/, "ws"));
  }
  for (const local of ["ws://127.0.0.1:*", "ws://localhost:*"]) connect.add(local);
  return {
    defaultSrc: ["'self'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'", "'unsafe-inline'"],
    connectSrc: [...connect],
    imgSrc: ["'self'", "data:"],
    fontSrc: ["'self'"],
    workerSrc: ["'self'"],
    frameAncestors: ["'none'"],
    baseUri: ["'none'"],
    formAction: ["'self'"],
    objectSrc: ["'none'"],
  };
}

/**
 * Builds the request handler for the SPA: Hono's `serveStatic` for the files,
 * `secureHeaders` on every answer. It serves only files that exist directly in
 * `distDir`, and never builds: `deno task build` (or `dev`) does.
 */
export function createSpaHandler(options: SpaHandlerOptions): (req: Request) => Promise<Response> {
  const app = new Hono();
  app.use(secureHeaders({
    contentSecurityPolicy: contentSecurityPolicy(options),
    xFrameOptions: "DENY",
    // HSTS belongs to whoever terminates TLS: the app also runs on plain-HTTP loopback, and
    // `includeSubDomains` sent from here would bind every subdomain of the deployer's domain.
    strictTransportSecurity: false,
  }));
  const withLength = (cacheControl: (name: string) => string) => async (path: string, c: Context) => {
    c.header("cache-control", cacheControl(path.slice(path.lastIndexOf("/") + 1)));
    c.header("content-length", String((await Deno.stat(path)).size));
  };
  const page = serveStatic({
    root: options.distDir,
    path: "index.html",
    onFound: withLength(() => "no-cache"),
  });
  const asset = serveStatic({
    root: options.distDir,
    onFound: withLength((name) => UNHASHED_FILES.has(name) ? "no-cache" : IMMUTABLE_CACHE),
  });
  app.get("*", (c, next) => {
    if (!isAssetPath(c.req.path)) return page(c, next);
    return isPlainFileName(c.req.path.slice(1)) ? asset(c, next) : next();
  });
  app.get(
    "*",
    (c) =>
      isAssetPath(c.req.path)
        ? c.json({ error: "Not found" }, 404)
        : c.json({ error: "The browser app is not built yet; run `deno task build`." }, 503),
  );
  app.all("*", (c) => c.json({ error: "Method not allowed" }, 405, { allow: "GET, HEAD" }));

  return async (req) => {
    if (req.method !== "HEAD") return await app.fetch(req);
    // Hono answers HEAD by dropping the GET answer's body unread, which would keep the file open until GC.
    const response = await app.fetch(new Request(req.url, { headers: req.headers }));
    await response.body?.cancel();
    return new Response(null, response);
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
