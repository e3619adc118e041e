/**
 * URL rules shared by the app's and the runner's configuration, so both read
 * URLs and localhost aliases alike. Pure: the caller supplies its own error.
 *
 * @module
 */

/** Host names that all mean "this machine" to a browser. */
export const LOCALHOST_ALIASES: readonly string[] = ["localhost", "127.0.0.1", "[::1]"];

/**
 * Checks that the variable `name` holds a URL with one of `protocols` (e.g.
 * `"https:"`) and returns it without trailing slashes; a bad value is
 * reported through `fail`.
 */
export function parseUrl(
  name: string,
  raw: string,
  protocols: string[],
  fail: (message: string) => Error,
): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw fail(`${name} must be a URL, got "${raw}"`);
  }
  if (!protocols.includes(url.protocol)) {
    throw fail(`${name} must start with ${protocols.map((p) => `${p}//`).join(" or ")}, got "${raw}"`);
  }
  return raw.replace(/\/+$/, "");
}

/**
 * The origins that are "the same place" as `url` for a user: its own origin
 * first, then, when it is on this machine, the same scheme and port under
 * every localhost alias.
 */
export function sameSiteOrigins(url: string): string[] {
  const parsed = new URL(url);
  const origins = [parsed.origin];
  if (LOCALHOST_ALIASES.includes(parsed.hostname)) {
    for (const host of LOCALHOST_ALIASES) {
      const alias = `${parsed.protocol}//${host}${parsed.port ? `:${parsed.port}` : ""}`;
      if (!origins.includes(alias)) origins.push(alias);
    }
  }
  return origins;
}
