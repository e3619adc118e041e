import { deepEqual as assertEquals, ok as assert, rejects as assertRejects } from "node:assert/strict";
import { join } from "node:path";
import { concatBytes } from "@coda/relay/bytes";
import { listenUnix, UnixStream } from "./unix_stream.ts";

/** A listening socket in a fresh directory, and a connected pair of streams through it. */
async function pair(): Promise<{ client: UnixStream; server: UnixStream } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "coda-unix-stream-" });
  const accepted = Promise.withResolvers<UnixStream>();
  const listener = listenUnix(join(dir, "s.sock"), (stream) => accepted.resolve(stream));
  const client = await UnixStream.connect(join(dir, "s.sock"));
  const server = await accepted.promise;
  return {
    client,
    server,
    async [Symbol.asyncDispose]() {
      client.destroy();
      server.destroy();
      listener.close();
      await Promise.all([client.closed, server.closed]);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Collects what `stream` reads until it closes; every view is kept, so a slab written twice shows. */
function collect(
  stream: UnixStream,
): { views: Uint8Array[]; closed: Promise<Uint8Array>; closes: () => number } {
  const views: Uint8Array[] = [];
  let closes = 0;
  const closed = Promise.withResolvers<Uint8Array>();
  stream.start({
    onData: (bytes) => views.push(bytes),
    onClose: () => {
      closes++;
      closed.resolve(concatBytes(views));
    },
  });
  return { views, closed: closed.promise, closes: () => closes };
}

Deno.test("unix stream: 8 MiB written in parts of every size arrive in order, and views stay valid", async () => {
  await using sockets = await pair();
  const sent = new Uint8Array(8 * 1024 * 1024);
  for (let at = 0; at < sent.length; at += 65536) crypto.getRandomValues(sent.subarray(at, at + 65536));
  const received = collect(sockets.server);
  sockets.client.start({ onData: () => {}, onClose: () => {} });
  const sizes = [1, 5, 4096, 70_000, 300_000, 17];
  for (let at = 0, i = 0; at < sent.length; i++) {
    const parts = [];
    for (let k = 0; k < 3 && at < sent.length; k++) {
      const size = sizes[(i + k) % sizes.length];
      parts.push(sent.subarray(at, at + size));
      at += size;
    }
    sockets.client.write(parts);
  }
  await sockets.client.end(10_000);
  const bytes = await received.closed;
  assertEquals(bytes.length, sent.length);
  assert(bytes.every((byte, i) => byte === sent[i]), "byte-exact, in order");
  assertEquals(received.closes(), 1);
});

Deno.test("unix stream: a paused reader backs the writer's queue up; resumed, everything arrives", async () => {
  await using sockets = await pair();
  sockets.server.pause();
  const received = collect(sockets.server);
  sockets.client.start({ onData: () => {}, onClose: () => {} });
  const chunk = new Uint8Array(64 * 1024).fill(7);
  for (let i = 0; i < 256; i++) sockets.client.write([chunk]);
  // The writer hands the kernel what its buffers take (a few hundred KiB), then its queue stops shrinking.
  let queued = -1;
  while (sockets.client.bufferedAmount !== queued) {
    queued = sockets.client.bufferedAmount;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert(queued > 14 * 1024 * 1024, `most of 16 MiB still queued (${queued})`);
  const read = received.views.reduce((sum, view) => sum + view.length, 0);
  assert(read <= 256 * 1024, `at most the read in flight when paused (${read})`);
  sockets.server.resume();
  await sockets.client.end(10_000);
  assertEquals((await received.closed).length, 256 * chunk.length);
  assertEquals(sockets.client.bufferedAmount, 0);
});

Deno.test("unix stream: nobody listening rejects; a closed stream drops writes and closes once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "coda-unix-stream-" });
  try {
    await assertRejects(UnixStream.connect(join(dir, "nobody.sock")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  await using sockets = await pair();
  const server = collect(sockets.server);
  const client = collect(sockets.client);
  sockets.client.destroy();
  sockets.client.destroy();
  sockets.client.write([new Uint8Array(10)]);
  assertEquals(sockets.client.bufferedAmount, 0);
  assertEquals((await server.closed).length, 0, "the peer sees the close");
  await client.closed;
  assertEquals([client.closes(), server.closes()], [1, 1]);
  assert(sockets.client.isClosed && sockets.server.isClosed);
});

Deno.test("unix stream: a write that fails because the peer left keeps what the peer wrote before it", async () => {
  await using sockets = await pair();
  // The peer never reads what it is sent, and leaves after writing; this end reads only after its own write
  // has failed, as a runner whose holder ended while acks were on their way.
  sockets.server.pause();
  sockets.server.start({ onData: () => {}, onClose: () => {} });
  sockets.client.pause();
  const received = collect(sockets.client);
  const data = new Uint8Array(100_000).fill(9);
  sockets.server.write([data]);
  sockets.client.write([new Uint8Array(10)]);
  await sockets.server.end(10_000);
  sockets.client.write([new Uint8Array(10)]);
  // The failed write settles within the turn it was issued in.
  await new Promise((resolve) => setTimeout(resolve, 0));
  assertEquals(sockets.client.bufferedAmount, 0);
  sockets.client.resume();
  assertEquals((await received.closed).length, data.length);
});
