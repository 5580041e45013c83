import assert from "node:assert/strict";
import {
  childEnvironment,
  classifyCodexCommand,
  exitBySignal,
  exitCodeOf,
  findStoreOverride,
} from "./child.ts";

Deno.test("exitCodeOf maps signals to 128 plus n", () => {
  assert.equal(exitCodeOf({ success: true, code: 0, signal: null }), 0);
  assert.equal(exitCodeOf({ success: false, code: 3, signal: null }), 3);
  assert.equal(
    exitCodeOf({ success: false, code: 143, signal: "SIGTERM" }),
    143,
  );
  assert.equal(exitCodeOf({ success: false, code: 0, signal: "SIGKILL" }), 137);
  assert.equal(exitCodeOf({ success: false, code: 0, signal: "SIGHUP" }), 129);
});

Deno.test("findStoreOverride finds non-file stores", () => {
  const cases: [string[], string | null][] = [
    [
      ["-c", "cli_auth_credentials_store=keyring"],
      "cli_auth_credentials_store=keyring",
    ],
    [
      ["--config", 'cli_auth_credentials_store="auto"'],
      'cli_auth_credentials_store="auto"',
    ],
    [
      ["--config=cli_auth_credentials_store=ephemeral"],
      "cli_auth_credentials_store=ephemeral",
    ],
    [
      ["-ccli_auth_credentials_store=keyring"],
      "cli_auth_credentials_store=keyring",
    ],
    [["exec", "-c", 'cli_auth_credentials_store="file"'], null],
    [["-c", "cli_auth_credentials_store=file"], null],
    [["exec", "cli_auth_credentials_store=keyring"], null],
    [["--", "-c", "cli_auth_credentials_store=keyring"], null],
    [["-c", "model=o3"], null],
  ];
  for (const [args, expected] of cases) {
    assert.equal(findStoreOverride(args), expected, args.join(" "));
  }
});

Deno.test("childEnvironment drops LD variables", () => {
  const { env, dropped } = childEnvironment(
    { PATH: "/bin", LD_PRELOAD: "x.so", LD_LIBRARY_PATH: "/lib", LD_EMPTY: "" },
    "/home/me/.codex",
  );
  assert.deepEqual(dropped, ["LD_LIBRARY_PATH", "LD_PRELOAD"]);
  assert.deepEqual(env, { PATH: "/bin", CODEX_HOME: "/home/me/.codex" });
});

Deno.test("classifyCodexCommand finds login, status and logout", () => {
  const cases: [string[], string][] = [
    [["login"], "login"],
    [["login", "--device-auth"], "login"],
    [["login", "--with-api-key"], "login"],
    [["-c", "model=o3", "--enable", "x", "login"], "login"],
    [["login", "status"], "login-status"],
    [["-p", "work", "login", "status"], "login-status"],
    [["logout"], "logout"],
    [["logout", "--help"], "info"],
    [["login", "-h"], "info"],
    [["--version"], "info"],
    [["exec", "--help"], "info"],
    [["exec", "--", "--help"], "other"],
    [["login", "help"], "other"],
    [["exec", "login"], "other"],
    [["-m", "login", "exec"], "other"],
    [["--", "login"], "other"],
    [[], "other"],
  ];
  for (const [args, expected] of cases) {
    assert.equal(classifyCodexCommand(args), expected, args.join(" "));
  }
});

Deno.test("exitBySignal gives 128 plus n", () => {
  assert.deepEqual(exitBySignal("SIGINT"), { code: 130, signal: "SIGINT" });
  assert.deepEqual(exitBySignal("SIGQUIT"), { code: 131, signal: "SIGQUIT" });
  assert.deepEqual(exitBySignal("SIGTERM"), { code: 143, signal: "SIGTERM" });
});
