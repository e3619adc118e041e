/**
 * The "Connect by URL" fallback: validating the link `coda-runner serve`
 * prints (`ws://127.0.0.1:7681/client?token=…`).
 *
 * @module
 */

/**
 * Checks a pasted `coda-runner serve` link. Accepts `ws:`/`wss:` (and
 * `http:`/`https:`, converted) URLs of a `/client` path with a token.
 */
export function parseManualUrl(input: string): { ok: true; url: string } | { ok: false; error: string } {
  let url: URL;
  try {
    url = new URL(input.trim());
  } catch {
    return { ok: false, error: "That is not a URL. Paste the whole ws://… line the runner printed." };
  }
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    return { ok: false, error: "The URL must start with ws:// or wss://." };
  }
  if (!url.pathname.endsWith("/client")) return { ok: false, error: "The URL must end in /client?token=…" };
  if (!url.searchParams.get("token")) return { ok: false, error: "The URL has no token=… part." };
  return { ok: true, url: url.href };
}
