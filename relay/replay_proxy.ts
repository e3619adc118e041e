/**
 * A stand-in for Fly's proxy in tests, behaving as Fly documents `fly-replay`: a new connection's
 * first request goes to the next instance in turn (skipping any that refuses the connection, as
 * Fly skips unhealthy machines); an answer carrying `fly-replay: instance=<id>` is dropped and the
 * original request, upgrade included, is sent to that instance with `fly-replay-src` added;
 * `fly-replay: elsewhere=true` sends it to another instance. Then bytes flow both ways untouched.
 * One request per connection is inspected (a WebSocket upgrade is the only one on its connection).
 *
 * @module
 */
import { FLY_REPLAY_HEADER, FLY_REPLAY_SRC_HEADER } from "./routing.ts";

/** Most replays of one request before the proxy answers 502 (Fly's own limit is not documented). */
const MAX_REPLAYS = 3;
const HEAD_END = new Uint8Array([13, 10, 13, 10]);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A running proxy. */
export interface ReplayProxy {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `ws://127.0.0.1:PORT` */
  relayUrl: string;
  /** Sets where instance `id` listens (or removes it with `null`). */
  setInstance(id: string, port: number | null): void;
  /** Makes the next new connection try `id` first. */
  nextFirstHop(id: string): void;
  /** Every request's hops, in order: the instances it was sent to. */
  readonly hops: string[][];
  close(): Promise<void>;
}

/** Reads until the end of an HTTP head; resolves the head and what arrived after it, or null at EOF. */
async function readHead(conn: Deno.Conn): Promise<{ head: string; rest: Uint8Array } | null> {
  let received = new Uint8Array(0);
  const buffer = new Uint8Array(16 * 1024);
  for (;;) {
    const end = indexOf(received, HEAD_END);
    if (end >= 0) return { head: decoder.decode(received.subarray(0, end)), rest: received.slice(end + 4) };
    const n = await conn.read(buffer);
    if (n === null) return null;
    const next = new Uint8Array(received.length + n);
    next.set(received);
    next.set(buffer.subarray(0, n), received.length);
    received = next;
  }
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** The value of header `name` in an HTTP head, if present. */
function headerOf(head: string, name: string): string | undefined {
  for (const line of head.split("\r\n").slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === name) return line.slice(colon + 1).trim();
  }
  return undefined;
}

/** Starts a proxy in front of `instances` (id → port on 127.0.0.1). */
export function startReplayProxy(instances: Record<string, number>): ReplayProxy {
  const ports = new Map(Object.entries(instances));
  let turn = 0;
  const hops: string[][] = [];
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();

  const connectTo = async (id: string): Promise<Deno.TcpConn | null> => {
    const port = ports.get(id);
    if (port === undefined) return null;
    try {
      return await Deno.connect({ hostname: "127.0.0.1", port });
    } catch {
      return null;
    }
  };

  const answer = async (client: Deno.Conn, status: number, error: string) => {
    const body = JSON.stringify({ error });
    const head = `HTTP/1.1 ${status} Proxy\r\ncontent-type: application/json\r\ncontent-length: ${
      encoder.encode(body).length
    }\r\nconnection: close\r\n\r\n`;
    await client.write(encoder.encode(head + body)).catch(() => {});
  };

  const serve = async (client: Deno.Conn) => {
    const request = await readHead(client);
    if (!request) return;
    const path: string[] = [];
    hops.push(path);
    const ids = [...ports.keys()];
    const first = turn++ % Math.max(1, ids.length);
    // The first hop: the next instance in turn that accepts the connection.
    let candidates = [...ids.slice(first), ...ids.slice(0, first)];
    let head = request.head;
    for (let replays = 0; replays <= MAX_REPLAYS; replays++) {
      let upstream: Deno.TcpConn | null = null;
      let id = "";
      for (const candidate of candidates) {
        upstream = await connectTo(candidate);
        if (upstream) {
          id = candidate;
          break;
        }
      }
      if (!upstream) return await answer(client, 502, "no instance could take the request");
      path.push(id);
      open.add(upstream);
      try {
        await upstream.write(encoder.encode(`${head}\r\n\r\n`));
        if (request.rest.length > 0) await upstream.write(request.rest);
        const response = await readHead(upstream);
        if (!response) return await answer(client, 502, `instance ${id} closed the connection`);
        const replay = headerOf(response.head, FLY_REPLAY_HEADER);
        if (replay === undefined) {
          await client.write(encoder.encode(`${response.head}\r\n\r\n`));
          if (response.rest.length > 0) await client.write(response.rest);
          await Promise.allSettled([
            client.readable.pipeTo(upstream.writable),
            upstream.readable.pipeTo(client.writable),
          ]);
          return;
        }
        const fields = new Map(
          replay.split(";").map((field) => {
            const [key, value = ""] = field.trim().split("=");
            return [key, value] as const;
          }),
        );
        const instance = fields.get("instance");
        candidates = instance ? [instance] : ids.filter((other) => other !== id);
        head = `${request.head}\r\n${FLY_REPLAY_SRC_HEADER}: instance=${id};t=${Date.now()}`;
      } finally {
        open.delete(upstream);
        try {
          upstream.close();
        } catch {
          // Already closed by the pipe.
        }
      }
    }
    await answer(client, 502, "too many replays");
  };

  const accepting = (async () => {
    for await (const client of listener) {
      open.add(client);
      serve(client).catch(() => {}).finally(() => {
        open.delete(client);
        try {
          client.close();
        } catch {
          // Already closed by the pipe.
        }
      });
    }
  })().catch(() => {});

  const port = (listener.addr as Deno.NetAddr).port;
  return {
    url: `http://127.0.0.1:${port}`,
    relayUrl: `ws://127.0.0.1:${port}`,
    hops,
    setInstance(id, instancePort) {
      if (instancePort === null) ports.delete(id);
      else ports.set(id, instancePort);
    },
    nextFirstHop(id) {
      const index = [...ports.keys()].indexOf(id);
      if (index < 0) throw new Error(`no instance ${id}`);
      turn = index;
    },
    async close() {
      listener.close();
      for (const conn of open) {
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
      await accepting;
    },
  };
}
