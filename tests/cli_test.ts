/**
 * Script tests for the secure-codex command line. Every file
 * tests/testdata/*.txt is one case and one Deno.test of the same name. Each
 * case gets a fresh fixture from tests/helpers.ts (tmpfs as the runtime
 * directory, a throwaway age identity, a codex home, a canary), runs its steps
 * in order and stops at the first failed step.
 *
 * Format: one step per line. Blank lines and lines starting with `#` are
 * skipped. Words are split on spaces. Quotes ('...' or "...") only group, and
 * backslashes stay as written, so regexes need no double escaping. `$NAME` or
 * `${NAME}` expands everywhere, quoted or not: $HOME $CODEX_HOME $STORE
 * $IDENTITY $RUNTIME $TMP $DIR $CANARY $RECIPIENT, $RAM (the one session
 * directory under $RUNTIME/secure-codex, looked up when used) and every NAME
 * set by `env`. An unknown name is an error. Write `[$]` for a literal `$`
 * before a capital letter. In a REGEX a variable matches its value literally.
 * MODE is octal (0755), N a decimal integer.
 *
 * Setup (plaintext is piped into `age -e`, never written to disk):
 *   env NAME=VALUE           set NAME for later exec steps
 *   unenv NAME               remove NAME for later exec steps
 *   store chatgpt|apikey     encrypt a fake login carrying $CANARY to $STORE
 *   store text TEXT          encrypt TEXT as the store
 *   store bytes-random N     write N random bytes as the store
 *   store truncate N         keep the first N bytes (N < 0: drop the last -N)
 *   identity-other           create an unrelated age identity at $DIR/other.txt
 *   mkdir PATH MODE          create a directory with octal MODE
 *   chmod PATH MODE          set the octal permission bits of PATH
 *   symlink TARGET PATH      create a symlink at PATH
 *   write PATH TEXT          write TEXT, which must not be secret, to PATH
 * Run scripts/secure-codex (cwd $DIR):
 *   exec ARGS...             expect exit 0
 *   ! exec ARGS...           expect a non-zero exit
 *   exec-code N ARGS...      expect exit N
 * Check the last exec:
 *   [!] stdout REGEX         REGEX is (not) found in stdout (^ and $ match per line)
 *   [!] stderr REGEX         the same for stderr
 * Check the disk (paths are not followed):
 *   [!] exists PATH          PATH exists; a dangling symlink exists
 *   symlink-to PATH TARGET   PATH is a symlink whose target text is TARGET
 *   dangling PATH            PATH is a symlink whose target does not exist
 *   mode PATH MODE           PATH has the octal permission bits MODE
 *   unchanged PATH           same bytes as after the last store or write step
 *   no-ram-copy              no auth.json or .auth-* file anywhere under $RUNTIME
 *
 * After every exec the runner also checks that neither stdout nor stderr
 * contains the canary, an "internal error" message or a stack trace. A failed
 * step reports the file, line, step and the last command's exit code, stdout
 * and stderr. fixture.dispose() then scans the disk for the canary.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createFixture,
  fakeChatGptAuth,
  type Fixture,
  ROOT,
  runCommand,
  type RunResult,
  SECURE_CODEX,
} from "./helpers.ts";

const TESTDATA = join(ROOT, "tests", "testdata");

interface Step {
  line: number;
  text: string;
  negated: boolean;
  verb: string;
  args: string[];
}

/** Splits a line into words: spaces separate, '...' and "..." group. */
function splitWords(line: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  let i = 0;
  while (i < line.length) {
    const char = line[i];
    if (char === " " || char === "\t") {
      if (word !== null) words.push(word);
      word = null;
      i++;
    } else if (char === "'" || char === '"') {
      const end = line.indexOf(char, i + 1);
      if (end < 0) throw new Error(`unclosed quote: ${char}`);
      word = (word ?? "") + line.slice(i + 1, end);
      i = end + 1;
    } else {
      word = (word ?? "") + char;
      i++;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

/** Each verb: [fewest arguments, most arguments (-1: any), may take "!"]. */
const VERBS: Readonly<Record<string, [number, number, boolean]>> = {
  env: [1, 1, false],
  unenv: [1, 1, false],
  store: [1, 2, false],
  "identity-other": [0, 0, false],
  mkdir: [2, 2, false],
  chmod: [2, 2, false],
  symlink: [2, 2, false],
  write: [2, 2, false],
  exec: [0, -1, true],
  "exec-code": [1, -1, false],
  stdout: [1, 1, true],
  stderr: [1, 1, true],
  exists: [1, 1, true],
  "symlink-to": [2, 2, false],
  dangling: [1, 1, false],
  mode: [2, 2, false],
  unchanged: [1, 1, false],
  "no-ram-copy": [0, 0, false],
};

function parseScript(file: string, text: string): Step[] {
  const steps: Step[] = [];
  text.split("\n").forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const where = `${file}:${line}: ${trimmed}`;
    let words: string[];
    try {
      words = splitWords(trimmed);
    } catch (error) {
      assert.fail(`${where}\n${(error as Error).message}`);
    }
    const negated = words[0] === "!";
    if (negated) words.shift();
    const verb = words.shift() ?? "";
    const spec = VERBS[verb];
    if (spec === undefined) assert.fail(`${where}\nunknown step: ${verb}`);
    const [min, max, negatable] = spec;
    if (negated && !negatable) {
      assert.fail(`${where}\n"!" does not apply to ${verb}`);
    }
    if (words.length < min || (max >= 0 && words.length > max)) {
      assert.fail(`${where}\nwrong number of arguments for ${verb}`);
    }
    steps.push({ line, text: trimmed, negated, verb, args: words });
  });
  return steps;
}

/** Parses an octal MODE or a decimal N, and throws on anything else. */
function number(text: string, radix: 8 | 10): number {
  const pattern = radix === 8 ? /^[0-7]{3,4}$/ : /^-?[0-9]+$/;
  if (!pattern.test(text)) {
    throw new Error(
      `not ${radix === 8 ? "an octal mode" : "an integer"}: ${text}`,
    );
  }
  return parseInt(text, radix);
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg)
    ? arg
    : `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** The state of one case while its steps run. */
class Script {
  readonly #file: string;
  readonly #fixture: Fixture;
  readonly #env: Record<string, string>;
  /** Bytes each store or write step left, by path, for `unchanged`. */
  readonly #written = new Map<string, Uint8Array>();
  #last: { args: string[]; result: RunResult } | null = null;

  constructor(file: string, fixture: Fixture) {
    this.#file = file;
    this.#fixture = fixture;
    this.#env = { ...fixture.env };
  }

  get #otherIdentity(): string {
    return join(this.#fixture.dir, "other.txt");
  }

  #variable(name: string): string {
    const fixture = this.#fixture;
    switch (name) {
      case "HOME":
        return fixture.home;
      case "CODEX_HOME":
        return fixture.codexHome;
      case "STORE":
        return fixture.store;
      case "IDENTITY":
        return fixture.identity;
      case "RUNTIME":
        return fixture.runtimeDir;
      case "TMP":
        return fixture.tmpDir;
      case "DIR":
        return fixture.dir;
      case "CANARY":
        return fixture.canary;
      case "RECIPIENT":
        return fixture.recipient;
      case "RAM":
        return fixture.ramDir();
    }
    if (name in this.#env) return this.#env[name];
    throw new Error(`unknown variable: $${name}`);
  }

  /** Expands $NAME and ${NAME}. With `regex`, the values are escaped for a RegExp. */
  #expand(word: string, regex = false): string {
    return word.replace(
      /\$(?:([A-Z_][A-Z0-9_]*)|\{([A-Z_][A-Z0-9_]*)\})/g,
      (_, bare: string | undefined, braced: string | undefined) => {
        const value = this.#variable(bare ?? braced!);
        return regex ? escapeRegex(value) : value;
      },
    );
  }

  #lastOutput(): string {
    if (this.#last === null) return "(no command has run yet)";
    const { args, result } = this.#last;
    return [
      `last command: secure-codex ${args.map(quote).join(" ")}`,
      `exit code: ${result.code}${
        result.signal ? ` (signal ${result.signal})` : ""
      }`,
      "--- stdout ---",
      result.stdout,
      "--- stderr ---",
      result.stderr,
      "--- end ---",
    ].join("\n");
  }

  #fail(step: Step, message: string): never {
    assert.fail(
      `${this.#file}:${step.line}: ${step.text}\n${message}\n${this.#lastOutput()}`,
    );
  }

  async run(steps: Step[]): Promise<void> {
    for (const step of steps) {
      try {
        await this.#step(step);
      } catch (error) {
        if (error instanceof assert.AssertionError) throw error;
        this.#fail(step, `step failed: ${(error as Error).message}`);
      }
    }
  }

  async #step(step: Step): Promise<void> {
    const fixture = this.#fixture;
    const args = step.args;
    const path = () => this.#expand(args[0]);
    switch (step.verb) {
      case "env": {
        const text = this.#expand(args[0]);
        const equals = text.indexOf("=");
        if (equals <= 0) this.#fail(step, "expected NAME=VALUE");
        this.#env[text.slice(0, equals)] = text.slice(equals + 1);
        return;
      }
      case "unenv":
        delete this.#env[args[0]];
        return;
      case "store":
        await this.#store(step);
        return;
      case "identity-other": {
        const result = await runCommand("age-keygen", [
          "-o",
          this.#otherIdentity,
        ]);
        if (result.code !== 0) {
          this.#fail(step, `age-keygen failed: ${result.stderr}`);
        }
        return;
      }
      case "mkdir": {
        const mode = number(args[1], 8);
        Deno.mkdirSync(path(), { mode });
        Deno.chmodSync(path(), mode);
        return;
      }
      case "chmod":
        Deno.chmodSync(path(), number(args[1], 8));
        return;
      case "symlink":
        Deno.symlinkSync(this.#expand(args[0]), this.#expand(args[1]));
        return;
      case "write": {
        const bytes = new TextEncoder().encode(this.#expand(args[1]));
        Deno.writeFileSync(path(), bytes);
        this.#written.set(path(), bytes);
        return;
      }
      case "exec":
      case "exec-code":
        await this.#exec(step);
        return;
      case "stdout":
      case "stderr": {
        if (this.#last === null) {
          this.#fail(step, "needs an exec step before it");
        }
        const regex = new RegExp(this.#expand(args[0], true), "m");
        const text = this.#last.result[step.verb];
        if (regex.test(text) === step.negated) {
          this.#fail(
            step,
            `${step.verb} ${
              step.negated ? "matches" : "does not match"
            } ${regex}`,
          );
        }
        return;
      }
      case "exists": {
        const found = lstatOrNull(path()) !== null;
        if (found === step.negated) {
          this.#fail(step, `${path()} ${found ? "exists" : "does not exist"}`);
        }
        return;
      }
      case "symlink-to": {
        const info = lstatOrNull(path());
        if (!info?.isSymlink) this.#fail(step, `${path()} is not a symlink`);
        const target = Deno.readLinkSync(path());
        const expected = this.#expand(args[1]);
        if (target !== expected) {
          this.#fail(
            step,
            `${path()} points to ${target}, expected ${expected}`,
          );
        }
        return;
      }
      case "dangling": {
        if (!lstatOrNull(path())?.isSymlink) {
          this.#fail(step, `${path()} is not a symlink`);
        }
        const target = Deno.readLinkSync(path());
        if (statOrNull(path()) !== null) {
          this.#fail(step, `${path()} points to ${target}, which exists`);
        }
        return;
      }
      case "mode": {
        const info = lstatOrNull(path());
        if (info === null) this.#fail(step, `${path()} does not exist`);
        const actual = (info.mode ?? 0) & 0o7777;
        if (actual !== number(args[1], 8)) {
          this.#fail(step, `${path()} has mode 0${actual.toString(8)}`);
        }
        return;
      }
      case "unchanged": {
        const before = this.#written.get(path());
        if (before === undefined) {
          this.#fail(step, `no store or write step wrote ${path()}`);
        }
        const info = lstatOrNull(path());
        if (!info?.isFile) {
          this.#fail(step, `${path()} is no longer a regular file`);
        }
        const after = Deno.readFileSync(path());
        if (
          after.length !== before.length ||
          after.some((byte, i) => byte !== before[i])
        ) {
          this.#fail(
            step,
            `${path()} changed (${before.length} bytes before, ${after.length} now)`,
          );
        }
        return;
      }
      case "no-ram-copy": {
        const found = findRamCopies(fixture.runtimeDir);
        if (found.length > 0) {
          this.#fail(step, `plaintext copies in RAM: ${found.join(", ")}`);
        }
        return;
      }
    }
    this.#fail(step, `unhandled step: ${step.verb}`);
  }

  async #store(step: Step): Promise<void> {
    const fixture = this.#fixture;
    const [kind, value] = step.args;
    const needValue = kind === "text" || kind === "bytes-random" ||
      kind === "truncate";
    if (needValue !== (value !== undefined)) {
      this.#fail(
        step,
        `store ${kind} ${needValue ? "needs" : "takes no"} value`,
      );
    }
    switch (kind) {
      case "chatgpt":
        await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
        break;
      case "apikey":
        await fixture.writeStore({
          auth_mode: "apikey",
          OPENAI_API_KEY: `sk-test-${fixture.canary}`,
        });
        break;
      case "text":
        await fixture.writeStore(this.#expand(value));
        break;
      case "bytes-random":
        Deno.writeFileSync(
          fixture.store,
          crypto.getRandomValues(new Uint8Array(number(value, 10))),
        );
        break;
      case "truncate": {
        const bytes = Deno.readFileSync(fixture.store);
        const keep = number(value, 10);
        Deno.writeFileSync(
          fixture.store,
          bytes.slice(0, keep < 0 ? bytes.length + keep : keep),
        );
        break;
      }
      default:
        this.#fail(step, `unknown store kind: ${kind}`);
    }
    this.#written.set(fixture.store, Deno.readFileSync(fixture.store));
  }

  async #exec(step: Step): Promise<void> {
    let expected: number | "non-zero" = step.negated ? "non-zero" : 0;
    let words = step.args;
    if (step.verb === "exec-code") {
      expected = number(words[0], 10);
      words = words.slice(1);
    }
    const args = words.map((word) => this.#expand(word));
    const result = await runCommand(SECURE_CODEX, args, {
      env: this.#env,
      cwd: this.#fixture.dir,
    });
    this.#last = { args, result };
    const ok = expected === "non-zero"
      ? result.code !== 0
      : result.code === expected;
    if (!ok) {
      this.#fail(step, `expected exit code ${expected}, got ${result.code}`);
    }
    for (const stream of ["stdout", "stderr"] as const) {
      const text = result[stream];
      if (text.includes(this.#fixture.canary)) {
        this.#fail(step, `${stream} contains the canary (token material)`);
      }
      if (/internal error|^error: Uncaught|^\s+at .*:\d+:\d+\)?$/m.test(text)) {
        this.#fail(step, `${stream} shows an internal error or a stack trace`);
      }
    }
  }
}

function lstatOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

function statOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** Lists entries named auth.json or .auth-* under a directory, without following links. */
function findRamCopies(directory: string): string[] {
  const found: string[] = [];
  for (const entry of Deno.readDirSync(directory)) {
    const path = join(directory, entry.name);
    if (entry.isDirectory) found.push(...findRamCopies(path));
    else if (entry.name === "auth.json" || entry.name.startsWith(".auth-")) {
      found.push(path);
    }
  }
  return found;
}

const cases = [...Deno.readDirSync(TESTDATA)]
  .filter((entry) => entry.isFile && entry.name.endsWith(".txt"))
  .map((entry) => entry.name)
  .sort();

for (const name of cases) {
  Deno.test(`testdata/${name}`, async () => {
    const file = `tests/testdata/${name}`;
    const steps = parseScript(
      file,
      Deno.readTextFileSync(join(TESTDATA, name)),
    );
    assert.ok(steps.length > 0, `${file} has no steps`);
    const fixture = await createFixture();
    try {
      await new Script(file, fixture).run(steps);
    } finally {
      await fixture.dispose();
    }
  });
}
