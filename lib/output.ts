/**
 * Everything secure-codex prints itself goes through this module.
 *
 * Rules:
 * - Prompts belong to age and codex, on the terminal. secure-codex never prompts.
 * - Every message goes to stderr behind the fixed prefix `secure-codex: `, so
 *   codex's own stdout and stderr stay untouched and scripts can tell the two apart.
 * - A message starts lowercase and has no final period.
 * - An error line names what failed and on which value. Each fix follows on a
 *   separate `secure-codex: hint: ` line.
 * - No message carries file contents. Values are paths, names, counts and times,
 *   never tokens, keys or decrypted bytes.
 *
 * @module
 */

/** The prefix of every line secure-codex writes. */
export const PREFIX = "secure-codex: ";

const encoder = new TextEncoder();

/**
 * A failure that ends the program with a message, optional hints and an exit code.
 *
 * @example Raise a usage error
 * ```ts
 * throw new CliError("missing value for option: --auth-enc", {
 *   hints: ["pass a path, for example --auth-enc ~/.codex/auth.json.age"],
 *   exitCode: 2,
 * });
 * ```
 */
export class CliError extends Error {
  /** Lines that tell the user what to do, printed after the message. */
  readonly hints: readonly string[];
  /** The process exit code: 1 for failures, 2 for usage errors. */
  readonly exitCode: number;

  /** Creates an error with its hints and exit code (default 1). */
  constructor(
    message: string,
    options: { hints?: readonly string[]; exitCode?: number } = {},
  ) {
    super(message);
    this.name = "CliError";
    this.hints = options.hints ?? [];
    this.exitCode = options.exitCode ?? 1;
  }
}

/**
 * Writes bytes to stderr synchronously, so messages keep their order with
 * output from child processes that share the terminal. A stderr that cannot
 * take them (a closed pipe, a terminal that hung up) loses them. A reader that
 * went away must not keep codex from starting or cut a write-back short, and
 * the exit code still reports how the run ended.
 *
 * @example
 * ```ts
 * writeStderr(new TextEncoder().encode("secure-codex: age: touch your key\n"));
 * ```
 */
export function writeStderr(bytes: Uint8Array): void {
  try {
    let written = 0;
    while (written < bytes.length) {
      written += Deno.stderr.writeSync(bytes.subarray(written));
    }
  } catch {
    // Nowhere left to say it.
  }
}

function writeLines(lines: readonly string[]): void {
  writeStderr(
    encoder.encode(lines.map((line) => PREFIX + line + "\n").join("")),
  );
}

/**
 * Formats an error and its hints as the lines {@linkcode printError} writes,
 * without the prefix.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const lines = formatError(new CliError("store not found: /x", { hints: ["run --import"] }));
 * assert.deepEqual(lines, ["store not found: /x", "hint: run --import"]);
 * ```
 */
export function formatError(error: CliError): string[] {
  return [error.message, ...error.hints.map((hint) => "hint: " + hint)];
}

/**
 * Prints an error and its hints to stderr.
 *
 * @example
 * ```ts
 * printError(new CliError("store not found: /home/me/.codex/auth.json.age"));
 * ```
 */
export function printError(error: CliError): void {
  writeLines(formatError(error));
}

/**
 * Prints a warning: something went wrong but the program carries on.
 *
 * @example
 * ```ts
 * warn("refreshed tokens cannot be saved: no recipients", ["pass --recipients-file"]);
 * ```
 */
export function warn(message: string, hints: readonly string[] = []): void {
  writeLines([
    "warning: " + message,
    ...hints.map((hint) => "hint: " + hint),
  ]);
}

/**
 * Prints a notice that needs no action, such as what a cleanup removed.
 *
 * @example
 * ```ts
 * notice("removed the RAM copy: /run/user/1000/secure-codex/3f2a/auth.json");
 * ```
 */
export function notice(message: string): void {
  writeLines([message]);
}

/**
 * Prints text as it is to stdout, for `--help` and `--version`.
 *
 * @example
 * ```ts
 * printOut("secure-codex 0.1.0\n");
 * ```
 */
export function printOut(text: string): void {
  const bytes = encoder.encode(text);
  let written = 0;
  try {
    while (written < bytes.length) {
      written += Deno.stdout.writeSync(bytes.subarray(written));
    }
  } catch (error) {
    // A reader that stopped early, as `| head` does, wanted no more.
    if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
  }
}

/**
 * Tells whether this process has a controlling terminal, which age needs for
 * a passphrase prompt: age reads passphrases from /dev/tty, so redirected
 * stdin and stdout do not matter.
 *
 * @example
 * ```ts
 * if (!hasTerminal()) console.error("no terminal for the passphrase");
 * ```
 */
export function hasTerminal(): boolean {
  try {
    Deno.openSync("/dev/tty", { read: true }).close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Quotes a word for a POSIX shell when it contains anything but safe
 * characters, so a printed command can be pasted as it is.
 *
 * @example
 * ```ts
 * console.log(`rm ${shellQuote("/home/me/my codex/auth.json")}`);
 * ```
 */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
