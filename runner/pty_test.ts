import { deepEqual as assertEquals, ok as assert } from "node:assert/strict";
import { setImmediate } from "node:timers";
import { sessionEnv, spawnPty, userShell } from "./pty.ts";

Deno.test("a session's environment: terminal variables set, the runner's secrets and tmux client vars gone", () => {
  const env = sessionEnv({
    sessionId: "session-0001",
    ideaId: "idea-1",
    env: {
      PATH: "/bin",
      RUNNER_TOKEN: "secret",
      TMUX: "/tmp/tmux-0/default,1,0",
      TERM: "dumb",
      CODA_IDEA_ID: "old",
    },
  });
  assertEquals(env, {
    PATH: "/bin",
    TERM: "xterm-256color",
    COLORTERM: "truecolor",
    CODA_SESSION_ID: "session-0001",
    CODA_IDEA_ID: "idea-1",
  });
  assertEquals(
    sessionEnv({ sessionId: "session-0001", env: { CODA_IDEA_ID: "old" } }).CODA_IDEA_ID,
    undefined,
  );
});

Deno.test("the user's shell as a login shell; %COMSPEC% on Windows", () => {
  assertEquals(userShell({ SHELL: "/bin/zsh" }, "linux"), { file: "/bin/zsh", args: ["-l"] });
  assertEquals(userShell({}, "darwin"), { file: "/bin/bash", args: ["-l"] });
  assertEquals(userShell({ COMSPEC: "C:\\Windows\\cmd.exe" }, "windows"), {
    file: "C:\\Windows\\cmd.exe",
    args: [],
  });
});

Deno.test("the PTY hands out raw bytes, and the terminal still knows it speaks UTF-8 (IUTF8)", async () => {
  const home = await Deno.makeTempDir();
  try {
    const child = spawnPty({
      sessionId: "session-0001",
      cwd: home,
      cols: 80,
      rows: 24,
      env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", HOME: home, SHELL: "/bin/sh" },
    });
    const reads: (Uint8Array | string)[] = [];
    child.onData((data) => reads.push(data));
    const exited = new Promise((resolve) => child.onExit(resolve));
    child.write("stty -a | tr ' ' '\\n' | grep -x -- '-*iutf8'; printf '\\377\\303\\251'; exit\r");
    await exited;
    assert(reads.every((read) => read instanceof Uint8Array), "every read is bytes");
    const bytes = new Uint8Array(reads.flatMap((read) => [...(read as Uint8Array)]));
    const text = new TextDecoder().decode(bytes);
    assert(/(?<!-)iutf8\r\n/.test(text), text);
    // A byte that is no UTF-8 reaches the session as it is, not as U+FFFD.
    assert(bytes.join(",").includes("255,195,169"), text);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("resizes between the PTY's close and its exit never reach the closed descriptor", async () => {
  const home = await Deno.makeTempDir();
  try {
    let refused = 0;
    for (let round = 0; round < 20; round++) {
      const child = spawnPty({
        sessionId: "session-0001",
        cwd: home,
        cols: 80,
        rows: 24,
        env: { HOME: home },
      });
      let exited = false;
      const exit = new Promise<void>((resolve) =>
        child.onExit(() => {
          exited = true;
          resolve();
        })
      );
      child.kill("SIGKILL");
      // node-pty closes the descriptor when its read stream ends and reports the exit after; every turn
      // of the event loop in between gets a resize, as a client's would arrive.
      await new Promise<void>((resolve) => {
        const tick = () => {
          if (exited) return resolve();
          try {
            child.resize(81 + (round % 5), 25);
          } catch {
            refused++;
          }
          setImmediate(tick);
        };
        tick();
      });
      await exit;
    }
    assertEquals(refused, 0, "no resize hit a closed (or reused) descriptor");
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
