/**
 * `deno task bench`: measures what a user feels, end to end through the real
 * app, relay and runner session manager (real PTYs, real WebSockets on
 * loopback, all in this process so memory covers relay and runner together):
 *
 * - session start: from `POST /api/devmode/sessions` to the shell's first output;
 * - keystroke latency: one character in, its echo out (bash's line editor);
 * - bulk output throughput, for an acknowledging client and a spec-only client;
 * - memory under `yes` with a client that acknowledges slowly (flow control),
 *   and how fast Ctrl-C stops it.
 *
 * Prints a table and writes `test-output/bench.json`.
 *
 * @module
 */
import { createSession, pairRunner, signup, startTestApp } from "@coda/api/testing";
import { clientLinkQuery, decodeServerMessage } from "@coda/relay/protocol";
import { startInProcessRunner } from "@coda/runner/testing";
import { WebSocket } from "ws";

const encoder = new TextEncoder();

/** One measured row. */
interface Row {
  name: string;
  value: number;
  unit: string;
  note?: string;
}

/**
 * A client of the spec's client link that keeps the stream's text and offset.
 * It uses the `ws` package because, like browsers, it sets TCP_NODELAY (Deno's
 * own WebSocket client does not, which adds ~40 ms to back-to-back frames).
 */
class BenchClient {
  readonly socket: WebSocket;
  text = "";
  bytes = 0;
  #waiters: { check: () => boolean; resolve: () => void }[] = [];
  readonly opened: Promise<void>;

  constructor(url: string, readonly ack: boolean, readonly ackDelayMs = 0) {
    this.socket = new WebSocket(url);
    this.opened = new Promise((resolve, reject) => {
      this.socket.once("open", () => resolve());
      this.socket.on("error", () => reject(new Error("client link failed")));
    });
    this.socket.on("message", (message: { toString(): string }) => {
      const decoded = decodeServerMessage(message.toString());
      if (!decoded.ok || decoded.value.type !== "stdout") return;
      const { data, offset, sessionId } = decoded.value;
      this.bytes = (offset ?? this.bytes) + encoder.encode(data).length;
      this.text = (this.text + data).slice(-4096);
      if (this.ack) {
        const ack = JSON.stringify({ type: "ack", sessionId, offset: this.bytes });
        if (this.ackDelayMs) setTimeout(() => this.#send(ack), this.ackDelayMs);
        else this.#send(ack);
      }
      this.#waiters = this.#waiters.filter((w) => !(w.check() && (w.resolve(), true)));
    });
  }

  #send(frame: string): void {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(frame);
  }

  stdin(sessionId: string, data: string): void {
    this.#send(JSON.stringify({ type: "stdin", sessionId, data }));
  }

  until(check: () => boolean, timeoutMs = 60_000): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("bench timed out")), timeoutMs);
      this.#waiters.push({
        check,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.readyState === WebSocket.CLOSED) return resolve();
      this.socket.once("close", () => resolve());
      this.socket.close();
    });
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** Samples RSS and heap every 50 ms until stopped; returns the peaks. */
function sampleMemory(): { stop(): { rss: number; heap: number } } {
  let rss = 0;
  let heap = 0;
  const take = () => {
    const usage = Deno.memoryUsage();
    rss = Math.max(rss, usage.rss);
    heap = Math.max(heap, usage.heapUsed);
  };
  take();
  const timer = setInterval(take, 50);
  return {
    stop() {
      clearInterval(timer);
      take();
      return { rss, heap };
    },
  };
}

const MiB = 1024 * 1024;

async function main(): Promise<Row[]> {
  const rows: Row[] = [];
  const step = (name: string) => console.error(`… ${name}`);
  const home = await Deno.makeTempDir({ prefix: "coda-bench-home-" });
  const app = await startTestApp();
  const runner = await (async () => {
    const user = await signup(app.url);
    const paired = await pairRunner(app.url, user.cookie);
    return { user, paired, process: startInProcessRunner(app.relayUrl, paired.runnerToken, home) };
  })();
  const open = async (ack: boolean, ackDelayMs = 0) => {
    const started = performance.now();
    const session = await createSession(app.url, runner.user.cookie, { ideaId: "bench" });
    const client = new BenchClient(
      `${app.relayUrl}/client?${clientLinkQuery(session.token, { ack, cols: 120, rows: 40 })}`,
      ack,
      ackDelayMs,
    );
    await client.opened;
    await client.until(() => client.bytes > 0);
    return { client, sessionId: session.sessionId, startMs: performance.now() - started };
  };

  try {
    step("session start");
    const startTimes: number[] = [];
    for (let i = 0; i < 5; i++) {
      const { client, startMs } = await open(true);
      startTimes.push(startMs);
      await client.close();
    }
    startTimes.sort((a, b) => a - b);
    rows.push({ name: "session start (median of 5)", value: percentile(startTimes, 0.5), unit: "ms" });

    step("keystroke latency");
    const { client: typist, sessionId: typing } = await open(true);
    const latencies: number[] = [];
    for (let i = 0; i < 300; i++) {
      const marker = String.fromCharCode(97 + (i % 26));
      const before = typist.bytes;
      const sent = performance.now();
      typist.stdin(typing, marker);
      await typist.until(() => typist.bytes > before);
      latencies.push(performance.now() - sent);
      if (i % 40 === 39) {
        const cleared = typist.bytes;
        typist.stdin(typing, "\x15");
        await typist.until(() => typist.bytes > cleared);
      }
    }
    latencies.sort((a, b) => a - b);
    rows.push({ name: "keystroke echo p50", value: percentile(latencies, 0.5), unit: "ms" });
    rows.push({ name: "keystroke echo p99", value: percentile(latencies, 0.99), unit: "ms" });
    await typist.close();

    const total = 64 * MiB;
    for (const ack of [true, false]) {
      step(`bulk output (${ack ? "acking" : "spec-only"} client)`);
      const { client, sessionId } = await open(ack);
      const start = client.bytes;
      const memory = sampleMemory();
      const started = performance.now();
      client.stdin(sessionId, `head -c ${total} /dev/zero | tr '\\0' 'x'; echo; echo DONE\r`);
      await client.until(() => client.bytes - start >= total && client.text.includes("DONE"), 180_000);
      const seconds = (performance.now() - started) / 1000;
      const peak = memory.stop();
      rows.push({
        name: `bulk output, ${ack ? "acking" : "spec-only"} client`,
        value: total / MiB / seconds,
        unit: "MiB/s",
        note: `64 MiB through PTY → runner → relay → client; peak RSS ${Math.round(peak.rss / MiB)} MiB`,
      });
      await client.close();
    }

    step("flow control under `yes`");
    const { client: slow, sessionId: flood } = await open(true, 200);
    const retainedHeap = () => {
      (globalThis as { gc?: () => void }).gc?.();
      return Deno.memoryUsage().heapUsed;
    };
    const baseline = retainedHeap();
    const memory = sampleMemory();
    slow.stdin(flood, "yes\r");
    const retained: number[] = [];
    for (let second = 0; second < 5; second++) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      retained.push(retainedHeap() - baseline);
    }
    const peak = memory.stop();
    rows.push({
      name: "retained heap growth under `yes`, client acking every 200 ms",
      value: Math.max(...retained) / MiB,
      unit: "MiB",
      note: `after GC, each second of 5: ${retained.map((b) => (b / MiB).toFixed(1)).join(", ")} MiB; ` +
        `peak RSS ${Math.round(peak.rss / MiB)} MiB`,
    });
    const interrupted = performance.now();
    slow.stdin(flood, "\x03");
    slow.stdin(flood, "echo STOPPED-$((6*7))\r");
    await slow.until(() => slow.text.includes("STOPPED-42"), 60_000);
    rows.push({ name: "Ctrl-C to prompt under `yes`", value: performance.now() - interrupted, unit: "ms" });
    await slow.close();
  } finally {
    await runner.process.stop();
    await app.close();
    await Deno.remove(home, { recursive: true });
  }
  return rows;
}

if (import.meta.main) {
  const rows = await main();
  const width = Math.max(...rows.map((r) => r.name.length));
  for (const row of rows) {
    const value = row.value >= 100 ? row.value.toFixed(0) : row.value.toFixed(2);
    console.log(
      `${row.name.padEnd(width)}  ${value.padStart(8)} ${row.unit}${row.note ? `  (${row.note})` : ""}`,
    );
  }
  await Deno.mkdir("test-output", { recursive: true });
  await Deno.writeTextFile(
    "test-output/bench.json",
    JSON.stringify({ date: new Date().toISOString(), deno: Deno.version.deno, rows }, null, 2),
  );
}
