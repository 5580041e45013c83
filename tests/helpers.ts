/**
 * Fixtures for tests that run the real program: a tmpfs as the runtime
 * directory, a throwaway age identity, fake codex logins carrying a canary
 * string, and a scan of the disk for that canary.
 *
 * Plaintext fixtures are piped into `age -e` and never written to disk, so a
 * canary found on disk is always a leak of the program under test.
 *
 * @module
 */

import { join, resolve } from "node:path";

/** The repository root. */
export const ROOT = resolve(import.meta.dirname!, "..");
/** The launcher that runs main.ts with the program's own permission set. */
export const SECURE_CODEX = join(ROOT, "scripts", "secure-codex");
/** Where tests keep their disk-backed files; scanned for canaries. */
export const TEST_ROOT = join(ROOT, ".tmp-tests");

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Output of one finished command. */
export interface RunResult {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to completion with piped output and optional stdin.
 *
 * @example
 * ```ts
 * const result = await runCommand("age", ["--version"]);
 * ```
 */
export async function runCommand(
  program: string,
  args: string[],
  options: {
    env?: Record<string, string>;
    stdin?: string | Uint8Array;
    cwd?: string;
  } = {},
): Promise<RunResult> {
  const child = new Deno.Command(program, {
    args,
    env: options.env,
    clearEnv: options.env !== undefined,
    cwd: options.cwd,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(
      typeof options.stdin === "string"
        ? encoder.encode(options.stdin)
        : options.stdin,
    );
    await writer.close();
  }
  const output = await child.output();
  return {
    code: output.code,
    signal: output.signal,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

function base64url(value: unknown): string {
  return btoa(JSON.stringify(value)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

/**
 * Builds an unsigned JWT; codex reads its claims without checking signatures.
 *
 * @example
 * ```ts
 * const token = fakeJwt({ exp: 0 });
 * ```
 */
export function fakeJwt(
  claims: Record<string, unknown>,
  signature = "sig",
): string {
  return `${base64url({ alg: "none", typ: "JWT" })}.${
    base64url(claims)
  }.${signature}`;
}

/** Options for {@linkcode fakeChatGptAuth}. */
export interface FakeAuthOptions {
  canary: string;
  refreshToken?: string;
  /** Seconds from now until the access token expires; negative means expired. */
  expiresIn?: number;
  email?: string;
  accountId?: string;
  lastRefresh?: string;
}

/**
 * Builds a ChatGPT-mode auth.json object whose tokens carry the canary.
 *
 * @example
 * ```ts
 * const auth = fakeChatGptAuth({ canary: "CANARY-1", refreshToken: "rt-1" });
 * ```
 */
export function fakeChatGptAuth(
  options: FakeAuthOptions,
): Record<string, unknown> {
  const accountId = options.accountId ?? "acct-test";
  const exp = Math.floor(Date.now() / 1000) + (options.expiresIn ?? 3600);
  const authClaims = {
    chatgpt_plan_type: "plus",
    chatgpt_account_id: accountId,
    chatgpt_user_id: "user-test",
  };
  return {
    auth_mode: "chatgpt",
    OPENAI_API_KEY: null,
    tokens: {
      id_token: fakeJwt(
        {
          email: options.email ?? "dev@example.com",
          exp,
          "https://api.openai.com/auth": authClaims,
        },
        options.canary,
      ),
      access_token: fakeJwt(
        { exp, "https://api.openai.com/auth": authClaims },
        options.canary,
      ),
      refresh_token: options.refreshToken ?? `rt-${options.canary}`,
      account_id: accountId,
    },
    last_refresh: options.lastRefresh ?? new Date().toISOString(),
  };
}

/** Checks whether this process is root, which mounting a tmpfs needs. */
export function isRoot(): boolean {
  return Deno.uid() === 0;
}

/** A throwaway setup: disk directory, tmpfs runtime directory, codex home, identity. */
export interface Fixture {
  /** Disk-backed directory of this fixture, under {@linkcode TEST_ROOT}. */
  dir: string;
  /** HOME for the program. */
  home: string;
  /** The codex home, `<home>/.codex`. */
  codexHome: string;
  /** The default store path. */
  store: string;
  /** A tmpfs mounted with mode 0700, used as XDG_RUNTIME_DIR. */
  runtimeDir: string;
  /** TMPDIR for the program, on disk. */
  tmpDir: string;
  /** age identity file (contains a `# public key:` line). */
  identity: string;
  /** The identity's recipient. */
  recipient: string;
  /** A unique string planted in every fake token. */
  canary: string;
  /** Environment for running secure-codex. */
  env: Record<string, string>;
  /** Encrypts a value to the fixture's recipient and writes it as the store. */
  writeStore(value: unknown, path?: string): Promise<void>;
  /** Decrypts the store (in memory) and parses it. */
  readStore(path?: string): Promise<unknown>;
  /** Runs secure-codex with the fixture's environment. */
  run(
    args: string[],
    options?: { env?: Record<string, string>; stdin?: string },
  ): Promise<RunResult>;
  /** The RAM directory of the default session. */
  ramDir(): string;
  /** Unmounts the tmpfs, scans for the canary and removes everything. */
  dispose(): Promise<void>;
}

/** Codex settings that keep it off the network during tests. */
export const CODEX_TEST_CONFIG = `check_for_update_on_startup = false

[analytics]
enabled = false
`;

/**
 * Creates a fixture. Needs root (or a user namespace from `unshare -Urm`) to
 * mount its tmpfs.
 *
 * @example
 * ```ts
 * const fixture = await createFixture();
 * try {
 *   await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
 *   const result = await fixture.run(["--", "login", "status"]);
 * } finally {
 *   await fixture.dispose();
 * }
 * ```
 */
export async function createFixture(): Promise<Fixture> {
  await Deno.mkdir(TEST_ROOT, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: TEST_ROOT, prefix: "fixture-" });
  const home = join(dir, "home");
  const codexHome = join(home, ".codex");
  const runtimeDir = join(dir, "run");
  const tmpDir = join(dir, "tmp");
  await Deno.mkdir(codexHome, { recursive: true });
  await Deno.mkdir(tmpDir);
  await Deno.mkdir(runtimeDir, { mode: 0o700 });
  await Deno.writeTextFile(join(codexHome, "config.toml"), CODEX_TEST_CONFIG);
  const mounted = await runCommand("mount", [
    "-t",
    "tmpfs",
    "-o",
    "mode=0700,size=8m",
    "tmpfs",
    runtimeDir,
  ]);
  if (mounted.code !== 0) {
    throw new Error(`mount tmpfs failed: ${mounted.stderr}`);
  }

  const identity = join(dir, "identity.txt");
  const keygen = await runCommand("age-keygen", ["-o", identity]);
  if (keygen.code !== 0) throw new Error(`age-keygen failed: ${keygen.stderr}`);
  const recipient = (await runCommand("age-keygen", ["-y", identity])).stdout
    .trim();
  const canary = `CANARY${crypto.randomUUID().replaceAll("-", "")}`;
  const store = join(codexHome, "auth.json.age");

  const env: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: home,
    XDG_RUNTIME_DIR: runtimeDir,
    TMPDIR: tmpDir,
    // Codex may reach only the loopback mocks: every proxy points at a closed port.
    HTTP_PROXY: "http://127.0.0.1:9",
    HTTPS_PROXY: "http://127.0.0.1:9",
    ALL_PROXY: "http://127.0.0.1:9",
    http_proxy: "http://127.0.0.1:9",
    https_proxy: "http://127.0.0.1:9",
    all_proxy: "http://127.0.0.1:9",
    NO_PROXY: "127.0.0.1,localhost",
    no_proxy: "127.0.0.1,localhost",
    SECURE_CODEX_IDENTITY: identity,
    RUST_LOG: "error",
    // HOME points into the fixture, so keep Deno's cache where it was: a fresh
    // cache per fixture would recompile main.ts on every first run.
    DENO_DIR: Deno.env.get("DENO_DIR") ??
      join(Deno.env.get("HOME") ?? "/root", ".cache", "deno"),
  };

  const fixture: Fixture = {
    dir,
    home,
    codexHome,
    store,
    runtimeDir,
    tmpDir,
    identity,
    recipient,
    canary,
    env,
    async writeStore(value, path = store) {
      const result = await runCommand("age", [
        "-e",
        "-r",
        recipient,
        "-o",
        path,
      ], {
        stdin: typeof value === "string" ? value : JSON.stringify(value),
      });
      if (result.code !== 0) throw new Error(`age -e failed: ${result.stderr}`);
    },
    async readStore(path = store) {
      const result = await runCommand("age", ["-d", "-i", identity, path]);
      if (result.code !== 0) throw new Error(`age -d failed: ${result.stderr}`);
      return JSON.parse(result.stdout);
    },
    run(args, options = {}) {
      return runCommand(SECURE_CODEX, args, {
        env: { ...env, ...options.env },
        stdin: options.stdin,
      });
    },
    ramDir() {
      const base = join(runtimeDir, "secure-codex");
      const entries = [...Deno.readDirSync(base)];
      if (entries.length !== 1) {
        throw new Error(`expected one session in ${base}`);
      }
      return join(base, entries[0].name);
    },
    async dispose() {
      await runCommand("umount", ["-l", runtimeDir]);
      try {
        await assertNoCanaryOnDisk(canary, [dir, ROOT]);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  };
  return fixture;
}

/**
 * Fails if any regular file under the roots contains the canary. Skips the
 * .git directory, symlinks and files over 16 MiB.
 *
 * @example
 * ```ts
 * await assertNoCanaryOnDisk("CANARY123", ["/work/main"]);
 * ```
 */
export async function assertNoCanaryOnDisk(
  canary: string,
  roots: string[],
): Promise<void> {
  const needle = encoder.encode(canary);
  const found: string[] = [];
  const seen = new Set<string>();
  async function walk(path: string): Promise<void> {
    if (seen.has(path)) return;
    seen.add(path);
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(path);
    } catch {
      return;
    }
    if (info.isDirectory) {
      if (path.endsWith("/.git")) return;
      for await (const entry of Deno.readDir(path)) {
        await walk(join(path, entry.name));
      }
    } else if (info.isFile && info.size <= 16 * 1024 * 1024) {
      const bytes = await Deno.readFile(path).catch(() => new Uint8Array());
      if (indexOf(bytes, needle) >= 0) found.push(path);
    }
  }
  for (const root of roots) await walk(root);
  if (found.length > 0) {
    throw new Error(`canary found on disk in: ${found.join(", ")}`);
  }
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

/** A refresh request as the token mock received it. */
export interface RefreshRequest {
  refreshToken: string;
  grantType: string;
}

/** A loopback OAuth token endpoint with single-use, rotating refresh tokens. */
export interface TokenMock {
  url: string;
  requests: RefreshRequest[];
  /** Refresh tokens the mock will accept once each. */
  valid: Set<string>;
  close(): Promise<void>;
}

/**
 * Starts a token endpoint on 127.0.0.1 that rotates `RT1 -> RT2 -> ...` and
 * rejects a reused token with `refresh_token_reused`.
 *
 * @example
 * ```ts
 * const mock = startTokenMock({ canary: "CANARY", first: "rt-1" });
 * // CODEX_REFRESH_TOKEN_URL_OVERRIDE=mock.url
 * await mock.close();
 * ```
 */
export function startTokenMock(
  options: { canary: string; first: string },
): TokenMock {
  const requests: RefreshRequest[] = [];
  const valid = new Set([options.first]);
  let generation = 1;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const body = await request.json().catch(() => ({}));
      requests.push({
        refreshToken: String(body.refresh_token),
        grantType: String(body.grant_type),
      });
      if (!valid.has(body.refresh_token)) {
        return Response.json(
          {
            error: {
              code: "refresh_token_reused",
              message: "refresh token already used",
            },
          },
          { status: 401 },
        );
      }
      valid.delete(body.refresh_token);
      generation++;
      const next = `rt-${generation}-${options.canary}`;
      valid.add(next);
      const auth = fakeChatGptAuth({
        canary: options.canary,
        refreshToken: next,
      });
      const tokens = auth.tokens as Record<string, string>;
      return Response.json({
        id_token: tokens.id_token,
        access_token: tokens.access_token,
        refresh_token: next,
      });
    },
  );
  const address = server.addr as Deno.NetAddr;
  return {
    url: `http://127.0.0.1:${address.port}/oauth/token`,
    requests,
    valid,
    close: () => server.shutdown(),
  };
}

/**
 * Writes an executable shell script named `codex` into a new directory inside
 * the fixture and returns that directory, to be put first in PATH. The script
 * is on disk, so it must not contain the canary.
 *
 * @example
 * ```ts
 * const fakeDir = await writeFakeCodex(fixture, "exit 3\n");
 * await fixture.run(["--", "exec", "hi"], { env: fakeCodexEnv(fixture, fakeDir) });
 * ```
 */
export async function writeFakeCodex(
  fixture: Fixture,
  body: string,
): Promise<string> {
  const directory = await Deno.makeTempDir({
    dir: fixture.dir,
    prefix: "fake-codex-",
  });
  const path = join(directory, "codex");
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}`, { mode: 0o755 });
  await Deno.chmod(path, 0o755);
  return directory;
}

/**
 * Builds extra environment for {@linkcode Fixture.run} that puts a fake codex
 * directory first in PATH. Deno resolves `--allow-run=codex` on PATH when the
 * wrapper starts, so the fake codex is the one it may run.
 */
export function fakeCodexEnv(
  fixture: Fixture,
  fakeDir: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return { ...extra, PATH: `${fakeDir}:${fixture.env.PATH}` };
}

/**
 * Starts secure-codex without waiting for it, with the fixture's environment
 * plus `env`, no stdin and piped output. The returned process is the Deno
 * process itself, because the launcher script `exec`s deno. Read its output
 * with `output()` so the pipes never fill.
 *
 * @example
 * ```ts
 * const child = spawnSecureCodex(fixture, ["--", "exec", "hi"]);
 * child.kill("SIGTERM");
 * const output = await child.output();
 * ```
 */
export function spawnSecureCodex(
  fixture: Fixture,
  args: string[],
  env: Record<string, string> = {},
): Deno.ChildProcess {
  return new Deno.Command(SECURE_CODEX, {
    args,
    env: { ...fixture.env, ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/**
 * Polls `condition` every `intervalMs` until it returns true, and throws after
 * `timeoutMs` with a message that names `description`.
 *
 * @example
 * ```ts
 * await waitFor(() => pathExists("/tmp/started"), "the fake codex to start");
 * ```
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  description: string,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const intervalMs = options.intervalMs ?? 20;
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${description}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Returns whether something exists at `path`, without following a final symlink. */
export function pathExists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/**
 * Lists the RAM copies (`auth.json` files) in every session directory under
 * the fixture's runtime directory, so a test can tell "removed" from "kept"
 * without knowing the session id.
 */
export function ramCopies(fixture: Fixture): string[] {
  const base = join(fixture.runtimeDir, "secure-codex");
  if (!pathExists(base)) return [];
  const copies: string[] = [];
  for (const entry of Deno.readDirSync(base)) {
    const copy = join(base, entry.name, "auth.json");
    if (pathExists(copy)) copies.push(copy);
  }
  return copies;
}

/**
 * Reports what process `pid` does with the flock on the file with inode
 * `inode`, from /proc/locks: "holding", "waiting" (a `->` line) or "none".
 * Lets a test wait until secure-codex blocks on one of its lock files.
 * Reads /proc/locks through `cat`, because Deno allows /proc paths only with
 * --allow-all. Inode numbers are compared without the device.
 */
export async function flockState(
  pid: number,
  inode: number,
): Promise<"holding" | "waiting" | "none"> {
  const locks = await runCommand("cat", ["/proc/locks"]);
  let state: "holding" | "waiting" | "none" = "none";
  for (const line of locks.stdout.split("\n")) {
    const fields = line.trim().split(/\s+/);
    const waiting = fields[1] === "->";
    const rest = waiting ? fields.slice(2) : fields.slice(1);
    // rest: FLOCK ADVISORY <READ|WRITE> <pid> <major:minor:inode> <start> <end>
    if (rest[0] !== "FLOCK" || Number(rest[3]) !== pid) continue;
    if (Number(rest[4]?.split(":")[2]) !== inode) continue;
    if (waiting) state = "waiting";
    else return "holding";
  }
  return state;
}

/**
 * Starts secure-codex like {@linkcode spawnSecureCodex}, but through `setsid`,
 * so it leads a new session and process group. `setsid` execs without forking
 * because a freshly spawned child is no group leader, and the launcher execs
 * deno: the returned pid is the Deno process and also the process group id.
 * `Deno.kill(-child.pid, signal)` then reaches the wrapper, codex and any
 * `age` it runs, and nothing of the test runner.
 *
 * @example
 * ```ts
 * const child = spawnSecureCodexInGroup(fixture, ["--", "exec", "hi"]);
 * Deno.kill(-child.pid, "SIGTERM");
 * await child.output();
 * ```
 */
export function spawnSecureCodexInGroup(
  fixture: Fixture,
  args: string[],
  env: Record<string, string> = {},
): Deno.ChildProcess {
  return new Deno.Command("setsid", {
    args: [SECURE_CODEX, ...args],
    env: { ...fixture.env, ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/**
 * Lists the pids of the live processes in process group `pgid`, zombies
 * excluded. Reads the process table through `ps`, because Deno allows /proc
 * paths only with --allow-all.
 */
export async function processGroupMembers(pgid: number): Promise<number[]> {
  const result = await runCommand("ps", ["-e", "-o", "pid=,pgid=,stat="]);
  const members: number[] = [];
  for (const line of result.stdout.split("\n")) {
    const [pid, group, stat] = line.trim().split(/\s+/);
    if (Number(group) === pgid && !stat?.startsWith("Z")) {
      members.push(Number(pid));
    }
  }
  return members;
}

/**
 * Returns whether process `pid` exists and is not a zombie. A zombie counts
 * as dead: it runs no code, and `kill -0` would still report it.
 */
export async function isProcessAlive(pid: number): Promise<boolean> {
  const result = await runCommand("ps", ["-o", "stat=", "-p", String(pid)]);
  const stat = result.stdout.trim();
  return stat !== "" && !stat.startsWith("Z");
}

/**
 * Sends SIGKILL to every process in group `pgid` and waits until none is
 * left alive. A group that is already empty is fine.
 */
export async function killProcessGroup(pgid: number): Promise<void> {
  try {
    Deno.kill(-pgid, "SIGKILL");
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await waitFor(
    async () => (await processGroupMembers(pgid)).length === 0,
    `process group ${pgid} to die`,
    { timeoutMs: 10_000, intervalMs: 10 },
  );
}
