/**
 * Tests for passphrase-encrypted stores (`age -p`) and passphrase-protected
 * identity files, against the real age and codex.
 *
 * age reads passphrases from /dev/tty, so these tests run secure-codex and
 * age inside tmux, which gives each command a pseudo-terminal, and type the
 * passphrases with `tmux send-keys` once age's prompt shows in the pane.
 * Each test starts its own tmux server on a private socket (`tmux -L`). Every
 * command runs in its own tmux session through a small shell script that
 * loads the environment from a file, runs the command, prints its exit code
 * to the pane and writes it to a file. Panes stay open after their command
 * ends (`remain-on-exit`), and `pipe-pane` logs everything a pane showed.
 * age erases each prompt once it has read the answer, so the log, not the
 * final screen, shows which prompts appeared.
 *
 * Passphrases are throwaway strings. The plaintext of a login only travels
 * through pipes and a FIFO, never through a regular file, so the canary scan
 * of `fixture.dispose()` also covers the pane logs.
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  createFixture,
  fakeChatGptAuth,
  type Fixture,
  pathExists,
  ramCopies,
  runCommand,
  SECURE_CODEX,
  startTokenMock,
  waitFor,
} from "./helpers.ts";

interface StoredAuth {
  tokens?: { refresh_token: string } | null;
}

/** age 1.1.1's prompt when it decrypts a passphrase-encrypted file. */
const PROMPT_DECRYPT = /Enter passphrase:/;
/** age 1.1.1's first prompt for `age -e -p`. */
const PROMPT_NEW =
  /Enter passphrase \(leave empty to autogenerate a secure one\):/;
/** age 1.1.1's second prompt for `age -e -p`. */
const PROMPT_CONFIRM = /Confirm passphrase:/;
/** age 1.1.1's prompt when it decrypts a passphrase-protected identity file. */
const PROMPT_IDENTITY = /Enter passphrase for identity file/;
/** Any of age's passphrase prompts. */
const PROMPT_ANY = /Enter passphrase|Confirm passphrase/;

/** How long to wait for a prompt or for a command to end. */
const TIMEOUT_MS = 60_000;
/**
 * How long codex is held after its refresh while the test watches for a
 * write-back prompt that must not appear. Write-back follows a save of
 * auth.json within milliseconds, and tests/core_test.ts allows 1 s.
 */
const HOLD_MS = 2_000;
/** What the wrapper script prints to the pane when its command ends. */
const EXIT_MARKER = "run.sh: exit code ";

/** Throwaway passphrases, used only by these tests. */
const STORE_PASSPHRASE = "throwaway-store-passphrase-1";
const NEW_STORE_PASSPHRASE = "throwaway-store-passphrase-2";
const IDENTITY_PASSPHRASE = "throwaway-identity-passphrase";

const decoder = new TextDecoder();

const WRAPPER_SCRIPT = `#!/bin/sh
# Usage: run.sh ENV_FILE EXIT_FILE COMMAND [ARGUMENT...]
# Loads the environment, runs the command, then prints its exit code to the
# terminal and writes it to EXIT_FILE (temp file and rename, so a reader
# never sees a partial write).
set -a
. "$1"
set +a
exit_file=$2
shift 2
"$@"
code=$?
echo "${EXIT_MARKER}$code"
echo "$code" > "$exit_file.tmp"
mv "$exit_file.tmp" "$exit_file"
`;

const TMUX_CONFIG = `set -g remain-on-exit on
set -g history-limit 10000
`;

/** Quotes a value for a POSIX shell. */
function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** A private tmux server; each command it runs gets its own session. */
class Terminal {
  readonly socket = `sc-passphrase-${crypto.randomUUID().slice(0, 8)}`;
  readonly #dir: string;
  readonly #config: string;
  readonly #wrapper: string;
  readonly #envFile: string;
  #sessions = 0;

  private constructor(dir: string) {
    this.#dir = dir;
    this.#config = join(dir, "tmux.conf");
    this.#wrapper = join(dir, "run.sh");
    this.#envFile = join(dir, "env.sh");
  }

  /**
   * Prepares a terminal whose commands see exactly `env` plus TERM. The
   * environment file is on disk, so `env` must not contain the canary.
   */
  static async create(
    fixture: Fixture,
    env: Record<string, string>,
  ): Promise<Terminal> {
    const dir = await Deno.makeTempDir({ dir: fixture.dir, prefix: "tty-" });
    const terminal = new Terminal(dir);
    await Deno.writeTextFile(terminal.#config, TMUX_CONFIG);
    await Deno.writeTextFile(terminal.#wrapper, WRAPPER_SCRIPT);
    const lines = Object.entries(env).map(([name, value]) =>
      `${name}=${shellQuote(value)}`
    );
    await Deno.writeTextFile(terminal.#envFile, lines.join("\n") + "\n");
    return terminal;
  }

  /** Runs a tmux command on this server and returns its stdout. */
  async tmux(args: string[]): Promise<string> {
    const result = await runCommand("tmux", ["-L", this.socket, ...args]);
    if (result.code !== 0) {
      throw new Error(`tmux ${args.join(" ")} failed: ${result.stderr}`);
    }
    return result.stdout;
  }

  /** Starts `command` in a new 200x50 session and returns its pane. */
  async run(command: string[]): Promise<Pane> {
    const name = `run${++this.#sessions}`;
    const exitFile = join(this.#dir, `${name}.exit`);
    const logFile = join(this.#dir, `${name}.log`);
    // pipe-pane runs in the same tmux call as new-session, so logging starts
    // well before age prints its first prompt.
    await this.tmux([
      "-f",
      this.#config,
      "new-session",
      "-d",
      "-s",
      name,
      "-x",
      "200",
      "-y",
      "50",
      "env",
      "-i",
      "TERM=screen",
      "/bin/sh",
      this.#wrapper,
      this.#envFile,
      exitFile,
      ...command,
      ";",
      "pipe-pane",
      "-o",
      "-t",
      name,
      `cat >> ${shellQuote(logFile)}`,
    ]);
    return new Pane(this, name, exitFile, logFile);
  }

  /**
   * Stops the server (commands still running get SIGHUP) and removes its
   * socket, which tmux leaves behind.
   */
  async close(): Promise<void> {
    await runCommand("tmux", ["-L", this.socket, "kill-server"]);
    const socketDir = join(
      Deno.env.get("TMUX_TMPDIR") || "/tmp",
      `tmux-${Deno.uid()}`,
    );
    await Deno.remove(join(socketDir, this.socket)).catch(() => {});
  }
}

/** One command running in a tmux session. */
class Pane {
  readonly #terminal: Terminal;
  readonly name: string;
  readonly #exitFile: string;
  readonly #logFile: string;

  constructor(
    terminal: Terminal,
    name: string,
    exitFile: string,
    logFile: string,
  ) {
    this.#terminal = terminal;
    this.name = name;
    this.#exitFile = exitFile;
    this.#logFile = logFile;
  }

  /** Returns the pane's text, scrollback included, with wrapped lines joined. */
  screen(): Promise<string> {
    return this.#terminal.tmux([
      "capture-pane",
      "-p",
      "-J",
      "-S",
      "-",
      "-t",
      this.name,
    ]);
  }

  /** Returns the command's exit code, or null while it runs. */
  exitCode(): number | null {
    if (!pathExists(this.#exitFile)) return null;
    return Number(Deno.readTextFileSync(this.#exitFile).trim());
  }

  /**
   * Polls the screen until `done` accepts it and returns that screen. Throws
   * with the screen when the command ends first (unless `untilExit`) or the
   * timeout passes.
   */
  async #poll(
    done: (screen: string) => boolean,
    description: string,
    untilExit = false,
  ): Promise<string> {
    const deadline = Date.now() + TIMEOUT_MS;
    for (;;) {
      const screen = await this.screen();
      const ended = this.#ended(screen);
      if (done(screen)) return screen;
      if (ended && !untilExit) {
        throw new Error(
          `the command ended (exit code ${this.exitCode()}) before ${description}; screen:\n${screen}`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${TIMEOUT_MS} ms waiting for ${description}; screen:\n${screen}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /**
   * Tells whether the command ended and the screen shows all its output.
   * tmux draws pane output asynchronously, and the wrapper prints its exit
   * line after the command's last output, so a screen with that line is
   * complete.
   */
  #ended(screen: string): boolean {
    return screen.includes(EXIT_MARKER) && this.exitCode() !== null;
  }

  /** Waits until the screen matches `pattern` and returns it. */
  waitForText(pattern: RegExp, description: string): Promise<string> {
    return this.#poll((screen) => pattern.test(screen), description);
  }

  /** Waits until the screen no longer matches `pattern`, or the command ends. */
  async waitForTextGone(pattern: RegExp, description: string): Promise<void> {
    await this.#poll(
      (screen) => !pattern.test(screen) || this.#ended(screen),
      description,
      true,
    );
  }

  /** Types `text` literally and presses Enter. */
  async type(text: string): Promise<void> {
    await this.#terminal.tmux(["send-keys", "-t", this.name, "-l", text]);
    await this.#terminal.tmux(["send-keys", "-t", this.name, "Enter"]);
  }

  /** Waits for age's prompt, then types the answer. */
  async answer(
    prompt: RegExp,
    text: string,
    description: string,
  ): Promise<void> {
    await this.waitForText(prompt, description);
    await this.type(text);
  }

  /**
   * Waits for the command to end and returns its exit code and final screen.
   * With `failOn`, throws as soon as the screen matches it, for a prompt
   * that would otherwise wait for input until the timeout.
   */
  async waitForExit(
    failOn?: RegExp,
  ): Promise<{ code: number; screen: string }> {
    const screen = await this.#poll(
      (text) => {
        if (failOn?.test(text)) {
          throw new Error(`the pane showed ${failOn} while running:\n${text}`);
        }
        return this.#ended(text);
      },
      "the command to end",
      true,
    );
    return { code: this.exitCode()!, screen };
  }

  /**
   * Everything the pane showed, raw, once the wrapper's exit line has
   * reached the log (pipe-pane copies output asynchronously).
   */
  async log(): Promise<string> {
    const deadline = Date.now() + TIMEOUT_MS;
    for (;;) {
      const text = pathExists(this.#logFile)
        ? await Deno.readTextFile(this.#logFile)
        : "";
      if (text.includes(EXIT_MARKER)) return text;
      if (Date.now() > deadline) {
        throw new Error(`the pane log never got the exit line:\n${text}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/**
 * Builds the environment for commands in the terminal: the fixture's, without
 * its identity, so a passphrase store gets no recipients from it.
 */
function terminalEnv(
  fixture: Fixture,
  extra: Record<string, string>,
): Record<string, string> {
  const env = { ...fixture.env, ...extra };
  delete env.SECURE_CODEX_IDENTITY;
  return env;
}

/** Builds a login whose access token expired, so codex refreshes it with `rt-1`. */
function expiredLogin(fixture: Fixture): Record<string, unknown> {
  return fakeChatGptAuth({
    canary: fixture.canary,
    refreshToken: "rt-1",
    expiresIn: -600,
  });
}

/** Tells whether a store's header has a scrypt (passphrase) stanza. */
function isPassphraseStore(bytes: Uint8Array): boolean {
  const header = decoder.decode(bytes.subarray(0, 512));
  return header.startsWith("age-encryption.org/v1\n") &&
    header.includes("\n-> scrypt ");
}

/**
 * Encrypts the fixture's identity with `age -p` and IDENTITY_PASSPHRASE in
 * the terminal, as a passphrase-protected identity file. Returns its path.
 */
async function protectIdentity(
  fixture: Fixture,
  terminal: Terminal,
): Promise<string> {
  const keyFile = join(fixture.dir, "key.age");
  const pane = await terminal.run([
    "age",
    "-p",
    "-o",
    keyFile,
    fixture.identity,
  ]);
  await pane.answer(
    PROMPT_NEW,
    IDENTITY_PASSPHRASE,
    "age -p to ask for a passphrase",
  );
  await pane.answer(PROMPT_CONFIRM, IDENTITY_PASSPHRASE, "age -p to ask again");
  const { code, screen } = await pane.waitForExit();
  assert.equal(code, 0, `protecting the identity failed:\n${screen}`);
  return keyFile;
}

/**
 * Makes `fixture.store` a passphrase store containing `value`: encrypts it to
 * the fixture's identity first, then pipes `age -d` into `age -e -p` in the
 * terminal, so the plaintext stays in a pipe.
 */
async function makePassphraseStore(
  fixture: Fixture,
  terminal: Terminal,
  value: unknown,
  passphrase: string,
): Promise<void> {
  const keyStore = join(fixture.dir, "key-store.age");
  await fixture.writeStore(value, keyStore);
  const pane = await terminal.run([
    "bash",
    "-c",
    'set -o pipefail; age -d -i "$1" "$2" | age -e -p -o "$3"',
    "bash",
    fixture.identity,
    keyStore,
    fixture.store,
  ]);
  await pane.answer(PROMPT_NEW, passphrase, "age -p to ask for a passphrase");
  await pane.answer(PROMPT_CONFIRM, passphrase, "age -p to ask again");
  const { code, screen } = await pane.waitForExit();
  assert.equal(code, 0, `making the passphrase store failed:\n${screen}`);
  await Deno.remove(keyStore);
  assert.ok(isPassphraseStore(await Deno.readFile(fixture.store)));
}

/**
 * Decrypts a passphrase-encrypted file with `age -d` in the terminal and
 * parses it. age writes into a FIFO that `cat` reads into this process, so
 * the plaintext never reaches a regular file.
 */
async function decryptWithPassphrase(
  fixture: Fixture,
  terminal: Terminal,
  path: string,
  passphrase: string,
): Promise<unknown> {
  const fifo = join(fixture.dir, `plain-${crypto.randomUUID()}.fifo`);
  const created = await runCommand("mkfifo", ["-m", "600", fifo]);
  assert.equal(created.code, 0, created.stderr);
  const reader = new Deno.Command("cat", {
    args: [fifo],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = reader.output();
  try {
    const pane = await terminal.run([
      "sh",
      "-c",
      'age -d "$1" > "$2"',
      "sh",
      path,
      fifo,
    ]);
    await pane.answer(
      PROMPT_DECRYPT,
      passphrase,
      "age -d to ask for the store's passphrase",
    );
    const { code, screen } = await pane.waitForExit();
    assert.equal(code, 0, `age -d failed:\n${screen}`);
    return JSON.parse(decoder.decode((await output).stdout));
  } finally {
    try {
      reader.kill();
    } catch {
      // cat already ended.
    }
    await output;
    await Deno.remove(fifo);
  }
}

/** A loopback HTTP server, configured as an MCP server, that responds only once released. */
interface HeldServer {
  url: string;
  /** How many requests arrived. */
  requests(): number;
  /** Responds with 404 to every waiting and later request. */
  release(): void;
  close(): Promise<void>;
}

/**
 * Starts the server that keeps codex running. codex 0.171's `mcp list` sends
 * a GET to each configured HTTP MCP server and waits for the response before
 * it prints the list.
 */
function startHeldServer(): HeldServer {
  let release = () => {};
  const released = new Promise<void>((resolve) => release = resolve);
  let requests = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async () => {
      requests++;
      await released;
      return new Response("not found", { status: 404 });
    },
  );
  const address = server.addr as Deno.NetAddr;
  return {
    url: `http://127.0.0.1:${address.port}/mcp`,
    requests: () => requests,
    release,
    close: async () => {
      release();
      await server.shutdown();
    },
  };
}

/** Returns the RAM copy's refresh token, or null while no copy is readable. */
async function ramTokenIfAny(fixture: Fixture): Promise<string | null> {
  const copies = ramCopies(fixture);
  if (copies.length !== 1) return null;
  try {
    const auth = JSON.parse(await Deno.readTextFile(copies[0])) as StoredAuth;
    return auth.tokens?.refresh_token ?? null;
  } catch {
    return null;
  }
}

/** Reads the one RAM copy's refresh token (the file is on the tmpfs). */
async function ramRefreshToken(fixture: Fixture): Promise<string | undefined> {
  const copies = ramCopies(fixture);
  assert.equal(copies.length, 1, `RAM copies: ${copies.join(", ")}`);
  const auth = JSON.parse(await Deno.readTextFile(copies[0])) as StoredAuth;
  return auth.tokens?.refresh_token;
}

Deno.test("passphrase store saves after codex exits", async () => {
  const fixture = await createFixture();
  const mock = startTokenMock({ canary: fixture.canary, first: "rt-1" });
  const mcp = startHeldServer();
  let terminal: Terminal | null = null;
  try {
    terminal = await Terminal.create(
      fixture,
      terminalEnv(fixture, { CODEX_REFRESH_TOKEN_URL_OVERRIDE: mock.url }),
    );
    await makePassphraseStore(
      fixture,
      terminal,
      expiredLogin(fixture),
      STORE_PASSPHRASE,
    );
    const before = await Deno.readFile(fixture.store);
    await Deno.writeTextFile(
      join(fixture.codexHome, "config.toml"),
      `\n[mcp_servers.probe]\nurl = "${mcp.url}"\n`,
      { append: true },
    );

    const pane = await terminal.run([SECURE_CODEX, "--", "mcp", "list"]);
    await pane.answer(
      PROMPT_DECRYPT,
      STORE_PASSPHRASE,
      "age to ask for the store's passphrase at unlock",
    );
    // codex has refreshed and now waits for the MCP server: write-back
    // must not take the terminal from it.
    await waitFor(
      async () =>
        mcp.requests() > 0 &&
        await ramTokenIfAny(fixture) === `rt-2-${fixture.canary}`,
      "codex to refresh and then wait for the MCP server",
      { timeoutMs: TIMEOUT_MS },
    );
    const holdUntil = Date.now() + HOLD_MS;
    while (Date.now() < holdUntil) {
      const screen = await pane.screen();
      assert.doesNotMatch(
        screen,
        /type a passphrase twice|Enter passphrase|Confirm passphrase/,
        `write-back asked for a passphrase while codex ran:\n${screen}`,
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal(pane.exitCode(), null, "codex did not wait");
    assert.deepEqual(
      await Deno.readFile(fixture.store),
      before,
      "the store changed while codex ran",
    );
    mcp.release();

    const asking = await pane.waitForText(
      PROMPT_NEW,
      "age's encryption prompt after codex exits",
    );
    // codex's output comes before the notice, so age prompted after codex exited.
    const codexOutput = asking.search(/^probe\s+http:/m);
    const notice = asking.indexOf("type a passphrase twice to save");
    assert.ok(codexOutput >= 0, `codex printed no server list:\n${asking}`);
    assert.ok(
      notice > codexOutput,
      `age asked for the passphrase before codex had finished:\n${asking}`,
    );
    assert.deepEqual(
      mock.requests.map((request) => request.refreshToken),
      ["rt-1"],
    );
    assert.deepEqual(
      await Deno.readFile(fixture.store),
      before,
      "the store changed before the passphrase was given",
    );

    await pane.type(NEW_STORE_PASSPHRASE);
    await pane.answer(
      PROMPT_CONFIRM,
      NEW_STORE_PASSPHRASE,
      "age to ask to confirm the passphrase",
    );
    const { code, screen } = await pane.waitForExit(PROMPT_DECRYPT);
    assert.equal(code, 0, `not codex's exit code:\n${screen}`);
    assert.doesNotMatch(screen, /refreshed tokens are not saved/);

    const after = await Deno.readFile(fixture.store);
    assert.notDeepEqual(after, before, "the store was not replaced");
    assert.ok(isPassphraseStore(after), "the store lost its passphrase");
    const stored = await decryptWithPassphrase(
      fixture,
      terminal,
      fixture.store,
      NEW_STORE_PASSPHRASE,
    ) as StoredAuth;
    assert.equal(stored.tokens?.refresh_token, `rt-2-${fixture.canary}`);
  } finally {
    await terminal?.close();
    await mcp.close();
    await mock.close();
    await fixture.dispose();
  }
});

Deno.test("passphrase store without terminal fails", async () => {
  const fixture = await createFixture();
  const mock = startTokenMock({ canary: fixture.canary, first: "rt-1" });
  const env = terminalEnv(fixture, {
    CODEX_REFRESH_TOKEN_URL_OVERRIDE: mock.url,
  });
  let terminal: Terminal | null = null;
  try {
    terminal = await Terminal.create(fixture, env);
    await makePassphraseStore(
      fixture,
      terminal,
      expiredLogin(fixture),
      STORE_PASSPHRASE,
    );
    const before = await Deno.readFile(fixture.store);
    // A fake age, first on PATH, that creates a marker file and then runs the
    // real age.
    const binDir = await Deno.makeTempDir({ dir: fixture.dir, prefix: "bin-" });
    const ageMark = join(fixture.dir, "age-ran");
    await Deno.writeTextFile(
      join(binDir, "age"),
      `#!/bin/sh\ntouch ${shellQuote(ageMark)}\nexec /usr/bin/age "$@"\n`,
      { mode: 0o755 },
    );
    await Deno.chmod(join(binDir, "age"), 0o755);

    // setsid starts a new session without a controlling terminal, and stdin
    // is /dev/null.
    const result = await runCommand("setsid", [
      SECURE_CODEX,
      "--",
      "mcp",
      "list",
    ], { env: { ...env, PATH: `${binDir}:${env.PATH}` } });

    assert.notEqual(result.code, 0, result.stderr);
    assert.match(
      result.stderr,
      /the store is passphrase-encrypted and there is no terminal to ask for the passphrase/,
    );
    assert.match(result.stderr, /hint: run the command once on a terminal/);
    assert.match(result.stderr, /SECURE_CODEX_KEEP=true/);
    assert.match(result.stderr, /--rekey --recipients-file FILE/);
    assert.match(result.stderr, /--identity PATH/);
    assert.ok(!pathExists(ageMark), "age ran although no terminal exists");
    assert.deepEqual(mock.requests, [], "codex ran");
    assert.deepEqual(ramCopies(fixture), []);
    assert.ok(!pathExists(join(fixture.codexHome, "auth.json")));
    assert.deepEqual(await Deno.readFile(fixture.store), before);

    // A rekey gets the one hint that fits it, not the rekey command itself.
    const recipientsFile = join(fixture.dir, "new-recipients.txt");
    await Deno.writeTextFile(recipientsFile, `${fixture.recipient}\n`);
    const rekey = await runCommand("setsid", [
      SECURE_CODEX,
      "--rekey",
      "--recipients-file",
      recipientsFile,
    ], { env });
    assert.equal(rekey.code, 1, rekey.stderr);
    assert.match(rekey.stderr, /no terminal to ask for the passphrase/);
    assert.match(
      rekey.stderr,
      /^secure-codex: hint: run --rekey on a terminal, where age can ask for the passphrase$/m,
    );
    assert.doesNotMatch(rekey.stderr, /--rekey --recipients-file FILE/);
    assert.deepEqual(await Deno.readFile(fixture.store), before);
  } finally {
    await terminal?.close();
    await mock.close();
    await fixture.dispose();
  }
});

Deno.test("refresh without terminal waits for cleanup", async () => {
  const fixture = await createFixture();
  const mock = startTokenMock({ canary: fixture.canary, first: "rt-1" });
  const env = terminalEnv(fixture, {
    CODEX_REFRESH_TOKEN_URL_OVERRIDE: mock.url,
  });
  let terminal: Terminal | null = null;
  try {
    terminal = await Terminal.create(fixture, env);
    await makePassphraseStore(
      fixture,
      terminal,
      expiredLogin(fixture),
      STORE_PASSPHRASE,
    );
    const before = await Deno.readFile(fixture.store);

    // Unlock on the terminal. login status never refreshes, and the RAM copy
    // stays because SECURE_CODEX_KEEP defaults to true.
    const unlock = await terminal.run([SECURE_CODEX, "--", "login", "status"]);
    await unlock.answer(
      PROMPT_DECRYPT,
      STORE_PASSPHRASE,
      "age to ask for the store's passphrase at unlock",
    );
    const unlocked = await unlock.waitForExit(PROMPT_NEW);
    assert.equal(unlocked.code, 0, unlocked.screen);
    assert.equal(await ramRefreshToken(fixture), "rt-1");

    // This run has no terminal and reuses the RAM copy. codex refreshes. It
    // names an identity too, whose public key must not silently replace the
    // store's passphrase.
    const result = await runCommand("setsid", [
      SECURE_CODEX,
      "--",
      "mcp",
      "list",
    ], { env: { ...env, SECURE_CODEX_IDENTITY: fixture.identity } });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(
      mock.requests.map((request) => request.refreshToken),
      ["rt-1"],
    );
    assert.match(
      result.stderr,
      /refreshed tokens are not saved: the store is passphrase-encrypted and there is no terminal/,
    );
    assert.ok(
      result.stderr.includes(
        `run on a terminal: secure-codex --real-codex-home ${fixture.codexHome} --identity ${fixture.identity} --cleanup`,
      ),
      result.stderr,
    );
    assert.equal(await ramRefreshToken(fixture), `rt-2-${fixture.canary}`);
    assert.deepEqual(await Deno.readFile(fixture.store), before);

    const cleanup = await terminal.run([SECURE_CODEX, "--cleanup"]);
    await cleanup.answer(
      PROMPT_NEW,
      NEW_STORE_PASSPHRASE,
      "age's encryption prompt in --cleanup",
    );
    await cleanup.answer(
      PROMPT_CONFIRM,
      NEW_STORE_PASSPHRASE,
      "age to ask to confirm the passphrase",
    );
    const cleaned = await cleanup.waitForExit(PROMPT_DECRYPT);
    assert.equal(cleaned.code, 0, cleaned.screen);
    assert.match(cleaned.screen, /saved the changed RAM copy to the store/);
    assert.deepEqual(ramCopies(fixture), []);

    const after = await Deno.readFile(fixture.store);
    assert.ok(isPassphraseStore(after), "the store lost its passphrase");
    const stored = await decryptWithPassphrase(
      fixture,
      terminal,
      fixture.store,
      NEW_STORE_PASSPHRASE,
    ) as StoredAuth;
    assert.equal(stored.tokens?.refresh_token, `rt-2-${fixture.canary}`);
  } finally {
    await terminal?.close();
    await mock.close();
    await fixture.dispose();
  }
});

Deno.test("protected identity prompts only once", async () => {
  const fixture = await createFixture();
  const mock = startTokenMock({ canary: fixture.canary, first: "rt-1" });
  let terminal: Terminal | null = null;
  try {
    terminal = await Terminal.create(
      fixture,
      terminalEnv(fixture, { CODEX_REFRESH_TOKEN_URL_OVERRIDE: mock.url }),
    );
    await fixture.writeStore(expiredLogin(fixture));
    const before = await Deno.readFile(fixture.store);
    // The identity is encrypted with a passphrase and has no public key line,
    // so write-back takes the recipient from the file beside the store.
    const keyFile = await protectIdentity(fixture, terminal);
    const publicKey = await runCommand("age-keygen", ["-y", fixture.identity]);
    assert.equal(publicKey.code, 0, publicKey.stderr);
    await Deno.writeTextFile(`${fixture.store}.recipients`, publicKey.stdout);

    const pane = await terminal.run([
      SECURE_CODEX,
      "--identity",
      keyFile,
      "--",
      "mcp",
      "list",
    ]);
    await pane.answer(
      PROMPT_IDENTITY,
      IDENTITY_PASSPHRASE,
      "age to ask for the identity's passphrase",
    );
    await pane.waitForTextGone(
      PROMPT_IDENTITY,
      "age to read the identity's passphrase",
    );
    // A second prompt would wait for input: fail as soon as one shows.
    const { code, screen } = await pane.waitForExit(PROMPT_ANY);
    assert.equal(code, 0, screen);
    assert.match(screen, /No MCP servers configured/, "codex did not run");
    const log = await pane.log();
    assert.equal(
      log.split("Enter passphrase").length - 1,
      1,
      `expected exactly one passphrase prompt; the pane showed:\n${log}`,
    );
    assert.doesNotMatch(log, /Confirm passphrase|type a passphrase twice/);

    assert.deepEqual(
      mock.requests.map((request) => request.refreshToken),
      ["rt-1"],
    );
    const after = await Deno.readFile(fixture.store);
    assert.notDeepEqual(after, before, "the store was not replaced");
    assert.ok(!isPassphraseStore(after));
    const stored = await fixture.readStore() as StoredAuth;
    assert.equal(stored.tokens?.refresh_token, `rt-2-${fixture.canary}`);
  } finally {
    await terminal?.close();
    await mock.close();
    await fixture.dispose();
  }
});

Deno.test("protected identity errors name the passphrase", async () => {
  const fixture = await createFixture();
  let terminal: Terminal | null = null;
  try {
    terminal = await Terminal.create(fixture, terminalEnv(fixture, {}));
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const before = await Deno.readFile(fixture.store);
    const keyFile = await protectIdentity(fixture, terminal);

    // A wrong passphrase on the terminal.
    const pane = await terminal.run([
      SECURE_CODEX,
      "--identity",
      keyFile,
      "--",
      "mcp",
      "list",
    ]);
    await pane.answer(PROMPT_IDENTITY, "not-the-passphrase", "age to ask");
    const wrong = await pane.waitForExit();
    assert.equal(wrong.code, 1, wrong.screen);
    const wrongLog = await pane.log();
    assert.match(
      wrongLog,
      /hint: enter the passphrase of the identity file, on a terminal: /,
    );
    assert.doesNotMatch(wrongLog, /check that the identity files/);

    // No terminal at all: the hints describe how to run without one.
    const result = await runCommand("setsid", [
      SECURE_CODEX,
      "--identity",
      keyFile,
      "--",
      "mcp",
      "list",
    ], { env: terminalEnv(fixture, {}) });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, /hint: run the command once on a terminal/);
    assert.doesNotMatch(result.stderr, /check that the identity files/);
    assert.deepEqual(await Deno.readFile(fixture.store), before);
  } finally {
    await terminal?.close();
    await fixture.dispose();
  }
});

Deno.test("Ctrl-C at the save prompt ends the run by SIGINT", async () => {
  const fixture = await createFixture();
  let terminal: Terminal | null = null;
  try {
    // Stand-ins: a codex that changes the refresh token in RAM, and an age
    // whose passphrase prompt for encryption gets Ctrl-C (it ends by SIGINT,
    // as age does). Decryption runs the real age.
    const bin = await Deno.makeTempDir({ dir: fixture.dir, prefix: "bin-" });
    await Deno.writeTextFile(
      join(bin, "codex"),
      `#!/bin/sh
target=$(readlink -f "$CODEX_HOME/auth.json")
sed 's/"refresh_token":"[^"]*"/"refresh_token":"rt-unsaved"/' "$target" > "\${target%/*}/.auth-new"
mv -f "\${target%/*}/.auth-new" "$target"
`,
      { mode: 0o755 },
    );
    await Deno.writeTextFile(
      join(bin, "age"),
      `#!/bin/sh
for arg; do [ "$arg" = --passphrase ] && kill -INT $$; done
exec /usr/bin/age "$@"
`,
      { mode: 0o755 },
    );
    await Deno.chmod(join(bin, "codex"), 0o755);
    await Deno.chmod(join(bin, "age"), 0o755);
    terminal = await Terminal.create(fixture, terminalEnv(fixture, {}));
    await makePassphraseStore(
      fixture,
      terminal,
      expiredLogin(fixture),
      STORE_PASSPHRASE,
    );
    const before = await Deno.readFile(fixture.store);
    const unlock = await terminal.run([SECURE_CODEX, "--unlock"]);
    await unlock.answer(PROMPT_DECRYPT, STORE_PASSPHRASE, "age to unlock");
    assert.equal((await unlock.waitForExit()).code, 0);

    const pane = await terminal.run([
      "env",
      `PATH=${bin}:${fixture.env.PATH}`,
      SECURE_CODEX,
      "--",
      "exec",
      "x",
    ]);
    const { code, screen } = await pane.waitForExit();
    // The shell gets a run ended by Ctrl-C (128 + 2), not codex's 0, and
    // restores the terminal that age left without echo.
    assert.equal(code, 130, screen);
    const log = await pane.log();
    assert.match(log, /write-back failed: .*age failed \(killed by SIGINT\)/);
    assert.match(
      log,
      /hint: the passphrase prompt was interrupted; to save them, run /,
    );
    assert.deepEqual(await Deno.readFile(fixture.store), before);
    assert.equal(await ramRefreshToken(fixture), "rt-unsaved");
  } finally {
    await terminal?.close();
    await fixture.dispose();
  }
});
