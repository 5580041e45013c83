/**
 * Day-to-day use beyond a single run: profiles with their own codex homes,
 * `--unlock` for programs that run codex themselves, `--watch` saving their
 * refreshes, the time to live, `--lock` and `--list-profiles`.
 *
 * Every test runs the real codex and age. Token refreshes go to the loopback
 * token mock through CODEX_REFRESH_TOKEN_URL_OVERRIDE. "Plain codex" means the
 * codex binary started directly with CODEX_HOME, as an IDE extension would,
 * not through secure-codex.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CODEX_TEST_CONFIG,
  createFixture,
  fakeChatGptAuth,
  type Fixture,
  pathExists,
  ramCopies,
  runCommand,
  type RunResult,
  SECURE_CODEX,
  startTokenMock,
  waitFor,
} from "./helpers.ts";

interface StoredAuth {
  tokens?: { refresh_token: string } | null;
}

/** The parts of `--status --json` these tests read. */
interface StatusJson {
  state: "unlocked" | "locked";
  codexHome: string;
  ramDir: { path: string; exists: boolean };
  login: { email: string | null } | null;
}

/** One codex home of a profile, with its store. */
interface ProfileHome {
  name: string;
  codexHome: string;
  store: string;
}

/**
 * Delay after a "watching" log line before a test changes the RAM copy.
 * NOTE: watch logs that line before it starts `Deno.watchFs`. A change made
 * in between is saved only after a later change or at the stop.
 */
const WATCHER_SETTLE_MS = 300;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Writes a JSONC config file and returns its path. */
async function writeConfig(path: string, value: unknown): Promise<string> {
  await Deno.writeTextFile(
    path,
    `// written by tests/daily_test.ts\n${JSON.stringify(value, null, 2)}\n`,
  );
  return path;
}

/**
 * Creates a codex home for a profile, away from its default `~/.codex-NAME`,
 * so that a run that ignores the config's `codexHome` finds no store.
 */
async function makeProfileHome(
  fixture: Fixture,
  name: string,
): Promise<ProfileHome> {
  const codexHome = join(fixture.home, `codex-${name}`);
  await Deno.mkdir(codexHome, { mode: 0o700 });
  await Deno.writeTextFile(join(codexHome, "config.toml"), CODEX_TEST_CONFIG);
  return { name, codexHome, store: join(codexHome, "auth.json.age") };
}

function profileConfig(homes: ProfileHome[]): Record<string, unknown> {
  return {
    profiles: Object.fromEntries(
      homes.map((home) => [home.name, { codexHome: home.codexHome }]),
    ),
  };
}

async function storedRefreshToken(
  fixture: Fixture,
  store: string,
): Promise<string | undefined> {
  return (await fixture.readStore(store) as StoredAuth).tokens?.refresh_token;
}

async function status(
  fixture: Fixture,
  args: string[],
  env: Record<string, string> = {},
): Promise<StatusJson> {
  const result = await fixture.run([...args, "--status", "--json"], { env });
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as StatusJson;
}

/** Runs `codex mcp list` directly, which refreshes an expired access token. */
function plainCodexRefresh(
  fixture: Fixture,
  codexHome: string,
  tokenUrl: string,
): Promise<RunResult> {
  return runCommand("codex", ["mcp", "list"], {
    env: {
      ...fixture.env,
      CODEX_HOME: codexHome,
      CODEX_REFRESH_TOKEN_URL_OVERRIDE: tokenUrl,
    },
  });
}

/** A secure-codex process in the background whose stderr can be read while it runs. */
interface Background {
  /** The stderr received so far. */
  stderr(): string;
  /** The stdout received so far. */
  stdout(): string;
  exited(): boolean;
  /** Waits for a line containing `text` on stderr; fails early if the process exits. */
  waitForLine(text: string, timeoutMs?: number): Promise<void>;
  /** Sends `signal` and waits for the exit and the end of both outputs. */
  stop(signal: Deno.Signal): Promise<Deno.CommandStatus>;
  /** Kills the process if it still runs and waits for it; for `finally`. */
  dispose(): Promise<void>;
}

function startBackground(
  fixture: Fixture,
  args: string[],
  env: Record<string, string> = {},
): Background {
  const child = new Deno.Command(SECURE_CODEX, {
    args,
    env: { ...fixture.env, ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stderrText = "";
  let stdoutText = "";
  let exited = false;
  const collect = async (
    stream: ReadableStream<Uint8Array>,
    append: (text: string) => void,
  ) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      append(text);
    }
  };
  const reading = Promise.all([
    collect(child.stderr, (text) => stderrText += text),
    collect(child.stdout, (text) => stdoutText += text),
  ]);
  const finished = child.status.then(async (result) => {
    exited = true;
    await reading;
    return result;
  });
  return {
    stderr: () => stderrText,
    stdout: () => stdoutText,
    exited: () => exited,
    async waitForLine(text, timeoutMs = 15_000) {
      await waitFor(
        () => stderrText.includes(text) || exited,
        `"${text}" on stderr of secure-codex ${args.join(" ")}`,
        { timeoutMs },
      );
      if (!stderrText.includes(text)) {
        await finished;
        assert.fail(
          `secure-codex ${args.join(" ")} exited before printing "${text}":\n` +
            stderrText,
        );
      }
    },
    async stop(signal) {
      if (!exited) child.kill(signal);
      return await finished;
    },
    async dispose() {
      if (!exited) {
        try {
          child.kill("SIGKILL");
        } catch {
          // It exited between the check and the kill.
        }
      }
      await finished;
    },
  };
}

/**
 * Polls the store every 50 ms until its refresh token is `expected`, for at
 * most `limitMs` after `since`. Returns the delay from `since`, or null.
 */
async function pollStore(
  fixture: Fixture,
  store: string,
  expected: string,
  since: number,
  limitMs: number,
): Promise<number | null> {
  for (;;) {
    const token = await storedRefreshToken(fixture, store);
    const now = Date.now();
    if (token === expected) return now - since;
    if (now - since > limitMs) return null;
    await sleep(50);
  }
}

Deno.test("two profiles run concurrently", async () => {
  const fixture = await createFixture();
  const mock = startTokenMock({ canary: fixture.canary, first: "rt-work-1" });
  try {
    const work = await makeProfileHome(fixture, "work");
    const home = await makeProfileHome(fixture, "home");
    const config = await writeConfig(
      join(fixture.dir, "config.jsonc"),
      profileConfig([work, home]),
    );
    await fixture.writeStore(
      fakeChatGptAuth({
        canary: fixture.canary,
        email: "work@example.com",
        refreshToken: "rt-work-1",
        accountId: "acct-work",
        // `login status` never refreshes; `mcp list` below does.
        expiresIn: -600,
      }),
      work.store,
    );
    await fixture.writeStore(
      fakeChatGptAuth({
        canary: fixture.canary,
        email: "home@example.com",
        refreshToken: "rt-home-1",
        accountId: "acct-home",
      }),
      home.store,
    );

    const [workRun, homeRun] = await Promise.all([
      fixture.run([
        "--config",
        config,
        "--profile",
        "work",
        "--",
        "login",
        "status",
      ]),
      fixture.run([
        "--config",
        config,
        "--profile",
        "home",
        "--",
        "login",
        "status",
      ]),
    ]);
    assert.equal(workRun.code, 0, workRun.stderr);
    assert.equal(homeRun.code, 0, homeRun.stderr);
    assert.match(workRun.stdout + workRun.stderr, /Logged in using ChatGPT/);
    assert.match(homeRun.stdout + homeRun.stderr, /Logged in using ChatGPT/);

    const workStatus = await status(fixture, [
      "--config",
      config,
      "--profile",
      "work",
    ]);
    const homeStatus = await status(fixture, [
      "--config",
      config,
      "--profile",
      "home",
    ]);
    assert.equal(workStatus.state, "unlocked");
    assert.equal(homeStatus.state, "unlocked");
    assert.equal(workStatus.login?.email, "work@example.com");
    assert.equal(homeStatus.login?.email, "home@example.com");
    assert.equal(workStatus.codexHome, work.codexHome);
    assert.equal(homeStatus.codexHome, home.codexHome);
    assert.notEqual(workStatus.ramDir.path, homeStatus.ramDir.path);
    assert.ok(workStatus.ramDir.exists);
    assert.ok(homeStatus.ramDir.exists);
    assert.equal(
      Deno.readLinkSync(join(work.codexHome, "auth.json")),
      join(workStatus.ramDir.path, "auth.json"),
    );
    assert.equal(
      Deno.readLinkSync(join(home.codexHome, "auth.json")),
      join(homeStatus.ramDir.path, "auth.json"),
    );

    // Work's access token has expired, so `mcp list` refreshes it.
    const workStoreBefore = await Deno.readFile(work.store);
    const homeStoreBefore = await Deno.readFile(home.store);
    const homeRamCopy = join(homeStatus.ramDir.path, "auth.json");
    const homeRamBefore = await Deno.readFile(homeRamCopy);

    const refresh = await fixture.run(
      ["--config", config, "--profile", "work", "--", "mcp", "list"],
      { env: { CODEX_REFRESH_TOKEN_URL_OVERRIDE: mock.url } },
    );
    assert.equal(refresh.code, 0, refresh.stderr);
    assert.deepEqual(mock.requests.map((request) => request.refreshToken), [
      "rt-work-1",
    ]);
    assert.notDeepEqual(await Deno.readFile(work.store), workStoreBefore);
    assert.equal(
      await storedRefreshToken(fixture, work.store),
      `rt-2-${fixture.canary}`,
    );
    assert.deepEqual(await Deno.readFile(home.store), homeStoreBefore);
    assert.deepEqual(await Deno.readFile(homeRamCopy), homeRamBefore);
    assert.equal(await storedRefreshToken(fixture, home.store), "rt-home-1");
  } finally {
    await mock.close();
    await fixture.dispose();
  }
});

Deno.test("watch saves plain codex refresh", async () => {
  const fixture = await createFixture();
  const mock = startTokenMock({ canary: fixture.canary, first: "rt-1" });
  let watch: Background | null = null;
  try {
    await fixture.writeStore(
      fakeChatGptAuth({
        canary: fixture.canary,
        refreshToken: "rt-1",
        expiresIn: -600,
      }),
    );
    const unlock = await fixture.run(["--unlock"]);
    assert.equal(unlock.code, 0, unlock.stderr);
    assert.equal(ramCopies(fixture).length, 1);

    watch = startBackground(fixture, ["--watch"]);
    await watch.waitForLine("watch default: watching");
    await sleep(WATCHER_SETTLE_MS);

    const codex = await plainCodexRefresh(fixture, fixture.codexHome, mock.url);
    const codexExitedAt = Date.now();
    assert.equal(codex.code, 0, codex.stderr);
    assert.deepEqual(mock.requests.map((request) => request.refreshToken), [
      "rt-1",
    ]);
    const delay = await pollStore(
      fixture,
      fixture.store,
      `rt-2-${fixture.canary}`,
      codexExitedAt,
      1000,
    );
    console.log(
      delay === null
        ? "the store did not hold the rotated token within 1000 ms"
        : `the store held the rotated token ${delay} ms after codex exited`,
    );
    assert.notEqual(
      delay,
      null,
      `not saved within 1 s of codex exiting; watch stderr:\n${watch.stderr()}`,
    );

    const result = await watch.stop("SIGTERM");
    const stderr = watch.stderr();
    assert.equal(result.code, 0, stderr);
    assert.match(stderr, /watch default: saved refreshed tokens to /);
    assert.match(stderr, /watch default: stopped/);
    assert.ok(!stderr.includes(fixture.canary), "canary on stderr");
    assert.ok(!watch.stdout().includes(fixture.canary), "canary on stdout");
  } finally {
    await watch?.dispose();
    await mock.close();
    await fixture.dispose();
  }
});

Deno.test("watch waits for a copy still being written", async () => {
  const fixture = await createFixture();
  let watch: Background | null = null;
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const unlock = await fixture.run(["--unlock"]);
    assert.equal(unlock.code, 0, unlock.stderr);
    watch = startBackground(fixture, ["--watch"]);
    await watch.waitForLine("watch default: watching");
    await sleep(WATCHER_SETTLE_MS);

    // A tool that writes through the link in place, in two parts.
    const refreshed = new TextEncoder().encode(JSON.stringify(
      fakeChatGptAuth({
        canary: fixture.canary,
        refreshToken: `rt-slow-${fixture.canary}`,
        lastRefresh: new Date(Date.now() + 60_000).toISOString(),
      }),
    ));
    const file = await Deno.open(join(fixture.ramDir(), "auth.json"), {
      write: true,
      truncate: true,
    });
    try {
      await file.write(refreshed.subarray(0, 100));
      await sleep(1000);
      await file.write(refreshed.subarray(100));
    } finally {
      file.close();
    }
    await waitFor(
      () => watch!.stderr().includes("watch default: saved refreshed tokens"),
      "the watch to save the finished copy",
    );
    const stored = await fixture.readStore() as {
      tokens?: { refresh_token?: string };
    };
    assert.equal(stored.tokens?.refresh_token, `rt-slow-${fixture.canary}`);
    await watch.stop("SIGTERM");
    // The store is keyed to an identity, so no passphrase message belongs here.
    assert.doesNotMatch(watch.stderr(), /passphrase|not a valid auth.json/);
  } finally {
    await watch?.dispose();
    await fixture.dispose();
  }
});

Deno.test("watch reports a codex home moved away", async () => {
  const fixture = await createFixture();
  let watch: Background | null = null;
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const unlock = await fixture.run(["--unlock"]);
    assert.equal(unlock.code, 0, unlock.stderr);
    watch = startBackground(fixture, ["--watch"]);
    await watch.waitForLine("watch default: watching");
    await sleep(WATCHER_SETTLE_MS);

    // The codex home goes away with its store (renamed, or on a drive that
    // was unmounted), then plain codex saves a refresh into RAM.
    await Deno.rename(fixture.codexHome, `${fixture.codexHome}.off`);
    const ramCopy = join(fixture.ramDir(), "auth.json");
    await Deno.writeTextFile(
      `${ramCopy}.new`,
      JSON.stringify(fakeChatGptAuth({
        canary: fixture.canary,
        refreshToken: "rt-unsaved",
        lastRefresh: new Date(Date.now() + 60_000).toISOString(),
      })),
      { mode: 0o600 },
    );
    await Deno.rename(`${ramCopy}.new`, ramCopy);
    await waitFor(
      () => watch!.stderr().includes("warning: write-back failed: "),
      "the watch to report the failed save",
    ).catch((error) => {
      throw new Error(`${error.message}; stderr:\n${watch!.stderr()}`);
    });
    await watch.stop("SIGTERM");
    assert.ok(!watch.stderr().includes(fixture.canary), "canary on stderr");
    await Deno.rename(`${fixture.codexHome}.off`, fixture.codexHome);
  } finally {
    await watch?.dispose();
    await fixture.dispose();
  }
});

Deno.test("config TTL locks next run", async () => {
  const fixture = await createFixture();
  try {
    const config = await writeConfig(join(fixture.dir, "config.jsonc"), {
      ttl: "2s",
    });
    const env = { SECURE_CODEX_CONFIG: config };
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const unlock = await fixture.run(["--unlock"], { env });
    assert.equal(unlock.code, 0, unlock.stderr);
    const statePath = join(fixture.ramDir(), "session.json");
    const firstUnlock = JSON.parse(await Deno.readTextFile(statePath))
      .unlockedAt as string;

    // Within the time to live the session stays as it is.
    const early = await fixture.run(["--", "login", "status"], { env });
    assert.equal(early.code, 0, early.stderr);
    assert.doesNotMatch(early.stderr, /locked the session/);
    assert.equal(
      JSON.parse(await Deno.readTextFile(statePath)).unlockedAt,
      firstUnlock,
    );

    const expiresAt = Date.parse(firstUnlock) + 2000;
    await sleep(Math.max(0, expiresAt - Date.now()) + 200);
    const late = await fixture.run(["--", "login", "status"], { env });
    assert.equal(late.code, 0, late.stderr);
    assert.match(late.stderr, /locked the session/);
    assert.match(late.stdout + late.stderr, /Logged in using ChatGPT/);
    assert.equal(ramCopies(fixture).length, 1, "not unlocked again");
    const secondUnlock = JSON.parse(await Deno.readTextFile(statePath))
      .unlockedAt as string;
    assert.ok(
      Date.parse(secondUnlock) > Date.parse(firstUnlock),
      `unlockedAt did not move: ${firstUnlock} -> ${secondUnlock}`,
    );
  } finally {
    await fixture.dispose();
  }
});

// The help text describes --ttl as "lock a session this long after its
// unlock", so a run started without --ttl must still lock after that time.
Deno.test("unlock TTL locks next run", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const unlock = await fixture.run(["--unlock", "--ttl", "2s"]);
    assert.equal(unlock.code, 0, unlock.stderr);
    const unlockedAt = JSON.parse(
      await Deno.readTextFile(join(fixture.ramDir(), "session.json")),
    ).unlockedAt as string;
    await sleep(Math.max(0, Date.parse(unlockedAt) + 2000 - Date.now()) + 200);

    const late = await fixture.run(["--", "login", "status"]);
    assert.equal(late.code, 0, late.stderr);
    assert.match(late.stdout + late.stderr, /Logged in using ChatGPT/);
    assert.match(
      late.stderr,
      /locked the session/,
      "the session unlocked with --ttl 2s was not locked 2 s later",
    );
    // The session this run unlocked again keeps the TTL, so it locks again.
    const relocked = JSON.parse(
      await Deno.readTextFile(join(fixture.ramDir(), "session.json")),
    );
    assert.equal(relocked.ttlSeconds, 2);
    assert.notEqual(relocked.unlockedAt, unlockedAt);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("watch locks expired session", async () => {
  const fixture = await createFixture();
  let watch: Background | null = null;
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const storeBefore = await Deno.readFile(fixture.store);
    const unlock = await fixture.run(["--unlock"]);
    assert.equal(unlock.code, 0, unlock.stderr);
    const ramDir = fixture.ramDir();
    const unlockedAt = JSON.parse(
      await Deno.readTextFile(join(ramDir, "session.json")),
    ).unlockedAt as string;
    const expiresAt = Date.parse(unlockedAt) + 2000;

    watch = startBackground(fixture, ["--watch", "--ttl", "2s"]);
    await watch.waitForLine("watch default: watching");
    const lockedWithin = 4000;
    await waitFor(
      () => ramCopies(fixture).length === 0 || watch!.exited(),
      "the watch to lock the session",
      { timeoutMs: Math.max(0, expiresAt - Date.now()) + lockedWithin },
    );
    const lockedAt = Date.now();
    assert.deepEqual(
      ramCopies(fixture),
      [],
      `still unlocked ${
        lockedAt - expiresAt
      } ms after the TTL; watch stderr:\n${watch.stderr()}`,
    );
    assert.ok(
      lockedAt >= expiresAt,
      `locked ${expiresAt - lockedAt} ms before the TTL passed`,
    );
    console.log(`locked ${lockedAt - expiresAt} ms after the TTL passed`);
    await watch.waitForLine("locked after its time to live");
    assert.deepEqual(await Deno.readFile(fixture.store), storeBefore);
    const link = join(fixture.codexHome, "auth.json");
    assert.ok(Deno.lstatSync(link).isSymlink);
    assert.equal(Deno.readLinkSync(link), join(ramDir, "auth.json"));

    const result = await watch.stop("SIGTERM");
    assert.equal(result.code, 0, watch.stderr());
    assert.ok(!watch.stderr().includes(fixture.canary), "canary on stderr");
  } finally {
    await watch?.dispose();
    await fixture.dispose();
  }
});

Deno.test("TTL outlives a lock by the watch", async () => {
  const fixture = await createFixture();
  let watch: Background | null = null;
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const unlock = await fixture.run(["--unlock", "--ttl", "2s"]);
    assert.equal(unlock.code, 0, unlock.stderr);
    const statePath = join(fixture.ramDir(), "session.json");
    const unlockedAt = JSON.parse(await Deno.readTextFile(statePath))
      .unlockedAt as string;

    // The watch has no TTL of its own: the session's recorded one applies.
    watch = startBackground(fixture, ["--watch"]);
    await watch.waitForLine("watch default: watching");
    await waitFor(
      () => ramCopies(fixture).length === 0 || watch!.exited(),
      "the watch to lock the session",
      {
        timeoutMs: Math.max(0, Date.parse(unlockedAt) + 2000 - Date.now()) +
          4000,
      },
    );
    await watch.waitForLine("locked after its time to live");
    const stopped = await watch.stop("SIGTERM");
    assert.equal(stopped.code, 0, watch.stderr());

    // A run without a TTL unlocks again, and the new session keeps the 2 s.
    const run = await fixture.run(["--", "login", "status"]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(JSON.parse(await Deno.readTextFile(statePath)).ttlSeconds, 2);

    // An explicit lock ends the TTL with the session.
    const lock = await fixture.run(["--lock"]);
    assert.equal(lock.code, 0, lock.stderr);
    const after = await fixture.run(["--", "login", "status"]);
    assert.equal(after.code, 0, after.stderr);
    assert.equal(JSON.parse(await Deno.readTextFile(statePath)).ttlSeconds, 0);
  } finally {
    await watch?.dispose();
    await fixture.dispose();
  }
});

Deno.test("watch survives RAM directory removal", async () => {
  const fixture = await createFixture();
  const mock = startTokenMock({ canary: fixture.canary, first: "rt-1" });
  let watch: Background | null = null;
  try {
    await fixture.writeStore(
      fakeChatGptAuth({
        canary: fixture.canary,
        refreshToken: "rt-1",
        expiresIn: -600,
      }),
    );
    const unlock = await fixture.run(["--unlock"]);
    assert.equal(unlock.code, 0, unlock.stderr);
    const ramDir = fixture.ramDir();

    watch = startBackground(fixture, ["--watch"]);
    await watch.waitForLine("watch default: watching");
    await Deno.remove(ramDir, { recursive: true });
    await watch.waitForLine(
      `watch default: the RAM directory does not exist, waiting for the next unlock: ${ramDir}`,
    );

    const again = await fixture.run(["--unlock"]);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(pathExists(join(ramDir, "auth.json")));
    await watch.waitForLine(
      `watch default: the RAM directory is back, watching again: ${ramDir}`,
    );
    await sleep(WATCHER_SETTLE_MS);

    const codex = await plainCodexRefresh(fixture, fixture.codexHome, mock.url);
    assert.equal(codex.code, 0, codex.stderr);
    assert.deepEqual(mock.requests.map((request) => request.refreshToken), [
      "rt-1",
    ]);
    const delay = await pollStore(
      fixture,
      fixture.store,
      `rt-2-${fixture.canary}`,
      Date.now(),
      5000,
    );
    assert.notEqual(
      delay,
      null,
      `the refresh was not saved; watch stderr:\n${watch.stderr()}`,
    );

    const result = await watch.stop("SIGTERM");
    assert.equal(result.code, 0, watch.stderr());
    assert.match(watch.stderr(), /watch default: saved refreshed tokens to /);
    assert.ok(!watch.stderr().includes(fixture.canary), "canary on stderr");
  } finally {
    await watch?.dispose();
    await mock.close();
    await fixture.dispose();
  }
});

Deno.test("lock leaves dangling link", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const storeBefore = await Deno.readFile(fixture.store);
    const unlock = await fixture.run(["--unlock"]);
    assert.equal(unlock.code, 0, unlock.stderr);
    const ramCopy = join(fixture.ramDir(), "auth.json");
    const link = join(fixture.codexHome, "auth.json");
    assert.ok(
      Deno.statSync(link).isFile,
      "the link does not reach the RAM copy",
    );

    const lock = await fixture.run(["--lock"]);
    assert.equal(lock.code, 0, lock.stderr);
    assert.match(lock.stderr, /removed the RAM copy/);
    assert.deepEqual(ramCopies(fixture), []);
    assert.ok(Deno.lstatSync(link).isSymlink);
    assert.equal(Deno.readLinkSync(link), ramCopy);
    assert.throws(() => Deno.statSync(link), Deno.errors.NotFound);
    assert.deepEqual(await Deno.readFile(fixture.store), storeBefore);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("all-profiles watch saves per profile", async () => {
  const fixture = await createFixture();
  const workMock = startTokenMock({
    canary: fixture.canary,
    first: "rt-work-1",
  });
  const defaultMock = startTokenMock({
    canary: fixture.canary,
    first: "rt-default-1",
  });
  let watch: Background | null = null;
  try {
    const work = await makeProfileHome(fixture, "work");
    const home = await makeProfileHome(fixture, "home");
    const config = await writeConfig(
      join(fixture.dir, "config.jsonc"),
      profileConfig([work, home]),
    );
    const env = { SECURE_CODEX_CONFIG: config };
    const defaultProfile: ProfileHome = {
      name: "default",
      codexHome: fixture.codexHome,
      store: fixture.store,
    };
    const profiles = [defaultProfile, work, home];
    for (const profile of profiles) {
      await fixture.writeStore(
        fakeChatGptAuth({
          canary: fixture.canary,
          email: `${profile.name}@example.com`,
          refreshToken: `rt-${profile.name}-1`,
          expiresIn: -600,
        }),
        profile.store,
      );
      const unlock = await fixture.run(
        ["--profile", profile.name, "--unlock"],
        { env },
      );
      assert.equal(unlock.code, 0, unlock.stderr);
    }
    const storeBytes = async () =>
      Object.fromEntries(
        await Promise.all(
          profiles.map(async (profile) =>
            [profile.name, await Deno.readFile(profile.store)] as const
          ),
        ),
      );
    const initial = await storeBytes();

    watch = startBackground(fixture, ["--watch", "--all-profiles"], env);
    for (const profile of profiles) {
      await watch.waitForLine(`watch ${profile.name}: watching`);
    }
    await sleep(WATCHER_SETTLE_MS);

    const workRefresh = await plainCodexRefresh(
      fixture,
      work.codexHome,
      workMock.url,
    );
    assert.equal(workRefresh.code, 0, workRefresh.stderr);
    assert.equal(
      await pollStore(
        fixture,
        work.store,
        `rt-2-${fixture.canary}`,
        Date.now(),
        5000,
      ) !== null,
      true,
      `work's refresh was not saved; watch stderr:\n${watch.stderr()}`,
    );
    const afterWork = await storeBytes();
    assert.deepEqual(afterWork.default, initial.default);
    assert.deepEqual(afterWork.home, initial.home);

    const defaultRefresh = await plainCodexRefresh(
      fixture,
      fixture.codexHome,
      defaultMock.url,
    );
    assert.equal(defaultRefresh.code, 0, defaultRefresh.stderr);
    assert.equal(
      await pollStore(
        fixture,
        fixture.store,
        `rt-2-${fixture.canary}`,
        Date.now(),
        5000,
      ) !== null,
      true,
      `default's refresh was not saved; watch stderr:\n${watch.stderr()}`,
    );
    const afterDefault = await storeBytes();
    assert.deepEqual(afterDefault.work, afterWork.work);
    assert.deepEqual(afterDefault.home, initial.home);
    assert.equal(await storedRefreshToken(fixture, home.store), "rt-home-1");
    assert.deepEqual(
      workMock.requests.map((request) => request.refreshToken),
      ["rt-work-1"],
    );
    assert.deepEqual(
      defaultMock.requests.map((request) => request.refreshToken),
      ["rt-default-1"],
    );

    const result = await watch.stop("SIGTERM");
    const stderr = watch.stderr();
    assert.equal(result.code, 0, stderr);
    assert.match(stderr, /watch work: saved refreshed tokens to /);
    assert.match(stderr, /watch default: saved refreshed tokens to /);
    assert.doesNotMatch(stderr, /watch home: saved/);
    for (const profile of profiles) {
      assert.match(stderr, new RegExp(`watch ${profile.name}: stopped`));
    }
    assert.ok(!stderr.includes(fixture.canary), "canary on stderr");
  } finally {
    await watch?.dispose();
    await workMock.close();
    await defaultMock.close();
    await fixture.dispose();
  }
});

Deno.test("all-profiles watch waits for a later home", async () => {
  const fixture = await createFixture();
  const mock = startTokenMock({ canary: fixture.canary, first: "rt-late-1" });
  let watch: Background | null = null;
  try {
    const codexHome = join(fixture.home, "codex-late");
    const late: ProfileHome = {
      name: "late",
      codexHome,
      store: join(codexHome, "auth.json.age"),
    };
    const config = await writeConfig(
      join(fixture.dir, "config.jsonc"),
      profileConfig([late]),
    );
    const env = { SECURE_CODEX_CONFIG: config };
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));

    watch = startBackground(fixture, ["--watch", "--all-profiles"], env);
    await watch.waitForLine(
      "watch late: cannot be watched yet, trying again every second",
    );
    assert.match(watch.stderr(), /secure-codex: codex home .*codex-late/);

    await Deno.mkdir(codexHome, { mode: 0o700 });
    await Deno.writeTextFile(join(codexHome, "config.toml"), CODEX_TEST_CONFIG);
    await fixture.writeStore(
      fakeChatGptAuth({
        canary: fixture.canary,
        refreshToken: "rt-late-1",
        expiresIn: -600,
      }),
      late.store,
    );
    const unlock = await fixture.run(["--profile", "late", "--unlock"], {
      env,
    });
    assert.equal(unlock.code, 0, unlock.stderr);
    await watch.waitForLine("watch late: can be watched now");
    await watch.waitForLine("watch late: watching");
    await sleep(WATCHER_SETTLE_MS);

    const refresh = await plainCodexRefresh(fixture, codexHome, mock.url);
    assert.equal(refresh.code, 0, refresh.stderr);
    assert.notEqual(
      await pollStore(
        fixture,
        late.store,
        `rt-2-${fixture.canary}`,
        Date.now(),
        5000,
      ),
      null,
      `the late profile's refresh was not saved; watch stderr:\n${watch.stderr()}`,
    );

    const result = await watch.stop("SIGTERM");
    assert.equal(result.code, 0, watch.stderr());
    assert.match(watch.stderr(), /watch late: stopped/);
    assert.ok(!watch.stderr().includes(fixture.canary), "canary on stderr");
  } finally {
    await watch?.dispose();
    await mock.close();
    await fixture.dispose();
  }
});

Deno.test("list-profiles prints config profiles", async () => {
  const fixture = await createFixture();
  try {
    const none = await fixture.run(["--list-profiles"]);
    assert.equal(none.code, 0, none.stderr);
    assert.equal(none.stdout, "default\n");

    // The default location: $XDG_CONFIG_HOME/secure-codex/config.jsonc.
    const configHome = join(fixture.dir, "xdg");
    await Deno.mkdir(join(configHome, "secure-codex"), { recursive: true });
    await writeConfig(join(configHome, "secure-codex", "config.jsonc"), {
      profiles: { work: {}, home: {}, "client-a.2": {} },
    });
    const listed = await fixture.run(["--list-profiles"], {
      env: { XDG_CONFIG_HOME: configHome },
    });
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(listed.stdout, "default\nwork\nhome\nclient-a.2\n");
    assert.equal(listed.stderr, "");
  } finally {
    await fixture.dispose();
  }
});

Deno.test("unlock again keeps or replaces the TTL", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const first = await fixture.run(["--unlock", "--ttl", "30m"]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /^secure-codex: unlocked: /m);
    const statePath = join(fixture.ramDir(), "session.json");
    const readState = async () =>
      JSON.parse(await Deno.readTextFile(statePath));
    const before = await readState();
    assert.equal(before.ttlSeconds, 1800);

    // An unlock without a TTL of its own keeps the session's.
    const plain = await fixture.run(["--unlock"]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stderr, /^secure-codex: already unlocked: /m);
    const keptState = await readState();
    assert.equal(keptState.ttlSeconds, 1800);
    assert.match(
      plain.stderr,
      /^secure-codex: the session locks 30m after its unlock/m,
    );
    assert.doesNotMatch(plain.stderr, /replaced/);

    const again = await fixture.run(["--unlock", "--ttl", "2h"]);
    assert.equal(again.code, 0, again.stderr);
    const after = await readState();
    assert.equal(after.ttlSeconds, 7200);
    assert.match(
      again.stderr,
      /^secure-codex: replaced the session's time to live of 30m with 2h$/m,
    );
    // The TTL still counts from the first unlock.
    assert.equal(after.unlockedAt, before.unlockedAt);

    // A standing TTL from the environment only ever shortens the session's.
    const longer = await fixture.run(["--unlock"], {
      env: { SECURE_CODEX_TTL: "8h" },
    });
    assert.equal(longer.code, 0, longer.stderr);
    assert.equal((await readState()).ttlSeconds, 7200);
    assert.doesNotMatch(longer.stderr, /replaced/);
    const shorter = await fixture.run(["--unlock"], {
      env: { SECURE_CODEX_TTL: "1h" },
    });
    assert.equal(shorter.code, 0, shorter.stderr);
    assert.equal((await readState()).ttlSeconds, 3600);
    assert.match(
      shorter.stderr,
      /^secure-codex: replaced the session's time to live of 2h with 1h$/m,
    );

    const none = await fixture.run(["--unlock", "--ttl", "0"]);
    assert.equal(none.code, 0, none.stderr);
    const cleared = await readState();
    assert.equal(cleared.ttlSeconds, 0);
    assert.match(
      none.stderr,
      /^secure-codex: replaced the session's time to live of 1h with none$/m,
    );
  } finally {
    await fixture.dispose();
  }
});
