/**
 * The bench's raw WebSocket loopback: a bare `Deno.serve` that sends one file
 * to each client as 4 KiB binary frames (the size of a PTY read), then closes
 * with 1000. No protocol, no parsing: what a WebSocket between two Deno
 * processes costs for the same bytes the terminal paths carry.
 *
 * `deno run -A bench/loopback_server.ts FILE` prints `listening PORT`.
 *
 * @module
 */

/** Bytes per frame: what one PTY read gives. */
export const LOOPBACK_FRAME_BYTES = 4096;
/** Bytes queued on the socket before the sender waits for it to drain. */
const HIGH_WATER_BYTES = 1024 * 1024;

async function stream(socket: WebSocket, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length; at += LOOPBACK_FRAME_BYTES) {
    if (socket.readyState !== WebSocket.OPEN) return;
    socket.send(bytes.subarray(at, at + LOOPBACK_FRAME_BYTES));
    // Deno reports no drain event: poll the queue, as a sender with flow control must.
    while (socket.bufferedAmount > HIGH_WATER_BYTES) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  while (socket.bufferedAmount > 0) await new Promise((resolve) => setTimeout(resolve, 1));
  socket.close(1000, "done");
}

if (import.meta.main) {
  const bytes = await Deno.readFile(Deno.args[0]);
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => console.log(`listening ${port}`),
  }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => void stream(socket, bytes);
    return response;
  });
  await server.finished;
}
