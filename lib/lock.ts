/**
 * Advisory file locks (flock) on small files that are never replaced, so a
 * lock always refers to the path it was taken on. Locks are released when the
 * file is closed or the process dies.
 *
 * An uncontended lock is taken with synchronous calls: every codex start
 * takes several, and each asynchronous call costs a round trip through
 * Deno's thread pool. Only a wait for another process goes through the pool, so the
 * event loop (signal forwarding, the write-back watcher) keeps running.
 *
 * @module
 */

import { CliError } from "./output.ts";

/** Replacements of a lock file seen in one lockFile call before it gives up. */
const MAX_REPLACEMENTS = 100;

const LOCK_FILE_OPTIONS: Deno.OpenOptions = {
  read: true,
  write: true,
  create: true,
  mode: 0o600,
};

/**
 * Opens (creating if needed, mode 0600) and locks a lock file. Waits for the
 * lock. If the path was removed or replaced while waiting, the lock is taken
 * again on the new file, so two processes never hold "the same" lock on
 * different inodes. A path that keeps changing under it is an error.
 *
 * @example
 * ```ts
 * const lock = await lockFile("/run/user/1000/secure-codex/0123456789abcdef/session.lock", true);
 * try {
 *   // critical section
 * } finally {
 *   lock.close();
 * }
 * ```
 */
export async function lockFile(
  path: string,
  exclusive: boolean,
): Promise<Deno.FsFile> {
  for (let attempt = 0; attempt < MAX_REPLACEMENTS; attempt++) {
    const file = Deno.openSync(path, LOCK_FILE_OPTIONS);
    try {
      if (!file.tryLockSync(exclusive)) await file.lock(exclusive);
      if (isSameFile(file, path)) return file;
    } catch (error) {
      file.close();
      throw error;
    }
    file.close();
  }
  throw new CliError(`lock file keeps changing: ${path}`, {
    hints: [
      `another program replaced or removed it ${MAX_REPLACEMENTS} times while secure-codex tried to lock it`,
      "stop that program, then run again",
    ],
  });
}

/**
 * Opens and tries to lock a lock file without waiting. Returns null when
 * another process holds a conflicting lock.
 *
 * @example
 * ```ts
 * const lock = tryLockFile("/run/user/1000/secure-codex/0123456789abcdef/users.lock", true);
 * if (lock === null) console.log("in use");
 * ```
 */
export function tryLockFile(
  path: string,
  exclusive: boolean,
): Deno.FsFile | null {
  const file = Deno.openSync(path, LOCK_FILE_OPTIONS);
  let locked: boolean;
  try {
    locked = file.tryLockSync(exclusive);
  } catch (error) {
    file.close();
    throw error;
  }
  if (!locked) {
    file.close();
    return null;
  }
  return file;
}

function isSameFile(file: Deno.FsFile, path: string): boolean {
  const opened = file.statSync();
  try {
    // Follows a symlink, as the open did. Compared with the link's own
    // inode, a symlinked lock file would never match, and lockFile would
    // retry until it gives up.
    const current = Deno.statSync(path);
    return current.ino === opened.ino && current.dev === opened.dev;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
