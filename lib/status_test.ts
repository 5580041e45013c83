import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { statfsSync } from "node:fs";
import { join } from "node:path";
import type { LoginSummary } from "./login_summary.ts";
import { RAMFS_MAGIC, TMPFS_MAGIC } from "./ram_dir.ts";
import type { SessionState } from "./session.ts";
import {
  collectStatus,
  formatStatus,
  type StatusInputs,
  type StatusReport,
  type StatusWarningCode,
} from "./status.ts";
import { fingerprintOf, sha256Hex } from "./fingerprint.ts";

/** A throwaway codex home with a store path and a RAM directory path, none created yet. */
interface Home {
  dir: string;
  home: string;
  store: string;
  ramDir: string;
  ramCopy: string;
  linkPath: string;
  inputs(overrides?: Partial<StatusInputs>): StatusInputs;
}

async function withHome(action: (home: Home) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "status-test-" });
  const home = join(dir, "codex-home");
  Deno.mkdirSync(home);
  const ramDir = join(dir, "ram");
  const fixture: Home = {
    dir,
    home,
    store: join(home, "auth.json.age"),
    ramDir,
    ramCopy: join(ramDir, "auth.json"),
    linkPath: join(home, "auth.json"),
    inputs: (overrides = {}) => ({
      codexHome: home,
      store: join(home, "auth.json.age"),
      recipientsFile: null,
      recipientsSource: "none",
      identityRecipients: [],
      ramDir,
      linkPath: join(home, "auth.json"),
      ramCopy: join(ramDir, "auth.json"),
      env: {},
      now: new Date("2026-03-01T12:00:00Z"),
      state: null,
      login: null,
      ...overrides,
    }),
  };
  try {
    await action(fixture);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A store with a valid age header, for sessions whose tests need one. */
const STORE_BYTES = new TextEncoder().encode(
  "age-encryption.org/v1\n-> X25519 c2FsdHNhbHRzYWx0c2FsdA\n" +
    "ZmFrZWZha2VmYWtlZmFrZWZha2VmYWtlZmFrZWZha2U\n--- bWFj\n",
);

/**
 * Creates the RAM directory, the RAM copy, the link to it and a store (unless
 * one exists), as an unlocked session has them.
 */
function unlock(home: Home, text = '{"OPENAI_API_KEY":"sk-ram"}'): void {
  if (!existsSync(home.store)) Deno.writeFileSync(home.store, STORE_BYTES);
  Deno.mkdirSync(home.ramDir, { mode: 0o700 });
  Deno.writeTextFileSync(home.ramCopy, text, { mode: 0o600 });
  Deno.symlinkSync(home.ramCopy, home.linkPath);
}

function sessionState(
  home: Home,
  overrides: Partial<SessionState> = {},
): SessionState {
  return {
    version: 1,
    codexHome: home.home,
    store: home.store,
    storeSha256: existsSync(home.store)
      ? createHash("sha256").update(Deno.readFileSync(home.store)).digest("hex")
      : "0".repeat(64),
    plaintextSha256: "1".repeat(64),
    plaintextFingerprint: fingerprintOf(Deno.lstatSync(home.ramCopy)),
    lastRefresh: null,
    recipients: [],
    unlockedAt: "2026-03-01T10:57:55.000Z",
    lastWriteBackAt: "2026-03-01T11:30:00.000Z",
    ...overrides,
  };
}

/**
 * Lists the report's warning codes except `ram-dir-not-in-ram`. Every
 * unlocked fixture gets that one when the temp directory is on disk, so the
 * test "collectStatus warns about a RAM copy on disk" checks it alone.
 */
function codes(report: StatusReport): StatusWarningCode[] {
  return report.warnings.map((warning) => warning.code)
    .filter((code) => code !== "ram-dir-not-in-ram");
}

/** Names the filesystem kind of `path` as status reports it. */
function filesystemKind(path: string): "tmpfs" | "ramfs" | "other" {
  const type = statfsSync(path).type >>> 0;
  return type === TMPFS_MAGIC
    ? "tmpfs"
    : type === RAMFS_MAGIC
    ? "ramfs"
    : "other";
}

function warningsOf(report: StatusReport, code: StatusWarningCode) {
  return report.warnings.filter((warning) => warning.code === code);
}

async function run(
  command: string,
  args: string[],
  stdin?: Uint8Array,
): Promise<Uint8Array> {
  const child = new Deno.Command(command, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Read the output while writing, or a large input fills the pipes and
  // both processes wait for each other.
  const writing = stdin === undefined ? Promise.resolve() : (async () => {
    const writer = child.stdin.getWriter();
    await writer.write(stdin);
    await writer.close();
  })();
  const [stdout, stderr] = await Promise.all([
    new Response(child.stdout).arrayBuffer(),
    new Response(child.stderr).text(),
    writing,
  ]);
  const status = await child.status;
  assert.equal(status.code, 0, stderr);
  return new Uint8Array(stdout);
}

const LOGIN: LoginSummary = {
  kind: "chatgpt",
  email: "dev@example.com",
  plan: "plus",
  accessTokenExpiresAt: "2027-01-15T08:00:00.000Z",
  lastRefresh: "2026-03-01T11:30:00.000Z",
};

Deno.test("collectStatus reports an empty home as locked", async () => {
  await withHome(async (home) => {
    const report = await collectStatus(home.inputs());
    assert.deepEqual(report, {
      version: 1,
      state: "locked",
      codexHome: home.home,
      store: {
        path: home.store,
        exists: false,
        encryption: null,
        armored: null,
      },
      recipients: { source: "none", path: null, list: [] },
      ramDir: { path: home.ramDir, exists: false, filesystem: null },
      link: { path: home.linkPath, status: "missing", target: null },
      session: {
        unlockedAt: null,
        ageSeconds: null,
        lastWriteBackAt: null,
        ttlSeconds: null,
        locksAt: null,
        unsavedChanges: null,
      },
      login: null,
      warnings: [],
    });
  });
});

Deno.test("collectStatus reports an unlocked session", async () => {
  await withHome(async (home) => {
    unlock(home);
    const state = sessionState(home);
    const report = await collectStatus(
      home.inputs({ state, login: LOGIN }),
    );
    assert.equal(report.state, "unlocked");
    assert.deepEqual(report.link, {
      path: home.linkPath,
      status: "ok",
      target: home.ramCopy,
    });
    assert.deepEqual(report.session, {
      unlockedAt: "2026-03-01T10:57:55.000Z",
      ageSeconds: 3725,
      lastWriteBackAt: "2026-03-01T11:30:00.000Z",
      ttlSeconds: 0,
      locksAt: null,
      unsavedChanges: false,
    });
    assert.deepEqual(report.login, LOGIN);
    assert.deepEqual(codes(report), []);
  });
});

Deno.test("collectStatus reads the store's age header", async () => {
  await withHome(async (home) => {
    const identity = join(home.dir, "key.txt");
    await run("age-keygen", ["-o", identity]);
    const recipient = new TextDecoder().decode(
      await run("age-keygen", ["-y", identity]),
    ).trim();
    // Larger than the bytes collectStatus reads, so the armored case
    // exercises a partial read.
    const plaintext = new Uint8Array(300 * 1024).fill(0x61);

    const binary = await run("age", ["-e", "-r", recipient], plaintext);
    Deno.writeFileSync(home.store, binary);
    assert.deepEqual((await collectStatus(home.inputs())).store, {
      path: home.store,
      exists: true,
      encryption: "recipients",
      armored: false,
    });

    const armored = await run("age", ["-e", "-a", "-r", recipient], plaintext);
    assert.ok(armored.length > 128 * 1024);
    Deno.writeFileSync(home.store, armored);
    assert.deepEqual((await collectStatus(home.inputs())).store, {
      path: home.store,
      exists: true,
      encryption: "recipients",
      armored: true,
    });

    // age -p needs a terminal for the passphrase, so this header is written
    // by hand in the age v1 format.
    const scrypt = new TextEncoder().encode(
      "age-encryption.org/v1\n-> scrypt c2FsdHNhbHRzYWx0c2FsdA 18\n" +
        "ZmFrZWZha2VmYWtlZmFrZWZha2VmYWtlZmFrZWZha2U\n--- bWFj\n\x00\x01",
    );
    Deno.writeFileSync(home.store, scrypt);
    const passphrase = (await collectStatus(home.inputs())).store;
    assert.equal(passphrase.encryption, "passphrase");
    assert.equal(passphrase.armored, false);
  });
});

Deno.test("collectStatus reports a store that is not age", async () => {
  await withHome(async (home) => {
    Deno.writeTextFileSync(home.store, '{"OPENAI_API_KEY":"sk-plain"}');
    assert.deepEqual((await collectStatus(home.inputs())).store, {
      path: home.store,
      exists: true,
      encryption: null,
      armored: null,
    });

    Deno.removeSync(home.store);
    Deno.mkdirSync(home.store);
    assert.deepEqual((await collectStatus(home.inputs())).store, {
      path: home.store,
      exists: true,
      encryption: null,
      armored: null,
    });
  });
});

Deno.test("collectStatus lists only public recipients", async () => {
  await withHome(async (home) => {
    const file = `${home.store}.recipients`;
    const age =
      "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    const ssh =
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host";
    Deno.writeTextFileSync(
      file,
      [
        "# created: 2026-01-01T00:00:00Z",
        `# public key: ${age}`,
        age,
        "",
        `  ${ssh}  `,
        "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
        "-----END OPENSSH PRIVATE KEY-----",
      ].join("\n"),
    );
    const report = await collectStatus(home.inputs({
      recipientsFile: file,
      recipientsSource: "beside-store",
      identityRecipients: ["age1fromidentity"],
    }));
    assert.deepEqual(report.recipients, {
      source: "beside-store",
      path: file,
      list: [age, ssh],
    });

    const missing = await collectStatus(home.inputs({
      recipientsFile: join(home.dir, "missing.txt"),
      recipientsSource: "--recipients-file",
    }));
    assert.deepEqual(missing.recipients.list, []);

    const fromIdentity = await collectStatus(home.inputs({
      recipientsSource: "identity",
      identityRecipients: [age],
    }));
    assert.deepEqual(fromIdentity.recipients, {
      source: "identity",
      path: null,
      list: [age],
    });
  });
});

Deno.test("collectStatus names the RAM directory's filesystem", async () => {
  await withHome(async (home) => {
    Deno.mkdirSync(home.ramDir);
    const expected = filesystemKind(home.ramDir);
    const report = await collectStatus(home.inputs());
    assert.deepEqual(report.ramDir, {
      path: home.ramDir,
      exists: true,
      filesystem: expected,
    });
    assert.equal(report.state, "locked");
  });
});

Deno.test("collectStatus classifies the link", async () => {
  await withHome(async (home) => {
    Deno.mkdirSync(home.ramDir);
    const linkOf = async () => (await collectStatus(home.inputs())).link;

    Deno.symlinkSync(home.ramCopy, home.linkPath);
    assert.deepEqual(await linkOf(), {
      path: home.linkPath,
      status: "dangling",
      target: home.ramCopy,
    });

    Deno.writeTextFileSync(home.ramCopy, "{}");
    assert.deepEqual(await linkOf(), {
      path: home.linkPath,
      status: "ok",
      target: home.ramCopy,
    });

    Deno.removeSync(home.linkPath);
    Deno.symlinkSync("/elsewhere/auth.json", home.linkPath);
    assert.deepEqual(await linkOf(), {
      path: home.linkPath,
      status: "elsewhere",
      target: "/elsewhere/auth.json",
    });

    Deno.removeSync(home.linkPath);
    Deno.writeTextFileSync(home.linkPath, "{}");
    assert.deepEqual(await linkOf(), {
      path: home.linkPath,
      status: "plaintext-file",
      target: null,
    });

    Deno.removeSync(home.linkPath);
    Deno.mkdirSync(home.linkPath);
    assert.deepEqual(await linkOf(), {
      path: home.linkPath,
      status: "other",
      target: null,
    });
  });
});

Deno.test("collectStatus detects unsaved changes", async () => {
  await withHome(async (home) => {
    unlock(home);
    const saved = sessionState(home);

    const changed = sessionState(home, { plaintextFingerprint: "1:2:3:4:5" });
    const changedReport = await collectStatus(home.inputs({ state: changed }));
    assert.equal(changedReport.session.unsavedChanges, true);
    const [warning] = warningsOf(changedReport, "unsaved-changes");
    assert.equal(warning.path, home.ramCopy);
    assert.match(warning.message, /not saved to the store/);

    const pending = sessionState(home, {
      pending: {
        storeSha256: "2".repeat(64),
        plaintextSha256: "3".repeat(64),
        plaintextFingerprint: saved.plaintextFingerprint,
        lastRefresh: null,
      },
    });
    const pendingReport = await collectStatus(home.inputs({ state: pending }));
    assert.equal(pendingReport.session.unsavedChanges, true);

    const savedReport = await collectStatus(home.inputs({ state: saved }));
    assert.equal(savedReport.session.unsavedChanges, false);
    assert.deepEqual(warningsOf(savedReport, "unsaved-changes"), []);

    const noState = await collectStatus(home.inputs());
    assert.deepEqual(noState.session, {
      unlockedAt: null,
      ageSeconds: null,
      lastWriteBackAt: null,
      ttlSeconds: null,
      locksAt: null,
      unsavedChanges: null,
    });
  });
});

Deno.test("collectStatus ignores the state while locked", async () => {
  await withHome(async (home) => {
    unlock(home);
    const state = sessionState(home, {
      plaintextFingerprint: "changed",
      ttlSeconds: 60,
    });
    Deno.removeSync(home.ramCopy);
    const report = await collectStatus(home.inputs({ state }));
    assert.equal(report.state, "locked");
    assert.deepEqual(report.session, {
      unlockedAt: null,
      ageSeconds: null,
      lastWriteBackAt: null,
      ttlSeconds: null,
      locksAt: null,
      unsavedChanges: null,
    });
    assert.deepEqual(codes(report), []);
  });
});

Deno.test("collectStatus reports the time to live", async () => {
  await withHome(async (home) => {
    unlock(home);
    const sessionOf = async (overrides: Partial<SessionState>) =>
      (await collectStatus(
        home.inputs({ state: sessionState(home, overrides) }),
      )).session;

    const hour = await sessionOf({ ttlSeconds: 3600 });
    assert.equal(hour.ttlSeconds, 3600);
    assert.equal(hour.locksAt, "2026-03-01T11:57:55.000Z");

    // An absent or 0 TTL means none, and so does a value that session.json
    // should not contain.
    const none: Partial<SessionState>[] = [
      {},
      { ttlSeconds: 0 },
      { ttlSeconds: -5 },
      { ttlSeconds: "3600" as unknown as number },
    ];
    for (const overrides of none) {
      const session = await sessionOf(overrides);
      assert.equal(session.ttlSeconds, 0, JSON.stringify(overrides));
      assert.equal(session.locksAt, null, JSON.stringify(overrides));
    }

    // This command's own TTL applies when it is shorter, as it does for locking.
    const runShorter = (await collectStatus(
      home.inputs({
        state: sessionState(home, { ttlSeconds: 3600 }),
        runTtlSeconds: 60,
      }),
    )).session;
    assert.equal(runShorter.ttlSeconds, 60);
    const runOnly = (await collectStatus(
      home.inputs({ state: sessionState(home, {}), runTtlSeconds: 60 }),
    )).session;
    assert.equal(runOnly.ttlSeconds, 60);
    const runLonger = (await collectStatus(
      home.inputs({
        state: sessionState(home, { ttlSeconds: 3600 }),
        runTtlSeconds: 7200,
      }),
    )).session;
    assert.equal(runLonger.ttlSeconds, 3600);

    const badTime = await sessionOf({ unlockedAt: "soon", ttlSeconds: 3600 });
    assert.equal(badTime.ttlSeconds, 3600);
    assert.equal(badTime.locksAt, null);

    const state = sessionState(home, { ttlSeconds: 3600 });
    Deno.removeSync(home.ramCopy);
    const locked = (await collectStatus(home.inputs({ state }))).session;
    assert.equal(locked.ttlSeconds, null);
    assert.equal(locked.locksAt, null);
  });
});

Deno.test("collectStatus warns about an expired session", async () => {
  await withHome(async (home) => {
    unlock(home);
    // unlockedAt is 3725 s before now.
    const reportWith = async (ttlSeconds?: number) =>
      await collectStatus(home.inputs({
        state: sessionState(home, { ttlSeconds }),
      }));

    const expired = await reportWith(3600);
    assert.deepEqual(codes(expired), ["session-expired"]);
    const [warning] = warningsOf(expired, "session-expired");
    assert.equal(warning.path, home.ramCopy);
    assert.match(warning.message, /time to live passed at 2026-03-01T11:57:55/);
    assert.match(warning.message, /secure-codex --lock locks it now/);

    // The session locks at the instant its time to live ends.
    const atTheEnd = await reportWith(3725);
    assert.deepEqual(codes(atTheEnd), ["session-expired"]);

    for (const ttlSeconds of [3726, 7200, 0, undefined]) {
      const report = await reportWith(ttlSeconds);
      assert.deepEqual(codes(report), [], String(ttlSeconds));
    }

    const state = sessionState(home, { ttlSeconds: 3600 });
    Deno.removeSync(home.ramCopy);
    const locked = await collectStatus(home.inputs({ state }));
    assert.deepEqual(codes(locked), []);
  });
});

Deno.test("collectStatus warns about a store that is not age", async () => {
  await withHome(async (home) => {
    assert.deepEqual(codes(await collectStatus(home.inputs())), []);

    Deno.writeTextFileSync(home.store, '{"OPENAI_API_KEY":"sk-plain"}');
    const report = await collectStatus(home.inputs());
    assert.deepEqual(codes(report), ["store-not-age"]);
    const [warning] = warningsOf(report, "store-not-age");
    assert.equal(warning.path, home.store);
    assert.ok(warning.message.includes(home.store));
    assert.match(warning.message, /secure-codex -- login/);
    assert.ok(!JSON.stringify(report).includes("sk-plain"));

    Deno.removeSync(home.store);
    Deno.mkdirSync(home.store);
    const directory = await collectStatus(home.inputs());
    assert.deepEqual(codes(directory), ["store-not-age"]);
    const [wrongPath] = warningsOf(directory, "store-not-age");
    assert.match(wrongPath.message, /^the store is not a regular file: /);
    assert.doesNotMatch(wrongPath.message, /backup/);

    Deno.removeSync(home.store);
    Deno.writeTextFileSync(
      home.store,
      "age-encryption.org/v1\n-> X25519 c2FsdHNhbHRzYWx0c2FsdA\n" +
        "ZmFrZWZha2VmYWtlZmFrZWZha2VmYWtlZmFrZWZha2U\n--- bWFj\n",
    );
    const age = await collectStatus(home.inputs());
    assert.equal(age.store.encryption, "recipients");
    assert.deepEqual(codes(age), []);
  });
});

Deno.test("collectStatus warns about a plaintext auth.json", async () => {
  await withHome(async (home) => {
    Deno.writeTextFileSync(home.linkPath, '{"OPENAI_API_KEY":"sk-disk"}');
    const report = await collectStatus(home.inputs());
    const [warning] = warningsOf(report, "plaintext-auth-json");
    assert.equal(warning.path, home.linkPath);
    assert.match(warning.message, /plaintext file on disk/);
    assert.ok(!JSON.stringify(report).includes("sk-disk"));
    assert.deepEqual(codes(report), ["plaintext-auth-json"]);

    Deno.removeSync(home.linkPath);
    Deno.symlinkSync(home.ramCopy, home.linkPath);
    const linked = await collectStatus(home.inputs());
    assert.deepEqual(warningsOf(linked, "plaintext-auth-json"), []);
  });
});

Deno.test("collectStatus warns about stray auth copies", async () => {
  await withHome(async (home) => {
    unlock(home);
    const strays = [
      ".auth-4f2a9c",
      "auth-old.json",
      "auth.json.bak",
      "auth.json~",
      "auth.json.swp-link",
    ];
    for (const name of strays.slice(0, 4)) {
      Deno.writeTextFileSync(join(home.home, name), '{"OPENAI_API_KEY":"x"}');
    }
    Deno.symlinkSync("/somewhere/auth.json", join(home.home, strays[4]));
    const ignored = [
      "auth.json.age",
      "auth.json.age.recipients",
      "auth.lock",
      "auth.json.lock",
      ".auth.json.age.5e1c0b7a9d3f.tmp",
      "auth-2025.json.age",
      "authors.txt",
      "config.json",
      ".credentials.json",
    ];
    for (const name of ignored) {
      Deno.writeTextFileSync(join(home.home, name), "");
    }
    Deno.mkdirSync(join(home.home, "auth.json.d"));

    const report = await collectStatus(home.inputs());
    const found = warningsOf(report, "stray-auth-copy");
    assert.deepEqual(
      found.map((warning) => warning.path),
      strays.toSorted().map((name) => join(home.home, name)),
    );
    assert.match(found[0].message, /temp file/);
    assert.match(found[1].message, /possible plaintext copy of auth.json/);
  });
});

Deno.test("collectStatus skips a custom store and its temp files", async () => {
  await withHome(async (home) => {
    const store = join(home.home, "auth-store.json.age");
    for (
      const name of [
        "auth-store.json.age",
        "auth-store.json.age.recipients",
        ".auth-store.json.age.0a1b2c3d4e5f.tmp",
      ]
    ) {
      Deno.writeTextFileSync(join(home.home, name), "");
    }
    const report = await collectStatus(home.inputs({ store }));
    assert.deepEqual(warningsOf(report, "stray-auth-copy"), []);
  });
});

Deno.test("collectStatus warns about credential variables", async () => {
  await withHome(async (home) => {
    const secret = "sk-env-SECRET-VALUE";
    const report = await collectStatus(home.inputs({
      env: { CODEX_API_KEY: secret, CODEX_ACCESS_TOKEN: "eyJ-token-value" },
    }));
    const found = warningsOf(report, "env-credentials");
    assert.equal(found.length, 2);
    assert.match(found[0].message, /^CODEX_API_KEY is set/);
    assert.match(found[1].message, /^CODEX_ACCESS_TOKEN is set/);
    assert.ok(!JSON.stringify(report).includes(secret));
    assert.ok(!JSON.stringify(report).includes("eyJ-token-value"));

    const empty = await collectStatus(home.inputs({
      env: { CODEX_API_KEY: "", OPENAI_API_KEY: "sk-other" },
    }));
    assert.deepEqual(warningsOf(empty, "env-credentials"), []);
  });
});

Deno.test("collectStatus reads cli_auth_credentials_store", async () => {
  await withHome(async (home) => {
    const config = join(home.home, "config.toml");
    const cases: [string, string, RegExp | null][] = [
      ["keyring", 'cli_auth_credentials_store = "keyring"\n', /"keyring"/],
      ["quoted key", '"cli_auth_credentials_store" = "auto"', /"auto"/],
      [
        "literal string",
        "cli_auth_credentials_store = 'ephemeral'",
        /"ephemeral"/,
      ],
      [
        "not a string",
        "cli_auth_credentials_store = keyring",
        /a value other than "file"/,
      ],
      ["file", 'cli_auth_credentials_store = "file"', null],
      ["file with comment", "cli_auth_credentials_store = 'file' # keep", null],
      ["missing", 'model = "gpt-5"\n', null],
      [
        "inside a table",
        '[profiles.work]\ncli_auth_credentials_store = "keyring"\n',
        null,
      ],
      [
        "after other keys",
        'model = "gpt-5"\n# comment\n  cli_auth_credentials_store="keyring"\n[features]\n',
        /"keyring"/,
      ],
    ];
    for (const [name, text, expected] of cases) {
      Deno.writeTextFileSync(config, text);
      const found = warningsOf(
        await collectStatus(home.inputs()),
        "credentials-store-not-file",
      );
      if (expected === null) {
        assert.deepEqual(found, [], name);
      } else {
        assert.equal(found.length, 1, name);
        assert.match(found[0].message, expected, name);
        assert.equal(found[0].path, config, name);
      }
    }
  });
});

Deno.test("collectStatus warns about a missing RAM directory", async () => {
  await withHome(async (home) => {
    Deno.symlinkSync(home.ramCopy, home.linkPath);
    const report = await collectStatus(home.inputs());
    assert.equal(report.link.status, "dangling");
    const [warning] = warningsOf(report, "ram-dir-missing");
    assert.equal(warning.path, home.ramDir);

    Deno.mkdirSync(home.ramDir);
    const present = await collectStatus(home.inputs());
    assert.equal(present.link.status, "dangling");
    assert.deepEqual(warningsOf(present, "ram-dir-missing"), []);
  });
});

Deno.test("collectStatus warns about a RAM copy on disk", async () => {
  await withHome(async (home) => {
    Deno.mkdirSync(home.ramDir, { mode: 0o700 });
    const locked = warningsOf(
      await collectStatus(home.inputs()),
      "ram-dir-not-in-ram",
    );
    if (filesystemKind(home.ramDir) === "other") {
      assert.equal(locked.length, 1);
      assert.match(
        locked[0].message,
        /^the RAM directory is not on tmpfs or ramfs: .*; secure-codex refuses to unlock into it: /,
      );
    } else {
      assert.deepEqual(locked, []);
    }

    // A link into the directory, as an unmounted tmpfs leaves one.
    Deno.symlinkSync(home.ramCopy, home.linkPath);
    const dangling = warningsOf(
      await collectStatus(home.inputs()),
      "ram-dir-not-in-ram",
    );
    if (filesystemKind(home.ramDir) === "other") {
      assert.equal(dangling.length, 1);
      assert.match(
        dangling[0].message,
        /^the RAM directory is not on tmpfs or ramfs: .*remove the link: rm /,
      );
    } else {
      assert.deepEqual(dangling, []);
    }
    Deno.removeSync(home.linkPath);

    Deno.writeTextFileSync(home.ramCopy, '{"OPENAI_API_KEY":"sk-ram"}', {
      mode: 0o600,
    });
    const report = await collectStatus(home.inputs());
    const warnings = warningsOf(report, "ram-dir-not-in-ram");
    if (filesystemKind(home.ramDir) !== "other") {
      // The temp directory is in RAM here, so the copy is where it belongs.
      assert.deepEqual(warnings, []);
      return;
    }
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0].path, home.ramCopy);
    assert.match(
      warnings[0].message,
      /^the RAM copy is on a filesystem other than tmpfs or ramfs: .*shred -u /,
    );
  });
});

Deno.test("collectStatus warns about a link into another session", async () => {
  await withHome(async (home) => {
    const other = join(home.dir, "other-ram");
    Deno.mkdirSync(other, { mode: 0o700 });
    Deno.symlinkSync(join(other, "auth.json"), home.linkPath);
    // Without a session.lock the directory is not a RAM directory, and
    // nothing is at the link's target.
    const foreign = await collectStatus(home.inputs());
    assert.equal(foreign.link.status, "elsewhere");
    assert.deepEqual(warningsOf(foreign, "link-to-other-session"), []);
    const [dangling] = warningsOf(foreign, "link-elsewhere");
    // A directory on disk there would take a plain codex login's tokens.
    assert.equal(
      dangling.message,
      filesystemKind(other) === "other"
        ? `auth.json links into a directory on disk: ${other}; ` +
          `a plain codex login would write tokens there, so remove the link: rm ${home.linkPath}`
        : `auth.json links to a path that does not exist: ${other}/auth.json; ` +
          `secure-codex runs reject this link, so remove it: rm ${home.linkPath}`,
    );
    Deno.writeTextFileSync(join(other, "auth.json"), "{}");
    const present = await collectStatus(home.inputs());
    assert.match(
      warningsOf(present, "link-elsewhere")[0].message,
      /^auth\.json links to a file secure-codex does not manage: /,
    );
    Deno.removeSync(join(other, "auth.json"));

    Deno.writeTextFileSync(join(other, "session.lock"), "");
    const ended = await collectStatus(home.inputs());
    const [endedWarning] = warningsOf(ended, "link-to-other-session");
    assert.equal(
      endedWarning.message,
      `auth.json links into the RAM directory of an ended session: ${other}; ` +
        "nothing is stored there, and the next secure-codex run replaces the link with its own",
    );

    Deno.writeTextFileSync(join(other, "auth.json"), "{}");
    const report = await collectStatus(home.inputs({
      command: (action, ramDir) =>
        `secure-codex --real-codex-home ${home.home}${
          ramDir === undefined ? "" : ` --ram-dir ${ramDir}`
        } ${action}`,
    }));
    const [warning] = warningsOf(report, "link-to-other-session");
    assert.equal(warning.path, other);
    assert.equal(
      warning.message,
      `auth.json links into the RAM directory of another session: ${other}; ` +
        `this report describes ${home.ramDir}, so run secure-codex --real-codex-home ${home.home} --ram-dir ${other} --status ` +
        `to see that session, or secure-codex --real-codex-home ${home.home} --ram-dir ${other} --cleanup to save and end it`,
    );
  });
});

Deno.test("collectStatus warns about an unreadable RAM copy", async () => {
  await withHome(async (home) => {
    unlock(home);
    const report = await collectStatus(
      home.inputs({ ramCopyError: "Permission denied (os error 13)" }),
    );
    const [warning] = warningsOf(report, "ram-copy-unreadable");
    assert.equal(warning.path, home.ramCopy);
    assert.match(
      warning.message,
      /^cannot read the RAM copy: .*: Permission denied \(os error 13\); runs stop on it too/,
    );
  });
});

Deno.test("collectStatus warns about a RAM copy without state", async () => {
  await withHome(async (home) => {
    unlock(home);
    const report = await collectStatus(home.inputs({ state: null }));
    const [warning] = warningsOf(report, "session-state-missing");
    assert.equal(warning.path, home.ramCopy);
    assert.match(warning.message, /keeps the newer tokens/);
  });
});

Deno.test("collectStatus warns about a store changed since unlock", async () => {
  await withHome(async (home) => {
    unlock(home);
    const store = new TextEncoder().encode(
      "age-encryption.org/v1\n-> X25519 abc\nxyz\n--- mac\n",
    );
    Deno.writeFileSync(home.store, store);
    const sha256 = await sha256Hex(store);

    const same = await collectStatus(
      home.inputs({ state: sessionState(home, { storeSha256: sha256 }) }),
    );
    assert.deepEqual(codes(same), []);
    // A write of this session that has not recorded its end yet.
    const pending = await collectStatus(home.inputs({
      state: sessionState(home, {
        pending: {
          storeSha256: sha256,
          plaintextSha256: "3".repeat(64),
          plaintextFingerprint: "1:2:3:4:5",
          lastRefresh: null,
        },
      }),
    }));
    assert.deepEqual(codes(pending), ["unsaved-changes"]);

    const changed = await collectStatus(
      home.inputs({
        state: sessionState(home, { storeSha256: "0".repeat(64) }),
      }),
    );
    assert.deepEqual(codes(changed), ["store-changed"]);
    const [warning] = warningsOf(changed, "store-changed");
    assert.equal(warning.path, home.store);
    assert.match(warning.message, /^the store changed since this session/);
    assert.match(warning.message, /--cleanup --force/);
    assert.doesNotMatch(warning.message, /\.$/);

    // A session recorded for another store is not compared with this one.
    const elsewhere = await collectStatus(home.inputs({
      state: sessionState(home, { store: `${home.store}.other` }),
    }));
    assert.deepEqual(codes(elsewhere), []);

    // While locked there is no session to compare with.
    const state = sessionState(home);
    Deno.removeSync(home.ramCopy);
    const locked = await collectStatus(home.inputs({ state }));
    assert.deepEqual(codes(locked), []);
  });
});

Deno.test("collectStatus warns about an older RAM copy", async () => {
  await withHome(async (home) => {
    unlock(home);
    const state = sessionState(home, {
      plaintextFingerprint: "changed since the last save",
      lastRefresh: "2026-03-01T11:00:00Z",
    });
    const older = await collectStatus(home.inputs({
      state,
      login: { ...LOGIN, lastRefresh: "2026-03-01T10:00:00Z" },
    }));
    // --cleanup cannot save such a copy, so unsaved-changes would mislead.
    assert.deepEqual(codes(older), ["ram-copy-older"]);
    assert.match(
      warningsOf(older, "ram-copy-older")[0].message,
      /--cleanup --force/,
    );
    const newer = await collectStatus(home.inputs({
      state,
      login: { ...LOGIN, lastRefresh: "2026-03-01T12:00:00Z" },
    }));
    assert.deepEqual(codes(newer), ["unsaved-changes"]);
  });
});

Deno.test("collectStatus warns about a RAM copy that is no file", async () => {
  await withHome(async (home) => {
    Deno.mkdirSync(home.ramDir, { mode: 0o700 });
    Deno.mkdirSync(home.ramCopy);
    const report = await collectStatus(home.inputs());
    assert.equal(warningsOf(report, "ram-copy-not-a-file").length, 1);
  });
});

Deno.test("collectStatus warns about a missing link", async () => {
  await withHome(async (home) => {
    const locked = await collectStatus(home.inputs());
    assert.equal(locked.link.status, "missing");
    assert.deepEqual(warningsOf(locked, "link-missing"), []);

    unlock(home);
    Deno.removeSync(home.linkPath);
    const report = await collectStatus(home.inputs());
    const [warning] = warningsOf(report, "link-missing");
    assert.equal(warning.path, home.linkPath);
    assert.match(warning.message, /run secure-codex --unlock to link it/);
  });
});

Deno.test("collectStatus warns about an invalid RAM copy", async () => {
  await withHome(async (home) => {
    unlock(home, "garbage");
    const state = sessionState(home, {
      plaintextFingerprint: "changed since the last save",
    });
    const unknown = await collectStatus(home.inputs({ state }));
    assert.deepEqual(codes(unknown), ["unsaved-changes"]);

    const report = await collectStatus(
      home.inputs({ state, ramCopyValid: false }),
    );
    // Saving it is impossible, so the unsaved-changes warning would mislead.
    assert.deepEqual(codes(report), ["ram-copy-invalid"]);
    const [warning] = warningsOf(report, "ram-copy-invalid");
    assert.equal(warning.path, home.ramCopy);
    assert.match(
      warning.message,
      /replaces it with the store.s login when it is not JSON/,
    );

    const valid = await collectStatus(
      home.inputs({ state, ramCopyValid: true }),
    );
    assert.deepEqual(codes(valid), ["unsaved-changes"]);
  });
});

Deno.test("collectStatus warns about MCP credentials", async () => {
  await withHome(async (home) => {
    const before = await collectStatus(home.inputs());
    assert.deepEqual(warningsOf(before, "mcp-credentials-plaintext"), []);

    const path = join(home.home, ".credentials.json");
    Deno.writeTextFileSync(path, '{"mcp":"secret-mcp-token"}');
    const report = await collectStatus(home.inputs());
    const [warning] = warningsOf(report, "mcp-credentials-plaintext");
    assert.equal(warning.path, path);
    assert.match(warning.message, /mcp_oauth_credentials_store = "keyring"/);
    assert.ok(!JSON.stringify(report).includes("secret-mcp-token"));
  });
});

Deno.test("collectStatus counts shell snapshots", async () => {
  await withHome(async (home) => {
    const directory = join(home.home, "shell_snapshots");
    const none = await collectStatus(home.inputs());
    assert.deepEqual(warningsOf(none, "shell-snapshots"), []);

    Deno.mkdirSync(directory);
    const empty = await collectStatus(home.inputs());
    assert.deepEqual(warningsOf(empty, "shell-snapshots"), []);

    Deno.writeTextFileSync(join(directory, "a.sh"), "declare -x X=1\n");
    Deno.writeTextFileSync(join(directory, "b.sh"), "declare -x Y=2\n");
    Deno.writeTextFileSync(join(directory, "notes.txt"), "");
    const report = await collectStatus(home.inputs());
    const [warning] = warningsOf(report, "shell-snapshots");
    assert.equal(warning.path, directory);
    assert.match(warning.message, /^2 codex shell snapshot files in /);
  });
});

Deno.test("collectStatus opens no file that may hold plaintext", async () => {
  await withHome(async (home) => {
    unlock(home, '{"OPENAI_API_KEY":"sk-RAM-CANARY"}');
    Deno.writeTextFileSync(join(home.home, "auth.json.bak"), "sk-BAK-CANARY");
    Deno.writeTextFileSync(join(home.home, ".credentials.json"), "MCP-CANARY");
    Deno.writeTextFileSync(join(home.home, "config.toml"), "");
    const opened: string[] = [];
    const deno = Deno as unknown as Record<string, unknown>;
    const names = [
      "open",
      "openSync",
      "readFile",
      "readFileSync",
      "readTextFile",
      "readTextFileSync",
    ];
    const originals = names.map((name) => deno[name]);
    names.forEach((name, index) => {
      const original = originals[index] as (...args: unknown[]) => unknown;
      deno[name] = (path: string | URL, ...rest: unknown[]) => {
        opened.push(String(path));
        return original(path, ...rest);
      };
    });
    let report: StatusReport;
    try {
      report = await collectStatus(home.inputs({ state: sessionState(home) }));
    } finally {
      names.forEach((name, index) => deno[name] = originals[index]);
    }
    assert.ok(opened.includes(join(home.home, "config.toml")), "spy works");
    for (
      const path of [
        home.ramCopy,
        home.linkPath,
        join(home.home, "auth.json.bak"),
        join(home.home, ".credentials.json"),
      ]
    ) {
      assert.ok(!opened.includes(path), path);
    }
    const json = JSON.stringify(report);
    for (const canary of ["RAM-CANARY", "BAK-CANARY", "MCP-CANARY"]) {
      assert.ok(!json.includes(canary), canary);
    }
  });
});

Deno.test("collectStatus report has the documented shape", async () => {
  await withHome(async (home) => {
    unlock(home);
    Deno.writeTextFileSync(join(home.home, "auth.json.bak"), "");
    const report = await collectStatus(
      home.inputs({ state: sessionState(home), login: LOGIN }),
    );
    assert.deepEqual(Object.keys(report), [
      "version",
      "state",
      "codexHome",
      "store",
      "recipients",
      "ramDir",
      "link",
      "session",
      "login",
      "warnings",
    ]);
    assert.deepEqual(Object.keys(report.store), [
      "path",
      "exists",
      "encryption",
      "armored",
    ]);
    assert.deepEqual(Object.keys(report.recipients), [
      "source",
      "path",
      "list",
    ]);
    assert.deepEqual(Object.keys(report.ramDir), [
      "path",
      "exists",
      "filesystem",
    ]);
    assert.deepEqual(Object.keys(report.link), ["path", "status", "target"]);
    assert.deepEqual(Object.keys(report.session), [
      "unlockedAt",
      "ageSeconds",
      "lastWriteBackAt",
      "ttlSeconds",
      "locksAt",
      "unsavedChanges",
    ]);
    assert.deepEqual(Object.keys(report.warnings[0]), [
      "code",
      "message",
      "path",
    ]);
    assert.deepEqual(JSON.parse(JSON.stringify(report)), report);
  });
});

Deno.test("warning messages follow the message rules", async () => {
  await withHome(async (home) => {
    Deno.writeTextFileSync(home.linkPath, "{}");
    Deno.writeTextFileSync(join(home.home, "auth.json.bak"), "");
    Deno.writeTextFileSync(join(home.home, ".auth-1"), "");
    Deno.writeTextFileSync(
      join(home.home, "config.toml"),
      'cli_auth_credentials_store = "keyring"\n',
    );
    Deno.writeTextFileSync(join(home.home, ".credentials.json"), "{}");
    Deno.mkdirSync(join(home.home, "shell_snapshots"));
    Deno.writeTextFileSync(join(home.home, "shell_snapshots", "a.sh"), "");
    Deno.writeTextFileSync(home.store, "not age");
    // The RAM copy exists without a link, because auth.json is the file above.
    Deno.mkdirSync(home.ramDir);
    Deno.writeTextFileSync(home.ramCopy, "{}");
    const report = await collectStatus(home.inputs({
      env: { CODEX_API_KEY: "sk-x" },
      state: sessionState(home, { ttlSeconds: 60 }),
    }));
    assert.deepEqual(codes(report), [
      "store-not-age",
      "plaintext-auth-json",
      "stray-auth-copy",
      "stray-auth-copy",
      "env-credentials",
      "credentials-store-not-file",
      "mcp-credentials-plaintext",
      "shell-snapshots",
      "session-expired",
    ]);
    for (const { code, message } of report.warnings) {
      assert.doesNotMatch(message, /^[A-Z][a-z]/, code);
      assert.doesNotMatch(message, /\.$/, code);
      assert.doesNotMatch(message, /\n/, code);
    }
    assert.match(
      warningsOf(report, "shell-snapshots")[0].message,
      /^1 codex shell snapshot file in /,
    );
  });
});

Deno.test("collectStatus warns about a store deleted since unlock", async () => {
  await withHome(async (home) => {
    unlock(home);
    const state = sessionState(home);
    Deno.removeSync(home.store);
    const report = await collectStatus(home.inputs({ state }));
    assert.equal(report.session.unsavedChanges, true);
    assert.deepEqual(codes(report), ["store-missing"]);
    const [warning] = warningsOf(report, "store-missing");
    assert.equal(warning.path, home.store);
    assert.match(
      warning.message,
      /^the store is missing: .*; the RAM copy is the only copy of this login: run secure-codex -- login status, which saves it to a new store$/,
    );
  });
});

Deno.test("formatStatus prints one line per field", async () => {
  await withHome(async (home) => {
    unlock(home);
    Deno.writeTextFileSync(join(home.home, "auth.json.bak"), "");
    const report = await collectStatus(home.inputs({
      state: sessionState(home, { ttlSeconds: 5400 }),
      login: LOGIN,
      recipientsSource: "identity",
      identityRecipients: ["age1one", "age1two"],
    }));
    const text = formatStatus(report);
    assert.ok(text.endsWith("\n"));
    const lines = text.slice(0, -1).split("\n");
    for (const line of lines) assert.match(line, /^[A-Za-z -]+: \S/, line);
    assert.ok(lines.includes("state: unlocked"));
    assert.ok(lines.includes(`store: ${home.store}`));
    assert.ok(lines.includes("store exists: yes"));
    assert.ok(lines.includes("recipients: age1one, age1two"));
    assert.ok(lines.includes("link status: ok"));
    assert.ok(lines.includes("session age: 1h 2m"));
    assert.ok(lines.includes("time to live: 1h30m"));
    assert.ok(lines.includes("locks at: 2026-03-01T12:27:55.000Z"));
    assert.ok(lines.includes("unsaved changes: no"));
    assert.ok(lines.includes("email: dev@example.com"));
    assert.ok(lines.includes("plan: plus"));
    assert.ok(
      lines.includes("access token expires at: 2027-01-15T08:00:00.000Z"),
    );
    assert.deepEqual(
      lines.filter((line) => line.startsWith("warning: ")),
      report.warnings.map((warning) => `warning: ${warning.message}`),
    );
    assert.equal(codes(report).length, 1);
  });
});

Deno.test("formatStatus shows a locked home", async () => {
  await withHome(async (home) => {
    const lines = formatStatus(await collectStatus(home.inputs())).split("\n");
    assert.ok(lines.includes("state: locked"));
    assert.ok(lines.includes("login: none"));
    assert.ok(lines.includes("RAM directory filesystem: unknown"));
    assert.ok(lines.includes("session age: unknown"));
    assert.ok(lines.includes("time to live: none"));
    assert.ok(lines.includes("locks at: none"));
    assert.ok(lines.includes("unsaved changes: unknown"));
    assert.ok(lines.includes("warnings: none"));
  });
});
