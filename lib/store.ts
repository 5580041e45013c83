/**
 * The store: the age-encrypted `auth.json.age` on disk.
 *
 * The main thread may read the store because it holds only ciphertext. It is
 * replaced only atomically: a temp file in the same directory, fsync, rename
 * over the store, fsync of the directory. A reader therefore sees the old
 * store or the new one, never a mix, even after a crash.
 *
 * @module
 */

import { basename, dirname, join, resolve } from "./path.ts";
import { CliError } from "./output.ts";

/** The largest store accepted; a codex auth.json is a few KiB. */
export const MAX_STORE_BYTES = 1024 * 1024;
/** The largest identity or recipients file accepted. */
export const MAX_KEY_FILE_BYTES = 1024 * 1024;

/** The role of a checked file, named in messages. */
export type FileRole = "store" | "identity file" | "recipients file";

const ROLE_HINTS: Readonly<Record<FileRole, string>> = {
  store:
    "pass the encrypted auth.json with --auth-enc PATH or SECURE_CODEX_AUTH_ENC, or set store in the config file",
  "identity file":
    "pass an age identity file with --identity PATH or SECURE_CODEX_IDENTITY, or set identities in the config file",
  "recipients file":
    "pass a file of age recipients with --recipients-file PATH or SECURE_CODEX_RECIPIENTS_FILE, or set recipientsFile in the config file",
};

/**
 * Checks that a path is a regular file owned by the user (or root) and no
 * larger than `maxBytes`, following symlinks. FIFOs and devices are rejected
 * before any open, so a read does not block on them. NOTE: a file swapped for
 * a FIFO between this check and the open could still block the read. These
 * paths are the user's own, so only the user can swap them.
 *
 * @example
 * ```ts
 * const info = checkReadableFile("/home/me/.codex/auth.json.age", "store", 1000, MAX_STORE_BYTES);
 * console.log(info.size);
 * ```
 */
export function checkReadableFile(
  path: string,
  role: FileRole,
  uid: number,
  maxBytes: number,
): Deno.FileInfo {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new CliError(`${role} not found: ${path}`, {
        hints: [ROLE_HINTS[role]],
      });
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new CliError(
        `${role} is not readable (permission denied): ${path}`,
        {
          hints: [ROLE_HINTS[role]],
        },
      );
    }
    throw error;
  }
  if (!info.isFile) {
    const kind = info.isDirectory ? "a directory" : "not a regular file";
    throw new CliError(`${role} is ${kind}: ${path}`, {
      hints: [ROLE_HINTS[role]],
    });
  }
  if (info.uid !== uid && info.uid !== 0) {
    throw new CliError(
      `${role} is owned by uid ${info.uid}, not by you (uid ${uid}): ${path}`,
      {
        hints: [
          "another user can change that file; keep your own copy",
          ROLE_HINTS[role],
        ],
      },
    );
  }
  if (info.size > maxBytes) {
    throw new CliError(
      `${role} is too large (${info.size} bytes, limit ${maxBytes}): ${path}`,
      {
        hints: [
          `${role}s are far smaller than that, so this is most likely another file`,
          ROLE_HINTS[role],
        ],
      },
    );
  }
  return info;
}

/**
 * Names a place to move a store aside. It keeps the `.age` suffix, which shows
 * people and `--status` that the file is ciphertext, not a plaintext copy.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(asidePath("/home/me/.codex/auth.json.age"), "/home/me/.codex/auth.json.old.age");
 * ```
 */
export function asidePath(store: string): string {
  const base = store.endsWith(".age") ? store.slice(0, -".age".length) : store;
  return `${base}.old.age`;
}

/** The access that the directories above a file give other users to it. */
export interface DirectoriesAbove {
  /**
   * The permission bits of the classes (owner, group, others) that can reach
   * the file: a class without search permission on one of the directories
   * cannot open it, whatever the file's own bits allow.
   */
  reachableBits: number;
  /**
   * The closest directory in which another user can rename or replace the
   * file: one writable by everyone without the sticky bit, or one owned by
   * another user than `uid` and root. Null when there is none.
   */
  replaceableFrom: string | null;
}

/**
 * Walks the directories above a file once, following symlinks as opening it
 * does, and returns who can reach or replace it through them. NOTE: a
 * directory writable by its group does not count as replaceable, because on
 * systems with a private group per user that group is the user alone.
 *
 * @example
 * ```ts
 * const above = inspectDirectoriesAbove("/home/me/.config/age/key.txt", 1000);
 * // Under a mode 0700 directory only the owner's bits count.
 * console.log(above.reachableBits === 0o700, above.replaceableFrom);
 * ```
 */
export function inspectDirectoriesAbove(
  path: string,
  uid: number,
): DirectoriesAbove {
  const above: DirectoriesAbove = {
    reachableBits: 0o777,
    replaceableFrom: null,
  };
  let directory = dirname(Deno.realPathSync(path));
  for (;;) {
    const info = Deno.statSync(directory);
    const mode = info.mode ?? 0o777;
    if ((mode & 0o010) === 0) above.reachableBits &= ~0o070;
    if ((mode & 0o001) === 0) above.reachableBits &= ~0o007;
    const othersWrite = (mode & 0o002) !== 0 && (mode & 0o1000) === 0;
    const othersOwn = info.uid !== uid && info.uid !== 0;
    if (above.replaceableFrom === null && (othersWrite || othersOwn)) {
      above.replaceableFrom = directory;
    }
    const parent = dirname(directory);
    if (parent === directory) return above;
    directory = parent;
  }
}

/**
 * Names what other users can do with a file, from its permission bits: "read",
 * "changed", "read and changed", or null when only the owner has access.
 *
 * @example
 * ```ts
 * sharedAccess(0o640); // "read"
 * sharedAccess(0o600); // null
 * ```
 */
export function sharedAccess(mode: number): string | null {
  const read = (mode & 0o044) !== 0;
  const changed = (mode & 0o022) !== 0;
  if (read && changed) return "read and changed";
  if (read) return "read";
  if (changed) return "changed";
  return null;
}

/**
 * Reads the store after {@linkcode checkReadableFile}. Returns null when it does not exist.
 *
 * @example
 * ```ts
 * const ciphertext = readStore("/home/me/.codex/auth.json.age", 1000);
 * ```
 */
export function readStore(path: string, uid: number): Uint8Array | null {
  try {
    Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  checkReadableFile(path, "store", uid, MAX_STORE_BYTES);
  const bytes = Deno.readFileSync(path);
  if (bytes.length > MAX_STORE_BYTES) {
    throw new CliError(
      `store grew past ${MAX_STORE_BYTES} bytes while being read: ${path}`,
    );
  }
  return bytes;
}

/** The facts an age header gives about how a store was encrypted. */
export interface StoreHeader {
  /** The store is passphrase-encrypted (a scrypt stanza). */
  passphrase: boolean;
  /** The file is ASCII-armored. */
  armored: boolean;
}

const AGE_MAGIC = "age-encryption.org/v1\n";
const ARMOR_BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----";

/**
 * Parses the age header of a store without decrypting it. Returns null when
 * the bytes are not an age file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const header = parseStoreHeader(new TextEncoder().encode("age-encryption.org/v1\n-> scrypt abc 18\nxyz\n--- mac\n"));
 * assert.deepEqual(header?.passphrase, true);
 * ```
 */
export function parseStoreHeader(bytes: Uint8Array): StoreHeader | null {
  let armored = false;
  let binary = bytes;
  const start = new TextDecoder().decode(
    bytes.subarray(0, ARMOR_BEGIN.length + 2),
  );
  if (start.trimStart().startsWith(ARMOR_BEGIN)) {
    armored = true;
    const text = new TextDecoder().decode(bytes);
    const body = text.trim().split(/\r?\n/).slice(1).filter((line) =>
      !line.startsWith("-----")
    ).join("");
    try {
      binary = Uint8Array.from(atob(body), (char) => char.charCodeAt(0));
    } catch {
      return null;
    }
  }
  const headerEnd = findHeaderEnd(binary);
  if (headerEnd < 0) return null;
  const header = new TextDecoder().decode(binary.subarray(0, headerEnd));
  if (!header.startsWith(AGE_MAGIC)) return null;
  const stanzaTypes = header.split("\n").filter((line) =>
    line.startsWith("-> ")
  ).map((line) => line.split(" ")[1]);
  if (stanzaTypes.length === 0) return null;
  return { passphrase: stanzaTypes.includes("scrypt"), armored };
}

/** Finds the end of the age header, the line that starts with `---`. */
function findHeaderEnd(bytes: Uint8Array): number {
  const limit = Math.min(bytes.length, 64 * 1024);
  for (let i = 0; i < limit; i++) {
    const atLineStart = i === 0 || bytes[i - 1] === 0x0a;
    if (
      atLineStart && bytes[i] === 0x2d && bytes[i + 1] === 0x2d &&
      bytes[i + 2] === 0x2d
    ) {
      return i;
    }
  }
  return -1;
}

function randomSuffix(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(bytes).map((byte) => byte.toString(16).padStart(2, "0"))
    .join("");
}

/**
 * Replaces the store with new ciphertext atomically and durably, as
 * {@linkcode replaceFileAtomically} does, with mode 0600.
 *
 * @example
 * ```ts
 * await replaceStore("/home/me/.codex/auth.json.age", ciphertext);
 * ```
 */
export function replaceStore(
  path: string,
  ciphertext: Uint8Array,
): Promise<void> {
  return replaceFileAtomically(path, ciphertext, {
    role: "store",
    mode: 0o600,
  });
}

/**
 * Replaces a file atomically and durably: temp file (`createNew`) in the
 * file's directory, write, fsync, rename, fsync of the directory. The
 * directory is created with mode 0700 if missing. A symlink at `path` stays:
 * the file it names is replaced, in that file's directory, so a store linked
 * from a dotfiles tree keeps receiving the newest tokens. On failure the
 * temp file is removed and the old file is left as it was. The temp file's
 * name is `.<name>.<random hex>.tmp`, so a killed run's leftovers can be found.
 *
 * @example
 * ```ts
 * await replaceFileAtomically("/home/me/.codex/auth.json.age.recipients", bytes, {
 *   role: "recipients file",
 *   mode: 0o644,
 * });
 * ```
 */
export async function replaceFileAtomically(
  path: string,
  bytes: Uint8Array,
  options: { role: string; mode: number },
): Promise<void> {
  const target = followLink(path);
  const directory = dirname(target);
  await Deno.mkdir(directory, { recursive: true, mode: 0o700 });
  const tempPath = join(
    directory,
    `.${basename(target)}.${randomSuffix()}.tmp`,
  );
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(tempPath, {
      write: true,
      createNew: true,
      mode: options.mode,
    });
    let written = 0;
    while (written < bytes.length) {
      written += await file.write(bytes.subarray(written));
    }
    await file.sync();
    file.close();
    file = undefined;
    await Deno.rename(tempPath, target);
  } catch (error) {
    file?.close();
    await Deno.remove(tempPath).catch(() => {});
    throw new CliError(
      `cannot write the ${options.role}: ${path}: ${(error as Error).message}`,
      {
        hints: [
          `the old ${options.role} is unchanged; free space or fix permissions, then run again`,
        ],
      },
    );
  }
  await syncDirectory(directory);
}

/**
 * Returns the file a symlink at `path` finally names, or `path` itself when it
 * is no symlink or does not exist. A dangling link gives its target resolved
 * one level, which the replacement then creates.
 *
 * @example
 * ```ts
 * const target = followLink("/home/me/.codex/auth.json.age");
 * console.log(target); // the dotfiles copy when the store is a symlink
 * ```
 */
export function followLink(path: string): string {
  try {
    if (!Deno.lstatSync(path).isSymlink) return path;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return path;
    throw error;
  }
  try {
    return Deno.realPathSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    return resolve(dirname(path), Deno.readLinkSync(path));
  }
}

/**
 * Fsyncs a directory, which makes a rename, creation or removal in it durable.
 *
 * @example
 * ```ts
 * await syncDirectory("/home/me/.codex");
 * ```
 */
export async function syncDirectory(directory: string): Promise<void> {
  const dir = await Deno.open(directory, { read: true });
  try {
    await dir.sync();
  } finally {
    dir.close();
  }
}
