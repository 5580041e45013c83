/**
 * Recipients: the public keys a store is encrypted to.
 *
 * Write-back encrypts without the identity, so it must know the recipients.
 * They come, in this order, from `--recipients-file`, from the recipients
 * file kept beside the store (`<store>.recipients`), or from the comments of
 * the identity files (`# public key:` from age-keygen, `Recipient:` from age
 * plugins). After every store write the file beside the store is updated to
 * the recipients used, so later runs need neither the flag nor the identity.
 * The file contains public keys only and is not secret.
 *
 * @module
 */

import {
  checkReadableFile,
  MAX_KEY_FILE_BYTES,
  replaceFileAtomically,
} from "./store.ts";
import { CliError } from "./output.ts";
import { lstatOrNull } from "./ram_dir.ts";

/** The source of the recipients for write-back. */
export type RecipientsSource =
  | "--recipients-file"
  | "beside-store"
  | "identity"
  | "none";

/**
 * Returns the path of the recipients file kept beside a store.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(besideRecipientsPath("/home/me/.codex/auth.json.age"), "/home/me/.codex/auth.json.age.recipients");
 * ```
 */
export function besideRecipientsPath(store: string): string {
  return `${store}.recipients`;
}

/**
 * Tells whether a trimmed line is shaped like a recipient age accepts: an
 * X25519 or plugin recipient (`age1...`), or an SSH public key. An identity
 * or a private key never matches, so it is never listed or passed on.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(isRecipient("ssh-ed25519 AAAAC3Nz me@host"), true);
 * assert.deepEqual(isRecipient("AGE-SECRET-KEY-1ABC"), false);
 * ```
 */
export function isRecipient(line: string): boolean {
  return /^(age1[0-9a-z]+|ssh-(ed25519|rsa) [A-Za-z0-9+/=]+( .*)?)$/.test(line);
}

/**
 * Parses the text of an age recipients file: one recipient per line, `#`
 * comments and blank lines skipped. Each recipient must look like one that
 * age accepts (`age1...`, plugin recipients included, or an SSH public key);
 * otherwise the line number is reported.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(parseRecipients("# team\nage1abc\n\nssh-ed25519 AAAA me@host\n", "r.txt"), [
 *   "age1abc",
 *   "ssh-ed25519 AAAA me@host",
 * ]);
 * ```
 */
export function parseRecipients(text: string, path: string): string[] {
  const recipients: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    if (!isRecipient(line)) {
      throw new CliError(
        `invalid recipient on line ${i + 1} of the recipients file: ${path}`,
        {
          hints: [
            "each line must be an age recipient (age1...), a plugin recipient (age1yubikey1..., age1tpm1...) or an SSH public key; # starts a comment",
            "an identity (AGE-SECRET-KEY-1...) belongs in --identity, not here",
          ],
        },
      );
    }
    if (!recipients.includes(line)) recipients.push(line);
  }
  return recipients;
}

/**
 * Reads and checks a recipients file: a regular file of the user's, at most
 * 1 MiB, with at least one valid recipient.
 *
 * @example
 * ```ts
 * const recipients = readRecipientsFile("/home/me/.codex/auth.json.age.recipients", 1000);
 * console.log(recipients.length);
 * ```
 */
export function readRecipientsFile(path: string, uid: number): string[] {
  checkReadableFile(path, "recipients file", uid, MAX_KEY_FILE_BYTES);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(
      Deno.readFileSync(path),
    );
  } catch (error) {
    if (error instanceof TypeError) {
      throw new CliError(`recipients file is not UTF-8 text: ${path}`, {
        hints: ["write one age recipient per line"],
      });
    }
    throw error;
  }
  const recipients = parseRecipients(text, path);
  if (recipients.length === 0) {
    throw new CliError(`recipients file lists no recipient: ${path}`, {
      hints: [
        "write one age recipient per line, for example the public key that age-keygen printed",
      ],
    });
  }
  return recipients;
}

/**
 * Formats the recipients file kept beside a store.
 *
 * @example
 * ```ts
 * const text = formatRecipientsFile(["age1abc"], "/home/me/.codex/auth.json.age");
 * ```
 */
export function formatRecipientsFile(
  recipients: readonly string[],
  store: string,
): string {
  return [
    `# age recipients of ${store}`,
    "# Public keys, not secret. secure-codex encrypts refreshed tokens to these.",
    "# Change them with secure-codex --rekey --recipients-file NEW_FILE --identity OLD",
    "# --identity NEW, plus the options that select this store (--profile, --real-codex-home).",
    ...recipients,
    "",
  ].join("\n");
}

/**
 * Records the recipients a store was just encrypted to in the file beside
 * it, atomically, unless it already lists exactly these.
 *
 * @example
 * ```ts
 * await rememberRecipients("/home/me/.codex/auth.json.age", ["age1abc"], 1000);
 * ```
 */
export async function rememberRecipients(
  store: string,
  recipients: readonly string[],
  uid: number,
): Promise<void> {
  const path = besideRecipientsPath(store);
  let current: string[] | null = null;
  try {
    current = readRecipientsFile(path, uid);
  } catch (error) {
    // A missing or damaged file is rewritten below.
    if (!(error instanceof CliError)) throw error;
  }
  if (
    current !== null && current.length === recipients.length &&
    current.every((recipient, i) => recipient === recipients[i])
  ) {
    return;
  }
  await replaceFileAtomically(
    path,
    new TextEncoder().encode(formatRecipientsFile(recipients, store)),
    { role: "recipients file", mode: 0o644 },
  );
}

/** The recipients write-back uses, and where they came from. */
export interface ResolvedRecipients {
  source: RecipientsSource;
  /** The file they were read from, if any. */
  path: string | null;
  list: string[];
}

/**
 * Resolves the recipients for write-back: `--recipients-file`, else the file
 * beside the store, else the recipients found in identity comments.
 *
 * @example
 * ```ts
 * const resolved = resolveRecipients({
 *   store: "/home/me/.codex/auth.json.age",
 *   identityRecipients: ["age1abc"],
 *   uid: 1000,
 * });
 * console.log(resolved.source, resolved.list);
 * ```
 */
export function resolveRecipients(input: {
  recipientsFile?: string;
  store: string;
  identityRecipients: readonly string[];
  uid: number;
}): ResolvedRecipients {
  if (input.recipientsFile !== undefined) {
    return {
      source: "--recipients-file",
      path: input.recipientsFile,
      list: readRecipientsFile(input.recipientsFile, input.uid),
    };
  }
  const beside = besideRecipientsPath(input.store);
  if (lstatOrNull(beside) !== null) {
    return {
      source: "beside-store",
      path: beside,
      list: readRecipientsFile(beside, input.uid),
    };
  }
  const list = [...input.identityRecipients];
  return { source: list.length > 0 ? "identity" : "none", path: null, list };
}
