/**
 * Write-back: encrypting a changed RAM copy back into the store.
 *
 * Invariants:
 * - The store is replaced only by ciphertext of a valid auth.json that differs
 *   from what the store holds, never by tokens older than the store's.
 * - A store changed by someone else since this session last saw it is never
 *   written over.
 * - Only the worker reads the plaintext. This module handles fingerprints,
 *   hashes and ciphertext.
 *
 * @module
 */

import type { EncryptionTarget } from "./age.ts";
import { CliError, hasTerminal, notice, warn } from "./output.ts";
import {
  besideRecipientsPath,
  readRecipientsFile,
  rememberRecipients,
  type ResolvedRecipients,
} from "./recipients.ts";
import { completeWrite, type PendingWrite, type Session } from "./session.ts";
import { isOlderThanStore } from "./auth_json.ts";
import { fingerprintOf, sha256Hex } from "./fingerprint.ts";
import { readStore, replaceStore } from "./store.ts";
import { WorkerError } from "./worker.ts";

/** The result of one write-back attempt. */
export type WriteBackOutcome =
  | { status: "saved" }
  | { status: "unchanged" }
  | { status: "absent" }
  | { status: "gone" }
  | { status: "no-recipients" }
  | { status: "deferred" }
  | { status: "still-writing" }
  | { status: "needs-terminal" }
  | { status: "conflict" }
  | { status: "older" }
  | { status: "invalid"; reason: string }
  | { status: "failed"; reason: string }
  | { status: "locks-out"; recipientsFile: string; reason: string };

/**
 * How long a file that is not a valid auth.json counts as still being
 * written, while codex runs, before it is reported.
 */
export const RECENT_WRITE_MS = 2000;

/** The options of one write-back. */
export interface WriteBackOptions {
  /** Write an unchanged copy too (used when the store is missing). */
  force: boolean;
  /**
   * codex is not running, so age may ask for a passphrase on the terminal.
   * Without it, a passphrase-encrypted store is left for a later write-back.
   */
  interactive?: boolean;
}

/**
 * Writes the RAM copy back to the store if it changed since the session last
 * synchronised. The caller holds the session lock.
 *
 * @example
 * ```ts
 * const outcome = await session.writeBackIfPresent({ force: false });
 * console.log(outcome.status);
 * ```
 */
export async function writeBack(
  session: Session,
  options: WriteBackOptions,
): Promise<WriteBackOutcome> {
  const recorded = session.readState();
  if (recorded === null) return { status: "absent" };
  const state = await session.settlePendingWrite(recorded);
  // A stat on tmpfs: synchronous, since most calls end right here.
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(session.ramCopy);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { status: "absent" };
    throw error;
  }
  if (!options.force && fingerprintOf(info) === state.plaintextFingerprint) {
    return { status: "unchanged" };
  }

  const worker = session.worker();
  let snapshot;
  try {
    snapshot = await session.withCodexLock(() =>
      worker.snapshot(session.ramDir)
    );
  } catch (error) {
    // A copy that cannot be read may contain the newest tokens, so it is a
    // failure, never "invalid": a start replaces an invalid copy.
    if (error instanceof WorkerError) {
      return {
        status: "failed",
        reason: `cannot read the RAM copy: ${error.message}`,
      };
    }
    throw error;
  }
  if (!snapshot.present) return { status: "absent" };
  if (!snapshot.valid) {
    // While codex runs, a tool that writes through the link in place may
    // still be filling the copy; the write-back after codex exits reports it.
    const modified = info.mtime?.getTime() ?? 0;
    if (!options.interactive && Date.now() - modified < RECENT_WRITE_MS) {
      return { status: "still-writing" };
    }
    return { status: "invalid", reason: snapshot.reason };
  }
  if (!options.force && snapshot.sha256 === state.plaintextSha256) {
    session.writeState({
      ...state,
      plaintextFingerprint: snapshot.fingerprint,
    });
    return { status: "unchanged" };
  }
  // NOTE: while the store's time is ahead of this clock, an older copy put
  // in RAM by hand is saved too.
  if (isOlderThanStore(snapshot.lastRefresh, state.lastRefresh)) {
    return { status: "older" };
  }

  const current = readStore(state.store, session.config.uid);
  const currentSha256 = current === null ? null : await sha256Hex(current);
  if (currentSha256 !== null && currentSha256 !== state.storeSha256) {
    return { status: "conflict" };
  }

  let resolved: ResolvedRecipients;
  try {
    // A passphrase store stays one: the identities a user happens to have
    // configured do not silently replace its passphrase. Only a recipients
    // file (a flag, or one beside the store from a rekey) changes that.
    resolved = session.recipientsFor(state.passphrase ? [] : state.recipients);
  } catch (error) {
    if (error instanceof CliError) {
      return { status: "failed", reason: error.message };
    }
    throw error;
  }
  const recipients = resolved.list;
  // Recipients other than the store's last ones: a file without the user's
  // own key would lock them out at the next unlock, so the new store must
  // decrypt with this run's identities before it replaces the old one. Only
  // then, because a plugin identity may ask for a touch each time.
  const newRecipients = resolved.source === "--recipients-file" &&
    !sameRecipients(recipients, recordedRecipients(state.store, session));
  const recipientsFile = resolved.path ?? "";
  if (
    newRecipients && session.config.identities.length === 0 && current !== null
  ) {
    // Without an identity nothing can be checked, so nothing is encrypted.
    return {
      status: "locks-out",
      recipientsFile,
      reason: NO_IDENTITY_TO_CHECK,
    };
  }
  let target: EncryptionTarget;
  if (recipients.length > 0) {
    target = { recipients };
  } else if (state.passphrase) {
    if (!options.interactive) return { status: "deferred" };
    if (!hasTerminal()) return { status: "needs-terminal" };
    notice(
      `the store is passphrase-encrypted: type a passphrase twice to save the refreshed tokens to ${state.store}`,
    );
    notice(
      "an empty passphrase makes age generate one and print it once: write it down, it is then the only way to open the store",
    );
    target = { passphrase: true };
  } else {
    return { status: "no-recipients" };
  }

  let ciphertext: Uint8Array;
  try {
    ciphertext = await worker.encrypt("snapshot", target);
  } catch (error) {
    if (error instanceof WorkerError) {
      return { status: "failed", reason: error.message };
    }
    throw error;
  }
  if (newRecipients && session.config.identities.length > 0) {
    const reason = await checkNewRecipients(session, ciphertext, recipients);
    if (reason !== null) return { status: "locks-out", recipientsFile, reason };
  }
  // Record the write before the rename: a process killed between the rename
  // and the final state write would otherwise leave a store that every later
  // run mistakes for a change by another program.
  const pending: PendingWrite = {
    storeSha256: await sha256Hex(ciphertext),
    plaintextSha256: snapshot.sha256,
    plaintextFingerprint: snapshot.fingerprint,
    lastRefresh: snapshot.lastRefresh ?? state.lastRefresh,
  };
  session.writeState({ ...state, pending });
  try {
    await replaceStore(state.store, ciphertext);
  } catch (error) {
    session.writeState({ ...state, pending: null });
    if (error instanceof CliError) {
      return { status: "failed", reason: error.message };
    }
    throw error;
  }
  session.writeState(completeWrite(state, pending));
  if ("recipients" in target) {
    try {
      await rememberRecipients(state.store, recipients, session.config.uid);
    } catch (error) {
      if (!(error instanceof CliError)) throw error;
      warn(error.message, [
        "the store was saved; later write-backs need --recipients-file or an identity with a public key line until this is fixed",
      ]);
    }
  }
  return { status: "saved" };
}

/** The reason a write-back to new recipients gives when the run has no identity. */
export const NO_IDENTITY_TO_CHECK = "no identity was given to check them";

/** Recipients that failed {@linkcode checkNewRecipients}, with the reason. */
const rejectedRecipients = new WeakMap<
  Session,
  { recipients: string; reason: string }
>();

/**
 * Test-decrypts a store encrypted to new recipients with this run's
 * identities. Returns why the new store would lock the user out, or null when
 * it decrypts. A failed list is not tried again in this process, so age does
 * not print the same error at every write-back.
 */
async function checkNewRecipients(
  session: Session,
  ciphertext: Uint8Array,
  recipients: readonly string[],
): Promise<string | null> {
  const { identities } = session.config;
  const key = recipients.join("\n");
  const rejected = rejectedRecipients.get(session);
  if (rejected?.recipients === key) return rejected.reason;
  let reason = "no identity matched any of the recipients";
  try {
    if (await session.worker().verify("snapshot", ciphertext, identities)) {
      return null;
    }
  } catch (error) {
    if (!(error instanceof WorkerError)) throw error;
    reason = error.message;
  }
  rejectedRecipients.set(session, { recipients: key, reason });
  return reason;
}

/** Reads the recipients the store was last written to, as recorded beside it. */
function recordedRecipients(store: string, session: Session): string[] {
  try {
    return readRecipientsFile(besideRecipientsPath(store), session.config.uid);
  } catch {
    // None recorded, or a record that cannot be read: the list counts as new.
    return [];
  }
}

function sameRecipients(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(b);
  return new Set(a).size === set.size &&
    a.every((recipient) => set.has(recipient));
}

/**
 * Watches the RAM directory while codex runs and writes back after every
 * change of `auth.json`. Events only trigger a comparison, because their kinds
 * vary between a rename and an in-place write.
 *
 * @example
 * ```ts
 * const watcher = WriteBackWatcher.start(session, (outcome) => console.log(outcome.status));
 * // ... codex runs ...
 * await watcher.stop();
 * ```
 */
export class WriteBackWatcher {
  #session: Session;
  #watcher: Deno.FsWatcher;
  #onOutcome: (outcome: WriteBackOutcome) => void;
  #running: Promise<void> | null = null;
  #again = false;
  #loop: Promise<void>;

  private constructor(
    session: Session,
    onOutcome: (outcome: WriteBackOutcome) => void,
  ) {
    this.#session = session;
    this.#onOutcome = onOutcome;
    // The codex home is watched for the link being replaced by a file.
    this.#watcher = Deno.watchFs([session.ramDir, session.config.codexHome], {
      recursive: false,
    });
    this.#loop = this.#listen();
  }

  /** Starts watching the session's RAM directory. */
  static start(
    session: Session,
    onOutcome: (outcome: WriteBackOutcome) => void,
  ): WriteBackWatcher {
    return new WriteBackWatcher(session, onOutcome);
  }

  async #listen(): Promise<void> {
    try {
      for await (const event of this.#watcher) {
        const relevant = event.paths.some((path) =>
          path === this.#session.ramCopy || path === this.#session.linkPath
        );
        if (relevant) this.trigger();
      }
    } catch {
      // The RAM directory went away (the end of the login session removes
      // /run/user/<uid>); the final write-back after codex exits reports it.
    }
  }

  /** Schedules a write-back; bursts of events collapse into one run plus one rerun. */
  trigger(): void {
    if (this.#running !== null) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        try {
          const outcome = await this.#session.writeBackIfPresent({
            force: false,
          });
          this.#onOutcome(outcome);
        } catch (error) {
          this.#onOutcome({
            status: "failed",
            reason: (error as Error).message,
          });
        }
      } while (this.#again);
      this.#running = null;
    })();
  }

  /** Stops watching and waits for a write-back in progress. */
  async stop(): Promise<void> {
    try {
      this.#watcher.close();
    } catch {
      // Already closed when the directory vanished.
    }
    await this.#loop;
    while (this.#running !== null) await this.#running;
  }
}
