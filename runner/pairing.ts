/**
 * Pairing (no tokens for users): ask the app for a short code, show it with
 * its link and a QR code, poll until the user approves it in the browser,
 * and return the runner's credentials.
 *
 * Polls at the server's interval and slows down when told (`429 slow_down`).
 * An expired code is replaced by a fresh one. Aborting the signal (Ctrl-C)
 * stops everything at once.
 *
 * @module
 */
import type { Credentials } from "./credentials.ts";
import { renderQr } from "./qr.ts";
import type { Logger } from "./log.ts";
import { backoffDelay, type BackoffOptions } from "../relay/backoff.ts";

/** Pairing cannot continue (the app refused, or answered nonsense). */
export class PairingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PairingError";
  }
}

/** What the runner tells the app about itself (shown on the approval page). */
export interface MachineInfo {
  name: string;
  hostname: string;
  os: string;
}

/** Options of {@linkcode pair}. */
export interface PairOptions {
  appUrl: string;
  machine: MachineInfo;
  /** Where the code, link and QR code are printed. */
  print: (text: string) => void;
  log: Logger;
  /** Aborting stops pairing with an `AbortError`. */
  signal: AbortSignal;
  /** Draw the QR code (default true). */
  qr?: boolean;
  fetch?: typeof fetch;
}

interface StartAnswer {
  code: string;
  expiresAt: number;
  pollSecret: string;
  interval: number;
}

/** Waits after the app is unreachable: 2 s after the first failure, doubling up to 30 s. */
const PAIRING_RETRY: BackoffOptions = { baseMs: 1000, maxMs: 30_000, jitter: 0 };

/** Waits `ms`, or rejects when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** The approval link for `code`. */
export function pairingLink(appUrl: string, code: string): string {
  return `${appUrl}/devmode/pair?code=${encodeURIComponent(code)}`;
}

/** The text shown while waiting for approval. */
export function pairingScreen(appUrl: string, code: string, expiresAt: number, withQr: boolean): string {
  const link = pairingLink(appUrl, code);
  const spaced = code.split("").join(" ");
  const width = spaced.length + 8;
  const minutes = Math.max(1, Math.round((expiresAt - Date.now()) / 60_000));
  return [
    "",
    "To connect this machine to your Coda account, open:",
    "",
    `    ${link}`,
    "",
    "and check that it shows this code:",
    "",
    `    ┌${"─".repeat(width)}┐`,
    `    │    ${spaced}    │`,
    `    └${"─".repeat(width)}┘`,
    "",
    ...(withQr ? [renderQr(link), ""] : []),
    `The code is valid for ${minutes} minutes. Waiting for approval… (Ctrl-C to cancel)`,
    "",
  ].join("\n");
}

async function readJson(response: Response): Promise<Record<string, unknown>> {
  const text = await response.text();
  try {
    const value = JSON.parse(text);
    return value && typeof value === "object" ? value as Record<string, unknown> : {};
  } catch {
    return {};
  }
}

/**
 * Revokes this runner's pairing through the app with its own token (`POST /api/devmode/pair/unpair`),
 * so the account it was paired with can no longer reach this machine. Throws {@linkcode PairingError}
 * when the app does not confirm.
 */
export async function unpair(
  appUrl: string,
  runnerToken: string,
  options: { signal?: AbortSignal; fetch?: typeof fetch } = {},
): Promise<void> {
  const response = await (options.fetch ?? fetch)(`${appUrl}/api/devmode/pair/unpair`, {
    method: "POST",
    headers: { authorization: `Bearer ${runnerToken}` },
    signal: options.signal,
  });
  const body = await readJson(response);
  if (!response.ok) {
    throw new PairingError(
      `the app did not revoke the pairing (HTTP ${response.status}${
        typeof body.error === "string" ? `: ${body.error}` : ""
      })`,
    );
  }
}

/** Runs the pairing flow until approved; returns the credentials to store (and the account). */
export async function pair(options: PairOptions): Promise<Credentials & { email: string }> {
  const doFetch = options.fetch ?? fetch;
  const { appUrl, signal, log } = options;
  let networkFailures = 0;

  const request = async (path: string, init: RequestInit): Promise<Response> => {
    while (true) {
      try {
        const response = await doFetch(`${appUrl}${path}`, { ...init, signal });
        networkFailures = 0;
        return response;
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        networkFailures++;
        if (networkFailures === 1) {
          log.warn(`cannot reach ${appUrl}; retrying`, {
            error: error instanceof Error ? error.message : String(error),
          });
        }
        await sleep(backoffDelay(networkFailures, PAIRING_RETRY, Math.random), signal);
      }
    }
  };

  while (true) {
    const startResponse = await request("/api/devmode/pair/start", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(options.machine),
    });
    const started = await readJson(startResponse);
    if (startResponse.status !== 201 && startResponse.status !== 200) {
      throw new PairingError(
        `the app refused to start pairing (HTTP ${startResponse.status}${
          typeof started.error === "string" ? `: ${started.error}` : ""
        })`,
      );
    }
    if (typeof started.code !== "string" || typeof started.pollSecret !== "string") {
      throw new PairingError(`the app at ${appUrl} did not answer like a Coda app`);
    }
    const answer = started as unknown as StartAnswer;
    let intervalMs = Math.max(1, Number(answer.interval) || 5) * 1000;
    const expiresAt = Number(answer.expiresAt) || Date.now() + 600_000;
    options.print(pairingScreen(appUrl, answer.code, expiresAt, options.qr ?? true));

    let expired = false;
    while (!expired) {
      await sleep(intervalMs, signal);
      const response = await request(`/api/devmode/pair/check?code=${encodeURIComponent(answer.code)}`, {
        headers: { "x-pair-secret": answer.pollSecret },
      });
      const body = await readJson(response);
      if (response.status === 429) {
        const suggested = Number(body.interval) * 1000;
        intervalMs = Math.max(intervalMs + 5000, Number.isFinite(suggested) ? suggested : 0);
        log.debug("the app asked to poll more slowly", { intervalMs });
        continue;
      }
      if (response.status >= 500) {
        log.warn("the app had a problem answering; retrying", { status: response.status });
        continue;
      }
      const status = body.status;
      if (status === "pending") continue;
      if (status === "approved") {
        const user = body.user as { email?: unknown } | undefined;
        const email = typeof user?.email === "string" ? user.email : "your account";
        if (
          typeof body.relayUrl !== "string" || typeof body.runnerId !== "string" ||
          typeof body.runnerToken !== "string"
        ) {
          throw new PairingError("the app approved the pairing but sent incomplete credentials");
        }
        return {
          relayUrl: body.relayUrl,
          runnerId: body.runnerId,
          runnerToken: body.runnerToken,
          appUrl,
          email,
          pairedAt: new Date().toISOString(),
        };
      }
      if (status === "expired" || status === "consumed" || response.status === 404) {
        options.print(
          status === "consumed"
            ? "That code was already used. Here is a fresh one."
            : "The code expired before it was approved. Here is a fresh one.",
        );
        expired = true;
        continue;
      }
      throw new PairingError(
        `unexpected answer while waiting for approval (HTTP ${response.status}${
          typeof body.error === "string" ? `: ${body.error}` : ""
        })`,
      );
    }
  }
}
