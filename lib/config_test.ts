import assert from "node:assert/strict";
import { join } from "./path.ts";
import { CliError } from "./output.ts";
import {
  type ConfigFile,
  loadConfig,
  MAX_CONFIG_BYTES,
  parseConfig,
} from "./config.ts";
import {
  configLocation,
  type Environment,
  formatDuration,
  isValidProfileName,
  type Options,
  parseArguments,
  parseDuration,
  parseOptions,
  resolveOptions,
} from "./options.ts";

const HOME = "/home/me";
const CONFIG_PATH = "/home/me/.config/secure-codex/config.jsonc";

function cliErrorOf(action: () => unknown): CliError {
  try {
    action();
  } catch (error) {
    assert.ok(error instanceof CliError, String(error));
    return error;
  }
  assert.fail("expected a CliError");
}

function parse(text: string, home: string | undefined = HOME): ConfigFile {
  return parseConfig(text, CONFIG_PATH, home);
}

function lines(...parts: string[]): string {
  return parts.join("\n");
}

// ---------------------------------------------------------------------------
// Precedence: flag > variable > selected profile > top level > default.

/** Where a setting can come from, highest first. */
type Level = "flag" | "variable" | "profile" | "top";

/**
 * One setting. `text` gives the value set at a level: the flag or variable
 * text, or a JSONC literal for the two config levels. Every level has a
 * value of its own, so the result shows which level won. `wins` matters only
 * for `keep`: a boolean has two values, so the level expected to win gets the
 * value that differs from the others and from the default.
 */
interface PrecedenceRow {
  key: string;
  field: keyof Options;
  flag?: string;
  variable: string;
  /** Whether a named profile inherits the top-level value. */
  inherited: boolean;
  text(level: Level, wins: boolean): string;
  expected(level: Level, wins: boolean): unknown;
  fallback(profile: string): unknown;
}

function pathRow(
  key: string,
  field: keyof Options,
  flag: string,
  variable: string,
  file: string,
  inherited: boolean,
  fallback: (profile: string) => unknown,
): PrecedenceRow {
  const value = (level: Level) => `/${level}/${file}`;
  return {
    key,
    field,
    flag,
    variable,
    inherited,
    text: (level) =>
      level === "profile" || level === "top"
        ? JSON.stringify(value(level))
        : value(level),
    expected: (level) => value(level),
    fallback,
  };
}

const TTL_TEXT: Record<Level, [string, number]> = {
  flag: ["90s", 90],
  variable: ["2m", 120],
  profile: ["3h", 3 * 3600],
  top: ["1d", 86400],
};

const PRECEDENCE_ROWS: PrecedenceRow[] = [
  pathRow(
    "codexHome",
    "codexHome",
    "--real-codex-home",
    "SECURE_CODEX_REAL_CODEX_HOME",
    "codex-home",
    false,
    (profile) =>
      profile === "default" ? "/home/me/.codex" : `/home/me/.codex-${profile}`,
  ),
  pathRow(
    "store",
    "store",
    "--auth-enc",
    "SECURE_CODEX_AUTH_ENC",
    "auth.json.age",
    false,
    (profile) =>
      profile === "default"
        ? "/home/me/.codex/auth.json.age"
        : `/home/me/.codex-${profile}/auth.json.age`,
  ),
  {
    key: "identities",
    field: "identities",
    flag: "--identity",
    variable: "SECURE_CODEX_IDENTITY",
    inherited: true,
    // Colon-separated for the variable; one --identity per part for the flag.
    text: (level) =>
      level === "profile" || level === "top"
        ? `["/${level}/id-1", "/${level}/id-2",]`
        : `/${level}/id-1:/${level}/id-2`,
    expected: (level) => [`/${level}/id-1`, `/${level}/id-2`],
    fallback: () => [],
  },
  pathRow(
    "recipientsFile",
    "recipientsFile",
    "--recipients-file",
    "SECURE_CODEX_RECIPIENTS_FILE",
    "recipients.txt",
    true,
    () => undefined,
  ),
  pathRow(
    "ramDir",
    "ramDir",
    "--ram-dir",
    "SECURE_CODEX_RAM_DIR",
    "ram",
    false,
    () => undefined,
  ),
  {
    key: "keep",
    field: "keep",
    variable: "SECURE_CODEX_KEEP",
    inherited: true,
    // The default is true, so the winning level sets false.
    text: (level, wins) =>
      level === "profile" || level === "top"
        ? String(!wins)
        : (wins ? "no" : "yes"),
    expected: (_level, wins) => !wins,
    fallback: () => true,
  },
  {
    key: "ttl",
    field: "ttlSeconds",
    flag: "--ttl",
    variable: "SECURE_CODEX_TTL",
    inherited: true,
    text: (level) =>
      level === "profile" || level === "top"
        ? JSON.stringify(TTL_TEXT[level][0])
        : TTL_TEXT[level][0],
    expected: (level) => TTL_TEXT[level][1],
    fallback: () => 0,
  },
];

/** Builds a config file with the key at the top level and in profile "work". */
function precedenceConfig(
  key: string,
  top: string | undefined,
  profile: string | undefined,
): string {
  const entry = (value: string | undefined) =>
    value === undefined ? "" : `"${key}": ${value},`;
  return lines(
    "{",
    "  // the top level, which is also the default profile",
    `  ${entry(top)}`,
    '  "profiles": {',
    `    "work": { ${entry(profile)} },`,
    "  },",
    "}",
  );
}

/**
 * Resolves `row` with the levels in `present` set (true for the level that
 * should win) and returns the resolved field. With the default profile
 * selected, profile "work" always sets a value, which must never win.
 */
function resolveRow(
  row: PrecedenceRow,
  profile: "default" | "work",
  present: Partial<Record<Level, boolean>>,
  extraEnv: Record<string, string> = {},
): unknown {
  const argv = profile === "work" ? ["--profile", "work"] : [];
  if (present.flag !== undefined) {
    assert.ok(row.flag !== undefined, `${row.key} has no flag`);
    for (const part of row.text("flag", present.flag).split(":")) {
      argv.push(row.flag, part);
    }
  }
  const env: Record<string, string> = { HOME, ...extraEnv };
  if (present.variable !== undefined) {
    env[row.variable] = row.text("variable", present.variable);
  }
  const top = present.top === undefined
    ? undefined
    : row.text("top", present.top);
  const inProfile = present.profile !== undefined
    ? row.text("profile", present.profile)
    : profile === "default"
    ? row.text("profile", false)
    : undefined;
  const config = parse(precedenceConfig(row.key, top, inProfile));
  return resolveOptions(parseArguments(argv), env, config)[row.field];
}

function describe(
  row: PrecedenceRow,
  profile: string,
  present: Partial<Record<Level, boolean>>,
): string {
  const levels = Object.keys(present).join(" + ") || "nothing set";
  return `${row.key}, profile ${profile}, ${levels}`;
}

for (const row of PRECEDENCE_ROWS) {
  Deno.test(`precedence of ${row.key}`, () => {
    for (const profile of ["default", "work"] as const) {
      // For the default profile the top level is the selected profile.
      const order: Level[] = [
        ...(row.flag !== undefined ? ["flag" as const] : []),
        "variable",
        ...(profile === "work" ? ["profile" as const] : []),
        ...(profile === "default" || row.inherited ? ["top" as const] : []),
      ];

      const nothing = {};
      assert.deepEqual(
        resolveRow(row, profile, nothing),
        row.fallback(profile),
        describe(row, profile, nothing),
      );
      for (let i = 0; i < order.length; i++) {
        const winner = order[i];
        const expected = row.expected(winner, true);
        // Alone, over the default.
        const alone = { [winner]: true };
        assert.deepEqual(
          resolveRow(row, profile, alone),
          expected,
          describe(row, profile, alone),
        );
        // Against each lower level on its own.
        for (const loser of order.slice(i + 1)) {
          const pair = { [winner]: true, [loser]: false };
          assert.deepEqual(
            resolveRow(row, profile, pair),
            expected,
            describe(row, profile, pair),
          );
        }
        // Against every lower level at once.
        const all = Object.fromEntries(
          order.slice(i).map((level) => [level, level === winner]),
        );
        assert.deepEqual(
          resolveRow(row, profile, all),
          expected,
          describe(row, profile, all),
        );
      }

      // An empty variable counts as unset.
      const below = profile === "work" ? "profile" : "top";
      assert.deepEqual(
        resolveRow(row, profile, { [below]: true }, { [row.variable]: "" }),
        row.expected(below, true),
        `${row.key}, profile ${profile}, empty ${row.variable}`,
      );
    }

    if (!row.inherited) {
      // A named profile never inherits this key from the top level.
      assert.deepEqual(
        resolveRow(row, "work", { top: true }),
        row.fallback("work"),
        `${row.key}: top level must not reach profile work`,
      );
      assert.deepEqual(
        resolveRow(row, "work", { profile: true, top: false }),
        row.expected("profile", true),
        `${row.key}: profile work over the top level`,
      );
    }
  });
}

Deno.test("a configured store stays with its codex home", () => {
  const config = parse(
    '{ "codexHome": "~/.codex", "store": "~/secrets/auth.json.age", ' +
      '"profiles": { "work": { "store": "~/secrets/work.age" } } }',
  );
  const storeFor = (argv: string[], env: Record<string, string>) =>
    resolveOptions(parseArguments(argv), { HOME, ...env }, config).store;
  // The config file's own home, however it is reached, keeps the store.
  assert.equal(storeFor([], {}), "/home/me/secrets/auth.json.age");
  assert.equal(
    storeFor([], { CODEX_HOME: "/home/me/.codex" }),
    "/home/me/secrets/auth.json.age",
  );
  // Another home is another login: a login there must not replace the
  // configured store, so it gets the store beside it.
  assert.equal(
    storeFor([], { CODEX_HOME: "/home/me/.codex-test" }),
    "/home/me/.codex-test/auth.json.age",
  );
  assert.equal(
    storeFor(["--real-codex-home", "/tmp/other"], {}),
    "/tmp/other/auth.json.age",
  );
  assert.equal(
    storeFor([], { SECURE_CODEX_REAL_CODEX_HOME: "/tmp/other" }),
    "/tmp/other/auth.json.age",
  );
  // A store given by a flag or variable still goes with any home.
  assert.equal(
    storeFor(["--real-codex-home", "/tmp/other", "--auth-enc", "/s.age"], {}),
    "/s.age",
  );
  // A named profile's store belongs to its default home, ~/.codex-work.
  assert.equal(
    storeFor(["--profile", "work"], {}),
    "/home/me/secrets/work.age",
  );
  assert.equal(
    storeFor(["--profile", "work", "--real-codex-home", "/tmp/w"], {}),
    "/tmp/w/auth.json.age",
  );
});

Deno.test("CODEX_HOME applies to default profile only", () => {
  const env = { HOME, CODEX_HOME: "/srv/codex" };
  const profiles = parse('{ "profiles": { "work": {} } }');
  const byDefault = resolveOptions(parseArguments([]), env, profiles);
  assert.equal(byDefault.codexHome, "/srv/codex");
  assert.equal(byDefault.store, "/srv/codex/auth.json.age");

  const named = resolveOptions(
    parseArguments(["--profile", "work"]),
    env,
    profiles,
  );
  assert.equal(named.codexHome, "/home/me/.codex-work");
  assert.equal(named.store, "/home/me/.codex-work/auth.json.age");

  // CODEX_HOME is a variable, so it wins over the top level's codexHome,
  // which applies once CODEX_HOME is unset.
  const top = parse('{ "codexHome": "/top/codex-home" }');
  assert.equal(
    resolveOptions(parseArguments([]), env, top).codexHome,
    "/srv/codex",
  );
  assert.equal(
    resolveOptions(parseArguments([]), { HOME }, top).codexHome,
    "/top/codex-home",
  );
  assert.equal(
    resolveOptions(parseArguments([]), {
      ...env,
      SECURE_CODEX_REAL_CODEX_HOME: "/variable/codex-home",
    }, top).codexHome,
    "/variable/codex-home",
  );
  // Without any config file CODEX_HOME still applies.
  assert.equal(parseOptions([], env).codexHome, "/srv/codex");
});

Deno.test("store default follows codex home", () => {
  const config = parse(lines(
    "{",
    '  "codexHome": "/top/codex-home",',
    '  "profiles": {',
    '    "work": { "codexHome": "/profile/codex-home" },',
    '    "home": {},',
    "  },",
    "}",
  ));
  const cases: [string, string[], Environment, ConfigFile | null, string][] = [
    ["default", [], { HOME }, null, "/home/me/.codex"],
    ["CODEX_HOME", [], { HOME, CODEX_HOME: "/env/codex" }, null, "/env/codex"],
    ["top level", [], { HOME }, config, "/top/codex-home"],
    ["profile", ["--profile", "work"], { HOME }, config, "/profile/codex-home"],
    [
      "named profile default",
      ["--profile", "home"],
      { HOME, CODEX_HOME: "/env/codex" },
      config,
      "/home/me/.codex-home",
    ],
    [
      "variable",
      ["--profile", "work"],
      { HOME, SECURE_CODEX_REAL_CODEX_HOME: "/variable/codex-home" },
      config,
      "/variable/codex-home",
    ],
    [
      "flag",
      ["--profile", "work", "--real-codex-home", "~/flag-home"],
      { HOME, SECURE_CODEX_REAL_CODEX_HOME: "/variable/codex-home" },
      config,
      "/home/me/flag-home",
    ],
  ];
  for (const [label, argv, env, file, codexHome] of cases) {
    const options = resolveOptions(parseArguments(argv), env, file);
    assert.equal(options.codexHome, codexHome, label);
    assert.equal(options.store, `${codexHome}/auth.json.age`, label);
  }
});

Deno.test("--profile beats SECURE_CODEX_PROFILE", () => {
  const config = parse(lines(
    "{",
    '  "codexHome": "/top/codex-home",',
    '  "profiles": {',
    '    "work": { "codexHome": "/work/codex-home" },',
    '    "home": { "codexHome": "/home/codex-home" },',
    "  },",
    "}",
  ));
  const env = { HOME, SECURE_CODEX_PROFILE: "home" };
  const cases: [string[], Environment, string, string][] = [
    [["--profile", "work"], env, "work", "/work/codex-home"],
    [["--profile=default"], env, "default", "/top/codex-home"],
    [[], env, "home", "/home/codex-home"],
    [[], { HOME, SECURE_CODEX_PROFILE: "" }, "default", "/top/codex-home"],
    [[], { HOME }, "default", "/top/codex-home"],
  ];
  for (const [argv, environment, profile, codexHome] of cases) {
    const label = `${argv.join(" ")} ${JSON.stringify(environment)}`;
    const options = resolveOptions(parseArguments(argv), environment, config);
    assert.equal(options.profile, profile, label);
    assert.equal(options.codexHome, codexHome, label);
  }
});

Deno.test("profile false, 0, [] beat top level", () => {
  const config = parse(lines(
    "{",
    '  "identities": ["/top/id"],',
    '  "keep": true,',
    '  "ttl": "8h",',
    '  "profiles": {',
    '    "work": { "identities": [], "keep": false, "ttl": "0" },',
    "  },",
    "}",
  ));
  const options = parseOptions(["--profile", "work"], { HOME }, config);
  assert.deepEqual(options.identities, []);
  assert.equal(options.keep, false);
  assert.equal(options.ttlSeconds, 0);
  // And a flag or variable of 0 beats the config file's TTL.
  assert.equal(parseOptions(["--ttl", "0"], { HOME }, config).ttlSeconds, 0);
  assert.equal(
    parseOptions([], { HOME, SECURE_CODEX_TTL: "0" }, config).ttlSeconds,
    0,
  );
});

// ---------------------------------------------------------------------------
// JSONC

Deno.test("parseConfig: comments and trailing commas", () => {
  const config = parse(lines(
    "// secure-codex settings",
    "{",
    "  /* a block comment",
    '     spanning lines, with "quotes" and { braces } */',
    '  "identities": [',
    '    "/keys/a.txt", // the laptop key',
    '    /* inline */ "/keys/b.txt",',
    "  ],",
    '  "keep": false, // forget the plaintext',
    '  "ttl": "1h30m",',
    '  "profiles": {',
    '    "work": {',
    '      "codexHome": "/work/codex",',
    '      "ttl": "0",',
    "    },",
    "  },",
    "}",
    "// trailing comment",
  ));
  assert.deepEqual(config, {
    path: CONFIG_PATH,
    settings: {
      identities: ["/keys/a.txt", "/keys/b.txt"],
      keep: false,
      ttlSeconds: 5400,
    },
    profiles: { work: { codexHome: "/work/codex", ttlSeconds: 0 } },
  });
});

Deno.test("parseConfig: ~/ expands against HOME", () => {
  const config = parse(
    lines(
      "{",
      '  "codexHome": "~/.codex",',
      '  "identities": ["~/.config/age/key.txt", "~"],',
      '  "profiles": { "work": { "store": "~/stores/work.age" } },',
      "}",
    ),
    "/users/someone",
  );
  assert.equal(config.settings.codexHome, "/users/someone/.codex");
  assert.deepEqual(config.settings.identities, [
    "/users/someone/.config/age/key.txt",
    "/users/someone",
  ]);
  assert.equal(config.profiles.work.store, "/users/someone/stores/work.age");
});

Deno.test("parseConfig: relative paths use file directory", () => {
  const config = parse(lines(
    "{",
    '  "recipientsFile": "recipients.txt",',
    '  "identities": ["./key.txt", "../age/key.txt"],',
    '  "ramDir": "/run/user/1000//sc/./ram/",',
    '  "profiles": {',
    '    "work": { "codexHome": "homes/work", "store": "~user/x.age" },',
    "  },",
    "}",
  ));
  const dir = "/home/me/.config/secure-codex";
  assert.equal(config.settings.recipientsFile, `${dir}/recipients.txt`);
  assert.deepEqual(config.settings.identities, [
    `${dir}/key.txt`,
    "/home/me/.config/age/key.txt",
  ]);
  assert.equal(config.settings.ramDir, "/run/user/1000/sc/ram");
  assert.equal(config.profiles.work.codexHome, `${dir}/homes/work`);
  // Only "~" and "~/" are expanded; "~user" is a relative path.
  assert.equal(config.profiles.work.store, `${dir}/~user/x.age`);
});

// ---------------------------------------------------------------------------
// Errors name the file, line and column.

/** [what, text, "line:column", the message after the position]. */
const POSITION_CASES: [string, string, string, RegExp][] = [
  [
    "syntax: missing comma",
    lines("{", '  "keep": true', '  "ttl": "1h"', "}"),
    "3:3",
    /^JSONC syntax error: expected "," between entries/,
  ],
  [
    "syntax: bad literal after a comment",
    lines("{", "  // fine so far", '  "keep": tru,', "}"),
    "3:11",
    /^JSONC syntax error: invalid character$/,
  ],
  [
    "unknown top-level key",
    lines("{", '  "keep": true,', '  "kepp": false,', "}"),
    "3:3",
    /^unknown key "kepp"$/,
  ],
  [
    "unknown key in a profile",
    lines(
      "{",
      '  "profiles": {',
      '    "work": {',
      '      "ttl": "1h",',
      '      "codex_home": "~/.codex-w",',
      "    },",
      "  },",
      "}",
    ),
    "5:7",
    /^unknown key "codex_home" in profile "work"$/,
  ],
  [
    "duplicate top-level key",
    lines("{", '  "store": "~/a.age",', '  "store": "~/b.age",', "}"),
    "3:3",
    /^duplicate key "store"$/,
  ],
  [
    "duplicate key in a profile",
    lines(
      "{",
      '  "profiles": {',
      '    "work": { "ttl": "1h", "ttl": "8h" },',
      "  },",
      "}",
    ),
    "3:28",
    /^duplicate key "ttl" in profile "work"$/,
  ],
  [
    "duplicate profile",
    lines(
      "{",
      '  "profiles": {',
      '    "work": {},',
      '    "work": { "keep": false },',
      "  },",
      "}",
    ),
    "4:5",
    /^duplicate profile "work"$/,
  ],
  [
    "path: a number",
    lines("{", '  "store": 42,', "}"),
    "2:12",
    /^"store" must be a non-empty string \(a path\)$/,
  ],
  [
    "path: an array, in a profile",
    lines(
      "{",
      '  "profiles": {',
      '    "work": { "codexHome": ["~/.codex-work"] },',
      "  },",
      "}",
    ),
    "3:28",
    /^"codexHome" must be a non-empty string \(a path\)$/,
  ],
  [
    "path: empty",
    lines("{", '  "recipientsFile": "",', "}"),
    "2:21",
    /^"recipientsFile" must be a non-empty string \(a path\)$/,
  ],
  [
    "path: a boolean",
    lines("{", '  "ramDir": false,', "}"),
    "2:13",
    /^"ramDir" must be a non-empty string \(a path\)$/,
  ],
  [
    "identities: a string",
    lines("{", '  "identities": "~/key.txt",', "}"),
    "2:17",
    /^"identities" must be an array of paths$/,
  ],
  [
    "identities: an item that is not a string",
    lines("{", '  "identities": [', '    "~/a.txt",', "    null,", "  ],", "}"),
    "4:5",
    /^"identities" must be a non-empty string \(a path\)$/,
  ],
  [
    "keep: a string",
    lines("{", '  "keep": "yes",', "}"),
    "2:11",
    /^"keep" must be true or false$/,
  ],
  [
    "ttl: a number",
    lines("{", '  "ttl": 3600,', "}"),
    "2:10",
    /^"ttl" must be a duration such as "30m", "8h", "1d" or "0" \(never\)$/,
  ],
  [
    "ttl: a fraction, in a profile",
    lines(
      "{",
      '  "profiles": {',
      '    "work": {',
      '      "ttl": "1.5h",',
      "    },",
      "  },",
      "}",
    ),
    "4:14",
    /^"ttl" must be a duration/,
  ],
  [
    "invalid profile name",
    lines(
      "{",
      '  "profiles": {',
      '    "work": {},',
      '    "../work": {},',
      "  },",
      "}",
    ),
    "4:5",
    /^invalid profile name "\.\.\/work"$/,
  ],
  [
    'a profile named "default"',
    lines(
      "{",
      '  "profiles": {',
      '    "default": { "keep": false },',
      "  },",
      "}",
    ),
    "3:5",
    /^invalid profile name "default"$/,
  ],
  [
    "a profile that is not an object",
    lines("{", '  "profiles": {', '    "work": "~/.codex-work",', "  },", "}"),
    "3:13",
    /^profile "work" must be an object$/,
  ],
  [
    "profiles: an array",
    lines("{", '  "keep": true,', '  "profiles": ["work"],', "}"),
    "3:15",
    /^"profiles" must be an object of profiles$/,
  ],
  [
    "top level: an array",
    lines("// settings", "[", '  { "keep": true },', "]"),
    "2:1",
    /^expected a JSON object at the top level$/,
  ],
];

Deno.test("parseConfig: errors give path:line:column", () => {
  for (const [what, text, position, message] of POSITION_CASES) {
    const error = cliErrorOf(() => parse(text));
    const prefix = `invalid config file: ${CONFIG_PATH}:${position}: `;
    assert.ok(
      error.message.startsWith(prefix),
      `${what}: expected ${JSON.stringify(prefix)} in ${
        JSON.stringify(error.message)
      }`,
    );
    assert.match(error.message.slice(prefix.length), message, what);
    assert.ok(error.hints.length > 0, what);
  }
});

Deno.test("parseConfig: profiles sharing a login are rejected", () => {
  const cases: [string, string, RegExp][] = [
    [
      "store",
      '{ "profiles": { "a": {}, "b": { "store": "~/.codex-a/auth.json.age" } } }',
      /profiles "a" and "b" share the store \/home\/me\/\.codex-a\/auth\.json\.age$/,
    ],
    [
      "store of the default profile",
      '{ "profiles": { "b": { "store": "~/.codex/auth.json.age" } } }',
      /profiles "default" and "b" share the store /,
    ],
    [
      "RAM directory",
      '{ "ramDir": "/run/r", "profiles": { "b": { "ramDir": "/run/r" } } }',
      /profiles "default" and "b" share the RAM directory \/run\/r$/,
    ],
    [
      "home with another store",
      '{ "profiles": { "a": {}, "b": { "codexHome": "~/.codex-a", "store": "/s.age" } } }',
      /profiles "a" and "b" share the codex home \/home\/me\/\.codex-a but not its store and RAM directory$/,
    ],
    [
      "home with another RAM directory",
      '{ "profiles": { "a": {}, "b": { "codexHome": "~/.codex-a", "ramDir": "/run/r" } } }',
      /share the codex home .* but not its store and RAM directory$/,
    ],
  ];
  for (const [what, text, message] of cases) {
    const error = cliErrorOf(() => parse(text));
    assert.match(error.message, message, what);
    assert.match(error.hints[0], /^give each profile its own /, what);
  }
});

Deno.test("parseConfig: one session under two profile names", () => {
  const config = parse(
    '{ "profiles": { "main": { "codexHome": "~/.codex" }, "a": { "ramDir": "/run/a" }, "b": { "ramDir": "/run/b" } } }',
  );
  assert.deepEqual(Object.keys(config.profiles), ["main", "a", "b"]);
});

Deno.test("parseConfig: shared files through symlinks", () =>
  withTempDir((dir) => {
    Deno.mkdirSync(join(dir, ".codex"));
    Deno.mkdirSync(join(dir, "s"));
    Deno.symlinkSync(join(dir, ".codex"), join(dir, "codexlink"));
    Deno.symlinkSync(join(dir, "s"), join(dir, "slink"));
    const parseIn = (text: string) =>
      parseConfig(text, join(dir, "config.jsonc"), dir);

    const shared = cliErrorOf(() =>
      parseIn(
        '{ "profiles": { "a": { "store": "~/s/a.age" }, "b": { "store": "~/slink/a.age" } } }',
      )
    );
    assert.match(shared.message, /profiles "a" and "b" share the store /);
    const home = cliErrorOf(() =>
      parseIn(
        '{ "profiles": { "alias": { "codexHome": "~/codexlink", "store": "~/s/other.age" } } }',
      )
    );
    assert.match(
      home.message,
      /profiles "default" and "alias" share the codex home .* but not its store and RAM directory$/,
    );
    // The same home and store, spelled through links, is one session.
    const alias = parseIn(
      '{ "store": "~/s/a.age", "profiles": { "alias": { "codexHome": "~/codexlink", "store": "~/slink/a.age" } } }',
    );
    assert.deepEqual(Object.keys(alias.profiles), ["alias"]);
  }));

Deno.test("parseConfig: NUL in a path", () => {
  const error = cliErrorOf(() => parse('{ "codexHome": "a\\u0000b" }'));
  assert.equal(
    error.message,
    `invalid config file: ${CONFIG_PATH}:1:16: "codexHome" must not contain a NUL character`,
  );
});

Deno.test("parseConfig: ~/ without HOME", () => {
  const text = lines("{", '  "identities": ["~/key.txt"],', "}");
  const error = cliErrorOf(() => parseConfig(text, CONFIG_PATH, undefined));
  assert.equal(
    error.message,
    `invalid config file: ${CONFIG_PATH}:2:18: cannot expand "~" in "identities": HOME is unset`,
  );
});

Deno.test("parseConfig: unknown key hint lists keys", () => {
  const top = cliErrorOf(() => parse('{ "ttl": "1h", "keeps": true }'));
  assert.deepEqual(top.hints, [
    "known keys: codexHome, store, identities, recipientsFile, ramDir, keep, ttl, profiles",
  ]);
  // A profile cannot contain profiles, so its hint leaves "profiles" out.
  const inProfile = cliErrorOf(() =>
    parse('{ "profiles": { "work": { "profiles": {} } } }')
  );
  assert.match(inProfile.message, /unknown key "profiles" in profile "work"$/);
  assert.deepEqual(inProfile.hints, [
    "known keys: codexHome, store, identities, recipientsFile, ramDir, keep, ttl",
  ]);
});

Deno.test("parseConfig: Object.prototype names are unknown keys", () => {
  // KEYS is a plain object, so KEYS["constructor"] is Object, not undefined.
  for (const key of ["constructor", "toString", "hasOwnProperty", "valueOf"]) {
    for (
      const text of [
        `{\n  "${key}": "x"\n}`,
        `{\n  "profiles": {\n    "work": {\n      "${key}": "x"\n    }\n  }\n}`,
      ]
    ) {
      let error: unknown = null;
      try {
        parse(text);
      } catch (caught) {
        error = caught;
      }
      assert.ok(
        error instanceof CliError,
        `unknown key "${key}" was accepted in ${JSON.stringify(text)}`,
      );
      assert.match(error.message, new RegExp(`unknown key "${key}"`));
    }
  }
});

// ---------------------------------------------------------------------------
// loadConfig

async function withTempDir(body: (dir: string) => Promise<void> | void) {
  const dir = await Deno.makeTempDir({ prefix: "config_test_" });
  try {
    await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("loadConfig: missing default file", () =>
  withTempDir((dir) => {
    for (
      const path of [
        join(dir, "config.jsonc"),
        join(dir, "no-such-dir", "secure-codex", "config.jsonc"),
      ]
    ) {
      assert.equal(loadConfig(path, { required: false, home: HOME }), null);
    }
  }));

Deno.test("loadConfig: dangling symlink at the default path", () =>
  withTempDir((dir) => {
    const path = join(dir, "config.jsonc");
    const target = join(dir, "unmounted", "config.jsonc");
    Deno.symlinkSync(target, path);
    for (const required of [false, true]) {
      const error = cliErrorOf(() =>
        loadConfig(path, { required, home: HOME })
      );
      assert.equal(
        error.message,
        `config file is a symlink to a missing file: ${path} -> ${target}`,
      );
      assert.deepEqual(error.hints, [
        "restore the file it points to, or remove the link",
      ]);
    }
  }));

Deno.test("loadConfig: missing named file", () =>
  withTempDir((dir) => {
    const path = join(dir, "missing.jsonc");
    const error = cliErrorOf(() =>
      loadConfig(path, { required: true, home: HOME })
    );
    assert.equal(error.message, `config file not found: ${path}`);
    assert.ok(error.hints.length > 0);
  }));

Deno.test("loadConfig: directory", () =>
  withTempDir((dir) => {
    for (const required of [true, false]) {
      const error = cliErrorOf(() => loadConfig(dir, { required, home: HOME }));
      assert.equal(
        error.message,
        `config file is not a regular file: ${dir}`,
        `required: ${required}`,
      );
    }
  }));

Deno.test("loadConfig: non-UTF-8 text", () =>
  withTempDir(async (dir) => {
    const path = join(dir, "config.jsonc");
    const valid = new TextEncoder().encode('{ "keep": true } // ');
    await Deno.writeFile(path, new Uint8Array([...valid, 0xff, 0xfe, 0x0a]));
    const error = cliErrorOf(() =>
      loadConfig(path, { required: true, home: HOME })
    );
    assert.equal(error.message, `config file is not UTF-8 text: ${path}`);
  }));

Deno.test("loadConfig: size limit", () =>
  withTempDir(async (dir) => {
    // Valid JSONC padded with a comment, so only the size can fail it.
    const padded = (size: number) => {
      const head = '{ "keep": false }\n//';
      return head + "x".repeat(size - head.length);
    };
    const path = join(dir, "config.jsonc");
    await Deno.writeTextFile(path, padded(MAX_CONFIG_BYTES));
    assert.deepEqual(
      loadConfig(path, { required: true, home: HOME })?.settings,
      { keep: false },
    );
    await Deno.writeTextFile(path, padded(MAX_CONFIG_BYTES + 1));
    const error = cliErrorOf(() =>
      loadConfig(path, { required: true, home: HOME })
    );
    assert.equal(
      error.message,
      `config file is too large (${
        MAX_CONFIG_BYTES + 1
      } bytes, limit ${MAX_CONFIG_BYTES}): ${path}`,
    );
  }));

Deno.test("loadConfig: relative paths and BOM", () =>
  withTempDir(async (dir) => {
    const path = join(dir, "sub", "config.jsonc");
    await Deno.mkdir(join(dir, "sub"));
    // With a byte order mark, as some editors write.
    await Deno.writeTextFile(
      path,
      '\uFEFF{ "identities": ["key.txt", "../other.txt", "~/k"] }',
    );
    const config = loadConfig(path, { required: false, home: "/h" });
    assert.deepEqual(config?.settings.identities, [
      join(dir, "sub", "key.txt"),
      join(dir, "other.txt"),
      "/h/k",
    ]);
    assert.equal(config?.path, path);
  }));

// ---------------------------------------------------------------------------
// configLocation

Deno.test("configLocation: precedence and explicit flag", () => {
  const env = {
    HOME,
    SECURE_CODEX_CONFIG: "/variable/config.jsonc",
    XDG_CONFIG_HOME: "/xdg",
  };
  const cases: [string[], Environment, string, boolean][] = [
    [["--config", "/flag/config.jsonc"], env, "/flag/config.jsonc", true],
    [["--config=~/c.jsonc"], env, "/home/me/c.jsonc", true],
    [[], env, "/variable/config.jsonc", true],
    [
      [],
      { ...env, SECURE_CODEX_CONFIG: "~/v.jsonc" },
      "/home/me/v.jsonc",
      true,
    ],
    [
      [],
      { ...env, SECURE_CODEX_CONFIG: "" },
      "/xdg/secure-codex/config.jsonc",
      false,
    ],
    [
      [],
      { HOME, XDG_CONFIG_HOME: "/xdg" },
      "/xdg/secure-codex/config.jsonc",
      false,
    ],
    [[], { XDG_CONFIG_HOME: "/xdg" }, "/xdg/secure-codex/config.jsonc", false],
    [
      [],
      { HOME, XDG_CONFIG_HOME: "" },
      "/home/me/.config/secure-codex/config.jsonc",
      false,
    ],
    [[], { HOME }, "/home/me/.config/secure-codex/config.jsonc", false],
    [
      ["--config", "rel/config.jsonc"],
      { HOME },
      `${Deno.cwd()}/rel/config.jsonc`,
      true,
    ],
  ];
  for (const [argv, environment, path, explicit] of cases) {
    assert.deepEqual(
      configLocation(parseArguments(argv), environment),
      { path, explicit },
      `${argv.join(" ")} ${JSON.stringify(environment)}`,
    );
  }
});

Deno.test("configLocation: no HOME or XDG_CONFIG_HOME", () => {
  assert.equal(configLocation(parseArguments([]), {}), null);
  const error = cliErrorOf(() =>
    configLocation(parseArguments(["--config", "~/c.jsonc"]), {})
  );
  assert.equal(error.exitCode, 2);
  assert.match(error.message, /cannot expand "~"/);
});

// ---------------------------------------------------------------------------
// Durations

Deno.test("parseDuration: units and sums", () => {
  const cases: [string, number][] = [
    ["0", 0],
    ["0s", 0],
    ["90s", 90],
    ["30m", 1800],
    ["8h", 28800],
    ["1d", 86400],
    ["1h30m", 5400],
    ["1d2h3m4s", 93784],
  ];
  for (const [text, seconds] of cases) {
    assert.equal(parseDuration(text), seconds, text);
  }
});

Deno.test("formatDuration: round trip", () => {
  const cases: [number, string][] = [
    [0, "0"],
    [1, "1s"],
    [90, "1m30s"],
    [3600, "1h"],
    [5400, "1h30m"],
    [86400, "1d"],
    [93784, "1d2h3m4s"],
    [8 * 86400 + 1, "8d1s"],
  ];
  for (const [seconds, text] of cases) {
    assert.equal(formatDuration(seconds), text, String(seconds));
    assert.equal(parseDuration(text), seconds, text);
  }
});

Deno.test("parseDuration: malformed durations", () => {
  for (
    const text of ["", " ", "1x", "h", "-5m", "1.5h", "5", "30m1h", "1h 30m"]
  ) {
    assert.equal(parseDuration(text), null, JSON.stringify(text));
  }
  // Through the flag and the variable: a usage error naming the value.
  for (
    const [argv, env] of [
      [["--ttl", "1.5h"], { HOME }],
      [["--ttl=-5m"], { HOME }],
      [[], { HOME, SECURE_CODEX_TTL: "1x" }],
    ] as [string[], Environment][]
  ) {
    const error = cliErrorOf(() => parseOptions(argv, env));
    assert.equal(error.exitCode, 2, argv.join(" "));
    assert.match(
      error.message,
      argv.length > 0
        ? /^invalid duration for --ttl: "/
        : /^invalid duration for SECURE_CODEX_TTL: "/,
      argv.join(" "),
    );
  }
});

// ---------------------------------------------------------------------------
// Profile selection errors

Deno.test("unknown profile without config file", () => {
  for (
    const [argv, env] of [
      [["--profile", "work"], { HOME }],
      [[], { HOME, SECURE_CODEX_PROFILE: "work" }],
    ] as [string[], Environment][]
  ) {
    const error = cliErrorOf(() => parseOptions(argv, env, null));
    assert.equal(error.exitCode, 2);
    const source = argv.length > 0 ? "--profile" : "SECURE_CODEX_PROFILE";
    assert.equal(
      error.message,
      `profile not found: work (from ${source}; no config file)`,
    );
    assert.deepEqual(error.hints, [
      `add it under "profiles" in ${HOME}/.config/secure-codex/config.jsonc (README, Profiles)`,
    ]);
  }
});

Deno.test("unknown profile with config file", () => {
  const config = parse('{ "profiles": { "work": {}, "home": {}, } }');
  const error = cliErrorOf(() =>
    parseOptions(["--profile", "play"], { HOME }, config)
  );
  assert.equal(error.exitCode, 2);
  assert.equal(
    error.message,
    `profile not found: play (from --profile) in ${CONFIG_PATH}`,
  );
  assert.deepEqual(error.hints, ["known profiles: default, work, home"]);

  const empty = parse("{}");
  const none = cliErrorOf(() =>
    parseOptions(["--profile", "play"], { HOME }, empty)
  );
  assert.equal(none.exitCode, 2);
  assert.equal(
    none.message,
    `profile not found: play (from --profile) in ${CONFIG_PATH}`,
  );
  assert.match(none.hints[0], /add it under "profiles"/);
});

Deno.test("Object.prototype names are unknown profiles", () => {
  // config.profiles is a plain object: profiles["constructor"] is Object.
  const config = parse('{ "profiles": { "work": {} } }');
  for (const name of ["constructor", "toString", "valueOf"]) {
    let error: unknown = null;
    try {
      parseOptions(["--profile", name], { HOME }, config);
    } catch (caught) {
      error = caught;
    }
    assert.ok(
      error instanceof CliError,
      `--profile ${name} resolved although the config file has no such profile`,
    );
    assert.equal(
      error.message,
      `profile not found: ${name} (from --profile) in ${CONFIG_PATH}`,
    );
  }
});

Deno.test("invalid profile name", () => {
  const config = parse('{ "profiles": { "work": {} } }');
  for (
    const name of ["../work", ".hidden", "_x", "a/b", "a b", "x".repeat(65)]
  ) {
    for (
      const [argv, env] of [
        [[`--profile=${name}`], { HOME }],
        [[], { HOME, SECURE_CODEX_PROFILE: name }],
      ] as [string[], Environment][]
    ) {
      for (const file of [config, null]) {
        const error = cliErrorOf(() => parseOptions(argv, env, file));
        assert.equal(error.exitCode, 2, name);
        assert.equal(
          error.message,
          `invalid profile name: ${JSON.stringify(name)}`,
          name,
        );
      }
    }
  }
});

Deno.test("isValidProfileName: valid and invalid names", () => {
  for (const name of ["work", "a", "A.b_c-1", "9", "x".repeat(64)]) {
    assert.equal(isValidProfileName(name), true, name);
  }
  for (
    const name of ["", ".x", "-x", "_x", "a/b", "a b", "é", "x".repeat(65)]
  ) {
    assert.equal(isValidProfileName(name), false, JSON.stringify(name));
  }
});

Deno.test("loadConfig rejects a config others can write", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/config.jsonc`;
    await Deno.writeTextFile(path, "{}\n");
    await Deno.chmod(path, 0o664);
    assert.throws(
      () => loadConfig(path, { required: true, home: "/h" }),
      /config file is writable by group or others: .*config\.jsonc/,
    );
    await Deno.chmod(path, 0o644);
    assert.ok(loadConfig(path, { required: true, home: "/h" }) !== null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfig rejects a directory others can write", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/config.jsonc`;
    await Deno.writeTextFile(path, "{}\n");
    await Deno.chmod(dir, 0o777);
    assert.throws(
      () => loadConfig(path, { required: true, home: "/h" }),
      /config file's directory is writable by group or others: /,
    );
    // The sticky bit keeps other users from renaming over the file.
    await Deno.chmod(dir, 0o1777);
    assert.ok(loadConfig(path, { required: true, home: "/h" }) !== null);
    await Deno.chmod(dir, 0o755);
    assert.ok(loadConfig(path, { required: true, home: "/h" }) !== null);

    // A link from a private directory to a file in an open one.
    const open = join(dir, "open");
    const link = join(dir, "private", "config.jsonc");
    await Deno.mkdir(open, { mode: 0o777 });
    await Deno.chmod(open, 0o777);
    await Deno.mkdir(join(dir, "private"), { mode: 0o700 });
    await Deno.writeTextFile(join(open, "config.jsonc"), "{}\n");
    await Deno.symlink(join(open, "config.jsonc"), link);
    assert.throws(
      () => loadConfig(link, { required: true, home: "/h" }),
      /config file's directory is writable by group or others: .*open$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("configLocation rejects a codex setting as --config", () => {
  let error: unknown;
  try {
    configLocation(parseArguments(["--config", "model=o3"]), { HOME });
  } catch (caught) {
    error = caught;
  }
  assert.ok(error instanceof CliError);
  assert.equal(error.exitCode, 2);
  assert.match(error.message, /not a codex setting: model=o3$/);
  assert.match(error.hints[0], /use -c model=o3/);
});

Deno.test("a configured store stays with its home through a symlink", () =>
  withTempDir((dir) => {
    // /home/me reached as /linked/me, as on systems where /home is a link.
    const home = join(dir, "me");
    Deno.mkdirSync(join(home, ".codex"), { recursive: true });
    Deno.symlinkSync(dir, join(dir, "linked"));
    const config = parse(
      '{ "codexHome": "~/.codex", "store": "~/vault/main.age" }',
      home,
    );
    const options = resolveOptions(
      parseArguments([]),
      { HOME: home, CODEX_HOME: join(dir, "linked", "me", ".codex") },
      config,
    );
    assert.equal(options.store, join(home, "vault", "main.age"));
  }));
