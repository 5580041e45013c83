/**
 * Integration tests of `secure-codex --status` and `--status --json`, run as a
 * user runs them: through scripts/secure-codex with the program's permission
 * set, against a fixture from tests/helpers.ts (tmpfs as XDG_RUNTIME_DIR, a
 * throwaway age identity, a codex home with config.toml only).
 *
 * Every status run goes through {@linkcode runStatus}, which runs both forms,
 * expects exit code 0 and an empty stderr, checks that the text form agrees
 * with the JSON, and checks that neither run changed a file, link or directory
 * in the codex home, the runtime directory or TMPDIR. Each test then checks
 * the JSON field by field.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CODEX_TEST_CONFIG,
  createFixture,
  fakeChatGptAuth,
  fakeJwt,
  type Fixture,
  pathExists,
  runCommand,
  type RunResult,
} from "./helpers.ts";

/** The report printed by `--status --json`, as lib/status.ts documents it. */
interface Report {
  version: number;
  state: string;
  codexHome: string;
  store: {
    path: string;
    exists: boolean;
    encryption: string | null;
    armored: boolean | null;
  };
  recipients: { source: string; path: string | null; list: string[] };
  ramDir: { path: string; exists: boolean; filesystem: string | null };
  link: { path: string; status: string; target: string | null };
  session: {
    unlockedAt: string | null;
    ageSeconds: number | null;
    lastWriteBackAt: string | null;
    ttlSeconds: number | null;
    locksAt: string | null;
    unsavedChanges: boolean | null;
  };
  login: {
    kind: string;
    email: string | null;
    plan: string | null;
    accessTokenExpiresAt: string | null;
    lastRefresh: string | null;
  } | null;
  warnings: { code: string; message: string; path?: string }[];
}

/** Both forms of one status query, with the times around them. */
interface Status {
  report: Report;
  json: RunResult;
  text: RunResult;
  /** The text form's `name: value` lines, without the warning lines. */
  fields: Map<string, string>;
  /** The text form's `warning: ` lines, without that prefix. */
  warningLines: string[];
  /** Date.now() before the first run started. */
  startedMs: number;
  /** Date.now() after the last run finished. */
  finishedMs: number;
}

const AUTH_CLAIM = "https://api.openai.com/auth";
const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** The paths a fixture's status report should name. */
interface Paths {
  codexHome: string;
  store: string;
  ramDir: string;
  ramCopy: string;
  link: string;
}

/**
 * Computes the paths as the README describes them, independently of the
 * program: the RAM directory is `$XDG_RUNTIME_DIR/secure-codex/<id>`, where
 * `<id>` is the first 16 hex digits of the SHA-256 of the codex home's
 * canonical path.
 */
async function pathsOf(fixture: Fixture): Promise<Paths> {
  const codexHome = Deno.realPathSync(fixture.codexHome);
  const digest = new Uint8Array(
    await crypto.subtle.digest(
      "SHA-256",
      new TextEncoder().encode(codexHome),
    ),
  );
  const id = Array.from(
    digest.subarray(0, 8),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
  const ramDir = join(fixture.runtimeDir, "secure-codex", id);
  return {
    codexHome,
    store: join(codexHome, "auth.json.age"),
    ramDir,
    ramCopy: join(ramDir, "auth.json"),
    link: join(codexHome, "auth.json"),
  };
}

/** One entry of a tree snapshot: its lstat fields and a digest of its bytes or link target. */
interface Entry {
  kind: string;
  dev: number;
  ino: number | null;
  mode: number | null;
  nlink: number | null;
  uid: number | null;
  gid: number | null;
  size: number;
  mtimeMs: number | undefined;
  ctimeMs: number | undefined;
  content: string;
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(
    new Uint8Array(digest),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
}

/**
 * Records every entry under the roots, the roots included, with lstat and a
 * SHA-256 of each file's bytes (a digest, so a failed comparison prints no
 * token). Access times are left out, because reading a file may change them.
 */
async function snapshot(roots: string[]): Promise<Record<string, Entry>> {
  const entries: Record<string, Entry> = {};
  async function walk(path: string): Promise<void> {
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    let kind = "other";
    let content = "";
    if (info.isSymlink) {
      kind = "symlink";
      content = Deno.readLinkSync(path);
    } else if (info.isFile) {
      kind = "file";
      content = await sha256Hex(Deno.readFileSync(path));
    } else if (info.isDirectory) {
      kind = "directory";
    }
    entries[path] = {
      kind,
      dev: info.dev,
      ino: info.ino,
      mode: info.mode,
      nlink: info.nlink,
      uid: info.uid,
      gid: info.gid,
      size: info.size,
      mtimeMs: info.mtime?.getTime(),
      ctimeMs: info.ctime?.getTime(),
      content,
    };
    if (info.isDirectory) {
      const names = [...Deno.readDirSync(path)].map((entry) => entry.name);
      for (const name of names.sort()) await walk(join(path, name));
    }
  }
  for (const root of roots) await walk(root);
  return entries;
}

/** Splits the text form into its `name: value` lines and its warning lines. */
function parseText(stdout: string): {
  fields: Map<string, string>;
  warningLines: string[];
} {
  const fields = new Map<string, string>();
  const warningLines: string[] = [];
  assert.ok(stdout.endsWith("\n"), "the text form does not end with a newline");
  for (const line of stdout.slice(0, -1).split("\n")) {
    if (line.startsWith("warning: ")) {
      warningLines.push(line.slice("warning: ".length));
      continue;
    }
    const colon = line.indexOf(": ");
    assert.ok(colon > 0, `a text line is not "name: value": ${line}`);
    const name = line.slice(0, colon);
    assert.ok(!fields.has(name), `the text form repeats "${name}"`);
    fields.set(name, line.slice(colon + 2));
  }
  return { fields, warningLines };
}

/**
 * Runs `--status --json` and `--status` with the fixture's environment plus
 * `env`. Checks, for both: exit code 0, nothing on stderr, no file, link or
 * directory changed in the codex home, the runtime directory or TMPDIR. Then
 * checks that the text form shows the same state, fields and warnings as the
 * JSON.
 */
async function runStatus(
  fixture: Fixture,
  env: Record<string, string> = {},
): Promise<Status> {
  const roots = [fixture.codexHome, fixture.runtimeDir, fixture.tmpDir];
  const before = await snapshot(roots);
  const startedMs = Date.now();
  const json = await fixture.run(["--status", "--json"], { env });
  const text = await fixture.run(["--status"], { env });
  const finishedMs = Date.now();
  const after = await snapshot(roots);

  assert.equal(json.code, 0, `--status --json exited ${json.code}`);
  assert.equal(json.stderr, "", "--status --json wrote to stderr");
  assert.equal(text.code, 0, `--status exited ${text.code}`);
  assert.equal(text.stderr, "", "--status wrote to stderr");
  assert.deepEqual(after, before, "--status changed the files");

  const report = JSON.parse(json.stdout) as Report;
  const { fields, warningLines } = parseText(text.stdout);
  assert.equal(fields.get("state"), report.state);
  assert.equal(
    fields.get("store encryption"),
    report.store.encryption ??
      (report.store.exists ? "unknown (not an age file)" : "none"),
  );
  assert.equal(fields.get("link status"), report.link.status);
  assert.equal(fields.get("link target"), report.link.target ?? "none");
  assert.equal(fields.get("locks at"), report.session.locksAt ?? "none");
  // The text form shows no TTL, and only no TTL, as "none".
  if (report.session.ttlSeconds) {
    assert.notEqual(fields.get("time to live"), "none");
  } else {
    assert.equal(fields.get("time to live"), "none");
  }
  assert.equal(
    fields.get("login"),
    report.login?.kind ?? (report.state === "locked" ? "none" : "unknown"),
  );
  assert.equal(fields.get("email"), report.login?.email ?? "none");
  assert.equal(fields.get("plan"), report.login?.plan ?? "none");
  assert.equal(
    fields.get("access token expires at"),
    report.login?.accessTokenExpiresAt ?? "none",
  );
  assert.equal(fields.get("last refresh"), report.login?.lastRefresh ?? "none");
  // One warning: line per warning, in the JSON's order, and "warnings: none"
  // only when there is none.
  assert.deepEqual(
    warningLines,
    report.warnings.map((warning) => warning.message),
  );
  assert.equal(
    fields.get("warnings"),
    report.warnings.length === 0 ? "none" : undefined,
  );
  return {
    report,
    json,
    text,
    fields,
    warningLines,
    startedMs,
    finishedMs,
  };
}

/** Checks the fields every report has, whatever the setup. */
function assertPaths(report: Report, paths: Paths): void {
  assert.equal(report.version, 1);
  assert.equal(report.codexHome, paths.codexHome);
  assert.equal(report.store.path, paths.store);
  assert.equal(report.ramDir.path, paths.ramDir);
  assert.equal(report.link.path, paths.link);
}

/** Checks a locked report: no RAM copy, no session fields, no login. */
function assertLocked(report: Report): void {
  assert.equal(report.state, "locked");
  assert.deepEqual(report.session, {
    unlockedAt: null,
    ageSeconds: null,
    lastWriteBackAt: null,
    ttlSeconds: null,
    locksAt: null,
    unsavedChanges: null,
  });
  assert.equal(report.login, null);
}

/** Checks a report of a store written by fixture.writeStore (recipients, not armored). */
function assertRecipientsStore(report: Report): void {
  assert.equal(report.store.exists, true);
  assert.equal(report.store.encryption, "recipients");
  assert.equal(report.store.armored, false);
}

/** Checks the report of a codex home with no link and no RAM directory. */
function assertNoSessionFiles(report: Report): void {
  assert.equal(report.ramDir.exists, false);
  assert.equal(report.ramDir.filesystem, null);
  assert.equal(report.link.status, "missing");
  assert.equal(report.link.target, null);
}

/** Checks an unlocked session: RAM directory on tmpfs, a healthy link. */
function assertUnlocked(report: Report, paths: Paths): void {
  assert.equal(report.state, "unlocked");
  assert.equal(report.ramDir.exists, true);
  assert.equal(report.ramDir.filesystem, "tmpfs");
  assert.equal(report.link.status, "ok");
  assert.equal(report.link.target, paths.ramCopy);
  assert.equal(Deno.readLinkSync(paths.link), paths.ramCopy);
}

/** Returns the warning codes of a report, in order. */
function codes(report: Report): string[] {
  return report.warnings.map((warning) => warning.code);
}

/** Decodes a JWT's payload. */
function claimsOf(token: string): Record<string, unknown> {
  const payload = token.split(".")[1].replaceAll("-", "+").replaceAll(
    "_",
    "/",
  );
  return JSON.parse(atob(payload));
}

/** A planted ChatGPT login and the facts a status should report for it. */
interface PlantedLogin {
  auth: Record<string, unknown>;
  email: string;
  plan: string;
  /** The access token's `exp` claim, in seconds since the epoch. */
  exp: number;
  lastRefresh: string;
  tokens: Record<string, string>;
}

/**
 * Builds a ChatGPT login with fakeChatGptAuth (so its tokens carry the
 * canary), then rebuilds both JWTs with the plan `plan`, because
 * fakeChatGptAuth always writes `plus`.
 */
function chatGptLogin(
  fixture: Fixture,
  options: {
    email: string;
    plan: string;
    expiresIn: number;
    lastRefresh: string;
    accountId?: string;
    refreshToken?: string;
  },
): PlantedLogin {
  const plantedAtSeconds = Date.now() / 1000;
  const auth = fakeChatGptAuth({
    canary: fixture.canary,
    email: options.email,
    expiresIn: options.expiresIn,
    lastRefresh: options.lastRefresh,
    accountId: options.accountId,
    refreshToken: options.refreshToken,
  });
  const tokens = auth.tokens as Record<string, string>;
  const idClaims = claimsOf(tokens.id_token);
  const exp = idClaims.exp as number;
  // fakeChatGptAuth sets exp = now + expiresIn, in whole seconds.
  assert.ok(
    Math.abs(exp - (plantedAtSeconds + options.expiresIn)) <= 1,
    `unexpected exp ${exp}`,
  );
  const authClaims = {
    ...(idClaims[AUTH_CLAIM] as Record<string, unknown>),
    chatgpt_plan_type: options.plan,
  };
  tokens.id_token = fakeJwt(
    { email: options.email, exp, [AUTH_CLAIM]: authClaims },
    fixture.canary,
  );
  tokens.access_token = fakeJwt(
    { exp, [AUTH_CLAIM]: authClaims },
    fixture.canary,
  );
  return {
    auth,
    email: options.email,
    plan: options.plan,
    exp,
    lastRefresh: options.lastRefresh,
    tokens,
  };
}

/** Builds a login with a known email, plan, expiry and last_refresh. */
function knownLogin(fixture: Fixture, accountId?: string): PlantedLogin {
  return chatGptLogin(fixture, {
    email: "status-user@example.com",
    plan: "pro",
    expiresIn: 5400,
    // A recent time, like fakeChatGptAuth's default, rounded down to a second.
    lastRefresh: new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000)
      .toISOString(),
    accountId,
  });
}

/** Unlocks the store the way a user does: `secure-codex -- login status`. */
async function unlock(fixture: Fixture): Promise<void> {
  const result = await fixture.run(["--", "login", "status"]);
  assert.equal(result.code, 0, result.stderr);
}

/** Runs a test body with a fresh fixture, and disposes of it afterwards. */
function withFixture(
  body: (fixture: Fixture, paths: Paths) => Promise<void>,
): () => Promise<void> {
  return async () => {
    const fixture = await createFixture();
    try {
      await body(fixture, await pathsOf(fixture));
    } finally {
      await fixture.dispose();
    }
  };
}

/** Returns a random value that appears in no output unless a status run prints it. */
function distinctive(label: string): string {
  return `${label}-${crypto.randomUUID()}`;
}

/** Asserts that none of the values occurs in the stdout or stderr of either form. */
function assertAbsent(status: Status, values: string[]): void {
  const outputs = [
    status.json.stdout,
    status.json.stderr,
    status.text.stdout,
    status.text.stderr,
  ];
  for (const value of values) {
    assert.ok(
      outputs.every((output) => !output.includes(value)),
      `status printed a value it must not print (${value.length} characters)`,
    );
  }
}

Deno.test(
  "status: locked store, no session",
  withFixture(async (fixture, paths) => {
    await fixture.writeStore(knownLogin(fixture).auth);
    const { report } = await runStatus(fixture);
    assertPaths(report, paths);
    assertLocked(report);
    assertRecipientsStore(report);
    assertNoSessionFiles(report);
    assert.deepEqual(report.warnings, []);
    // A status never creates the RAM directory or the link.
    assert.ok(!pathExists(join(fixture.runtimeDir, "secure-codex")));
    assert.ok(!pathExists(paths.link));
  }),
);

Deno.test(
  "status: locked recipients from identity",
  withFixture(async (fixture) => {
    await fixture.writeStore(knownLogin(fixture).auth);
    const { report, fields } = await runStatus(fixture);
    // SECURE_CODEX_IDENTITY names the fixture identity, whose
    // "# public key:" line is what a write-back would encrypt to.
    assert.deepEqual(report.recipients, {
      source: "identity",
      path: null,
      list: [fixture.recipient],
    });
    assert.equal(fields.get("recipients source"), "identity");
    assert.equal(fields.get("recipients"), fixture.recipient);
  }),
);

Deno.test(
  "status: recipients file beside the store",
  withFixture(async (fixture, paths) => {
    await fixture.writeStore(knownLogin(fixture).auth);
    const recipientsFile = `${paths.store}.recipients`;
    await Deno.writeTextFile(
      recipientsFile,
      `# public keys\n${fixture.recipient}\n`,
      { mode: 0o600 },
    );
    for (const setup of ["locked", "unlocked"]) {
      if (setup === "unlocked") await unlock(fixture);
      const { report, fields } = await runStatus(fixture);
      assert.equal(report.state, setup);
      assert.deepEqual(report.recipients, {
        source: "beside-store",
        path: recipientsFile,
        list: [fixture.recipient],
      });
      assert.equal(fields.get("recipients source"), "beside-store");
      assert.equal(fields.get("recipients file"), recipientsFile);
      assert.deepEqual(report.warnings, []);
    }
  }),
);

Deno.test(
  "status: unlocked ChatGPT login",
  withFixture(async (fixture, paths) => {
    const login = knownLogin(fixture);
    await fixture.writeStore(login.auth);
    const unlockStartedMs = Date.now();
    await unlock(fixture);
    assert.equal(fixture.ramDir(), paths.ramDir);
    // Let the session age by a second, so ageSeconds cannot pass by being 0.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const status = await runStatus(fixture);
    const report = status.report;

    assertPaths(report, paths);
    assertRecipientsStore(report);
    assertUnlocked(report, paths);
    assert.deepEqual(report.recipients, {
      source: "identity",
      path: null,
      list: [fixture.recipient],
    });

    const unlockedAt = report.session.unlockedAt;
    assert.ok(unlockedAt !== null, "unlockedAt is null");
    assert.match(unlockedAt, ISO_MS);
    const unlockedMs = Date.parse(unlockedAt);
    assert.ok(unlockedMs >= unlockStartedMs, "unlockedAt before the unlock");
    assert.ok(unlockedMs <= status.finishedMs, "unlockedAt in the future");
    const ageSeconds = report.session.ageSeconds;
    assert.ok(ageSeconds !== null, "ageSeconds is null");
    assert.ok(Number.isInteger(ageSeconds), `ageSeconds ${ageSeconds}`);
    assert.ok(
      ageSeconds >= Math.floor((status.startedMs - unlockedMs) / 1000),
      `ageSeconds ${ageSeconds} is too small`,
    );
    assert.ok(
      ageSeconds <= Math.floor((status.finishedMs - unlockedMs) / 1000),
      `ageSeconds ${ageSeconds} is too large`,
    );
    assert.ok(ageSeconds >= 1);
    // The store was decrypted and not written since.
    assert.equal(report.session.lastWriteBackAt, null);
    // No --ttl, SECURE_CODEX_TTL or config file ttl was given.
    assert.equal(report.session.ttlSeconds, 0);
    assert.equal(report.session.locksAt, null);
    assert.equal(report.session.unsavedChanges, false);

    assert.deepEqual(report.login, {
      kind: "chatgpt",
      email: login.email,
      plan: login.plan,
      accessTokenExpiresAt: new Date(login.exp * 1000).toISOString(),
      lastRefresh: login.lastRefresh,
    });
    assert.deepEqual(report.warnings, []);

    assert.equal(status.fields.get("unlocked at"), unlockedAt);
    assert.equal(status.fields.get("RAM directory filesystem"), "tmpfs");
    assert.equal(status.fields.get("unsaved changes"), "no");
    assert.equal(status.fields.get("last write-back"), "none");
    assert.equal(status.fields.get("time to live"), "none");
  }),
);

Deno.test(
  "status: unlocked API-key login",
  withFixture(async (fixture, paths) => {
    const lastRefresh = "2026-01-02T03:04:05.678Z";
    const key = `sk-test-${fixture.canary}`;
    await fixture.writeStore({
      auth_mode: "apikey",
      OPENAI_API_KEY: key,
      tokens: null,
      last_refresh: lastRefresh,
    });
    await unlock(fixture);
    const status = await runStatus(fixture);
    const report = status.report;
    assertPaths(report, paths);
    assertUnlocked(report, paths);
    assert.equal(report.session.unsavedChanges, false);
    assert.deepEqual(report.login, {
      kind: "api-key",
      email: null,
      plan: null,
      accessTokenExpiresAt: null,
      lastRefresh,
    });
    assert.deepEqual(report.warnings, []);
    assertAbsent(status, [key, fixture.canary, key.slice(0, 12)]);
  }),
);

Deno.test(
  "status: --unlock --ttl 2s, then expired",
  withFixture(async (fixture, paths) => {
    await fixture.writeStore(knownLogin(fixture).auth);
    const unlocked = await fixture.run(["--unlock", "--ttl", "2s"]);
    assert.equal(unlocked.code, 0, unlocked.stderr);

    const fresh = await runStatus(fixture);
    assertPaths(fresh.report, paths);
    assertUnlocked(fresh.report, paths);
    const { unlockedAt, locksAt } = fresh.report.session;
    assert.ok(unlockedAt !== null, "unlockedAt is null");
    assert.equal(fresh.report.session.ttlSeconds, 2);
    assert.equal(
      locksAt,
      new Date(Date.parse(unlockedAt) + 2000).toISOString(),
    );
    assert.equal(fresh.fields.get("time to live"), "2s");
    const locksMs = Date.parse(locksAt);
    // Checked only when the status finished in time, so a slow machine
    // does not fail the test.
    if (fresh.finishedMs < locksMs) {
      assert.deepEqual(codes(fresh.report), []);
    }

    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, locksMs + 200 - Date.now()))
    );
    // A status reports the expiry but leaves the locking to other runs.
    const expired = await runStatus(fixture);
    assertUnlocked(expired.report, paths);
    assert.equal(expired.report.session.ttlSeconds, 2);
    assert.equal(expired.report.session.locksAt, locksAt);
    assert.deepEqual(codes(expired.report), ["session-expired"]);
    const [warning] = expired.report.warnings;
    assert.equal(warning.path, paths.ramCopy);
    assert.ok(warning.message.includes(locksAt), warning.message);
    assert.ok(
      warning.message.includes(
        `secure-codex --real-codex-home ${fixture.codexHome} --identity ${fixture.identity} --lock`,
      ),
      warning.message,
    );
  }),
);

Deno.test(
  "status warning: plaintext auth.json",
  withFixture(async (fixture, paths) => {
    await fixture.writeStore(knownLogin(fixture).auth);
    // Not a real login: the file is on disk, where the canary must never be.
    const key = distinctive("sk-plaintext");
    await Deno.writeTextFile(
      paths.link,
      JSON.stringify({ OPENAI_API_KEY: key }),
    );
    const status = await runStatus(fixture);
    const report = status.report;
    assertPaths(report, paths);
    assertLocked(report);
    assertRecipientsStore(report);
    assert.equal(report.ramDir.exists, false);
    assert.equal(report.link.status, "plaintext-file");
    assert.equal(report.link.target, null);
    assert.deepEqual(codes(report), ["plaintext-auth-json"]);
    assert.equal(report.warnings[0].path, paths.link);
    assert.ok(report.warnings[0].message.includes(paths.link));
    assertAbsent(status, [key]);
    assert.ok(Deno.lstatSync(paths.link).isFile, "status moved the file");
  }),
);

Deno.test(
  "status warning: auth.json.bak",
  withFixture(async (fixture, paths) => {
    await fixture.writeStore(knownLogin(fixture).auth);
    await unlock(fixture);
    const copy = join(paths.codexHome, "auth.json.bak");
    const key = distinctive("sk-backup");
    await Deno.writeTextFile(copy, JSON.stringify({ OPENAI_API_KEY: key }));
    const status = await runStatus(fixture);
    const report = status.report;
    assertPaths(report, paths);
    assertUnlocked(report, paths);
    assert.equal(report.session.unsavedChanges, false);
    assert.equal(report.login?.kind, "chatgpt");
    assert.deepEqual(codes(report), ["stray-auth-copy"]);
    assert.equal(report.warnings[0].path, copy);
    assert.ok(report.warnings[0].message.includes(copy));
    assertAbsent(status, [key]);
  }),
);

Deno.test(
  "status warning: CODEX_API_KEY and CODEX_ACCESS_TOKEN set",
  withFixture(async (fixture, paths) => {
    await fixture.writeStore(knownLogin(fixture).auth);
    const apiKey = distinctive("env-api-key");
    const accessToken = distinctive("env-access-token");
    const env = { CODEX_API_KEY: apiKey, CODEX_ACCESS_TOKEN: accessToken };
    for (const setup of ["locked", "unlocked"]) {
      if (setup === "unlocked") await unlock(fixture);
      const status = await runStatus(fixture, env);
      const report = status.report;
      assertPaths(report, paths);
      assert.equal(report.state, setup);
      assert.deepEqual(codes(report), ["env-credentials", "env-credentials"]);
      const [first, second] = report.warnings;
      assert.ok(first.message.includes("CODEX_API_KEY"), first.message);
      assert.ok(!first.message.includes("CODEX_ACCESS_TOKEN"), first.message);
      assert.ok(second.message.includes("CODEX_ACCESS_TOKEN"), second.message);
      assert.ok(!second.message.includes("CODEX_API_KEY"), second.message);
      assert.ok(!("path" in first), "env-credentials warning has a path");
      assert.ok(!("path" in second), "env-credentials warning has a path");
      assertAbsent(status, [apiKey, accessToken]);
    }
    // An empty value counts as unset.
    const empty = await runStatus(fixture, {
      CODEX_API_KEY: "",
      CODEX_ACCESS_TOKEN: "",
    });
    assert.deepEqual(empty.report.warnings, []);
  }),
);

Deno.test(
  'status warning: cli_auth_credentials_store = "keyring"',
  withFixture(async (fixture, paths) => {
    await fixture.writeStore(knownLogin(fixture).auth);
    const config = join(paths.codexHome, "config.toml");
    // Top-level keys must come before the first table.
    await Deno.writeTextFile(
      config,
      `cli_auth_credentials_store = "keyring"\n${CODEX_TEST_CONFIG}`,
    );
    const { report } = await runStatus(fixture);
    assertPaths(report, paths);
    assertLocked(report);
    assertRecipientsStore(report);
    assertNoSessionFiles(report);
    assert.deepEqual(codes(report), ["credentials-store-not-file"]);
    assert.equal(report.warnings[0].path, config);
    assert.ok(report.warnings[0].message.includes('"keyring"'));
    assert.ok(report.warnings[0].message.includes(config));
  }),
);

Deno.test(
  "status warning: RAM directory removed after unlock",
  withFixture(async (fixture, paths) => {
    await fixture.writeStore(knownLogin(fixture).auth);
    await unlock(fixture);
    await Deno.remove(paths.ramDir, { recursive: true });
    const { report, fields } = await runStatus(fixture);
    assertPaths(report, paths);
    assertLocked(report);
    assertRecipientsStore(report);
    assert.equal(report.ramDir.exists, false);
    assert.equal(report.ramDir.filesystem, null);
    assert.equal(report.link.status, "dangling");
    assert.equal(report.link.target, paths.ramCopy);
    assert.deepEqual(codes(report), ["ram-dir-missing"]);
    assert.equal(report.warnings[0].path, paths.ramDir);
    assert.ok(report.warnings[0].message.includes(paths.ramDir));
    assert.equal(fields.get("RAM directory exists"), "no");
    // The status neither recreated the RAM directory nor touched the link.
    assert.ok(!pathExists(paths.ramDir));
    assert.equal(Deno.readLinkSync(paths.link), paths.ramCopy);
  }),
);

Deno.test(
  "status warning: .credentials.json",
  withFixture(async (fixture, paths) => {
    await fixture.writeStore(knownLogin(fixture).auth);
    const credentials = join(paths.codexHome, ".credentials.json");
    const secret = distinctive("mcp-token");
    await Deno.writeTextFile(credentials, JSON.stringify({ token: secret }));
    const status = await runStatus(fixture);
    const report = status.report;
    assertPaths(report, paths);
    assertLocked(report);
    assertNoSessionFiles(report);
    assert.deepEqual(codes(report), ["mcp-credentials-plaintext"]);
    assert.equal(report.warnings[0].path, credentials);
    assert.ok(report.warnings[0].message.includes(credentials));
    assertAbsent(status, [secret]);
  }),
);

Deno.test(
  "status warning: shell_snapshots/x.sh",
  withFixture(async (fixture, paths) => {
    await fixture.writeStore(knownLogin(fixture).auth);
    await unlock(fixture);
    const snapshots = join(paths.codexHome, "shell_snapshots");
    await Deno.mkdir(snapshots);
    const secret = distinctive("exported");
    await Deno.writeTextFile(
      join(snapshots, "x.sh"),
      `export SECRET_VALUE=${secret}\n`,
    );
    const status = await runStatus(fixture);
    const report = status.report;
    assertPaths(report, paths);
    assertUnlocked(report, paths);
    assert.deepEqual(codes(report), ["shell-snapshots"]);
    assert.equal(report.warnings[0].path, snapshots);
    assert.ok(
      report.warnings[0].message.includes(
        `1 codex shell snapshot file in ${snapshots}`,
      ),
      report.warnings[0].message,
    );
    assertAbsent(status, [secret]);
  }),
);

Deno.test(
  "status warning: RAM copy changed after unlock",
  withFixture(async (fixture, paths) => {
    await fixture.writeStore(knownLogin(fixture).auth);
    await unlock(fixture);
    // Saved as codex saves: a temp file next to the RAM copy, then rename.
    const changed = chatGptLogin(fixture, {
      email: "changed@example.com",
      plan: "team",
      expiresIn: 7200,
      lastRefresh: new Date(Math.floor(Date.now() / 1000) * 1000)
        .toISOString(),
      refreshToken: `rt-changed-${fixture.canary}`,
    });
    const temp = join(paths.ramDir, ".auth-status-test.tmp");
    await Deno.writeTextFile(temp, JSON.stringify(changed.auth), {
      mode: 0o600,
    });
    await Deno.rename(temp, paths.ramCopy);

    const { report, fields } = await runStatus(fixture);
    assertPaths(report, paths);
    assertUnlocked(report, paths);
    assert.equal(report.session.unsavedChanges, true);
    assert.equal(fields.get("unsaved changes"), "yes");
    assert.deepEqual(report.login, {
      kind: "chatgpt",
      email: changed.email,
      plan: changed.plan,
      accessTokenExpiresAt: new Date(changed.exp * 1000).toISOString(),
      lastRefresh: changed.lastRefresh,
    });
    assert.deepEqual(codes(report), ["unsaved-changes"]);
    assert.equal(report.warnings[0].path, paths.ramCopy);
    assert.ok(report.warnings[0].message.includes(paths.ramCopy));
  }),
);

Deno.test(
  "status: garbage store",
  withFixture(async (fixture, paths) => {
    await Deno.writeFile(
      paths.store,
      crypto.getRandomValues(new Uint8Array(4096)),
    );
    const { report, fields } = await runStatus(fixture);
    assertPaths(report, paths);
    assertLocked(report);
    assertNoSessionFiles(report);
    assert.deepEqual(report.store, {
      path: paths.store,
      exists: true,
      encryption: null,
      armored: null,
    });
    assert.equal(fields.get("store exists"), "yes");
    assert.equal(fields.get("store armored"), "unknown");
    assert.deepEqual(codes(report), ["store-not-age"]);
    assert.equal(report.warnings[0].path, paths.store);
    assert.ok(report.warnings[0].message.includes(paths.store));
    // The suggested command names this codex home, so it acts on this login
    // when pasted into another shell.
    assert.ok(
      report.warnings[0].message.includes(
        `secure-codex --real-codex-home ${paths.codexHome} --identity ${fixture.identity} -- login`,
      ),
      report.warnings[0].message,
    );
  }),
);

Deno.test(
  "status: passphrase store made by age -p",
  withFixture(async (fixture, paths) => {
    // age reads the passphrase from the terminal: `script` gives it a pty
    // and passes the test's stdin to it. The encrypted text is not a login, so no
    // plaintext of a login touches the disk.
    const input = join(fixture.dir, "not-a-login.txt");
    await Deno.writeTextFile(input, "not a login\n");
    const encrypted = await runCommand("script", [
      "-qec",
      `age -p -o '${paths.store}' '${input}'`,
      "/dev/null",
    ], { stdin: "status-test-passphrase\nstatus-test-passphrase\n" });
    assert.equal(encrypted.code, 0, encrypted.stdout + encrypted.stderr);
    const header = new TextDecoder().decode(
      Deno.readFileSync(paths.store).subarray(0, 64),
    );
    assert.match(header, /^age-encryption\.org\/v1\n-> scrypt /);

    const { report, fields } = await runStatus(fixture);
    assertPaths(report, paths);
    assertLocked(report);
    assertNoSessionFiles(report);
    assert.deepEqual(report.store, {
      path: paths.store,
      exists: true,
      encryption: "passphrase",
      armored: false,
    });
    assert.equal(fields.get("store encryption"), "passphrase");
    assert.deepEqual(report.warnings, []);
  }),
);

Deno.test(
  "status: armored store and missing store",
  withFixture(async (fixture, paths) => {
    const missing = await runStatus(fixture);
    assertLocked(missing.report);
    assert.deepEqual(missing.report.store, {
      path: paths.store,
      exists: false,
      encryption: null,
      armored: null,
    });
    assert.equal(missing.fields.get("store exists"), "no");

    const armored = await runCommand("age", [
      "-e",
      "-a",
      "-r",
      fixture.recipient,
      "-o",
      paths.store,
    ], { stdin: JSON.stringify(knownLogin(fixture).auth) });
    assert.equal(armored.code, 0, armored.stderr);
    const { report, fields } = await runStatus(fixture);
    assertLocked(report);
    assert.deepEqual(report.store, {
      path: paths.store,
      exists: true,
      encryption: "recipients",
      armored: true,
    });
    assert.equal(fields.get("store armored"), "yes");
  }),
);

Deno.test(
  "status prints no token material",
  withFixture(async (fixture, paths) => {
    const login = knownLogin(fixture, `acct-${crypto.randomUUID()}`);
    await fixture.writeStore(login.auth);
    await unlock(fixture);
    const status = await runStatus(fixture);
    assertUnlocked(status.report, paths);
    assert.equal(status.report.login?.email, login.email);

    const secrets = [
      login.tokens.id_token,
      login.tokens.access_token,
      login.tokens.refresh_token,
      login.tokens.account_id,
    ];
    const windows = new Set<string>();
    for (const secret of secrets) {
      assert.ok(secret.length >= 12, "a token is shorter than the window");
      for (let start = 0; start + 12 <= secret.length; start++) {
        windows.add(secret.slice(start, start + 12));
      }
    }
    assertAbsent(status, [...windows, fixture.canary]);
  }),
);

Deno.test(
  "status changes nothing, locked or unlocked",
  withFixture(async (fixture, paths) => {
    await fixture.writeStore(knownLogin(fixture).auth);
    // runStatus compares lstat and bytes of everything in the codex home,
    // the runtime directory and TMPDIR before and after each status. This
    // test runs it on three setups and checks what a status must not create.
    const locked = await runStatus(fixture);
    assertLocked(locked.report);
    assert.deepEqual([...Deno.readDirSync(fixture.runtimeDir)], []);
    assert.ok(!pathExists(paths.link));

    await unlock(fixture);
    const unlocked = await runStatus(fixture);
    assertUnlocked(unlocked.report, paths);

    await Deno.remove(paths.ramDir, { recursive: true });
    const dangling = await runStatus(fixture);
    assert.equal(dangling.report.link.status, "dangling");
    assert.deepEqual(
      [...Deno.readDirSync(join(fixture.runtimeDir, "secure-codex"))],
      [],
    );
  }),
);
