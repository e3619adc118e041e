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
import * as v from "valibot";
import { ErrorBodySchema, PairStartedSchema, PairStatusSchema, SlowDownSchema } from "@coda/api/contract";
import type { Credentials } from "./credentials.ts";
import { renderQr } from "./qr.ts";
import type { Logger } from "./log.ts";
import { backoffDelay, type BackoffOptions } from "@coda/relay/backoff";

/** Pairing cannot continue (the app refused, or answered nonsense). */
export class PairingError extends Error {
  /** The app's HTTP status, when it answered. */
  readonly status: number | undefined;
  constructor(message: string, status?: number) {
    super(message);
    this.name = "PairingError";
    this.status = status;
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
  /** The terminal the screen is shown in (its height; whether Enter opens the link). */
  fit?: ScreenFit;
  /** Called with each new code's link (a fresh code replaces an expired one). */
  onLink?: (link: string) => void;
  fetch?: typeof fetch;
  /** Waits `ms` or rejects when `signal` aborts (default: a real timer; tests skip the poll interval). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** Waits after the app is unreachable: 2 s after the first failure, doubling up to 30 s. */
const PAIRING_RETRY: BackoffOptions = { baseMs: 1000, maxMs: 30_000, jitter: 0 };

/** Waits `ms`, or rejects when `signal` aborts. */
function realSleep(ms: number, signal: AbortSignal): Promise<void> {
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

/** What the pairing screen knows about the terminal it is shown in. */
export interface ScreenFit {
  /** The terminal's height in lines, when standard output is a terminal. */
  rows?: number;
  /** Offer to open the link on Enter (standard input is a terminal and a browser can be opened). */
  offerOpen?: boolean;
}

/** The line that offers to open the link (main reads the Enter). */
export const OPEN_PROMPT = "Press Enter to open it in your browser.";

/**
 * The text shown while waiting for approval. What the user needs comes last, so it is what stays on
 * screen: the QR code first, then the link and the code. In a terminal of known height the QR code is
 * drawn only when it fits whole above the text (a 17-line code in 24 lines pushed the link off screen).
 */
export function pairingScreen(
  appUrl: string,
  code: string,
  expiresAt: number,
  withQr: boolean,
  fit: ScreenFit = {},
): string {
  const link = pairingLink(appUrl, code);
  const minutes = Math.max(1, Math.round((expiresAt - Date.now()) / 60_000));
  const text = [
    "To connect this machine to your Coda account, open this link:",
    `    ${link}`,
    `and check that it shows the code  ${code.split("").join(" ")}`,
    ...(fit.offerOpen ? [OPEN_PROMPT] : []),
    `The code is valid for ${minutes} minutes. Waiting for approval… (Ctrl-C to cancel)`,
  ];
  const qr = withQr ? renderQr(link).split("\n") : [];
  // One more line for the cursor, which sits below the last one.
  const qrFits = fit.rows === undefined || qr.length + text.length + 1 <= fit.rows;
  return [...(qrFits ? qr : []), ...text].join("\n");
}

/** The answer's JSON, or `undefined` when it is not JSON. */
async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** `HTTP 403: message` for a refusal, the message only when the app sent one. */
function describeRefusal(status: number, body: unknown): string {
  const parsed = v.safeParse(ErrorBodySchema, body);
  return `HTTP ${status}${parsed.success ? `: ${parsed.output.error}` : ""}`;
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
      `the app did not revoke the pairing (${describeRefusal(response.status, body)})`,
      response.status,
    );
  }
}

/** What pairing fails with when the user pressed Cancel on the approve page. */
export const PAIRING_DENIED = "The request was denied in the browser.";

/** Runs the pairing flow until approved; returns the credentials to store (and the account). */
export async function pair(options: PairOptions): Promise<Credentials & { email: string }> {
  const doFetch = options.fetch ?? fetch;
  const sleep = options.sleep ?? realSleep;
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
          log.warn(
            `cannot reach the Coda app at ${appUrl}: start it, or set APP_URL to its address (retrying)`,
            {
              error: error instanceof Error ? error.message : String(error),
            },
          );
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
        `the app refused to start pairing (${describeRefusal(startResponse.status, started)})`,
      );
    }
    const parsedStart = v.safeParse(PairStartedSchema, started);
    if (!parsedStart.success) throw new PairingError(`the app at ${appUrl} did not answer like a Coda app`);
    const answer = parsedStart.output;
    let intervalMs = Math.max(1, answer.interval) * 1000;
    options.print(pairingScreen(appUrl, answer.code, answer.expiresAt, options.qr ?? true, options.fit));
    options.onLink?.(pairingLink(appUrl, answer.code));

    let expired = false;
    while (!expired) {
      await sleep(intervalMs, signal);
      const response = await request(`/api/devmode/pair/check?code=${encodeURIComponent(answer.code)}`, {
        headers: { "x-pair-secret": answer.pollSecret },
      });
      const body = await readJson(response);
      if (response.status === 429) {
        const slowDown = v.safeParse(SlowDownSchema, body);
        intervalMs = Math.max(intervalMs + 5000, slowDown.success ? slowDown.output.interval * 1000 : 0);
        log.debug("the app asked to poll more slowly", { intervalMs });
        continue;
      }
      if (response.status >= 500) {
        log.warn("the app had a problem answering; retrying", { status: response.status });
        continue;
      }
      const parsed = response.status === 200 ? v.safeParse(PairStatusSchema, body) : undefined;
      const status = parsed?.success ? parsed.output.status : undefined;
      if (status === "pending") continue;
      // Cancel on the approve page: a fresh code would only ask again what the user just refused.
      if (status === "denied") throw new PairingError(PAIRING_DENIED);
      if (parsed?.success && parsed.output.status === "approved") {
        const { relayUrl, runnerId, runnerToken, user } = parsed.output;
        return {
          relayUrl,
          runnerId,
          runnerToken,
          appUrl,
          email: user.email,
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
        `unexpected answer while waiting for approval (${describeRefusal(response.status, body)})`,
      );
    }
  }
}
