import assert from "node:assert/strict";
import { join } from "node:path";
import {
  assertNoCanaryOnDisk,
  createFixture,
  fakeChatGptAuth,
  fakeCodexEnv,
  type Fixture,
  flockState,
  isProcessAlive,
  pathExists,
  ramCopies,
  runCommand,
  SECURE_CODEX,
  spawnSecureCodex,
  startTokenMock,
  waitFor,
  writeFakeCodex,
} from "./helpers.ts";
import { FORWARDED_SIGNALS } from "../lib/child.ts";

interface StoredAuth {
  auth_mode?: string;
  OPENAI_API_KEY?: string | null;
  tokens?: { refresh_token: string } | null;
}

/** Creates the directory a fake codex writes its marker files into. */
async function makeMarkDir(fixture: Fixture): Promise<string> {
  const markDir = join(fixture.dir, "marks");
  await Deno.mkdir(markDir, { recursive: true });
  return markDir;
}

Deno.test("login status through the wrapper", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const result = await fixture.run(["--", "login", "status"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout + result.stderr, /Logged in using ChatGPT/);
    const link = join(fixture.codexHome, "auth.json");
    assert.ok(Deno.lstatSync(link).isSymlink);
    assert.equal(Deno.readLinkSync(link), join(fixture.ramDir(), "auth.json"));
  } finally {
    await fixture.dispose();
  }
});

Deno.test("trace file lists phase names only", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const trace = join(fixture.dir, "trace.jsonl");
    for (const start of ["cold", "warm"]) {
      const result = await fixture.run(["--", "login", "status"], {
        env: { SECURE_CODEX_TRACE: trace },
      });
      assert.equal(result.code, 0, `${start}: ${result.stderr}`);
    }
    const lines = (await Deno.readTextFile(trace)).trim().split("\n");
    assert.equal(lines.length, 2);
    const [cold, warm] = lines.map((line) =>
      JSON.parse(line) as [string, number][]
    );
    assert.deepEqual(cold.map(([phase]) => phase), [
      "loaded",
      "options",
      "session",
      "worker",
      "decrypt",
      "open",
      "watch",
      "codex",
      "leave",
    ]);
    assert.deepEqual(warm.map(([phase]) => phase), [
      "loaded",
      "options",
      "session",
      "open",
      "watch",
      "codex",
      "leave",
    ]);
    for (const [, at] of [...cold, ...warm]) {
      assert.equal(typeof at, "number");
      assert.ok(at >= 0);
    }
    const text = await Deno.readTextFile(trace);
    assert.ok(!text.includes(fixture.canary), "a token in the trace");
    assert.ok(!text.includes("/"), "a path in the trace");
  } finally {
    await fixture.dispose();
  }
});

Deno.test("trace path that is a FIFO is skipped", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fifo = join(dir, "trace");
    const mkfifo = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.equal(mkfifo.code, 0);
    // Opening a FIFO without a reader would block the exit, so it is skipped.
    const result = await new Deno.Command(SECURE_CODEX, {
      args: ["--version"],
      env: { SECURE_CODEX_TRACE: fifo },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(20_000),
    }).output();
    assert.equal(result.code, 0, new TextDecoder().decode(result.stderr));
    assert.match(new TextDecoder().decode(result.stdout), /^secure-codex /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("refresh rotates the stored token", async () => {
  const fixture = await createFixture();
  const mock = startTokenMock({ canary: fixture.canary, first: "rt-1" });
  try {
    await fixture.writeStore(
      fakeChatGptAuth({
        canary: fixture.canary,
        refreshToken: "rt-1",
        expiresIn: -600,
      }),
    );
    const env = { CODEX_REFRESH_TOKEN_URL_OVERRIDE: mock.url };
    const result = await fixture.run(["--", "mcp", "list"], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(
      mock.requests.map((request) => request.refreshToken),
      ["rt-1"],
    );
    const stored = await fixture.readStore() as StoredAuth;
    assert.equal(stored.tokens?.refresh_token, `rt-2-${fixture.canary}`);
  } finally {
    await mock.close();
    await fixture.dispose();
  }
});

Deno.test("refresh after cleanup never reuses RT1", async () => {
  const fixture = await createFixture();
  const mock = startTokenMock({ canary: fixture.canary, first: "rt-1" });
  try {
    await fixture.writeStore(
      fakeChatGptAuth({
        canary: fixture.canary,
        refreshToken: "rt-1",
        expiresIn: -600,
      }),
    );
    const env = { CODEX_REFRESH_TOKEN_URL_OVERRIDE: mock.url };

    const first = await fixture.run(["--", "mcp", "list"], { env });
    assert.equal(first.code, 0, first.stderr);
    const afterFirst = await fixture.readStore() as StoredAuth;
    assert.equal(afterFirst.tokens?.refresh_token, `rt-2-${fixture.canary}`);

    const cleanup = await fixture.run(["--cleanup"], { env });
    assert.equal(cleanup.code, 0, cleanup.stderr);
    assert.deepEqual(ramCopies(fixture), []);

    // The RAM copy is gone, so this run decrypts the store again. Had the
    // store kept the expired RT1 login, codex would send RT1 a second time.
    const second = await fixture.run(["--", "mcp", "list"], { env });
    assert.equal(second.code, 0, second.stderr);
    const rt1Requests = mock.requests.filter((request) =>
      request.refreshToken === "rt-1"
    );
    assert.equal(rt1Requests.length, 1);
    const afterSecond = await fixture.readStore() as StoredAuth;
    assert.equal(afterSecond.tokens?.refresh_token, `rt-2-${fixture.canary}`);
  } finally {
    await mock.close();
    await fixture.dispose();
  }
});

Deno.test("login with API key updates store", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const key = `sk-test-${fixture.canary}`;
    const result = await fixture.run(["--", "login", "--with-api-key"], {
      stdin: `${key}\n`,
    });
    assert.equal(result.code, 0, result.stderr);
    const stored = await fixture.readStore() as StoredAuth;
    assert.equal(stored.OPENAI_API_KEY, key);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("write-back while codex still runs", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(
      fakeChatGptAuth({ canary: fixture.canary, refreshToken: "rt-old" }),
    );
    const markDir = await makeMarkDir(fixture);
    // The new login comes from the environment, so the script on disk contains
    // no canary. It is saved the way codex saves: temp file next to the
    // resolved auth.json (in the RAM directory), then rename over it.
    const fakeDir = await writeFakeCodex(
      fixture,
      `set -eu
target=$(readlink -f "$CODEX_HOME/auth.json")
printf '%s' "$FAKE_NEW_AUTH" > "$(dirname "$target")/.auth-fake"
mv "$(dirname "$target")/.auth-fake" "$target"
date +%s%3N > "$MARK_DIR/renamed"
sleep 3
touch "$MARK_DIR/codex-done"
`,
    );
    const newAuth = fakeChatGptAuth({
      canary: fixture.canary,
      refreshToken: `rt-new-${fixture.canary}`,
    });
    const child = spawnSecureCodex(
      fixture,
      ["--", "exec", "hi"],
      fakeCodexEnv(fixture, fakeDir, {
        MARK_DIR: markDir,
        FAKE_NEW_AUTH: JSON.stringify(newAuth),
      }),
    );
    let exited = false;
    const status = child.status.then((value) => {
      exited = true;
      return value;
    });

    const renamedMark = join(markDir, "renamed");
    await waitFor(
      () => pathExists(renamedMark) || exited,
      "the fake codex to rename auth.json",
    );
    const doneMark = join(markDir, "codex-done");
    let savedAt: number | null = null;
    let runningAtSave = false;
    await waitFor(async () => {
      const stored = await fixture.readStore() as StoredAuth;
      if (stored.tokens?.refresh_token === `rt-new-${fixture.canary}`) {
        savedAt = Date.now();
        runningAtSave = !exited && !pathExists(doneMark);
        return true;
      }
      return exited;
    }, "the store to hold the new refresh token");
    const output = await child.output();
    await status;

    assert.ok(pathExists(renamedMark), "the fake codex did not run");
    assert.notEqual(savedAt, null, "the store never held the new token");
    assert.ok(runningAtSave, "saved only after codex exited");
    const renamedAt = Number(await Deno.readTextFile(renamedMark));
    const latencyMs = savedAt! - renamedAt;
    assert.ok(latencyMs <= 1000, `saved ${latencyMs} ms after the rename`);
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  } finally {
    await fixture.dispose();
  }
});

const EXIT_CASES = [
  { name: "exit 0 passes through", script: "exit 0\n", code: 0, signal: null },
  { name: "exit 3 passes through", script: "exit 3\n", code: 3, signal: null },
  {
    name: "exit 130 stays an exit, not a signal",
    script: "exit 130\n",
    code: 130,
    signal: null,
  },
  // A shell whose job dies of SIGINT or SIGTERM stops its loop, so the
  // wrapper dies of the same signal, after its own work.
  {
    name: "SIGTERM death is raised again",
    script: "kill -TERM $$\n",
    code: 143,
    signal: "SIGTERM",
  },
  {
    name: "SIGINT death is raised again",
    script: "trap - INT\nkill -INT $$\n",
    code: 130,
    signal: "SIGINT",
  },
  // SIGUSR1 sent to the wrapper itself after 0.5 s would make Deno open its
  // inspector on 127.0.0.1:9229.
  {
    name: "SIGUSR1 death gives 138",
    script: "kill -USR1 $$\n",
    code: 138,
    signal: null,
  },
  // A core dump of the wrapper could hold the worker's plaintext.
  {
    name: "SIGQUIT death gives 131 without a core dump",
    script: "kill -QUIT $$\n",
    code: 131,
    signal: null,
  },
  // Deno has no name for real-time signals; reading such a status used to
  // throw "Invalid signal".
  {
    name: "real-time signal 40 gives 168",
    script: "kill -40 $$\n",
    code: 168,
    signal: null,
  },
] as const;

for (const exitCase of EXIT_CASES) {
  Deno.test(`exit code: ${exitCase.name}`, async () => {
    const fixture = await createFixture();
    try {
      await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
      const fakeDir = await writeFakeCodex(fixture, exitCase.script);
      const result = await fixture.run(["--", "exec", "hi"], {
        env: fakeCodexEnv(fixture, fakeDir, { SECURE_CODEX_KEEP: "false" }),
      });
      assert.equal(result.code, exitCase.code, result.stderr);
      assert.equal(result.signal, exitCase.signal, result.stderr);
      assert.doesNotMatch(result.stderr, /internal error/);
      // The session was left as usual: KEEP=false removed the RAM copy.
      assert.deepEqual(ramCopies(fixture), [], result.stderr);
    } finally {
      await fixture.dispose();
    }
  });
}

Deno.test("SIGQUIT during the decrypt exits 131 without a core", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    // A fake age that waits as one at its passphrase prompt would, while
    // the worker is up and about to hold the plaintext.
    const fakeAge = await Deno.makeTempDir({ dir: fixture.dir });
    const started = join(fakeAge, "started");
    await Deno.writeTextFile(
      join(fakeAge, "age"),
      `#!/bin/sh\necho $$ > ${started}.tmp\nmv ${started}.tmp ${started}\nexec sleep 10\n`,
      { mode: 0o755 },
    );
    await Deno.chmod(join(fakeAge, "age"), 0o755);
    const child = spawnSecureCodex(fixture, ["--", "exec", "hi"], {
      PATH: `${fakeAge}:${fixture.env.PATH}`,
    });
    await waitFor(() => pathExists(started), "the fake age to start");
    const agePid = Number(Deno.readTextFileSync(started).trim());
    child.kill("SIGQUIT");
    const result = await child.output();
    assert.equal(result.code, 131);
    // Killed by the signal, Deno would have dumped core.
    assert.equal(result.signal, null);
    // age must not outlive the run, or it would keep reading the terminal.
    await waitFor(
      async () => !(await isProcessAlive(agePid)),
      "the fake age to end",
      { timeoutMs: 3000 },
    );
    assert.deepEqual(ramCopies(fixture), []);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("SIGTERM during the decrypt stops age too", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    // A fake age that waits as one at its passphrase prompt would. It
    // records its process id; exec keeps that id for the sleep.
    const fakeAge = await Deno.makeTempDir({ dir: fixture.dir });
    const pidFile = join(fakeAge, "pid");
    await Deno.writeTextFile(
      join(fakeAge, "age"),
      `#!/bin/sh\necho $$ > ${pidFile}.tmp\nmv ${pidFile}.tmp ${pidFile}\nexec sleep 30\n`,
      { mode: 0o755 },
    );
    await Deno.chmod(join(fakeAge, "age"), 0o755);
    const child = spawnSecureCodex(fixture, ["--", "exec", "hi"], {
      PATH: `${fakeAge}:${fixture.env.PATH}`,
    });
    await waitFor(() => pathExists(pidFile), "the fake age to start");
    const agePid = Number(Deno.readTextFileSync(pidFile).trim());
    child.kill("SIGTERM");
    const result = await child.output();
    assert.equal(result.code, 143);
    assert.equal(result.signal, "SIGTERM");
    // age must not outlive the run, or it would keep reading the terminal.
    await waitFor(
      async () => !(await isProcessAlive(agePid)),
      "the fake age to end",
      { timeoutMs: 3000 },
    );
  } finally {
    await fixture.dispose();
  }
});

/** Tells whether a server listens on 127.0.0.1:9229, Deno's inspector port. */
async function inspectorListening(): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port: 9229 })).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test("late SIGUSR1 death opens no inspector", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    assert.ok(
      !(await inspectorListening()),
      "port 9229 is in use before the test",
    );
    // After 0.5 s Deno starts its inspector on SIGUSR1, so the wrapper must
    // not raise that signal on itself.
    const fakeDir = await writeFakeCodex(fixture, "sleep 0.8\nkill -USR1 $$\n");
    const child = spawnSecureCodex(
      fixture,
      ["--", "exec", "hi"],
      fakeCodexEnv(fixture, fakeDir),
    );
    let seen = false;
    let exited = false;
    const output = child.output().finally(() => exited = true);
    while (!exited) {
      seen ||= await inspectorListening();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const result = await output;
    assert.ok(!seen, "an inspector listened on 127.0.0.1:9229");
    assert.equal(result.code, 138, new TextDecoder().decode(result.stderr));
    assert.equal(result.signal, null);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("a closed stderr does not keep codex from running", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const markDir = await makeMarkDir(fixture);
    const fakeDir = await writeFakeCodex(
      fixture,
      'touch "$MARK_DIR/ran"\nexit 5\n',
    );
    // stderr is a pipe whose reader has exited, as after `2> >(exit 0)`, and
    // LD_TEST makes the wrapper print a notice there before codex starts.
    const result = await runCommand("bash", [
      "-c",
      'exec 2> >(exit 0); sleep 0.3; exec "$0" "$@"',
      SECURE_CODEX,
      "--",
      "exec",
      "hi",
    ], {
      env: {
        ...fixture.env,
        ...fakeCodexEnv(fixture, fakeDir, { MARK_DIR: markDir }),
        LD_TEST: "1",
      },
    });
    assert.ok(pathExists(join(markDir, "ran")), "codex did not run");
    assert.equal(result.code, 5);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("a closed stdout ends --help quietly", async () => {
  // stdout is a pipe whose reader has exited, as with `| head -c 0`.
  const result = await runCommand("bash", [
    "-c",
    'exec > >(exit 0); sleep 0.3; exec "$0" "$@"',
    SECURE_CODEX,
    "--help",
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, "");
});

for (const signal of FORWARDED_SIGNALS) {
  Deno.test(`${signal} to wrapper reaches codex`, async () => {
    const fixture = await createFixture();
    let child: Deno.ChildProcess | null = null;
    const markDir = await makeMarkDir(fixture);
    try {
      await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
      // The fake codex leaves the wrapper's output pipes, so a wrapper that
      // dies without forwarding still finishes its output() at once. It stops
      // when the test creates "stop" or removes the fixture, or by itself
      // after about a minute.
      const fakeDir = await writeFakeCodex(
        fixture,
        `exec >/dev/null 2>&1
for name in $FORWARDED; do
  trap 'touch "$MARK_DIR/caught-'"$name"'"; exit 7' "$name"
done
touch "$MARK_DIR/started"
i=0
while [ -d "$MARK_DIR" ] && [ ! -e "$MARK_DIR/stop" ] && [ $i -lt 600 ]; do
  sleep 0.1
  i=$((i + 1))
done
exit 0
`,
      );
      child = spawnSecureCodex(
        fixture,
        ["--", "exec", "hi"],
        fakeCodexEnv(fixture, fakeDir, {
          MARK_DIR: markDir,
          FORWARDED: FORWARDED_SIGNALS.map((name) => name.slice(3)).join(" "),
        }),
      );
      await waitFor(
        () => pathExists(join(markDir, "started")),
        "the fake codex to start",
      );

      child.kill(signal);
      const output = await child.output();
      child = null;

      const caught = join(markDir, `caught-${signal.slice(3)}`);
      assert.ok(pathExists(caught), `codex did not receive ${signal}`);
      assert.equal(output.code, 7, new TextDecoder().decode(output.stderr));
    } finally {
      await Deno.writeTextFile(join(markDir, "stop"), "");
      if (child !== null) {
        child.kill("SIGKILL");
        await child.output();
      }
      await fixture.dispose();
    }
  });
}

Deno.test("KEEP=false removes the RAM copy", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const result = await fixture.run(["--", "login", "status"], {
      env: { SECURE_CODEX_KEEP: "false" },
    });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(ramCopies(fixture), []);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("default keep leaves the RAM copy", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const result = await fixture.run(["--", "login", "status"]);
    assert.equal(result.code, 0, result.stderr);
    const copies = ramCopies(fixture);
    assert.equal(copies.length, 1);
    assert.ok(Deno.lstatSync(copies[0]).isFile);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("KEEP=false overlapping runs: last removes", async () => {
  const fixture = await createFixture();
  const children: Deno.ChildProcess[] = [];
  const markDir = await makeMarkDir(fixture);
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    // Each fake codex waits for its own release file, then records whether
    // auth.json is still readable through the link.
    const fakeDir = await writeFakeCodex(
      fixture,
      `exec >/dev/null 2>&1
touch "$MARK_DIR/started-$RUN"
i=0
while [ -d "$MARK_DIR" ] && [ ! -e "$MARK_DIR/release-$RUN" ] && [ $i -lt 600 ]; do
  sleep 0.05
  i=$((i + 1))
done
if [ -f "$CODEX_HOME/auth.json" ]; then touch "$MARK_DIR/readable-$RUN"; fi
exit 0
`,
    );
    const start = (run: string) => {
      const child = spawnSecureCodex(
        fixture,
        ["--", "exec", "hi"],
        fakeCodexEnv(fixture, fakeDir, {
          MARK_DIR: markDir,
          RUN: run,
          SECURE_CODEX_KEEP: "false",
        }),
      );
      children.push(child);
      return child;
    };
    const first = start("1");
    await waitFor(
      () => pathExists(join(markDir, "started-1")),
      "the first fake codex to start",
    );
    const second = start("2");
    await waitFor(
      () => pathExists(join(markDir, "started-2")),
      "the second fake codex to start",
    );

    await Deno.writeTextFile(join(markDir, "release-1"), "");
    const firstOutput = await first.output();
    assert.equal(
      firstOutput.code,
      0,
      new TextDecoder().decode(firstOutput.stderr),
    );
    assert.equal(ramCopies(fixture).length, 1, "removed while codex runs");

    await Deno.writeTextFile(join(markDir, "release-2"), "");
    const secondOutput = await second.output();
    assert.equal(
      secondOutput.code,
      0,
      new TextDecoder().decode(secondOutput.stderr),
    );
    assert.ok(
      pathExists(join(markDir, "readable-2")),
      "auth.json was unreadable for the second codex",
    );
    assert.deepEqual(ramCopies(fixture), []);
    children.length = 0;
  } finally {
    // A failed assert leaves a fake codex waiting: release both.
    await Deno.writeTextFile(join(markDir, "release-1"), "");
    await Deno.writeTextFile(join(markDir, "release-2"), "");
    for (const child of children) {
      await child.output().catch(() => {});
    }
    await fixture.dispose();
  }
});

Deno.test("canary scan finds a planted file", async () => {
  const fixture = await createFixture();
  try {
    const planted = join(fixture.dir, "leak.txt");
    await Deno.writeTextFile(planted, `token=${fixture.canary}\n`);
    await assert.rejects(
      assertNoCanaryOnDisk(fixture.canary, [fixture.dir]),
      (error: Error) => error.message.includes(planted),
    );
    await Deno.remove(planted);
  } finally {
    await fixture.dispose();
  }
});

Deno.test({
  name: "session lock waiter survives removal",
  fn: async () => {
    const fixture = await createFixture();
    let waiter: Deno.ChildProcess | null = null;
    try {
      await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
      const first = await fixture.run(["--", "login", "status"]);
      assert.equal(first.code, 0, first.stderr);
      const ramDir = fixture.ramDir();

      // The test plays a `secure-codex --cleanup` (or the last run with
      // SECURE_CODEX_KEEP=false): it holds the session lock, removes the RAM
      // directory, then releases the lock.
      const sessionLock = await Deno.open(join(ramDir, "session.lock"), {
        read: true,
        write: true,
      });
      try {
        await sessionLock.lock(true);
        const inode = (await sessionLock.stat()).ino!;
        waiter = spawnSecureCodex(fixture, ["--", "login", "status"]);
        const pid = waiter.pid;
        await waitFor(
          async () => await flockState(pid, inode) === "waiting",
          "the second run to wait for the session lock",
        );
        await Deno.remove(ramDir, { recursive: true });
      } finally {
        sessionLock.close();
      }

      const output = await waiter.output();
      waiter = null;
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, stderr);
      assert.match(
        new TextDecoder().decode(output.stdout) + stderr,
        /Logged in using ChatGPT/,
      );
    } finally {
      if (waiter !== null) {
        waiter.kill("SIGKILL");
        await waiter.output();
      }
      await fixture.dispose();
    }
  },
});

Deno.test({
  name: "leaver spares a joining run",
  fn: async () => {
    const fixture = await createFixture();
    let joiner: Deno.ChildProcess | null = null;
    try {
      await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
      const first = await fixture.run(["--", "login", "status"]);
      assert.equal(first.code, 0, first.stderr);
      const ramDir = fixture.ramDir();

      // The test plays the last run leaving with SECURE_CODEX_KEEP=false
      // (Session.leave): session lock, users.lock upgraded to exclusive and
      // released, RAM directory removed. Holding users.lock first stops the
      // joining run between open() and join(), an interleaving the program
      // allows.
      let usersLock: Deno.FsFile | null = await Deno.open(
        join(ramDir, "users.lock"),
        { read: true, write: true },
      );
      let sessionLock: Deno.FsFile | null = null;
      try {
        await usersLock.lock(true);
        const inode = (await usersLock.stat()).ino!;
        joiner = spawnSecureCodex(fixture, ["--", "login", "status"]);
        const pid = joiner.pid;
        await waitFor(
          async () => await flockState(pid, inode) !== "none",
          "the second run to request users.lock",
        );
        sessionLock = await Deno.open(join(ramDir, "session.lock"), {
          read: true,
          write: true,
        });
        // A program that joins under the session lock keeps the leaver out
        // here, and the leaver removes nothing.
        if (await sessionLock.tryLock(true)) {
          usersLock.close();
          usersLock = null;
          await waitFor(
            async () => await flockState(pid, inode) !== "waiting",
            "the second run to take users.lock",
          );
          await Deno.remove(ramDir, { recursive: true });
        }
      } finally {
        usersLock?.close();
        sessionLock?.close();
      }

      const output = await joiner.output();
      joiner = null;
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, stderr);
      assert.match(
        new TextDecoder().decode(output.stdout) + stderr,
        /Logged in using ChatGPT/,
      );
    } finally {
      if (joiner !== null) {
        joiner.kill("SIGKILL");
        await joiner.output();
      }
      await fixture.dispose();
    }
  },
});

Deno.test({
  name: "KEEP=false concurrent runs all succeed",
  fn: async () => {
    const fixture = await createFixture();
    try {
      await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
      const fakeDir = await writeFakeCodex(
        fixture,
        `[ -f "$CODEX_HOME/auth.json" ] || { echo "fake codex: no auth.json" >&2; exit 9; }
exit 0
`,
      );
      const env = fakeCodexEnv(fixture, fakeDir, {
        SECURE_CODEX_KEEP: "false",
      });
      const failures: string[] = [];
      const runInLoop = async (count: number) => {
        for (let i = 0; i < count; i++) {
          const result = await fixture.run(["--", "exec", "hi"], { env });
          if (result.code !== 0) {
            failures.push(`exit ${result.code}: ${result.stderr.trim()}`);
          }
        }
      };
      // Three loops of 20 runs. On a 2-core machine the races showed in most
      // such batches, but not in every one.
      await Promise.all([runInLoop(20), runInLoop(20), runInLoop(20)]);
      assert.deepEqual(failures, []);
    } finally {
      await fixture.dispose();
    }
  },
});

Deno.test("cleanup refuses while codex runs with the session", async () => {
  const fixture = await createFixture();
  const markDir = await makeMarkDir(fixture);
  let child: Deno.ChildProcess | null = null;
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const fakeDir = await writeFakeCodex(
      fixture,
      `exec >/dev/null 2>&1
touch "$MARK_DIR/started"
i=0
while [ ! -e "$MARK_DIR/stop" ] && [ $i -lt 600 ]; do
  sleep 0.05
  i=$((i + 1))
done
`,
    );
    child = spawnSecureCodex(
      fixture,
      ["--", "exec", "hi"],
      fakeCodexEnv(fixture, fakeDir, { MARK_DIR: markDir }),
    );
    await waitFor(
      () => pathExists(join(markDir, "started")),
      "the fake codex to start",
    );
    const result = await fixture.run(["--cleanup"]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      result.stderr,
      /^secure-codex: codex is still running with this session: .*\nsecure-codex: hint: exit those codex sessions first, then run .*--cleanup again\n$/,
    );
    assert.equal(ramCopies(fixture).length, 1, "the RAM copy was removed");
  } finally {
    await Deno.writeTextFile(join(markDir, "stop"), "");
    if (child !== null) await child.output();
    await fixture.dispose();
  }
});

Deno.test("npm registry is asked only for a config file", async () => {
  const fixture = await createFixture();
  const requests: string[] = [];
  const registry = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) => {
      requests.push(new URL(request.url).pathname);
      return new Response("not found", { status: 404 });
    },
  );
  try {
    // An empty Deno cache, as on a machine that never ran secure-codex, and a
    // registry that returns 404 for every request.
    const env = {
      ...fixture.env,
      DENO_DIR: await Deno.makeTempDir({ dir: fixture.dir, prefix: "deno-" }),
      NPM_CONFIG_REGISTRY: `http://127.0.0.1:${registry.addr.port}/`,
    };
    const version = await runCommand(SECURE_CODEX, ["--version"], { env });
    assert.equal(version.code, 0, version.stderr);
    assert.equal(
      requests.length,
      0,
      `a start without a config file asked npm: ${requests.join(", ")}`,
    );

    const config = join(fixture.dir, "config.jsonc");
    await Deno.writeTextFile(config, "{}");
    const status = await runCommand(
      SECURE_CODEX,
      ["--config", config, "--status"],
      { env },
    );
    assert.equal(status.code, 1, status.stderr);
    assert.match(
      status.stderr,
      /^secure-codex: cannot load the config file parser \(npm package jsonc-parser\) for /,
    );
    assert.ok(
      requests.some((path) => path.includes("jsonc-parser")),
      `no request for jsonc-parser: ${requests.join(", ")}`,
    );
  } finally {
    await registry.shutdown();
    await fixture.dispose();
  }
});
