/**
 * The lifecycle of a login: `--import` of a plaintext auth.json, a first
 * login with no store, `-- logout`, and `--rekey`. Each test runs the real
 * secure-codex, age and codex in a fixture from helpers.ts, or a fake codex
 * where codex must fail or needs OpenAI's servers. The only servers are
 * loopback mocks on 127.0.0.1.
 *
 * Plaintext logins carry the fixture's canary. The only one a test writes to
 * disk is the plaintext auth.json that `--import` consumes.
 * fixture.dispose() fails if the canary is left on disk anywhere.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createFixture,
  fakeChatGptAuth,
  fakeCodexEnv,
  type Fixture,
  pathExists,
  ramCopies,
  runCommand,
  type RunResult,
  startTokenMock,
  writeFakeCodex,
} from "./helpers.ts";

interface StoredAuth {
  auth_mode?: string;
  OPENAI_API_KEY?: string | null;
  tokens?: { refresh_token: string } | null;
  last_refresh?: string;
}

/** Decrypts `path` with `identity` into memory, without writing the plaintext anywhere. */
function decryptWith(identity: string, path: string): Promise<RunResult> {
  return runCommand("age", ["-d", "-i", identity, path]);
}

/** Decrypts `path` with `identity` and fails the test unless that works. */
async function decryptText(identity: string, path: string): Promise<string> {
  const result = await decryptWith(identity, path);
  assert.equal(result.code, 0, `age -d ${path}: ${result.stderr}`);
  return result.stdout;
}

/** Creates another age identity in the fixture and returns its path and recipient. */
async function makeIdentity(
  fixture: Fixture,
  name: string,
): Promise<{ identity: string; recipient: string }> {
  const identity = join(fixture.dir, `${name}.txt`);
  const keygen = await runCommand("age-keygen", ["-o", identity]);
  assert.equal(keygen.code, 0, keygen.stderr);
  const recipient = (await runCommand("age-keygen", ["-y", identity])).stdout
    .trim();
  return { identity, recipient };
}

/** Writes an age recipients file with one recipient and returns its path. */
async function writeRecipientsFile(
  fixture: Fixture,
  name: string,
  recipient: string,
): Promise<string> {
  const path = join(fixture.dir, name);
  await Deno.writeTextFile(path, `# test recipients\n${recipient}\n`);
  return path;
}

/**
 * Writes a copy of `identity` without its "# public key:" line, so a run
 * with it finds no recipients. Same construction as in repair_test.ts.
 */
function writeBareIdentity(fixture: Fixture, identity: string): string {
  const bare = join(fixture.dir, `bare-${crypto.randomUUID()}.txt`);
  const secretLine = Deno.readTextFileSync(identity).split("\n")
    .find((line) => line.startsWith("AGE-SECRET-KEY-"))!;
  Deno.writeTextFileSync(bare, secretLine + "\n", { mode: 0o600 });
  return bare;
}

/** Lists the recipients (non-comment lines) of a recipients file. */
function recipientsIn(path: string): string[] {
  return Deno.readTextFileSync(path).split("\n").map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    bytes as Uint8Array<ArrayBuffer>,
  );
  return Array.from(new Uint8Array(digest)).map((byte) =>
    byte.toString(16).padStart(2, "0")
  ).join("");
}

/**
 * Records every entry under `root`: its lstat (without atime, which a read
 * changes), the SHA-256 of a regular file's bytes and a link's target. Two
 * equal snapshots mean nothing under `root` was created, removed, rewritten,
 * replaced or re-moded.
 */
async function snapshotTree(root: string): Promise<Record<string, unknown>> {
  const entries: Record<string, unknown> = {};
  async function walk(path: string): Promise<void> {
    const info = await Deno.lstat(path);
    const record: Record<string, unknown> = {
      kind: info.isFile
        ? "file"
        : info.isDirectory
        ? "directory"
        : info.isSymlink
        ? "symlink"
        : "other",
      mode: info.mode,
      uid: info.uid,
      gid: info.gid,
      dev: info.dev,
      ino: info.ino,
      nlink: info.nlink,
      size: info.size,
      mtime: info.mtime?.getTime(),
      ctime: info.ctime?.getTime(),
    };
    if (info.isFile) {
      record.sha256 = await sha256Hex(await Deno.readFile(path));
    } else if (info.isSymlink) {
      record.target = await Deno.readLink(path);
    }
    entries[path] = record;
    if (info.isDirectory) {
      for await (const entry of Deno.readDir(path)) {
        await walk(join(path, entry.name));
      }
    }
  }
  await walk(root);
  return entries;
}

/** Lists the paths of all regular files under `root` named `name`. */
function regularFilesNamed(root: string, name: string): string[] {
  const found: string[] = [];
  const walk = (path: string) => {
    const info = Deno.lstatSync(path);
    if (info.isDirectory) {
      for (const entry of Deno.readDirSync(path)) walk(join(path, entry.name));
    } else if (info.isFile && path.endsWith(`/${name}`)) {
      found.push(path);
    }
  };
  walk(root);
  return found;
}

/** Lists the regular files under `root` whose bytes contain `needle`. */
function filesContaining(root: string, needle: string): string[] {
  const found: string[] = [];
  const walk = (path: string) => {
    const info = Deno.lstatSync(path);
    if (info.isDirectory) {
      for (const entry of Deno.readDirSync(path)) walk(join(path, entry.name));
    } else if (info.isFile) {
      const text = new TextDecoder().decode(Deno.readFileSync(path));
      if (text.includes(needle)) found.push(path);
    }
  };
  walk(root);
  return found;
}

/**
 * Names of the non-secret files and directories codex 0.171 creates in its
 * home (config, locks, logs, sessions, SQLite databases, caches). A run may
 * leave these besides the link, the store and its recipients file.
 */
const CODEX_OWN_ENTRY =
  /^(config\.toml|auth\.lock|log|sessions|history\.jsonl|session_index\.jsonl|installation_id|models_cache\.json|skills|shell_snapshots|thread-writer-locks|mcp-oauth-locks|\.sandbox_migration|tmp|\.tmp|packages|(state|logs|memories|queue|goals|thread_history)_\d+\.sqlite(-wal|-shm)?)$/;

/**
 * Writes a ChatGPT login as plaintext `<codex home>/auth.json`, pretty-printed
 * so its bytes are distinctive, plus the empty `auth.lock` that codex creates
 * next to it on every save, as in a home where plain codex logged in.
 */
async function writePlaintextLogin(fixture: Fixture): Promise<string> {
  await Deno.writeFile(join(fixture.codexHome, "auth.lock"), new Uint8Array(), {
    mode: 0o600,
  });
  const text = JSON.stringify(
    fakeChatGptAuth({
      canary: fixture.canary,
      refreshToken: `rt-import-${fixture.canary}`,
    }),
    null,
    2,
  ) + "\n";
  await Deno.writeTextFile(join(fixture.codexHome, "auth.json"), text);
  return text;
}

/** A loopback OAuth revoke endpoint that records each request body. */
interface RevokeMock {
  url: string;
  bodies: Record<string, unknown>[];
  close(): Promise<void>;
}

function startRevokeMock(): RevokeMock {
  const bodies: Record<string, unknown>[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      bodies.push(await request.json().catch(() => ({})));
      return Response.json({});
    },
  );
  const address = server.addr as Deno.NetAddr;
  return {
    url: `http://127.0.0.1:${address.port}/oauth/revoke`,
    bodies,
    close: () => server.shutdown(),
  };
}

/** Asserts that `<codex home>/auth.json` is this session's link into RAM. */
function assertLinkIntoRam(fixture: Fixture): void {
  const link = join(fixture.codexHome, "auth.json");
  const info = Deno.lstatSync(link);
  assert.ok(info.isSymlink, `${link} is not a symlink`);
  assert.equal(Deno.readLinkSync(link), join(fixture.ramDir(), "auth.json"));
}

Deno.test("import: plaintext home to store", async () => {
  const fixture = await createFixture();
  try {
    const original = await writePlaintextLogin(fixture);

    const imported = await fixture.run(["--import"]);
    assert.equal(imported.code, 0, imported.stderr);
    assertLinkIntoRam(fixture);
    assert.equal(await decryptText(fixture.identity, fixture.store), original);
    assert.equal(Deno.statSync(fixture.store).mode! & 0o777, 0o600);
    const besideRecipients = `${fixture.store}.recipients`;
    assert.deepEqual(recipientsIn(besideRecipients), [fixture.recipient]);
    // The RAM copy contains the imported bytes, unchanged.
    assert.equal(
      Deno.readTextFileSync(join(fixture.ramDir(), "auth.json")),
      original,
    );

    const status = await fixture.run(["--", "login", "status"]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout + status.stderr, /Logged in using ChatGPT/);

    assertLinkIntoRam(fixture);
    assert.deepEqual(regularFilesNamed(fixture.home, "auth.json"), []);
    assert.deepEqual(filesContaining(fixture.home, fixture.canary), []);
    const unexpected = [...Deno.readDirSync(fixture.codexHome)]
      .map((entry) => entry.name)
      .filter((name) =>
        !["auth.json", "auth.json.age", "auth.json.age.recipients"].includes(
          name,
        ) && !CODEX_OWN_ENTRY.test(name)
      );
    assert.deepEqual(unexpected, []);
    assert.equal(await decryptText(fixture.identity, fixture.store), original);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("import rejects, changes nothing", async (t) => {
  /**
   * Runs `--import` with `args` and `env` against a plaintext home prepared
   * by `prepare`. Checks that it fails with `message`, leaves the home as it
   * was and creates no RAM copy.
   */
  async function rejects(
    prepare: (fixture: Fixture) => Promise<{
      args?: string[];
      env?: Record<string, string>;
    }>,
    message: RegExp,
    plaintext?: string,
  ): Promise<void> {
    const fixture = await createFixture();
    try {
      await writePlaintextLogin(fixture);
      if (plaintext !== undefined) {
        await Deno.writeTextFile(
          join(fixture.codexHome, "auth.json"),
          plaintext,
        );
      }
      const { args = [], env = {} } = await prepare(fixture);
      const before = await snapshotTree(fixture.home);
      const result = await fixture.run(["--import", ...args], { env });
      assert.notEqual(result.code, 0, "the import succeeded");
      assert.match(result.stderr, message);
      assert.deepEqual(await snapshotTree(fixture.home), before);
      assert.deepEqual(ramCopies(fixture), []);
    } finally {
      // The rejected import left the plaintext in the home: remove it before
      // the fixture's canary scan, which is about leaks of the program.
      await Deno.remove(join(fixture.codexHome, "auth.json")).catch(() => {});
      await fixture.dispose();
    }
  }

  await t.step("recipients of another key", async () => {
    await rejects(async (fixture) => {
      const other = await makeIdentity(fixture, "other-identity");
      const recipients = await writeRecipientsFile(
        fixture,
        "other-recipients.txt",
        other.recipient,
      );
      return { args: ["--recipients-file", recipients] };
    }, /the identity cannot decrypt the new store, so it was not installed/);
  });

  await t.step(
    "identity without public key",
    async () => {
      await rejects(
        (fixture) =>
          Promise.resolve({
            env: {
              SECURE_CODEX_IDENTITY: writeBareIdentity(
                fixture,
                fixture.identity,
              ),
            },
          }),
        /no recipients for the new store/,
      );
    },
  );

  await t.step("no identity", async () => {
    await rejects(
      () => Promise.resolve({ env: { SECURE_CODEX_IDENTITY: "" } }),
      /no identity to prove that the new store decrypts/,
    );
  });

  await t.step("invalid plaintext login", async () => {
    await rejects(
      () => Promise.resolve({}),
      /plaintext auth\.json is not a valid codex login/,
      '{"note": "not a login"}\n',
    );
  });

  await t.step("store exists without --force", async () => {
    await rejects(async (fixture) => {
      await fixture.writeStore({ OPENAI_API_KEY: "sk-older-store" });
      return {};
    }, /store already exists/);
  });

  await t.step("no plaintext file", async () => {
    const fixture = await createFixture();
    try {
      const before = await snapshotTree(fixture.home);
      const result = await fixture.run(["--import"]);
      assert.notEqual(result.code, 0, "the import succeeded");
      assert.match(result.stderr, /nothing to import/);
      assert.deepEqual(await snapshotTree(fixture.home), before);
      assert.deepEqual(ramCopies(fixture), []);
    } finally {
      await fixture.dispose();
    }
  });
});

Deno.test("import --force replaces store", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore({ OPENAI_API_KEY: "sk-older-store" });
    const original = await writePlaintextLogin(fixture);
    const result = await fixture.run(["--import", "--force"]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await decryptText(fixture.identity, fixture.store), original);
    assertLinkIntoRam(fixture);
    assert.deepEqual(recipientsIn(`${fixture.store}.recipients`), [
      fixture.recipient,
    ]);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("first login: API key", async () => {
  const fixture = await createFixture();
  try {
    const key = `sk-test-${fixture.canary}`;
    const result = await fixture.run(["--", "login", "--with-api-key"], {
      stdin: `${key}\n`,
    });
    assert.equal(result.code, 0, result.stderr);
    const stored = await fixture.readStore() as StoredAuth;
    assert.equal(stored.OPENAI_API_KEY, key);
    assert.equal(Deno.lstatSync(fixture.store).mode! & 0o777, 0o600);
    assert.deepEqual(recipientsIn(`${fixture.store}.recipients`), [
      fixture.recipient,
    ]);
    assertLinkIntoRam(fixture);
    assert.ok(Deno.lstatSync(join(fixture.ramDir(), "auth.json")).isFile);
    assert.deepEqual(regularFilesNamed(fixture.home, "auth.json"), []);
  } finally {
    await fixture.dispose();
  }
});

// The browser and device-code logins need OpenAI's servers, so a fake codex
// plays them. It checks for a dangling link into an existing RAM directory.
// Then it saves a login the way codex does: temp file next to the link's
// target, then rename.
for (const loginArgs of [["login"], ["login", "--device-auth"]]) {
  Deno.test(`first login: ${loginArgs.join(" ")}`, async () => {
    const fixture = await createFixture();
    try {
      const marks = join(fixture.dir, "marks");
      await Deno.mkdir(marks);
      const fakeDir = await writeFakeCodex(
        fixture,
        `set -eu
target=$(readlink "$CODEX_HOME/auth.json") || { echo "fake codex: auth.json is not a symlink" >&2; exit 9; }
if [ -e "$target" ]; then echo "fake codex: the link target already exists" >&2; exit 9; fi
dir=$(dirname "$target")
[ -d "$dir" ] || { echo "fake codex: no RAM directory" >&2; exit 9; }
printf '%s\\n' "$*" > "$MARK_DIR/args"
printf '%s' "$FAKE_NEW_AUTH" > "$dir/.auth-fake"
mv "$dir/.auth-fake" "$target"
`,
      );
      const refreshToken = `rt-first-${fixture.canary}`;
      const result = await fixture.run(["--", ...loginArgs], {
        env: fakeCodexEnv(fixture, fakeDir, {
          MARK_DIR: marks,
          FAKE_NEW_AUTH: JSON.stringify(
            fakeChatGptAuth({ canary: fixture.canary, refreshToken }),
          ),
        }),
      });
      assert.equal(result.code, 0, result.stderr);
      assert.match(
        Deno.readTextFileSync(join(marks, "args")),
        new RegExp(`${loginArgs.join(" ")}$`, "m"),
      );
      const stored = await fixture.readStore() as StoredAuth;
      assert.equal(stored.tokens?.refresh_token, refreshToken);
      assert.deepEqual(recipientsIn(`${fixture.store}.recipients`), [
        fixture.recipient,
      ]);
      assertLinkIntoRam(fixture);
    } finally {
      await fixture.dispose();
    }
  });
}

Deno.test("first login: new store directory", async () => {
  const fixture = await createFixture();
  try {
    const storeDir = join(fixture.dir, "new");
    const store = join(storeDir, "auth.json.age");
    const key = `sk-test-${fixture.canary}`;
    const result = await fixture.run(
      ["--auth-enc", store, "--", "login", "--with-api-key"],
      { stdin: `${key}\n` },
    );
    assert.equal(result.code, 0, result.stderr);
    const info = Deno.lstatSync(storeDir);
    assert.ok(info.isDirectory);
    assert.equal(
      (info.mode! & 0o777).toString(8),
      "700",
      "mode of the created store directory",
    );
    const stored = await fixture.readStore(store) as StoredAuth;
    assert.equal(stored.OPENAI_API_KEY, key);
    assert.deepEqual(recipientsIn(`${store}.recipients`), [fixture.recipient]);
    assertLinkIntoRam(fixture);
    assert.ok(
      !pathExists(fixture.store),
      "a store appeared at the default path",
    );
  } finally {
    await fixture.dispose();
  }
});

Deno.test("first login: no recipients", async () => {
  const fixture = await createFixture();
  try {
    const marker = join(fixture.dir, "codex-ran");
    const fakeDir = await writeFakeCodex(fixture, `touch "${marker}"\n`);
    const bare = writeBareIdentity(fixture, fixture.identity);
    const result = await fixture.run(["--", "login", "--with-api-key"], {
      env: fakeCodexEnv(fixture, fakeDir, { SECURE_CODEX_IDENTITY: bare }),
      stdin: "sk-not-a-secret\n",
    });
    assert.notEqual(result.code, 0, "the login ran");
    assert.match(result.stderr, /no recipients for the new store/);
    assert.ok(!pathExists(marker), "codex ran");
    assert.ok(
      !pathExists(join(fixture.codexHome, "auth.json")),
      "a link was created",
    );
    assert.ok(!pathExists(fixture.store));
    assert.ok(!pathExists(`${fixture.store}.recipients`));
    assert.deepEqual(ramCopies(fixture), []);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("logout: revoke, remove store", async () => {
  const fixture = await createFixture();
  const revoke = startRevokeMock();
  const mock = startTokenMock({ canary: fixture.canary, first: "rt-1" });
  try {
    // A store written by secure-codex, which also writes the recipients
    // file beside it: a token refresh saves the rotated login.
    await fixture.writeStore(
      fakeChatGptAuth({
        canary: fixture.canary,
        refreshToken: "rt-1",
        expiresIn: -600,
      }),
    );
    const refresh = await fixture.run(["--", "mcp", "list"], {
      env: { CODEX_REFRESH_TOKEN_URL_OVERRIDE: mock.url },
    });
    assert.equal(refresh.code, 0, refresh.stderr);
    const refreshToken = `rt-2-${fixture.canary}`;
    const refreshed = await fixture.readStore() as StoredAuth;
    assert.equal(refreshed.tokens?.refresh_token, refreshToken);
    assert.ok(pathExists(`${fixture.store}.recipients`));

    const logout = await fixture.run(["--", "logout"], {
      env: { CODEX_REVOKE_TOKEN_URL_OVERRIDE: revoke.url },
    });
    assert.equal(logout.code, 0, logout.stderr);

    assert.equal(revoke.bodies.length, 1, "revoke calls");
    const body = revoke.bodies[0];
    assert.equal(body.token, refreshToken);
    assert.equal(body.token_type_hint, "refresh_token");
    assert.equal(typeof body.client_id, "string");
    assert.notEqual(body.client_id, "");

    assert.ok(!pathExists(fixture.store), "the store survived the logout");
    assert.deepEqual(ramCopies(fixture), []);
    const ramCopy = join(fixture.ramDir(), "auth.json");
    const link = join(fixture.codexHome, "auth.json");
    assert.ok(Deno.lstatSync(link).isSymlink, "no link after the logout");
    assert.equal(Deno.readLinkSync(link), ramCopy);
    assert.deepEqual(recipientsIn(`${fixture.store}.recipients`), [
      fixture.recipient,
    ]);

    // A login through plain codex follows the dangling link into RAM.
    const key = `sk-after-logout-${fixture.canary}`;
    const login = await runCommand("codex", ["login", "--with-api-key"], {
      env: { ...fixture.env, CODEX_HOME: fixture.codexHome },
      stdin: `${key}\n`,
    });
    assert.equal(login.code, 0, login.stderr);
    assert.ok(Deno.lstatSync(link).isSymlink, "codex replaced the link");
    assert.ok(
      pathExists(ramCopy) && Deno.lstatSync(ramCopy).isFile,
      "no RAM copy after the login",
    );
    assert.deepEqual(regularFilesNamed(fixture.home, "auth.json"), []);
    assert.ok(!pathExists(fixture.store));

    // The next wrapper run saves the RAM copy into a new store.
    const status = await fixture.run(["--", "login", "status"]);
    assert.equal(status.code, 0, status.stderr);
    const stored = await fixture.readStore() as StoredAuth;
    assert.equal(stored.OPENAI_API_KEY, key);
  } finally {
    await revoke.close();
    await mock.close();
    await fixture.dispose();
  }
});

for (const unlinks of [false, true]) {
  Deno.test(
    `logout: codex fails${unlinks ? " after unlink" : ""}`,
    async () => {
      const fixture = await createFixture();
      try {
        await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
        const unlocked = await fixture.run(["--", "login", "status"]);
        assert.equal(unlocked.code, 0, unlocked.stderr);
        const ramCopy = join(fixture.ramDir(), "auth.json");
        const storeBefore = await Deno.readFile(fixture.store);
        const ramBefore = await snapshotTree(ramCopy);

        const fakeDir = await writeFakeCodex(
          fixture,
          `for arg in "$@"; do
  if [ "$arg" = logout ]; then
    ${unlinks ? 'rm -f "$CODEX_HOME/auth.json"' : ":"}
    echo "fake codex: logout failed" >&2
    exit 1
  fi
done
exit 0
`,
        );
        const result = await fixture.run(["--", "logout"], {
          env: fakeCodexEnv(fixture, fakeDir),
        });
        assert.equal(result.code, 1, result.stderr);
        assert.deepEqual(await Deno.readFile(fixture.store), storeBefore);
        assert.deepEqual(await snapshotTree(ramCopy), ramBefore);
        // A failed logout that removed the link gets it back.
        assert.equal(
          Deno.readLinkSync(join(fixture.codexHome, "auth.json")),
          ramCopy,
        );
        assert.equal(
          /codex removed auth\.json during this run/.test(result.stderr),
          unlinks,
        );
      } finally {
        await fixture.dispose();
      }
    },
  );
}

Deno.test("run: codex removes auth.json, link restored", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const fakeDir = await writeFakeCodex(
      fixture,
      'rm -f "$CODEX_HOME/auth.json"\nexit 0\n',
    );
    const result = await fixture.run(["--", "exec", "hi"], {
      env: fakeCodexEnv(fixture, fakeDir),
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      /^secure-codex: warning: codex removed auth\.json during this run: /m,
    );
    assert.match(
      result.stderr,
      /^secure-codex: hint: if codex logged out, end the login with: secure-codex .*-- logout$/m,
    );
    const ramCopy = join(fixture.ramDir(), "auth.json");
    assert.equal(
      Deno.readLinkSync(join(fixture.codexHome, "auth.json")),
      ramCopy,
    );
    assert.ok(pathExists(ramCopy));
    assert.ok(pathExists(fixture.store));
  } finally {
    await fixture.dispose();
  }
});

Deno.test("rekey: write-back uses new recipients", async () => {
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
    const original = await decryptText(fixture.identity, fixture.store);
    // Unlock first, so the rekey runs with a RAM copy and session state.
    const unlocked = await fixture.run(["--", "login", "status"]);
    assert.equal(unlocked.code, 0, unlocked.stderr);

    const next = await makeIdentity(fixture, "new-identity");
    const recipients = await writeRecipientsFile(
      fixture,
      "new-recipients.txt",
      next.recipient,
    );
    const rekey = await fixture.run([
      "--rekey",
      "--recipients-file",
      recipients,
      "--identity",
      fixture.identity,
      "--identity",
      next.identity,
    ]);
    assert.equal(rekey.code, 0, rekey.stderr);
    assert.equal(await decryptText(next.identity, fixture.store), original);
    const old = await decryptWith(fixture.identity, fixture.store);
    assert.notEqual(old.code, 0, "the old identity still decrypts the store");
    assert.deepEqual(recipientsIn(`${fixture.store}.recipients`), [
      next.recipient,
    ]);

    // A refresh without --recipients-file. The identity in the environment
    // is still the old one, whose "# public key:" line names the old
    // recipient: the recipients file beside the store must win.
    const refresh = await fixture.run(["--", "mcp", "list"], {
      env: { CODEX_REFRESH_TOKEN_URL_OVERRIDE: mock.url },
    });
    assert.equal(refresh.code, 0, refresh.stderr);
    assert.deepEqual(
      mock.requests.map((request) => request.refreshToken),
      ["rt-1"],
    );
    const stored = JSON.parse(
      await decryptText(next.identity, fixture.store),
    ) as StoredAuth;
    assert.equal(stored.tokens?.refresh_token, `rt-2-${fixture.canary}`);
    const oldAfter = await decryptWith(fixture.identity, fixture.store);
    assert.notEqual(oldAfter.code, 0, "write-back encrypted to the old key");
  } finally {
    await mock.close();
    await fixture.dispose();
  }
});

Deno.test("write-back refuses recipients the identities cannot decrypt", async () => {
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
    const original = await decryptText(fixture.identity, fixture.store);
    const other = await makeIdentity(fixture, "other-identity");
    const foreign = await writeRecipientsFile(
      fixture,
      "foreign-recipients.txt",
      other.recipient,
    );
    // codex refreshes rt-1 through the mock; the recipients file names only
    // a key this run has no identity for.
    const refresh = await fixture.run(
      ["--recipients-file", foreign, "--", "mcp", "list"],
      { env: { CODEX_REFRESH_TOKEN_URL_OVERRIDE: mock.url } },
    );
    assert.equal(refresh.code, 0, refresh.stderr);
    assert.match(
      refresh.stderr,
      new RegExp(
        `secure-codex: warning: refreshed tokens are not saved: this run's identities cannot decrypt a store encrypted to ${foreign}: `,
      ),
    );
    assert.match(
      refresh.stderr,
      /secure-codex: hint: add the public key of one of the identities \(/,
    );
    assert.equal(await decryptText(fixture.identity, fixture.store), original);
    assert.ok(
      !pathExists(`${fixture.store}.recipients`),
      "the foreign recipients were recorded beside the store",
    );
    const ram = JSON.parse(
      Deno.readTextFileSync(join(fixture.ramDir(), "auth.json")),
    ) as StoredAuth;
    assert.equal(ram.tokens?.refresh_token, `rt-2-${fixture.canary}`);

    // With the user's own key added, the next start saves the RAM copy.
    const both = join(fixture.dir, "both-recipients.txt");
    await Deno.writeTextFile(
      both,
      `${fixture.recipient}\n${other.recipient}\n`,
    );
    const save = await fixture.run(
      ["--recipients-file", both, "--", "login", "status"],
    );
    assert.equal(save.code, 0, save.stderr);
    for (const identity of [fixture.identity, other.identity]) {
      const stored = JSON.parse(
        await decryptText(identity, fixture.store),
      ) as StoredAuth;
      assert.equal(stored.tokens?.refresh_token, `rt-2-${fixture.canary}`);
    }
  } finally {
    await mock.close();
    await fixture.dispose();
  }
});

/** A fake codex that saves FAKE_AUTH_1, then FAKE_AUTH_2, through the link. */
const SAVE_TWICE = `target=$(readlink -f "$CODEX_HOME/auth.json")
for login in "$FAKE_AUTH_1" "$FAKE_AUTH_2"; do
  printf '%s' "$login" > "$(dirname "$target")/.auth-fake"
  mv "$(dirname "$target")/.auth-fake" "$target"
  sleep 0.5
done
`;

Deno.test("write-back checks new recipients once per run", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const original = await decryptText(fixture.identity, fixture.store);
    const other = await makeIdentity(fixture, "other-identity");
    const foreign = await writeRecipientsFile(
      fixture,
      "foreign-recipients.txt",
      other.recipient,
    );
    const fakeDir = await writeFakeCodex(fixture, SAVE_TWICE);
    const login = (n: number) =>
      JSON.stringify(fakeChatGptAuth({
        canary: fixture.canary,
        refreshToken: `rt-twice-${n}-${fixture.canary}`,
        lastRefresh: new Date(Date.now() + n * 60_000).toISOString(),
      }));
    const env = {
      PATH: `${fakeDir}:${fixture.env.PATH}`,
      FAKE_AUTH_1: login(1),
      FAKE_AUTH_2: login(2),
    };
    const result = await fixture.run(
      ["--recipients-file", foreign, "--", "exec", "hi"],
      { env },
    );
    assert.equal(result.code, 0, result.stderr);
    // Three write-backs (two saves and the one after codex exits) refused
    // the same recipients; age ran, and printed its error, for the first.
    const ageErrors = result.stderr.match(/^secure-codex: age: error: /gm);
    assert.equal(ageErrors?.length, 1, result.stderr);
    assert.equal(await decryptText(fixture.identity, fixture.store), original);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("write-back without an identity keeps the recipients", async () => {
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
    const original = await decryptText(fixture.identity, fixture.store);
    const unlock = await fixture.run(["--unlock"]);
    assert.equal(unlock.code, 0, unlock.stderr);
    const other = await makeIdentity(fixture, "other-identity");
    const foreign = await writeRecipientsFile(
      fixture,
      "foreign-recipients.txt",
      other.recipient,
    );
    // The session is unlocked, so this run needs no identity, and without
    // one it cannot check that the new recipients leave a way in.
    const refresh = await fixture.run(
      ["--recipients-file", foreign, "--", "mcp", "list"],
      {
        env: {
          SECURE_CODEX_IDENTITY: "",
          CODEX_REFRESH_TOKEN_URL_OVERRIDE: mock.url,
        },
      },
    );
    assert.equal(refresh.code, 0, refresh.stderr);
    assert.match(
      refresh.stderr,
      new RegExp(
        `secure-codex: warning: refreshed tokens are not saved: the recipients in ${foreign} differ from the store's, and no identity was given`,
      ),
    );
    // The printed command keeps the new recipients, so it saves to them.
    assert.match(
      refresh.stderr,
      new RegExp(
        `secure-codex: hint: to save them, run with an identity for one of the new recipients: secure-codex .*--recipients-file ${foreign} --identity PATH -- login status`,
      ),
    );
    assert.equal(await decryptText(fixture.identity, fixture.store), original);
    assert.ok(
      !pathExists(`${fixture.store}.recipients`),
      "the foreign recipients were recorded beside the store",
    );
  } finally {
    await mock.close();
    await fixture.dispose();
  }
});

Deno.test("rekey: no RAM copy", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const original = await decryptText(fixture.identity, fixture.store);
    const next = await makeIdentity(fixture, "new-identity");
    const recipients = await writeRecipientsFile(
      fixture,
      "new-recipients.txt",
      next.recipient,
    );
    const rekey = await fixture.run([
      "--rekey",
      "--recipients-file",
      recipients,
      "--identity",
      fixture.identity,
      "--identity",
      next.identity,
    ]);
    assert.equal(rekey.code, 0, rekey.stderr);
    assert.equal(await decryptText(next.identity, fixture.store), original);
    assert.notEqual(
      (await decryptWith(fixture.identity, fixture.store)).code,
      0,
      "the old identity still decrypts the store",
    );
    const status = await fixture.run(["--", "login", "status"], {
      env: { SECURE_CODEX_IDENTITY: next.identity },
    });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout + status.stderr, /Logged in using ChatGPT/);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("rekey: newer RAM copy", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(
      fakeChatGptAuth({ canary: fixture.canary, refreshToken: "rt-stored" }),
    );
    const unlocked = await fixture.run(["--", "login", "status"]);
    assert.equal(unlocked.code, 0, unlocked.stderr);

    // Play a codex refresh that no write-back has seen yet: temp file and
    // rename in the RAM directory (tmpfs, so the canary stays off disk).
    const ramDir = fixture.ramDir();
    const newer = JSON.stringify(
      fakeChatGptAuth({
        canary: fixture.canary,
        refreshToken: `rt-newer-${fixture.canary}`,
        lastRefresh: new Date(Date.now() + 60_000).toISOString(),
      }),
    );
    await Deno.writeTextFile(join(ramDir, ".auth-test"), newer, {
      mode: 0o600,
    });
    await Deno.rename(join(ramDir, ".auth-test"), join(ramDir, "auth.json"));

    const next = await makeIdentity(fixture, "new-identity");
    const recipients = await writeRecipientsFile(
      fixture,
      "new-recipients.txt",
      next.recipient,
    );
    const rekey = await fixture.run([
      "--rekey",
      "--recipients-file",
      recipients,
      "--identity",
      fixture.identity,
      "--identity",
      next.identity,
    ]);
    assert.equal(rekey.code, 0, rekey.stderr);
    assert.equal(await decryptText(next.identity, fixture.store), newer);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("rekey: identities cannot decrypt", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const unlocked = await fixture.run(["--", "login", "status"]);
    assert.equal(unlocked.code, 0, unlocked.stderr);
    const other = await makeIdentity(fixture, "other-identity");
    const recipients = await writeRecipientsFile(
      fixture,
      "other-recipients.txt",
      other.recipient,
    );
    const before = await snapshotTree(fixture.codexHome);
    const rekey = await fixture.run([
      "--rekey",
      "--recipients-file",
      recipients,
      "--identity",
      fixture.identity,
    ]);
    assert.notEqual(rekey.code, 0, "the rekey succeeded");
    assert.match(
      rekey.stderr,
      /the identities given cannot decrypt the re-encrypted store/,
    );
    assert.deepEqual(await snapshotTree(fixture.codexHome), before);
    // The session still works with the old identity.
    const cleanup = await fixture.run(["--cleanup"]);
    assert.equal(cleanup.code, 0, cleanup.stderr);
    const status = await fixture.run(["--", "login", "status"]);
    assert.equal(status.code, 0, status.stderr);
  } finally {
    await fixture.dispose();
  }
});

// codex 0.171's browser and device-code logins delete auth.json when they
// start and save the new login when the user finishes, seconds later. A fake
// codex plays that order: delete, wait, then save like codex, through the
// link if there is one, else as a plain file in the codex home.
/**
 * Runs `-- login` with a fake codex that saves the login in FAKE_NEW_AUTH.
 * Returns the run and that login's refresh token.
 */
async function runFakeLogin(fixture: Fixture, fakeDir: string) {
  const refreshToken = `rt-new-${fixture.canary}`;
  const result = await fixture.run(["--", "login"], {
    env: fakeCodexEnv(fixture, fakeDir, {
      FAKE_NEW_AUTH: JSON.stringify(
        fakeChatGptAuth({ canary: fixture.canary, refreshToken }),
      ),
    }),
  });
  return { result, refreshToken };
}

for (const hasStore of [false, true]) {
  Deno.test(
    `login that deletes the link${hasStore ? ", store exists" : ""}`,
    async () => {
      const fixture = await createFixture();
      try {
        if (hasStore) {
          await fixture.writeStore(
            fakeChatGptAuth({ canary: fixture.canary, refreshToken: "rt-old" }),
          );
        }
        const fakeDir = await writeFakeCodex(
          fixture,
          `set -eu
rm -f "$CODEX_HOME/auth.json"
sleep 1
if [ -L "$CODEX_HOME/auth.json" ]; then
  target=$(readlink "$CODEX_HOME/auth.json")
else
  target="$CODEX_HOME/auth.json"
fi
dir=$(dirname "$target")
printf '%s' "$FAKE_NEW_AUTH" > "$dir/.auth-fake"
mv "$dir/.auth-fake" "$target"
`,
        );
        const { result, refreshToken } = await runFakeLogin(fixture, fakeDir);
        assert.equal(result.code, 0, result.stderr);
        // The link was back before the save, so nothing was adopted from disk.
        assert.doesNotMatch(result.stderr, /written to disk/);
        assertLinkIntoRam(fixture);
        const stored = await fixture.readStore() as StoredAuth;
        assert.equal(stored.tokens?.refresh_token, refreshToken);
      } finally {
        await fixture.dispose();
      }
    },
  );
}

Deno.test("first login through a dangling store link", async () => {
  const fixture = await createFixture();
  try {
    // The store lives in another directory, linked before it exists.
    const vault = join(fixture.dir, "vault");
    await Deno.mkdir(vault, { mode: 0o700 });
    const target = join(vault, "auth.json.age");
    await Deno.symlink(target, fixture.store);
    const fakeDir = await writeFakeCodex(
      fixture,
      `set -eu
target=$(readlink "$CODEX_HOME/auth.json")
printf '%s' "$FAKE_NEW_AUTH" > "$(dirname "$target")/.auth-fake"
mv "$(dirname "$target")/.auth-fake" "$target"
`,
    );
    const { result, refreshToken } = await runFakeLogin(fixture, fakeDir);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(Deno.readLinkSync(fixture.store), target);
    const stored = await fixture.readStore() as StoredAuth;
    assert.equal(stored.tokens?.refresh_token, refreshToken);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("identity others can reach warns", async () => {
  const fixture = await createFixture();
  // Every directory above it must let others search, so it lives under /tmp
  // rather than in the fixture, whose clone may sit in a private directory.
  const shared = await Deno.makeTempDir({ dir: "/tmp", prefix: "sc-key-" });
  try {
    await Deno.chmod(shared, 0o711);
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const identity = join(shared, "key.txt");
    await Deno.copyFile(fixture.identity, identity);
    const cases: [number, string][] = [
      [0o640, "read"],
      [0o660, "read and changed"],
      [0o620, "changed"],
    ];
    for (const [mode, access] of cases) {
      await Deno.chmod(identity, mode);
      const run = await fixture.run([
        "--identity",
        identity,
        "--",
        "login",
        "status",
      ]);
      assert.equal(run.code, 0, run.stderr);
      assert.ok(
        run.stderr.includes(
          `secure-codex: warning: identity file can be ${access} by other users (mode 0${
            mode.toString(8)
          }): ${identity}\n`,
        ),
        run.stderr,
      );
      assert.match(
        run.stderr,
        /hint: an unencrypted identity file is the secret key: /,
      );
      assert.ok(
        run.stderr.includes(
          `hint: restrict it to yourself: chmod 600 ${identity}\n`,
        ),
        run.stderr,
      );
    }
    await Deno.chmod(identity, 0o600);
    const quiet = await fixture.run([
      "--identity",
      identity,
      "--",
      "login",
      "status",
    ]);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.doesNotMatch(quiet.stderr, /warning: identity file/);

    // A directory everyone can write lets others replace the key; the sticky
    // bit, as on /tmp, keeps them from it.
    await Deno.chmod(shared, 0o777);
    const open = await fixture.run([
      "--identity",
      identity,
      "--",
      "login",
      "status",
    ]);
    assert.equal(open.code, 0, open.stderr);
    assert.ok(
      open.stderr.includes(
        `secure-codex: warning: identity file can be replaced by other users through its directory: ${shared}\n`,
      ),
      open.stderr,
    );
    await Deno.chmod(shared, 0o1777);
    const sticky = await fixture.run([
      "--identity",
      identity,
      "--",
      "login",
      "status",
    ]);
    assert.equal(sticky.code, 0, sticky.stderr);
    assert.doesNotMatch(sticky.stderr, /warning: identity file/);
  } finally {
    await Deno.remove(shared, { recursive: true });
    await fixture.dispose();
  }
});
