/**
 * The data behind `secure-codex --status` and `--status --json`: whether the
 * login is unlocked, where the store, recipients, RAM directory and link are,
 * the session's times, the login summary and warnings about plaintext that
 * secure-codex does not protect.
 *
 * Runs on the main thread, so it never opens a file that may hold plaintext:
 * the RAM copy, `<codex home>/auth.json`, identity files and possible copies
 * of auth.json are only examined with `lstat` and `stat`. It reads the
 * store's first bytes (ciphertext), the recipients file, `config.toml` and
 * directory listings. The login summary comes from the worker
 * (`login_summary.ts`), which reads the RAM copy.
 *
 * @module
 */

import {
  besideRecipientsPath,
  isRecipient,
  type RecipientsSource,
  type ResolvedRecipients,
} from "./recipients.ts";
import { basename, dirname, join, resolve } from "./path.ts";
import { shellQuote } from "./output.ts";
import {
  endedSessionRamDir,
  inspectLink,
  linkedRamDir,
  type LinkState,
  targetExists,
} from "./link.ts";
import type { LoginSummary } from "./login_summary.ts";
import { lstatOrNull, RAMFS_MAGIC, TMPFS_MAGIC } from "./ram_dir.ts";
import type { Session, SessionState } from "./session.ts";
import {
  asidePath,
  MAX_KEY_FILE_BYTES,
  MAX_STORE_BYTES,
  parseStoreHeader,
} from "./store.ts";
import { fingerprintOf, sha256Hex } from "./fingerprint.ts";
import { WorkerError } from "./worker.ts";
import { isOlder } from "./auth_json.ts";
import { formatDuration, shorterTtl } from "./options.ts";

/** The kind of entry at `<codex home>/auth.json`. `ok` and `dangling` are links to the RAM copy. */
export type LinkStatus =
  | "ok"
  | "dangling"
  | "missing"
  | "plaintext-file"
  | "elsewhere"
  | "other";

/** The filesystem of the RAM directory, from statfs(2). */
export type FilesystemKind = "tmpfs" | "ramfs" | "other";

/** The kinds of warning {@linkcode collectStatus} reports. */
export type StatusWarningCode =
  | "store-not-age"
  | "store-changed"
  | "store-missing"
  | "recipients-unusable"
  | "plaintext-auth-json"
  | "stray-auth-copy"
  | "env-credentials"
  | "credentials-store-not-file"
  | "ram-dir-missing"
  | "ram-dir-not-in-ram"
  | "link-missing"
  | "ram-copy-invalid"
  | "ram-copy-unreadable"
  | "ram-copy-not-a-file"
  | "ram-copy-older"
  | "session-state-missing"
  | "link-to-other-session"
  | "link-elsewhere"
  | "mcp-credentials-plaintext"
  | "shell-snapshots"
  | "session-expired"
  | "unsaved-changes";

/** A problem found by {@linkcode collectStatus}. Its message names the fix and no secret. */
export interface StatusWarning {
  code: StatusWarningCode;
  message: string;
  /** The file or directory concerned, if there is one. */
  path?: string;
}

/** Everything {@linkcode collectStatus} needs, resolved by the caller. */
export interface StatusInputs {
  codexHome: string;
  store: string;
  /** The recipients file write-back would use, if any. */
  recipientsFile: string | null;
  recipientsSource: RecipientsSource;
  /** The reason the recipients file cannot be used, if it cannot. */
  recipientsError?: string;
  /** Public recipients from identity file comments (session state), if any. */
  identityRecipients: string[];
  ramDir: string;
  /** `<codex home>/auth.json`. */
  linkPath: string;
  /** `<RAM directory>/auth.json`. */
  ramCopy: string;
  /** The environment codex would run with. */
  env: Readonly<Record<string, string | undefined>>;
  now: Date;
  /** The parsed `session.json`, or null when there is none. */
  state: SessionState | null;
  /** The worker's summary of the RAM copy, when there is one. */
  login: LoginSummary | null;
  /** Whether the RAM copy is a valid auth.json; absent when it was not checked. */
  ramCopyValid?: boolean;
  /** The worker's error message when it could not read the RAM copy. */
  ramCopyError?: string;
  /** This command's own time to live in seconds; 0 or absent for none. */
  runTtlSeconds?: number;
  /**
   * Builds the secure-codex command that acts on this session, for the
   * commands warnings suggest; plain `secure-codex ACTION` if absent.
   */
  command?: (action: string, ramDir?: string) => string;
}

/**
 * The status as `--status --json` prints it. It contains paths, public
 * recipients, times and the login summary, and no secret.
 */
export interface StatusReport {
  version: 1;
  /** `unlocked` while the RAM copy exists. */
  state: "unlocked" | "locked";
  codexHome: string;
  store: {
    path: string;
    exists: boolean;
    /** The store's encryption, to recipients or with a passphrase, or null when it is missing or not an age file. */
    encryption: "recipients" | "passphrase" | null;
    /** Whether the store is ASCII-armored, or null when it is missing or not an age file. */
    armored: boolean | null;
  };
  recipients: {
    source: RecipientsSource;
    path: string | null;
    /** The recipients in the recipients file, else those from identity files. */
    list: string[];
  };
  ramDir: {
    path: string;
    exists: boolean;
    /** The filesystem kind, or null when the directory is missing or statfs(2) fails. */
    filesystem: FilesystemKind | null;
  };
  link: {
    path: string;
    status: LinkStatus;
    /** The symlink's target as stored in the link, or null when the path is no symlink. */
    target: string | null;
  };
  /** The unlocked session. Every field is null while the login is locked. */
  session: {
    unlockedAt: string | null;
    ageSeconds: number | null;
    lastWriteBackAt: string | null;
    /**
     * The time to live in seconds that applies: the shorter of the one
     * recorded at unlock and this command's own (`--ttl`, SECURE_CODEX_TTL or
     * the config file), 0 when neither has one.
     */
    ttlSeconds: number | null;
    /**
     * The end of the recorded time to live (`unlockedAt` plus `ttlSeconds`), or
     * null without one. After it, the next secure-codex start or a running
     * `--watch` locks the session, and one with a shorter `--ttl` locks it sooner.
     */
    locksAt: string | null;
    /** Whether the RAM copy changed since it last matched the store, or null without a session state. */
    unsavedChanges: boolean | null;
  };
  login: LoginSummary | null;
  warnings: StatusWarning[];
}

/** How many bytes of the store are read to parse its age header. */
const STORE_HEAD_BYTES = 128 * 1024;
/** The maximum size of a config.toml that is scanned. Larger files are skipped. */
const MAX_CONFIG_BYTES = 1024 * 1024;
/** Variables that codex uses in place of auth.json. */
const CREDENTIAL_VARIABLES = ["CODEX_API_KEY", "CODEX_ACCESS_TOKEN"] as const;

/**
 * Collects the status of one codex home and its session. Paths that do not
 * exist are reported as missing, never as an error. Nothing is written, and
 * no file that may hold plaintext is opened.
 *
 * @example
 * ```ts
 * const report = await collectStatus({
 *   codexHome: "/home/me/.codex",
 *   store: "/home/me/.codex/auth.json.age",
 *   recipientsFile: null,
 *   recipientsSource: "identity",
 *   identityRecipients: [],
 *   ramDir: "/run/user/1000/secure-codex/0123456789abcdef",
 *   linkPath: "/home/me/.codex/auth.json",
 *   ramCopy: "/run/user/1000/secure-codex/0123456789abcdef/auth.json",
 *   env: Deno.env.toObject(),
 *   now: new Date(),
 *   state: null,
 *   login: null,
 * });
 * console.log(JSON.stringify(report, null, 2));
 * ```
 */
export async function collectStatus(
  inputs: StatusInputs,
): Promise<StatusReport> {
  const ramCopyInfo = lstatOrNull(inputs.ramCopy);
  const ramDirExists = lstatOrNull(inputs.ramDir) !== null;
  const report: StatusReport = {
    version: 1,
    state: ramCopyInfo !== null ? "unlocked" : "locked",
    codexHome: inputs.codexHome,
    store: { path: inputs.store, ...inspectStore(inputs.store) },
    recipients: {
      source: inputs.recipientsSource,
      path: inputs.recipientsFile,
      list: inputs.recipientsFile !== null
        ? readRecipientsFile(inputs.recipientsFile)
        : [...inputs.identityRecipients],
    },
    ramDir: {
      path: inputs.ramDir,
      exists: ramDirExists,
      filesystem: ramDirExists ? await filesystemOf(inputs.ramDir) : null,
    },
    link: {
      path: inputs.linkPath,
      ...inspectLinkStatus(inputs.linkPath, inputs.ramCopy, ramCopyInfo),
    },
    session: sessionStatus(
      inputs.state,
      ramCopyInfo,
      inputs.now,
      inputs.runTtlSeconds ?? 0,
    ),
    login: inputs.login,
    warnings: [],
  };
  // Without a store, the RAM copy is the only copy of the login.
  if (report.session.unsavedChanges === false && !report.store.exists) {
    report.session.unsavedChanges = true;
  }
  // A dangling link into a directory on disk (an unmounted tmpfs leaves its
  // mount point) lets a plain codex login write tokens there.
  const linkTargetDirKind = report.link.status === "elsewhere"
    ? await filesystemOf(
      dirname(resolve(dirname(inputs.linkPath), report.link.target ?? "")),
    )
    : null;
  report.warnings = collectWarnings(inputs, report, {
    ramCopyInfo,
    linkTargetDirKind,
    // Runs reject a session of another store with their own message, and
    // its recorded hash belongs to that other store.
    storeChanged: report.state === "unlocked" && inputs.state !== null &&
      inputs.state.store === inputs.store &&
      await storeChangedSince(inputs.store, inputs.state),
  });
  return report;
}

/**
 * Tells whether the store differs from the one the session last read or
 * wrote, as the next write-back finds out before it refuses to replace it.
 * A store write still pending counts as the session's own.
 */
async function storeChangedSince(
  path: string,
  state: SessionState,
): Promise<boolean> {
  let bytes: Uint8Array;
  try {
    const info = Deno.statSync(path);
    // A FIFO or device is not read. Runs report a store that is too large.
    if (!info.isFile || info.size > MAX_STORE_BYTES) return false;
    bytes = Deno.readFileSync(path);
  } catch {
    return false;
  }
  const sha256 = await sha256Hex(bytes);
  return sha256 !== state.storeSha256 &&
    sha256 !== state.pending?.storeSha256;
}

/** Tells whether a path is a regular file, following symlinks. */
function isRegularFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Reads the store's age header from its first bytes. */
function inspectStore(
  path: string,
): Omit<StatusReport["store"], "path"> {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (error) {
    if (isNotFound(error)) {
      return { exists: false, encryption: null, armored: null };
    }
    throw error;
  }
  // A FIFO or device found by stat is not opened, because its read could block.
  const head = info.isFile ? readHead(path, STORE_HEAD_BYTES) : null;
  const header = head === null ? null : parseStoreHeader(head);
  if (header === null) return { exists: true, encryption: null, armored: null };
  return {
    exists: true,
    encryption: header.passphrase ? "passphrase" : "recipients",
    armored: header.armored,
  };
}

/**
 * Reads up to `limit` bytes from the start of a file, or returns null when it
 * cannot be read. A partial read is cut after its last newline, so an armored header
 * keeps whole base64 lines and still decodes.
 */
function readHead(path: string, limit: number): Uint8Array | null {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch (error) {
    if (isNotFound(error) || error instanceof Deno.errors.PermissionDenied) {
      return null;
    }
    throw error;
  }
  const buffer = new Uint8Array(limit);
  let length = 0;
  try {
    while (length < limit) {
      const count = file.readSync(buffer.subarray(length));
      if (count === null) return buffer.subarray(0, length);
      length += count;
    }
  } finally {
    file.close();
  }
  const lastNewline = buffer.lastIndexOf(0x0a);
  return buffer.subarray(0, lastNewline + 1);
}

/**
 * Lists the recipients in a recipients file. Only lines shaped like public
 * recipients are listed, so a private key passed by mistake (an age identity
 * file or an SSH private key) is never shown. An unreadable file gives none.
 */
function readRecipientsFile(path: string): string[] {
  const text = readSmallTextFile(path, MAX_KEY_FILE_BYTES);
  if (text === null) return [];
  return text.split(/\r?\n/).map((line) => line.trim()).filter((line) =>
    line !== "" && !line.startsWith("#") && isRecipient(line)
  );
}

/**
 * Reads a regular file of at most `maxBytes` as text. Returns null when it is
 * missing, unreadable, not a regular file or too large.
 */
function readSmallTextFile(path: string, maxBytes: number): string | null {
  try {
    const info = Deno.statSync(path);
    if (!info.isFile || info.size > maxBytes) return null;
    const bytes = Deno.readFileSync(path);
    if (bytes.length > maxBytes) return null;
    return new TextDecoder().decode(bytes);
  } catch (error) {
    if (isNotFound(error) || error instanceof Deno.errors.PermissionDenied) {
      return null;
    }
    throw error;
  }
}

/** Names the filesystem a path is on, from the `f_type` of statfs(2). */
async function filesystemOf(path: string): Promise<FilesystemKind | null> {
  // Loaded only here, as in ram_dir.ts, because node:fs is slow to load.
  const { statfsSync } = await import("node:fs");
  let type: number;
  try {
    type = statfsSync(path).type;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === "ENOENT" || code === "ENOTDIR" || code === "EACCES") {
      return null;
    }
    throw error;
  }
  // Compared unsigned, because RAMFS_MAGIC does not fit a signed 32-bit int.
  if (type >>> 0 === TMPFS_MAGIC) return "tmpfs";
  if (type >>> 0 === RAMFS_MAGIC) return "ramfs";
  return "other";
}

/** Classifies the link with {@linkcode inspectLink}. A link to a missing RAM copy is dangling. */
function inspectLinkStatus(
  linkPath: string,
  ramCopy: string,
  ramCopyInfo: Deno.FileInfo | null,
): Omit<StatusReport["link"], "path"> {
  let state: LinkState;
  try {
    state = inspectLink(linkPath, ramCopy);
  } catch (error) {
    if (!isNotFound(error)) throw error;
    // The link vanished between lstat and readlink, or the home is a file.
    state = { kind: "missing" };
  }
  switch (state.kind) {
    case "missing":
      return { status: "missing", target: null };
    case "ours":
      return {
        status: ramCopyInfo !== null ? "ok" : "dangling",
        target: readLinkOrNull(linkPath),
      };
    case "elsewhere":
      return { status: "elsewhere", target: state.target };
    case "file":
      return { status: "plaintext-file", target: null };
    case "other":
      return { status: "other", target: null };
  }
}

function readLinkOrNull(path: string): string | null {
  try {
    return Deno.readLinkSync(path);
  } catch (error) {
    if (isNotFound(error)) return null;
    throw error;
  }
}

/**
 * Reports the session from its state. Unsaved changes are detected as the
 * main thread does before a write-back: the RAM copy's fingerprint differs
 * from the one recorded when it last matched the store, or a store write is
 * still pending.
 */
function sessionStatus(
  state: SessionState | null,
  ramCopyInfo: Deno.FileInfo | null,
  now: Date,
  runTtlSeconds: number,
): StatusReport["session"] {
  if (ramCopyInfo === null || state === null) {
    return {
      unlockedAt: null,
      ageSeconds: null,
      lastWriteBackAt: null,
      ttlSeconds: null,
      locksAt: null,
      unsavedChanges: null,
    };
  }
  const unlockedAt = typeof state.unlockedAt === "string"
    ? state.unlockedAt
    : null;
  const unlockedMs = unlockedAt === null ? NaN : Date.parse(unlockedAt);
  // The shorter of the two applies, as it does for locking.
  const ttlSeconds = shorterTtl(state.ttlSeconds ?? 0, runTtlSeconds);
  // NaN when the TTL is 0, unlockedAt is invalid or the sum is out of range.
  const locksMs = ttlSeconds > 0
    ? new Date(unlockedMs + ttlSeconds * 1000).getTime()
    : NaN;
  return {
    unlockedAt,
    ageSeconds: Number.isNaN(unlockedMs)
      ? null
      : Math.floor((now.getTime() - unlockedMs) / 1000),
    lastWriteBackAt: typeof state.lastWriteBackAt === "string"
      ? state.lastWriteBackAt
      : null,
    ttlSeconds,
    locksAt: Number.isNaN(locksMs) ? null : new Date(locksMs).toISOString(),
    unsavedChanges: fingerprintOf(ramCopyInfo) !== state.plaintextFingerprint ||
      Boolean(state.pending),
  };
}

/** Collects the warnings in a fixed order: the store, the link, stray copies, then the other causes. */
function collectWarnings(
  inputs: StatusInputs,
  report: StatusReport,
  found: {
    /** The lstat of the RAM copy, or null when it is missing. */
    ramCopyInfo: Deno.FileInfo | null;
    /** The filesystem of the directory a foreign link points into. */
    linkTargetDirKind: FilesystemKind | null;
    /** Whether the store changed since the session last read or wrote it. */
    storeChanged: boolean;
  },
): StatusWarning[] {
  const { ramCopyInfo, linkTargetDirKind } = found;
  const warnings: StatusWarning[] = [];
  const home = inputs.codexHome;
  const command = inputs.command ??
    ((action: string, ramDir?: string) =>
      ramDir === undefined
        ? `secure-codex ${action}`
        : `secure-codex --ram-dir ${ramDir} ${action}`);

  if (!report.store.exists && report.session.unsavedChanges !== null) {
    warnings.push({
      code: "store-missing",
      message:
        `the store is missing: ${inputs.store}; the RAM copy is the only copy of this login: ` +
        `run ${command("-- login status")}, which saves it to a new store`,
      path: inputs.store,
    });
  }

  if (inputs.recipientsError !== undefined) {
    warnings.push({
      code: "recipients-unusable",
      message:
        `${inputs.recipientsError}; every secure-codex run and write-back fails until it is fixed`,
      path: inputs.recipientsFile ?? undefined,
    });
  }

  // An unreadable store gets this warning too, because runs fail on it as well.
  if (report.store.exists && report.store.encryption === null) {
    warnings.push({
      code: "store-not-age",
      // A directory or device is a wrong path, not a damaged store.
      message: isRegularFile(inputs.store)
        ? `the store is not a readable age file: ${inputs.store}; ` +
          "every secure-codex run fails on it, so restore it from a backup, " +
          `or move it aside and log in again with ${command("-- login")}`
        : `the store is not a regular file: ${inputs.store}; ` +
          "every secure-codex run fails on it: name the encrypted auth.json " +
          "with --auth-enc PATH, SECURE_CODEX_AUTH_ENC or store in the config file",
      path: inputs.store,
    });
  }

  // A store that is not age is the more basic problem, reported above.
  if (found.storeChanged && report.store.encryption !== null) {
    warnings.push({
      code: "store-changed",
      message:
        `the store changed since this session last read or wrote it: ${inputs.store}; ` +
        "another program or session wrote it, so refreshed tokens in RAM are not written over it: " +
        `to use the store's login, run ${command("--cleanup --force")}; ` +
        `to keep the RAM tokens, move the store aside (mv ${
          shellQuote(inputs.store)
        } ${
          shellQuote(asidePath(inputs.store))
        }) and run secure-codex again, which saves them to a new store`,
      path: inputs.store,
    });
  }

  if (report.link.status === "plaintext-file") {
    warnings.push({
      code: "plaintext-auth-json",
      message:
        `auth.json is a plaintext file on disk, not a link into RAM: ${inputs.linkPath}; ` +
        `run ${
          command(report.store.exists ? "--import --force" : "--import")
        } to move it into the store${
          report.store.exists ? " (--force replaces the store)" : ""
        }, ` +
        `and treat its tokens as exposed: run ${command("-- logout")}, then ${
          command("-- login")
        }`,
      path: inputs.linkPath,
    });
  }

  for (const name of findStrayAuthCopies(home, inputs.store)) {
    const path = join(home, name);
    const message = name.startsWith(".auth-")
      ? `leftover codex temp file that may hold plaintext tokens: ${path}; ` +
        "delete it securely while no codex runs"
      : `possible plaintext copy of auth.json: ${path}; ` +
        "check it and delete it securely if it holds tokens";
    warnings.push({ code: "stray-auth-copy", message, path });
  }

  for (const name of CREDENTIAL_VARIABLES) {
    const value = inputs.env[name];
    if (value === undefined || value === "") continue;
    warnings.push({
      code: "env-credentials",
      message:
        `${name} is set, so codex uses it and ignores auth.json; unset it to use the login in the store`,
    });
  }

  const configPath = join(home, "config.toml");
  const credentialsStore = readCredentialsStoreSetting(configPath);
  if (credentialsStore !== null && credentialsStore.value !== "file") {
    const valueText = credentialsStore.value !== null &&
        /^[A-Za-z0-9_-]{1,32}$/.test(credentialsStore.value)
      ? `"${credentialsStore.value}"`
      : 'a value other than "file"';
    warnings.push({
      code: "credentials-store-not-file",
      message:
        `config.toml sets cli_auth_credentials_store to ${valueText}: ${configPath}; ` +
        "secure-codex overrides it for the codex it runs, but plain codex, IDE extensions " +
        "and the app-server daemon may keep their login outside the auth.json link; " +
        'set it to "file" or remove the line',
      path: configPath,
    });
  }

  if (report.link.status === "dangling" && !report.ramDir.exists) {
    warnings.push({
      code: "ram-dir-missing",
      message:
        `the auth.json link points into a RAM directory that does not exist: ${inputs.ramDir}; ` +
        `codex cannot save refreshed tokens there, so run ${
          command("--unlock")
        } to unlock the store again`,
      path: inputs.ramDir,
    });
  }

  if (report.link.status === "missing" && report.state === "unlocked") {
    warnings.push({
      code: "link-missing",
      message:
        `auth.json is missing while the session is unlocked: ${inputs.linkPath}; ` +
        `a plain codex login would now write its tokens to disk, so run ${
          command("--unlock")
        } to link it into RAM again`,
      path: inputs.linkPath,
    });
  }

  // Every run rejects such a directory before it writes a RAM copy, so a
  // copy there was written before the directory's filesystem changed, for
  // example by an unmount that uncovered a disk directory.
  // Runs reject such a directory, so neither --cleanup nor --unlock works on
  // it: the fixes are plain file commands.
  if (report.ramDir.filesystem === "other" && report.state === "unlocked") {
    warnings.push({
      code: "ram-dir-not-in-ram",
      message:
        `the RAM copy is on a filesystem other than tmpfs or ramfs: ${inputs.ramCopy}; ` +
        `its tokens may be on disk, so delete it securely (shred -u ${
          shellQuote(inputs.ramCopy)
        }) and log in again with a RAM directory on tmpfs`,
      path: inputs.ramCopy,
    });
  } else if (
    report.ramDir.filesystem === "other" && report.link.status === "dangling"
  ) {
    // An unmounted tmpfs leaves its mount point, a disk directory.
    warnings.push({
      code: "ram-dir-not-in-ram",
      message:
        `the RAM directory is not on tmpfs or ramfs: ${inputs.ramDir}; ` +
        "auth.json links into it, so a plain codex login would write tokens to disk there: " +
        `mount a tmpfs on it again (as root: mount -t tmpfs -o mode=0700,uid=${
          Deno.uid() ?? 0
        } tmpfs ${shellQuote(inputs.ramDir)}), or remove the link: rm ${
          shellQuote(inputs.linkPath)
        }`,
      path: inputs.ramDir,
    });
  } else if (report.ramDir.filesystem === "other") {
    warnings.push({
      code: "ram-dir-not-in-ram",
      message:
        `the RAM directory is not on tmpfs or ramfs: ${inputs.ramDir}; ` +
        "secure-codex refuses to unlock into it: mount a tmpfs there, " +
        "or choose a RAM directory on tmpfs with --ram-dir or ramDir in the config file",
      path: inputs.ramDir,
    });
  }

  const elsewhere: LinkState | null = report.link.status === "elsewhere"
    ? { kind: "elsewhere", target: report.link.target ?? "" }
    : null;
  const otherRamDir = elsewhere === null
    ? null
    : linkedRamDir(inputs.linkPath, elsewhere);
  if (elsewhere !== null && otherRamDir === null) {
    const target = resolve(dirname(inputs.linkPath), elsewhere.target);
    const missing = !targetExists(inputs.linkPath, elsewhere.target);
    warnings.push({
      code: "link-elsewhere",
      message: missing && linkTargetDirKind === "other"
        ? `auth.json links into a directory on disk: ${
          dirname(target)
        }; a plain codex login would write tokens there, so remove the link: rm ${
          shellQuote(inputs.linkPath)
        }`
        : missing
        ? `auth.json links to a path that does not exist: ${elsewhere.target}; ` +
          `secure-codex runs reject this link, so remove it: rm ${
            shellQuote(inputs.linkPath)
          }`
        : `auth.json links to a file secure-codex does not manage: ${elsewhere.target}; ` +
          `secure-codex runs reject this link, so check what is there, then remove the link: rm ${
            shellQuote(inputs.linkPath)
          }`,
      path: inputs.linkPath,
    });
  }
  if (otherRamDir !== null && elsewhere !== null) {
    const ended = endedSessionRamDir(inputs.linkPath, elsewhere) !== null;
    warnings.push({
      code: "link-to-other-session",
      message: ended
        ? `auth.json links into the RAM directory of an ended session: ${otherRamDir}; ` +
          "nothing is stored there, and the next secure-codex run replaces the link with its own"
        : `auth.json links into the RAM directory of another session: ${otherRamDir}; ` +
          `this report describes ${inputs.ramDir}, so run ${
            command("--status", otherRamDir)
          } to see that session, or ${
            command("--cleanup", otherRamDir)
          } to save and end it`,
      path: otherRamDir,
    });
  }

  const mcpCredentials = join(home, ".credentials.json");
  if (lstatOrNull(mcpCredentials) !== null) {
    warnings.push({
      code: "mcp-credentials-plaintext",
      message:
        `MCP servers' OAuth tokens are stored in plaintext: ${mcpCredentials}; ` +
        "secure-codex cannot link this file into RAM because codex rewrites it in place " +
        'and rejects a symlink; set mcp_oauth_credentials_store = "keyring" in config.toml ' +
        "(needs a running Secret Service), log in to those MCP servers again, then delete the file",
      path: mcpCredentials,
    });
  }

  const snapshots = join(home, "shell_snapshots");
  const snapshotCount = countShellSnapshots(snapshots);
  if (snapshotCount > 0) {
    const files = snapshotCount === 1 ? "file" : "files";
    warnings.push({
      code: "shell-snapshots",
      message:
        `${snapshotCount} codex shell snapshot ${files} in ${snapshots}: ` +
        "they list every exported variable, secrets included, and a killed codex leaves them behind; " +
        "remove them while no codex runs",
      path: snapshots,
    });
  }

  const locksAt = report.session.locksAt;
  if (locksAt !== null && inputs.now.getTime() >= Date.parse(locksAt)) {
    warnings.push({
      code: "session-expired",
      message:
        `the session's time to live passed at ${locksAt}, but its RAM copy is still there: ${inputs.ramCopy}; ` +
        "once no codex runs with it, the next secure-codex start or a running " +
        `secure-codex --watch locks it, or ${command("--lock")} locks it now`,
      path: inputs.ramCopy,
    });
  }

  if (ramCopyInfo !== null && !ramCopyInfo.isFile) {
    warnings.push({
      code: "ram-copy-not-a-file",
      message: `the RAM copy is not a regular file: ${inputs.ramCopy}; ` +
        "runs stop on it and change nothing, so move it away",
      path: inputs.ramCopy,
    });
  }
  if (ramCopyInfo?.isFile && inputs.state === null) {
    warnings.push({
      code: "session-state-missing",
      message: `the RAM copy has no session state: ${inputs.ramCopy}; ` +
        "the next secure-codex start compares it with the store, keeps the newer tokens and records the state, " +
        `and ${command("--cleanup")} works after that`,
      path: inputs.ramCopy,
    });
  }
  const ramCopyOlder = inputs.login !== null && inputs.state !== null &&
    isOlder(inputs.login.lastRefresh, inputs.state.lastRefresh);
  if (ramCopyOlder) {
    warnings.push({
      code: "ram-copy-older",
      message:
        `the RAM copy holds older tokens than the store: ${inputs.ramCopy}; ` +
        `it cannot be saved, so to use the store's login run ${
          command("--cleanup --force")
        }`,
      path: inputs.ramCopy,
    });
  }

  const ramCopyInvalid = report.state === "unlocked" &&
    inputs.ramCopyValid === false;
  if (inputs.ramCopyError !== undefined) {
    warnings.push({
      code: "ram-copy-unreadable",
      message:
        `cannot read the RAM copy: ${inputs.ramCopy}: ${inputs.ramCopyError}; ` +
        "runs stop on it too and change nothing, so make it a readable regular file again",
      path: inputs.ramCopy,
    });
  }

  if (ramCopyInvalid) {
    warnings.push({
      code: "ram-copy-invalid",
      message: `the RAM copy is not a valid auth.json: ${inputs.ramCopy}; ` +
        "a secure-codex run reports why, and replaces it with the store's login when it is not JSON at all",
      path: inputs.ramCopy,
    });
  }

  // A missing store has its own warning above.
  if (
    report.session.unsavedChanges === true && !ramCopyInvalid &&
    !ramCopyOlder && report.store.exists
  ) {
    warnings.push({
      code: "unsaved-changes",
      message:
        `the RAM copy has changes that are not saved to the store: ${inputs.ramCopy}; ` +
        "the next secure-codex run saves them unless the store changed too, " +
        `and ${command("--cleanup")} saves them and removes the RAM copy`,
      path: inputs.ramCopy,
    });
  }
  return warnings;
}

/**
 * Lists top-level files of the codex home that may be plaintext copies of
 * auth.json: names that start with `auth` and contain `.json`, and codex's
 * temp files `.auth-*`. Left out are auth.json itself (reported as the link),
 * age files and their `.recipients` files, the store's temp files, and
 * codex's lock files. Directories are skipped, but symlinks are listed.
 */
function findStrayAuthCopies(home: string, store: string): string[] {
  const excluded = new Set(["auth.json", "auth.lock", "auth.json.lock"]);
  const storeTempPrefixes = [".auth.json.age."];
  if (dirname(store) === home) {
    excluded.add(basename(store));
    excluded.add(`${basename(store)}.recipients`);
    storeTempPrefixes.push(`.${basename(store)}.`);
  }

  const names: string[] = [];
  for (const entry of readDirOrEmpty(home)) {
    if (entry.isDirectory) continue;
    const name = entry.name;
    if (excluded.has(name)) continue;
    if (name.endsWith(".age") || name.endsWith(".age.recipients")) continue;
    const isStoreTemp = name.endsWith(".tmp") &&
      storeTempPrefixes.some((prefix) => name.startsWith(prefix));
    if (isStoreTemp) continue;
    const isCopy = name.startsWith("auth") && name.includes(".json");
    if (isCopy || name.startsWith(".auth-")) names.push(name);
  }
  return names.sort();
}

function countShellSnapshots(directory: string): number {
  return readDirOrEmpty(directory).filter((entry) =>
    !entry.isDirectory && entry.name.endsWith(".sh")
  ).length;
}

function readDirOrEmpty(path: string): Deno.DirEntry[] {
  try {
    return [...Deno.readDirSync(path)];
  } catch (error) {
    if (isNotFound(error) || error instanceof Deno.errors.PermissionDenied) {
      return [];
    }
    throw error;
  }
}

/** The top-level `cli_auth_credentials_store` key, bare or quoted, and the rest of its line. */
const CREDENTIALS_STORE_LINE =
  /^\s*(?:cli_auth_credentials_store|"cli_auth_credentials_store"|'cli_auth_credentials_store')\s*=\s*(.*)$/;

/**
 * Finds a top-level `cli_auth_credentials_store` in config.toml. Returns null
 * when the file or the key is missing, else the string value, which is null
 * when the value is not a one-line TOML string.
 *
 * NOTE: this is a line scan, not a TOML parser. It stops at the first line that
 * starts with `[`, so a setting in a table such as a profile is not seen. A
 * multi-line array or string at the top level can end the scan early or be
 * misread.
 */
function readCredentialsStoreSetting(
  configPath: string,
): { value: string | null } | null {
  const text = readSmallTextFile(configPath, MAX_CONFIG_BYTES);
  if (text === null) return null;
  for (const line of text.split(/\r?\n/)) {
    if (/^\s*\[/.test(line)) break;
    const match = CREDENTIALS_STORE_LINE.exec(line);
    if (match !== null) return { value: parseTomlString(match[1]) };
  }
  return null;
}

/** Parses a one-line TOML basic or literal string followed by an optional comment. */
function parseTomlString(text: string): string | null {
  const basic = /^"((?:[^"\\]|\\.)*)"\s*(?:#.*)?$/.exec(text.trim());
  if (basic !== null) {
    // Escapes are kept as written, because the values codex accepts contain none.
    return basic[1];
  }
  const literal = /^'([^']*)'\s*(?:#.*)?$/.exec(text.trim());
  return literal === null ? null : literal[1];
}

function isNotFound(error: unknown): boolean {
  return error instanceof Deno.errors.NotFound ||
    error instanceof Deno.errors.NotADirectory;
}

/**
 * Formats a report as text for stdout: one `name: value` line per field,
 * then one `warning: ` line per warning. A missing path or time shows as
 * `none`, an unknown yes/no or number as `unknown`.
 *
 * @example
 * ```ts
 * import { printOut } from "./output.ts";
 * printOut(formatStatus(await collectStatus(inputs)));
 * ```
 */
export function formatStatus(report: StatusReport): string {
  const login = report.login;
  const lines: [string, string][] = [
    ["state", report.state],
    ["codex home", report.codexHome],
    ["store", report.store.path],
    ["store exists", yesNo(report.store.exists)],
    [
      "store encryption",
      report.store.encryption ??
        (report.store.exists ? "unknown (not an age file)" : "none"),
    ],
    ["store armored", yesNo(report.store.armored)],
    ["recipients source", report.recipients.source],
    ["recipients file", report.recipients.path ?? "none"],
    [
      "recipients",
      report.recipients.list.length > 0
        ? report.recipients.list.join(", ")
        : "none",
    ],
    ["RAM directory", report.ramDir.path],
    ["RAM directory exists", yesNo(report.ramDir.exists)],
    ["RAM directory filesystem", report.ramDir.filesystem ?? "unknown"],
    ["link", report.link.path],
    ["link status", report.link.status],
    ["link target", report.link.target ?? "none"],
    ["unlocked at", report.session.unlockedAt ?? "none"],
    ["session age", formatAge(report.session.ageSeconds)],
    ["last write-back", report.session.lastWriteBackAt ?? "none"],
    [
      "time to live",
      // As --ttl takes it, and as every message prints it.
      report.session.ttlSeconds
        ? formatDuration(report.session.ttlSeconds)
        : "none",
    ],
    ["locks at", report.session.locksAt ?? "none"],
    ["unsaved changes", yesNo(report.session.unsavedChanges)],
    ["login", login?.kind ?? (report.state === "locked" ? "none" : "unknown")],
    ["email", login?.email ?? "none"],
    ["plan", login?.plan ?? "none"],
    ["access token expires at", login?.accessTokenExpiresAt ?? "none"],
    ["last refresh", login?.lastRefresh ?? "none"],
  ];
  const text = lines.map(([name, value]) => `${name}: ${value}`);
  if (report.warnings.length === 0) text.push("warnings: none");
  for (const warning of report.warnings) {
    text.push(`warning: ${warning.message}`);
  }
  return text.join("\n") + "\n";
}

function yesNo(value: boolean | null): string {
  if (value === null) return "unknown";
  return value ? "yes" : "no";
}

/** Formats an elapsed time as its two largest units, such as `2d 3h` or `5m 10s`. */
function formatAge(seconds: number | null): string {
  if (seconds === null) return "unknown";
  if (seconds < 60) return `${seconds}s`;
  const units: [string, number][] = [
    ["d", Math.floor(seconds / 86400)],
    ["h", Math.floor(seconds / 3600) % 24],
    ["m", Math.floor(seconds / 60) % 60],
    ["s", seconds % 60],
  ];
  const first = units.findIndex(([, amount]) => amount > 0);
  return units.slice(first, first + 2).map(([unit, amount]) =>
    `${amount}${unit}`
  ).join(" ");
}

/**
 * Collects the status of a session from this process's settings. The worker reads
 * the RAM copy only when one exists, and returns only its non-secret facts.
 * While locked, the identity files give the recipients.
 *
 * @example
 * ```ts
 * const report = await collectSessionStatus(session, Deno.env.toObject(), new Date());
 * console.log(report.state);
 * ```
 */
export async function collectSessionStatus(
  session: Session,
  env: Readonly<Record<string, string | undefined>>,
  now: Date,
): Promise<StatusReport> {
  const state = session.readState();
  const identityRecipients = state?.recipients.length
    ? state.recipients
    : await session.findIdentityRecipients();
  let recipients: ResolvedRecipients;
  let recipientsError: string | undefined;
  try {
    recipients = session.recipientsFor(identityRecipients);
  } catch (error) {
    recipientsError = (error as Error).message;
    // A damaged recipients file is still named; its valid lines are listed.
    const flag = session.config.recipientsFile;
    recipients = {
      source: flag === undefined ? "beside-store" : "--recipients-file",
      path: flag ?? besideRecipientsPath(session.config.store),
      list: [],
    };
  }
  let login: LoginSummary | null = null;
  let ramCopyValid: boolean | undefined;
  let ramCopyError: string | undefined;
  if (lstatOrNull(session.ramCopy)?.isFile) {
    try {
      login = await session.worker().summary(session.ramDir);
      // The worker summarizes only a valid auth.json.
      ramCopyValid = login !== null;
    } catch (error) {
      if (!(error instanceof WorkerError)) throw error;
      ramCopyError = error.message;
    }
  }
  return await collectStatus({
    codexHome: session.config.codexHome,
    store: session.config.store,
    recipientsFile: recipients.path,
    recipientsSource: recipients.source,
    recipientsError,
    identityRecipients,
    ramDir: session.ramDir,
    linkPath: session.linkPath,
    ramCopy: session.ramCopy,
    env,
    now,
    state,
    login,
    ramCopyValid,
    ramCopyError,
    command: (action, ramDir) =>
      session.command(action, session.config.store, ramDir),
    runTtlSeconds: session.config.ttlSeconds ?? 0,
  });
}
