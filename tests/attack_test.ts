/**
 * Adversarial tests: hostile or broken inputs that a careful user should
 * expect secure-codex to refuse cleanly. Every test runs the real program
 * (scripts/secure-codex) with real age on a real tmpfs, through the fixture
 * from tests/helpers.ts.
 *
 * - Another local user pre-creates the `--ram-dir` path in a shared sticky
 *   tmpfs (like /tmp): a directory, a symlink or a regular file it owns.
 * - The store, identity and recipients files are a symlink to another user's
 *   file, a directory, a FIFO or larger than 1 MiB.
 * - Random stores and random decrypted contents, from a seeded PRNG.
 * - `LD_*` variables in the environment.
 *
 * Tests that create a user need real root: inside `unshare -Urm` (how
 * scripts/test runs for other users) the process is uid 0 but cannot add
 * users or chown to them, so those tests are skipped there, with a note.
 *
 * Reproducing a random-input failure: the test prints its seed; run again
 * with `SC_ATTACK_SEED=<seed>` and, to run only some cases,
 * `SC_ATTACK_CASES=<index>,<index>`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { VERIFIED_MARKER } from "../lib/ram_dir.ts";
import {
  createFixture,
  fakeChatGptAuth,
  fakeCodexEnv,
  type Fixture,
  isRoot,
  pathExists,
  ramCopies,
  runCommand,
  type RunResult,
  spawnSecureCodex,
  writeFakeCodex,
} from "./helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const MIB = 1024 * 1024;

/**
 * Real root, not root inside a user namespace: there, files of the real root
 * (such as "/") show up as owned by the overflow uid, not 0.
 */
const CAN_CREATE_USERS = isRoot() && Deno.statSync("/").uid === 0;
const NO_USERS_REASON =
  "needs real root to create a user and chown to it (not root, or inside a user namespace)";
if (!CAN_CREATE_USERS) {
  console.log(
    `attack_test: skipping tests that create a user: ${NO_USERS_REASON}`,
  );
}

// ---------------------------------------------------------------------------
// Shared helpers

/** A throwaway local user playing the attacker. */
interface OtherUser {
  name: string;
  uid: number;
  gid: number;
}

async function createOtherUser(): Promise<OtherUser> {
  const suffix = crypto.randomUUID().slice(0, 8);
  const name = `sc-attacker-${suffix}`;
  const added = await runCommand("useradd", [
    "--system",
    "--no-create-home",
    "--shell",
    "/usr/sbin/nologin",
    name,
  ]);
  if (added.code !== 0) throw new Error(`useradd failed: ${added.stderr}`);
  const uid = Number((await runCommand("id", ["-u", name])).stdout.trim());
  const gid = Number((await runCommand("id", ["-g", name])).stdout.trim());
  assert.ok(uid > 0, `invalid uid for ${name}: ${uid}`);
  assert.ok(gid > 0, `invalid gid for ${name}: ${gid}`);
  return { name, uid, gid };
}

async function removeOtherUser(user: OtherUser | null): Promise<void> {
  if (user === null) return;
  const removed = await runCommand("userdel", [user.name]);
  if (removed.code !== 0) {
    console.log(`attack_test: userdel ${user.name} failed: ${removed.stderr}`);
  }
}

/** Gives a path to the user without following a final symlink (`chown -h`). */
async function chownTo(user: OtherUser, path: string): Promise<void> {
  const result = await runCommand("chown", [
    "-h",
    `${user.uid}:${user.gid}`,
    path,
  ]);
  if (result.code !== 0) throw new Error(`chown failed: ${result.stderr}`);
}

/** One run with a deadline: killed with SIGKILL when it takes too long. */
interface TimedResult extends RunResult {
  elapsedMs: number;
  timedOut: boolean;
}

/**
 * Reads a stream to its end, or until `stop` resolves: a child that secure-codex
 * started (age) keeps the pipe open after secure-codex itself was killed.
 */
async function readUntil(
  stream: ReadableStream<Uint8Array>,
  stop: Promise<void>,
): Promise<string> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  const stopped = stop.then(() => null);
  for (;;) {
    const next = await Promise.race([reader.read(), stopped]);
    if (next === null) {
      await reader.cancel().catch(() => {});
      break;
    }
    if (next.done) break;
    chunks.push(next.value);
  }
  return decoder.decode(concat(...chunks));
}

/**
 * Runs secure-codex with a deadline. On timeout it is killed and `onTimeout`
 * runs, to free whatever it left blocked; its output is then read for at most
 * two more seconds.
 */
async function runTimed(
  fixture: Fixture,
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 20_000,
  onTimeout: () => Promise<void> = () => Promise.resolve(),
): Promise<TimedResult> {
  const started = performance.now();
  const child = spawnSecureCodex(fixture, args, env);
  let timedOut = false;
  let stopReading = () => {};
  const stop = new Promise<void>((resolve) => stopReading = resolve);
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // It exited in the meantime.
    }
    void onTimeout().finally(() => setTimeout(stopReading, 2_000));
  }, timeoutMs);
  try {
    const [stdout, stderr, status] = await Promise.all([
      readUntil(child.stdout, stop),
      readUntil(child.stderr, stop),
      child.status,
    ]);
    return {
      code: status.code,
      signal: status.signal,
      stdout,
      stderr,
      elapsedMs: performance.now() - started,
      timedOut,
    };
  } finally {
    clearTimeout(timer);
    stopReading();
  }
}

/** Formats a result for assertion messages. */
function describeRun(result: RunResult): string {
  return `exit ${result.code}\n--- stdout\n${result.stdout}--- stderr\n${result.stderr}`;
}

/** Lines of a stream, without the empty string after a final newline. */
function linesOf(text: string): string[] {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

/**
 * A line age 1.1.1 prints without its `age: ` prefix, after "stanza ended
 * without a short line". secure-codex relays age's stderr behind its own
 * prefix, so this line too must arrive as `secure-codex: Note: ...`.
 */
const AGE_BETA_NOTE =
  "Note: this might be a file encrypted with an old beta version of age or rage. Use age v1.0.0-beta6 or rage to decrypt it.";

/**
 * Checks what every refusal must look like: only `secure-codex: ` lines on
 * stderr, no internal error, no stack trace, no token. Lines in `tolerate`
 * are let through.
 */
function assertCleanStderr(
  result: RunResult,
  canary: string,
  options: { tolerate?: readonly string[] } = {},
): void {
  const text = describeRun(result);
  for (const line of linesOf(result.stderr)) {
    const ok = line.startsWith("secure-codex: ") ||
      (options.tolerate ?? []).includes(line);
    assert.ok(ok, `stderr line without the prefix: ${line}\n${text}`);
  }
  assert.doesNotMatch(result.stderr, /internal error/, text);
  assert.doesNotMatch(result.stderr, /^\s+at /m, text);
  assert.doesNotMatch(result.stderr, /Uncaught/, text);
  assert.ok(!result.stdout.includes(canary), `canary on stdout\n${text}`);
  assert.ok(!result.stderr.includes(canary), `canary on stderr\n${text}`);
}

/** Finds the stderr line that reports the error about `path`. */
function errorLineFor(result: RunResult, path: string): string {
  const line = linesOf(result.stderr).find((candidate) =>
    candidate.startsWith("secure-codex: ") &&
    !candidate.startsWith("secure-codex: hint: ") &&
    candidate.includes(path)
  );
  assert.ok(line, `no error line names ${path}\n${describeRun(result)}`);
  return line;
}

/** Lists a tree with types, owners, modes, sizes and mtimes, to detect any change in it. */
function treeListing(root: string): string[] {
  const lines: string[] = [];
  const walk = (path: string, relative: string) => {
    const info = Deno.lstatSync(path);
    let kind = "other";
    if (info.isSymlink) kind = `symlink->${Deno.readLinkSync(path)}`;
    else if (info.isDirectory) kind = "dir";
    else if (info.isFile) kind = `file size=${info.size}`;
    const mode = ((info.mode ?? 0) & 0o7777).toString(8);
    lines.push(
      `${relative} ${kind} uid=${info.uid} mode=${mode} mtime=${info.mtime?.getTime()}`,
    );
    if (info.isDirectory) {
      const names = [...Deno.readDirSync(path)].map((entry) => entry.name)
        .sort();
      for (const name of names) walk(join(path, name), `${relative}/${name}`);
    }
  };
  walk(root, ".");
  return lines;
}

// ---------------------------------------------------------------------------
// 1. --ram-dir pre-created by another user in a shared sticky tmpfs

/** An object the attacker leaves at `<shared>/ram`, and the expected error. */
interface RamDirTrap {
  name: string;
  /** Creates the trap, owned by `user`. */
  plant(shared: string, ram: string, user: OtherUser): Promise<void>;
  /** A pattern the error line must match besides the path. */
  problem: RegExp;
}

const RAM_DIR_TRAPS: RamDirTrap[] = [
  {
    name: "a directory it owns, mode 0700",
    async plant(_shared, ram, user) {
      await Deno.mkdir(ram, { mode: 0o700 });
      await Deno.writeTextFile(join(ram, "bait"), "attacker\n");
      await chownTo(user, join(ram, "bait"));
      await chownTo(user, ram);
    },
    problem: /owned by uid \d+/,
  },
  {
    name: "a directory it owns, mode 0777",
    async plant(_shared, ram, user) {
      await Deno.mkdir(ram);
      await Deno.chmod(ram, 0o777);
      await chownTo(user, ram);
    },
    problem: /owned by uid \d+/,
  },
  {
    // The record secure-codex keeps of a verified directory is forged, so the
    // program takes its fast path for already verified directories.
    name: "a directory it owns with a forged filesystem record",
    async plant(_shared, ram, user) {
      await Deno.mkdir(ram, { mode: 0o700 });
      await chownTo(user, ram);
      const info = Deno.lstatSync(ram);
      const marker = join(ram, VERIFIED_MARKER);
      await Deno.writeTextFile(marker, `${info.dev}:${info.ino}`);
      await chownTo(user, marker);
    },
    problem: /owned by uid \d+/,
  },
  {
    name: "a symlink to its own directory",
    async plant(shared, ram, user) {
      const own = join(shared, "attacker-dir");
      await Deno.mkdir(own, { mode: 0o700 });
      await chownTo(user, own);
      await Deno.symlink(own, ram);
      await chownTo(user, ram);
    },
    problem: /symlink/,
  },
  {
    name: "a dangling symlink into its own directory",
    async plant(shared, ram, user) {
      const own = join(shared, "attacker-dir");
      await Deno.mkdir(own);
      await Deno.chmod(own, 0o777);
      await chownTo(user, own);
      await Deno.symlink(join(own, "not-yet"), ram);
      await chownTo(user, ram);
    },
    problem: /symlink/,
  },
  {
    name: "a regular file",
    async plant(_shared, ram, user) {
      await Deno.writeTextFile(ram, "attacker\n");
      await chownTo(user, ram);
    },
    problem: /not a directory/,
  },
];

for (const trap of RAM_DIR_TRAPS) {
  Deno.test({
    name: `foreign --ram-dir: ${trap.name} (needs real root)`,
    ignore: !CAN_CREATE_USERS,
    fn: async () => {
      const fixture = await createFixture();
      const shared = join(fixture.dir, "shared-tmp");
      let mounted = false;
      let user: OtherUser | null = null;
      try {
        // A tmpfs shared by everyone, like /tmp: mode 1777 and owned by root.
        await Deno.mkdir(shared);
        const mount = await runCommand("mount", [
          "-t",
          "tmpfs",
          "-o",
          "mode=1777,size=1m",
          "tmpfs",
          shared,
        ]);
        assert.equal(mount.code, 0, mount.stderr);
        mounted = true;
        user = await createOtherUser();
        const ram = join(shared, "ram");
        await trap.plant(shared, ram, user);
        await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
        const storeBefore = await Deno.readFile(fixture.store);
        const before = treeListing(shared);

        const result = await runTimed(fixture, [
          "--ram-dir",
          ram,
          "--",
          "login",
          "status",
        ]);
        const text = describeRun(result);

        assert.equal(result.timedOut, false, `timed out\n${text}`);
        assert.equal(result.code, 1, text);
        assertCleanStderr(result, fixture.canary);
        const error = errorLineFor(result, ram);
        assert.match(error, trap.problem, text);
        assert.match(
          result.stderr,
          /^secure-codex: hint: .*(XDG_RUNTIME_DIR|\/run\/user|loginctl enable-linger|tmpfs you own)/m,
          `no hint names a safe alternative\n${text}`,
        );
        // Any file the program created, wrote or removed shows up here.
        assert.deepEqual(treeListing(shared), before);
        assert.ok(
          !pathExists(join(fixture.codexHome, "auth.json")),
          "an auth.json link was created",
        );
        assert.deepEqual(ramCopies(fixture), []);
        assert.deepEqual(await Deno.readFile(fixture.store), storeBefore);
      } finally {
        if (mounted) await runCommand("umount", ["-l", shared]);
        await removeOtherUser(user);
        await fixture.dispose();
      }
    },
  });
}

// ---------------------------------------------------------------------------
// 2. Store, identity and recipients files that are not plain files of ours

type Role = "store" | "identity file" | "recipients file";

const ROLE_OPTION: Readonly<Record<Role, string>> = {
  store: "--auth-enc",
  "identity file": "--identity",
  "recipients file": "--recipients-file",
};

/**
 * Writes the content a role's file would have if it were good: a working
 * store, a copy of the fixture identity, the fixture recipient. A program that
 * skipped the check would then succeed, and the test would see it.
 */
async function writeGoodContent(
  fixture: Fixture,
  role: Role,
  path: string,
  padTo?: number,
): Promise<void> {
  if (role === "store") {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }), path);
    if (padTo !== undefined) {
      // Trailing garbage after the age payload: only the size matters here.
      const bytes = await Deno.readFile(path);
      const padded = new Uint8Array(padTo);
      padded.set(bytes);
      padded.fill(0x61, bytes.length);
      await Deno.writeFile(path, padded);
    }
    return;
  }
  let text = role === "identity file"
    ? await Deno.readTextFile(fixture.identity)
    : `${fixture.recipient}\n`;
  if (padTo !== undefined) text = padWithComments(text, padTo);
  await Deno.writeTextFile(path, text, { mode: 0o600 });
}

/** Pads an age identity or recipients file with comment lines to exactly `size` bytes. */
function padWithComments(text: string, size: number): string {
  const line = `# padding ${"x".repeat(52)}\n`;
  let length = encoder.encode(text).length;
  const count = Math.floor((size - length) / line.length);
  length += count * line.length;
  let padded = text + line.repeat(count);
  const missing = size - length;
  // A last, shorter comment line ("#", filler, newline), or a blank line.
  if (missing === 1) padded += "\n";
  else if (missing > 1) padded += `#${"x".repeat(missing - 2)}\n`;
  assert.equal(encoder.encode(padded).length, size);
  return padded;
}

/** A way a role's file can be wrong, and the expected error. */
interface BadFile {
  name: string;
  needsUser: boolean;
  /** Creates the bad file at `path`; `user` is set when `needsUser`. */
  make(
    fixture: Fixture,
    role: Role,
    path: string,
    user: OtherUser | null,
  ): Promise<void>;
  /** A pattern the error line must match besides the role and the path. */
  problem: RegExp;
}

const BAD_FILES: BadFile[] = [
  {
    name: "symlink to a foreign file",
    needsUser: true,
    async make(fixture, role, path, user) {
      const theirs = join(fixture.dir, `theirs-${role.replace(" ", "-")}`);
      await writeGoodContent(fixture, role, theirs);
      await chownTo(user!, theirs);
      await Deno.symlink(theirs, path);
    },
    problem: /owned by uid \d+/,
  },
  {
    name: "directory",
    needsUser: false,
    async make(_fixture, _role, path) {
      await Deno.mkdir(path, { mode: 0o700 });
    },
    problem: /directory/,
  },
  {
    name: "FIFO",
    needsUser: false,
    async make(_fixture, _role, path) {
      const made = await runCommand("mkfifo", ["-m", "600", path]);
      assert.equal(made.code, 0, made.stderr);
    },
    problem: /not a regular file|fifo/i,
  },
  {
    name: "over 1 MiB",
    needsUser: false,
    async make(fixture, role, path) {
      await writeGoodContent(fixture, role, path, MIB + 1);
    },
    problem: /too large|larger/,
  },
];

/** Frees an age or secure-codex process left blocked on a FIFO after a timeout. */
async function unblockFifo(path: string): Promise<void> {
  for (const script of [`[ -p "$1" ] && : > "$1"`, `[ -p "$1" ] && : < "$1"`]) {
    await runCommand("timeout", [
      "-s",
      "KILL",
      "2",
      "sh",
      "-c",
      script,
      "sh",
      path,
    ]);
  }
}

/** Describes a path's type, owner and content hash, to detect a change. */
async function fileState(path: string): Promise<string> {
  const info = Deno.lstatSync(path);
  if (info.isSymlink) {
    return `symlink->${Deno.readLinkSync(path)} ${await fileState(
      Deno.realPathSync(path),
    )}`;
  }
  if (info.isFile) {
    const digest = await crypto.subtle.digest(
      "SHA-256",
      await Deno.readFile(path),
    );
    return `file uid=${info.uid} ${hex(new Uint8Array(digest))}`;
  }
  if (info.isDirectory) {
    return `dir entries=${[...Deno.readDirSync(path)].length}`;
  }
  return `other fifo=${info.isFifo} uid=${info.uid}`;
}

for (const role of ["store", "identity file", "recipients file"] as Role[]) {
  for (const bad of BAD_FILES) {
    const needsRealRoot = bad.needsUser ? " (needs real root)" : "";
    Deno.test({
      name: `${role}: ${bad.name}${needsRealRoot}`,
      ignore: bad.needsUser && !CAN_CREATE_USERS,
      fn: async () => {
        const fixture = await createFixture();
        let user: OtherUser | null = null;
        const path = join(fixture.dir, `bad-${role.replace(" ", "-")}`);
        try {
          if (bad.needsUser) user = await createOtherUser();
          await fixture.writeStore(
            fakeChatGptAuth({ canary: fixture.canary }),
          );
          await bad.make(fixture, role, path, user);
          const storeBefore = await Deno.readFile(fixture.store);
          const badBefore = await fileState(path);

          const args = [
            `${ROLE_OPTION[role]}=${path}`,
            "--",
            "login",
            "status",
          ];
          // A program that opened the FIFO (or let age open it) blocks until
          // a writer comes; the timeout then opens it from the other side.
          const result = await runTimed(
            fixture,
            args,
            {},
            10_000,
            () => unblockFifo(path),
          );
          const text = describeRun(result);

          assert.equal(result.timedOut, false, `hung, killed\n${text}`);
          assert.ok(
            result.elapsedMs < 5_000,
            `took ${Math.round(result.elapsedMs)} ms\n${text}`,
          );
          assert.equal(result.code, 1, text);
          assertCleanStderr(result, fixture.canary);
          const error = errorLineFor(result, path);
          assert.ok(
            error.includes(role),
            `the error does not name the ${role}: ${error}`,
          );
          assert.match(error, bad.problem, text);
          assert.equal(await fileState(path), badBefore, `the ${role} changed`);
          assert.deepEqual(await Deno.readFile(fixture.store), storeBefore);
          assert.ok(
            !pathExists(join(fixture.codexHome, "auth.json")),
            "an auth.json link was created",
          );
          assert.deepEqual(ramCopies(fixture), []);
        } finally {
          await removeOtherUser(user);
          await fixture.dispose();
        }
      },
    });
  }
}

Deno.test("identity file: exactly 1 MiB accepted", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const path = join(fixture.dir, "identity-1mib.txt");
    await writeGoodContent(fixture, "identity file", path, MIB);
    assert.equal(Deno.statSync(path).size, MIB);
    const result = await runTimed(fixture, [
      `--identity=${path}`,
      "--",
      "login",
      "status",
    ]);
    assert.equal(result.code, 0, describeRun(result));
    assert.match(result.stderr, /Logged in using ChatGPT/);
  } finally {
    await fixture.dispose();
  }
});

// ---------------------------------------------------------------------------
// 3. Random stores and random decrypted contents

/** A mulberry32 generator: small, fast and seedable, which is all test inputs need. */
class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** Returns a uniform 32-bit unsigned integer. */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Returns an integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.next() / 0x1_0000_0000) * n);
  }

  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

/** Creates the generator of one case, so a case can be rebuilt from the seed and its index alone. */
function caseRng(seed: number, index: number): Rng {
  return new Rng(
    Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35),
  );
}

function envNumber(name: string): number | null {
  const value = Deno.env.get(name);
  if (value === undefined || value === "") return null;
  assert.match(value, /^\d+$/, `${name} must be a decimal number`);
  return Number(value);
}

const SEED = envNumber("SC_ATTACK_SEED") ??
  (Math.random() * 0x1_0000_0000) >>> 0;
const ONLY_CASES =
  Deno.env.get("SC_ATTACK_CASES")?.split(",").filter((part) =>
    part.trim() !== ""
  ).map(Number) ?? null;
const CASE_COUNT = 1000;
const CONCURRENCY = 4;

function hex(bytes: Uint8Array): string {
  return Array.from(bytes).map((byte) => byte.toString(16).padStart(2, "0"))
    .join("");
}

/** Encodes bytes as unpadded standard base64, as age headers use it. */
function base64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/=+$/, "");
}

function concat(...parts: (Uint8Array | string)[]): Uint8Array {
  const chunks = parts.map((part) =>
    typeof part === "string" ? encoder.encode(part) : part
  );
  const out = new Uint8Array(
    chunks.reduce((sum, chunk) => sum + chunk.length, 0),
  );
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

const AGE_INTRO = "age-encryption.org/v1\n";

/** Wraps bytes the way `age --armor` does, with random damage. */
function armor(rng: Rng, body: Uint8Array): Uint8Array {
  const encoded = btoa(String.fromCharCode(...body));
  const width = rng.chance(0.1) ? 1 + rng.int(100) : 64;
  const lines = encoded.match(new RegExp(`.{1,${width}}`, "g")) ?? [];
  if (lines.length > 0 && rng.chance(0.3)) {
    // A character outside base64 inside the body.
    const line = rng.int(lines.length);
    const at = rng.int(lines[line].length + 1);
    const bad = rng.pick(["!", " ", "-", "\u00e9", "="]);
    lines[line] = lines[line].slice(0, at) + bad + lines[line].slice(at);
  }
  if (rng.chance(0.1)) lines.splice(rng.int(lines.length + 1), 0, "");
  const newline = rng.chance(0.2) ? "\r\n" : "\n";
  let text = (rng.chance(0.2) ? " \n" : "") +
    "-----BEGIN AGE ENCRYPTED FILE-----" + newline + lines.join(newline) +
    newline;
  if (!rng.chance(0.2)) text += "-----END AGE ENCRYPTED FILE-----" + newline;
  return encoder.encode(text);
}

/** One random store: what it is, for messages, and its bytes. */
interface StoreCase {
  index: number;
  kind: string;
  bytes: Uint8Array;
}

/**
 * Builds a random store. `real` is a genuine store of the fixture (a valid
 * login) and the base for mutations. Its bytes differ per run, so for those
 * cases the seed reproduces only the mutation positions.
 */
function randomStore(rng: Rng, index: number, real: Uint8Array): StoreCase {
  const length = (max: number) => rng.int(max + 1);
  switch (rng.int(7)) {
    case 0:
      return { index, kind: "random bytes", bytes: rng.bytes(length(4096)) };
    case 1:
      return {
        index,
        kind: "age intro, X25519 stanza start, random bytes",
        bytes: concat(AGE_INTRO, "-> X25519 ", rng.bytes(length(4000))),
      };
    case 2: {
      // A well-formed header with random keys: age gets as far as trying the identity.
      const stanzas: string[] = [];
      for (let i = 0, n = 1 + rng.int(3); i < n; i++) {
        const type = rng.pick([
          "X25519",
          "X25519",
          "scrypt",
          "ssh-ed25519",
          "x",
        ]);
        const args = type === "scrypt"
          ? [base64(rng.bytes(16)), String(rng.pick([10, 18, 22, 30, 64]))]
          : [base64(rng.bytes(32))];
        stanzas.push(
          `-> ${type} ${args.join(" ")}\n${base64(rng.bytes(32))}\n`,
        );
      }
      return {
        index,
        kind: "well-formed age header, random keys and payload",
        bytes: concat(
          AGE_INTRO,
          stanzas.join(""),
          `--- ${base64(rng.bytes(32))}\n`,
          rng.bytes(length(3000)),
        ),
      };
    }
    case 3:
      return {
        index,
        kind: "armored random bytes",
        bytes: armor(rng, rng.bytes(length(3000))),
      };
    case 4:
      return {
        index,
        kind: "armored age intro and random bytes",
        bytes: armor(
          rng,
          concat(AGE_INTRO, "-> X25519 ", rng.bytes(length(3000))),
        ),
      };
    case 5: {
      const bytes = real.slice();
      const kinds: string[] = [];
      let mutated: Uint8Array = bytes;
      for (let i = 0, n = 1 + rng.int(3); i < n; i++) {
        const at = rng.int(mutated.length);
        switch (rng.int(4)) {
          case 0:
            mutated[at] ^= 1 + rng.int(255);
            kinds.push(`flip@${at}`);
            break;
          case 1:
            mutated = mutated.slice(0, at);
            kinds.push(`truncate@${at}`);
            break;
          case 2:
            mutated = concat(
              mutated.slice(0, at),
              rng.bytes(1 + rng.int(64)),
              mutated.slice(at),
            );
            kinds.push(`insert@${at}`);
            break;
          default:
            mutated = concat(
              mutated.slice(0, at),
              mutated.slice(at + 1 + rng.int(64)),
            );
            kinds.push(`delete@${at}`);
        }
      }
      if (equalBytes(mutated, real)) mutated = concat(real, "x");
      return { index, kind: `real store, ${kinds.join(" ")}`, bytes: mutated };
    }
    default: {
      // The real header with a random payload: the header MAC checks out
      // only if age reaches it with the right key, then the payload fails.
      const end = findHeaderEnd(real);
      return {
        index,
        kind: "real header, random payload",
        bytes: concat(real.slice(0, end), rng.bytes(length(2000))),
      };
    }
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** Returns the index just past the `--- <mac>\n` line of an age header. */
function findHeaderEnd(bytes: Uint8Array): number {
  const text = decoder.decode(bytes.subarray(0, Math.min(bytes.length, 4096)));
  const start = text.indexOf("\n--- ");
  assert.ok(start >= 0, "no header end in the real store");
  return encoder.encode(text.slice(0, text.indexOf("\n", start + 1) + 1))
    .length;
}

const KEYS = [
  "tokens",
  "OPENAI_API_KEY",
  "id_token",
  "access_token",
  "refresh_token",
  "account_id",
  "last_refresh",
  "auth_mode",
  "__proto__",
  "constructor",
  "",
  "x",
];

function randomString(rng: Rng): string {
  switch (rng.int(5)) {
    case 0:
      return "";
    case 1:
      return base64(rng.bytes(rng.int(40)));
    case 2:
      // Any code unit, lone surrogates included: JSON.stringify escapes them.
      return String.fromCharCode(
        ...Array.from({ length: rng.int(12) }, () => rng.int(0x10000)),
      );
    case 3:
      return rng.pick(["null", "true", "0", " ", "\u0000", "\ufeff", "sk-"]);
    default:
      return rng.pick(KEYS);
  }
}

function randomJson(rng: Rng, depth = 0): unknown {
  const scalarOnly = depth >= 4;
  switch (rng.int(scalarOnly ? 5 : 8)) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([
        0,
        -0,
        1,
        -1,
        1e308,
        -1e-308,
        2 ** 53 + 1,
        rng.next() / 7,
      ]);
    case 3:
    case 4:
      return randomString(rng);
    case 5:
      return Array.from(
        { length: rng.int(5) },
        () => randomJson(rng, depth + 1),
      );
    default: {
      const object: Record<string, unknown> = {};
      for (let i = 0, n = rng.int(6); i < n; i++) {
        Object.defineProperty(object, rng.pick(KEYS), {
          value: randomJson(rng, depth + 1),
          enumerable: true,
          configurable: true,
          writable: true,
        });
      }
      return object;
    }
  }
}

const WRONG_VALUES: readonly unknown[] = [
  undefined,
  null,
  "",
  0,
  1,
  true,
  false,
  [],
  ["a"],
  {},
  { token: "a" },
];

/** Builds a near miss of the real format: a valid login with one or two fields changed, often to a wrong type. */
function nearMiss(rng: Rng, canary: string): unknown {
  const auth = fakeChatGptAuth({ canary }) as Record<string, unknown>;
  const tokens = auth.tokens as Record<string, unknown>;
  const set = (
    target: Record<string, unknown>,
    key: string,
    value: unknown,
  ) => {
    if (value === undefined) delete target[key];
    // defineProperty makes "__proto__" an own property, as JSON.parse does.
    else {
      Object.defineProperty(target, key, {
        value,
        enumerable: true,
        configurable: true,
        writable: true,
      });
    }
  };
  for (let i = 0, n = 1 + rng.int(2); i < n; i++) {
    switch (rng.int(6)) {
      case 0:
        set(auth, "tokens", rng.pick(WRONG_VALUES));
        break;
      case 1:
        set(
          tokens,
          rng.pick(["id_token", "access_token", "refresh_token"]),
          rng.pick(WRONG_VALUES),
        );
        break;
      case 2:
        set(
          auth,
          "OPENAI_API_KEY",
          rng.pick([...WRONG_VALUES, `sk-${canary}`]),
        );
        break;
      case 3:
        set(
          auth,
          "last_refresh",
          rng.pick([...WRONG_VALUES, "not a date", "2999-01-01T00:00:00Z"]),
        );
        break;
      case 4:
        set(auth, rng.pick(KEYS), randomJson(rng, 2));
        break;
      default:
        set(tokens, rng.pick(KEYS), randomJson(rng, 2));
    }
  }
  return auth;
}

/** Builds a plaintext that is not quite JSON, or JSON in a surprising shape. */
function rawPlaintext(rng: Rng, canary: string): Uint8Array {
  const good = JSON.stringify(fakeChatGptAuth({ canary }));
  const api = `"OPENAI_API_KEY":"sk-${canary}"`;
  switch (rng.int(13)) {
    case 0:
      return new Uint8Array(0);
    case 1:
      return encoder.encode(
        rng.pick([" ", "\n", "\t\r\n", "null", "[]", "{}"]),
      );
    case 2:
      return encoder.encode(good.slice(0, rng.int(good.length)));
    case 3:
      return encoder.encode(`${good},`);
    case 4:
      return encoder.encode(`\ufeff${good}`);
    case 5:
      return concat(
        good.slice(0, 10),
        new Uint8Array([0xff, 0xfe]),
        good.slice(10),
      );
    case 6:
      return encoder.encode(`{${api},"OPENAI_API_KEY":null}`);
    case 7:
      return encoder.encode(`{"OPENAI_API_KEY":null,${api}}`);
    case 8:
      return encoder.encode(`{"__proto__":{${api}}}`);
    case 9:
      return encoder.encode(`${"[".repeat(20_000)}${"]".repeat(20_000)}`);
    case 10: {
      const utf16 = new Uint8Array(good.length * 2);
      for (let i = 0; i < good.length; i++) utf16[2 * i] = good.charCodeAt(i);
      return utf16;
    }
    case 11:
      return encoder.encode(JSON.stringify(good));
    default:
      return concat(good, "\u0000");
  }
}

/** The largest plaintext accepted (lib/age.ts MAX_AGE_OUTPUT_BYTES). */
const MAX_PLAINTEXT = MIB;
/** The largest store accepted (lib/store.ts MAX_STORE_BYTES). */
const MAX_STORE = MIB;

/**
 * Mirrors lib/auth_json.ts checkAuthJson: UTF-8 without a BOM (codex 0.171
 * rejects one), JSON, an object, and either a `tokens` object with three
 * non-empty token strings or, without `tokens`, a non-empty OPENAI_API_KEY.
 */
function isValidAuthJson(bytes: Uint8Array): boolean {
  let value: unknown;
  try {
    value = JSON.parse(
      new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes),
    );
  } catch {
    return false;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return false;
  }
  const auth = value as Record<string, unknown>;
  const tokens = auth.tokens;
  if (tokens !== undefined && tokens !== null) {
    if (typeof tokens !== "object" || Array.isArray(tokens)) return false;
    const record = tokens as Record<string, unknown>;
    return ["id_token", "access_token", "refresh_token"].every((field) =>
      typeof record[field] === "string" && record[field] !== ""
    );
  }
  return typeof auth.OPENAI_API_KEY === "string" && auth.OPENAI_API_KEY !== "";
}

function randomPlaintext(
  rng: Rng,
  canary: string,
): { kind: string; bytes: Uint8Array } {
  const choice = rng.int(10);
  if (choice < 4) {
    return {
      kind: "random JSON",
      bytes: encoder.encode(JSON.stringify(randomJson(rng))),
    };
  }
  if (choice < 8) {
    return {
      kind: "near miss of auth.json",
      bytes: encoder.encode(JSON.stringify(nearMiss(rng, canary))),
    };
  }
  if (choice < 9) return { kind: "raw text", bytes: rawPlaintext(rng, canary) };
  // Around the size limits: a valid API-key login padded by an unknown field.
  const size = rng.pick([MIB - 1024, MIB, MIB + 1, 200_000]);
  const head = `{"OPENAI_API_KEY":"sk-${canary}","pad":"`;
  const pad = "a".repeat(Math.max(0, size - head.length - 2));
  return {
    kind: `valid login padded to ${size} bytes`,
    bytes: encoder.encode(`${head}${pad}"}`),
  };
}

/** Pipes bytes into `age -e`, so plaintext never touches the disk. */
async function encryptToFile(
  recipient: string,
  plaintext: Uint8Array,
  path: string,
): Promise<void> {
  const child = new Deno.Command("age", {
    args: ["-e", "-r", recipient, "-o", path],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(plaintext);
  await writer.close();
  const output = await child.output();
  if (!output.success) {
    throw new Error(`age -e failed: ${decoder.decode(output.stderr)}`);
  }
}

/**
 * Computes the RAM directory secure-codex picks for a codex home: per the
 * README, the first 16 hex digits of the SHA-256 of its canonical path.
 */
async function defaultRamDir(
  fixture: Fixture,
  codexHome: string,
): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    encoder.encode(Deno.realPathSync(codexHome)),
  );
  return join(
    fixture.runtimeDir,
    "secure-codex",
    hex(new Uint8Array(digest).subarray(0, 8)),
  );
}

/** Runs `action` on each item, at most `limit` at a time. */
async function inPool<T>(
  items: readonly T[],
  limit: number,
  action: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await action(items[next++]);
    }),
  );
}

function caseIndexes(): number[] {
  if (ONLY_CASES !== null) return ONLY_CASES;
  return Array.from({ length: CASE_COUNT }, (_, i) => i);
}

/**
 * Runs one case: its own store and codex home in `cases/<index>`, so its own
 * session, and a fake codex that exits 0. `prepare` writes the store and
 * returns the exit code to expect. Returns the problems found, if any.
 */
async function runRandomCase(
  fixture: Fixture,
  fakeDir: string,
  index: number,
  kind: string,
  prepare: (store: string) => Promise<number>,
): Promise<string[]> {
  const caseDir = join(fixture.dir, "cases", String(index));
  const codexHome = join(caseDir, "home");
  const store = join(caseDir, "auth.json.age");
  await Deno.mkdir(codexHome, { recursive: true });
  const expectedCode = await prepare(store);
  const storeBefore = await Deno.readFile(store);
  const ramDir = await defaultRamDir(fixture, codexHome);

  const result = await runTimed(
    fixture,
    ["--auth-enc", store, "--real-codex-home", codexHome, "--", "exec", "hi"],
    fakeCodexEnv(fixture, fakeDir),
    60_000,
  );

  const problems: string[] = [];
  const where = `case ${index} (${kind}, ${storeBefore.length} byte store)`;
  try {
    assert.equal(result.timedOut, false, "timed out");
    assert.equal(result.code, expectedCode, `expected exit ${expectedCode}`);
    assertCleanStderr(result, fixture.canary);
    if (result.code === 1) {
      assert.ok(!pathExists(join(ramDir, "auth.json")), "RAM copy left behind");
      const temps = pathExists(ramDir)
        ? [...Deno.readDirSync(ramDir)].map((entry) => entry.name).filter((
          name,
        ) => name.startsWith(".auth-"))
        : [];
      assert.deepEqual(temps, [], "temp files left in the RAM directory");
      assert.ok(
        !pathExists(join(codexHome, "auth.json")),
        "auth.json link created",
      );
    } else {
      assert.ok(pathExists(join(ramDir, "auth.json")), "no RAM copy");
    }
    assert.ok(
      equalBytes(await Deno.readFile(store), storeBefore),
      "store changed",
    );
  } catch (error) {
    problems.push(
      `${where}: ${(error as Error).message}\n${describeRun(result)}`,
    );
  } finally {
    await Deno.remove(ramDir, { recursive: true }).catch(() => {});
    await Deno.remove(caseDir, { recursive: true });
  }
  return problems;
}

function reportProblems(
  label: string,
  problems: string[],
  started: number,
): void {
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(
    `attack_test: ${label}: ${caseIndexes().length} cases in ${seconds} s, seed ${SEED}, ${problems.length} failed`,
  );
  if (problems.length > 0) {
    assert.fail(
      `${problems.length} ${label} cases failed; rerun with SC_ATTACK_SEED=${SEED} ` +
        `SC_ATTACK_CASES=<index>. The first ones:\n\n${
          problems.slice(0, 5).join("\n\n")
        }`,
    );
  }
}

Deno.test(`random stores: ${CASE_COUNT} cases`, async () => {
  console.log(`attack_test: random stores, SC_ATTACK_SEED=${SEED}`);
  const fixture = await createFixture();
  const started = performance.now();
  try {
    const fakeDir = await writeFakeCodex(fixture, "exit 0\n");
    const realPath = join(fixture.dir, "real.age");
    await fixture.writeStore(
      fakeChatGptAuth({ canary: fixture.canary }),
      realPath,
    );
    const real = await Deno.readFile(realPath);
    const problems: string[] = [];
    const counts = new Map<string, number>();
    await inPool(caseIndexes(), CONCURRENCY, async (index) => {
      const store = randomStore(caseRng(SEED, index), index, real);
      const family = store.kind.replace(/,.*$/, "");
      counts.set(family, (counts.get(family) ?? 0) + 1);
      problems.push(
        ...await runRandomCase(
          fixture,
          fakeDir,
          index,
          store.kind,
          async (path) => {
            await Deno.writeFile(path, store.bytes);
            // No random or damaged store is a valid age file for the identity.
            return 1;
          },
        ),
      );
    });
    console.log(
      `attack_test: store kinds: ${JSON.stringify(Object.fromEntries(counts))}`,
    );
    reportProblems("random store", problems, started);
  } finally {
    await fixture.dispose();
  }
});

Deno.test(
  `random decrypted contents: ${CASE_COUNT} cases`,
  async () => {
    console.log(`attack_test: random contents, SC_ATTACK_SEED=${SEED}`);
    const fixture = await createFixture();
    const started = performance.now();
    try {
      const fakeDir = await writeFakeCodex(fixture, "exit 0\n");
      const problems: string[] = [];
      const counts = new Map<string, number>();
      let validCount = 0;
      await inPool(caseIndexes(), CONCURRENCY, async (index) => {
        const { kind, bytes } = randomPlaintext(
          caseRng(SEED, index),
          fixture.canary,
        );
        counts.set(kind, (counts.get(kind) ?? 0) + 1);
        problems.push(
          ...await runRandomCase(
            fixture,
            fakeDir,
            index,
            `${kind}, ${bytes.length} byte plaintext`,
            async (path) => {
              await encryptToFile(fixture.recipient, bytes, path);
              const valid = isValidAuthJson(bytes) &&
                bytes.length <= MAX_PLAINTEXT &&
                Deno.statSync(path).size <= MAX_STORE;
              bytes.fill(0);
              if (valid) validCount++;
              return valid ? 0 : 1;
            },
          ),
        );
      });
      console.log(
        `attack_test: content kinds: ${
          JSON.stringify(Object.fromEntries(counts))
        }; ${validCount} valid logins (exit 0 expected)`,
      );
      reportProblems("random content", problems, started);
    } finally {
      await fixture.dispose();
    }
  },
);

Deno.test({
  name: "age beta note gets a prefix",
  fn: async () => {
    const fixture = await createFixture();
    try {
      // A stanza without its body line: age reads "--- ..." as the body.
      const key = base64(new Uint8Array(32).fill(7));
      await Deno.writeFile(
        fixture.store,
        encoder.encode(`${AGE_INTRO}-> X25519 ${key}\n--- ${key}\npayload`),
      );
      const result = await runTimed(fixture, ["--", "login", "status"]);
      assert.equal(result.code, 1, describeRun(result));
      assertCleanStderr(result, fixture.canary);
      assert.ok(
        result.stderr.includes(`secure-codex: ${AGE_BETA_NOTE}\n`),
        describeRun(result),
      );
    } finally {
      await fixture.dispose();
    }
  },
});

// ---------------------------------------------------------------------------
// 4. LD_* variables

Deno.test("LD_LIBRARY_PATH dropped, real codex runs", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const result = await fixture.run(["--", "login", "status"], {
      env: { LD_LIBRARY_PATH: "/nonexistent", LD_PRELOAD: "" },
    });
    const text = describeRun(result);
    assert.equal(result.code, 0, text);
    assert.match(result.stderr, /Logged in using ChatGPT/, text);
    const named = linesOf(result.stderr).filter((line) =>
      line.includes("LD_LIBRARY_PATH")
    );
    assert.equal(named.length, 1, text);
    assert.match(named[0], /^secure-codex: dropped .*LD_LIBRARY_PATH/, text);
    // An empty LD_PRELOAD loses nothing, so it is not reported.
    assert.doesNotMatch(result.stderr, /LD_PRELOAD/, text);
  } finally {
    await fixture.dispose();
  }
});

Deno.test("codex environment has no LD_*", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const marks = join(fixture.dir, "marks");
    await Deno.mkdir(marks);
    const fakeDir = await writeFakeCodex(
      fixture,
      `env | grep '^LD_' > "$MARK_DIR/ld-env" || true\nexit 0\n`,
    );
    const result = await fixture.run(["--", "exec", "hi"], {
      env: fakeCodexEnv(fixture, fakeDir, {
        MARK_DIR: marks,
        LD_LIBRARY_PATH: "/nonexistent",
        LD_PRELOAD: "",
        LD_BIND_NOW: "1",
      }),
    });
    assert.equal(result.code, 0, describeRun(result));
    assert.equal(await Deno.readTextFile(join(marks, "ld-env")), "");
    assert.match(
      result.stderr,
      /^secure-codex: dropped LD_BIND_NOW, LD_LIBRARY_PATH /m,
    );
  } finally {
    await fixture.dispose();
  }
});
