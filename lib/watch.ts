/**
 * `--watch`: a foreground process that saves every change of the RAM copy,
 * for sessions left unlocked with `--unlock` and used by programs that run
 * codex themselves (IDE extensions, codex's app-server daemon, plain codex).
 * Meant to run as a systemd user service.
 *
 * It survives the RAM directory disappearing (a logout by systemd removing
 * `/run/user/<uid>`, or `rm -rf`) and resumes when it is back. It locks a
 * session whose time to live has passed. SIGTERM, SIGINT and SIGHUP stop it
 * after a final write-back, with exit code 0. Every save and every problem is
 * logged on stderr, one line each, without secrets.
 *
 * @module
 */

import { CliError, notice, printError } from "./output.ts";
import { lstatOrNull } from "./ram_dir.ts";
import { reportWriteBack, type Session } from "./session.ts";
import { type WriteBackOutcome, WriteBackWatcher } from "./write_back.ts";

/** One session to watch, with its time to live in seconds (0 means none). */
export interface WatchedSession {
  /**
   * The session, or a function that opens it. A function that throws a
   * {@linkcode CliError} is called again every second until it succeeds, so
   * a profile whose codex home appears later is watched from then on.
   */
  session: Session | (() => Promise<Session>);
  ttlSeconds: number;
  /** A name for log lines, such as the profile name. */
  label: string;
}

/** How often the RAM directory's existence and the TTL are checked, in ms. */
const POLL_MS = 1000;

/**
 * Watches the sessions until a stop signal arrives.
 *
 * @example
 * ```ts
 * await watchSessions([{ session, ttlSeconds: 0, label: "default" }]);
 * ```
 */
export async function watchSessions(
  sessions: readonly WatchedSession[],
): Promise<void> {
  let stopRequested = false;
  let wake: () => void = () => {};
  const stopped = new Promise<void>((resolve) => {
    wake = resolve;
  });
  const stop = () => {
    stopRequested = true;
    wake();
  };
  const signals = ["SIGTERM", "SIGINT", "SIGHUP"] as const;
  for (const signal of signals) Deno.addSignalListener(signal, stop);
  try {
    await Promise.all(
      sessions.map((watched) =>
        watchOne(watched, () => stopRequested, stopped)
      ),
    );
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, stop);
  }
}

/**
 * Opens a session that cannot be opened yet, retrying every poll. Logs the
 * error when it first appears and whenever it changes. Returns null when a
 * stop arrives first.
 */
async function openWhenReady(
  open: () => Promise<Session>,
  log: (message: string) => void,
  isStopped: () => boolean,
  stopped: Promise<void>,
): Promise<Session | null> {
  let lastError: string | null = null;
  while (!isStopped()) {
    try {
      const session = await open();
      if (lastError !== null) log("can be watched now");
      return session;
    } catch (error) {
      if (!(error instanceof CliError)) throw error;
      if (error.message !== lastError) {
        printError(error);
        log("cannot be watched yet, trying again every second");
        lastError = error.message;
      }
    }
    await sleepUnlessStopped(POLL_MS, stopped);
  }
  return null;
}

async function watchOne(
  watched: WatchedSession,
  isStopped: () => boolean,
  stopped: Promise<void>,
): Promise<void> {
  const { label } = watched;
  const log = (message: string) => notice(`watch ${label}: ${message}`);
  if (typeof watched.session !== "function") {
    return await watchOpen(watched.session, watched, log, isStopped, stopped);
  }
  const session = await openWhenReady(
    watched.session,
    log,
    isStopped,
    stopped,
  );
  if (session === null) {
    log("stopped");
    return;
  }
  try {
    await watchOpen(session, watched, log, isStopped, stopped);
  } finally {
    session.close();
  }
}

async function watchOpen(
  session: Session,
  watched: WatchedSession,
  log: (message: string) => void,
  isStopped: () => boolean,
  stopped: Promise<void>,
): Promise<void> {
  let deferredLogged = false;
  const onOutcome = (outcome: WriteBackOutcome) => {
    if (outcome.status === "saved") {
      log(`saved refreshed tokens to ${session.config.store}`);
    } else if (
      outcome.status === "gone" || outcome.status === "still-writing"
    ) {
      // Reported by the loop below, once per disappearance; a copy still
      // being written is looked at again at its next event.
    } else if (outcome.status === "deferred") {
      if (!deferredLogged) {
        log(
          `cannot save refreshed tokens: the store is passphrase-encrypted and needs a terminal; the next secure-codex run on a terminal saves them: ${session.config.store}`,
        );
        deferredLogged = true;
      }
    } else {
      reportWriteBack(session, outcome);
    }
  };
  let missingLogged = false;
  let watchingLogged = false;
  while (!isStopped()) {
    if (lstatOrNull(session.ramDir) === null) {
      if (!missingLogged) {
        log(
          `the RAM directory does not exist, waiting for the next unlock: ${session.ramDir}`,
        );
        missingLogged = true;
      }
      await sleepUnlessStopped(POLL_MS, stopped);
      continue;
    }
    if (missingLogged) {
      log(`the RAM directory is back, watching again: ${session.ramDir}`);
      missingLogged = false;
    }
    // Changes made while nothing watched are saved first.
    onOutcome(await session.writeBackIfPresent({ force: false }));
    const watcher = WriteBackWatcher.start(session, onOutcome);
    if (!watchingLogged) {
      // Logged once the watch is in place, so a change after this line is seen.
      log(`watching ${session.ramDir} for ${session.config.store}`);
      watchingLogged = true;
    }
    try {
      while (!isStopped() && lstatOrNull(session.ramDir) !== null) {
        if (
          await session.lockIfExpired(watched.ttlSeconds, {
            interactive: false,
          })
        ) {
          log(`locked after its time to live: ${session.ramDir}`);
        }
        await sleepUnlessStopped(POLL_MS, stopped);
      }
    } finally {
      await watcher.stop();
    }
  }
  onOutcome(await session.writeBackIfPresent({ force: false }));
  log("stopped");
}

function sleepUnlessStopped(ms: number, stopped: Promise<void>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  return Promise.race([timeout, stopped]).finally(() => clearTimeout(timer));
}
