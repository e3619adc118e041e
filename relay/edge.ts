/**
 * What the process admits at its network edge: concurrent connections per
 * client address and in total, kept below the open-file limit so that the
 * excess is refused cheaply (HTTP 429/503) instead of the process running
 * out of descriptors.
 *
 * Only requests whose headers arrived reach a `Deno.serve` handler, so these
 * caps count requests in flight and WebSockets; half-sent requests are not
 * seen (see relay/README.md, "Limits").
 *
 * @module
 */
import { jsonError } from "./context.ts";

/** The process's `RLIMIT_NOFILE`. */
export interface FdLimit {
  soft: number;
  hard: number;
}

/** `RLIMIT_NOFILE` and the C library, where this process can ask for them. */
const RLIMIT_NOFILE: Partial<Record<typeof Deno.build.os, { resource: number; libc: string }>> = {
  linux: { resource: 7, libc: "libc.so.6" },
  darwin: { resource: 8, libc: "libSystem.B.dylib" },
};

/** What {@linkcode raiseFdLimit} found, once per process (`undefined`: not asked yet). */
let fdLimitOfProcess: FdLimit | null | undefined;

/**
 * Raises this process's soft open-file limit to its hard limit where it can
 * (`setrlimit`; Deno does the same at start on most systems) and returns the
 * limit that holds, or `null` where it cannot be read: Windows, or no
 * `--allow-ffi` (Deno refuses `/proc/self/limits` without `--allow-all`).
 * The work is done once per process; later calls return the same figure.
 */
export function raiseFdLimit(): FdLimit | null {
  fdLimitOfProcess ??= readAndRaiseFdLimit();
  return fdLimitOfProcess;
}

function readAndRaiseFdLimit(): FdLimit | null {
  const target = RLIMIT_NOFILE[Deno.build.os];
  if (!target) return null;
  let libc;
  try {
    libc = Deno.dlopen(target.libc, {
      getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
      setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
    });
  } catch {
    return null;
  }
  try {
    const limit = new BigUint64Array(2);
    if (libc.symbols.getrlimit(target.resource, limit) !== 0) return null;
    if (
      limit[0] < limit[1] &&
      libc.symbols.setrlimit(target.resource, new BigUint64Array([limit[1], limit[1]])) === 0
    ) {
      limit[0] = limit[1];
    }
    const count = (value: bigint) =>
      value > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(value);
    return { soft: count(limit[0]), hard: count(limit[1]) };
  } finally {
    libc.close();
  }
}

/** Descriptors kept free of client connections: KV, files served, outgoing calls, the listener. */
export const RESERVED_DESCRIPTORS = 128;
/** The total cap where the open-file limit is unknown. */
export const FALLBACK_MAX_CONNECTIONS = 1024;
/** Default concurrent connections from one client address. */
export const DEFAULT_MAX_CONNECTIONS_PER_IP = 128;

/** Caps on concurrent connections. */
export interface ConnectionLimits {
  /** In total (requests in flight plus WebSockets). */
  maxConnections: number;
  /** From one client address. */
  maxConnectionsPerIp: number;
}

/**
 * The default caps: in total, what the open-file limit leaves after
 * {@linkcode RESERVED_DESCRIPTORS}; per address, {@linkcode DEFAULT_MAX_CONNECTIONS_PER_IP}.
 */
export function defaultConnectionLimits(limit: FdLimit | null): ConnectionLimits {
  return {
    maxConnections: limit
      ? Math.max(16, Math.min(limit.soft, 1_000_000) - RESERVED_DESCRIPTORS)
      : FALLBACK_MAX_CONNECTIONS,
    maxConnectionsPerIp: DEFAULT_MAX_CONNECTIONS_PER_IP,
  };
}

/** Why a connection was not admitted. */
export type Refusal = "per_ip" | "total";

/** Counts connections per client address and in total, and refuses beyond the caps. */
export class ConnectionCaps {
  readonly limits: ConnectionLimits;
  #total = 0;
  readonly #perIp = new Map<string, number>();

  constructor(limits: ConnectionLimits) {
    this.limits = limits;
  }

  /** Connections admitted and not yet released. */
  get total(): number {
    return this.#total;
  }

  /**
   * Admits one connection from `ip`: resolves a release function (idempotent)
   * to call when it ends, or why it was refused.
   */
  admit(ip: string): (() => void) | Refusal {
    if (this.#total >= this.limits.maxConnections) return "total";
    const fromIp = this.#perIp.get(ip) ?? 0;
    if (fromIp >= this.limits.maxConnectionsPerIp) return "per_ip";
    this.#total++;
    this.#perIp.set(ip, fromIp + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#total--;
      const left = (this.#perIp.get(ip) ?? 1) - 1;
      if (left > 0) this.#perIp.set(ip, left);
      else this.#perIp.delete(ip);
    };
  }
}

/** The answer to a connection over a cap: 429 for one address, 503 for the whole process. */
export function refusalResponse(refusal: Refusal): Response {
  return refusal === "per_ip"
    ? jsonError(429, "too many connections from your address")
    : jsonError(503, "the server is at its connection limit, retry later");
}

/**
 * The client's address: `connection` (the peer's), or behind a trusted proxy
 * the value of its header (for `X-Forwarded-For`, the last entry: the one the
 * proxy added). The one rule for the relay and the app.
 */
export function clientAddress(headers: Headers, connection: string, proxyHeader: string | null): string {
  if (proxyHeader === null) return connection;
  const value = headers.get(proxyHeader)?.split(",").at(-1)?.trim();
  return value || connection;
}

/** {@linkcode clientAddress} of a request as `Deno.serve` hands it over. */
export function clientIp(req: Request, info: Deno.ServeHandlerInfo, proxyHeader: string | null): string {
  return clientAddress(req.headers, (info.remoteAddr as Deno.NetAddr).hostname, proxyHeader);
}
