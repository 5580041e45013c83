/**
 * The RAM directory: where the plaintext `auth.json` lives while a session is
 * unlocked.
 *
 * Invariant: before any plaintext is written, the directory is a real directory
 * (not a symlink), owned by the user, mode 0700 and on tmpfs or ramfs. Its
 * parent is a real directory in which no other user can rename entries: owned by
 * the user or root, and either not writable by group and others or carrying
 * the sticky bit (as `/tmp`-like shared tmpfs mounts do).
 *
 * @module
 */

import { dirname, isAbsolute, join, resolve } from "./path.ts";
import { CliError, shellQuote } from "./output.ts";

/** `f_type` of tmpfs in statfs(2). */
export const TMPFS_MAGIC = 0x01021994;
/** `f_type` of ramfs in statfs(2). */
export const RAMFS_MAGIC = 0x858458f6;

/** The setting a RAM directory came from, named in messages. */
export type RamDirSource = "--ram-dir" | "XDG_RUNTIME_DIR" | "/run/user/<uid>";

/** A chosen RAM directory path and where it came from. */
export interface RamDirChoice {
  /** The session directory that contains `auth.json` (absolute). */
  path: string;
  /** The setting that produced the path. */
  source: RamDirSource;
}

const OWN_TMPFS =
  "mount a tmpfs you own (as root: mount -t tmpfs -o mode=0700,uid=<uid> tmpfs DIR; in Docker: --tmpfs /run/secure-codex:mode=0700,uid=<uid>) and pass --ram-dir on it";
const SAFE_ALTERNATIVES = [
  "log in through a normal session (ssh, a desktop or `machinectl shell`) so systemd creates /run/user/<uid>",
  "or run `loginctl enable-linger` once so /run/user/<uid> exists without a login",
  `or ${OWN_TMPFS}`,
];

/** A rejected RAM directory, before the hints that depend on its source. */
class RamDirRejection extends CliError {
  /** Whether its own hints fix the directory in place, so no other is needed. */
  fixable = false;
}

/**
 * Adds to a rejection the alternatives that fit where the path came from: a
 * directory the user named with --ram-dir gets no systemd hints.
 */
function withAlternatives(error: unknown, source: RamDirSource): unknown {
  if (!(error instanceof RamDirRejection)) return error;
  const alternatives = error.fixable
    ? []
    : source === "--ram-dir"
    ? [OWN_TMPFS]
    : SAFE_ALTERNATIVES;
  return new CliError(error.message, {
    hints: [...error.hints, ...alternatives],
  });
}

/** Common statfs magic numbers, so a rejection names the filesystem. */
const FILESYSTEM_NAMES: Record<number, string> = {
  0xef53: "ext2/ext3/ext4",
  0x58465342: "xfs",
  0x9123683e: "btrfs",
  0x2fc12fc1: "zfs",
  0x794c7630: "overlayfs",
  0x6969: "nfs",
  0x01021997: "9p",
  0x65735546: "fuse",
};

/**
 * Computes a short id that is stable for one codex home: the first 16 hex
 * digits of the SHA-256 of its canonical path.
 *
 * @example
 * ```ts
 * const id = await sessionId("/home/me/.codex");
 * console.log(id.length); // 16
 * ```
 */
export async function sessionId(canonicalHome: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(canonicalHome),
  );
  return Array.from(new Uint8Array(digest).subarray(0, 8))
    .map((byte) => byte.toString(16).padStart(2, "0"))
    .join("");
}

/**
 * Chooses the RAM directory: `--ram-dir` if given, else
 * `$XDG_RUNTIME_DIR/secure-codex/<id>`, else `/run/user/<uid>/secure-codex/<id>`
 * when that runtime directory exists.
 *
 * @example
 * ```ts
 * const choice = chooseRamDir({ xdgRuntimeDir: "/run/user/1000", uid: 1000, id: "0123456789abcdef" });
 * console.log(choice.path); // /run/user/1000/secure-codex/0123456789abcdef
 * ```
 */
export function chooseRamDir(
  settings: {
    ramDir?: string;
    xdgRuntimeDir?: string;
    uid: number;
    id: string;
  },
): RamDirChoice {
  if (settings.ramDir !== undefined) {
    // Checked here, before anything stats a path below it: Deno rejects such
    // a stat with NotCapable, which would hide the real reason.
    try {
      checkNotSpecialFilesystem(settings.ramDir);
    } catch (error) {
      throw withAlternatives(error, "--ram-dir");
    }
    return { path: settings.ramDir, source: "--ram-dir" };
  }
  if (settings.xdgRuntimeDir) {
    // The XDG Base Directory specification makes a relative path invalid.
    if (!isAbsolute(settings.xdgRuntimeDir)) {
      throw new CliError(
        `XDG_RUNTIME_DIR is not an absolute path: ${settings.xdgRuntimeDir}`,
        {
          hints: [
            `set it to your runtime directory, usually /run/user/${settings.uid}, or unset it`,
            "or pass --ram-dir PATH, a directory on tmpfs",
          ],
        },
      );
    }
    try {
      checkNotSpecialFilesystem(settings.xdgRuntimeDir);
    } catch (error) {
      throw withAlternatives(error, "XDG_RUNTIME_DIR");
    }
    return {
      path: join(
        resolveSymlinks(settings.xdgRuntimeDir),
        "secure-codex",
        settings.id,
      ),
      source: "XDG_RUNTIME_DIR",
    };
  }
  const runUser = `/run/user/${settings.uid}`;
  if (lstatOrNull(runUser)?.isDirectory) {
    return {
      path: join(runUser, "secure-codex", settings.id),
      source: "/run/user/<uid>",
    };
  }
  throw new CliError(
    "no RAM directory: XDG_RUNTIME_DIR is unset and /run/user/" + settings.uid +
      " does not exist",
    { hints: SAFE_ALTERNATIVES },
  );
}

/**
 * Resolves symlinks in a runtime directory the environment names, so the RAM
 * directory has one spelling: the worker's read scope, the link and later
 * runs all use it. A path that cannot be resolved is returned as it is, and
 * the directory checks then report it.
 */
function resolveSymlinks(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path;
  }
}

/**
 * The free space a codex save needs in the RAM directory, with room to spare:
 * codex writes a temp copy of `auth.json` (a few KiB) beside the file it
 * replaces.
 */
export const RAM_HEADROOM_BYTES = 64 * 1024;

/**
 * Checks that codex can save refreshed tokens in the RAM directory, by
 * writing and removing a file of {@linkcode RAM_HEADROOM_BYTES} zeros. A
 * refresh codex cannot save is lost: the server has already replaced the old
 * refresh token, and codex does not report the failed write on the terminal.
 * Deno has no statfs of its own, and loading `node:fs` for one would cost a
 * warm start more than this write.
 *
 * @example
 * ```ts
 * checkRamSpace("/run/user/1000/secure-codex/0123456789abcdef");
 * ```
 */
export function checkRamSpace(ramDir: string): void {
  // The ".auth-" prefix makes a probe left by a killed run a stale temp file,
  // which the next unlock removes.
  const probe = join(ramDir, `.auth-space-${crypto.randomUUID().slice(0, 8)}`);
  try {
    Deno.writeFileSync(probe, new Uint8Array(RAM_HEADROOM_BYTES), {
      createNew: true,
      mode: 0o600,
    });
  } catch (error) {
    if (!/No space left on device|Disk quota exceeded/.test(String(error))) {
      throw error;
    }
    throw new CliError(
      `less than ${
        RAM_HEADROOM_BYTES / 1024
      } KiB free in the RAM directory's filesystem: ${ramDir}`,
      {
        hints: [
          "codex could not save refreshed tokens there, and a refresh it cannot save is lost",
          `free space on it (df -h ${
            shellQuote(ramDir)
          } shows its use), then run secure-codex again`,
        ],
      },
    );
  } finally {
    try {
      Deno.removeSync(probe);
    } catch {
      // Not created, or removed by an unlock's stale temp file cleanup.
    }
  }
}

/**
 * Stats a path without following a symlink. Returns null when it does not exist.
 *
 * @example
 * ```ts
 * const info = lstatOrNull("/run/user/1000/secure-codex");
 * console.log(info?.isDirectory);
 * ```
 */
export function lstatOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.lstatSync(path);
  } catch (error) {
    // ENOTDIR: a parent is a file, so the path does not exist either.
    if (error instanceof Deno.errors.NotFound) return null;
    if (error instanceof Deno.errors.NotADirectory) return null;
    throw error;
  }
}

function reject(
  message: string,
  path: string,
  extraHints: string[] = [],
  fixable = false,
): never {
  const rejection = new RamDirRejection(`${message}: ${path}`, {
    hints: extraHints,
  });
  rejection.fixable = fixable;
  throw rejection;
}

function modeString(mode: number): string {
  return "0" + (mode & 0o7777).toString(8);
}

/** Checks that a path is not under /dev, /proc or /sys, which Deno cannot use scoped. */
function checkNotSpecialFilesystem(path: string): void {
  for (const prefix of ["/dev", "/proc", "/sys"]) {
    if (path === prefix || path.startsWith(prefix + "/")) {
      reject(
        `RAM directory under ${prefix} is not supported`,
        path,
        [
          `Deno refuses every ${prefix} path without --allow-all, and /dev/shm is shared by all users`,
        ],
      );
    }
  }
}

/**
 * Checks that a path is on tmpfs or ramfs, so its pages never reach a disk
 * filesystem. `node:fs` is imported only here and only when needed, because
 * loading Deno's Node compatibility layer is the largest start-up cost.
 */
async function checkRamFilesystem(
  path: string,
  reportedPath = path,
): Promise<void> {
  const { statfsSync } = await import("node:fs");
  const type = statfsSync(path).type;
  if (type !== TMPFS_MAGIC && type !== RAMFS_MAGIC) {
    const name = FILESYSTEM_NAMES[type];
    reject(
      `RAM directory is not on tmpfs or ramfs (filesystem type 0x${
        type.toString(16)
      }${name === undefined ? "" : `, ${name}`})`,
      reportedPath,
      ["plaintext tokens there would be written to disk"],
    );
  }
}

/**
 * The file that records which directory (device and inode) passed the
 * filesystem check. The directory is private, so only this user can write it,
 * and a device number names one mounted filesystem: a matching record means
 * the statfs check need not run again.
 */
export const VERIFIED_MARKER = ".verified-filesystem";

function identityOf(info: Deno.FileInfo): string {
  return `${info.dev}:${info.ino}`;
}

function isVerified(path: string, info: Deno.FileInfo): boolean {
  try {
    return Deno.readTextFileSync(join(path, VERIFIED_MARKER)) ===
      identityOf(info);
  } catch {
    return false;
  }
}

function markVerified(path: string, info: Deno.FileInfo): void {
  const temp = join(
    path,
    `${VERIFIED_MARKER}.${crypto.randomUUID().slice(0, 8)}`,
  );
  try {
    Deno.writeTextFileSync(temp, identityOf(info), {
      createNew: true,
      mode: 0o600,
    });
    Deno.renameSync(temp, join(path, VERIFIED_MARKER));
  } catch {
    // The record only saves a statfs on later runs, so a full filesystem or
    // a concurrent run's record is no reason to fail: the next run checks again.
    try {
      Deno.removeSync(temp);
    } catch {
      // The temp file was never created.
    }
  }
}

/** Checks a directory that must belong to the user alone. */
function checkPrivateDirectory(
  path: string,
  info: Deno.FileInfo,
  uid: number,
): void {
  if (info.isSymlink) {
    reject("RAM directory is a symlink", path, [
      "a link can be pointed elsewhere between the check and its use",
      `if you made the link, pass the directory it names instead: ${
        realPathOrLink(path)
      }`,
      `otherwise remove the link: rm ${shellQuote(path)}`,
    ]);
  }
  if (!info.isDirectory) reject("RAM directory is not a directory", path);
  if (info.uid !== uid) {
    reject(
      `RAM directory is owned by uid ${info.uid}, not by you (uid ${uid})`,
      path,
      ["another user may have created it to read your tokens; do not use it"],
    );
  }
  const mode = (info.mode ?? 0) & 0o7777;
  if (mode !== 0o700) {
    reject(
      `RAM directory has mode ${modeString(mode)}, expected 0700`,
      path,
      [`if you created it yourself: chmod 700 ${shellQuote(path)}`],
      true,
    );
  }
}

/** Resolves a symlink for a hint; a dangling one gives its target resolved one level. */
function realPathOrLink(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return resolve(dirname(path), Deno.readLinkSync(path));
  }
}

/** Checks the parent of the RAM directory: no other user may rename entries in it. */
function checkParent(path: string, uid: number): void {
  const info = lstatOrNull(path);
  if (info === null) reject("parent of the RAM directory does not exist", path);
  if (info.isSymlink) reject("parent of the RAM directory is a symlink", path);
  if (!info.isDirectory) {
    reject("parent of the RAM directory is not a directory", path);
  }
  const mode = (info.mode ?? 0) & 0o7777;
  const trustedOwner = info.uid === uid || info.uid === 0;
  const noForeignRenames = (mode & 0o022) === 0 || (mode & 0o1000) !== 0;
  if (!trustedOwner || !noForeignRenames) {
    reject(
      `parent of the RAM directory is not safe (owner uid ${info.uid}, mode ${
        modeString(mode)
      })`,
      path,
      ["it must be owned by you or root and not writable by others, unless it has the sticky bit"],
    );
  }
}

/** Creates a directory with mode 0700, or accepts one that already exists. */
function makePrivateDirectory(path: string): boolean {
  try {
    Deno.mkdirSync(path, { mode: 0o700 });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return false;
    throw error;
  }
  // A restrictive umask can only remove bits, and this directory is ours.
  Deno.chmodSync(path, 0o700);
  return true;
}

/**
 * Creates the RAM directory if missing and checks it: real directory, owned by
 * `uid`, mode 0700, on tmpfs or ramfs, with a safe parent. For the default
 * location the `secure-codex` level is created and checked the same way.
 * An existing directory with another mode is rejected, never changed.
 *
 * @example
 * ```ts
 * await ensureRamDir({ path: "/run/user/1000/secure-codex/0123456789abcdef", source: "XDG_RUNTIME_DIR" }, 1000);
 * ```
 */
export async function ensureRamDir(
  choice: RamDirChoice,
  uid: number,
): Promise<void> {
  try {
    await prepareRamDir(choice, uid);
  } catch (error) {
    throw withAlternatives(error, choice.source);
  }
}

async function prepareRamDir(
  choice: RamDirChoice,
  uid: number,
): Promise<void> {
  const { path } = choice;
  checkNotSpecialFilesystem(path);
  if (!path.startsWith("/") || path === "/") {
    reject("invalid RAM directory", path);
  }
  const parent = dirname(path);

  // Fast path for a directory this user already verified: ownership, mode and
  // parents are checked again with lstat, the filesystem by its record.
  const existing = lstatOrNull(path);
  if (existing !== null && existing.isDirectory && isVerified(path, existing)) {
    checkPrivateDirectory(path, existing, uid);
    if (choice.source === "--ram-dir") {
      checkParent(parent, uid);
    } else {
      checkPrivateDirectory(parent, Deno.lstatSync(parent), uid);
    }
    return;
  }

  if (choice.source !== "--ram-dir") {
    // <runtime dir>/secure-codex/<id>: the runtime directory itself is checked
    // as a parent, the secure-codex level as a private directory.
    const runtimeDir = dirname(parent);
    checkNotSpecialFilesystem(runtimeDir);
    checkParent(runtimeDir, uid);
    await checkRamFilesystem(runtimeDir, path);
    makePrivateDirectory(parent);
    const parentInfo = Deno.lstatSync(parent);
    checkPrivateDirectory(parent, parentInfo, uid);
  } else {
    checkParent(parent, uid);
    // Check before creating, so a refused path leaves nothing behind. An
    // existing directory may be a mount point, so it is checked itself below.
    if (existing === null) await checkRamFilesystem(parent, path);
  }

  try {
    makePrivateDirectory(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      reject("parent of the RAM directory does not exist", parent);
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      reject("cannot create the RAM directory (permission denied)", path);
    }
    throw error;
  }
  const info = Deno.lstatSync(path);
  checkPrivateDirectory(path, info, uid);
  await checkRamFilesystem(path);
  markVerified(path, info);
}
