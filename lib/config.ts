/**
 * The config file: `$XDG_CONFIG_HOME/secure-codex/config.jsonc` (else
 * `~/.config/secure-codex/config.jsonc`), or the path in `--config` or
 * `SECURE_CODEX_CONFIG`. JSONC: JSON with comments and trailing commas.
 *
 * ```jsonc
 * {
 *   // Defaults for every profile.
 *   "identities": ["~/.config/age/key.txt"],
 *   "keep": true,
 *   "ttl": "8h",
 *   // The default profile's files.
 *   "codexHome": "~/.codex",
 *   "profiles": {
 *     "work": { "codexHome": "~/.codex-work", "ttl": "1h" },
 *   },
 * }
 * ```
 *
 * `identities`, `recipientsFile`, `keep` and `ttl` at the top level apply to
 * every profile unless the profile sets them. `codexHome`, `store` and
 * `ramDir` at the top level apply to the default profile only, so two
 * profiles never share a login. Relative paths are resolved against the
 * config file's directory, and `~/` against HOME. Unknown keys and wrong
 * types are errors that name the line and column.
 *
 * @module
 */

// A run from a URL ignores deno.json and its import map, so the package is
// named in full here. deno.lock pins it for runs from a clone.
// deno-lint-ignore no-import-prefix
import * as jsonc from "npm:jsonc-parser@3.3.1";
import { basename, dirname, isAbsolute, join, resolve } from "./path.ts";
import { CliError } from "./output.ts";
import { isValidProfileName, parseDuration } from "./options.ts";

/** The settings one profile can have; every field is optional. */
export interface ProfileSettings {
  codexHome?: string;
  store?: string;
  identities?: string[];
  recipientsFile?: string;
  ramDir?: string;
  keep?: boolean;
  /** Seconds after unlock at which a session is locked. 0 means never. */
  ttlSeconds?: number;
}

/** A parsed config file. */
export interface ConfigFile {
  path: string;
  /** The top-level settings. */
  settings: ProfileSettings;
  /** Named profiles, in file order. */
  profiles: Record<string, ProfileSettings>;
}

/** The largest config file accepted. */
export const MAX_CONFIG_BYTES = 256 * 1024;

type Kind = "path" | "paths" | "boolean" | "duration";

const KEYS: Readonly<
  Record<string, { field: keyof ProfileSettings; kind: Kind }>
> = {
  codexHome: { field: "codexHome", kind: "path" },
  store: { field: "store", kind: "path" },
  identities: { field: "identities", kind: "paths" },
  recipientsFile: { field: "recipientsFile", kind: "path" },
  ramDir: { field: "ramDir", kind: "path" },
  keep: { field: "keep", kind: "boolean" },
  ttl: { field: "ttlSeconds", kind: "duration" },
};

/** Words for jsonc-parser's error codes; its own names read like `CommaExpected`. */
const PARSE_ERRORS: Readonly<Record<string, string>> = {
  InvalidSymbol: "invalid character",
  InvalidNumberFormat: "invalid number",
  PropertyNameExpected: "expected a quoted key",
  ValueExpected: "expected a value",
  ColonExpected: 'expected ":" after the key',
  CommaExpected:
    'expected "," between entries (the position is where the next one starts)',
  CloseBraceExpected: 'expected "}"',
  CloseBracketExpected: 'expected "]"',
  EndOfFileExpected: "expected the end of the file after the top-level object",
  InvalidCommentToken: "invalid comment",
  UnexpectedEndOfComment: "comment is not closed",
  UnexpectedEndOfString: "string is not closed",
  UnexpectedEndOfNumber: "number is not complete",
  InvalidUnicode: "invalid \\u escape",
  InvalidEscapeCharacter: "invalid escape",
  InvalidCharacter: "invalid character in a string",
};

function describeParseError(code: jsonc.ParseErrorCode): string {
  const name = jsonc.printParseErrorCode(code);
  return PARSE_ERRORS[name] ?? name;
}

/** Converts an offset in `text` into a 1-based line and column. */
function lineAndColumn(text: string, offset: number): string {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text[i] === "\n") {
      line++;
      lineStart = i + 1;
    }
  }
  return `${line}:${offset - lineStart + 1}`;
}

/**
 * Parses the text of a config file. Paths are made absolute against `home`
 * and the file's directory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const text = '{\n  // forget the plaintext after each run\n  "keep": false,\n  "ttl": "1h",\n}';
 * const config = parseConfig(text, "/home/me/.config/secure-codex/config.jsonc", "/home/me");
 * assert.deepEqual(config.settings, { keep: false, ttlSeconds: 3600 });
 * ```
 */
export function parseConfig(
  text: string,
  path: string,
  home: string | undefined,
): ConfigFile {
  const fail = (offset: number, message: string, hint?: string): never => {
    throw new CliError(
      `invalid config file: ${path}:${lineAndColumn(text, offset)}: ${message}`,
      {
        hints: [
          hint ??
            "fix the file, or pass another one with --config PATH or SECURE_CODEX_CONFIG",
        ],
      },
    );
  };

  const errors: jsonc.ParseError[] = [];
  const root = jsonc.parseTree(text, errors, {
    allowTrailingComma: true,
    disallowComments: false,
  });
  if (errors.length > 0) {
    const first = errors[0];
    fail(
      first.offset,
      `JSONC syntax error: ${describeParseError(first.error)}`,
    );
  }
  if (root === undefined || root.type !== "object") {
    fail(root?.offset ?? 0, "expected a JSON object at the top level");
  }

  // JSON lets the last of two equal keys win without a word, so a second
  // "store" or profile would silently replace the first.
  const checkUnique = (
    seen: Set<string>,
    keyNode: jsonc.Node,
    label: string,
  ) => {
    const key = keyNode.value as string;
    if (seen.has(key)) {
      fail(keyNode.offset, `duplicate ${label}`, "keep one of them");
    }
    seen.add(key);
  };

  const baseDir = dirname(path);
  const toPath = (node: jsonc.Node, key: string): string => {
    if (node.type !== "string" || node.value === "") {
      fail(node.offset, `"${key}" must be a non-empty string (a path)`);
    }
    const value = node.value as string;
    if (value.includes("\0")) {
      fail(node.offset, `"${key}" must not contain a NUL character`);
    }
    if (value === "~" || value.startsWith("~/")) {
      if (!home) {
        fail(node.offset, `cannot expand "~" in "${key}": HOME is unset`);
      }
      return join(home!, value.slice(1));
    }
    return isAbsolute(value) ? resolve(value) : resolve(baseDir, value);
  };

  const readSettings = (
    object: jsonc.Node,
    where: string,
    allowProfiles: boolean,
  ) => {
    const settings: ProfileSettings = {};
    let profilesNode: jsonc.Node | undefined;
    const seen = new Set<string>();
    for (const property of object.children ?? []) {
      const [keyNode, valueNode] = property.children ?? [];
      const key = keyNode.value as string;
      if (valueNode === undefined) {
        fail(keyNode.offset, `"${key}" has no value`);
      }
      checkUnique(seen, keyNode, `key "${key}"${where}`);
      if (allowProfiles && key === "profiles") {
        profilesNode = valueNode;
        continue;
      }
      // Object.hasOwn: a plain lookup would accept "constructor" and the
      // other names every object inherits.
      if (!Object.hasOwn(KEYS, key)) {
        fail(
          keyNode.offset,
          `unknown key "${key}"${where}`,
          `known keys: ${Object.keys(KEYS).join(", ")}${
            allowProfiles ? ", profiles" : ""
          }`,
        );
      }
      const spec = KEYS[key];
      switch (spec.kind) {
        case "path":
          (settings[spec.field] as string) = toPath(valueNode, key);
          break;
        case "paths": {
          if (valueNode.type !== "array") {
            fail(valueNode.offset, `"${key}" must be an array of paths`);
          }
          (settings[spec.field] as string[]) = (valueNode.children ?? []).map(
            (item) => toPath(item, key),
          );
          break;
        }
        case "boolean":
          if (valueNode.type !== "boolean") {
            fail(valueNode.offset, `"${key}" must be true or false`);
          }
          (settings[spec.field] as boolean) = valueNode.value as boolean;
          break;
        case "duration": {
          const seconds = valueNode.type === "string"
            ? parseDuration(valueNode.value as string)
            : null;
          if (seconds === null) {
            fail(
              valueNode.offset,
              `"${key}" must be a duration such as "30m", "8h", "1d" or "0" (never)`,
            );
          }
          (settings[spec.field] as number) = seconds!;
          break;
        }
      }
    }
    return { settings, profilesNode };
  };

  const top = readSettings(root!, "", true);
  const profiles: Record<string, ProfileSettings> = {};
  const profileOffsets: Record<string, number> = {};
  if (top.profilesNode !== undefined) {
    if (top.profilesNode.type !== "object") {
      fail(top.profilesNode.offset, `"profiles" must be an object of profiles`);
    }
    const seen = new Set<string>();
    for (const property of top.profilesNode.children ?? []) {
      const [keyNode, valueNode] = property.children ?? [];
      const name = keyNode.value as string;
      checkUnique(seen, keyNode, `profile "${name}"`);
      if (!isValidProfileName(name) || name === "default") {
        fail(
          keyNode.offset,
          `invalid profile name "${name}"`,
          'use letters, digits, ".", "_" and "-" (at most 64), and not "default", which is the top level',
        );
      }
      if (valueNode === undefined || valueNode.type !== "object") {
        fail(
          valueNode?.offset ?? keyNode.offset,
          `profile "${name}" must be an object`,
        );
      }
      profiles[name] =
        readSettings(valueNode, ` in profile "${name}"`, false).settings;
      profileOffsets[name] = keyNode.offset;
    }
  }

  // Each codex home is one session. Two sessions on one store or RAM
  // directory would share one refresh token, so only exact aliases pass.
  const files = [
    {
      name: "default",
      settings: top.settings,
      home: join(home ?? "", ".codex"),
    },
    ...Object.entries(profiles).map(([name, settings]) => ({
      name,
      settings,
      home: join(home ?? "", `.codex-${name}`),
    })),
  ].map(({ name, settings, home: defaultHome }) => {
    const codexHome = settings.codexHome ?? defaultHome;
    return {
      name,
      codexHome: canonicalPath(codexHome),
      store: canonicalPath(settings.store ?? join(codexHome, "auth.json.age")),
      ramDir: settings.ramDir === undefined
        ? null
        : canonicalPath(settings.ramDir),
    };
  });
  for (const [index, a] of files.entries()) {
    for (const b of files.slice(index + 1)) {
      const where = profileOffsets[b.name] ?? 0;
      const pair = `profiles "${a.name}" and "${b.name}"`;
      if (a.codexHome === b.codexHome) {
        if (a.store !== b.store || a.ramDir !== b.ramDir) {
          fail(
            where,
            `${pair} share the codex home ${a.codexHome} but not its store and RAM directory`,
            "give each profile its own codexHome, or the same store and ramDir",
          );
        }
      } else if (a.store === b.store) {
        fail(
          where,
          `${pair} share the store ${a.store}`,
          "give each profile its own store: two sessions on one login invalidate each other's refresh token",
        );
      } else if (a.ramDir !== null && a.ramDir === b.ramDir) {
        fail(
          where,
          `${pair} share the RAM directory ${a.ramDir}`,
          "give each profile its own ramDir: a RAM directory holds one session",
        );
      }
    }
  }
  return { path, settings: top.settings, profiles };
}

/**
 * Resolves symlinks in a path, so two spellings of one file compare equal. A
 * missing file is resolved through its directory, and a missing directory
 * leaves the path as written.
 */
function canonicalPath(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    try {
      return join(Deno.realPathSync(dirname(path)), basename(path));
    } catch {
      return path;
    }
  }
}

/**
 * Checks that only the user (or root) can change names in a directory that
 * leads to the config file. Another user with write access could rename a
 * file over the config, unless the sticky bit (as on /tmp) prevents it.
 */
function checkConfigDirectory(directory: string, uid: number | null): void {
  const info = Deno.statSync(directory);
  if (uid !== null && info.uid !== uid && info.uid !== 0) {
    throw new CliError(
      `config file's directory is owned by uid ${info.uid}, not by you (uid ${uid}): ${directory}`,
      { hints: ["another user could replace the file; keep your own copy"] },
    );
  }
  const mode = info.mode ?? 0;
  if ((mode & 0o022) !== 0 && (mode & 0o1000) === 0) {
    throw new CliError(
      `config file's directory is writable by group or others: ${directory}`,
      {
        hints: [
          `another user could replace the file: chmod go-w ${directory}`,
        ],
      },
    );
  }
}

/**
 * Reads and parses a config file. Returns null when the file does not exist
 * and `required` is false (the default location). A missing file named with
 * `--config` or `SECURE_CODEX_CONFIG` is an error.
 *
 * @example
 * ```ts
 * const config = loadConfig("/home/me/.config/secure-codex/config.jsonc", { required: false, home: "/home/me" });
 * ```
 */
export function loadConfig(
  path: string,
  options: { required: boolean; home: string | undefined },
): ConfigFile | null {
  let bytes: Uint8Array;
  try {
    const info = Deno.statSync(path);
    if (!info.isFile) {
      throw new CliError(`config file is not a regular file: ${path}`, {
        hints: ["pass a file with --config PATH or SECURE_CODEX_CONFIG"],
      });
    }
    // The file names the recipients every refreshed token is encrypted to,
    // so only the user (or root) may be able to change it.
    const uid = Deno.uid();
    if (uid !== null && info.uid !== uid && info.uid !== 0) {
      throw new CliError(
        `config file is owned by uid ${info.uid}, not by you (uid ${uid}): ${path}`,
        { hints: ["another user could change it; keep your own copy"] },
      );
    }
    if (info.mode !== null && (info.mode & 0o022) !== 0) {
      throw new CliError(
        `config file is writable by group or others: ${path}`,
        { hints: [`make it yours alone: chmod go-w ${path}`] },
      );
    }
    // A link's directory and its target's both hold a name that leads to
    // the config, so both must be the user's alone.
    checkConfigDirectory(dirname(path), uid);
    const target = dirname(Deno.realPathSync(path));
    if (target !== dirname(path)) checkConfigDirectory(target, uid);
    if (info.size > MAX_CONFIG_BYTES) {
      throw new CliError(
        `config file is too large (${info.size} bytes, limit ${MAX_CONFIG_BYTES}): ${path}`,
      );
    }
    bytes = Deno.readFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      // A link to a missing file is a config the user meant to have, most
      // likely on a drive that is not mounted, not the absence of one.
      let target: string | null = null;
      try {
        target = Deno.readLinkSync(path);
      } catch {
        // Not a link: the file is absent.
      }
      if (target !== null) {
        throw new CliError(
          `config file is a symlink to a missing file: ${path} -> ${target}`,
          { hints: ["restore the file it points to, or remove the link"] },
        );
      }
    }
    if (error instanceof Deno.errors.NotFound && !options.required) return null;
    if (error instanceof Deno.errors.NotFound) {
      throw new CliError(`config file not found: ${path}`, {
        hints: [
          "create it, or fix the path given with --config or SECURE_CODEX_CONFIG",
        ],
      });
    }
    if (
      error instanceof Deno.errors.NotADirectory ||
      error instanceof Deno.errors.FilesystemLoop
    ) {
      throw new CliError(
        `cannot read the config file: ${path}: ${error.message}`,
        {
          hints: [
            "fix the path, or pass another file with --config PATH or SECURE_CODEX_CONFIG",
          ],
        },
      );
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new CliError(
        `config file is not readable (permission denied): ${path}`,
        {
          hints: [
            `make it readable to you (chmod u+r), and check the directories above it: ${path}`,
          ],
        },
      );
    }
    throw error;
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new CliError(`config file is not UTF-8 text: ${path}`);
  }
  return parseConfig(text, path, options.home);
}
