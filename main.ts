/**
 * secure-codex: runs the OpenAI Codex CLI with its `auth.json` decrypted into
 * a RAM directory and writes refreshed tokens back to the age-encrypted store.
 *
 * This file only wires the modules in `lib/` together.
 *
 * @module
 */

import {
  childEnvironment,
  classifyCodexCommand,
  type CodexExit,
  exitBySignal,
  exitLikeCodex,
  findStoreOverride,
  FORWARDED_SIGNALS,
  runCodex,
} from "./lib/child.ts";
import type { ConfigFile } from "./lib/config.ts";
import type { WatchedSession } from "./lib/watch.ts";
import {
  type CodexHomeSource,
  configLocation,
  type Environment,
  formatDuration,
  type Options,
  parseArguments,
  type ParsedArguments,
  resolveOptions,
} from "./lib/options.ts";
import {
  CliError,
  notice,
  printError,
  printOut,
  shellQuote,
} from "./lib/output.ts";
import { chooseRamDir, sessionId } from "./lib/ram_dir.ts";
import { repeatReports, reportWriteBack, Session } from "./lib/session.ts";
import { lstatOrNull } from "./lib/ram_dir.ts";
import { mark, writeTrace } from "./lib/trace.ts";
import { WriteBackWatcher } from "./lib/write_back.ts";
import { stopAgeInWorkers } from "./lib/worker.ts";

/** Tells whether an executable file `name` is in one of the PATH directories. */
function isOnPath(name: string, path: string | undefined): boolean {
  for (const directory of (path ?? "").split(":")) {
    if (directory === "") continue;
    try {
      const info = Deno.statSync(`${directory}/${name}`);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return true;
    } catch {
      // Not in this directory.
    }
  }
  return false;
}

/**
 * Resolves the codex home to its canonical path; codex requires that it
 * exists. With `create`, a missing home is created with mode 0700.
 */
function canonicalCodexHome(
  path: string,
  create: boolean,
  source: CodexHomeSource,
  profile: string,
): string {
  const from = source === "default" ? "" : ` (from ${source})`;
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound && create) {
      // A first login creates the home, as plain codex would.
      Deno.mkdirSync(path, { mode: 0o700 });
      notice(`created the codex home: ${path}`);
      return Deno.realPathSync(path);
    }
    const otherHome = source === "CODEX_HOME"
      ? "or fix CODEX_HOME, or pass the right home with --real-codex-home PATH"
      : source === "codexHome in the config file"
      ? "or fix codexHome in the config file"
      : profile !== "default"
      ? `or set "codexHome" in profile ${profile} of the config file`
      : "or pass the right one with --real-codex-home PATH or SECURE_CODEX_REAL_CODEX_HOME";
    if (error instanceof Deno.errors.NotFound) {
      throw new CliError(`codex home not found: ${path}${from}`, {
        hints: [
          `create it with: mkdir -p -m 700 ${shellQuote(path)}`,
          otherHome,
        ],
      });
    }
    // A file where a parent directory belongs, a symlink loop, no access.
    if (
      error instanceof Deno.errors.NotADirectory ||
      error instanceof Deno.errors.FilesystemLoop ||
      error instanceof Deno.errors.PermissionDenied
    ) {
      throw new CliError(
        `cannot use the codex home: ${path}${from}: ${error.message}`,
        { hints: [otherHome.replace(/^or /, "")] },
      );
    }
    throw error;
  }
  if (!info.isDirectory) {
    throw new CliError(`codex home is not a directory: ${path}${from}`, {
      hints: [
        "pass the right one with --real-codex-home PATH or SECURE_CODEX_REAL_CODEX_HOME",
      ],
    });
  }
  return Deno.realPathSync(path);
}

async function openSession(
  options: Options,
  ageEnv: Record<string, string>,
  createHome = false,
): Promise<Session> {
  const codexHome = canonicalCodexHome(
    options.codexHome,
    createHome,
    options.codexHomeSource,
    options.profile,
  );
  const uid = Deno.uid();
  if (uid === null) {
    throw new CliError(
      "cannot read the user id",
      { hints: ["secure-codex runs on Linux only"] },
    );
  }
  const ramDir = chooseRamDir({
    ramDir: options.ramDir,
    xdgRuntimeDir: Deno.env.get("XDG_RUNTIME_DIR"),
    uid,
    id: await sessionId(codexHome),
  });
  return new Session({
    codexHome,
    store: options.store,
    identities: options.identities,
    recipientsFile: options.recipientsFile,
    ramDir,
    uid,
    ageEnv,
    ttlSeconds: options.ttlSeconds,
    profile: options.profile,
    configPath: options.configPath,
  });
}

/** Prints the session's status, as text or JSON. */
async function printStatus(
  session: Session,
  options: { json: boolean },
): Promise<void> {
  const { collectSessionStatus, formatStatus } = await import(
    "./lib/status.ts"
  );
  const report = await collectSessionStatus(
    session,
    Deno.env.toObject(),
    new Date(),
  );
  printOut(
    options.json
      ? JSON.stringify(report, null, 2) + "\n"
      : formatStatus(report),
  );
}

/** Ignores a signal, so that it cannot end a run before leave() is done. */
function holdSignal(): void {}

/** The signals that end a run before codex starts, and that --watch handles. */
const STOP_SIGNALS = ["SIGTERM", "SIGHUP", "SIGINT"] as const;

/**
 * Ends the process by `signal` before codex starts, after stopping any age
 * process the worker runs: age does not die with this process, and one at
 * its passphrase prompt would keep reading the terminal. For SIGQUIT
 * (Ctrl-\ on a terminal), exitLikeCodex exits with 131 instead of dying by
 * the signal, whose core dump could hold the plaintext the worker has.
 */
function stopBeforeCodex(signal: Deno.Signal): () => void {
  const listener = async () => {
    await stopAgeInWorkers();
    // NOTE: age leaves the terminal without echo when it dies at its prompt,
    // and a shell restores it only for a process that a signal ended.
    await exitLikeCodex(exitBySignal(signal), () => {
      Deno.removeSignalListener(signal, listener);
    });
  };
  return listener;
}

const stopListeners = [...STOP_SIGNALS, "SIGQUIT" as const].map((signal) =>
  [signal, stopBeforeCodex(signal)] as const
);

/**
 * Lets codex's forwarding handle the stop signals from now on, or, for
 * --watch, only those in STOP_SIGNALS: SIGQUIT still must not dump core.
 */
function releaseStopSignals(
  signals: readonly Deno.Signal[] = [...STOP_SIGNALS, "SIGQUIT"],
): void {
  for (const [signal, listener] of stopListeners) {
    if (signals.includes(signal)) Deno.removeSignalListener(signal, listener);
  }
}

async function run(options: Options): Promise<number | CodexExit> {
  const { env: baseEnv, dropped } = childEnvironment(Deno.env.toObject());
  const command = classifyCodexCommand(options.codexArgs);
  if (
    options.mode === "run" && command === "info" &&
    lstatOrNull(options.store) === null
  ) {
    // Help and version output need no login: before the first login there is
    // nothing to unlock, so codex runs as it is. With a store they take the
    // usual path, which keeps a codex start's cost the same for every command.
    return await runCodex(options.codexArgs, baseEnv);
  }
  const session = await openSession(
    options,
    baseEnv,
    options.mode === "run" && command === "login",
  );
  mark("session");
  if (
    options.mode === "run" && lstatOrNull(session.ramCopy) === null &&
    !isOnPath("codex", baseEnv.PATH)
  ) {
    // Checked before an unlock, so a missing codex leaves nothing in RAM. A
    // start that finds the RAM copy decrypts nothing, and spawning codex
    // reports a missing one there.
    session.close();
    throw new CliError("codex not found on PATH", {
      hints: [
        "install it with: npm install -g @openai/codex",
        "then run secure-codex again",
      ],
    });
  }
  try {
    switch (options.mode) {
      case "cleanup":
        await session.cleanup(options.force);
        return 0;
      case "unlock": {
        await session.lockIfExpired(options.ttlSeconds, { interactive: true });
        const wasUnlocked = lstatOrNull(session.ramCopy) !== null;
        await session.open({ newLogin: false });
        session.release();
        const ttlSeconds = await session.recordTtl(options.ttlSeconds, {
          replace: options.ttlFromFlag,
        });
        notice(
          `${
            wasUnlocked ? "already unlocked" : "unlocked"
          }: ${session.linkPath} links to ${session.ramCopy} until ${
            session.command("--lock")
          }`,
        );
        notice(
          session.readState()?.passphrase
            ? "plain codex, IDE extensions and codex's daemon can use it now; the store is passphrase-encrypted, so the tokens they refresh are saved by the next secure-codex run on a terminal, not by --watch"
            : `plain codex, IDE extensions and codex's daemon can use it now; run ${
              session.command("--watch")
            } to save the tokens they refresh`,
        );
        if (ttlSeconds > 0) {
          notice(
            `the session locks ${
              formatDuration(ttlSeconds)
            } after its unlock, at the next secure-codex start or by --watch`,
          );
        }
        return 0;
      }
      case "import": {
        // Loaded only for the commands that use them, so every codex start
        // does not pay for parsing them.
        const { importPlaintext } = await import("./lib/import.ts");
        await importPlaintext(session, { force: options.force });
        return 0;
      }
      case "rekey": {
        const { rekeyStore } = await import("./lib/rekey.ts");
        await rekeyStore(session);
        return 0;
      }
      case "status":
        await printStatus(session, { json: options.json });
        return 0;
    }

    const override = findStoreOverride(options.codexArgs);
    if (override !== null) {
      throw new CliError(
        `codex argument would bypass the RAM copy: ${override}`,
        {
          hints: [
            'secure-codex runs codex with cli_auth_credentials_store="file"; remove that argument',
          ],
          exitCode: 2,
        },
      );
    }
    if (dropped.length > 0) {
      notice(
        `dropped ${
          dropped.join(", ")
        } from the environment of codex and age (Deno cannot run programs with LD_* variables under a scoped --allow-run)`,
      );
    }

    await session.lockIfExpired(options.ttlSeconds, { interactive: true });
    await session.open({ newLogin: command === "login" });
    mark("open");
    if (command === "login") session.restoreLinkWhileRunning();
    const watcher = WriteBackWatcher.start(
      session,
      (outcome) => reportWriteBack(session, outcome),
    );
    // From here on a signal must not cut a write-back short: the listeners
    // outlive runCodex's forwarding and stay until the process exits, so a
    // signal repeated after codex exits cannot change the exit status.
    // exitLikeCodex releases only the signal it raises again.
    for (const signal of ["SIGINT", ...FORWARDED_SIGNALS] as const) {
      Deno.addSignalListener(signal, holdSignal);
    }
    releaseStopSignals();
    mark("watch");
    let exit: CodexExit;
    try {
      exit = await runCodex(options.codexArgs, {
        ...baseEnv,
        CODEX_HOME: session.config.codexHome,
      });
    } finally {
      mark("codex");
      await watcher.stop();
      repeatReports(session);
    }
    // codex 0.171 exits 0 after a logout even when the revoke call failed;
    // the tokens are then unusable for codex either way.
    if (
      command === "logout" && exit.code === 0 &&
      await session.finishLogout()
    ) {
      return exit;
    }
    try {
      session.relinkIfRemoved();
      await session.leave(options.keep);
    } catch (error) {
      // codex has run, so its exit status is the one to return. The failure
      // is reported like a write-back's, and the next run retries the save.
      if (!(error instanceof CliError)) throw error;
      printError(error);
    }
    mark("leave");
    if (session.promptInterrupted && exit.signal === null) {
      return exitBySignal("SIGINT");
    }
    return exit;
  } finally {
    session.close();
  }
}

/** Reads the config file if one exists, or the one the user named. */
async function readConfig(
  parsed: ParsedArguments,
  env: Environment,
): Promise<ConfigFile | null> {
  const location = configLocation(parsed, env);
  if (location === null) return null;
  if (!location.explicit && lstatOrNull(location.path) === null) return null;
  // Loaded only when there is a config file, so a start without one does not
  // parse the JSONC library.
  let loadConfig: typeof import("./lib/config.ts").loadConfig;
  try {
    // A specifier Deno cannot read ahead keeps it from resolving the npm
    // package at every start: with a cold cache and no registry, that
    // costs each start about 0.9 s, config file or not.
    const configModule = new URL("./lib/config.ts", import.meta.url).href;
    ({ loadConfig } = await import(configModule));
  } catch (error) {
    // With a cold cache the JSONC parser comes from the npm registry. Deno's
    // message spans lines with colour codes, so only its first line is kept.
    const firstLine = String((error as Error)?.message ?? error)
      // deno-lint-ignore no-control-regex
      .replace(/\x1b\[[0-9;]*m/g, "")
      .split("\n")[0];
    throw new CliError(
      `cannot load the config file parser (npm package jsonc-parser) for ${location.path}: ${firstLine}`,
      {
        hints: [
          "Deno downloads it from the npm registry on first use and caches it; allow that once (check HTTPS_PROXY), then run again",
        ],
      },
    );
  }
  return loadConfig(location.path, {
    required: location.explicit,
    home: env.HOME,
  });
}

/** Runs `--watch`: one session, or every profile's with `--all-profiles`. */
async function watch(
  parsed: ParsedArguments,
  env: Environment,
  config: ConfigFile | null,
  options: Options,
): Promise<number> {
  const { watchSessions } = await import("./lib/watch.ts");
  // --watch stops on these itself, after a last write-back.
  releaseStopSignals(STOP_SIGNALS);
  const { env: ageEnv } = childEnvironment(Deno.env.toObject());
  const profiles = options.allProfiles
    ? ["default", ...Object.keys(config?.profiles ?? {})]
    : [options.profile];
  const watched: WatchedSession[] = [];
  const opened: Session[] = [];
  try {
    for (const profile of profiles) {
      const profileOptions = resolveOptions(parsed, env, config, profile);
      const open = () => openSession(profileOptions, ageEnv);
      // One session fails at once, as every other command does. With every
      // profile, one that cannot be opened yet (its codex home is created
      // later) is tried again while the others are watched.
      const session = options.allProfiles ? open : await open();
      if (typeof session !== "function") opened.push(session);
      watched.push({
        session,
        ttlSeconds: profileOptions.ttlSeconds,
        label: profile,
      });
    }
    await watchSessions(watched);
  } finally {
    for (const session of opened) session.close();
  }
  return 0;
}

async function main(): Promise<number | CodexExit> {
  mark("loaded");
  for (const [signal, listener] of stopListeners) {
    Deno.addSignalListener(signal, listener);
  }
  if (Deno.build.os !== "linux") {
    printError(
      new CliError(
        `unsupported operating system: ${Deno.build.os}`,
        { hints: ["secure-codex runs on Linux only"] },
      ),
    );
    return 1;
  }
  try {
    const env = Deno.env.toObject();
    const parsed = parseArguments(Deno.args);
    if (parsed.help || parsed.version) {
      const { HELP_TEXT, VERSION } = await import("./lib/help.ts");
      printOut(parsed.help ? HELP_TEXT : `secure-codex ${VERSION}\n`);
      return 0;
    }
    // Completion scripts do not depend on the config, and a shell sources
    // them at every start: a broken config file must not break that.
    const config = parsed.modeFlags[0] === "--completions"
      ? null
      : await readConfig(parsed, env);
    const options = resolveOptions(parsed, env, config);
    mark("options");
    switch (options.mode) {
      case "completions": {
        const { completionScript } = await import("./lib/completions.ts");
        printOut(completionScript(options.shell!));
        return 0;
      }
      case "list-profiles":
        printOut(
          ["default", ...Object.keys(config?.profiles ?? {})].join("\n") +
            "\n",
        );
        return 0;
      case "watch":
        return await watch(parsed, env, config, options);
    }
    return await run(options);
  } catch (error) {
    if (error instanceof CliError) {
      printError(error);
      return error.exitCode;
    }
    if (error instanceof Deno.errors.NotCapable) {
      printError(
        new CliError(
          `secure-codex runs without a permission it needs: ${error.message}`,
          {
            hints: [
              "start it through scripts/secure-codex, the compiled binary, or with the permission flags listed in README (Install)",
            ],
          },
        ),
      );
      return 1;
    }
    // An unexpected error: print its type and message, never a stack with values.
    printError(
      new CliError(
        `internal error: ${(error as Error)?.name ?? "Error"}: ${
          (error as Error)?.message ?? String(error)
        }`,
        {
          hints: ["nothing was removed; report this with the command you ran"],
        },
      ),
    );
    return 1;
  }
}

const result = await main();
writeTrace();
await exitLikeCodex(
  typeof result === "number" ? { code: result, signal: null } : result,
  (signal) => Deno.removeSignalListener(signal, holdSignal),
);
