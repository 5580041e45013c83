/**
 * Which tokens win when the RAM copy and the store disagree. An older RAM
 * copy is never saved over the store. An older store, or one this run cannot
 * decrypt, put in place while a session is unlocked never replaces the RAM
 * copy. A store written by a clock that runs ahead does not block the
 * refreshes after it.
 *
 * A fake codex plays a token refresh: it saves `NEW_AUTH` through
 * the link as codex does, with a temp file beside the target and a rename.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createFixture,
  fakeChatGptAuth,
  fakeCodexEnv,
  type Fixture,
  runCommand,
  writeFakeCodex,
} from "./helpers.ts";

const SAVE_NEW_AUTH = `target=$(readlink -f "$CODEX_HOME/auth.json")
if [ -n "$NEW_AUTH" ]; then
  printf '%s' "$NEW_AUTH" > "\${target%/*}/.auth-refresh"
  mv -f "\${target%/*}/.auth-refresh" "$target"
fi
`;

const MINUTE = 60_000;

function at(offsetMs: number): string {
  return new Date(Date.now() + offsetMs).toISOString();
}

/** Runs the fake codex, which saves `auth` when given one. */
async function runRefresh(
  fixture: Fixture,
  fake: string,
  auth?: unknown,
): Promise<{ code: number; stderr: string }> {
  const extra: Record<string, string> = { SECURE_CODEX_KEEP: "1" };
  if (auth !== undefined) extra.NEW_AUTH = JSON.stringify(auth);
  return await fixture.run(["--", "exec", "x"], {
    env: fakeCodexEnv(fixture, fake, extra),
  });
}

async function storedRefreshToken(
  fixture: Fixture,
): Promise<string | undefined> {
  const stored = await fixture.readStore() as {
    tokens?: { refresh_token?: string };
  };
  return stored.tokens?.refresh_token;
}

function ramRefreshToken(fixture: Fixture): string | undefined {
  const ramCopy = join(fixture.ramDir(), "auth.json");
  const auth = JSON.parse(Deno.readTextFileSync(ramCopy)) as {
    tokens?: { refresh_token?: string };
  };
  return auth.tokens?.refresh_token;
}

/**
 * Writes a store with `rt-backup` from an hour ago, then refreshes it to
 * `rt-newest` through the fake codex, which saves it. Returns the older
 * login, to put back as a restored backup, and the fake codex.
 */
async function refreshOverBackup(
  fixture: Fixture,
): Promise<{ older: unknown; fake: string }> {
  const older = fakeChatGptAuth({
    canary: fixture.canary,
    refreshToken: "rt-backup",
    lastRefresh: at(-60 * MINUTE),
  });
  await fixture.writeStore(older);
  const fake = await writeFakeCodex(fixture, SAVE_NEW_AUTH);
  const refreshed = await runRefresh(
    fixture,
    fake,
    fakeChatGptAuth({
      canary: fixture.canary,
      refreshToken: "rt-newest",
      lastRefresh: at(0),
    }),
  );
  assert.equal(refreshed.code, 0, refreshed.stderr);
  assert.equal(await storedRefreshToken(fixture), "rt-newest");
  return { older, fake };
}

Deno.test("an older RAM copy is not saved", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(
      fakeChatGptAuth({
        canary: fixture.canary,
        refreshToken: "rt-store",
        lastRefresh: at(-MINUTE),
      }),
    );
    const fake = await writeFakeCodex(fixture, SAVE_NEW_AUTH);
    const storeBefore = await Deno.readFile(fixture.store);
    const result = await runRefresh(
      fixture,
      fake,
      fakeChatGptAuth({
        canary: fixture.canary,
        refreshToken: "rt-older",
        lastRefresh: at(-60 * MINUTE),
      }),
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      /warning: the RAM copy holds older tokens than the store; not saved: /,
    );
    assert.deepEqual(await Deno.readFile(fixture.store), storeBefore);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("a store from a clock ahead does not block saves", async () => {
  const fixture = await createFixture();
  try {
    // Written on a machine whose clock ran five minutes fast.
    await fixture.writeStore(
      fakeChatGptAuth({
        canary: fixture.canary,
        refreshToken: "rt-1",
        lastRefresh: at(5 * MINUTE),
      }),
    );
    const fake = await writeFakeCodex(fixture, SAVE_NEW_AUTH);
    const result = await runRefresh(
      fixture,
      fake,
      fakeChatGptAuth({
        canary: fixture.canary,
        refreshToken: "rt-2",
        lastRefresh: at(0),
      }),
    );
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /older/);
    assert.equal(await storedRefreshToken(fixture), "rt-2");
  } finally {
    await fixture.dispose();
  }
});

Deno.test("an older store does not replace the RAM copy", async () => {
  const fixture = await createFixture();
  try {
    const { older, fake } = await refreshOverBackup(fixture);

    // A backup restored over the store while the session is unlocked.
    await fixture.writeStore(older);
    const restored = await Deno.readFile(fixture.store);
    const result = await runRefresh(fixture, fake);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      /warning: the store holds older tokens than this session's RAM copy; kept the RAM copy: /,
    );
    assert.match(
      result.stderr,
      /hint: to save the RAM copy's tokens to a new store: mv \S+ \S+\.old\.age, then run secure-codex again/,
    );
    assert.equal(ramRefreshToken(fixture), "rt-newest");
    assert.deepEqual(await Deno.readFile(fixture.store), restored);

    // A newer store from elsewhere still replaces an unchanged RAM copy.
    await fixture.writeStore(
      fakeChatGptAuth({
        canary: fixture.canary,
        refreshToken: "rt-elsewhere",
        lastRefresh: at(MINUTE),
      }),
    );
    const newer = await runRefresh(fixture, fake);
    assert.equal(newer.code, 0, newer.stderr);
    assert.doesNotMatch(newer.stderr, /older/);
    assert.equal(ramRefreshToken(fixture), "rt-elsewhere");
  } finally {
    await fixture.dispose();
  }
});

Deno.test("a store for another key keeps the RAM copy", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(
      fakeChatGptAuth({ canary: fixture.canary, refreshToken: "rt-mine" }),
    );
    const fake = await writeFakeCodex(fixture, SAVE_NEW_AUTH);
    const unlock = await runRefresh(fixture, fake);
    assert.equal(unlock.code, 0, unlock.stderr);

    // Another key's store copied over this one while the session is unlocked.
    const other = join(fixture.dir, "other-key.txt");
    assert.equal((await runCommand("age-keygen", ["-o", other])).code, 0);
    const recipient = (await runCommand("age-keygen", ["-y", other])).stdout
      .trim();
    const encrypted = await runCommand(
      "age",
      ["-e", "-r", recipient, "-o", fixture.store],
      { stdin: '{"OPENAI_API_KEY":"sk-other"}' },
    );
    assert.equal(encrypted.code, 0, encrypted.stderr);

    const result = await runRefresh(fixture, fake);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /secure-codex: cannot decrypt the store: /);
    assert.ok(
      result.stderr.includes(
        `hint: the RAM copy still has this session's login and was kept: ${
          join(fixture.ramDir(), "auth.json")
        }`,
      ),
      result.stderr,
    );
    assert.equal(ramRefreshToken(fixture), "rt-mine");
  } finally {
    await fixture.dispose();
  }
});

Deno.test("cleanup keeps a RAM copy the store lacks", async () => {
  const fixture = await createFixture();
  try {
    const { older, fake } = await refreshOverBackup(fixture);
    // The RAM copy now matches the store; then a backup is restored.
    await fixture.writeStore(older);

    const cleanup = await fixture.run(["--cleanup"]);
    assert.equal(cleanup.code, 1, cleanup.stderr);
    assert.match(
      cleanup.stderr,
      /secure-codex: cannot remove the RAM copy, because the store changed since this session last saved it, so the RAM copy may hold the only copy of its tokens: /,
    );
    assert.match(
      cleanup.stderr,
      /hint: to save it to a new store: mv \S+auth\.json\.age \S+auth\.json\.old\.age, then run /,
    );
    assert.equal(ramRefreshToken(fixture), "rt-newest");

    const run = await fixture.run(["--", "exec", "x"], {
      env: fakeCodexEnv(fixture, fake, { SECURE_CODEX_KEEP: "0" }),
    });
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stderr,
      /warning: kept the RAM copy because the store changed since this session last saved it/,
    );
    assert.equal(ramRefreshToken(fixture), "rt-newest");

    // Without any store, the RAM copy is the only copy too.
    Deno.removeSync(fixture.store);
    const missing = await fixture.run(["--cleanup"]);
    assert.equal(missing.code, 1, missing.stderr);
    assert.match(
      missing.stderr,
      /cannot remove the RAM copy, because the store it was saved to is missing \(\S+auth\.json\.age\): /,
    );
    assert.equal(ramRefreshToken(fixture), "rt-newest");

    // Following the hint, a run saves the RAM copy to a new store.
    const save = await fixture.run(["--", "login", "status"]);
    assert.equal(save.code, 0, save.stderr);
    assert.equal(await storedRefreshToken(fixture), "rt-newest");
    const cleaned = await fixture.run(["--cleanup"]);
    assert.equal(cleaned.code, 0, cleaned.stderr);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("a conflict seen while codex runs is reported again after", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(
      fakeChatGptAuth({ canary: fixture.canary, refreshToken: "rt-1" }),
    );
    const unlock = await fixture.run(["--unlock"]);
    assert.equal(unlock.code, 0, unlock.stderr);
    // Another program's store, put in place while codex runs, then a refresh.
    const other = join(fixture.dir, "other.age");
    await fixture.writeStore(
      fakeChatGptAuth({ canary: fixture.canary, refreshToken: "rt-other" }),
      other,
    );
    const fake = await writeFakeCodex(
      fixture,
      `cp "$OTHER_STORE" "$CODEX_HOME/auth.json.age"\nsleep 0.2\n` +
        SAVE_NEW_AUTH + "sleep 1.5\n",
    );
    const result = await fixture.run(["--", "exec", "x"], {
      env: fakeCodexEnv(fixture, fake, {
        OTHER_STORE: other,
        SECURE_CODEX_KEEP: "1",
        NEW_AUTH: JSON.stringify(fakeChatGptAuth({
          canary: fixture.canary,
          refreshToken: "rt-2",
          lastRefresh: at(MINUTE),
        })),
      }),
    });
    assert.equal(result.code, 0, result.stderr);
    const warnings = result.stderr.split("\n").filter((line) =>
      line.startsWith(
        "secure-codex: warning: the store was changed by another program",
      )
    );
    // Once while codex ran, which a full-screen codex draws over, and once
    // after it exited.
    assert.equal(warnings.length, 2, result.stderr);
    assert.equal(ramRefreshToken(fixture), "rt-2");
  } finally {
    await fixture.dispose();
  }
});
