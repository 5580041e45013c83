/**
 * Crash, full-disk, concurrency and signal tests of the real program: the
 * launcher, real age and real tmpfs mounts. Fake codex scripts only inject
 * faults: a refresh written the way codex writes it, a kill or a trap. The
 * refresh race runs the real codex against the loopback token mock.
 *
 * The kill tests draw their delays from a seeded PRNG and print the seed.
 * `CRASH_TEST_SEED=N` repeats a run's delays, though the timing around them
 * still varies. `CRASH_TEST_ITERATIONS=N` sets the number of kills per phase
 * (default 50).
 *
 * Plaintext only ever reaches the fixture's tmpfs mounts: fake logins come
 * from the environment and are written into the RAM directory, so a canary
 * found on disk is a leak of the program under test.
 *
 * @module
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import {
  assertNoCanaryOnDisk,
  CODEX_TEST_CONFIG,
  createFixture,
  fakeChatGptAuth,
  fakeCodexEnv,
  type Fixture,
  isProcessAlive,
  isRoot,
  killProcessGroup,
  pathExists,
  processGroupMembers,
  ramCopies,
  runCommand,
  type RunResult,
  spawnSecureCodex,
  spawnSecureCodexInGroup,
  startTokenMock,
  waitFor,
  writeFakeCodex,
} from "./helpers.ts";

const NOT_ROOT = !isRoot();
if (NOT_ROOT) {
  console.warn(
    "tests/crash_test.ts: skipped, because mounting tmpfs needs root " +
      "(scripts/test runs the tests under unshare -Urm when not root)",
  );
}

const ITERATIONS = Number(Deno.env.get("CRASH_TEST_ITERATIONS") ?? "50");
const SEED = Number(
  Deno.env.get("CRASH_TEST_SEED") ??
    crypto.getRandomValues(new Uint32Array(1))[0],
);

const decoder = new TextDecoder();
const AGE_MAGIC = "age-encryption.org/v1\n";
/**
 * Matches the temp files `replaceStore` writes next to the store. A
 * write-back killed while it writes the recipients file leaves
 * `.auth.json.age.recipients.<random>.tmp` (public keys only) instead.
 */
const STORE_TEMP = /^\.auth\.json\.age\.[0-9a-f]{12}\.tmp$/;

interface StoredAuth {
  tokens?: { refresh_token?: string } | null;
}

/** mulberry32: a small seeded PRNG, so a failing run can be repeated. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Returns an integer drawn uniformly from [low, high]. */
function randomInt(random: () => number, low: number, high: number): number {
  return low + Math.floor(random() * (high - low + 1));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Formats milliseconds as seconds for sh's `sleep` (GNU sleep takes fractions). */
function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

/** Builds a fake login as JSON, with `token` (which contains the canary) as its refresh token. */
function fakeLogin(fixture: Fixture, token: string): string {
  return JSON.stringify(
    fakeChatGptAuth({ canary: fixture.canary, refreshToken: token }),
  );
}

async function storedToken(fixture: Fixture): Promise<string | undefined> {
  const stored = await fixture.readStore() as StoredAuth;
  return stored.tokens?.refresh_token;
}

/** Reads the refresh token of the RAM copy straight from the tmpfs. */
function ramToken(fixture: Fixture): string | undefined {
  const text = Deno.readTextFileSync(join(fixture.ramDir(), "auth.json"));
  return (JSON.parse(text) as StoredAuth).tokens?.refresh_token;
}

/** Lists the temp files left next to the store. */
function storeTempFiles(fixture: Fixture): string[] {
  const directory = dirname(fixture.store);
  return [...Deno.readDirSync(directory)]
    .filter((entry) => STORE_TEMP.test(entry.name))
    .map((entry) => join(directory, entry.name));
}

/**
 * Checks that every store temp file is ciphertext and returns how many there
 * are. A file cut short by a kill may be shorter than the age header, so its
 * bytes must then be a prefix of the header. An empty file passes.
 */
function checkStoreTempFiles(fixture: Fixture, where: string): number {
  const temps = storeTempFiles(fixture);
  for (const temp of temps) {
    const bytes = Deno.readFileSync(temp);
    const head = decoder.decode(bytes.subarray(0, AGE_MAGIC.length));
    assert.ok(
      AGE_MAGIC.startsWith(head),
      `${where}: store temp file is not age ciphertext: ${temp}`,
    );
    assert.ok(
      !decoder.decode(bytes).includes(fixture.canary),
      `${where}: store temp file contains the canary: ${temp}`,
    );
  }
  return temps.length;
}

/**
 * Scans every file of the fixture outside the RAM tmpfs (`run/`) for each
 * needle. The fixture's dispose() scans again, RAM tmpfs unmounted, at the end.
 */
async function assertNothingOnDisk(
  fixture: Fixture,
  needles: string[],
): Promise<void> {
  const roots = [...Deno.readDirSync(fixture.dir)]
    .map((entry) => join(fixture.dir, entry.name))
    .filter((path) => path !== fixture.runtimeDir);
  for (const needle of needles) await assertNoCanaryOnDisk(needle, roots);
}

function toRunResult(output: Deno.CommandOutput): RunResult {
  return {
    code: output.code,
    signal: output.signal,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Asserts that a run exited 0 without a warning, an internal error or a stack trace. */
function assertCleanRun(result: RunResult, where: string): void {
  const context = `${where}: exit ${result.code}\n${result.stderr}`;
  assert.equal(result.code, 0, context);
  assert.doesNotMatch(result.stderr, /internal error/, context);
  assert.doesNotMatch(result.stderr, /^\s+at .*:\d+:\d+\)?$/m, context);
  assert.doesNotMatch(result.stderr, /^secure-codex: warning:/m, context);
}

/** Waits until `path` contains a whole line with a pid, as `echo $$ > path` writes it. */
async function readPidFile(path: string, timeoutMs = 30_000): Promise<number> {
  let pid = 0;
  await waitFor(
    () => {
      try {
        const match = /^(\d+)\n$/.exec(Deno.readTextFileSync(path));
        if (match === null) return false;
        pid = Number(match[1]);
        return true;
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) return false;
        throw error;
      }
    },
    `the pid file ${path}`,
    { timeoutMs, intervalMs: 1 },
  );
  return pid;
}

/** Empties the marker directory a fake codex writes to. */
async function resetMarkDir(fixture: Fixture): Promise<string> {
  const markDir = join(fixture.dir, "marks");
  await Deno.remove(markDir, { recursive: true }).catch(() => {});
  await Deno.mkdir(markDir);
  return markDir;
}

/** A codex that checks the link resolves and exits 0 at once. */
const NORMAL_CODEX =
  `[ -f "$CODEX_HOME/auth.json" ] || { echo "fake codex: no auth.json" >&2; exit 9; }
exit 0
`;

/**
 * Saves the login in $FAKE_NEW_AUTH the way codex 0.171 does: a temp file
 * next to the resolved auth.json (in the RAM directory), then a rename.
 */
const SAVE_LIKE_CODEX = `target=$(readlink -f "$CODEX_HOME/auth.json")
printf '%s' "$FAKE_NEW_AUTH" > "$(dirname "$target")/.auth-fake"
mv "$(dirname "$target")/.auth-fake" "$target"
`;

/** Keeps a fake codex running until the test creates `release`, 10 s at most. */
const WAIT_FOR_RELEASE = `i=0
while [ ! -e "$MARK_DIR/release" ] && [ $i -lt 500 ]; do
  sleep 0.02
  i=$((i + 1))
done
`;

/**
 * Runs a wrapper whose refresh the fake codex saves, without a kill, and
 * measures the time from codex's rename to the store's rename. Returns the
 * milliseconds.
 */
async function measureWriteBack(
  fixture: Fixture,
  fakeDir: string,
  token: string,
): Promise<number> {
  const markDir = await resetMarkDir(fixture);
  const inodeBefore = Deno.statSync(fixture.store).ino;
  const child = spawnSecureCodexInGroup(
    fixture,
    ["--", "exec", "hi"],
    fakeCodexEnv(fixture, fakeDir, {
      MARK_DIR: markDir,
      FAKE_NEW_AUTH: fakeLogin(fixture, token),
      KILL_DELAY: "",
    }),
  );
  let output: Deno.CommandOutput | null = null;
  try {
    const renamedMark = join(markDir, "renamed");
    let replacedAt = 0;
    await waitFor(
      () => {
        if (Deno.statSync(fixture.store).ino === inodeBefore) return false;
        replacedAt = Date.now();
        return true;
      },
      "the store to be replaced",
      { intervalMs: 1 },
    );
    await waitFor(
      () => pathExists(renamedMark),
      "the fake codex's rename time",
    );
    const renamedAt = Number(
      BigInt(Deno.readTextFileSync(renamedMark).trim()) / 1_000_000n,
    );
    await Deno.writeTextFile(join(markDir, "release"), "");
    output = await child.output();
    assert.equal(output.code, 0, decoder.decode(output.stderr));
    assert.equal(await storedToken(fixture), token);
    return replacedAt - renamedAt;
  } finally {
    if (output === null) {
      await killProcessGroup(child.pid);
      await child.output();
    }
  }
}

Deno.test({
  name: "kill -9 during unlock",
  ignore: NOT_ROOT,
  fn: async () => {
    const random = seededRandom(SEED ^ 0x0a);
    console.log(
      `seed ${SEED} (repeat with CRASH_TEST_SEED=${SEED}), ${ITERATIONS} kills`,
    );
    const fixture = await createFixture();
    try {
      const token = `rt-a-${fixture.canary}`;
      await fixture.writeStore(fakeLogin(fixture, token));
      const original = await Deno.readFile(fixture.store);
      const env = fakeCodexEnv(
        fixture,
        await writeFakeCodex(fixture, NORMAL_CODEX),
      );
      let landed = 0;
      for (let i = 0; i < ITERATIONS; i++) {
        const delayMs = randomInt(random, 0, 150);
        const where = `iteration ${i}, kill at ${delayMs} ms (seed ${SEED})`;

        // Cold start: no RAM copy, so the run decrypts the store.
        const cleanup = await fixture.run(["--cleanup"]);
        assertCleanRun(cleanup, `${where}: --cleanup`);
        assert.deepEqual(ramCopies(fixture), [], `${where}: after --cleanup`);

        const child = spawnSecureCodexInGroup(
          fixture,
          ["--", "login", "status"],
          env,
        );
        await sleep(delayMs);
        try {
          child.kill("SIGKILL");
        } catch {
          // The run had already finished.
        }
        const status = await child.status;
        if (status.signal === "SIGKILL") landed++;
        // The worker's age and the fake codex outlive a killed wrapper.
        await killProcessGroup(child.pid);
        await child.output();

        assert.deepEqual(
          await Deno.readFile(fixture.store),
          original,
          `${where}: store changed`,
        );
        assert.equal(
          checkStoreTempFiles(fixture, where),
          0,
          `${where}: store temp file left`,
        );
        await assertNothingOnDisk(fixture, [fixture.canary]);

        const next = await fixture.run(["--", "login", "status"], { env });
        assertCleanRun(next, `${where}: next run`);
        assert.equal(ramToken(fixture), token, `${where}: RAM copy`);
      }
      console.log(`${landed} of ${ITERATIONS} kills hit a running wrapper`);
      assert.ok(landed > 0, "no kill hit a running wrapper");
    } finally {
      await fixture.dispose();
    }
  },
});

/**
 * Saves a new login like codex, then kills its parent (the wrapper) after
 * $KILL_DELAY seconds. The fake codex sends the kill because it can time it
 * from its own rename to the millisecond, and the test only by polling.
 * With KILL_DELAY empty it records the rename time and kills nothing.
 */
const REFRESH_THEN_KILL_WRAPPER = `exec >/dev/null 2>&1
set -eu
echo $$ > "$MARK_DIR/pid"
${SAVE_LIKE_CODEX}if [ -n "$KILL_DELAY" ]; then
  sleep "$KILL_DELAY"
  kill -KILL "$PPID"
else
  date +%s%N > "$MARK_DIR/renamed"
fi
${WAIT_FOR_RELEASE}`;

Deno.test({
  name: "kill -9 during write-back",
  ignore: NOT_ROOT,
  fn: async () => {
    const random = seededRandom(SEED ^ 0x0b);
    console.log(
      `seed ${SEED} (repeat with CRASH_TEST_SEED=${SEED}), ${ITERATIONS} kills`,
    );
    const fixture = await createFixture();
    try {
      let current = `rt-b0-${fixture.canary}`;
      await fixture.writeStore(fakeLogin(fixture, current));
      const normalEnv = fakeCodexEnv(
        fixture,
        await writeFakeCodex(fixture, NORMAL_CODEX),
      );
      const fakeDir = await writeFakeCodex(fixture, REFRESH_THEN_KILL_WRAPPER);
      assertCleanRun(
        await fixture.run(["--", "login", "status"], { env: normalEnv }),
        "unlock",
      );

      // Most of the time from codex's rename to the store's rename goes into
      // starting the worker. The kill window is centered on the store's
      // rename as measured here, so kills land during encryption, the temp
      // file's write and fsync, the rename, the directory fsync and the
      // update of session.json.
      const latencies: number[] = [];
      for (let i = 1; i <= 3; i++) {
        current = `rt-calibrate${i}-${fixture.canary}`;
        latencies.push(await measureWriteBack(fixture, fakeDir, current));
      }
      const latency = latencies.sort((a, b) => a - b)[1];
      const windowLow = Math.max(0, latency - 25);
      const windowHigh = latency + 15;
      console.log(
        `rename to store rename: ${latencies.join(", ")} ms; ` +
          `kill window ${windowLow}-${windowHigh} ms after the rename`,
      );

      const outcomes = { old: 0, new: 0 };
      const tempFiles = new Set<string>();
      for (let i = 1; i <= ITERATIONS; i++) {
        const delayMs = randomInt(random, windowLow, windowHigh);
        const where = `iteration ${i}, kill at ${delayMs} ms (seed ${SEED})`;
        const next = `rt-b${i}-${fixture.canary}`;
        const markDir = await resetMarkDir(fixture);
        const child = spawnSecureCodexInGroup(
          fixture,
          ["--", "exec", "hi"],
          fakeCodexEnv(fixture, fakeDir, {
            MARK_DIR: markDir,
            FAKE_NEW_AUTH: fakeLogin(fixture, next),
            KILL_DELAY: seconds(delayMs),
          }),
        );
        const status = await child.status;
        await killProcessGroup(child.pid);
        const output = await child.output();
        assert.equal(
          status.signal,
          "SIGKILL",
          `${where}: the wrapper was not killed\n${
            decoder.decode(output.stderr)
          }`,
        );

        const afterKill = await storedToken(fixture);
        assert.ok(
          afterKill === current || afterKill === next,
          `${where}: store holds neither the old nor the new token`,
        );
        outcomes[afterKill === current ? "old" : "new"]++;
        checkStoreTempFiles(fixture, where);
        for (const temp of storeTempFiles(fixture)) tempFiles.add(temp);
        await assertNothingOnDisk(fixture, [fixture.canary, next]);

        const run = await fixture.run(["--", "login", "status"], {
          env: normalEnv,
        });
        assertCleanRun(run, `${where}: next run`);
        assert.equal(await storedToken(fixture), next, `${where}: store`);
        assert.equal(ramToken(fixture), next, `${where}: RAM copy`);
        current = next;
      }
      console.log(
        `store after the kill: old token ${outcomes.old}, new token ` +
          `${outcomes.new}; ${tempFiles.size} store temp files left by kills`,
      );
      // Without both outcomes the window missed the store's rename.
      assert.ok(outcomes.old > 0, "no kill landed before the store's rename");
      assert.ok(outcomes.new > 0, "no kill landed after the store's rename");

      // A start without a RAM copy removes the temp files that kills left.
      assertCleanRun(await fixture.run(["--cleanup"]), "--cleanup");
      assertCleanRun(
        await fixture.run(["--", "login", "status"], { env: normalEnv }),
        "cold start",
      );
      assert.deepEqual(storeTempFiles(fixture), [], "store temp files kept");
    } finally {
      await fixture.dispose();
    }
  },
});

/**
 * A codex that saves a new login when the test creates `refresh`, and keeps
 * running until released. A killed wrapper leaves it running, as it leaves
 * the real codex, so the save can come after the wrapper died.
 */
const REFRESH_ON_REQUEST = `exec >/dev/null 2>&1
set -eu
echo $$ > "$MARK_DIR/pid"
i=0
while [ ! -e "$MARK_DIR/refresh" ] && [ $i -lt 500 ]; do
  sleep 0.005
  i=$((i + 1))
done
${SAVE_LIKE_CODEX}touch "$MARK_DIR/renamed"
${WAIT_FOR_RELEASE}`;

/** Reads `lastWriteBackAt` from session.json, which contains no secret. */
function lastWriteBackAt(fixture: Fixture): string | null {
  const path = join(fixture.ramDir(), "session.json");
  return (JSON.parse(Deno.readTextFileSync(path)) as {
    lastWriteBackAt: string | null;
  }).lastWriteBackAt;
}

Deno.test({
  name: "kill -9 while codex runs",
  ignore: NOT_ROOT,
  fn: async () => {
    const random = seededRandom(SEED ^ 0x0c);
    console.log(
      `seed ${SEED} (repeat with CRASH_TEST_SEED=${SEED}), ${ITERATIONS} kills`,
    );
    const fixture = await createFixture();
    try {
      let current = `rt-c0-${fixture.canary}`;
      await fixture.writeStore(fakeLogin(fixture, current));
      const normalEnv = fakeCodexEnv(
        fixture,
        await writeFakeCodex(fixture, NORMAL_CODEX),
      );
      const fakeDir = await writeFakeCodex(fixture, REFRESH_ON_REQUEST);
      assertCleanRun(
        await fixture.run(["--", "login", "status"], { env: normalEnv }),
        "unlock",
      );

      // Each kill hits a wrapper that waits for codex. Either codex refreshed
      // before and the wrapper finished saving, or codex refreshes after the
      // wrapper died. Kills during a save are the write-back test's.
      const outcomes = { refreshBefore: 0, refreshAfter: 0 };
      for (let i = 1; i <= ITERATIONS; i++) {
        const refreshBefore = random() < 0.5;
        const killMs = randomInt(random, 0, 100);
        const where = `iteration ${i}, refresh ${
          refreshBefore ? "before" : "after"
        } the kill, kill at ${killMs} ms (seed ${SEED})`;
        const next = `rt-c${i}-${fixture.canary}`;
        const markDir = await resetMarkDir(fixture);
        const refreshMark = join(markDir, "refresh");
        const child = spawnSecureCodexInGroup(
          fixture,
          ["--", "exec", "hi"],
          fakeCodexEnv(fixture, fakeDir, {
            MARK_DIR: markDir,
            FAKE_NEW_AUTH: fakeLogin(fixture, next),
          }),
        );
        try {
          const codexPid = await readPidFile(join(markDir, "pid"));
          if (refreshBefore) {
            const savedBefore = lastWriteBackAt(fixture);
            await Deno.writeTextFile(refreshMark, "");
            await waitFor(
              () => lastWriteBackAt(fixture) !== savedBefore,
              `${where}: the wrapper to save the refresh`,
              { intervalMs: 2 },
            );
          }
          await sleep(killMs);
          child.kill("SIGKILL");
          const status = await child.status;
          assert.equal(status.signal, "SIGKILL", `${where}: not killed`);

          // The orphaned codex saves (if it has not yet), then exits when released.
          await Deno.writeTextFile(refreshMark, "");
          await waitFor(
            () => pathExists(join(markDir, "renamed")),
            `${where}: the codex's save`,
          );
          await Deno.writeTextFile(join(markDir, "release"), "");
          await waitFor(
            async () => !(await isProcessAlive(codexPid)),
            `${where}: the orphaned codex to exit`,
          );
        } finally {
          await killProcessGroup(child.pid);
          await child.output();
        }

        assert.equal(
          await storedToken(fixture),
          refreshBefore ? next : current,
          `${where}: store after the kill`,
        );
        outcomes[refreshBefore ? "refreshBefore" : "refreshAfter"]++;
        assert.equal(
          checkStoreTempFiles(fixture, where),
          0,
          `${where}: store temp file left`,
        );
        await assertNothingOnDisk(fixture, [fixture.canary, next]);

        // The RAM copy contains the newest tokens, so the next run saves them.
        const run = await fixture.run(["--", "login", "status"], {
          env: normalEnv,
        });
        assertCleanRun(run, `${where}: next run`);
        assert.equal(await storedToken(fixture), next, `${where}: store`);
        assert.equal(ramToken(fixture), next, `${where}: RAM copy`);
        current = next;
      }
      console.log(
        `refresh before the kill ${outcomes.refreshBefore}, after it ${outcomes.refreshAfter}`,
      );
    } finally {
      await fixture.dispose();
    }
  },
});

Deno.test({
  name: "kill -9 right after store rename",
  ignore: NOT_ROOT,
  fn: async () => {
    const fixture = await createFixture();
    try {
      await fixture.writeStore(fakeLogin(fixture, `rt-k0-${fixture.canary}`));
      const normalEnv = fakeCodexEnv(
        fixture,
        await writeFakeCodex(fixture, NORMAL_CODEX),
      );
      const fakeDir = await writeFakeCodex(fixture, REFRESH_THEN_KILL_WRAPPER);
      const refreshDir = await writeFakeCodex(fixture, SAVE_LIKE_CODEX);
      assertCleanRun(
        await fixture.run(["--", "login", "status"], { env: normalEnv }),
        "unlock",
      );

      // inotify reports the store's rename within a millisecond, and the
      // wrapper still has to fsync the directory and record the write, so
      // most kills land between the rename and that record.
      let beforeRecord = 0;
      for (let i = 1; i <= 10; i++) {
        const where = `iteration ${i}`;
        const next = `rt-k${i}-${fixture.canary}`;
        const markDir = await resetMarkDir(fixture);
        const inodeBefore = Deno.statSync(fixture.store).ino;
        const recordBefore = lastWriteBackAt(fixture);
        const watcher = Deno.watchFs(fixture.codexHome, { recursive: false });
        const child = spawnSecureCodexInGroup(
          fixture,
          ["--", "exec", "hi"],
          fakeCodexEnv(fixture, fakeDir, {
            MARK_DIR: markDir,
            FAKE_NEW_AUTH: fakeLogin(fixture, next),
            KILL_DELAY: "",
          }),
        );
        let killed = false;
        // Closing the watcher ends the loop if the store is never replaced.
        const timeout = setTimeout(() => watcher.close(), 10_000);
        try {
          for await (const event of watcher) {
            if (!event.paths.includes(fixture.store)) continue;
            if (Deno.statSync(fixture.store).ino === inodeBefore) continue;
            child.kill("SIGKILL");
            killed = true;
            break;
          }
        } finally {
          clearTimeout(timeout);
          try {
            watcher.close();
          } catch {
            // Already closed by the timeout.
          }
          await killProcessGroup(child.pid);
        }
        const output = await child.output();
        assert.ok(
          killed,
          `${where}: the store was not replaced within 10 s\n${
            decoder.decode(output.stderr)
          }`,
        );
        if (lastWriteBackAt(fixture) === recordBefore) beforeRecord++;

        assert.equal(await storedToken(fixture), next, `${where}: store`);
        assert.equal(
          checkStoreTempFiles(fixture, where),
          0,
          `${where}: store temp file left`,
        );
        await assertNothingOnDisk(fixture, [fixture.canary, next]);

        const run = await fixture.run(["--", "login", "status"], {
          env: normalEnv,
        });
        assertCleanRun(run, `${where}: next run`);

        // A later refresh must still reach the store.
        const after = `rt-k${i}-after-${fixture.canary}`;
        const refreshed = await fixture.run(["--", "exec", "hi"], {
          env: fakeCodexEnv(fixture, refreshDir, {
            FAKE_NEW_AUTH: fakeLogin(fixture, after),
          }),
        });
        assertCleanRun(refreshed, `${where}: refresh after the kill`);
        assert.equal(await storedToken(fixture), after, `${where}: store`);
      }
      console.log(
        `${beforeRecord} of 10 kills landed before the write was recorded`,
      );
      assert.ok(beforeRecord > 0, "no kill landed before the write's record");
    } finally {
      await fixture.dispose();
    }
  },
});

/** Mounts a tmpfs of `size` (mount syntax, e.g. "64k") with mode 0700 at `path`. */
async function mountTmpfs(path: string, size: string): Promise<void> {
  const result = await runCommand("mount", [
    "-t",
    "tmpfs",
    "-o",
    `mode=0700,size=${size}`,
    "tmpfs",
    path,
  ]);
  if (result.code !== 0) throw new Error(`mount failed: ${result.stderr}`);
}

async function unmount(path: string): Promise<void> {
  const result = await runCommand("umount", [path]);
  if (result.code !== 0) throw new Error(`umount failed: ${result.stderr}`);
}

/** Fills the filesystem of `directory` with a file of zeros until it is full. */
async function fillFilesystem(directory: string): Promise<string> {
  const filler = join(directory, "filler");
  // dd exits non-zero with "No space left on device", which is the point.
  await runCommand("dd", ["if=/dev/zero", `of=${filler}`, "bs=4096"]);
  const free = await runCommand("stat", ["-f", "-c", "%a", directory]);
  assert.equal(free.stdout.trim(), "0", `${directory} is not full`);
  return filler;
}

Deno.test({
  name: "full filesystem under the store",
  ignore: NOT_ROOT,
  fn: async () => {
    const fixture = await createFixture();
    let mounted = false;
    try {
      // The codex home becomes a 64 KiB tmpfs holding the store, filled up.
      await mountTmpfs(fixture.codexHome, "64k");
      mounted = true;
      await Deno.writeTextFile(
        join(fixture.codexHome, "config.toml"),
        CODEX_TEST_CONFIG,
      );
      const oldToken = `rt-full-old-${fixture.canary}`;
      const newToken = `rt-full-new-${fixture.canary}`;
      await fixture.writeStore(fakeLogin(fixture, oldToken));
      const original = await Deno.readFile(fixture.store);
      const filler = await fillFilesystem(fixture.codexHome);

      const refreshDir = await writeFakeCodex(
        fixture,
        `${SAVE_LIKE_CODEX}exit 5\n`,
      );
      const result = await fixture.run(["--", "exec", "hi"], {
        env: fakeCodexEnv(fixture, refreshDir, {
          FAKE_NEW_AUTH: fakeLogin(fixture, newToken),
        }),
      });
      const context = `exit ${result.code}\n${result.stderr}`;
      assert.equal(result.code, 5, context);
      assert.ok(
        result.stderr.includes(
          `secure-codex: warning: write-back failed: ${fixture.store}`,
        ),
        context,
      );
      assert.ok(
        result.stderr.includes(
          `secure-codex: hint: free space on the filesystem of ${fixture.codexHome}, then run `,
        ),
        context,
      );
      assert.doesNotMatch(result.stderr, /internal error/, context);
      assert.deepEqual(await Deno.readFile(fixture.store), original);
      assert.equal(ramToken(fixture), newToken, "RAM copy lost the refresh");
      assert.deepEqual(storeTempFiles(fixture), [], "store temp file left");

      await Deno.remove(filler);
      const normalDir = await writeFakeCodex(fixture, NORMAL_CODEX);
      const next = await fixture.run(["--", "login", "status"], {
        env: fakeCodexEnv(fixture, normalDir),
      });
      assertCleanRun(next, "run after freeing space");
      assert.equal(await storedToken(fixture), newToken);
    } finally {
      if (mounted) await unmount(fixture.codexHome);
      await fixture.dispose();
    }
  },
});

/** Lists what a failed unlock left in the RAM directory, lock files and the filesystem record aside. */
function ramDirLeftovers(runtimeDir: string): string[] {
  const base = join(runtimeDir, "secure-codex");
  if (!pathExists(base)) return [];
  const expectedFiles = new Set([
    "session.lock",
    "users.lock",
    ".verified-filesystem",
  ]);
  const leftovers: string[] = [];
  for (const session of Deno.readDirSync(base)) {
    for (const entry of Deno.readDirSync(join(base, session.name))) {
      if (!expectedFiles.has(entry.name)) {
        leftovers.push(`${session.name}/${entry.name}`);
      }
    }
  }
  return leftovers;
}

// tmpfs gives every non-empty file at least one 4 KiB page. With one page,
// already used, nothing fits, not even the filesystem record written before
// the plaintext. With two pages the record fits and the plaintext does not.
for (
  const ramCase of [
    { name: "full RAM directory", size: "4k" },
    { name: "RAM directory full after the record", size: "8k", filler: 4096 },
  ]
) {
  Deno.test({
    name: ramCase.name,
    ignore: NOT_ROOT,
    fn: async () => {
      const fixture = await createFixture();
      const smallRun = join(fixture.dir, "small-run");
      let mounted = false;
      try {
        await fixture.writeStore(fakeLogin(fixture, `rt-${fixture.canary}`));
        const original = await Deno.readFile(fixture.store);
        await Deno.mkdir(smallRun, { mode: 0o700 });
        await mountTmpfs(smallRun, ramCase.size);
        mounted = true;
        if (ramCase.filler === undefined) {
          await fillFilesystem(smallRun);
        } else {
          await Deno.writeFile(
            join(smallRun, "filler"),
            new Uint8Array(ramCase.filler),
          );
        }
        const markDir = await resetMarkDir(fixture);
        const fakeDir = await writeFakeCodex(
          fixture,
          `touch "$MARK_DIR/codex-ran"\n${NORMAL_CODEX}`,
        );

        const result = await fixture.run(["--", "login", "status"], {
          env: fakeCodexEnv(fixture, fakeDir, {
            XDG_RUNTIME_DIR: smallRun,
            MARK_DIR: markDir,
          }),
        });
        const context = `exit ${result.code}\n${result.stderr}`;
        assert.equal(result.code, 1, context);
        assert.match(
          result.stderr,
          /^secure-codex: .*RAM directory.*$/m,
          context,
        );
        assert.doesNotMatch(result.stderr, /internal error/, context);
        assert.doesNotMatch(result.stderr, /^\s+at .*:\d+:\d+\)?$/m, context);
        assert.ok(!pathExists(join(markDir, "codex-ran")), "codex ran");
        assert.deepEqual(await Deno.readFile(fixture.store), original);
        assert.deepEqual(ramDirLeftovers(smallRun), []);
      } finally {
        if (mounted) await unmount(smallRun);
        await fixture.dispose();
      }
    },
  });
}

Deno.test({
  name: "RAM directory nearly full before codex starts",
  ignore: NOT_ROOT,
  fn: async () => {
    const fixture = await createFixture();
    const smallRun = join(fixture.dir, "small-run");
    let mounted = false;
    try {
      await fixture.writeStore(fakeLogin(fixture, `rt-${fixture.canary}`));
      const original = await Deno.readFile(fixture.store);
      await Deno.mkdir(smallRun, { mode: 0o700 });
      await mountTmpfs(smallRun, "256k");
      mounted = true;
      const markDir = await resetMarkDir(fixture);
      const fakeDir = await writeFakeCodex(
        fixture,
        `touch "$MARK_DIR/codex-ran"\n${NORMAL_CODEX}`,
      );
      const env = fakeCodexEnv(fixture, fakeDir, {
        XDG_RUNTIME_DIR: smallRun,
        MARK_DIR: markDir,
      });
      const unlock = await fixture.run(["--", "login", "status"], { env });
      assertCleanRun(unlock, "unlock on the small tmpfs");
      await Deno.remove(join(markDir, "codex-ran"));

      // Leave 16 KiB: enough for codex to start, too little to be sure a
      // save of refreshed tokens fits.
      const free = await runCommand("stat", ["-f", "-c", "%a %S", smallRun]);
      const [blocks, blockSize] = free.stdout.trim().split(" ").map(Number);
      const filler = join(smallRun, "filler");
      await Deno.writeFile(filler, new Uint8Array(blocks * blockSize - 16384));

      const result = await fixture.run(["--", "login", "status"], { env });
      const context = `exit ${result.code}\n${result.stderr}`;
      assert.equal(result.code, 1, context);
      assert.match(
        result.stderr,
        /^secure-codex: less than 64 KiB free in the RAM directory's filesystem: .*\nsecure-codex: hint: codex could not save refreshed tokens there, and a refresh it cannot save is lost\nsecure-codex: hint: free space on it \(df -h .*\), then run secure-codex again\n$/,
        context,
      );
      assert.ok(!pathExists(join(markDir, "codex-ran")), "codex ran");
      assert.deepEqual(await Deno.readFile(fixture.store), original);
      // The session stays unlocked: its RAM copy is left as it was.
      const sessions = [...Deno.readDirSync(join(smallRun, "secure-codex"))];
      assert.equal(sessions.length, 1);
      const copy = join(
        smallRun,
        "secure-codex",
        sessions[0].name,
        "auth.json",
      );
      assert.equal(
        (JSON.parse(Deno.readTextFileSync(copy)) as StoredAuth).tokens
          ?.refresh_token,
        `rt-${fixture.canary}`,
      );

      await Deno.remove(filler);
      const next = await fixture.run(["--", "login", "status"], { env });
      assertCleanRun(next, "run after freeing space");
      assert.ok(pathExists(join(markDir, "codex-ran")), "codex did not run");

      // Locked, the same check comes before the unlock, so a stopped run
      // leaves no plaintext behind.
      const lock = await fixture.run(["--cleanup"], { env });
      assertCleanRun(lock, "cleanup");
      const freeAgain = await runCommand("stat", [
        "-f",
        "-c",
        "%a %S",
        smallRun,
      ]);
      const [blocksAgain, sizeAgain] = freeAgain.stdout.trim().split(" ").map(
        Number,
      );
      await Deno.writeFile(
        filler,
        new Uint8Array(blocksAgain * sizeAgain - 16384),
      );
      const cold = await fixture.run(["--", "login", "status"], { env });
      assert.equal(cold.code, 1, cold.stderr);
      assert.match(cold.stderr, /less than 64 KiB free in the RAM directory/);
      assert.ok(!pathExists(copy), "the stopped run unlocked the session");

      // An import also leaves the login unlocked in RAM, so it checks too,
      // before it changes anything.
      await Deno.rename(fixture.store, `${fixture.store}.aside`);
      const plaintext = join(fixture.codexHome, "auth.json");
      await Deno.remove(plaintext);
      await Deno.writeTextFile(
        plaintext,
        '{"OPENAI_API_KEY": "sk-not-secret"}',
      );
      const imported = await fixture.run(["--import"], { env });
      assert.equal(imported.code, 1, imported.stderr);
      assert.match(
        imported.stderr,
        /less than 64 KiB free in the RAM directory/,
      );
      assert.ok(Deno.lstatSync(plaintext).isFile, "the plaintext was moved");
      assert.ok(!pathExists(fixture.store), "a store was written");
    } finally {
      if (mounted) await unmount(smallRun);
      await fixture.dispose();
    }
  },
});

/**
 * Writes an `age` that logs its arguments (paths and public recipients,
 * nothing secret) to `log`, then execs the real age found on the test's PATH.
 * Returns the directory to put first on PATH: Deno resolves
 * `--allow-run=age` on PATH at start-up, so the wrapper must be named `age`.
 */
async function writeCountingAge(
  fixture: Fixture,
  log: string,
): Promise<string> {
  const lookup = await runCommand("sh", ["-c", "command -v age"]);
  const realAge = lookup.stdout.trim();
  assert.ok(realAge.startsWith("/"), `age not found on PATH: ${lookup.stderr}`);
  const directory = await Deno.makeTempDir({
    dir: fixture.dir,
    prefix: "counting-age-",
  });
  await Deno.writeTextFile(
    join(directory, "age"),
    `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\nexec '${realAge}' "$@"\n`,
    { mode: 0o755 },
  );
  return directory;
}

/** Counts the logged age runs whose first argument is `-d`/`--decrypt` or `-e`/`--encrypt`. */
function countAgeRuns(log: string): { decrypt: number; encrypt: number } {
  const lines = pathExists(log)
    ? Deno.readTextFileSync(log).split("\n").filter((line) => line !== "")
    : [];
  const first = lines.map((line) => line.split(" ")[0]);
  return {
    decrypt: first.filter((arg) => arg === "-d" || arg === "--decrypt").length,
    encrypt: first.filter((arg) => arg === "-e" || arg === "--encrypt").length,
  };
}

Deno.test({
  name: "20 concurrent starts decrypt once",
  ignore: NOT_ROOT,
  fn: async () => {
    const fixture = await createFixture();
    const children: Deno.ChildProcess[] = [];
    try {
      const token = `rt-many-${fixture.canary}`;
      await fixture.writeStore(fakeLogin(fixture, token));
      const original = await Deno.readFile(fixture.store);
      const log = join(fixture.tmpDir, "age-runs.log");
      const ageDir = await writeCountingAge(fixture, log);
      const fakeDir = await writeFakeCodex(fixture, NORMAL_CODEX);
      const env = {
        PATH: `${ageDir}:${fakeDir}:${fixture.env.PATH}`,
      };

      for (let i = 0; i < 20; i++) {
        children.push(
          spawnSecureCodex(fixture, ["--", "login", "status"], env),
        );
      }
      const outputs = await Promise.all(
        children.map((child) => child.output()),
      );
      children.length = 0;

      outputs.forEach((output, i) => {
        const stderr = decoder.decode(output.stderr);
        assert.equal(output.code, 0, `run ${i}: ${stderr}`);
        assert.doesNotMatch(stderr, /internal error|warning:/, `run ${i}`);
      });
      const runs = countAgeRuns(log);
      assert.equal(runs.decrypt, 1, "age -d runs");
      assert.equal(runs.encrypt, 0, "age -e runs for an unchanged login");
      assert.deepEqual(await Deno.readFile(fixture.store), original);
      assert.equal(ramCopies(fixture).length, 1);
      assert.equal(ramToken(fixture), token);
    } finally {
      for (const child of children) {
        child.kill("SIGKILL");
        await child.output();
      }
      await fixture.dispose();
    }
  },
});

/**
 * Run "1" waits for `release-1` and exits. Run "2" waits for `go-2`, checks
 * that auth.json still contains the old login, saves the new one like codex,
 * then waits for `release-2`.
 */
const OVERLAPPING_CODEX = `exec >/dev/null 2>&1
set -eu
touch "$MARK_DIR/started-$RUN"
wait_for() {
  i=0
  while [ ! -e "$MARK_DIR/$1" ] && [ $i -lt 600 ]; do
    sleep 0.02
    i=$((i + 1))
  done
}
if [ "$RUN" = 1 ]; then
  wait_for release-1
  exit 0
fi
wait_for go-2
if grep -q "$OLD_TOKEN" "$CODEX_HOME/auth.json"; then touch "$MARK_DIR/readable-2"; fi
${SAVE_LIKE_CODEX}touch "$MARK_DIR/renamed-2"
wait_for release-2
`;

for (const keep of [true, false]) {
  Deno.test({
    name: `overlapping runs, KEEP=${keep}`,
    ignore: NOT_ROOT,
    fn: async () => {
      const fixture = await createFixture();
      const markDir = await resetMarkDir(fixture);
      const children: Deno.ChildProcess[] = [];
      try {
        const oldToken = `rt-overlap-old-${fixture.canary}`;
        const newToken = `rt-overlap-new-${fixture.canary}`;
        await fixture.writeStore(fakeLogin(fixture, oldToken));
        const fakeDir = await writeFakeCodex(fixture, OVERLAPPING_CODEX);
        const start = (run: string) => {
          const child = spawnSecureCodex(
            fixture,
            ["--", "exec", "hi"],
            fakeCodexEnv(fixture, fakeDir, {
              MARK_DIR: markDir,
              RUN: run,
              OLD_TOKEN: oldToken,
              FAKE_NEW_AUTH: fakeLogin(fixture, newToken),
              SECURE_CODEX_KEEP: String(keep),
            }),
          );
          children.push(child);
          return child;
        };

        const first = start("1");
        await waitFor(
          () => pathExists(join(markDir, "started-1")),
          "the first codex to start",
        );
        const second = start("2");
        await waitFor(
          () => pathExists(join(markDir, "started-2")),
          "the second codex to start",
        );
        await Deno.writeTextFile(join(markDir, "release-1"), "");
        const firstOutput = await first.output();
        assertCleanRun(
          toRunResult(firstOutput),
          "first run",
        );

        // The first run has exited: the second codex reads and refreshes.
        await Deno.writeTextFile(join(markDir, "go-2"), "");
        await waitFor(
          () => pathExists(join(markDir, "renamed-2")),
          "the second codex to save",
        );
        assert.ok(
          pathExists(join(markDir, "readable-2")),
          "the second codex could not read auth.json after the first exited",
        );
        await waitFor(
          async () => await storedToken(fixture) === newToken,
          "the second run to save the refresh while codex runs",
          { timeoutMs: 5_000, intervalMs: 50 },
        );

        await Deno.writeTextFile(join(markDir, "release-2"), "");
        const secondOutput = await second.output();
        children.length = 0;
        assertCleanRun(
          toRunResult(secondOutput),
          "second run",
        );
        assert.equal(await storedToken(fixture), newToken);
        if (keep) assert.equal(ramToken(fixture), newToken);
        else assert.deepEqual(ramCopies(fixture), []);
      } finally {
        for (const name of ["release-1", "go-2", "release-2"]) {
          await Deno.writeTextFile(join(markDir, name), "");
        }
        for (const child of children) await child.output().catch(() => {});
        await fixture.dispose();
      }
    },
  });
}

Deno.test({
  name: "refresh race of four codex runs",
  ignore: NOT_ROOT,
  fn: async () => {
    const fixture = await createFixture();
    const mock = startTokenMock({ canary: fixture.canary, first: "rt-1" });
    try {
      const env = { CODEX_REFRESH_TOKEN_URL_OVERRIDE: mock.url };
      const rounds = 5;
      for (let round = 1; round <= rounds; round++) {
        // Each round starts from a locked session whose access token has
        // expired, so every codex refreshes with the newest refresh token.
        const cleanup = await fixture.run(["--cleanup"], { env });
        assertCleanRun(cleanup, `round ${round}: --cleanup`);
        assert.equal(mock.valid.size, 1);
        const [current] = mock.valid;
        await fixture.writeStore(
          fakeChatGptAuth({
            canary: fixture.canary,
            refreshToken: current,
            expiresIn: -600,
          }),
        );
        const requestsBefore = mock.requests.length;

        const children = Array.from(
          { length: 4 },
          () => spawnSecureCodex(fixture, ["--", "mcp", "list"], env),
        );
        const results = (await Promise.all(
          children.map((child) => child.output()),
        )).map(toRunResult);

        const codes = results.map((result) => result.code);
        const sent = mock.requests.slice(requestsBefore).map((request) =>
          request.refreshToken
        );
        const reused = sent.length - new Set(sent).size;
        console.log(
          `round ${round}: exit codes ${codes.join(", ")}; ` +
            `refresh requests: ${sent.length}, with a used token: ${reused}`,
        );
        for (const [i, result] of results.entries()) {
          const where = `round ${round}, run ${i}`;
          assert.doesNotMatch(result.stderr, /internal error/, where);
          assert.doesNotMatch(
            result.stderr,
            /^secure-codex: warning:/m,
            `${where}\n${result.stderr}`,
          );
        }

        const ramText = await Deno.readTextFile(
          join(fixture.ramDir(), "auth.json"),
        );
        const decrypted = await runCommand("age", [
          "-d",
          "-i",
          fixture.identity,
          fixture.store,
        ]);
        assert.equal(decrypted.code, 0, decrypted.stderr);
        assert.ok(
          decrypted.stdout === ramText,
          `round ${round}: the store differs from the RAM copy`,
        );
        assert.equal(mock.valid.size, 1);
        const [newest] = mock.valid;
        assert.notEqual(newest, current, `round ${round}: no refresh happened`);
        assert.equal(
          (JSON.parse(decrypted.stdout) as StoredAuth).tokens?.refresh_token,
          newest,
          `round ${round}: store does not hold the newest refresh token`,
        );
      }
    } finally {
      await mock.close();
      await fixture.dispose();
    }
  },
});

/** Keeps a fake codex running until the test creates `stop`, 30 s at most. */
const WAIT_FOR_STOP = `i=0
while [ ! -e "$MARK_DIR/stop" ] && [ $i -lt 600 ]; do
  sleep 0.05
  i=$((i + 1))
done
`;

const SIGNAL_CODEX = {
  // A trap saves a refreshed login, as codex may do on its way out, and exits
  // with 40 + the signal number. With $REPEAT set it also starts a loop that
  // sends that signal to the wrapper every 2 ms for about 300 ms, like a
  // second Ctrl-C or a supervisor that repeats SIGTERM. Traps are set before
  // the pid file appears, so every signal the test sends meets them.
  trap: `exec >/dev/null 2>&1
on_signal() {
  ${SAVE_LIKE_CODEX.trimEnd().replaceAll("\n", "\n  ")}
  touch "$MARK_DIR/caught-$1"
  if [ -n "$REPEAT" ]; then
    (
      i=0
      while [ $i -lt 150 ] && kill -s "$REPEAT" "$PPID" 2>/dev/null; do
        sleep 0.002
        i=$((i + 1))
      done
    ) &
  fi
  exit "$2"
}
trap 'on_signal SIGHUP 41' HUP
trap 'on_signal SIGINT 42' INT
trap 'on_signal SIGTERM 55' TERM
echo $$ > "$MARK_DIR/pid"
${WAIT_FOR_STOP}exit 0
`,
  // The default action ends the shell by the signal.
  default: `exec >/dev/null 2>&1
echo $$ > "$MARK_DIR/pid"
${WAIT_FOR_STOP}exit 0
`,
};

const SIGNALS = [
  { name: "SIGTERM", number: 15 },
  { name: "SIGHUP", number: 1 },
  { name: "SIGINT", number: 2 },
] as const;

for (const signal of SIGNALS) {
  for (const target of ["wrapper", "group"] as const) {
    for (const variant of ["trap", "default"] as const) {
      Deno.test({
        name: `${signal.name} to ${
          target === "wrapper" ? "wrapper alone" : "process group"
        }, codex ${variant === "trap" ? "traps it" : "default action"}`,
        ignore: NOT_ROOT,
        fn: async () => {
          const fixture = await createFixture();
          const markDir = await resetMarkDir(fixture);
          let child: Deno.ChildProcess | null = null;
          try {
            const oldToken = `rt-signal-old-${fixture.canary}`;
            const newToken = `rt-signal-new-${fixture.canary}`;
            await fixture.writeStore(fakeLogin(fixture, oldToken));
            const fakeDir = await writeFakeCodex(
              fixture,
              SIGNAL_CODEX[variant],
            );
            child = spawnSecureCodexInGroup(
              fixture,
              ["--", "exec", "hi"],
              fakeCodexEnv(fixture, fakeDir, {
                MARK_DIR: markDir,
                SECURE_CODEX_KEEP: "false",
                FAKE_NEW_AUTH: fakeLogin(fixture, newToken),
                REPEAT: "",
              }),
            );
            const wrapperPid = child.pid;
            const codexPid = await readPidFile(join(markDir, "pid"));
            const caughtMark = join(markDir, `caught-${signal.name}`);

            Deno.kill(
              target === "group" ? -wrapperPid : wrapperPid,
              signal.name,
            );
            // The terminal sends Ctrl-C to the whole foreground group. The
            // wrapper therefore ignores a SIGINT sent to it alone and does not
            // forward it: codex runs on and decides when to exit.
            const ignored = target === "wrapper" && signal.name === "SIGINT";
            if (ignored) {
              await sleep(300);
              assert.ok(await isProcessAlive(wrapperPid), "wrapper died");
              assert.ok(await isProcessAlive(codexPid), "codex died");
              assert.ok(!pathExists(caughtMark), "SIGINT reached codex");
              await Deno.writeTextFile(join(markDir, "stop"), "");
            }
            const result = toRunResult(await child.output());
            child = null;

            const expected = ignored
              ? 0
              : variant === "trap"
              ? 40 + signal.number
              : 128 + signal.number;
            assert.equal(result.code, expected, result.stderr);
            const trapped = variant === "trap" && !ignored;
            assert.equal(
              pathExists(caughtMark),
              trapped,
              trapped ? "codex's trap did not run" : "codex trapped",
            );
            assert.equal(
              await storedToken(fixture),
              trapped ? newToken : oldToken,
              "store after the run",
            );
            assert.ok(
              !(await isProcessAlive(codexPid)),
              "codex outlived the wrapper",
            );
            await waitFor(
              async () => (await processGroupMembers(wrapperPid)).length === 0,
              "the process group to empty",
              { timeoutMs: 2_000 },
            );
            assert.doesNotMatch(result.stderr, /internal error/, result.stderr);
            assert.deepEqual(ramCopies(fixture), [], "plaintext left in RAM");
            assert.deepEqual(ramDirLeftovers(fixture.runtimeDir), []);
          } finally {
            await Deno.writeTextFile(join(markDir, "stop"), "");
            if (child !== null) {
              await killProcessGroup(child.pid);
              await child.output();
            }
            await fixture.dispose();
          }
        },
      });
    }
  }
}

for (const signal of SIGNALS) {
  Deno.test({
    name: `${signal.name} repeated while the wrapper finishes`,
    ignore: NOT_ROOT,
    fn: async () => {
      const fixture = await createFixture();
      const markDir = await resetMarkDir(fixture);
      let child: Deno.ChildProcess | null = null;
      try {
        const newToken = `rt-repeat-new-${fixture.canary}`;
        await fixture.writeStore(
          fakeLogin(fixture, `rt-repeat-old-${fixture.canary}`),
        );
        const fakeDir = await writeFakeCodex(fixture, SIGNAL_CODEX.trap);
        child = spawnSecureCodexInGroup(
          fixture,
          ["--", "exec", "hi"],
          fakeCodexEnv(fixture, fakeDir, {
            MARK_DIR: markDir,
            SECURE_CODEX_KEEP: "false",
            FAKE_NEW_AUTH: fakeLogin(fixture, newToken),
            REPEAT: signal.name.slice(3),
          }),
        );
        const wrapperPid = child.pid;
        await readPidFile(join(markDir, "pid"));

        // The first signal goes to the whole group, as from a terminal. The
        // trap saves a refresh, starts repeating the signal and exits.
        Deno.kill(-wrapperPid, signal.name);
        const result = toRunResult(await child.output());
        child = null;

        assert.equal(result.code, 40 + signal.number, result.stderr);
        assert.equal(await storedToken(fixture), newToken, "refresh not saved");
        assert.deepEqual(ramCopies(fixture), [], "plaintext left in RAM");
        await waitFor(
          async () => (await processGroupMembers(wrapperPid)).length === 0,
          "the process group to empty",
          { timeoutMs: 2_000 },
        );
      } finally {
        await Deno.writeTextFile(join(markDir, "stop"), "");
        if (child !== null) {
          await killProcessGroup(child.pid);
          await child.output();
        }
        await fixture.dispose();
      }
    },
  });
}

/**
 * A fake codex that fills the RAM filesystem and then writes a refreshed
 * auth.json in place, which reuses the file's own page, and exits with 3.
 */
const FILL_RAM_THEN_SAVE = `target=$(readlink -f "$CODEX_HOME/auth.json")
dd if=/dev/zero of="\${target%/*}/.fill" bs=64k 2>/dev/null
# dd stops short of the last page; small files take what is left.
for i in 1 2 3 4 5 6 7 8; do printf x 2>/dev/null > "\${target%/*}/.fill$i" || break; done
printf '%s' "$NEW_AUTH" > "$target"
sleep 0.3
exit 3
`;

Deno.test({
  name: "full RAM at write-back keeps codex's exit code",
  ignore: NOT_ROOT,
  fn: async () => {
    const fixture = await createFixture();
    try {
      await fixture.writeStore(
        fakeChatGptAuth({ canary: fixture.canary, refreshToken: "rt-1" }),
      );
      const unlock = await fixture.run(["--unlock"]);
      assert.equal(unlock.code, 0, unlock.stderr);
      const storeBefore = await Deno.readFile(fixture.store);
      const fake = await writeFakeCodex(fixture, FILL_RAM_THEN_SAVE);
      const refreshed = fakeChatGptAuth({
        canary: fixture.canary,
        refreshToken: "rt-2",
        lastRefresh: new Date(Date.now() + 60_000).toISOString(),
      });
      const result = await fixture.run(["--", "exec", "x"], {
        env: fakeCodexEnv(fixture, fake, {
          NEW_AUTH: JSON.stringify(refreshed),
          SECURE_CODEX_KEEP: "1",
        }),
      });
      assert.equal(result.code, 3, result.stderr);
      assert.match(result.stderr, /cannot write the session state: /);
      // The advice names the full filesystem, the RAM directory's, never the
      // codex home's on disk.
      assert.ok(
        result.stderr.includes(
          `hint: free space on the filesystem of ${fixture.ramDir()}, then`,
        ),
        result.stderr,
      );
      assert.deepEqual(await Deno.readFile(fixture.store), storeBefore);

      // With space again, the next run saves the refresh.
      for (const entry of Deno.readDirSync(fixture.ramDir())) {
        if (entry.name.startsWith(".fill")) {
          Deno.removeSync(join(fixture.ramDir(), entry.name));
        }
      }
      const next = await fixture.run(["--", "login", "status"]);
      assert.equal(next.code, 0, next.stderr);
      const stored = await fixture.readStore() as {
        tokens: { refresh_token: string };
      };
      assert.equal(stored.tokens.refresh_token, "rt-2");
    } finally {
      await fixture.dispose();
    }
  },
});
