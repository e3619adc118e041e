/**
 * HTTP plumbing shared by the API's routes: the error type every handler
 * throws, JSON body and query parsing with valibot, and the request context.
 *
 * @module
 */
import type { Context } from "hono";
import * as v from "valibot";
import type { AppConfig } from "./config.ts";
import { describeIssues } from "@coda/relay/protocol";
import { clientAddress } from "@coda/relay";

/** What the API needs to run: configuration, storage and a clock (ms since the epoch). */
export interface ApiDeps {
  config: AppConfig;
  kv: Deno.Kv;
  now: () => number;
}

/** The signed-in user of a request. */
export interface SessionUser {
  id: string;
  email: string;
}

/** Hono environment of the API: the signed-in user, once `requireUser` ran. */
export interface ApiEnv {
  /** What `Deno.serve` knows of the connection, passed as `api.fetch(req, info)`. */
  Bindings: { remoteAddr?: Deno.Addr };
  Variables: { user: SessionUser };
}

/** An error with an HTTP status and a message that is safe to show; rendered as `{error}`. */
export class ApiError extends Error {
  /** HTTP status code. */
  readonly status: number;
  /** Extra fields merged into the JSON body. */
  readonly extra: Record<string, unknown>;
  /** Response headers the error carries (the app's error handler sends them). */
  readonly headers: Record<string, string>;
  constructor(
    status: number,
    message: string,
    extra: Record<string, unknown> = {},
    headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.extra = extra;
    this.headers = headers;
  }
}

/**
 * A 429 whose `Retry-After` says, in whole seconds (at least 1), how long
 * until the refused client may try again.
 */
export function tooManyRequests(
  message: string,
  retryAfterMs: number,
  extra: Record<string, unknown> = {},
): ApiError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new ApiError(429, message, extra, { "retry-after": String(seconds) });
}

/**
 * The client's address (see {@linkcode clientAddress}): the connection's, which
 * the server hands the app as its env (`api.fetch(req, info)`, what Hono's
 * `getConnInfo` reads), or the trusted proxy's header; `unknown` without either.
 */
export function clientIp(c: Context<ApiEnv>, proxyHeader: string | null): string {
  const connection = c.env?.remoteAddr && "hostname" in c.env.remoteAddr
    ? c.env.remoteAddr.hostname
    : "unknown";
  return clientAddress(c.req.raw.headers, connection, proxyHeader);
}

/** Validates `input` against `schema`, or throws a 400 {@linkcode ApiError} naming the first problem. */
export function parseWith<S extends v.GenericSchema>(schema: S, input: unknown): v.InferOutput<S> {
  const result = v.safeParse(schema, input);
  if (!result.success) throw new ApiError(400, describeIssues(result.issues));
  return result.output;
}

/**
 * Reads and validates a JSON object body. An empty body counts as `{}` when
 * `allowEmpty` is set (e.g. `pair/start`, whose fields are all optional).
 */
export async function readJson<S extends v.GenericSchema>(
  c: Context,
  schema: S,
  options: { allowEmpty?: boolean } = {},
): Promise<v.InferOutput<S>> {
  let text: string;
  try {
    text = await c.req.text();
  } catch (error) {
    // The client hung up mid-body (Deno reports BadResource or a connection error): its fault, not ours.
    // Hono's body limit also surfaces here; its middleware answers 413.
    if (error instanceof ApiError || (error as Error)?.name === "BodyLimitError") throw error;
    throw new ApiError(400, "request body ended before its Content-Length");
  }
  if (text.trim() === "") {
    if (options.allowEmpty) return parseWith(schema, {});
    throw new ApiError(400, "request body must be JSON");
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiError(400, "request body is not valid JSON");
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new ApiError(400, "request body must be a JSON object");
  }
  return parseWith(schema, body);
}
