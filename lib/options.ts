/**
 * Command line, environment and config file parsing.
 *
 * `secure-codex [options] [--] [codex arguments]`: options are recognised only
 * before `--` or before the first argument that is not one of ours, and
 * everything after goes to codex unchanged. Each setting comes from the first
 * of: a flag, a `SECURE_CODEX_*` variable, the selected profile in the config
 * file, the config file's top level, the default.
 *
 * Parsing has two steps, so that the config file (and its JSONC parser) is
 * loaded only when one exists: {@linkcode parseArguments} reads argv, and
 * {@linkcode resolveOptions} combines it with the environment and the config.
 *
 * @module
 */

import { isAbsolute, join, resolve } from "./path.ts";
import { CliError } from "./output.ts";
import type { CompletionShell } from "./completions.ts";
import type { ConfigFile, ProfileSettings } from "./config.ts";

/** The setting the codex home came from; "default" is `~/.codex` or `~/.codex-<profile>`. */
export type CodexHomeSource =
  | "--real-codex-home"
  | "SECURE_CODEX_REAL_CODEX_HOME"
  | "CODEX_HOME"
  | "codexHome in the config file"
  | "default";

/** Everything the program needs to know from argv, the environment and the config file. */
export interface Options {
  /** The requested action. */
  mode: Mode;
  /** The profile: `default` or a name from the config file. */
  profile: string;
  /** The config file the user named with `--config` or SECURE_CODEX_CONFIG. */
  configPath?: string;
  /** The codex home whose `auth.json` becomes the link (absolute). */
  codexHome: string;
  /** The setting {@linkcode Options.codexHome} came from, for messages. */
  codexHomeSource: CodexHomeSource;
  /** The encrypted store, `auth.json.age` (absolute). */
  store: string;
  /** age identity files, passed to `age -d -i` in this order (absolute). */
  identities: string[];
  /** A file of age recipients for write-back (absolute), if given. */
  recipientsFile?: string;
  /** The RAM directory the user named, if any (absolute). */
  ramDir?: string;
  /** Whether the RAM copy stays after the last codex using it exits. */
  keep: boolean;
  /** Seconds after unlock at which the session is locked; 0 means never. */
  ttlSeconds: number;
  /**
   * Whether the TTL came from `--ttl` on this command line, which replaces an
   * unlocked session's TTL. A TTL from SECURE_CODEX_TTL or the config file is
   * a standing default, so it only shortens it.
   */
  ttlFromFlag: boolean;
  /**
   * With cleanup: remove the RAM copy even when it cannot be saved. With
   * import: replace an existing store.
   */
  force: boolean;
  /** With status: print JSON instead of text. */
  json: boolean;
  /** With watch: watch every profile of the config file. */
  allProfiles: boolean;
  /** With completions: the shell to print a script for. */
  shell?: CompletionShell;
  /** Arguments for codex, unchanged. */
  codexArgs: string[];
}

/**
 * The action a command performs. `run` runs codex. `cleanup` (also `--lock`)
 * saves and removes the RAM copy. `unlock` decrypts and links without running
 * codex, and `watch` keeps writing back changes until SIGTERM. `import`
 * encrypts a plaintext auth.json into a new store, and `rekey` re-encrypts the
 * store to a new recipients file. `status` reports the session without
 * changing it.
 */
export type Mode =
  | "run"
  | "cleanup"
  | "unlock"
  | "watch"
  | "import"
  | "rekey"
  | "status"
  | "completions"
  | "list-profiles"
  | "help"
  | "version";

/** The variables this program reads, by name. */
export type Environment = Readonly<Record<string, string | undefined>>;

const BOOLEAN_WORDS: Readonly<Record<string, boolean>> = {
  true: true,
  false: false,
  "1": true,
  "0": false,
  yes: true,
  no: false,
  on: true,
  off: false,
};

/**
 * Parses a boolean variable: true/false/1/0/yes/no/on/off, any case.
 * An unset or empty variable yields the fallback.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(parseBoolean("SECURE_CODEX_KEEP", "Off", true), false);
 * assert.deepEqual(parseBoolean("SECURE_CODEX_KEEP", undefined, true), true);
 * ```
 */
export function parseBoolean(
  name: string,
  value: string | undefined,
  fallback: boolean,
): boolean {
  if (value === undefined || value === "") return fallback;
  const parsed = BOOLEAN_WORDS[value.trim().toLowerCase()];
  if (parsed === undefined) {
    throw new CliError(`invalid boolean in ${name}: ${JSON.stringify(value)}`, {
      hints: [`set ${name} to one of true, false, 1, 0, yes, no, on, off`],
      exitCode: 2,
    });
  }
  return parsed;
}

/** Options of ours that take a value. */
const VALUE_OPTIONS = new Set([
  "--auth-enc",
  "--real-codex-home",
  "--identity",
  "--recipients-file",
  "--ram-dir",
  "--config",
  "--profile",
  "--ttl",
  "--completions",
]);

/** An example value per option, for hints. */
const EXAMPLE_VALUES: Readonly<Record<string, string>> = {
  "--auth-enc": "~/.codex/auth.json.age",
  "--real-codex-home": "~/.codex",
  "--identity": "~/.config/age/identity.txt",
  "--recipients-file": "~/.config/age/recipients.txt",
  "--ram-dir": "/run/user/1000/secure-codex",
  "--config": "~/.config/secure-codex/config.jsonc",
  "--profile": "work",
  "--ttl": "8h",
  "--completions": "bash",
};

const FLAG_OPTIONS = new Set([
  "--cleanup",
  "--lock",
  "--unlock",
  "--watch",
  "--all-profiles",
  "--import",
  "--rekey",
  "--status",
  "--json",
  "--list-profiles",
  "--force",
  "-h",
  "--help",
  "--version",
]);

/** Flags that select an action; at most one may be given. */
const MODE_FLAGS: Readonly<Record<string, Mode>> = {
  "--cleanup": "cleanup",
  "--lock": "cleanup",
  "--unlock": "unlock",
  "--watch": "watch",
  "--import": "import",
  "--rekey": "rekey",
  "--status": "status",
  "--completions": "completions",
  "--list-profiles": "list-profiles",
};

function usageError(message: string, hint: string): CliError {
  return new CliError(message, {
    hints: [hint, "run secure-codex --help for the list of options"],
    exitCode: 2,
  });
}

/** Turns a path from argv or a variable into an absolute one, expanding `~/`. */
function absolutePath(path: string, home: string | undefined): string {
  if (path === "~" || path.startsWith("~/")) {
    if (!home) {
      throw usageError(
        `cannot expand "~" in path: ${path}`,
        "set HOME or give an absolute path",
      );
    }
    return join(home, path.slice(1));
  }
  return isAbsolute(path) ? resolve(path) : resolve(Deno.cwd(), path);
}

/**
 * Tells whether two paths name one directory, also when a symlink (such as a
 * linked /home) leads to it. Missing paths compare as written.
 */
function isSameDirectory(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return Deno.realPathSync(a) === Deno.realPathSync(b);
  } catch {
    return false;
  }
}

/** argv split into our options and codex's arguments, before any lookup. */
export interface ParsedArguments {
  /** Values of our options, by option name (the last one wins). */
  values: Record<string, string>;
  /** Every `--identity` in order. */
  identities: string[];
  /** The action flags given, in order, without duplicates. */
  modeFlags: string[];
  force: boolean;
  json: boolean;
  allProfiles: boolean;
  help: boolean;
  version: boolean;
  /** Whether `--` ended our options, so codex's arguments are taken as they are. */
  separator: boolean;
  codexArgs: string[];
}

/**
 * Splits argv into secure-codex's options and codex's arguments.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const parsed = parseArguments(["--profile", "work", "exec", "hi"]);
 * assert.deepEqual(parsed.values["--profile"], "work");
 * assert.deepEqual(parsed.codexArgs, ["exec", "hi"]);
 * ```
 */
export function parseArguments(argv: readonly string[]): ParsedArguments {
  const parsed: ParsedArguments = {
    values: {},
    identities: [],
    modeFlags: [],
    force: false,
    json: false,
    allProfiles: false,
    help: false,
    version: false,
    separator: false,
    codexArgs: [],
  };
  let index = 0;
  while (index < argv.length) {
    const arg = argv[index];
    if (arg === "--") {
      parsed.separator = true;
      index++;
      break;
    }
    const equals = arg.indexOf("=");
    const name = arg.startsWith("--") && equals > 0
      ? arg.slice(0, equals)
      : arg;
    if (VALUE_OPTIONS.has(name)) {
      let value: string | undefined;
      if (name !== arg) {
        value = arg.slice(equals + 1);
      } else {
        value = argv[index + 1];
        index++;
        if (value === undefined || value === "--") {
          throw usageError(
            `missing value for option: ${name}`,
            `give a value after ${name}, for example ${name} ${
              EXAMPLE_VALUES[name]
            }`,
          );
        }
        if (value.startsWith("-")) {
          throw usageError(
            `missing value for option: ${name} (found option ${value} instead)`,
            `give a value after ${name}; write ${name}=${value} for a value that starts with "-"`,
          );
        }
      }
      if (value === "") {
        throw usageError(
          `empty value for option: ${name}`,
          `give a value after ${name}, for example ${name} ${
            EXAMPLE_VALUES[name]
          }`,
        );
      }
      if (name === "--identity") parsed.identities.push(value);
      else parsed.values[name] = value;
      if (MODE_FLAGS[name] !== undefined && !parsed.modeFlags.includes(name)) {
        parsed.modeFlags.push(name);
      }
      index++;
      continue;
    }
    if (FLAG_OPTIONS.has(arg)) {
      if (MODE_FLAGS[arg] !== undefined) {
        if (!parsed.modeFlags.includes(arg)) parsed.modeFlags.push(arg);
      } else if (arg === "--force") parsed.force = true;
      else if (arg === "--json") parsed.json = true;
      else if (arg === "--all-profiles") parsed.allProfiles = true;
      else if (arg === "--version") parsed.version = true;
      else parsed.help = true;
      index++;
      continue;
    }
    if (arg.startsWith("--") && FLAG_OPTIONS.has(name)) {
      throw usageError(
        `option takes no value: ${arg}`,
        `write ${name} on its own`,
      );
    }
    // The first argument that is not ours starts codex's arguments.
    break;
  }
  parsed.codexArgs = argv.slice(index);
  return parsed;
}

/**
 * Returns the config file to read: `--config`, else `SECURE_CODEX_CONFIG`,
 * else the default location. `explicit` is true when the user named it, so a
 * missing file is an error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const found = configLocation(parseArguments([]), { HOME: "/home/me" });
 * assert.deepEqual(found, { path: "/home/me/.config/secure-codex/config.jsonc", explicit: false });
 * ```
 */
export function configLocation(
  parsed: ParsedArguments,
  env: Environment,
): { path: string; explicit: boolean } | null {
  const flag = parsed.values["--config"];
  if (flag !== undefined && /^[A-Za-z0-9_.-]+=/.test(flag)) {
    // codex has a --config too, which takes key=value.
    throw usageError(
      `--config takes the path of secure-codex's config file, not a codex setting: ${flag}`,
      `for codex's setting, use -c ${flag}, or put --config ${flag} after --`,
    );
  }
  const named = flag ?? nonEmpty(env.SECURE_CODEX_CONFIG);
  if (named !== undefined) {
    return { path: absolutePath(named, env.HOME), explicit: true };
  }
  // The XDG Base Directory specification requires a relative value to be ignored.
  const xdg = nonEmpty(env.XDG_CONFIG_HOME);
  const base = xdg !== undefined && isAbsolute(xdg)
    ? xdg
    : env.HOME
    ? join(env.HOME, ".config")
    : undefined;
  if (base === undefined) return null;
  return { path: join(base, "secure-codex", "config.jsonc"), explicit: false };
}

/**
 * Parses argv and the environment into {@linkcode Options}, with an optional
 * config file already loaded.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const options = parseOptions(["--identity", "/k.txt", "--", "login", "status"], {
 *   HOME: "/home/me",
 * });
 * assert.deepEqual(options.store, "/home/me/.codex/auth.json.age");
 * assert.deepEqual(options.codexArgs, ["login", "status"]);
 * ```
 */
export function parseOptions(
  argv: readonly string[],
  env: Environment,
  config: ConfigFile | null = null,
): Options {
  return resolveOptions(parseArguments(argv), env, config);
}

/**
 * Resolves every setting from parsed arguments, the environment and the
 * config file. `profileOverride` selects a profile regardless of flags and
 * variables, for `--watch --all-profiles`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const options = resolveOptions(parseArguments(["--profile", "work"]), { HOME: "/home/me" }, {
 *   path: "/home/me/.config/secure-codex/config.jsonc",
 *   settings: {},
 *   profiles: { work: {} },
 * });
 * assert.deepEqual(options.codexHome, "/home/me/.codex-work");
 * ```
 */
export function resolveOptions(
  parsed: ParsedArguments,
  environment: Environment,
  config: ConfigFile | null,
  profileOverride?: string,
): Options {
  const { values, modeFlags } = parsed;

  if (modeFlags.length > 1) {
    throw usageError(
      `options cannot be combined: ${modeFlags.join(" ")}`,
      "give one action per command",
    );
  }
  // A shell runs these while it starts, so an exported profile, TTL or
  // boolean meant for runs must not break its completion.
  const env = modeFlags[0] === "--completions" ||
      modeFlags[0] === "--list-profiles"
    ? { HOME: environment.HOME }
    : environment;
  const home = env.HOME;

  const profile = profileOverride ?? values["--profile"] ??
    nonEmpty(env.SECURE_CODEX_PROFILE) ?? "default";
  const profileSource = profileOverride === undefined &&
      values["--profile"] === undefined && profile !== "default"
    ? "SECURE_CODEX_PROFILE"
    : "--profile";
  const profileSettings = selectProfile(
    profile,
    config,
    profileSource,
    () => configLocation(parsed, env)?.path,
  );
  const top = config?.settings ?? {};
  // Shared keys fall back to the top level; a profile's files never do.
  const shared = <K extends keyof ProfileSettings>(key: K) =>
    profileSettings[key] ?? top[key];

  // The variable selects cleanup only when no other action is asked for, so
  // a shell that exports it can still run --status or --import.
  const cleanupVariable = parseBoolean(
    "SECURE_CODEX_CLEANUP",
    env.SECURE_CODEX_CLEANUP,
    false,
  );
  const keep = parseBoolean(
    "SECURE_CODEX_KEEP",
    env.SECURE_CODEX_KEEP,
    shared("keep") ?? true,
  );

  const ttlSetting = values["--ttl"] ?? nonEmpty(env.SECURE_CODEX_TTL);
  let ttlSeconds = shared("ttlSeconds") ?? 0;
  if (ttlSetting !== undefined) {
    const parsedTtl = parseDuration(ttlSetting);
    if (parsedTtl === null) {
      const source = values["--ttl"] !== undefined
        ? "--ttl"
        : "SECURE_CODEX_TTL";
      throw usageError(
        `invalid duration for ${source}: ${JSON.stringify(ttlSetting)}`,
        "give a duration such as 90s, 30m, 8h, 1d or 1h30m; 0 never locks",
      );
    }
    ttlSeconds = parsedTtl;
  }

  const codexHomeSetting = values["--real-codex-home"] ??
    nonEmpty(env.SECURE_CODEX_REAL_CODEX_HOME);
  // CODEX_HOME is a variable too, so for the default profile it wins over
  // the config file. It is not used for a named profile: it would make every
  // profile share the one home and login.
  const codexHomeVariable = profile === "default"
    ? nonEmpty(env.CODEX_HOME)
    : undefined;
  let codexHome: string;
  let codexHomeSource: CodexHomeSource = "default";
  if (codexHomeSetting !== undefined) {
    codexHome = absolutePath(codexHomeSetting, home);
    codexHomeSource = values["--real-codex-home"] !== undefined
      ? "--real-codex-home"
      : "SECURE_CODEX_REAL_CODEX_HOME";
  } else if (codexHomeVariable !== undefined) {
    codexHome = absolutePath(codexHomeVariable, home);
    codexHomeSource = "CODEX_HOME";
  } else if (profileSettings.codexHome !== undefined) {
    codexHome = profileSettings.codexHome;
    codexHomeSource = "codexHome in the config file";
  } else if (profile !== "default") {
    if (!home) {
      throw usageError(
        `cannot find the codex home of profile ${profile}: HOME is unset`,
        `set "codexHome" in the profile, or pass --real-codex-home PATH`,
      );
    }
    codexHome = join(home, `.codex-${profile}`);
  } else {
    if (home) codexHome = join(home, ".codex");
    else {
      throw usageError(
        "cannot find the codex home: HOME, CODEX_HOME and --real-codex-home are all unset",
        "pass --real-codex-home PATH or set CODEX_HOME",
      );
    }
  }

  const storeSetting = values["--auth-enc"] ??
    nonEmpty(env.SECURE_CODEX_AUTH_ENC);
  // A store set in the config file belongs to the codex home the config file
  // names, or to the default one. A home given by a flag or a variable is
  // another login: it gets the store beside it, so a login there cannot
  // replace the configured one.
  const configHome = profileSettings.codexHome ??
    (home
      ? join(home, profile === "default" ? ".codex" : `.codex-${profile}`)
      : undefined);
  const configStore = codexHomeSource === "codexHome in the config file" ||
      codexHomeSource === "default" ||
      (configHome !== undefined && isSameDirectory(codexHome, configHome))
    ? profileSettings.store
    : undefined;
  const store = storeSetting !== undefined
    ? absolutePath(storeSetting, home)
    : configStore ?? join(codexHome, "auth.json.age");

  const identitySettings = parsed.identities.length > 0
    ? parsed.identities
    : nonEmpty(env.SECURE_CODEX_IDENTITY)?.split(":").filter((part) =>
      part !== ""
    );
  const identities = identitySettings !== undefined
    ? identitySettings.map((path) => absolutePath(path, home))
    : [...(shared("identities") ?? [])];

  const recipientsSetting = values["--recipients-file"] ??
    nonEmpty(env.SECURE_CODEX_RECIPIENTS_FILE);
  const recipientsFile = recipientsSetting !== undefined
    ? absolutePath(recipientsSetting, home)
    : shared("recipientsFile");
  const ramDirSetting = values["--ram-dir"] ??
    nonEmpty(env.SECURE_CODEX_RAM_DIR);
  const ramDir = ramDirSetting !== undefined
    ? absolutePath(ramDirSetting, home)
    : profileSettings.ramDir;

  let mode: Mode = "run";
  if (parsed.help) mode = "help";
  else if (parsed.version) mode = "version";
  else if (modeFlags.length === 1) mode = MODE_FLAGS[modeFlags[0]];
  else if (cleanupVariable) mode = "cleanup";

  // recipientsFile in the config file counts too: write-back already uses it.
  checkCombinations(parsed, mode, recipientsFile !== undefined);
  if (parsed.allProfiles) {
    // As the flags, these name one profile's files and would apply to all.
    const perProfile = [
      "SECURE_CODEX_REAL_CODEX_HOME",
      "SECURE_CODEX_AUTH_ENC",
      "SECURE_CODEX_RAM_DIR",
    ].filter((name) => nonEmpty(env[name]) !== undefined);
    if (perProfile.length > 0) {
      throw usageError(
        `--all-profiles cannot be combined with ${
          perProfile.join(", ")
        }: it would apply to every profile`,
        `unset ${
          perProfile.join(" and ")
        }, and set each profile's files in the config file`,
      );
    }
  }
  if (mode === "run" && !parsed.separator) {
    checkMistypedOption(parsed.codexArgs[0]);
  }

  let shell: CompletionShell | undefined;
  if (mode === "completions") {
    const value = values["--completions"];
    if (value !== "bash" && value !== "zsh" && value !== "fish") {
      throw usageError(
        `unsupported shell for --completions: ${value}`,
        "use one of bash, zsh, fish",
      );
    }
    shell = value;
  }

  const location = config === null ? null : configLocation(parsed, env);
  return {
    mode,
    profile,
    configPath: location?.explicit ? location.path : undefined,
    codexHome,
    codexHomeSource,
    store,
    identities,
    recipientsFile,
    ramDir,
    keep,
    ttlSeconds,
    ttlFromFlag: values["--ttl"] !== undefined,
    force: parsed.force,
    json: parsed.json,
    allProfiles: parsed.allProfiles,
    shell,
    codexArgs: parsed.codexArgs,
  };
}

/** Rejects flags that do not belong to the chosen action. */
function checkCombinations(
  parsed: ParsedArguments,
  mode: Mode,
  recipientsGiven: boolean,
): void {
  // Cleanup is the one mode a variable can select.
  const fromVariable = parsed.modeFlags.length === 0 && mode === "cleanup";
  const label = parsed.modeFlags[0] ??
    (fromVariable ? "SECURE_CODEX_CLEANUP" : `--${mode}`);
  if (parsed.force && mode !== "cleanup" && mode !== "import") {
    throw usageError(
      "--force works only with --cleanup or --import",
      "run secure-codex --cleanup --force to discard a RAM copy that cannot be saved, or secure-codex --import --force to replace the store",
    );
  }
  if (parsed.json && mode !== "status") {
    throw usageError(
      "--json works only with --status",
      "run secure-codex --status --json",
    );
  }
  if (parsed.allProfiles && mode !== "watch") {
    throw usageError(
      "--all-profiles works only with --watch",
      "run secure-codex --watch --all-profiles",
    );
  }
  if (
    parsed.allProfiles &&
    ["--profile", "--real-codex-home", "--auth-enc", "--ram-dir"].some((
      name,
    ) => parsed.values[name] !== undefined)
  ) {
    throw usageError(
      "--all-profiles cannot be combined with --profile, --real-codex-home, --auth-enc or --ram-dir",
      "set each profile's files in the config file",
    );
  }
  if (
    mode !== "run" && parsed.codexArgs.length > 0 && !parsed.help &&
    !parsed.version
  ) {
    throw usageError(
      `${label} takes no codex arguments: ${parsed.codexArgs.join(" ")}`,
      fromVariable
        ? "unset SECURE_CODEX_CLEANUP or set it to false to run codex"
        : `run ${label} and codex as two separate commands`,
    );
  }
  if (mode === "rekey" && !recipientsGiven) {
    throw usageError(
      "--rekey needs the new recipients: --recipients-file PATH",
      "write the new recipients, one per line, to a file and pass it with --recipients-file, or set recipientsFile in the config file",
    );
  }
}

/** codex-cli 0.171's global long options, which are never taken for typos of ours. */
const CODEX_LONG_OPTIONS = new Set([
  "--config",
  "--enable",
  "--disable",
  "--remote",
  "--remote-auth-token-env",
  "--strict-config",
  "--image",
  "--model",
  "--oss",
  "--local-provider",
  "--profile",
  "--sandbox",
  "--approve-for-me",
  "--dangerously-bypass-approvals-and-sandbox",
  "--dangerously-bypass-hook-trust",
  "--cd",
  "--worktree",
  "--add-dir",
  "--ask-for-approval",
  "--search",
  "--no-alt-screen",
  "--no-daemon",
  "--help",
  "--version",
]);

/**
 * Rejects a first codex argument that looks like a mistyped option of ours
 * (`--stauts`, `--identiy`), before anything is decrypted, because codex would
 * reject it only after the store was unlocked. codex's own options pass.
 */
function checkMistypedOption(first: string | undefined): void {
  if (first === undefined || !first.startsWith("--") || first === "--") return;
  const name = first.includes("=") ? first.slice(0, first.indexOf("=")) : first;
  if (CODEX_LONG_OPTIONS.has(name)) return;
  const ours = [...VALUE_OPTIONS, ...FLAG_OPTIONS].filter((option) =>
    option.startsWith("--")
  );
  const closest = ours
    .map((option) => ({ option, distance: editDistance(name, option) }))
    .sort((a, b) => a.distance - b.distance)[0];
  if (closest.distance > 2) return;
  throw usageError(
    `unknown option: ${name} (did you mean ${closest.option}?)`,
    `to pass ${name} to codex unchanged, put it after --: secure-codex -- ${first}`,
  );
}

/** Computes the Levenshtein distance between two short strings. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j] + 1,
        current[j - 1] + 1,
        previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length];
}

/** Returns the settings of a profile; the default profile is the top level. */
function selectProfile(
  profile: string,
  config: ConfigFile | null,
  source: string,
  configPath: () => string | undefined,
): ProfileSettings {
  if (profile === "default") return config?.settings ?? {};
  if (!isValidProfileName(profile)) {
    throw usageError(
      `invalid profile name: ${JSON.stringify(profile)}`,
      'use letters, digits, ".", "_" and "-", at most 64 characters',
    );
  }
  const settings = config !== null && Object.hasOwn(config.profiles, profile)
    ? config.profiles[profile]
    : undefined;
  if (settings === undefined) {
    const known = Object.keys(config?.profiles ?? {});
    throw new CliError(
      config === null
        ? `profile not found: ${profile} (from ${source}; no config file)`
        : `profile not found: ${profile} (from ${source}) in ${config.path}`,
      {
        hints: [
          known.length > 0
            ? `known profiles: default, ${known.join(", ")}`
            : `add it under "profiles" in ${
              config?.path ?? configPath() ?? "the config file"
            } (README, Profiles)`,
        ],
        exitCode: 2,
      },
    );
  }
  return settings;
}

/**
 * Parses a duration such as `90s`, `30m`, `8h`, `1d` or `1h30m` into
 * seconds. `0` means no limit. Returns null for anything else.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(parseDuration("1h30m"), 5400);
 * assert.deepEqual(parseDuration("0"), 0);
 * assert.deepEqual(parseDuration("soon"), null);
 * ```
 */
export function parseDuration(text: string): number | null {
  const trimmed = text.trim();
  if (trimmed === "0") return 0;
  if (trimmed === "") return null;
  const match = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(trimmed);
  if (match === null) return null;
  const [days, hours, minutes, seconds] = match.slice(1).map((part) =>
    part === undefined ? 0 : Number(part)
  );
  const total = days * 86400 + hours * 3600 + minutes * 60 + seconds;
  return Number.isSafeInteger(total) ? total : null;
}

/**
 * Returns the shorter of two TTLs in seconds. A TTL that is not a positive
 * finite number means none, so the other applies; 0 when neither is set.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(shorterTtl(3600, 0), 3600);
 * assert.equal(shorterTtl(3600, 600), 600);
 * assert.equal(shorterTtl(0, -5), 0);
 * ```
 */
export function shorterTtl(a: number, b: number): number {
  const set = [a, b].filter((ttl) => Number.isFinite(ttl) && ttl > 0);
  return set.length > 0 ? Math.min(...set) : 0;
}

/**
 * Formats seconds the way {@linkcode parseDuration} reads them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(formatDuration(5400), "1h30m");
 * assert.deepEqual(formatDuration(0), "0");
 * ```
 */
export function formatDuration(seconds: number): string {
  if (seconds <= 0) return "0";
  const units: [string, number][] = [["d", 86400], ["h", 3600], ["m", 60], [
    "s",
    1,
  ]];
  let rest = seconds;
  let text = "";
  for (const [unit, size] of units) {
    const count = Math.floor(rest / size);
    if (count > 0) text += `${count}${unit}`;
    rest -= count * size;
  }
  return text;
}

/**
 * Checks a profile name: letters, digits, `.`, `_` and `-`, starting with a
 * letter or digit, at most 64 characters. `default` names the default profile.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(isValidProfileName("work"), true);
 * assert.deepEqual(isValidProfileName("../x"), false);
 * ```
 */
export function isValidProfileName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}
