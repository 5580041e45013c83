/**
 * Import: turning a plaintext `<codex home>/auth.json` into a store.
 *
 * The steps are ordered so that none can lose the login. The plaintext is
 * read and checked, then encrypted to the recipients. The new ciphertext is
 * decrypted with the identities and compared byte for byte. Only then is the
 * store installed (atomically), the plaintext moved into the RAM directory,
 * the file on disk removed and the link put in its place. Any failure before
 * the store is installed leaves every file as it was.
 *
 * @module
 */

import { isOlderThanStore } from "./auth_json.ts";
import { dirname } from "./path.ts";
import { ensureLink, inspectLink } from "./link.ts";
import { CliError, notice, shellQuote, warn } from "./output.ts";
import { checkRamSpace, lstatOrNull } from "./ram_dir.ts";
import { rememberRecipients } from "./recipients.ts";
import type { Session } from "./session.ts";
import {
  asidePath,
  parseStoreHeader,
  readStore,
  replaceStore,
  syncDirectory,
} from "./store.ts";
import { fingerprintOf } from "./fingerprint.ts";
import { WorkerError } from "./worker.ts";

/**
 * Imports the plaintext auth.json of the session's codex home into its store.
 * With `force`, an existing store is replaced.
 *
 * @example
 * ```ts
 * await importPlaintext(session, { force: false });
 * ```
 */
export async function importPlaintext(
  session: Session,
  options: { force: boolean },
): Promise<void> {
  const { config, linkPath } = session;
  checkImportSource(session);
  if (!options.force && readStore(config.store, config.uid) !== null) {
    throw storeExists(config.store, linkPath);
  }
  if (config.identities.length === 0) {
    throw new CliError("no identity to prove that the new store decrypts", {
      hints: [
        "pass the age identity file with --identity PATH or set SECURE_CODEX_IDENTITY",
        "nothing was changed",
      ],
    });
  }
  session.checkKeyFiles();
  const identityRecipients = await session.findIdentityRecipients();
  const recipients = session.recipientsFor(identityRecipients).list;
  if (recipients.length === 0) {
    throw new CliError(`no recipients for the new store: ${config.store}`, {
      hints: [
        'pass --recipients-file PATH, or an identity file with a "# public key:" line (age-keygen writes one)',
        "nothing was changed",
      ],
    });
  }

  await session.withLock(async () => {
    // Checked again under the lock: another import may have finished meanwhile.
    checkImportSource(session);
    const existing = readStore(config.store, config.uid);
    if (!options.force && existing !== null) {
      throw storeExists(config.store, linkPath);
    }
    // The import leaves the login unlocked in RAM, where codex saves its
    // refreshes, so the same space check as a run's comes first.
    checkRamSpace(session.ramDir);

    const worker = session.worker();
    // Read before the adopt, which the worker keeps as its pending plaintext.
    const storeLastRefresh = existing === null
      ? null
      : await lastRefreshOf(session, existing);
    const found = await session.withCodexLock(() => worker.adopt(linkPath));
    if (!found.valid) {
      throw new CliError(
        `plaintext auth.json is not a valid codex login: ${linkPath}: ${found.reason}`,
        { hints: ["nothing was changed"] },
      );
    }
    if (isOlderThanStore(found.lastRefresh, storeLastRefresh)) {
      throw new CliError(
        `the store contains newer tokens than the plaintext auth.json: last_refresh ${storeLastRefresh} in ${config.store}, ${found.lastRefresh} in ${linkPath}`,
        {
          hints: [
            "nothing was changed; --force does not replace newer tokens with older ones",
            `to keep the store's login, remove the plaintext file: rm ${
              shellQuote(linkPath)
            }`,
            `to import it all the same, move the store aside first: mv ${
              shellQuote(config.store)
            } ${shellQuote(asidePath(config.store))}`,
          ],
        },
      );
    }
    let ciphertext: Uint8Array;
    let matches: boolean;
    try {
      ciphertext = await worker.encrypt("pending", { recipients });
      matches = await worker.verify("pending", ciphertext, config.identities);
    } catch (error) {
      if (!(error instanceof WorkerError)) throw error;
      throw cannotProve(config.store, error.message);
    }
    if (!matches) {
      throw cannotProve(config.store, "the decrypted bytes differ");
    }

    await replaceStore(config.store, ciphertext);
    if (existing !== null) {
      notice(`replaced the existing store (--force): ${config.store}`);
    }
    await rememberRecipients(config.store, recipients, config.uid);
    await session.withCodexLock(async () => {
      const fingerprint = await worker.install(session.ramDir);
      const now = lstatOrNull(linkPath);
      if (now === null || fingerprintOf(now) !== found.fingerprint) {
        throw new CliError(
          `the plaintext auth.json changed during the import: ${linkPath}`,
          {
            hints: [
              "the store holds the version read before the change; the file was left in place",
              "run secure-codex --import --force again to import the current version",
            ],
          },
        );
      }
      await Deno.remove(linkPath);
      await syncDirectory(dirname(linkPath));
      ensureLink(linkPath, session.ramCopy, config.store);
      session.writeState(
        await session.createState(
          ciphertext,
          found.sha256,
          fingerprint,
          found.lastRefresh,
        ),
      );
    });
  });

  notice(
    `imported ${linkPath} into ${config.store}, encrypted to ${recipients.length} recipient(s); the store was decrypted and compared before the plaintext was removed`,
  );
  notice(`${linkPath} is now a link to the RAM copy ${session.ramCopy}`);
  warn(
    "the old plaintext may survive in disk blocks, backups, snapshots or a dotfile repository",
    [
      `for tokens that never touched disk, log in again: ${
        session.command("-- logout")
      }, then ${session.command("-- login")}`,
    ],
  );
}

/**
 * Reads `last_refresh` from the store an import with --force would replace.
 * A store this run cannot decrypt (a lost key, which is what --force is for)
 * or one that needs a passphrase gives null, and the import goes on.
 */
async function lastRefreshOf(
  session: Session,
  ciphertext: Uint8Array,
): Promise<string | null> {
  const header = parseStoreHeader(ciphertext);
  if (header === null || header.passphrase) {
    // A passphrase would need a prompt the user did not ask for.
    notice(
      `the store is ${
        header === null ? "not an age file" : "passphrase-encrypted"
      }, so its tokens are not compared and --force replaces it: ${session.config.store}`,
    );
    return null;
  }
  try {
    return (await session.worker().decrypt(
      session.config.store,
      session.config.identities,
    )).lastRefresh;
  } catch (error) {
    if (!(error instanceof WorkerError)) throw error;
    notice(
      `cannot decrypt the store with the identities given, so its tokens are not compared and --force replaces it: ${session.config.store}`,
    );
    return null;
  }
}

/** Rejects an import unless the link's path is a plaintext file. */
function checkImportSource(session: Session): void {
  const { linkPath, ramCopy } = session;
  const link = inspectLink(linkPath, ramCopy);
  switch (link.kind) {
    case "file":
      return;
    case "ours":
      throw new CliError(
        `nothing to import: ${linkPath} is already the link into RAM`,
        { hints: [`run ${session.command("--status")} to see the session`] },
      );
    case "missing":
      throw new CliError(`nothing to import: ${linkPath} does not exist`, {
        hints: [
          "to log in without plaintext on disk: secure-codex -- login",
        ],
      });
    case "elsewhere":
      throw new CliError(
        `auth.json is a symlink to somewhere else: ${linkPath} -> ${link.target}`,
        {
          hints: [
            "--import reads only a regular file at that path; copy the login there or remove the link",
          ],
        },
      );
    case "other":
      throw new CliError(
        `auth.json is neither a file nor a symlink: ${linkPath}`,
        { hints: ["remove it, then run secure-codex again"] },
      );
  }
}

function storeExists(store: string, plaintext: string): CliError {
  return new CliError(`store already exists: ${store}`, {
    hints: [
      "--import does not replace a store unless --force is given; nothing was changed",
      `to keep the existing store instead, move ${plaintext} away and delete it securely: it is a working login in plaintext`,
    ],
  });
}

function cannotProve(store: string, reason: string): CliError {
  return new CliError(
    `the identity cannot decrypt the new store, so it was not installed: ${store}: ${reason}`,
    {
      hints: [
        "check that the recipients belong to the identity files given with --identity",
        "nothing was changed",
      ],
    },
  );
}
