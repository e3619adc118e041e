/**
 * A `Deno.serve` that outlives descriptor exhaustion.
 *
 * When `accept` fails with EMFILE/ENFILE, `Deno.serve` stops listening for
 * good (its `finished` rejects) and, with nothing else to do, the process
 * exits: API, relay and SPA gone. Open WebSockets and requests in flight
 * survive that, so the listener is started again on the same port, with a
 * backoff, until descriptors are free again. Shutdown is bounded: Deno waits
 * for half-sent requests forever.
 *
 * @module
 */
import { backoffDelay, type BackoffOptions } from "./backoff.ts";
import type { RelayLog } from "./log.ts";

/** Waits before listening again: 50 ms doubling to 2 s, fixed (one process, no stampede to spread). */
const RESTART_BACKOFF: BackoffOptions = { baseMs: 50, maxMs: 2000, jitter: 0 };
/** A listener that ran this long resets the backoff, ms. */
const HEALTHY_AFTER_MS = 10_000;
/** How long shutdown waits for connections to finish, ms. */
const SHUTDOWN_GRACE_MS = 3000;

/** Whether `error` means the process ran out of file descriptors. */
export function isDescriptorExhaustion(error: unknown): boolean {
  const text = String((error as Error)?.message ?? error);
  return /os error 2[34]\b|Too many open files|EMFILE|ENFILE/.test(text);
}

/** A server whose listener is restarted when it dies. */
export interface ResilientServer {
  /** The address bound first; restarts bind the same port. */
  readonly addr: Deno.NetAddr;
  /** Stops listening and waits (bounded) for connections to finish. */
  shutdown(): Promise<void>;
}

/**
 * Serves `handler` on `hostname:port` like `Deno.serve`, starting the
 * listener again whenever it dies of descriptor exhaustion. A failure to bind
 * at the first start is thrown, as `Deno.serve` would.
 */
export function serveResilient(
  options: { hostname: string; port: number; log: RelayLog },
  handler: Deno.ServeHandler<Deno.NetAddr>,
): ResilientServer {
  const { log } = options;
  let stopping = false;
  let failures = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const start = (port: number) => Deno.serve({ hostname: options.hostname, port, onListen() {} }, handler);
  let current = start(options.port);
  const addr = current.addr;

  const watch = (server: Deno.HttpServer<Deno.NetAddr>) => {
    const startedAt = Date.now();
    server.finished.catch((error) => {
      if (stopping) return;
      if (Date.now() - startedAt > HEALTHY_AFTER_MS) failures = 0;
      log({
        event: "listener_failed",
        error: String(error),
        descriptorsExhausted: isDescriptorExhaustion(error),
        restartInMs: backoffDelay(failures, RESTART_BACKOFF, Math.random),
      });
      restartLater();
    });
  };
  const restartLater = () => {
    timer = setTimeout(() => {
      if (stopping) return;
      try {
        current = start(addr.port);
        log({ event: "listener_restarted", port: addr.port });
        watch(current);
      } catch (error) {
        log({ event: "listener_restart_failed", error: String(error) });
        restartLater();
      }
    }, backoffDelay(failures++, RESTART_BACKOFF, Math.random));
  };
  watch(current);

  return {
    addr,
    async shutdown() {
      stopping = true;
      clearTimeout(timer);
      let grace: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        current.shutdown().catch(() => {}),
        new Promise((resolve) => grace = setTimeout(resolve, SHUTDOWN_GRACE_MS)),
      ]);
      clearTimeout(grace);
    },
  };
}

/**
 * Keeps the process alive when descriptor exhaustion surfaces as an
 * unhandled rejection or error elsewhere (a `fetch`, a file read): it is
 * logged and the process goes on. Any other unhandled error still ends it.
 */
export function surviveDescriptorExhaustion(log: RelayLog): void {
  const spare = (event: Event, error: unknown) => {
    if (!isDescriptorExhaustion(error)) return;
    event.preventDefault();
    log({ event: "descriptors_exhausted", error: String(error) });
  };
  globalThis.addEventListener("unhandledrejection", (event) => spare(event, event.reason));
  globalThis.addEventListener("error", (event) => spare(event, event.error));
}

/**
 * Serves `/metrics` alone on `addr` (`DEVMODE_METRICS_ADDR`), for a scraper on
 * a private network; everything else is 404.
 */
export function serveMetrics(
  addr: { hostname: string; port: number },
  render: () => Response,
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: addr.hostname, port: addr.port, onListen() {} }, (req) => {
    if (new URL(req.url).pathname === "/metrics") return render();
    return Response.json({ error: "not found" }, { status: 404 });
  });
}
