/**
 * Runs secure-codex from a URL, the way a user runs it without a clone:
 * `deno run <flags> https://HOST/.../main.ts`. A static file server on
 * 127.0.0.1 serves the repository. Deno ignores a served deno.json, so the
 * command line alone must grant what the "secure-codex" permission set
 * grants, and enable the unstable worker options the plaintext worker needs.
 * {@linkcode URL_RUN_FLAGS} are those flags.
 *
 * Each run gets an empty DENO_DIR of its own, so every module, the worker's
 * included, is downloaded from the server during the run. Its `npm`
 * directory is a symlink to the npm cache of the normal DENO_DIR, which the
 * test fills first with `deno cache --frozen main.ts`. The remote run then
 * needs no network access besides 127.0.0.1. It could not reach the npm
 * registry anyway: the fixture's proxy variables point at a closed port, and
 * Deno reads them as codex does. Both processes share one environment,
 * because secure-codex passes its own to codex.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join, relative } from "node:path";
import config from "../deno.json" with { type: "json" };
import {
  createFixture,
  fakeChatGptAuth,
  ROOT,
  runCommand,
  type RunResult,
} from "./helpers.ts";

/**
 * The flags that run secure-codex from a URL with the permissions of the
 * "secure-codex" set in deno.json. Replace `HOST` with the host of the URL,
 * plus `:PORT` when the URL has a port.
 *
 * - `--no-config` keeps a deno.json in the current directory or above it
 *   from adding settings (an import map, a lock file, `nodeModulesDir`).
 * - `-q` hides Deno's download lines, as the launcher does.
 * - `--no-prompt` makes a missing permission an error, in the worker too,
 *   where Deno would otherwise ask on the terminal.
 * - `--unstable-worker-options` lets the worker narrow its permissions. For
 *   a local run, deno.json's `"unstable"` does this.
 * - `--allow-import=HOST` replaces Deno's default import list. Without it
 *   Deno 2.9 allows the host of the URL on the command line and also
 *   deno.land, jsr.io, esm.sh, raw.esm.sh, cdn.jsdelivr.net,
 *   raw.githubusercontent.com and gist.githubusercontent.com
 *   (`deno run --help`), where the permission set allows none.
 *   The worker's module comes from the same host and needs nothing more.
 *
 * `npm:` packages need no permission flag: Deno fetches them from the npm
 * registry itself.
 */
export const URL_RUN_FLAGS = [
  "--no-config",
  "-q",
  "--no-prompt",
  "--unstable-worker-options",
  "--allow-read",
  "--allow-write",
  "--allow-run=age,codex",
  "--allow-env",
  "--allow-sys=uid,gid,statfs",
  "--allow-import=HOST",
] as const;

/** Returns {@linkcode URL_RUN_FLAGS} with `HOST` replaced by `host`. */
export function urlRunFlags(host: string): string[] {
  return URL_RUN_FLAGS.map((flag) => flag.replace(/=HOST$/, `=${host}`));
}

/** Content types by file extension. The server returns 404 for any other. */
const CONTENT_TYPES: Record<string, string> = {
  ".ts": "application/typescript",
  ".json": "application/json",
};

/** A static file server over the repository on 127.0.0.1. */
interface SourceServer {
  /** `127.0.0.1:PORT`, for `--allow-import`. */
  host: string;
  /** The URL of main.ts. */
  mainUrl: string;
  /** Every request path with its status, in order. */
  log: { path: string; status: number }[];
  close(): Promise<void>;
}

/**
 * Finds the file a request path names, or returns null. Rejects paths with
 * a segment that starts with a dot, before and after resolving symlinks.
 * That keeps out `..`, `.git` and `.tmp-tests`, where the fixtures keep
 * their RAM directories with the plaintext `auth.json`.
 */
async function sourceFile(
  root: string,
  pathname: string,
): Promise<string | null> {
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return null;
  }
  const segments = decoded.split("/").filter((segment) => segment !== "");
  if (segments.some((s) => s.startsWith(".") || s.includes("\0"))) return null;
  let real: string;
  try {
    real = await Deno.realPath(join(root, ...segments));
  } catch {
    return null;
  }
  const inside = relative(root, real);
  if (inside === "" || inside.split("/").some((s) => s.startsWith("."))) {
    return null;
  }
  return (await Deno.stat(real)).isFile ? real : null;
}

/** Starts the server with the content types a remote `deno run` needs. */
async function startSourceServer(): Promise<SourceServer> {
  const root = await Deno.realPath(ROOT);
  const log: { path: string; status: number }[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const path = new URL(request.url).pathname;
      const type = CONTENT_TYPES[path.slice(path.lastIndexOf("."))];
      const file = request.method === "GET" && type !== undefined
        ? await sourceFile(root, path)
        : null;
      if (file === null) {
        log.push({ path, status: 404 });
        return new Response("not found\n", { status: 404 });
      }
      log.push({ path, status: 200 });
      return new Response(await Deno.readFile(file), {
        headers: { "content-type": type! },
      });
    },
  );
  const host = `127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
  return {
    host,
    mainUrl: `http://${host}/main.ts`,
    log,
    close: () => server.shutdown(),
  };
}

/** Returns the DENO_DIR that `deno` uses in this environment. */
async function normalDenoDir(): Promise<string> {
  const info = await runCommand(Deno.execPath(), ["info", "--json"]);
  assert.equal(info.code, 0, info.stderr);
  return JSON.parse(info.stdout).denoDir;
}

/**
 * Fills the normal npm cache with the packages main.ts may import, resolved
 * through deno.lock, and returns a new, empty DENO_DIR under `parent` whose
 * `npm` directory links to that cache.
 */
async function freshDenoDir(parent: string): Promise<string> {
  const cached = await runCommand(
    Deno.execPath(),
    // main.ts loads lib/config.ts by a specifier Deno does not read ahead.
    ["cache", "-q", "--frozen", "main.ts", "lib/config.ts"],
    { cwd: ROOT },
  );
  assert.equal(cached.code, 0, `deno cache main.ts: ${cached.stderr}`);
  const npmCache = join(await normalDenoDir(), "npm");
  await Deno.mkdir(npmCache, { recursive: true });
  const denoDir = await Deno.makeTempDir({ dir: parent, prefix: "deno-dir-" });
  await Deno.symlink(npmCache, join(denoDir, "npm"));
  return denoDir;
}

/** Runs `deno run <flags> <main.ts URL> ...args` from `cwd`. */
function runFromUrl(
  server: SourceServer,
  args: string[],
  env: Record<string, string>,
  cwd: string,
): Promise<RunResult> {
  return runCommand(
    Deno.execPath(),
    ["run", ...urlRunFlags(server.host), server.mainUrl, ...args],
    { env, cwd },
  );
}

/** Asserts that the server sent `path` and returned no 404. */
function assertServed(server: SourceServer, path: string): void {
  assert.deepEqual(server.log.filter((entry) => entry.status !== 200), []);
  assert.ok(
    server.log.some((entry) => entry.path === path),
    `not requested: ${path}`,
  );
}

// The runs start in a directory outside the repository, so no deno.json is
// found even if --no-config is dropped: the flags alone must be enough.

/**
 * Returns an environment for a run without a fixture: HOME and DENO_DIR
 * under `dir`, and the fixture's proxy variables, so Deno reaches nothing
 * but 127.0.0.1.
 */
function offlineEnv(dir: string, denoDir: string): Record<string, string> {
  return {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: join(dir, "home"),
    DENO_DIR: denoDir,
    HTTP_PROXY: "http://127.0.0.1:9",
    HTTPS_PROXY: "http://127.0.0.1:9",
    NO_PROXY: "127.0.0.1,localhost",
  };
}

Deno.test("from a URL: --version prints the version", async () => {
  const server = await startSourceServer();
  const dir = await Deno.makeTempDir({ prefix: "secure-codex-url-" });
  try {
    const denoDir = await freshDenoDir(dir);
    const result = await runFromUrl(
      server,
      ["--version"],
      offlineEnv(dir, denoDir),
      dir,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, `secure-codex ${config.version}\n`);
    assertServed(server, "/main.ts");
    assertServed(server, "/lib/help.ts");
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("from a URL: reads a JSONC config file", async () => {
  const server = await startSourceServer();
  const dir = await Deno.makeTempDir({ prefix: "secure-codex-url-" });
  try {
    const denoDir = await freshDenoDir(dir);
    const env = offlineEnv(dir, denoDir);
    const configDir = join(env.HOME, ".config", "secure-codex");
    await Deno.mkdir(configDir, { recursive: true });
    // A comment and a trailing comma: only the JSONC parser accepts both.
    await Deno.writeTextFile(
      join(configDir, "config.jsonc"),
      '{\n  // one profile\n  "profiles": { "work": {} },\n}\n',
    );
    const result = await runFromUrl(server, ["--list-profiles"], env, dir);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "default\nwork\n");
    // lib/config.ts imports npm:jsonc-parser, which came from the npm cache.
    assertServed(server, "/lib/config.ts");
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("from a URL: unlocks the store for login status", async () => {
  const server = await startSourceServer();
  const dir = await Deno.makeTempDir({ prefix: "secure-codex-url-" });
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const denoDir = await freshDenoDir(dir);
    const result = await runFromUrl(
      server,
      ["--identity", fixture.identity, "--", "login", "status"],
      { ...fixture.env, DENO_DIR: denoDir },
      dir,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout + result.stderr, /Logged in using ChatGPT/);
    const link = join(fixture.codexHome, "auth.json");
    assert.ok(Deno.lstatSync(link).isSymlink);
    assert.equal(Deno.readLinkSync(link), join(fixture.ramDir(), "auth.json"));
    // The worker's module is not in main.ts's static graph. Deno fetched it
    // when the worker started, although the worker has `import: false`.
    assertServed(server, "/lib/worker_entry.ts");
  } finally {
    await fixture.dispose();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
