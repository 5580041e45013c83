/**
 * The facts about codex 0.171 that secure-codex's design rests on, checked
 * against the installed codex. If codex changes one of them, this file fails
 * before users lose tokens.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { CODEX_TEST_CONFIG, runCommand, TEST_ROOT } from "./helpers.ts";

const FILE_STORE = ["-c", 'cli_auth_credentials_store="file"'];

async function withCodexHome(
  action: (home: string, env: Record<string, string>) => Promise<void>,
): Promise<void> {
  await Deno.mkdir(TEST_ROOT, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: TEST_ROOT, prefix: "facts-" });
  const home = join(dir, "codex-home");
  await Deno.mkdir(home);
  await Deno.writeTextFile(join(home, "config.toml"), CODEX_TEST_CONFIG);
  const env = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: dir,
    CODEX_HOME: home,
    HTTP_PROXY: "http://127.0.0.1:9",
    HTTPS_PROXY: "http://127.0.0.1:9",
    ALL_PROXY: "http://127.0.0.1:9",
    NO_PROXY: "127.0.0.1,localhost",
  };
  try {
    await action(home, env);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("codex writes through the auth.json link", () =>
  withCodexHome(async (home, env) => {
    const target = join(home, "..", "ram");
    await Deno.mkdir(target, { mode: 0o700 });
    const link = join(home, "auth.json");
    await Deno.symlink(join(target, "auth.json"), link);

    const login = await runCommand("codex", [
      ...FILE_STORE,
      "login",
      "--with-api-key",
    ], {
      env,
      stdin: "sk-fact-test\n",
    });
    assert.equal(login.code, 0, login.stderr);

    assert.ok(Deno.lstatSync(link).isSymlink, "the link survives the save");
    const saved = JSON.parse(
      await Deno.readTextFile(join(target, "auth.json")),
    );
    assert.equal(saved.OPENAI_API_KEY, "sk-fact-test");
  }));

Deno.test("codex file-store override beats config.toml", () =>
  withCodexHome(async (home, env) => {
    await Deno.writeTextFile(
      join(home, "config.toml"),
      'cli_auth_credentials_store = "ephemeral"\n' + CODEX_TEST_CONFIG,
    );
    const login = await runCommand("codex", [
      ...FILE_STORE,
      "login",
      "--with-api-key",
    ], {
      env,
      stdin: "sk-fact-test\n",
    });
    assert.equal(login.code, 0, login.stderr);

    const withOverride = await runCommand("codex", [
      ...FILE_STORE,
      "login",
      "status",
    ], { env });
    assert.match(
      withOverride.stdout + withOverride.stderr,
      /API key configured/,
    );
    const without = await runCommand("codex", ["login", "status"], { env });
    assert.match(without.stdout + without.stderr, /Not logged in/);
  }));

Deno.test("codex accepts the override before subcommands", () =>
  withCodexHome(async (_home, env) => {
    const subcommands = [
      ["--version"],
      ["--help"],
      ["exec", "--help"],
      ["login", "--help"],
      ["logout", "--help"],
      ["mcp", "--help"],
      ["features", "--help"],
      ["doctor", "--help"],
      ["resume", "--help"],
      ["apply", "--help"],
      ["completion", "bash"],
      ["app-server", "--help"],
      ["sandbox", "--help"],
      ["debug", "--help"],
    ];
    for (const args of subcommands) {
      const result = await runCommand("codex", [...FILE_STORE, ...args], {
        env,
      });
      assert.equal(result.code, 0, `codex ${args.join(" ")}: ${result.stderr}`);
    }
  }));
