/**
 * Repair paths: a link replaced by a plaintext file, cleanup of a copy that
 * cannot be saved, and temp files left by a killed run.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createFixture,
  fakeChatGptAuth,
  fakeCodexEnv,
  type Fixture,
  pathExists,
  writeFakeCodex,
} from "./helpers.ts";

/** A fake codex that replaces the auth.json link with a regular file, as a codex that stopped following links would. */
const REPLACE_LINK = `printf '%s' "$NEW_AUTH" > "$CODEX_HOME/.auth-new"
mv -f "$CODEX_HOME/.auth-new" "$CODEX_HOME/auth.json"
sleep "\${SLEEP:-0}"
`;

/**
 * Writes the fixture's identity without its "# public key:" line, so a run
 * with it finds no recipients for write-back. Returns the path.
 */
function writeBareIdentity(fixture: Fixture): string {
  const bare = join(fixture.dir, "bare-identity.txt");
  const secretLine = Deno.readTextFileSync(fixture.identity).split("\n")
    .find((line) => line.startsWith("AGE-SECRET-KEY-"))!;
  Deno.writeTextFileSync(bare, secretLine + "\n", { mode: 0o600 });
  return bare;
}

/**
 * Asserts that a run adopted a plaintext file at the link's path: the
 * warning, the restored link and the file's refresh token in the store.
 */
async function assertAdopted(fixture: Fixture, stderr: string): Promise<void> {
  assert.match(
    stderr,
    /warning: plaintext auth\.json was written to disk, replacing the link: /,
  );
  assert.match(
    stderr,
    /hint: secure-codex removed the file and restored the link/,
  );
  const link = join(fixture.codexHome, "auth.json");
  assert.ok(Deno.lstatSync(link).isSymlink, "the link is restored");
  const stored = await fixture.readStore() as {
    tokens: { refresh_token: string };
  };
  assert.equal(stored.tokens.refresh_token, `rt-new-${fixture.canary}`);
}

Deno.test("replaced link is adopted and removed", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(
      fakeChatGptAuth({ canary: fixture.canary, refreshToken: "rt-old" }),
    );
    const fake = await writeFakeCodex(fixture, REPLACE_LINK);
    const newAuth = fakeChatGptAuth({
      canary: fixture.canary,
      refreshToken: `rt-new-${fixture.canary}`,
      lastRefresh: new Date(Date.now() + 60_000).toISOString(),
    });
    const result = await fixture.run(["--", "exec", "x"], {
      env: fakeCodexEnv(fixture, fake, { NEW_AUTH: JSON.stringify(newAuth) }),
    });
    assert.equal(result.code, 0, result.stderr);
    await assertAdopted(fixture, result.stderr);
  } finally {
    await fixture.dispose();
  }
});

/**
 * A fake codex that replaces the link with a file written in place in two
 * steps, as `cp` or an editor might: first half of the JSON, then all of it.
 */
const WRITE_IN_PLACE = `rm -f "$CODEX_HOME/auth.json"
printf '%s' "$HALF_AUTH" > "$CODEX_HOME/auth.json"
sleep 0.5
printf '%s' "$NEW_AUTH" > "$CODEX_HOME/auth.json"
sleep 0.5
`;

Deno.test("file written in place is reported once", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(
      fakeChatGptAuth({ canary: fixture.canary, refreshToken: "rt-old" }),
    );
    const fake = await writeFakeCodex(fixture, WRITE_IN_PLACE);
    const newAuth = JSON.stringify(fakeChatGptAuth({
      canary: fixture.canary,
      refreshToken: `rt-new-${fixture.canary}`,
      lastRefresh: new Date(Date.now() + 60_000).toISOString(),
    }));
    const result = await fixture.run(["--", "exec", "x"], {
      env: fakeCodexEnv(fixture, fake, {
        NEW_AUTH: newAuth,
        HALF_AUTH: newAuth.slice(0, newAuth.length / 2),
      }),
    });
    assert.equal(result.code, 0, result.stderr);
    // The half-written file is replaced within the quiet period, so it gets no warning.
    assert.doesNotMatch(
      result.stderr,
      /a regular file replaced the auth\.json link/,
    );
    await assertAdopted(fixture, result.stderr);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("invalid file at the link is reported at exit", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const fake = await writeFakeCodex(
      fixture,
      `rm -f "$CODEX_HOME/auth.json"\nprintf 'not json' > "$CODEX_HOME/auth.json"\n`,
    );
    const result = await fixture.run(["--", "exec", "x"], {
      env: fakeCodexEnv(fixture, fake),
    });
    assert.equal(result.code, 0, result.stderr);
    const warnings = result.stderr.split("\n").filter((line) =>
      line.includes("a regular file replaced the auth.json link")
    );
    assert.equal(warnings.length, 1, result.stderr);
    assert.match(result.stderr, /delete it securely if it holds tokens/);
    assert.equal(
      Deno.readTextFileSync(join(fixture.codexHome, "auth.json")),
      "not json",
    );
  } finally {
    await fixture.dispose();
  }
});

Deno.test("replaced link repaired at next start", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(
      fakeChatGptAuth({ canary: fixture.canary, refreshToken: "rt-old" }),
    );
    const unlocked = await fixture.run(["--", "login", "status"]);
    assert.equal(unlocked.code, 0, unlocked.stderr);

    // Between runs, a program writes plaintext over the link (the test writes
    // a token without the canary, so the disk scan stays meaningful).
    const link = join(fixture.codexHome, "auth.json");
    Deno.removeSync(link);
    const between = fakeChatGptAuth({
      canary: "between",
      refreshToken: "rt-between",
      lastRefresh: new Date(Date.now() + 60_000).toISOString(),
    });
    Deno.writeTextFileSync(link, JSON.stringify(between), { mode: 0o600 });

    const result = await fixture.run(["--", "login", "status"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      /warning: plaintext auth\.json was written to disk/,
    );
    assert.ok(Deno.lstatSync(link).isSymlink);
    const stored = await fixture.readStore() as {
      tokens: { refresh_token: string };
    };
    assert.equal(stored.tokens.refresh_token, "rt-between");
  } finally {
    await fixture.dispose();
  }
});

Deno.test("plaintext file without session is rejected", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const link = join(fixture.codexHome, "auth.json");
    const plaintext = JSON.stringify(fakeChatGptAuth({ canary: "user-file" }));
    Deno.writeTextFileSync(link, plaintext);
    const result = await fixture.run(["--", "login", "status"]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /plaintext auth\.json found on disk/);
    assert.equal(Deno.readTextFileSync(link), plaintext);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("cleanup keeps an unsaved copy without force", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    // An identity without a "# public key:" line leaves no recipients.
    const bare = writeBareIdentity(fixture);
    const env = { SECURE_CODEX_IDENTITY: bare };

    const fake = await writeFakeCodex(
      fixture,
      `printf '%s' "$NEW_AUTH" > "$(dirname "$(readlink -f "$CODEX_HOME/auth.json")")/.auth-x"
mv -f "$(dirname "$(readlink -f "$CODEX_HOME/auth.json")")/.auth-x" "$(readlink -f "$CODEX_HOME/auth.json")"
`,
    );
    const newAuth = fakeChatGptAuth({
      canary: fixture.canary,
      refreshToken: "rt-unsaved",
    });
    const run = await fixture.run(["--", "exec", "x"], {
      env: fakeCodexEnv(fixture, fake, {
        ...env,
        NEW_AUTH: JSON.stringify(newAuth),
      }),
    });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /refreshed tokens cannot be saved: no recipients/);

    const rejected = await fixture.run(["--cleanup"], { env });
    assert.equal(rejected.code, 1);
    assert.match(rejected.stderr, /the RAM copy is not saved in the store: /);
    // The command names this session's codex home, so it works when pasted.
    assert.match(
      rejected.stderr,
      /hint: or run secure-codex --real-codex-home \S+ .*--cleanup --force to remove/,
    );
    assert.equal(pathExists(join(fixture.ramDir(), "auth.json")), true);

    const forced = await fixture.run(["--cleanup", "--force"], { env });
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stderr, /removing it anyway because --force was given/);
    assert.equal(pathExists(join(fixture.ramDir(), "auth.json")), false);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("force without cleanup is a usage error", async () => {
  const fixture = await createFixture();
  try {
    const result = await fixture.run(["--force", "--", "login", "status"]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /--force works only with --cleanup/);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("stale temp files are removed at start", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const first = await fixture.run(["--", "login", "status"]);
    assert.equal(first.code, 0, first.stderr);
    const ramDir = fixture.ramDir();
    const cleaned = await fixture.run(["--cleanup"]);
    assert.equal(cleaned.code, 0, cleaned.stderr);

    // What a run killed during unlock or write-back can leave behind.
    const leftovers = [
      join(ramDir, ".auth-unlock-deadbeef"),
      join(ramDir, ".auth-AbC123"),
      join(ramDir, "session.json.0badf00d.tmp"),
      join(fixture.codexHome, ".auth.json.age.0123456789ab.tmp"),
      join(fixture.codexHome, ".auth.json.age.recipients.0123456789ab.tmp"),
    ];
    for (const path of leftovers) Deno.writeTextFileSync(path, "stale");

    const result = await fixture.run(["--", "login", "status"]);
    assert.equal(result.code, 0, result.stderr);
    for (const path of leftovers) assert.equal(pathExists(path), false, path);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("cleanup works without identity or codex", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const run = await fixture.run(["--", "login", "status"]);
    assert.equal(run.code, 0, run.stderr);
    const ramCopy = join(fixture.ramDir(), "auth.json");
    assert.equal(pathExists(ramCopy), true);

    // The RAM copy is unchanged, so nothing needs the identity or codex.
    Deno.removeSync(fixture.identity);
    const toolsWithoutCodex = await Deno.makeTempDir({ dir: fixture.dir });
    for (const tool of ["age", "deno", "sh", "readlink", "dirname"]) {
      const found = await new Deno.Command("sh", {
        args: ["-c", `command -v ${tool}`],
        stdout: "piped",
      }).output();
      const path = new TextDecoder().decode(found.stdout).trim();
      Deno.symlinkSync(path, join(toolsWithoutCodex, tool));
    }
    const env = { PATH: toolsWithoutCodex };

    // Without the store, the RAM copy is the only copy of the login, so only
    // --force removes it.
    const storeBytes = Deno.readFileSync(fixture.store);
    Deno.removeSync(fixture.store);
    const withoutStore = await fixture.run(["--cleanup"], { env });
    assert.equal(withoutStore.code, 1, withoutStore.stderr);
    assert.match(
      withoutStore.stderr,
      /the store it was saved to is missing \(/,
    );
    assert.equal(pathExists(ramCopy), true);
    Deno.writeFileSync(fixture.store, storeBytes);

    const result = await fixture.run(["--cleanup"], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /removed the RAM copy: /);
    assert.equal(pathExists(ramCopy), false);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("recipients found by a later run", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const bare = writeBareIdentity(fixture);

    const first = await fixture.run(["--", "login", "status"], {
      env: { SECURE_CODEX_IDENTITY: bare },
    });
    assert.equal(first.code, 0, first.stderr);
    assert.match(
      first.stderr,
      /refreshed tokens cannot be saved: no recipients/,
    );

    // The full identity file has the "# public key:" line the first run lacked.
    const second = await fixture.run(["--", "login", "--with-api-key"], {
      stdin: `sk-later-${fixture.canary}\n`,
    });
    assert.equal(second.code, 0, second.stderr);
    assert.doesNotMatch(second.stderr, /no recipients/);
    const stored = await fixture.readStore() as { OPENAI_API_KEY: string };
    assert.equal(stored.OPENAI_API_KEY, `sk-later-${fixture.canary}`);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("cleanup saves a changed copy first", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(
      fakeChatGptAuth({ canary: fixture.canary, refreshToken: "rt-old" }),
    );
    const run = await fixture.run(["--", "login", "status"]);
    assert.equal(run.code, 0, run.stderr);

    // A refresh by a codex that ran without the wrapper (the RAM copy is on
    // the tmpfs, so this plaintext never reaches a disk).
    const ramCopy = join(fixture.ramDir(), "auth.json");
    const refreshed = fakeChatGptAuth({
      canary: fixture.canary,
      refreshToken: "rt-outside",
    });
    Deno.writeTextFileSync(`${ramCopy}.new`, JSON.stringify(refreshed), {
      mode: 0o600,
    });
    Deno.renameSync(`${ramCopy}.new`, ramCopy);

    const cleanup = await fixture.run(["--cleanup"]);
    assert.equal(cleanup.code, 0, cleanup.stderr);
    assert.match(cleanup.stderr, /saved the changed RAM copy to the store: /);
    const stored = await fixture.readStore() as {
      tokens: { refresh_token: string };
    };
    assert.equal(stored.tokens.refresh_token, "rt-outside");
    assert.equal(pathExists(ramCopy), false);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("ended session link never leads to another store", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const keep = { env: { SECURE_CODEX_KEEP: "1" } };
    const shared = join(fixture.runtimeDir, "shared");
    const ended = join(fixture.runtimeDir, "ended");
    // Another codex home with its own store keeps a session in `shared`.
    const otherHome = join(fixture.dir, "other-codex");
    Deno.mkdirSync(otherHome, { mode: 0o700 });
    const otherStore = join(otherHome, "auth.json.age");
    Deno.copyFileSync(fixture.store, otherStore);
    const other = await fixture.run([
      "--ram-dir",
      shared,
      "--",
      "login",
      "status",
    ], {
      env: { SECURE_CODEX_KEEP: "1", CODEX_HOME: otherHome },
    });
    assert.equal(other.code, 0, other.stderr);
    // This home's link leads into a session that has ended.
    const unlock = await fixture.run(
      ["--ram-dir", ended, "--", "login", "status"],
      keep,
    );
    assert.equal(unlock.code, 0, unlock.stderr);
    const cleanup = await fixture.run(["--ram-dir", ended, "--cleanup"]);
    assert.equal(cleanup.code, 0, cleanup.stderr);

    const run = await fixture.run(
      ["--ram-dir", shared, "--", "login", "status"],
      keep,
    );
    assert.notEqual(run.code, 0, run.stderr);
    const link = join(fixture.codexHome, "auth.json");
    assert.equal(Deno.readLinkSync(link), join(ended, "auth.json"));
    assert.doesNotMatch(run.stderr, /replaced the auth\.json link/);
    assert.equal(
      Deno.readLinkSync(join(otherHome, "auth.json")),
      join(shared, "auth.json"),
    );
  } finally {
    await fixture.dispose();
  }
});
