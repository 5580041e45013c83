import assert from "node:assert/strict";
import { CliError } from "./output.ts";
import {
  parseArguments,
  parseBoolean,
  parseOptions,
  resolveOptions,
  shorterTtl,
} from "./options.ts";

const HOME = { HOME: "/home/me" };

function usageErrorOf(action: () => unknown): CliError {
  try {
    action();
  } catch (error) {
    assert.ok(error instanceof CliError);
    return error;
  }
  assert.fail("expected a CliError");
}

Deno.test("parseBoolean accepts every word in any case", () => {
  const cases: [string, boolean][] = [
    ["true", true],
    ["FALSE", false],
    ["1", true],
    ["0", false],
    ["Yes", true],
    ["no", false],
    ["ON", true],
    ["off", false],
  ];
  for (const [value, expected] of cases) {
    assert.equal(parseBoolean("X", value, !expected), expected, value);
  }
});

Deno.test("parseBoolean uses the fallback when unset", () => {
  assert.equal(parseBoolean("X", undefined, true), true);
  assert.equal(parseBoolean("X", "", false), false);
});

Deno.test("parseBoolean rejects other words", () => {
  const error = usageErrorOf(() =>
    parseBoolean("SECURE_CODEX_KEEP", "maybe", true)
  );
  assert.equal(error.exitCode, 2);
  assert.match(error.message, /SECURE_CODEX_KEEP/);
  assert.match(error.message, /maybe/);
});

Deno.test("parseOptions defaults", () => {
  const options = parseOptions([], HOME);
  assert.equal(options.mode, "run");
  assert.equal(options.codexHome, "/home/me/.codex");
  assert.equal(options.store, "/home/me/.codex/auth.json.age");
  assert.deepEqual(options.identities, []);
  assert.equal(options.keep, true);
  assert.deepEqual(options.codexArgs, []);
});

Deno.test("parseOptions uses CODEX_HOME for the home and store", () => {
  const options = parseOptions([], { ...HOME, CODEX_HOME: "/srv/codex" });
  assert.equal(options.codexHome, "/srv/codex");
  assert.equal(options.store, "/srv/codex/auth.json.age");
});

Deno.test("parseOptions flags win over variables", () => {
  const env = {
    ...HOME,
    CODEX_HOME: "/a",
    SECURE_CODEX_REAL_CODEX_HOME: "/b",
    SECURE_CODEX_AUTH_ENC: "/b/store.age",
    SECURE_CODEX_IDENTITY: "/b/id1:/b/id2",
    SECURE_CODEX_RECIPIENTS_FILE: "/b/recipients",
    SECURE_CODEX_RAM_DIR: "/b/ram",
  };
  const fromEnv = parseOptions([], env);
  assert.equal(fromEnv.codexHome, "/b");
  assert.equal(fromEnv.store, "/b/store.age");
  assert.deepEqual(fromEnv.identities, ["/b/id1", "/b/id2"]);
  assert.equal(fromEnv.recipientsFile, "/b/recipients");
  assert.equal(fromEnv.ramDir, "/b/ram");

  const fromFlags = parseOptions([
    "--real-codex-home",
    "/c",
    "--auth-enc=/c/store.age",
    "--identity",
    "/c/id",
    "--identity",
    "/c/id2",
    "--recipients-file",
    "/c/recipients",
    "--ram-dir",
    "/c/ram",
  ], env);
  assert.equal(fromFlags.codexHome, "/c");
  assert.equal(fromFlags.store, "/c/store.age");
  assert.deepEqual(fromFlags.identities, ["/c/id", "/c/id2"]);
  assert.equal(fromFlags.recipientsFile, "/c/recipients");
  assert.equal(fromFlags.ramDir, "/c/ram");
});

Deno.test("parseOptions expands a leading tilde", () => {
  const options = parseOptions(["--identity", "~/key.txt"], HOME);
  assert.deepEqual(options.identities, ["/home/me/key.txt"]);
});

Deno.test("parseOptions stops at the first foreign argument", () => {
  const options = parseOptions([
    "--identity",
    "/k",
    "exec",
    "--cleanup",
    "--",
    "x",
  ], HOME);
  assert.equal(options.mode, "run");
  assert.deepEqual(options.codexArgs, ["exec", "--cleanup", "--", "x"]);
});

Deno.test("parseOptions passes unknown options to codex", () => {
  const options = parseOptions(["--model", "o3", "hello"], HOME);
  assert.deepEqual(options.codexArgs, ["--model", "o3", "hello"]);
});

Deno.test("parseOptions passes everything after the separator", () => {
  const options = parseOptions(["--", "--help"], HOME);
  assert.equal(options.mode, "run");
  assert.deepEqual(options.codexArgs, ["--help"]);
});

Deno.test("parseOptions help version and cleanup", () => {
  assert.equal(parseOptions(["-h"], HOME).mode, "help");
  assert.equal(parseOptions(["--help"], HOME).mode, "help");
  assert.equal(parseOptions(["--version"], HOME).mode, "version");
  assert.equal(parseOptions(["--cleanup"], HOME).mode, "cleanup");
  assert.equal(
    parseOptions([], { ...HOME, SECURE_CODEX_CLEANUP: "yes" }).mode,
    "cleanup",
  );
  assert.equal(
    parseOptions([], { ...HOME, SECURE_CODEX_CLEANUP: "off" }).mode,
    "run",
  );
});

Deno.test("parseOptions rejects a missing value", () => {
  for (
    const argv of [["--auth-enc"], ["--identity", "--"], [
      "--ram-dir",
      "--cleanup",
    ]]
  ) {
    const error = usageErrorOf(() => parseOptions(argv, HOME));
    assert.equal(error.exitCode, 2, argv.join(" "));
    assert.match(error.message, /missing value for option/, argv.join(" "));
    assert.ok(error.hints.length > 0, argv.join(" "));
  }
});

Deno.test("parseOptions rejects an empty value", () => {
  const error = usageErrorOf(() => parseOptions(["--auth-enc="], HOME));
  assert.equal(error.exitCode, 2);
  assert.match(error.message, /empty value for option: --auth-enc/);
});

Deno.test("parseOptions rejects cleanup with codex arguments", () => {
  const error = usageErrorOf(() =>
    parseOptions(["--cleanup", "--", "exec"], HOME)
  );
  assert.equal(error.exitCode, 2);
  assert.match(error.message, /--cleanup takes no codex arguments/);

  // Selected by the variable, the message names the variable.
  const fromVariable = usageErrorOf(() =>
    parseOptions(["--", "exec"], { ...HOME, SECURE_CODEX_CLEANUP: "true" })
  );
  assert.equal(fromVariable.exitCode, 2);
  assert.match(
    fromVariable.message,
    /^SECURE_CODEX_CLEANUP takes no codex arguments: exec$/,
  );
  assert.equal(
    fromVariable.hints[0],
    "unset SECURE_CODEX_CLEANUP or set it to false to run codex",
  );
});

Deno.test("parseOptions rejects an invalid KEEP", () => {
  const error = usageErrorOf(() =>
    parseOptions([], { ...HOME, SECURE_CODEX_KEEP: "sometimes" })
  );
  assert.match(error.message, /SECURE_CODEX_KEEP/);
});

Deno.test("parseOptions without HOME needs a codex home", () => {
  const error = usageErrorOf(() => parseOptions([], {}));
  assert.equal(error.exitCode, 2);
  assert.equal(parseOptions([], { CODEX_HOME: "/x" }).codexHome, "/x");
});

Deno.test("parseOptions lifecycle modes", () => {
  assert.equal(parseOptions(["--import"], HOME).mode, "import");
  assert.equal(parseOptions(["--import", "--force"], HOME).force, true);
  assert.equal(parseOptions(["--status"], HOME).mode, "status");
  assert.equal(parseOptions(["--status", "--json"], HOME).json, true);
  assert.equal(parseOptions(["--status"], HOME).json, false);
  const rekey = parseOptions(
    ["--rekey", "--recipients-file", "/new.txt"],
    HOME,
  );
  assert.equal(rekey.mode, "rekey");
  assert.equal(rekey.recipientsFile, "/new.txt");
});

Deno.test("parseOptions: an action flag wins over SECURE_CODEX_CLEANUP", () => {
  const env = { ...HOME, SECURE_CODEX_CLEANUP: "true" };
  assert.equal(parseOptions(["--status"], env).mode, "status");
  assert.equal(parseOptions(["--import"], env).mode, "import");
});

Deno.test("parseOptions rejects two actions", () => {
  const error = usageErrorOf(() =>
    parseOptions(["--import", "--cleanup"], HOME)
  );
  assert.equal(error.exitCode, 2);
  assert.match(error.message, /options cannot be combined: --import --cleanup/);
});

Deno.test("parseOptions rejects misplaced json, force and rekey", () => {
  const cases: [string[], RegExp][] = [
    [["--json"], /--json works only with --status/],
    [["--import", "--json"], /--json works only with --status/],
    [["--status", "--force"], /--force works only with --cleanup or --import/],
    [["--force"], /--force works only with --cleanup or --import/],
    [["--rekey"], /--rekey needs the new recipients/],
    [["--status", "--", "exec"], /--status takes no codex arguments: exec/],
    [["--import", "login"], /--import takes no codex arguments: login/],
  ];
  for (const [argv, expected] of cases) {
    const error = usageErrorOf(() => parseOptions(argv, HOME));
    assert.equal(error.exitCode, 2, argv.join(" "));
    assert.match(error.message, expected, argv.join(" "));
  }
});

Deno.test("parseOptions rejects a mistyped option of ours", () => {
  const cases: [string[], string][] = [
    [["--stauts"], "--status"],
    [["--identiy", "/k.txt"], "--identity"],
    [["--unlok"], "--unlock"],
    [["--recipient-file=/r.txt"], "--recipients-file"],
  ];
  for (const [argv, suggestion] of cases) {
    const error = usageErrorOf(() => parseOptions(argv, HOME));
    assert.equal(error.exitCode, 2, argv.join(" "));
    assert.match(error.message, /^unknown option: --/, argv.join(" "));
    assert.ok(error.message.includes(`did you mean ${suggestion}?`), argv[0]);
  }
});

Deno.test("parseOptions passes codex options and far words through", () => {
  for (
    const argv of [
      ["--model", "o3", "exec", "hi"],
      ["--search"],
      ["--no-daemon"],
      ["--dangerously-bypass-approvals-and-sandbox", "exec", "x"],
      ["--something-else"],
      ["--", "--stauts"],
      ["exec", "--stauts"],
    ]
  ) {
    const options = parseOptions(argv, HOME);
    assert.equal(options.mode, "run", argv.join(" "));
  }
});

Deno.test("shorterTtl treats non-positive values as none", () => {
  const cases: [number, number, number][] = [
    [3600, 600, 600],
    [600, 3600, 600],
    [3600, 0, 3600],
    [0, 3600, 3600],
    [0, 0, 0],
    [0, -5, 0],
    [5, Number.NaN, 5],
    [Number.POSITIVE_INFINITY, 5, 5],
  ];
  for (const [a, b, expected] of cases) {
    assert.equal(shorterTtl(a, b), expected, `shorterTtl(${a}, ${b})`);
  }
});

Deno.test("completions and the profile list ignore run settings in the environment", () => {
  const env = {
    HOME: "/home/me",
    SECURE_CODEX_PROFILE: "missing",
    SECURE_CODEX_KEEP: "maybe",
    SECURE_CODEX_TTL: "soon",
  };
  const config = {
    path: "/home/me/.config/secure-codex/config.jsonc",
    settings: {},
    profiles: { work: {} },
  };
  const completions = resolveOptions(
    parseArguments(["--completions", "zsh"]),
    env,
    null,
  );
  assert.equal(completions.mode, "completions");
  assert.equal(completions.shell, "zsh");
  assert.equal(
    resolveOptions(parseArguments(["--list-profiles"]), env, config).mode,
    "list-profiles",
  );
  // A run still reads them.
  assert.throws(
    () => resolveOptions(parseArguments([]), env, config),
    /profile not found: missing/,
  );
});

Deno.test("rekey takes recipientsFile from the config file", () => {
  const options = resolveOptions(parseArguments(["--rekey"]), HOME, {
    path: "/home/me/.config/secure-codex/config.jsonc",
    settings: { recipientsFile: "/home/me/new-recipients.txt" },
    profiles: {},
  });
  assert.equal(options.mode, "rekey");
  assert.equal(options.recipientsFile, "/home/me/new-recipients.txt");
});

Deno.test("all profiles reject one profile's variables", () => {
  const argv = ["--watch", "--all-profiles"];
  for (
    const name of [
      "SECURE_CODEX_REAL_CODEX_HOME",
      "SECURE_CODEX_AUTH_ENC",
      "SECURE_CODEX_RAM_DIR",
    ]
  ) {
    const error = usageErrorOf(() =>
      parseOptions(argv, { ...HOME, [name]: "/x" })
    );
    assert.equal(error.exitCode, 2, name);
    assert.equal(
      error.message,
      `--all-profiles cannot be combined with ${name}: it would apply to every profile`,
    );
  }
  // Empty counts as unset, as everywhere else.
  const options = parseOptions(argv, { ...HOME, SECURE_CODEX_RAM_DIR: "" });
  assert.equal(options.allProfiles, true);
});
