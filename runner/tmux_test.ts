/** TTY_SYNC=tmux: sessions outlive the runner process and are re-adopted by the next one. */
import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { SessionManager } from "./session_manager.ts";
import { checkTmux, hasTmuxSession, TmuxMissingError, type TmuxSettings } from "./tmux.ts";
import { silentLogger } from "./log.ts";
import { CollectingSink, testShellEnv, waitFor } from "./_testing.ts";

const SID = "tmux-session-1";

function managerFor(home: string, sink: CollectingSink, tmux: TmuxSettings): SessionManager {
  return new SessionManager({
    sink,
    log: silentLogger,
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
