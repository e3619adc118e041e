/** TTY_SYNC=tmux: sessions outlive the runner process and are re-adopted by the next one. */
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { SessionManager } from "./session_manager.ts";
import { checkTmux, hasTmuxSession, TmuxMissingError, type TmuxSettings } from "./tmux.ts";
import { createLogger, type Logger, silentLogger } from "./log.ts";
import { CollectingSink, testShellEnv, waitFor } from "./testing.ts";

const SID = "tmux-session-1";

function managerFor(
  home: string,
  sink: CollectingSink,
  tmux: TmuxSettings,
  log: Logger = silentLogger,
): SessionManager {
  return new SessionManager({
    sink,
    log,
    env: testShellEnv(home),
    home,
    graceMs: 60_000,
    replayBytes: 1024 * 1024,
    tmux,
  });
}

Deno.test("tmux mode: a session survives a runner restart and is re-adopted", async () => {
  const home = await Deno.makeTempDir({ prefix: "coda-tmux-home-" });
  const tmux: TmuxSettings = { binary: "tmux", socket: `coda-test-${crypto.randomUUID().slice(0, 8)}` };
  try {
    await checkTmux(tmux);
    const firstSink = new CollectingSink();
    const first = managerFor(home, firstSink, tmux);
    await first.handle({ type: "attach", sessionId: SID, clientId: "c1", cols: 100, rows: 30 });
    await first.handle({ type: "stdin", sessionId: SID, data: "echo pid-$$-$((20 + 1))\r" });
    const pid = await waitFor(() => /pid-(\d+)-21/.exec(firstSink.output(SID))?.[1], "the shell's pid");
    assert(await hasTmuxSession(tmux, SID));

    await first.shutdown();
    assert(await hasTmuxSession(tmux, SID), "the tmux session outlives the runner");

    const secondSink = new CollectingSink();
    const second = managerFor(home, secondSink, tmux);
    const offset = new TextEncoder().encode(firstSink.output(SID)).length;
    await second.handle({ type: "attach", sessionId: SID, clientId: "c2", offset, cols: 100, rows: 30 });
    assert(secondSink.metas(SID).includes("coda:reset"), "a new stream starts at 0");
    await waitFor(() => secondSink.output(SID).includes("pid-"), "tmux to redraw the screen");
    await second.handle({ type: "stdin", sessionId: SID, data: "echo again-$$-$((40 + 2))\r" });
    await waitFor(() => secondSink.output(SID).includes(`again-${pid}-42`), "the same shell answering");

    await second.handle({ type: "kill", sessionId: SID });
    await waitFor(() => secondSink.frames.some((f) => f.type === "end"), "end after kill");
    assertEquals(await hasTmuxSession(tmux, SID), false);
    await second.shutdown();
  } finally {
    await new Deno.Command("tmux", {
      args: ["-L", tmux.socket, "kill-server"],
      stderr: "null",
      stdout: "null",
    })
      .output();
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("tmux mode: a missing tmux is a clear error", async () => {
  const error = await checkTmux({ binary: "/nonexistent/tmux", socket: "coda-test" }).then(
    () => undefined,
    (e) => e,
  );
  assert(error instanceof TmuxMissingError);
  assert(error.message.includes("TTY_SYNC=tmux needs tmux"));
});

/** A tmux server of its own for one test; disposing kills it. */
function tmuxServer() {
  const settings: TmuxSettings = { binary: "tmux", socket: `coda-test-${crypto.randomUUID().slice(0, 8)}` };
  return {
    settings,
    async [Symbol.asyncDispose]() {
      await new Deno.Command("tmux", {
        args: ["-L", settings.socket, "kill-server"],
        stderr: "null",
        stdout: "null",
      })
        .output();
    },
  };
}

Deno.test("tmux mode: letting go of a session at shutdown neither logs nor sends that it ended", async () => {
  const home = await Deno.makeTempDir({ prefix: "coda-tmux-home-" });
  await using server = tmuxServer();
  const lines: string[] = [];
  const sink = new CollectingSink();
  const manager = managerFor(
    home,
    sink,
    server.settings,
    createLogger({ write: (line) => lines.push(line) }),
  );
  try {
    await manager.handle({ type: "attach", sessionId: SID, clientId: "c1" });
    await manager.handle({ type: "stdin", sessionId: SID, data: "echo up-$((1 + 1))\r" });
    await waitFor(() => sink.output(SID).includes("up-2"), "the shell");
    await manager.shutdown();
    assert(await hasTmuxSession(server.settings, SID), "the tmux session outlives the runner");
    assert(!lines.some((line) => line.includes("session ended")), lines.join("\n"));
    assert(lines.some((line) => line.includes("keeps running in tmux")), lines.join("\n"));
    assert(!sink.frames.some((frame) => frame.type === "end"), "no end for a session that goes on");
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("tmux mode: shutdown with endTmux ends held and left-over Coda sessions", async () => {
  const home = await Deno.makeTempDir({ prefix: "coda-tmux-home-" });
  await using server = tmuxServer();
  const { settings } = server;
  try {
    // One left by an earlier runner and not re-adopted, one that is not Coda's.
    for (const name of ["coda-left-over", "someone-else"]) {
      const created = await new Deno.Command("tmux", {
        args: ["-L", settings.socket, "new-session", "-d", "-s", name],
        stdout: "null",
        stderr: "null",
      }).output();
      assert(created.success);
    }
    const sink = new CollectingSink();
    const manager = managerFor(home, sink, settings);
    await manager.handle({ type: "attach", sessionId: SID, clientId: "c1" });
    await manager.handle({ type: "stdin", sessionId: SID, data: "echo up-$((1 + 2))\r" });
    await waitFor(() => sink.output(SID).includes("up-3"), "the shell");
    await manager.shutdown({ endTmux: true });
    assertEquals(await hasTmuxSession(settings, SID), false);
    assertEquals(await hasTmuxSession(settings, "left-over"), false);
    const other = await new Deno.Command("tmux", {
      args: ["-L", settings.socket, "has-session", "-t", "=someone-else"],
      stdout: "null",
      stderr: "null",
    }).output();
    assert(other.success, "a session that is not Coda's is left alone");
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
