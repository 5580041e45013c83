/**
 * Rekey: re-encrypting the store to a new set of recipients.
 *
 * The current store must decrypt first, which proves the login is intact. If
 * the session's RAM copy changed since it was last saved and is not older,
 * that newer copy is what gets encrypted, so no refresh is lost. When
 * identities are given, the new store must also decrypt with them before it
 * replaces the old one, so a mistyped recipients file cannot lock the user out.
 *
 * @module
 */

import { isOlder } from "./auth_json.ts";
import { CliError, notice, warn } from "./output.ts";
import { lstatOrNull } from "./ram_dir.ts";
import { readRecipientsFile, rememberRecipients } from "./recipients.ts";
import { completeWrite, type Session, storeNotFound } from "./session.ts";
import { sha256Hex } from "./fingerprint.ts";
import { readStore, replaceStore } from "./store.ts";
import { type PlaintextSource, WorkerError } from "./worker.ts";

/**
 * Re-encrypts the session's store to the recipients in `--recipients-file`.
 *
 * @example
 * ```ts
 * await rekeyStore(session);
 * ```
 */
export async function rekeyStore(session: Session): Promise<void> {
  const { config } = session;
  const recipientsFile = config.recipientsFile;
  if (recipientsFile === undefined) {
    throw new CliError(
      "--rekey needs the new recipients: --recipients-file PATH",
    );
  }
  const recipients = readRecipientsFile(recipientsFile, config.uid);
  session.checkKeyFiles();

  await session.withLock(async () => {
    const ciphertext = readStore(config.store, config.uid);
    if (ciphertext === null) throw storeNotFound(config.store, session);
    let decrypted;
    try {
      decrypted = await session.decryptStore(ciphertext);
    } catch (error) {
      // The general hints suggest an unlock or this very rekey.
      if (
        error instanceof CliError && error.message.includes("no terminal")
      ) {
        throw new CliError(error.message, {
          hints: [
            "run --rekey on a terminal, where age can ask for the passphrase",
          ],
        });
      }
      throw error;
    }
    const worker = session.worker();

    // A RAM copy changed since the last write-back contains newer tokens.
    let source: PlaintextSource = "pending";
    let plaintextSha256 = decrypted.sha256;
    let lastRefresh = decrypted.lastRefresh;
    let fingerprint = "";
    const state = session.readState();
    if (state !== null && lstatOrNull(session.ramCopy) !== null) {
      const snapshot = await session.withCodexLock(() =>
        worker.snapshot(session.ramDir)
      );
      if (
        snapshot.present && snapshot.valid &&
        snapshot.sha256 !== decrypted.sha256 &&
        !isOlder(snapshot.lastRefresh, decrypted.lastRefresh)
      ) {
        source = "snapshot";
        plaintextSha256 = snapshot.sha256;
        lastRefresh = snapshot.lastRefresh ?? decrypted.lastRefresh;
      }
      if (snapshot.present && snapshot.valid) {
        fingerprint = snapshot.sha256 === plaintextSha256
          ? snapshot.fingerprint
          : "";
      }
    }

    let rekeyed: Uint8Array;
    try {
      rekeyed = await worker.encrypt(source, { recipients });
    } catch (error) {
      if (!(error instanceof WorkerError)) throw error;
      throw new CliError(
        `cannot encrypt to the new recipients: ${recipientsFile}: ${error.message}`,
        { hints: ["the store was not changed"] },
      );
    }
    if (config.identities.length > 0) {
      let matches = false;
      let reason = "the decrypted bytes differ";
      try {
        matches = await worker.verify(source, rekeyed, config.identities);
      } catch (error) {
        if (!(error instanceof WorkerError)) throw error;
        reason = error.message;
      }
      if (!matches) {
        throw new CliError(
          `the identities given cannot decrypt the re-encrypted store: ${reason}`,
          {
            hints: [
              "pass an identity that matches one of the new recipients with --identity, next to the one for the current store",
              "the store was not changed",
            ],
          },
        );
      }
    } else {
      // Only a passphrase store gets here: decryptStore rejects any other
      // store without an identity.
      warn(
        "the re-encrypted store was not test-decrypted, because no identity was given",
        [
          `to test it: ${
            session.command("--lock")
          }, then the same with --identity PATH --unlock, where PATH is an identity for the new recipients`,
        ],
      );
    }

    const write = {
      storeSha256: await sha256Hex(rekeyed),
      plaintextSha256,
      plaintextFingerprint: fingerprint,
      lastRefresh,
    };
    // Recorded first, like every store write, so a run killed after the
    // rename does not mistake the new store for a foreign change.
    if (state !== null) session.writeState({ ...state, pending: write });
    try {
      await replaceStore(config.store, rekeyed);
    } catch (error) {
      if (state !== null) session.writeState({ ...state, pending: null });
      throw error;
    }
    await rememberRecipients(config.store, recipients, config.uid);
    if (state !== null) {
      session.writeState({
        ...completeWrite(state, write),
        recipients: [],
        passphrase: false,
      });
    }
  });
  notice(
    `re-encrypted ${config.store} to ${recipients.length} recipient(s) from ${recipientsFile}`,
  );
}
