import { deepEqual as assertEquals, notEqual as assertNotEqual, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { SessionManager } from "./session_manager.ts";
import { RunnerFileStore } from "./credentials.ts";
import { silentLogger } from "./log.ts";
import { CollectingSink, testShellEnv, waitFor } from "./testing.ts";
import {
  INIT_FILES,
  integratedShell,
  integrationDir,
  parseFileUrl,
  ShellTracker,
} from "./shell_integration.ts";

const NONCE = "0123456789abcdef";
const PROMPT = "ready> ";
const SID = "session-0001";

/* ------------------------------------------------------------------ */
/* The tracker on its own.                                             */
/* ------------------------------------------------------------------ */

/** Ordinary text and integration sequences, in stream order. */
const STREAM: { text: string; ours: boolean }[] = [
  { text: "$ cd /tmp\r\n", ours: false },
  { text: "\x1b]133;C\x07", ours: true },
  { text: "\x1b]133;D;0\x07", ours: true },
  { text: "\x1b]7;file://host/tmp/a%20%C3%A9\x07", ours: true },
  { text: `\x1b]133;A;coda=${NONCE}\x07`, ours: true },
  { text: "\x1b]0;title\x07\x1b[1m$ \x1b[0m", ours: false },
  { text: "\x1b]133;B\x1b\\", ours: true },
  { text: "é\x1b]10;?\x07", ours: false },
];

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The tracker's byte filter, with text in and out. */
function textFilter(tracker: ShellTracker) {
  return {
    filter: (text: string) => decoder.decode(tracker.filter(encoder.encode(text))),
    flush: () => decoder.decode(tracker.flush()),
  };
}

Deno.test("the tracker strips every integration sequence however the reads split, holding back only a sequence's start", () => {
  const parts = STREAM.map((part) => ({ bytes: encoder.encode(part.text), ours: part.ours }));
  const all = encoder.encode(STREAM.map((part) => part.text).join(""));
  const expected = encoder.encode(STREAM.filter((part) => !part.ours).map((part) => part.text).join(""));
  // For every byte position (inside multi-byte characters too): how many ordinary bytes lie wholly before it.
  const ordinaryBefore: number[] = [0];
  for (const part of parts) {
    for (let i = 0; i < part.bytes.length; i++) {
      ordinaryBefore.push(ordinaryBefore.at(-1)! + (part.ours ? 0 : 1));
    }
  }
  for (let cut = 0; cut <= all.length; cut++) {
    const cwds: string[] = [];
    const tracker = new ShellTracker("bash", NONCE, (path) => cwds.push(path));
    const first = tracker.filter(all.slice(0, cut));
    // Ordinary bytes wait only while they could begin a sequence (ESC ] 1 could be ESC ] 133 ;).
    const held = decoder.decode(all.slice(cut - (ordinaryBefore[cut] - first.length), cut));
    assert(held === "" || "\x1b]133;".startsWith(held), `cut ${cut}: held ${JSON.stringify(held)}`);
    assertEquals(first, expected.slice(0, first.length), `cut ${cut}`);
    const second = tracker.filter(all.slice(cut));
    assertEquals(new Uint8Array([...first, ...second]), expected, `cut ${cut}`);
    assertEquals(cwds, ["/tmp/a é"], `cut ${cut}`);
    assertEquals(tracker.state, "prompt");
  }
});

Deno.test("the tracker: forged marks and an OSC 7 that no prompt mark vouches for change nothing", () => {
  const cwds: string[] = [];
  const tracker = new ShellTracker("bash", NONCE, (path) => cwds.push(path));
  const text = textFilter(tracker);
  text.filter("\x1b]133;C\x07");
  assertEquals(tracker.state, "running");
  assertEquals(text.filter("\x1b]7;file:///etc\x07\x1b]133;A\x07\x1b]133;A;coda=guess\x07"), "");
  assertEquals(tracker.state, "running");
  assertEquals(text.filter(`\x1b]7;file:///etc\x07x\x1b]133;A;coda=${NONCE}\x07`), "x");
  assertEquals(tracker.state, "prompt");
  assertEquals(cwds, []);
  // A lone ESC at the end of a read waits for the next one, or for flush.
  assertEquals(text.filter("ab\x1b"), "ab");
  assert(tracker.holding);
  assertEquals(text.filter("[31m"), "\x1b[31m");
  assertEquals(text.filter("\x1b]7;file:///x"), "");
  assertEquals(text.flush(), "\x1b]7;file:///x");
  assert(!tracker.holding);
  assertEquals(parseFileUrl("file://h/a%2"), undefined);
  assertEquals(parseFileUrl("http://h/a"), undefined);
});

Deno.test("the tracker: input at a prompt is a typed line; input while a command runs is typed ahead", () => {
  const tracker = new ShellTracker("bash", NONCE, () => {});
  const text = textFilter(tracker);
  const prompt = `\x1b]133;A;coda=${NONCE}\x07`;
  text.filter(prompt);
  // What the terminal answers to a program's queries is nobody's typing; an arrow key is.
  tracker.input("\x1b[?62;22c\x1b[?1u\x1b]11;rgb:0000/0000/0000\x1b\\\x1bP>|xterm.js\x1b\\");
  assert(!tracker.typed);
  tracker.input("\x1b[A");
  assert(tracker.typed && !tracker.typedAhead);
  text.filter("\x1b]133;C\x07");
  tracker.input("x");
  text.filter(prompt);
  assert(!tracker.typed && tracker.typedAhead);
  text.filter(prompt);
  assert(!tracker.typed && !tracker.typedAhead);
});

Deno.test("bash, zsh and fish get the integration, with the nonce and zsh's own ZDOTDIR kept; other shells none", () => {
  const bash = integratedShell("/bin/bash", { HOME: "/h" }, "/d", NONCE)!;
  assertEquals([bash.kind, bash.file, bash.args], ["bash", "/bin/bash", [
    "--rcfile",
    "/d/bash/rc.bash",
    "-i",
  ]]);
  assertEquals(bash.env, { HOME: "/h", CODA_SHELL_NONCE: NONCE });
  const zsh = integratedShell("/usr/bin/zsh", { ZDOTDIR: "/u" }, "/d", NONCE)!;
  assertEquals(zsh.env, { ZDOTDIR: "/d/zsh", CODA_USER_ZDOTDIR: "/u", CODA_SHELL_NONCE: NONCE });
  assertEquals(integratedShell("/usr/bin/zsh", {}, "/d", NONCE)!.env.CODA_USER_ZDOTDIR, undefined);
  assertEquals(integratedShell("/usr/bin/fish", {}, "/it's", NONCE)!.args, [
    "-l",
    "--init-command",
    "source '/it\\'s/fish/init.fish'",
  ]);
  assertEquals(integratedShell("/bin/sh", {}, "/d"), undefined);
  assertEquals(integratedShell("/bin/dash", {}, "/d"), undefined);
});

Deno.test("the init files live in a 0700 directory of this user; a directory in any other state is not used", async () => {
  const base = await Deno.makeTempDir({ prefix: "coda-shell-base-" });
  try {
    const uid = Deno.uid()!;
    const dir = integrationDir(base);
    assertEquals(dir, join(base, `coda-shell-${uid}`));
    assertEquals((await Deno.stat(dir)).mode! & 0o777, 0o700);
    for (const path of Object.keys(INIT_FILES)) {
      assertEquals((await Deno.stat(join(dir, path))).mode! & 0o777, 0o600, path);
    }
    const loose = await Deno.makeTempDir({ prefix: "coda-shell-base-" });
    await Deno.mkdir(join(loose, `coda-shell-${uid}`), { mode: 0o755 });
    await Deno.chmod(join(loose, `coda-shell-${uid}`), 0o755);
    const fallback = integrationDir(loose);
    assertNotEqual(fallback, join(loose, `coda-shell-${uid}`));
    assertEquals((await Deno.stat(fallback)).mode! & 0o777, 0o700);
    await Deno.remove(loose, { recursive: true });
    await Deno.remove(fallback, { recursive: true });
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

/* ------------------------------------------------------------------ */
/* Real shells in real PTYs.                                           */
/* ------------------------------------------------------------------ */

function installed(shell: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(join(dir, shell)).isFile) return join(dir, shell);
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

interface ShellHarness {
  manager: SessionManager;
  sink: CollectingSink;
  home: string;
  store: RunnerFileStore;
  /** Types into the session. */
  type(data: string): Promise<void>;
  output(): string;
  metas(): string[];
  /** Runs an echo and waits for its output and the prompt after it. */
  atPrompt(): Promise<void>;
  /** Waits until the shell says it is in `dir` (echo of `$PWD`). */
  expectPwd(dir: string): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

let marks = 0;

/** A session manager whose shell is `shell` with a temp HOME holding `files`, attached as `c1`. */
async function shellHarness(
  shell: string,
  files: Record<string, string>,
  env: (home: string) => Record<string, string> = () => ({}),
): Promise<ShellHarness> {
  const home = await Deno.realPath(await Deno.makeTempDir({ prefix: "coda-shell-test-" }));
  for (const [path, text] of Object.entries(files)) {
    await Deno.mkdir(join(home, path, ".."), { recursive: true });
    await Deno.writeTextFile(join(home, path), text);
  }
  const sink = new CollectingSink();
  const store = new RunnerFileStore(join(home, "config", "config.json"));
  const manager = new SessionManager({
    sink,
    log: silentLogger,
    env: { ...testShellEnv(home), SHELL: shell, ...env(home) },
    home,
    graceMs: 60_000,
    replayBytes: 1024 * 1024,
    store,
  });
  const h: ShellHarness = {
    manager,
    sink,
    home,
    store,
    type: (data) => manager.handle({ type: "stdin", sessionId: SID, data }),
    output: () => sink.output(SID),
    metas: () => sink.metas(SID),
    async atPrompt() {
      const mark = `mark${++marks}`;
      // Quoted apart, so the echoed command line never matches what the command prints.
      await h.type(`echo "${mark.slice(0, 2)}""${mark.slice(2)}-done"\r`);
      await waitFor(() => {
        const out = h.output();
        const at = out.lastIndexOf(`${mark}-done`);
        return at >= 0 && out.indexOf(PROMPT, at) >= 0;
      }, `${mark} and the prompt after it`);
    },
    async expectPwd(dir) {
      const mark = `at${++marks}`;
      // No colon after $PWD: zsh would read `:e` as a modifier.
      const printed = new RegExp(`${mark}<([^\r\n]*)>\r\n`);
      await h.type(`echo "${mark}<$PWD>"\r`);
      await waitFor(() => printed.exec(h.output()), `the shell's answer to ${mark}`);
      assertEquals(printed.exec(h.output())?.[1], dir);
    },
    async [Symbol.asyncDispose]() {
      await manager.shutdown();
      await Deno.remove(home, { recursive: true });
    },
  };
  await manager.handle({ type: "attach", sessionId: SID, clientId: "c1", ideaId: "idea-1" });
  return h;
}

/** Startup files per shell: a prompt the tests know, and a marker proving the user's file ran. */
const SHELLS: { name: string; files: Record<string, string> }[] = [
  {
    name: "bash",
    // As Debian's default ~/.profile does: the login file loads ~/.bashrc.
    files: {
      ".profile": '. "$HOME/.bashrc"\n',
      ".bashrc": `PS1='${PROMPT}'\nexport CODA_TEST_MARKER=from-rc\n`,
    },
  },
  { name: "zsh", files: { ".zshrc": `PROMPT='${PROMPT}'\nexport CODA_TEST_MARKER=from-rc\n` } },
  {
    name: "fish",
    files: {
      ".config/fish/config.fish":
        `set -g fish_greeting\nfunction fish_prompt; printf '${PROMPT}'; end\nset -gx CODA_TEST_MARKER from-rc\n`,
    },
  },
];

for (const { name, files } of SHELLS) {
  const shell = installed(name);
  const test = (title: string, fn: () => Promise<void>) =>
    Deno.test({ name: `${name}: ${title}`, ignore: shell === undefined, fn });

  test("the user's startup file still loads, and the nonce does not reach the shell's children", async () => {
    await using h = await shellHarness(shell!, files);
    await h.type(`echo "marker<$CODA_TEST_MARKER> nonce<$CODA_SHELL_NONCE>"\r`);
    await waitFor(() => h.output().includes("marker<from-rc> nonce<>"), "the marker from the user's rc file");
  });

  test("the real directory after `cd` is a coda:cwd meta line, and no integration sequence reaches a client", async () => {
    await using h = await shellHarness(shell!, files);
    const dir = join(h.home, "a dir é");
    await Deno.mkdir(dir);
    await h.type(`cd '${dir}'\r`);
    await waitFor(() => h.metas().includes(`coda:cwd:${dir}`), "coda:cwd of the new directory");
    // Sent when it changes, not at every prompt.
    await h.atPrompt();
    assertEquals(h.metas().filter((meta) => meta === `coda:cwd:${dir}`).length, 1);
    assertEquals(h.manager.get(SID)!.cwd, dir);
    await h.manager.handle({ type: "attach", sessionId: SID, clientId: "c2" });
    const replay = h.sink.output(SID, "c2");
    const live = h.output();
    for (const out of [live, replay]) {
      assert(!out.includes("\x1b]7;") && !out.includes("\x1b]133;"), JSON.stringify(out.slice(-300)));
    }
    // Offsets count the stripped stream: the replay from 0 is exactly what went out live.
    const attached = h.sink.frames.find((f) => f.type === "attached" && f.clientId === "c2");
    assert(attached?.type === "attached");
    assert(live.startsWith(replay), "the replay is the live stream up to the attach");
    assertEquals(new TextEncoder().encode(replay).length, attached.offset);
  });

  test("pick-cwd at an empty prompt changes the shell's directory", async () => {
    await using h = await shellHarness(shell!, files);
    const dir = join(h.home, "it's a dir");
    await Deno.mkdir(dir);
    await h.manager.handle({ type: "pick-cwd", sessionId: SID, path: dir });
    assertEquals(h.metas().at(-1), `coda:cwd:${dir}`);
    await h.expectPwd(dir);
    assertEquals((await h.store.read()).cwds, { "idea-1": dir });
  });

  test("pick-cwd while a command runs is refused, and the shell stays where it is", async () => {
    await using h = await shellHarness(shell!, files);
    const dir = join(h.home, "target");
    await Deno.mkdir(dir);
    await h.type(`echo "sle""eping"; sleep 5\r`);
    await waitFor(() => h.output().includes("sleeping"), "sleep to start");
    await h.manager.handle({ type: "pick-cwd", sessionId: SID, path: dir });
    assertEquals(h.metas().at(-1), "coda:error:pick-cwd: a command is running");
    // New sessions of the idea start there all the same.
    assertEquals((await h.store.read()).cwds, { "idea-1": dir });
    await h.expectPwd(h.home);
    assert(!h.metas().includes(`coda:cwd:${dir}`));
  });

  test("pick-cwd with a half-typed line is refused and leaves the line alone", async () => {
    await using h = await shellHarness(shell!, files);
    const dir = join(h.home, "target");
    await Deno.mkdir(dir);
    await h.atPrompt();
    await h.type("echo half-");
    await h.manager.handle({ type: "pick-cwd", sessionId: SID, path: dir });
    assertEquals(h.metas().at(-1), "coda:error:pick-cwd: there is typed input at the prompt");
    await h.type("typed\r");
    await waitFor(() => h.output().includes("half-typed\r\n"), "the half-typed line, finished");
    await h.expectPwd(h.home);
  });

  test("keys typed ahead while a command ran do not end up in front of the cd", async () => {
    await using h = await shellHarness(shell!, files);
    const dir = join(h.home, "target");
    await Deno.mkdir(dir);
    await h.type(`echo "sle""eping"; sleep 1\r`);
    await waitFor(() => h.output().includes("sleeping"), "sleep to start");
    await h.type("echo ahead-");
    await waitFor(
      () => h.output().indexOf(PROMPT, h.output().indexOf("sleeping")) >= 0,
      "the prompt after sleep",
    );
    await h.manager.handle({ type: "pick-cwd", sessionId: SID, path: dir });
    assertEquals(h.metas().at(-1), `coda:cwd:${dir}`);
    await h.expectPwd(dir);
  });

  test("a program printing forged marks cannot make a running command look like a prompt", async () => {
    await using h = await shellHarness(shell!, files);
    const dir = join(h.home, "target");
    await Deno.mkdir(dir);
    await h.atPrompt();
    await h.type(`printf '\\033]7;file:///etc\\007\\033]133;A;coda=forged\\007'; echo "ca""t-start"; cat\r`);
    await waitFor(() => h.output().includes("cat-start"), "cat to start");
    await h.manager.handle({ type: "pick-cwd", sessionId: SID, path: dir });
    assertEquals(h.metas().at(-1), "coda:error:pick-cwd: a command is running");
    assert(!h.metas().includes("coda:cwd:/etc"));
    await h.type("\x04");
    await h.expectPwd(h.home);
  });
}

Deno.test({
  name: "bash: ~/.bashrc loads also when there is no login file to load it",
  ignore: installed("bash") === undefined,
  async fn() {
    await using h = await shellHarness(installed("bash")!, {
      ".bashrc": "export CODA_TEST_MARKER=from-bashrc\n",
    });
    await h.type(`echo "marker<$CODA_TEST_MARKER>"\r`);
    await waitFor(() => h.output().includes("marker<from-bashrc>"), "the marker from ~/.bashrc");
  },
});

Deno.test({
  name: "zsh: a ZDOTDIR of the user's own is where their files load from, and what the shell's children see",
  ignore: installed("zsh") === undefined,
  async fn() {
    await using h = await shellHarness(
      installed("zsh")!,
      { "zdot/.zshrc": "export CODA_TEST_MARKER=from-zdotdir\n" },
      (home) => ({ ZDOTDIR: join(home, "zdot") }),
    );
    await h.type(`echo "marker<$CODA_TEST_MARKER> zdotdir<$ZDOTDIR>"\r`);
    const expected = `marker<from-zdotdir> zdotdir<${join(h.home, "zdot")}>`;
    await waitFor(() => h.output().includes(expected), "the marker from the user's ZDOTDIR");
  },
});

Deno.test("a shell without integration (sh) still gets pick-cwd typed in, as before", async () => {
  const sh = installed("sh");
  if (!sh) return;
  await using h = await shellHarness(sh, {});
  const dir = join(h.home, "target");
  await Deno.mkdir(dir);
  await h.manager.handle({ type: "pick-cwd", sessionId: SID, path: dir });
  assertEquals(h.metas().at(-1), `coda:cwd:${dir}`);
  await h.expectPwd(dir);
});
