/**
 * The codex child process: started with the user's terminal and arguments,
 * waited for, and its exit status passed on as if codex had run directly.
 *
 * Signals: the terminal sends Ctrl-C (SIGINT) and Ctrl-Z (SIGTSTP) to the
 * whole foreground process group, codex included, so SIGINT is only kept from
 * killing this process and SIGTSTP is left alone. The signals in
 * {@linkcode FORWARDED_SIGNALS} may be sent to this process alone, so they are
 * forwarded to codex. When a signal ended codex, this process ends by the same
 * signal once its work is done ({@linkcode exitLikeCodex}), so a shell gets
 * the same exit status as from codex alone.
 *
 * @module
 */

import { CliError } from "./output.ts";

/**
 * The signals forwarded to codex: those a user or a supervisor sends to end a
 * program, and whose default action would otherwise end this process and
 * leave codex running without it.
 *
 * NOTE: Deno 2.9.2 and later also start the V8 inspector on 127.0.0.1:9229
 * when this process gets SIGUSR1 after its first 0.5 s. A listener does not
 * stop that, and Deno 2.9.6 has no setting that does.
 */
export const FORWARDED_SIGNALS: readonly Deno.Signal[] = [
  "SIGTERM",
  "SIGHUP",
  "SIGQUIT",
  "SIGUSR1",
  "SIGUSR2",
  "SIGALRM",
];

/**
 * The signals this process re-raises on itself when one of them ended codex:
 * those whose default action ends a process without a core dump. A core dump
 * of this process could hold the worker's plaintext, so for the others it
 * exits with 128 plus the signal number instead. SIGPIPE is left out because
 * Deno ignores it. SIGUSR1 is left out because Deno 2.9.2 and later start the
 * V8 inspector on 127.0.0.1:9229 when a process that has run for 0.5 s gets
 * it, and any local user can connect to that port.
 */
const RERAISED_SIGNALS: ReadonlySet<Deno.Signal> = new Set<Deno.Signal>([
  "SIGHUP",
  "SIGINT",
  "SIGALRM",
  "SIGTERM",
  "SIGUSR2",
  "SIGSTKFLT",
  "SIGIO",
  "SIGPROF",
  "SIGVTALRM",
  "SIGPWR",
]);

/** The exit status of codex, as a shell reports it. */
export interface CodexExit {
  /** The exit code, or 128 plus the signal number when a signal ended codex. */
  code: number;
  /** The signal that ended codex, when Deno has a name for it. */
  signal: Deno.Signal | null;
}

/** Codex's config override that keeps it on the file store, and so on the RAM copy. */
export const FILE_STORE_OVERRIDE = ["-c", 'cli_auth_credentials_store="file"'];

const SIGNAL_NUMBERS: Readonly<Partial<Record<Deno.Signal, number>>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGSYS: 31,
};

/**
 * Describes an end by `signal`, with the exit code a shell reports for it,
 * 128 plus the signal number.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(exitBySignal("SIGTERM"), { code: 143, signal: "SIGTERM" });
 * ```
 */
export function exitBySignal(signal: Deno.Signal): CodexExit {
  const number = SIGNAL_NUMBERS[signal];
  if (number === undefined) throw new Error(`no number known for ${signal}`);
  return { code: 128 + number, signal };
}

/**
 * Computes the exit code a shell reports for a status: the code, or 128 plus
 * the signal number when a signal ended the process.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(exitCodeOf({ success: false, code: 143, signal: "SIGTERM" }), 143);
 * assert.deepEqual(exitCodeOf({ success: false, code: 3, signal: null }), 3);
 * ```
 */
export function exitCodeOf(status: Deno.CommandStatus): number {
  if (status.signal) {
    const number = SIGNAL_NUMBERS[status.signal];
    if (number !== undefined) return 128 + number;
  }
  return status.code;
}

/**
 * Finds a codex argument that sets `cli_auth_credentials_store` to a store
 * other than the file, which would make codex ignore the RAM copy. Returns the
 * offending argument, or null.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(findStoreOverride(["-c", "cli_auth_credentials_store=keyring"]), "cli_auth_credentials_store=keyring");
 * assert.deepEqual(findStoreOverride(["exec", "cli_auth_credentials_store=keyring"]), null);
 * ```
 */
export function findStoreOverride(args: readonly string[]): string | null {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") break;
    let value: string | undefined;
    if (arg === "-c" || arg === "--config") value = args[i + 1];
    else if (arg.startsWith("--config=")) value = arg.slice("--config=".length);
    else if (arg.startsWith("-c") && arg.length > 2) value = arg.slice(2);
    if (value === undefined) continue;
    const match = /^\s*cli_auth_credentials_store\s*=\s*(.*)$/.exec(value);
    if (match === null) continue;
    const store = match[1].trim().replace(/^["']|["']$/g, "");
    if (store !== "file") return value;
  }
  return null;
}

/**
 * Builds codex's environment: the user's, minus `LD_*` variables (Deno refuses
 * to spawn with them under a scoped --allow-run), plus `CODEX_HOME`.
 * Returns the environment and the names that were dropped.
 *
 * @example
 * ```ts
 * const { env, dropped } = childEnvironment({ PATH: "/usr/bin", LD_PRELOAD: "x.so" }, "/home/me/.codex");
 * console.log(env.CODEX_HOME, dropped); // /home/me/.codex [ "LD_PRELOAD" ]
 * ```
 */
export function childEnvironment(
  environment: Record<string, string>,
  codexHome?: string,
): { env: Record<string, string>; dropped: string[] } {
  const env: Record<string, string> = {};
  const dropped: string[] = [];
  for (const [name, value] of Object.entries(environment)) {
    if (name.startsWith("LD_")) {
      if (value !== "") dropped.push(name);
      continue;
    }
    env[name] = value;
  }
  if (codexHome !== undefined) env.CODEX_HOME = codexHome;
  return { env, dropped: dropped.sort() };
}

/**
 * Runs codex with inherited stdio and the file-store override in front of the
 * user's arguments, forwards signals, and returns codex's exit status.
 *
 * @example
 * ```ts
 * const exit = await runCodex(["login", "status"], { PATH: "/usr/bin", CODEX_HOME: "/home/me/.codex" });
 * await exitLikeCodex(exit);
 * ```
 */
export async function runCodex(
  args: readonly string[],
  env: Record<string, string>,
): Promise<CodexExit> {
  const ignoreInterrupt = () => {};
  Deno.addSignalListener("SIGINT", ignoreInterrupt);
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("codex", {
      args: [...FILE_STORE_OVERRIDE, ...args],
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
      clearEnv: true,
      env,
    }).spawn();
  } catch (error) {
    Deno.removeSignalListener("SIGINT", ignoreInterrupt);
    if (error instanceof Deno.errors.NotFound) {
      throw new CliError("codex not found on PATH", {
        hints: [
          "install it with: npm install -g @openai/codex",
          "then run secure-codex again",
        ],
      });
    }
    throw new CliError(`cannot start codex: ${(error as Error).message}`);
  }

  const forwarders = FORWARDED_SIGNALS.map((signal) => {
    const forward = () => {
      try {
        child.kill(signal);
      } catch {
        // codex has already exited; its status is read below.
      }
    };
    Deno.addSignalListener(signal, forward);
    return { signal, forward };
  });

  try {
    const status = await child.status;
    return { code: exitCodeOf(status), signal: status.signal };
  } catch (error) {
    // Deno names only the classic signals. For a real-time signal, reading
    // the status fails with "Invalid signal: N" after codex was reaped.
    const match = /^Invalid signal: (\d+)$/.exec((error as Error)?.message);
    if (match === null) throw error;
    return { code: 128 + Number(match[1]), signal: null };
  } finally {
    for (const { signal, forward } of forwarders) {
      Deno.removeSignalListener(signal, forward);
    }
    Deno.removeSignalListener("SIGINT", ignoreInterrupt);
  }
}

/**
 * Ends this process as codex ended: by the same signal when a signal whose
 * default action ends a process without a core dump ended codex, otherwise
 * with the exit code. `release` removes the caller's listeners for the signal
 * about to be raised, which would otherwise catch it. Listeners for other
 * signals stay, so a signal repeated now cannot change the exit status.
 *
 * @example
 * ```ts
 * await exitLikeCodex(await runCodex(["exec", "hi"], { PATH: "/usr/bin" }));
 * ```
 */
export async function exitLikeCodex(
  exit: CodexExit,
  release: (signal: Deno.Signal) => void = () => {},
): Promise<never> {
  if (exit.signal !== null && RERAISED_SIGNALS.has(exit.signal)) {
    try {
      release(exit.signal);
      Deno.kill(Deno.pid, exit.signal);
      // Deno carries out a signal's default action from its event loop, so
      // the process ends during this wait.
      await new Promise((resolve) => setTimeout(resolve, 1000));
    } catch {
      // The exit below reports the same code.
    }
  }
  Deno.exit(exit.code);
}

/** codex's global options that take a value, so the value is not taken for a command. */
const CODEX_VALUE_OPTIONS = new Set([
  "-c",
  "--config",
  "--enable",
  "--disable",
  "--remote",
  "--remote-auth-token-env",
  "-i",
  "--image",
  "-m",
  "--model",
  "--local-provider",
  "-p",
  "--profile",
  "-s",
  "--sandbox",
  "-C",
  "--cd",
  "--add-dir",
  "-a",
  "--ask-for-approval",
]);

/** The codex command a run starts, as far as secure-codex acts on it. */
export type CodexCommand =
  | "login"
  | "login-status"
  | "logout"
  | "info"
  | "other";

/**
 * Classifies codex's arguments: a login that may write new tokens, `login
 * status`, a logout, help or version output that needs no login ("info"),
 * or anything else. `-h`, `--help`, `-V` and `--version` anywhere before
 * `--` make it "info", because codex then only prints.
 *
 * NOTE: codex options that take a value come from codex-cli 0.171's list of
 * global options. An option added later would make its value look like a
 * command.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(classifyCodexCommand(["-c", "model=o3", "login", "--device-auth"]), "login");
 * assert.deepEqual(classifyCodexCommand(["login", "status"]), "login-status");
 * assert.deepEqual(classifyCodexCommand(["exec", "login"]), "other");
 * ```
 */
export function classifyCodexCommand(args: readonly string[]): CodexCommand {
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") break;
    if (["-h", "--help", "-V", "--version"].includes(arg)) return "info";
    if (CODEX_VALUE_OPTIONS.has(arg)) {
      i++;
      continue;
    }
    if (arg.startsWith("-")) continue;
    positional.push(arg);
    if (positional.length === 2) break;
  }
  const [command, sub] = positional;
  if (command === "logout") return "logout";
  if (command !== "login") return "other";
  if (sub === undefined) return "login";
  return sub === "status" ? "login-status" : "other";
}
