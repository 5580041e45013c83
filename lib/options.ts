/**
 * Command line and environment parsing.
 *
 * `secure-codex [options] [--] [codex arguments]`: options are recognised only
 * before `--` or before the first argument that is not one of ours, and
 * everything after goes to codex unchanged. Flags win over variables.
 *
 * @module
 */

import { isAbsolute, join, resolve } from "./path.ts";
import { CliError } from "./output.ts";

/** Everything the program needs to know from argv and the environment. */
export interface Options {
  /** The requested action. */
  mode: Mode;
  /** The codex home whose `auth.json` becomes the link (absolute). */
  codexHome: string;
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
  /**
   * With cleanup: remove the RAM copy even when it cannot be saved. With
   * import: replace an existing store.
   */
  force: boolean;
  /** With status: print JSON instead of text. */
  json: boolean;
  /** Arguments for codex, unchanged. */
  codexArgs: string[];
}

/**
 * The actions: `run` runs codex; `cleanup` saves and removes the RAM copy;
 * `import` encrypts a plaintext auth.json into a new store; `rekey`
 * re-encrypts the store to a new recipients file; `status` reports the
 * session without changing it.
 */
export type Mode =
  | "run"
  | "cleanup"
  | "import"
  | "rekey"
  | "status"
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

/** Options of ours that take a value, and the field each one sets. */
const VALUE_OPTIONS = new Set([
  "--auth-enc",
  "--real-codex-home",
  "--identity",
  "--recipients-file",
  "--ram-dir",
]);

/** An example value per option, for hints. */
const EXAMPLE_VALUES: Readonly<Record<string, string>> = {
  "--auth-enc": "~/.codex/auth.json.age",
  "--real-codex-home": "~/.codex",
  "--identity": "~/.config/age/identity.txt",
  "--recipients-file": "~/.config/age/recipients.txt",
  "--ram-dir": "/run/user/1000/secure-codex",
};

const FLAG_OPTIONS = new Set([
  "--cleanup",
  "--import",
  "--rekey",
  "--status",
  "--json",
  "--force",
  "-h",
  "--help",
  "--version",
]);

/** Flags that select an action; at most one may be given. */
const MODE_FLAGS: Readonly<Record<string, Mode>> = {
  "--cleanup": "cleanup",
  "--import": "import",
  "--rekey": "rekey",
  "--status": "status",
};

/** The help text printed by `-h` and `--help`. */
export const HELP_TEXT = `Usage: secure-codex [options] [--] [codex arguments]

Runs codex with its auth.json decrypted into a RAM directory. The encrypted
store stays on disk; refreshed tokens are encrypted back to it at once.
Options are read up to "--" or the first argument that is not listed here;
everything after that is passed to codex unchanged.

Options:
  --auth-enc PATH          encrypted store (default: <codex home>/auth.json.age)
                           [SECURE_CODEX_AUTH_ENC]
  --real-codex-home PATH   codex home that gets the auth.json link
                           (default: $CODEX_HOME, else ~/.codex)
                           [SECURE_CODEX_REAL_CODEX_HOME]
  --identity PATH          age identity file for decryption; repeat for more
                           [SECURE_CODEX_IDENTITY, several separated by ":"]
  --recipients-file PATH   age recipients for write-back (default: the
                           store's <store>.recipients file, else the
                           "# public key:" and "Recipient:" lines of the
                           identity files) [SECURE_CODEX_RECIPIENTS_FILE]
  --ram-dir PATH           RAM directory for the plaintext copy, on tmpfs or
                           ramfs (default: $XDG_RUNTIME_DIR/secure-codex/<id>)
                           [SECURE_CODEX_RAM_DIR]
  --cleanup                save a changed RAM copy, remove it and exit
                           [SECURE_CODEX_CLEANUP=true]
  --import                 encrypt the plaintext <codex home>/auth.json into
                           the store, prove it decrypts, move the plaintext
                           into RAM and put the link in its place
  --rekey                  re-encrypt the store to --recipients-file after
                           proving the current store decrypts
  --status                 print whether the session is unlocked, its files,
                           recipients, login and warnings; no secret is shown
  --json                   with --status: print JSON
  --force                  with --cleanup: remove the RAM copy even when it
                           cannot be saved (its unsaved tokens are lost);
                           with --import: replace an existing store
  -h, --help               print this help and exit
  --version                print the version and exit

Variables:
  SECURE_CODEX_KEEP        keep the RAM copy after codex exits (default: true);
                           false removes it when the last secure-codex exits
  Booleans accept true, false, 1, 0, yes, no, on, off.

Examples:
  secure-codex --identity ~/.config/age/key.txt -- login
  secure-codex --identity ~/.config/age/key.txt --import
  secure-codex -- exec "explain this repository"
  secure-codex --status
  secure-codex --cleanup
`;

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
 * Parses argv and the environment into {@linkcode Options}.
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
): Options {
  const flags: Record<string, string> = {};
  const identityFlags: string[] = [];
  const modeFlags: string[] = [];
  let force = false;
  let json = false;
  let help = false;
  let version = false;
  let index = 0;

  while (index < argv.length) {
    const arg = argv[index];
    if (arg === "--") {
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
            `give a path after ${name}, for example ${name} ${
              EXAMPLE_VALUES[name]
            }`,
          );
        }
        if (value.startsWith("-")) {
          throw usageError(
            `missing value for option: ${name} (found option ${value} instead)`,
            `give a path after ${name}; write ${name}=${value} for a path that starts with "-"`,
          );
        }
      }
      if (value === "") {
        throw usageError(
          `empty value for option: ${name}`,
          `give a path after ${name}`,
        );
      }
      if (name === "--identity") identityFlags.push(value);
      else flags[name] = value;
      index++;
      continue;
    }
    if (FLAG_OPTIONS.has(arg)) {
      if (MODE_FLAGS[arg] !== undefined) {
        if (!modeFlags.includes(arg)) modeFlags.push(arg);
      } else if (arg === "--force") force = true;
      else if (arg === "--json") json = true;
      else if (arg === "--version") version = true;
      else help = true;
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
  const codexArgs = argv.slice(index);

  const home = env.HOME;
  const keep = parseBoolean("SECURE_CODEX_KEEP", env.SECURE_CODEX_KEEP, true);
  if (modeFlags.length > 1) {
    throw usageError(
      `options cannot be combined: ${modeFlags.join(" ")}`,
      "give one action per command",
    );
  }
  // The variable selects cleanup only when no other action is asked for, so
  // a shell that exports it can still run --status or --import.
  const cleanupVariable = parseBoolean(
    "SECURE_CODEX_CLEANUP",
    env.SECURE_CODEX_CLEANUP,
    false,
  );

  const codexHomeSetting = flags["--real-codex-home"] ??
    nonEmpty(env.SECURE_CODEX_REAL_CODEX_HOME) ?? nonEmpty(env.CODEX_HOME);
  let codexHome: string;
  if (codexHomeSetting !== undefined) {
    codexHome = absolutePath(codexHomeSetting, home);
  } else if (home) {
    codexHome = join(home, ".codex");
  } else {
    throw usageError(
      "cannot find the codex home: HOME, CODEX_HOME and --real-codex-home are all unset",
      "pass --real-codex-home PATH or set CODEX_HOME",
    );
  }

  const storeSetting = flags["--auth-enc"] ??
    nonEmpty(env.SECURE_CODEX_AUTH_ENC);
  const store = storeSetting !== undefined
    ? absolutePath(storeSetting, home)
    : join(codexHome, "auth.json.age");

  const identitySettings = identityFlags.length > 0
    ? identityFlags
    : (nonEmpty(env.SECURE_CODEX_IDENTITY)?.split(":").filter((part) =>
      part !== ""
    ) ??
      []);
  const identities = identitySettings.map((path) => absolutePath(path, home));

  const recipientsSetting = flags["--recipients-file"] ??
    nonEmpty(env.SECURE_CODEX_RECIPIENTS_FILE);
  const ramDirSetting = flags["--ram-dir"] ??
    nonEmpty(env.SECURE_CODEX_RAM_DIR);

  let mode: Mode = "run";
  if (help) mode = "help";
  else if (version) mode = "version";
  else if (modeFlags.length === 1) mode = MODE_FLAGS[modeFlags[0]];
  else if (cleanupVariable) mode = "cleanup";

  if (force && mode !== "cleanup" && mode !== "import") {
    throw usageError(
      "--force works only with --cleanup or --import",
      "run secure-codex --cleanup --force to discard a RAM copy that cannot be saved",
    );
  }
  if (json && mode !== "status") {
    throw usageError(
      "--json works only with --status",
      "run secure-codex --status --json",
    );
  }
  if (mode !== "run" && codexArgs.length > 0 && !help && !version) {
    throw usageError(
      `--${mode} takes no codex arguments: ${codexArgs.join(" ")}`,
      `run --${mode} and codex as two separate commands`,
    );
  }
  if (mode === "rekey" && recipientsSetting === undefined) {
    throw usageError(
      "--rekey needs the new recipients: --recipients-file PATH",
      "write the new recipients, one per line, to a file and pass it with --recipients-file",
    );
  }

  return {
    mode,
    codexHome,
    store,
    identities,
    recipientsFile: recipientsSetting === undefined
      ? undefined
      : absolutePath(recipientsSetting, home),
    ramDir: ramDirSetting === undefined
      ? undefined
      : absolutePath(ramDirSetting, home),
    keep,
    force,
    json,
    codexArgs,
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}
