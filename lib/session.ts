/**
 * A session: one codex home unlocked into one RAM directory, shared by every
 * secure-codex process that runs codex with that home.
 *
 * Files in the RAM directory:
 * - `auth.json`: the plaintext copy, mode 0600, the target of the link.
 * - `session.json`: what was last synchronised with the store (hashes,
 *   fingerprint, times, public recipients). It contains no secret.
 * - `session.lock`: taken exclusively to unlock, write back or clean up, so
 *   concurrent processes decrypt once and never write the store at once.
 * - `users.lock`: held shared by every process running codex, so the last one
 *   can tell it is last without a counter file.
 *
 * @module
 */

import { basename, dirname, join } from "./path.ts";
import {
  DAMAGED_FILE_REASON,
  NO_TERMINAL_REASON,
  WRONG_PASSPHRASE_REASON,
} from "./age.ts";
import { formatDuration, shorterTtl } from "./options.ts";
import { isOlder, isUnparseable } from "./auth_json.ts";
import {
  checkLink,
  endedSessionRamDir,
  ensureLink,
  inspectLink,
  linkedRamDir,
} from "./link.ts";
import { fingerprintOf, sha256Hex } from "./fingerprint.ts";
import { lockFile, tryLockFile } from "./lock.ts";
import { mark } from "./trace.ts";
import { CliError, hasTerminal, notice, shellQuote, warn } from "./output.ts";
import {
  checkRamSpace,
  ensureRamDir,
  lstatOrNull,
  type RamDirChoice,
  VERIFIED_MARKER,
} from "./ram_dir.ts";
import {
  asidePath,
  checkReadableFile,
  followLink,
  inspectDirectoriesAbove,
  MAX_KEY_FILE_BYTES,
  parseStoreHeader,
  readStore,
  sharedAccess,
  syncDirectory,
} from "./store.ts";
import {
  type AdoptResult,
  type DecryptResult,
  PlaintextWorker,
  type SnapshotResult,
  WorkerError,
} from "./worker.ts";
import {
  NO_IDENTITY_TO_CHECK,
  RECENT_WRITE_MS,
  writeBack,
  type WriteBackOptions,
  type WriteBackOutcome,
} from "./write_back.ts";
import {
  readRecipientsFile,
  type ResolvedRecipients,
  resolveRecipients,
} from "./recipients.ts";

/** The non-secret record of what the RAM copy and the store last agreed on. */
export interface SessionState {
  version: 1;
  codexHome: string;
  store: string;
  /** SHA-256 of the store's ciphertext when last read or written; null if none. */
  storeSha256: string | null;
  /** SHA-256 of the RAM copy when it last matched the store. */
  plaintextSha256: string;
  /** Fingerprint of the RAM copy file when it last matched the store. */
  plaintextFingerprint: string;
  /** `last_refresh` of the tokens in the store, if they carry one. */
  lastRefresh: string | null;
  /** Public recipients for write-back, from identity file comments. */
  recipients: string[];
  /**
   * Whether the store is passphrase-encrypted. Write-back then needs a
   * passphrase typed on the terminal, so it runs only while codex is not.
   */
  passphrase?: boolean;
  unlockedAt: string;
  /**
   * The time to live in seconds given when the session was unlocked, 0 or
   * absent for none. Later runs lock the session after it, even without a TTL
   * of their own.
   */
  ttlSeconds?: number;
  lastWriteBackAt: string | null;
  /** A store write that was started but maybe not finished, if any. */
  pending?: PendingWrite | null;
}

/** The state fields a store write sets once its rename has happened. */
export interface PendingWrite {
  storeSha256: string;
  plaintextSha256: string;
  plaintextFingerprint: string;
  lastRefresh: string | null;
}

/**
 * Returns the state after a completed store write.
 *
 * @example
 * ```ts
 * session.writeState(completeWrite(state, pending));
 * ```
 */
export function completeWrite(
  state: SessionState,
  write: PendingWrite,
): SessionState {
  return {
    ...state,
    ...write,
    pending: null,
    lastWriteBackAt: new Date().toISOString(),
  };
}

/** Everything a session needs to know, resolved from the options. */
export interface SessionConfig {
  codexHome: string;
  store: string;
  identities: readonly string[];
  /** The `--recipients-file` the user gave, which wins over every other source. */
  recipientsFile?: string;
  ramDir: RamDirChoice;
  uid: number;
  /** The environment age runs with (no `LD_*`). */
  ageEnv: Record<string, string>;
  /** This run's time to live in seconds; 0 means none. */
  ttlSeconds?: number;
  /** The profile name, for commands printed in hints; `default` if absent. */
  profile?: string;
  /** The config file named with `--config` or SECURE_CODEX_CONFIG, for hints. */
  configPath?: string;
}

/**
 * One session, as seen by this process.
 *
 * @example
 * ```ts
 * const session = new Session(config);
 * await session.open();
 * // run codex, write back on changes
 * await session.leave(true);
 * ```
 */
export class Session {
  readonly config: SessionConfig;
  /** `<ram>/auth.json`, the plaintext copy. */
  readonly ramCopy: string;
  /** `<codex home>/auth.json`, the link. */
  readonly linkPath: string;
  /** `<codex home>/auth.lock`, codex's own lock around auth.json. */
  readonly codexLockPath: string;
  #worker: PlaintextWorker | null = null;
  #users: Deno.FsFile | null = null;
  /**
   * Set when Ctrl-C ended age at a passphrase prompt during a write-back:
   * the run then ends by SIGINT, as the user asked, so the shell restores
   * the terminal that age left without echo.
   */
  promptInterrupted = false;
  #restoreLink = false;

  /** Creates the session object; nothing is touched until a method runs. */
  constructor(config: SessionConfig) {
    this.config = config;
    this.ramCopy = join(config.ramDir.path, "auth.json");
    this.linkPath = join(config.codexHome, "auth.json");
    this.codexLockPath = join(config.codexHome, "auth.lock");
  }

  get ramDir(): string {
    return this.config.ramDir.path;
  }

  get #statePath(): string {
    return join(this.ramDir, "session.json");
  }

  /** Returns the worker, starting it on first use with permissions narrowed to this session's files. */
  worker(): PlaintextWorker {
    if (this.#worker === null) {
      this.#worker = PlaintextWorker.start({
        store: this.config.store,
        identities: this.config.identities,
        ramDir: this.ramDir,
        adoptable: this.linkPath,
        env: this.config.ageEnv,
      });
    }
    return this.#worker;
  }

  /** Stops the worker if one was started. */
  close(): void {
    this.#worker?.terminate();
    this.#worker = null;
    this.#users?.close();
    this.#users = null;
  }

  /**
   * Reads `session.json`, this session's or the one in another RAM
   * directory; returns null when missing or unreadable.
   */
  readState(ramDir = this.ramDir): SessionState | null {
    try {
      const state = JSON.parse(
        Deno.readTextFileSync(join(ramDir, "session.json")),
      ) as SessionState;
      return state.version === 1 ? state : null;
    } catch {
      return null;
    }
  }

  /** Replaces `session.json` by temp file and rename. */
  writeState(state: SessionState): void {
    const temp = `${this.#statePath}.${crypto.randomUUID().slice(0, 8)}.tmp`;
    try {
      Deno.writeTextFileSync(temp, JSON.stringify(state, null, 2) + "\n", {
        createNew: true,
        mode: 0o600,
      });
      Deno.renameSync(temp, this.#statePath);
    } catch (error) {
      try {
        Deno.removeSync(temp);
      } catch {
        // The temp file was never created.
      }
      throw new CliError(
        `cannot write the session state: ${this.#statePath}: ${
          (error as Error).message
        }`,
        {
          hints: [
            "free space in the RAM directory's filesystem, then run again",
          ],
        },
      );
    }
  }

  /**
   * Settles a store write recorded as pending by a process that died. If the
   * store now contains that write's ciphertext, the rename happened and the
   * state is completed. Otherwise the write never took effect and is dropped.
   */
  async settlePendingWrite(state: SessionState): Promise<SessionState> {
    if (!state.pending) return state;
    const current = readStore(state.store, this.config.uid);
    const currentSha256 = current === null ? null : await sha256Hex(current);
    const settled = currentSha256 === state.pending.storeSha256
      ? completeWrite(state, state.pending)
      : { ...state, pending: null };
    this.writeState(settled);
    return settled;
  }

  /** Runs `action` under the exclusive session lock, creating the RAM directory if needed. */
  async withLock<T>(action: () => Promise<T>): Promise<T> {
    for (;;) {
      await ensureRamDir(this.config.ramDir, this.config.uid);
      let lock: Deno.FsFile;
      try {
        lock = await lockFile(join(this.ramDir, "session.lock"), true);
      } catch (error) {
        // A cleanup removed the directory while this process waited.
        if (error instanceof Deno.errors.NotFound) continue;
        throw error;
      }
      try {
        return await action();
      } finally {
        lock.close();
      }
    }
  }

  /**
   * Writes back under the session lock if the RAM directory still exists,
   * after repairing a replaced link. A directory removed by a cleanup is not
   * re-created just to find it empty.
   */
  async writeBackIfPresent(
    options: WriteBackOptions,
  ): Promise<WriteBackOutcome> {
    // Cleanup keeps the directory, so a missing one was removed from outside.
    if (lstatOrNull(this.ramDir) === null) return { status: "gone" };
    try {
      return await this.#locked(async () => {
        // codex 0.171's browser and device-code logins delete auth.json
        // when they start and write the new login minutes later: without the
        // link back in place that write would land on disk.
        if (this.#restoreLink && lstatOrNull(this.linkPath) === null) {
          ensureLink(this.linkPath, this.ramCopy, this.config.store);
        }
        await this.repairReplacedLink(options.interactive !== true);
        return await writeBack(this, options);
      });
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      // The RAM directory removed while this waited for its lock.
      if (lstatOrNull(this.ramDir) === null) return { status: "absent" };
      // Anything else missing, such as a store directory moved away, leaves
      // the tokens unsaved and must be reported.
      return { status: "failed", reason: error.message };
    }
  }

  async #locked<T>(action: () => Promise<T>): Promise<T> {
    const lock = await lockFile(join(this.ramDir, "session.lock"), true);
    try {
      return await action();
    } finally {
      lock.close();
    }
  }

  /** Runs `action` while holding codex's own lock on `auth.lock`, briefly. */
  async withCodexLock<T>(action: () => Promise<T>): Promise<T> {
    const lock = await lockFile(this.codexLockPath, true);
    try {
      return await action();
    } finally {
      lock.close();
    }
  }

  /**
   * Checks the identity and recipients files before anything is decrypted,
   * and warns about an identity file other users can read or change.
   */
  checkKeyFiles(): void {
    for (const identity of this.config.identities) {
      const info = checkReadableFile(
        identity,
        "identity file",
        this.config.uid,
        MAX_KEY_FILE_BYTES,
      );
      // It warns instead of refusing, because a key on a filesystem without
      // Unix modes (FAT, some network mounts) shows bits that cannot be removed.
      const mode = info.mode ?? 0;
      const above = inspectDirectoriesAbove(identity, this.config.uid);
      const access = sharedAccess(mode & above.reachableBits);
      const directory = above.replaceableFrom;
      if (directory !== null) {
        warn(
          `identity file can be replaced by other users through its directory: ${directory}`,
          [
            "whoever can put their own key in its place receives the tokens of a store that is created with it",
            `restrict the directory: chmod o-w ${
              shellQuote(directory)
            }, or keep the key in a directory of your own`,
          ],
        );
      }
      if (access !== null) {
        warn(
          `identity file can be ${access} by other users (mode 0${
            (mode & 0o777).toString(8)
          }): ${identity}`,
          [
            "an unencrypted identity file is the secret key: whoever can read it can decrypt the store, and whoever can change it can swap in their own key",
            `restrict it to yourself: chmod 600 ${shellQuote(identity)}`,
          ],
        );
      }
    }
    if (this.config.recipientsFile !== undefined) {
      readRecipientsFile(this.config.recipientsFile, this.config.uid);
    }
  }

  /**
   * Resolves the recipients write-back encrypts to: `--recipients-file`, else
   * the file beside the store, else the given identity recipients. Files
   * are read again on every call, so a rekey by another process is seen.
   */
  recipientsFor(identityRecipients: readonly string[]): ResolvedRecipients {
    return resolveRecipients({
      recipientsFile: this.config.recipientsFile,
      store: this.config.store,
      identityRecipients,
      uid: this.config.uid,
    });
  }

  /**
   * Builds a secure-codex command line that acts on this session, for hints
   * the user may paste into another shell: it names the profile, or the
   * codex home, store and RAM directory when they could differ there.
   */
  command(
    action: string,
    store = this.config.store,
    ramDir?: string,
  ): string {
    const parts = ["secure-codex"];
    if (this.config.configPath !== undefined) {
      parts.push("--config", this.config.configPath);
    }
    const profile = this.config.profile ?? "default";
    if (profile !== "default") parts.push("--profile", profile);
    // Named too for a profile, whose home a flag or variable may override.
    parts.push("--real-codex-home", this.config.codexHome);
    for (const identity of this.config.identities) {
      parts.push("--identity", identity);
    }
    if (store !== join(this.config.codexHome, "auth.json.age")) {
      parts.push("--auth-enc", store);
    }
    if (ramDir !== undefined) {
      parts.push("--ram-dir", ramDir);
    } else if (this.config.ramDir.source === "--ram-dir") {
      parts.push("--ram-dir", this.ramDir);
    }
    // Actions are literal words from this program, never user input.
    if (action !== "") parts.push(...action.split(" "));
    return parts.map(shellQuote).join(" ");
  }

  /**
   * Makes the session usable: reuses a current RAM copy, writes back one that
   * is newer than the store, or decrypts the store into RAM; then makes sure
   * the link exists. The process then counts as a user of the session
   * until {@linkcode leave}.
   */
  async open(options: { newLogin: boolean }): Promise<void> {
    // Without a RAM copy this run will most likely decrypt, so the worker
    // starts first. `new Worker` blocks until the worker's isolate exists,
    // and the worker then handles its first messages while the checks run.
    if (lstatOrNull(this.ramCopy) === null) {
      this.worker();
      mark("worker");
    }
    // A plaintext file where this session's link was is repaired below; any
    // other plaintext file or foreign link is rejected before anything runs.
    const link = inspectLink(this.linkPath, this.ramCopy).kind;
    const replaced = link === "file" &&
      this.readState()?.codexHome === this.config.codexHome;
    // The hint's command is built only when checkLink is about to throw.
    if (!replaced && link !== "missing" && link !== "ours") {
      // A rejected --ram-dir often meets a link into the default RAM
      // directory, so the RAM directory, the more basic error, comes first.
      await ensureRamDir(this.config.ramDir, this.config.uid);
      if (!this.#replaceEndedSessionLink()) {
        checkLink(
          this.linkPath,
          this.ramCopy,
          this.config.store,
          // That session's own store, which may differ from this run's.
          (action, ramDir) =>
            this.command(
              action,
              (ramDir === undefined
                ? undefined
                : this.readState(ramDir)?.store) ??
                this.config.store,
              ramDir,
            ),
        );
      }
    }
    this.checkKeyFiles();
    let spaceChecked = false;
    await this.withLock(async () => {
      if (replaced) await this.repairReplacedLink();
      const recorded = this.readState();
      const state = recorded === null
        ? null
        : await this.settlePendingWrite(recorded);
      const ramInfo = lstatOrNull(this.ramCopy);
      if (ramInfo !== null && state !== null) {
        await this.#reuse(state, ramInfo);
      } else {
        // Only a first or interrupted start pays for the directory scans;
        // the warm path above stays a handful of system calls.
        await this.#removeStaleTempFiles();
        // Before any plaintext is written: a session unlocked into a full
        // filesystem would stay unlocked if a later check stopped the run.
        if (ramInfo === null) {
          checkRamSpace(this.ramDir);
          spaceChecked = true;
        }
        if (ramInfo !== null) await this.#recover();
        else if (
          options.newLogin &&
          readStore(this.config.store, this.config.uid) === null
        ) {
          // readStore follows a symlinked store: a dangling one is no store,
          // and the first write-back creates the file it names.
          await this.#prepareLogin();
        } else await this.#unlock();
      }
      ensureLink(this.linkPath, this.ramCopy, this.config.store);
      await this.#refreshRecipients();
      // Joined under the session lock, so no cleanup can run in between.
      this.#users = await lockFile(join(this.ramDir, "users.lock"), false);
    });
    // Also when the copy was there already: codex saves refreshed tokens
    // into this filesystem, however the copy got there.
    if (!spaceChecked) checkRamSpace(this.ramDir);
    const state = this.readState();
    if (
      // Identity recipients suffice, so the files are read only without them.
      state !== null && !state.passphrase && state.recipients.length === 0 &&
      this.recipientsFor(state.recipients).list.length === 0
    ) {
      // Said before codex starts, so the user can fix it before a refresh happens.
      reportWriteBack(this, { status: "no-recipients" });
    }
  }

  /** A RAM copy with its record exists: keep it, save it, or replace it. */
  async #reuse(state: SessionState, ramInfo: Deno.FileInfo): Promise<void> {
    if (!isSameFile(state.store, this.config.store)) {
      throw new CliError(
        `the unlocked session belongs to another store: ${state.store}`,
        {
          hints: [
            `run ${
              this.command("--cleanup", state.store)
            } to save and close it`,
            "then run this command again",
          ],
        },
      );
    }
    const ciphertext = readStore(this.config.store, this.config.uid);
    const storeSha256 = ciphertext === null
      ? null
      : await sha256Hex(ciphertext);
    if (storeSha256 === state.storeSha256 || storeSha256 === null) {
      // The store is as this session last saw it (or was deleted): the RAM
      // copy is at least as new, and any change goes back to the store.
      const outcome = await writeBack(this, {
        force: storeSha256 === null,
        interactive: true,
      });
      // codex writes auth.json by rename, so an unparseable copy is no write
      // in progress and contains no login, and the store still has the login
      // this session last saved. A copy codex can parse is kept, because it
      // may contain tokens in a form this check does not know.
      if (
        outcome.status === "invalid" && isUnparseable(outcome.reason) &&
        storeSha256 !== null
      ) {
        await this.#unlock();
        notice(
          `replaced the RAM copy, which was not a valid auth.json (${outcome.reason}), with the store's login: ${this.ramCopy}`,
        );
        return;
      }
      reportWriteBack(this, outcome);
      return;
    }
    // Someone else replaced the store. An unchanged RAM copy is simply stale.
    if (fingerprintOf(ramInfo) !== state.plaintextFingerprint) {
      const snapshot = await this.#snapshot();
      if (
        snapshot.present && snapshot.valid &&
        snapshot.sha256 !== state.plaintextSha256
      ) {
        reportWriteBack(this, { status: "conflict" });
        return;
      }
      if (this.#keepUnknownCopy(snapshot)) return;
    }
    // The RAM copy contains the tokens this session last synced. A store
    // with older ones (a restored backup) may carry a spent refresh token.
    await this.#unlock({ ramCopy: { lastRefresh: state.lastRefresh } });
  }

  /**
   * Reads the RAM copy in the worker. A copy it cannot read stops the start
   * with a message, and nothing replaces it, since it may contain the newest
   * tokens.
   */
  async #snapshot(): Promise<SnapshotResult> {
    try {
      return await this.withCodexLock(() =>
        this.worker().snapshot(this.ramDir)
      );
    } catch (error) {
      if (!(error instanceof WorkerError)) throw error;
      throw new CliError(
        `cannot read the RAM copy: ${this.ramCopy}: ${error.message}`,
        {
          hints: [
            "nothing was changed, since it may contain the newest tokens",
            "make it a readable regular file again, then run secure-codex again",
          ],
        },
      );
    }
  }

  /**
   * Keeps a RAM copy that is JSON but not an auth.json of a known shape, and
   * reports it. It may contain tokens in a newer form, which the store's older
   * login must not replace. Returns true when it kept one.
   */
  #keepUnknownCopy(snapshot: SnapshotResult): boolean {
    if (!snapshot.present || snapshot.valid) return false;
    if (isUnparseable(snapshot.reason)) return false;
    reportWriteBack(this, { status: "invalid", reason: snapshot.reason });
    return true;
  }

  /** A RAM copy without a record, left by a killed run: the newer tokens win. */
  async #recover(): Promise<void> {
    const snapshot = await this.#snapshot();
    if (this.#keepUnknownCopy(snapshot)) return;
    const ciphertext = readStore(this.config.store, this.config.uid);
    if (ciphertext === null) {
      if (!snapshot.present || !snapshot.valid) {
        throw storeNotFound(this.config.store, this);
      }
      // Only the RAM copy contains this login: record it so write-back creates the store.
      this.writeState(
        await this.createState(null, "", "", snapshot.lastRefresh),
      );
      reportWriteBack(
        this,
        await writeBack(this, { force: true, interactive: true }),
      );
      return;
    }
    const decrypted = await this.#decrypt(ciphertext);
    const ramIsUsable = snapshot.present && snapshot.valid &&
      !isOlder(snapshot.lastRefresh, decrypted.lastRefresh);
    if (!ramIsUsable) {
      await this.#install(ciphertext, decrypted);
      // Without a session state a stale copy and another login look the
      // same, so the replacement is reported.
      if (snapshot.present) {
        warn(
          `replaced the RAM copy, which had no session state, with the store's login: ${this.ramCopy}`,
          [
            snapshot.valid
              ? `its tokens were older than the store's (last_refresh ${
                snapshot.lastRefresh ?? "missing"
              }, the store's ${decrypted.lastRefresh ?? "missing"})`
              : `it was not JSON (${snapshot.reason})`,
          ],
        );
      }
      return;
    }
    this.writeState(
      await this.createState(
        ciphertext,
        decrypted.sha256,
        "",
        decrypted.lastRefresh,
      ),
    );
    if (snapshot.sha256 !== decrypted.sha256) {
      warn(
        `recovered a RAM copy left by an earlier run: ${this.ramCopy}`,
        [
          "it had no session state and newer tokens than the store, so they replace the store's login",
        ],
      );
    }
    reportWriteBack(
      this,
      await writeBack(this, { force: false, interactive: true }),
    );
  }

  /**
   * Prepares a first login: no store exists yet, so codex's login writes into
   * the RAM copy through the link, and write-back creates the store. Without
   * recipients the login could never be saved, so it is not started.
   */
  async #prepareLogin(): Promise<void> {
    const state = await this.createState(null, "", "", null);
    const recipients = this.recipientsFor(state.recipients);
    if (recipients.list.length === 0) {
      throw new CliError(
        `no recipients for the new store: ${this.config.store}`,
        {
          hints: [
            "the login would stay in RAM only and be lost at reboot, so codex was not started",
            'pass --recipients-file PATH, or --identity PATH with a "# public key:" line (age-keygen writes one)',
          ],
        },
      );
    }
    this.writeState(state);
    notice(
      `no store yet: the login goes to the RAM copy and is encrypted to ${recipients.list.length} recipient(s) in ${this.config.store}`,
    );
  }

  /**
   * Decrypts the store into RAM and records the new state. `ramCopy`
   * describes a RAM copy the store would replace: a store with older tokens
   * then leaves it in place.
   */
  async #unlock(
    options: { ramCopy?: { lastRefresh: string | null } } = {},
  ): Promise<void> {
    const ciphertext = readStore(this.config.store, this.config.uid);
    if (ciphertext === null) throw storeNotFound(this.config.store, this);
    // Requested first, so the worker reads the identity files while age runs.
    const recipients = this.#findRecipients();
    recipients.catch(() => {
      // Awaited by #install. A failed decryption leaves it unread.
    });
    let decrypted: DecryptResult;
    try {
      decrypted = await this.#decrypt(ciphertext);
    } catch (error) {
      if (!(error instanceof CliError) || options.ramCopy === undefined) {
        throw error;
      }
      // A store replaced under an unlocked session: the error also names the
      // session's own login, which is still in RAM.
      throw new CliError(error.message, {
        hints: [
          `the RAM copy still has this session's login and was kept: ${this.ramCopy}`,
          `to save it to a new store: ${
            moveAside(this.config.store)
          }, then run secure-codex again`,
          ...error.hints,
        ],
        exitCode: error.exitCode,
      });
    }
    mark("decrypt");
    const ramRefresh = options.ramCopy?.lastRefresh ?? null;
    if (isOlder(decrypted.lastRefresh, ramRefresh)) {
      warn(
        `the store holds older tokens than this session's RAM copy; kept the RAM copy: ${this.config.store}`,
        [
          `the store's tokens were refreshed at ${decrypted.lastRefresh}, the RAM copy's at ${ramRefresh}; a restored backup or another machine's copy may hold a spent refresh token`,
          `to save the RAM copy's tokens to a new store: ${
            moveAside(this.config.store)
          }, then run secure-codex again`,
          `to use the store's tokens anyway: ${
            this.command("--cleanup --force")
          }, then run secure-codex again`,
        ],
      );
      return;
    }
    await this.#install(ciphertext, decrypted, recipients);
  }

  /**
   * Decrypts the store inside the worker and keeps the plaintext there for
   * `install`. Fails fast, without running age, when a passphrase is needed
   * and there is no terminal to ask on.
   */
  async decryptStore(ciphertext: Uint8Array): Promise<DecryptResult> {
    return await this.#decrypt(ciphertext);
  }

  async #decrypt(ciphertext: Uint8Array) {
    const header = parseStoreHeader(ciphertext);
    if (header === null) {
      throw new CliError(
        `store is not an age-encrypted file: ${this.config.store}`,
        {
          hints: [
            "the file is damaged or was not made by age",
            "restore it from a backup, or move it aside and create a new store from a fresh codex login (README, Set up)",
          ],
        },
      );
    }
    if (header.passphrase && !hasTerminal()) {
      throw new CliError(
        `the store is passphrase-encrypted and there is no terminal to ask for the passphrase: ${this.config.store}`,
        { hints: nonInteractiveHints(this) },
      );
    }
    if (!header.passphrase && this.config.identities.length === 0) {
      throw new CliError(
        `no identity to decrypt the store: ${this.config.store}`,
        {
          hints: [
            "pass the age identity file with --identity PATH or set SECURE_CODEX_IDENTITY",
          ],
        },
      );
    }
    try {
      // age rejects -i for a passphrase-encrypted file.
      return await this.worker().decrypt(
        this.config.store,
        header.passphrase ? [] : this.config.identities,
      );
    } catch (error) {
      if (!(error instanceof WorkerError)) throw error;
      throw new CliError(
        `cannot decrypt the store: ${this.config.store}: ${error.message}`,
        {
          hints: error.message.startsWith(
              "decrypted store is not a codex auth.json",
            )
            ? [
              "the store must contain a codex auth.json: restore it from a backup, or create a new store from a fresh codex login (README, Set up)",
            ]
            : header.passphrase
            ? [
              "enter the passphrase the store was encrypted with, on a terminal",
            ]
            : error.message.endsWith(NO_TERMINAL_REASON)
            ? nonInteractiveHints(this)
            : error.message.endsWith(WRONG_PASSPHRASE_REASON)
            ? [
              `enter the passphrase of the identity file, on a terminal: ${
                this.config.identities.join(", ")
              }`,
            ]
            : error.message.endsWith(DAMAGED_FILE_REASON)
            ? [
              "restore the store from a backup, or move it aside and create a new store from a fresh codex login (README, Set up)",
            ]
            : error.message.includes("age not found on PATH")
            ? [
              "install age (Debian and Ubuntu: apt-get install age), see README, Requirements",
            ]
            : [
              `check that the identity files are the ones the store was encrypted to: ${
                this.config.identities.join(", ")
              }`,
              pathExists(`${this.config.store}.recipients`)
                ? `age-keygen -y FILE prints an identity's public key; the store was last saved to those in ${this.config.store}.recipients`
                : "age-keygen -y FILE prints an identity's public key, to compare with the one you encrypted to",
            ],
        },
      );
    }
  }

  async #install(
    ciphertext: Uint8Array,
    decrypted: { sha256: string; lastRefresh: string | null },
    recipients?: Promise<string[]>,
  ): Promise<void> {
    let fingerprint: string;
    try {
      fingerprint = await this.withCodexLock(() =>
        this.worker().install(this.ramDir)
      );
    } catch (error) {
      if (!(error instanceof WorkerError)) throw error;
      throw new CliError(
        `cannot unlock into the RAM directory: ${this.ramDir}: ${error.message}`,
        {
          hints: [
            "free space in the RAM directory's filesystem, then run again",
          ],
        },
      );
    }
    this.writeState(
      await this.createState(
        ciphertext,
        decrypted.sha256,
        fingerprint,
        decrypted.lastRefresh,
        recipients,
      ),
    );
  }

  /**
   * Builds a fresh state for a store (null when none exists yet) and a RAM
   * copy, with the identity recipients of this run.
   */
  async createState(
    ciphertext: Uint8Array | null,
    plaintextSha256: string,
    plaintextFingerprint: string,
    lastRefresh: string | null,
    recipients: Promise<string[]> = this.#findRecipients(),
  ): Promise<SessionState> {
    return {
      version: 1,
      codexHome: this.config.codexHome,
      store: this.config.store,
      storeSha256: ciphertext === null ? null : await sha256Hex(ciphertext),
      plaintextSha256,
      plaintextFingerprint,
      lastRefresh,
      recipients: await recipients,
      passphrase: ciphertext !== null &&
        parseStoreHeader(ciphertext)?.passphrase === true,
      unlockedAt: new Date().toISOString(),
      ttlSeconds: shorterTtl(
        this.config.ttlSeconds ?? 0,
        this.#takeLockedTtl(),
      ),
      lastWriteBackAt: null,
    };
  }

  /**
   * Fills in recipients a session was unlocked without, from the identity
   * files of this run, so a later run with a `# public key:` line can save
   * what the first one could not. Costs a worker only in that case.
   */
  async #refreshRecipients(): Promise<void> {
    const state = this.readState();
    if (state === null || state.recipients.length > 0) return;
    if (this.config.identities.length === 0) return;
    const recipients = await this.#findRecipients();
    if (recipients.length > 0) this.writeState({ ...state, recipients });
  }

  /** Reads the recipients written as comments into this run's identity files. */
  async findIdentityRecipients(): Promise<string[]> {
    return await this.#findRecipients();
  }

  async #findRecipients(): Promise<string[]> {
    if (this.config.identities.length === 0) return [];
    try {
      return await this.worker().recipients(this.config.identities);
    } catch (error) {
      if (!(error instanceof WorkerError)) throw error;
      warn(`cannot read recipients from the identity files: ${error.message}`);
      return [];
    }
  }

  /**
   * Removes temp files a killed run left behind. Runs under the session lock
   * and codex's auth.lock, so no writer of these files is active.
   */
  async #removeStaleTempFiles(): Promise<void> {
    await this.withCodexLock(() => {
      for (const entry of Deno.readDirSync(this.ramDir)) {
        // Filesystem-record temp files are left alone: ensureRamDir writes
        // them outside the session lock, so one may belong to a live run.
        const stale = entry.name.startsWith(".auth-") ||
          (entry.name.startsWith("session.json.") &&
            entry.name.endsWith(".tmp"));
        if (stale) Deno.removeSync(join(this.ramDir, entry.name));
      }
      return Promise.resolve();
    });
    // Temp files sit next to the file a symlinked store names.
    const storeTarget = followLink(this.config.store);
    const storeDir = dirname(storeTarget);
    const prefix = `.${basename(storeTarget)}.`;
    try {
      for (const entry of Deno.readDirSync(storeDir)) {
        if (
          entry.isFile && entry.name.startsWith(prefix) &&
          entry.name.endsWith(".tmp")
        ) {
          Deno.removeSync(join(storeDir, entry.name));
        }
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }

  /**
   * Repairs the link if a program replaced it with a regular file while this
   * session existed: the file is adopted as the RAM copy when it is valid and
   * newer, removed from disk, and the link is restored. The caller holds the
   * session lock; the next write-back saves an adopted copy to the store.
   * With `whileCodexRuns`, an invalid file changed in the last two seconds is
   * left for a later check, because a writer that does not rename may still
   * be filling it. The check after codex exits reports it.
   */
  async repairReplacedLink(whileCodexRuns = false): Promise<void> {
    if (lstatOrNull(this.linkPath)?.isFile !== true) return;
    if (this.readState() === null) return;
    let adopted = false;
    let result: AdoptResult;
    try {
      result = await this.withCodexLock(async () => {
        const found = await this.worker().adopt(this.linkPath);
        if (!found.valid) return found;
        const current = await this.worker().snapshot(this.ramDir);
        const newer = !current.present || !current.valid ||
          (current.sha256 !== found.sha256 &&
            !isOlder(found.lastRefresh, current.lastRefresh));
        if (newer) {
          // install writes the adopted bytes, which adopt left pending in the
          // worker; the snapshot above used a separate buffer.
          await this.worker().install(this.ramDir);
          adopted = true;
        }
        const now = lstatOrNull(this.linkPath);
        if (now === null || fingerprintOf(now) !== found.fingerprint) {
          throw new WorkerError("the file changed while it was read");
        }
        Deno.removeSync(this.linkPath);
        ensureLink(this.linkPath, this.ramCopy, this.config.store);
        return found;
      });
    } catch (error) {
      if (!(error instanceof WorkerError)) throw error;
      warn(
        `cannot repair the auth.json link: ${this.linkPath}: ${error.message}`,
        [
          "a plaintext auth.json is on disk there; move it away and run secure-codex again",
        ],
      );
      return;
    }
    if (!result.valid) {
      const modified = lstatOrNull(this.linkPath)?.mtime?.getTime() ?? 0;
      if (whileCodexRuns && Date.now() - modified < RECENT_WRITE_MS) return;
      warn(
        `a regular file replaced the auth.json link: ${this.linkPath} (${result.reason})`,
        [
          "it is not a valid auth.json, so secure-codex left it in place; check it, delete it securely if it holds tokens, then run secure-codex again",
        ],
      );
      return;
    }
    warn(
      `plaintext auth.json was written to disk, replacing the link: ${this.linkPath}`,
      [
        adopted
          ? "its tokens were newer and now are the RAM copy, which is saved to the store next"
          : "its tokens were not newer than the RAM copy",
        "secure-codex removed the file and restored the link",
        "the plaintext may survive in disk blocks, backups or snapshots of that filesystem",
      ],
    );
  }

  /**
   * Writes back a final time and, unless `keep`, removes the RAM copy when
   * this is the last process using the session.
   */
  async leave(keep: boolean): Promise<void> {
    if (keep || lstatOrNull(this.ramDir) === null) {
      reportWriteBack(
        this,
        await this.writeBackIfPresent({ force: false, interactive: true }),
      );
      return;
    }
    await this.#locked(async () => {
      await this.repairReplacedLink();
      const outcome = await writeBack(this, {
        force: false,
        interactive: true,
      });
      reportWriteBack(this, outcome);
      const users = this.#users;
      this.#users = null;
      const last = users === null ? true : users.tryLockSync(true);
      users?.close();
      if (!last) return;
      const notInStore = await this.#notInStore(outcome);
      if (notInStore !== null) {
        warn(`kept the RAM copy because ${notInStore}: ${this.ramCopy}`);
        return;
      }
      this.#removeFiles();
    });
  }

  /**
   * Tells why the store may not hold the RAM copy's tokens after a
   * write-back, or null when removing the copy loses nothing. An unchanged
   * copy is in the store only while the store is the one this session last
   * read or wrote. After a restored backup or another key's store, the RAM
   * copy may be the only copy of its tokens.
   */
  async #notInStore(outcome: WriteBackOutcome): Promise<string | null> {
    if (outcome.status === "saved" || outcome.status === "absent") return null;
    if (outcome.status !== "unchanged") return "it is not saved in the store";
    const state = this.readState();
    const ciphertext = readStore(this.config.store, this.config.uid);
    if (state === null || ciphertext === null) {
      return `the store it was saved to is missing (${this.config.store})`;
    }
    if (await sha256Hex(ciphertext) !== state.storeSha256) {
      return "the store changed since this session last saved it, so the RAM copy may hold the only copy of its tokens";
    }
    return null;
  }

  /**
   * Links auth.json into RAM again when codex removed it during a run that
   * did not end in a logout, so a plain codex login afterwards writes into
   * RAM and never into the codex home on disk. Returns true when it did.
   */
  relinkIfRemoved(): boolean {
    // One lstat, since this runs at the end of every codex start.
    if (lstatOrNull(this.linkPath) !== null) return false;
    ensureLink(this.linkPath, this.ramCopy, this.config.store);
    warn(`codex removed auth.json during this run: ${this.linkPath}`, [
      "the store still has the login, and auth.json links into RAM again, so a plain codex login cannot write tokens to disk",
      `if codex logged out, end the login with: ${this.command("-- logout")}`,
    ]);
    return true;
  }

  /**
   * Finishes a logout codex started: codex 0.171 revokes the refresh token
   * and unlinks only the link, so the revoked tokens would stay in the RAM
   * copy and the store. Removes both and recreates the link, dangling, so a
   * later login through plain codex still writes into RAM. The recipients
   * file beside the store stays, for the next login. Returns false, and
   * removes nothing, when the link is still there (codex did not log out).
   */
  async finishLogout(): Promise<boolean> {
    if (lstatOrNull(this.linkPath) !== null) return false;
    const removedStore = await this.withLock(async () => {
      let removed = false;
      if (lstatOrNull(this.config.store) !== null) {
        await Deno.remove(this.config.store);
        await syncDirectory(dirname(this.config.store));
        removed = true;
      }
      this.#users?.close();
      this.#users = null;
      this.#removeFiles();
      ensureLink(this.linkPath, this.ramCopy, this.config.store);
      return removed;
    });
    notice(
      removedStore
        ? `codex logged out: removed the store ${this.config.store}`
        : `codex logged out: there was no store at ${this.config.store}`,
    );
    notice(
      `left ${this.linkPath} as a dangling link into RAM, so a new login never reaches the disk`,
    );
    return true;
  }

  /**
   * Locks the session if it was unlocked more than `ttlSeconds` ago: saves a
   * changed RAM copy, then removes it, as `--lock` does. A session in use by
   * a running secure-codex, or whose RAM copy cannot be saved, is left
   * unlocked. Returns true when it locked. `interactive` allows a
   * passphrase prompt for the save.
   */
  async lockIfExpired(
    ttlSeconds: number,
    options: { interactive: boolean; now?: Date },
  ): Promise<boolean> {
    let ttl = Infinity;
    const expired = (state: SessionState | null) => {
      if (state === null) return false;
      // The shorter of this run's TTL and the one recorded at unlock applies.
      ttl = shorterTtl(ttlSeconds, state.ttlSeconds ?? 0) || Infinity;
      return (options.now ?? new Date()).getTime() -
          Date.parse(state.unlockedAt) >= ttl * 1000;
    };
    if (ttlSeconds <= 0 && lstatOrNull(this.ramCopy) === null) return false;
    if (!expired(this.readState()) || lstatOrNull(this.ramCopy) === null) {
      return false;
    }
    return await this.withLock(async () => {
      const state = this.readState();
      if (!expired(state)) return false;
      const users = tryLockFile(join(this.ramDir, "users.lock"), true);
      if (users === null) return false;
      try {
        await this.repairReplacedLink();
        const outcome = await writeBack(this, {
          force: false,
          interactive: options.interactive,
        });
        reportWriteBack(this, outcome);
        const notInStore = await this.#notInStore(outcome);
        if (notInStore !== null) {
          warn(
            `the session's time to live has passed, but it stays unlocked because ${notInStore}: ${this.ramCopy}`,
          );
          return false;
        }
        notice(
          `locked the session: it was unlocked more than ${
            formatDuration(ttl)
          } ago, the time to live that applies`,
        );
        this.#removeFiles();
        // The next unlock, by this process or another, keeps the session's
        // TTL, so a TTL set with --unlock --ttl limits every session after it.
        const recordedTtl = state?.ttlSeconds ?? 0;
        if (recordedTtl > 0) {
          Deno.writeTextFileSync(
            join(this.ramDir, LOCKED_TTL_FILE),
            `${recordedTtl}\n`,
            { mode: 0o600 },
          );
        }
        return true;
      } finally {
        users.close();
      }
    });
  }

  /**
   * Makes every later write-back put the link back if it is missing, for a
   * codex login that deletes auth.json before it writes the new one.
   */
  restoreLinkWhileRunning(): void {
    this.#restoreLink = true;
  }

  /**
   * Records a time to live for an unlocked session, counted from its unlock,
   * and prints a notice when it changes. With `replace` (`--unlock --ttl`)
   * the TTL replaces the recorded one, and 0 removes it. Otherwise the
   * shorter of the two applies, so a standing default never lengthens a
   * session. Returns the TTL now recorded.
   */
  async recordTtl(
    ttlSeconds: number,
    options: { replace: boolean },
  ): Promise<number> {
    return await this.withLock(() => {
      const state = this.readState();
      if (state === null) return Promise.resolve(0);
      const recorded = state.ttlSeconds ?? 0;
      const next = options.replace
        ? ttlSeconds
        : shorterTtl(recorded, ttlSeconds);
      if (recorded !== next) {
        this.writeState({ ...state, ttlSeconds: next });
        if (recorded > 0) {
          notice(
            `replaced the session's time to live of ${
              formatDuration(recorded)
            } with ${next > 0 ? formatDuration(next) : "none"}`,
          );
        }
      }
      return Promise.resolve(next);
    });
  }

  /**
   * Stops counting this process as a user of the session, for `--unlock`,
   * which leaves the session unlocked for programs that run codex themselves.
   */
  release(): void {
    this.#users?.close();
    this.#users = null;
  }

  /** Saves a changed RAM copy, then removes the RAM directory; the link is left dangling. */
  async cleanup(force: boolean): Promise<void> {
    this.#checkNoOtherLinkedCopy();
    if (lstatOrNull(this.ramDir) === null) {
      notice(`nothing to clean up: ${this.ramDir} does not exist`);
      return;
    }
    await this.withLock(async () => {
      const users = tryLockFile(join(this.ramDir, "users.lock"), true);
      if (users === null) {
        throw new CliError(
          `codex is still running with this session: ${this.ramDir}`,
          {
            hints: [
              `exit those codex sessions first, then run ${
                this.command("--cleanup")
              } again`,
            ],
          },
        );
      }
      try {
        await this.repairReplacedLink();
        await this.#removeStaleTempFiles();
        if (lstatOrNull(this.ramCopy) !== null) {
          await this.#refreshRecipients();
          await this.#saveBeforeRemoval(force);
        }
        this.#removeFiles();
      } finally {
        users.close();
      }
    });
    const link = inspectLink(this.linkPath, this.ramCopy);
    if (link.kind === "ours") {
      notice(
        `left ${this.linkPath} as a dangling link, so codex cannot write tokens to disk`,
      );
    }
  }

  /**
   * Returns the TTL of the session that the last TTL lock ended and removes
   * its record; 0 when there is none. A cleanup removes the record too, so an
   * explicit lock ends the TTL with the session.
   */
  #takeLockedTtl(): number {
    const path = join(this.ramDir, LOCKED_TTL_FILE);
    let text: string;
    try {
      text = new TextDecoder().decode(Deno.readFileSync(path));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return 0;
      throw error;
    }
    Deno.removeSync(path);
    const seconds = Number.parseInt(text, 10);
    return Number.isSafeInteger(seconds) && seconds > 0 ? seconds : 0;
  }

  /**
   * Points a link into the RAM directory of an ended session, as switching
   * between `--ram-dir` and the default leaves one, at this session's RAM
   * copy: nothing is stored behind the old target. The link is replaced by a
   * rename, never removed, so if this unlock fails a later plain `codex
   * login` still writes into RAM. Returns false, changing nothing, for any
   * other link or while that session is being unlocked.
   */
  #replaceEndedSessionLink(): boolean {
    const endedRamDir = endedSessionRamDir(
      this.linkPath,
      inspectLink(this.linkPath, this.ramCopy),
    );
    if (endedRamDir === null) return false;
    // A RAM directory with another store's session must not receive this
    // home's link, or codex would run on that store's tokens.
    const recorded = this.readState();
    if (recorded !== null && !isSameFile(recorded.store, this.config.store)) {
      return false;
    }
    const lock = tryLockFile(join(endedRamDir, "session.lock"), true);
    if (lock === null) return false;
    try {
      // Checked again under that session's lock, which an unlock holds.
      const state = inspectLink(this.linkPath, this.ramCopy);
      if (endedSessionRamDir(this.linkPath, state) !== endedRamDir) {
        return false;
      }
      const temp = `${this.linkPath}.${crypto.randomUUID().slice(0, 8)}.link`;
      Deno.symlinkSync(this.ramCopy, temp);
      try {
        Deno.renameSync(temp, this.linkPath);
      } catch (error) {
        Deno.removeSync(temp);
        throw error;
      }
    } finally {
      lock.close();
    }
    notice(
      `replaced the auth.json link into the RAM directory of an ended session: ${endedRamDir}`,
    );
    return true;
  }

  /**
   * Rejects a cleanup while the link leads to a RAM copy in another
   * session's RAM directory. This cleanup cannot remove that copy, and after
   * a cleanup the user expects no plaintext behind the link.
   */
  #checkNoOtherLinkedCopy(): void {
    const state = inspectLink(this.linkPath, this.ramCopy);
    const otherRamDir = linkedRamDir(this.linkPath, state);
    if (otherRamDir === null) return;
    if (lstatOrNull(join(otherRamDir, "auth.json")) === null) return;
    throw new CliError(
      `auth.json links to a RAM copy in another session's RAM directory: ${this.linkPath} -> ${
        state.kind === "elsewhere" ? state.target : ""
      }`,
      {
        hints: [
          `this command acts on ${this.ramDir} only, so it changed nothing`,
          `to save and remove that copy: ${
            this.command(
              "--cleanup",
              this.readState(otherRamDir)?.store ?? this.config.store,
              otherRamDir,
            )
          }`,
        ],
      },
    );
  }

  /**
   * Saves the RAM copy before a cleanup removes it. Without `force`, a copy
   * that cannot be saved (or whose state is unknown) stops the cleanup.
   */
  async #saveBeforeRemoval(force: boolean): Promise<void> {
    let problem: string;
    let fix = [
      `fix the problem above and run ${
        this.command("--cleanup")
      } again, so the tokens are saved first`,
    ];
    if (this.readState() === null) {
      const snapshot = await this.#snapshot();
      if (!snapshot.present) return;
      // Not even JSON, so removing it loses no login.
      if (!snapshot.valid && isUnparseable(snapshot.reason)) return;
      problem = `cannot tell whether the RAM copy is saved: ${this.ramCopy}`;
      fix = snapshot.valid
        ? [
          `the session state is missing, and a start records it again: ${
            this.command("-- login status")
          }`,
          `then run the cleanup again: ${this.command("--cleanup")}`,
        ]
        : [
          `it is not an auth.json this program knows (${snapshot.reason}), so it cannot be saved; check what it contains`,
        ];
    } else {
      let outcome: WriteBackOutcome;
      try {
        outcome = await writeBack(this, { force: false, interactive: true });
      } catch (error) {
        if (!(error instanceof CliError)) throw error;
        outcome = { status: "failed", reason: error.message };
      }
      reportWriteBack(this, outcome);
      if (outcome.status === "saved") {
        notice(
          `saved the changed RAM copy to the store: ${
            this.readState()?.store ?? this.config.store
          }`,
        );
      }
      if (outcome.status === "invalid" && isUnparseable(outcome.reason)) {
        // Not even JSON, so removing it loses no login; the caller removes it.
        return;
      }
      const notInStore = await this.#notInStore(outcome);
      if (notInStore === null) return;
      problem = outcome.status === "unchanged"
        ? `cannot remove the RAM copy, because ${notInStore}: ${this.ramCopy}`
        : `the RAM copy is not saved in the store: ${this.ramCopy}`;
      if (outcome.status === "unchanged") {
        fix = [
          `to save it to a new store: ${
            pathExists(this.config.store)
              ? `${moveAside(this.config.store)}, then `
              : ""
          }run ${this.command("-- login status")}`,
        ];
      }
    }
    if (!force) {
      throw new CliError(problem, {
        hints: [
          ...fix,
          `or run ${
            this.command("--cleanup --force")
          } to remove the RAM copy without saving it`,
        ],
      });
    }
    warn(`${problem}: removing it anyway because --force was given`, [
      "tokens that were only in RAM are lost; if the store's tokens stop working, log in again",
    ]);
  }

  /**
   * Removes the RAM copy, the state and any temp files. The directory, its
   * empty lock files and its filesystem record stay, so a process waiting on a lock keeps a valid inode
   * and a process starting at this moment never races an rmdir.
   */
  #removeFiles(): void {
    const hadCopy = lstatOrNull(this.ramCopy) !== null;
    for (const entry of Deno.readDirSync(this.ramDir)) {
      if (KEPT_FILES.has(entry.name)) continue;
      Deno.removeSync(join(this.ramDir, entry.name), { recursive: true });
    }
    if (hadCopy) notice(`removed the RAM copy: ${this.ramCopy}`);
    else notice(`nothing to clean up: no RAM copy in ${this.ramDir}`);
  }
}

/** Written by a TTL lock in the RAM directory: the TTL the next unlock keeps. */
const LOCKED_TTL_FILE = "locked-ttl";

const KEPT_FILES = new Set(["session.lock", "users.lock", VERIFIED_MARKER]);

/** Builds the command that moves a store aside, keeping its `.age` suffix. */
function moveAside(store: string): string {
  return `mv ${shellQuote(store)} ${shellQuote(asidePath(store))}`;
}

/** Builds what to do instead of a passphrase prompt when no terminal exists. */
function nonInteractiveHints(session: Session): string[] {
  return [
    "run the command once on a terminal; the session then stays unlocked (SECURE_CODEX_KEEP=true) for later runs without one",
    `or encrypt the store to an age identity file without a passphrase: ${
      session.command("--rekey --recipients-file FILE --identity PATH")
    }, then pass --identity PATH`,
  ];
}

/**
 * Tells whether two paths name the same file, following symlinks, so a codex
 * home reached through a symlink and by its real path share one session. A
 * path to a missing file matches only the same spelling.
 */
function isSameFile(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return Deno.realPathSync(a) === Deno.realPathSync(b);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** Tells whether a path exists, without following a symlink there. */
function pathExists(path: string): boolean {
  return lstatOrNull(path) !== null;
}

/**
 * Builds the error for a missing store, with the ways to create one.
 *
 * @example
 * ```ts
 * throw storeNotFound("/home/me/.codex/auth.json.age", session);
 * ```
 */
export function storeNotFound(
  store: string,
  session: { command(action: string): string },
): CliError {
  return new CliError(`store not found: ${store}`, {
    hints: [
      "pass the encrypted auth.json with --auth-enc PATH or SECURE_CODEX_AUTH_ENC, or set store in the config file",
      `to create one, log in with ${
        session.command("-- login")
      } (the tokens never touch disk)`,
      `or encrypt an existing plaintext auth.json in the codex home with ${
        session.command("--import")
      }`,
    ],
  });
}

/** The problems already reported, per session: `--watch` runs several. */
const reported = new WeakMap<Session, Set<string>>();

/**
 * Lets the next write-back report its problems again, even those already
 * reported. Called when codex exits: a warning printed while codex ran may
 * have been drawn over by its full-screen interface.
 *
 * @example
 * ```ts
 * repeatReports(session);
 * await session.leave(false);
 * ```
 */
export function repeatReports(session: Session): void {
  reported.delete(session);
}

/** The failure reason of a write-back whose age prompt Ctrl-C ended. */
const AGE_INTERRUPTED = "age failed (killed by SIGINT)";

/** Names the fix for a failed store write from the system error in its reason. */
function failureFix(reason: string, store: string): string {
  // Deno's file errors end with the path they concern, such as
  // "open '/run/user/1000/...'": the failure may be in the RAM directory.
  const named = /: [a-z]+ '([^']+)'/.exec(reason)?.[1];
  const directory = shellQuote(
    dirname(named === undefined ? followLink(store) : named),
  );
  if (reason.includes("No space left on device")) {
    return `free space on the filesystem of ${directory}`;
  }
  if (reason.includes("Disk quota exceeded")) {
    return `free space within your disk quota on ${directory}`;
  }
  if (reason.includes("Permission denied")) {
    return `make ${directory} writable for you`;
  }
  if (reason.includes("Read-only file system")) {
    return `remount the filesystem of ${directory} read-write`;
  }
  return "fix the problem this warning names";
}

/**
 * Prints what a write-back did, once per kind of problem per process, so a
 * burst of watch events does not repeat the same warning.
 *
 * @example
 * ```ts
 * reportWriteBack(session, { status: "no-recipients" });
 * ```
 */
export function reportWriteBack(
  session: Session,
  outcome: WriteBackOutcome,
): void {
  if (
    outcome.status === "saved" || outcome.status === "unchanged" ||
    outcome.status === "absent"
  ) {
    reported.delete(session);
    return;
  }
  if (outcome.status === "failed" && outcome.reason.includes(AGE_INTERRUPTED)) {
    session.promptInterrupted = true;
  }
  let seen = reported.get(session);
  if (seen === undefined) reported.set(session, seen = new Set());
  if (seen.has(outcome.status)) return;
  seen.add(outcome.status);
  const { store } = session.config;
  switch (outcome.status) {
    case "deferred":
    case "still-writing":
      // Expected while codex runs; the write-back after it exits reports.
      break;
    case "locks-out":
      if (outcome.reason === NO_IDENTITY_TO_CHECK) {
        warn(
          `refreshed tokens are not saved: the recipients in ${outcome.recipientsFile} differ from the store's, and no identity was given to check that one of them can decrypt the new store`,
          [
            `the store is unchanged and the tokens stay in RAM at ${session.ramCopy}`,
            `to save them, run with an identity for one of the new recipients: ${
              session.command("")
            } --recipients-file ${
              shellQuote(outcome.recipientsFile)
            } --identity PATH -- login status`,
            "or change the recipients with --rekey (README, Recipients)",
          ],
        );
        break;
      }
      warn(
        `refreshed tokens are not saved: this run's identities cannot decrypt a store encrypted to ${outcome.recipientsFile}: ${outcome.reason}`,
        [
          `the store is unchanged and the tokens stay in RAM at ${session.ramCopy}`,
          `add the public key of one of the identities (${
            session.config.identities.join(", ")
          }) to ${outcome.recipientsFile}, or pass the recipients file that has it, then run ${
            session.command("-- login status")
          }`,
        ],
      );
      break;
    case "needs-terminal":
      warn(
        `refreshed tokens are not saved: the store is passphrase-encrypted and there is no terminal for age's prompt: ${store}`,
        [
          `they stay in RAM at ${session.ramCopy}`,
          `to save them, run on a terminal: ${session.command("--cleanup")}`,
          `to save without a passphrase in future, re-encrypt the store to an identity: ${
            session.command("--rekey --recipients-file FILE --identity PATH")
          }`,
        ],
      );
      break;
    case "no-recipients":
      warn(`refreshed tokens cannot be saved: no recipients for ${store}`, [
        `they stay in RAM only, at ${session.ramCopy}, and are lost at reboot`,
        'pass --recipients-file PATH, or an identity file with a "# public key:" line',
      ]);
      break;
    case "conflict":
      warn(`the store was changed by another program since unlock: ${store}`, [
        `the tokens in RAM were not written over it; they stay at ${session.ramCopy}`,
        `to keep the RAM tokens: ${
          moveAside(store)
        }, then run secure-codex again, which saves them to a new store`,
      ]);
      break;
    case "older":
      warn(
        `the RAM copy holds older tokens than the store; not saved: ${session.ramCopy}`,
        [
          "the store keeps its newer tokens, and codex uses the RAM copy until it is removed",
          `to use the store's tokens: ${
            session.command("--cleanup --force")
          }, then run secure-codex again`,
        ],
      );
      break;
    case "invalid":
      warn(
        `the RAM copy is not a valid auth.json (${outcome.reason}); not saved: ${session.ramCopy}`,
        isUnparseable(outcome.reason) && pathExists(store)
          ? [
            "codex cannot read it either; the next secure-codex start replaces it with the store's login",
          ]
          : [
            `check it; if it holds no login, remove it with: ${
              session.command("--cleanup --force")
            }`,
          ],
      );
      break;
    case "gone":
      warn(`the RAM directory was removed while codex ran: ${session.ramDir}`, [
        "tokens refreshed after that could not be saved, and the link now dangles",
        "systemd removes /run/user/<uid> when your last login session ends; run `loginctl enable-linger` to keep it",
        `run ${session.command("--unlock")} to unlock from the store again`,
      ]);
      break;
    case "failed":
      warn(`write-back failed: ${store}: ${outcome.reason}`, [
        `the old store is unchanged and the tokens stay in RAM at ${session.ramCopy}`,
        outcome.reason.includes(AGE_INTERRUPTED)
          ? `the passphrase prompt was interrupted; to save them, run ${
            session.command("-- login status")
          } on a terminal and type the passphrase`
          : `${failureFix(outcome.reason, store)}, then run ${
            session.command("-- login status")
          }, which saves them before codex starts`,
      ]);
      break;
  }
}
