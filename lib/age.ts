/**
 * The external `age` binary, driven through pipes. Plaintext goes in and out
 * through stdin and stdout only, never through argv or a file, which is why
 * `-o` is never used. Ciphertext may also come from a file age opens.
 * Called from the worker only.
 *
 * @module
 */

import { PREFIX, writeStderr } from "./output.ts";

/** The largest output accepted from age, for stores and their plaintext alike. */
export const MAX_AGE_OUTPUT_BYTES = 1024 * 1024;

/** The outcome of one age run. */
export type AgeResult =
  | { ok: true; output: Uint8Array }
  | { ok: false; reason: string };

async function readLimited(
  stream: ReadableStream<Uint8Array>,
  limit: number,
): Promise<Uint8Array | null> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  let tooLarge = false;
  const reader = stream.getReader();
  for (;;) {
    const { value: chunk, done } = await reader.read();
    if (done) break;
    total += chunk.length;
    if (total > limit) {
      tooLarge = true;
      chunk.fill(0);
      continue;
    }
    chunks.push(chunk);
  }
  const output = new Uint8Array(tooLarge ? 0 : total);
  let offset = 0;
  for (const chunk of chunks) {
    if (!tooLarge) output.set(chunk, offset);
    offset += chunk.length;
    chunk.fill(0);
  }
  return tooLarge ? null : output;
}

/** The reason {@linkcode ageDecrypt} gives when age reports a damaged file. */
export const DAMAGED_FILE_REASON = "the file is damaged or cut short";

/** The reason given when a passphrase (of a store or identity file) was wrong. */
export const WRONG_PASSPHRASE_REASON = "the passphrase is incorrect";

/** The reason given when age needed a passphrase and had no terminal. */
export const NO_TERMINAL_REASON = "age had no terminal to ask for a passphrase";

/**
 * age 1.1.1's messages, each with the reason it maps to. Damage: an age file
 * cut short or altered after its recipient stanzas, in its header or armor,
 * nonce, header MAC or payload. A passphrase-protected identity file fails
 * with "failed to decrypt identity file: ..." around the passphrase message.
 */
const AGE_FAILURES: readonly [RegExp, string][] = [
  [/could not read passphrase/, NO_TERMINAL_REASON],
  [/incorrect passphrase/, WRONG_PASSPHRASE_REASON],
  [
    /failed to read header|invalid armor|failed to read nonce|bad header MAC|failed to decrypt and authenticate payload chunk|unexpected EOF/,
    DAMAGED_FILE_REASON,
  ],
];

/**
 * Copies age's stderr to ours line by line, as each line arrives, behind the
 * program's prefix, so plugin messages (such as "touch your key") show at
 * once and every line on stderr still starts with `secure-codex: `. age reads
 * passphrases from /dev/tty, not from this stream. Returns the reason of the
 * first line that matches one of {@linkcode AGE_FAILURES}, else an empty
 * string: the lines themselves were already shown.
 */
async function relayLines(stream: ReadableStream<Uint8Array>): Promise<string> {
  const encoder = new TextEncoder();
  let pending = "";
  let reason = "";
  const write = (line: string) => {
    if (reason === "") {
      reason = AGE_FAILURES.find(([message]) => message.test(line))?.[1] ?? "";
    }
    writeStderr(encoder.encode(PREFIX + line + "\n"));
  };
  // A reader and a TextDecoder, not pipeThrough and TextDecoderStream: the
  // worker's isolate compiles whatever stream machinery it first uses, on
  // every unlock.
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    const text = decoder.decode(value, { stream: true });
    pending += text;
    let newline = pending.indexOf("\n");
    while (newline >= 0) {
      write(pending.slice(0, newline));
      pending = pending.slice(newline + 1);
      newline = pending.indexOf("\n");
    }
  }
  pending += decoder.decode();
  if (pending !== "") write(pending);
  return reason;
}

/** The age processes running now, so that a stopping run can end them. */
const running = new Set<Deno.ChildProcess>();

/**
 * Ends every age process this thread started that still runs. age reads a
 * passphrase from the terminal, so one left behind by a run that was
 * stopped would read the keys the user types into the shell next.
 *
 * @example
 * ```ts
 * stopRunningAge();
 * ```
 */
export function stopRunningAge(): void {
  for (const child of running) {
    try {
      child.kill("SIGTERM");
    } catch {
      // It exited in the meantime.
    }
  }
}

async function runAge(
  args: string[],
  input: Uint8Array | null,
  env: Record<string, string>,
  stderr: "relay" | "capture",
): Promise<AgeResult> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("age", {
      args,
      stdin: input === null ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      clearEnv: true,
      env,
    }).spawn();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { ok: false, reason: "age not found on PATH" };
    }
    return { ok: false, reason: `cannot run age: ${(error as Error).message}` };
  }
  running.add(child);
  try {
    return await finishAge(child, input, stderr);
  } finally {
    running.delete(child);
  }
}

async function finishAge(
  child: Deno.ChildProcess,
  input: Uint8Array | null,
  stderr: "relay" | "capture",
): Promise<AgeResult> {
  let writing: Promise<void> = Promise.resolve();
  if (input !== null) {
    const writer = child.stdin.getWriter();
    writing = writer.write(input).then(() => writer.close()).catch(() => {
      // age exits early on a bad header and closes its stdin, so this write
      // fails. The exit code and age's message tell what happened.
    });
  }
  const [output, errorText] = await Promise.all([
    readLimited(child.stdout, MAX_AGE_OUTPUT_BYTES),
    stderr === "capture"
      ? new Response(child.stderr).text()
      : relayLines(child.stderr),
    writing,
  ]);
  const status = await child.status;
  if (output === null) {
    return {
      ok: false,
      reason: `age output is larger than ${MAX_AGE_OUTPUT_BYTES} bytes`,
    };
  }
  if (!status.success) {
    output.fill(0);
    const detail = errorText.trim().split("\n").filter((line) => line !== "")
      .join("; ");
    const exit = status.signal
      ? `killed by ${status.signal}`
      : `exit code ${status.code}`;
    return {
      ok: false,
      reason: detail
        ? `age failed (${exit}): ${detail}`
        : `age failed (${exit})`,
    };
  }
  return { ok: true, output };
}

/**
 * Decrypts with `age -d`, one `-i` per identity file. The input is ciphertext
 * bytes, fed through stdin, or the path of a file that age opens itself,
 * which saves the worker the stream that writes stdin (its new isolate
 * compiles that on every unlock). With no identities age prompts for a
 * passphrase on the terminal. age's own messages, plugin messages included,
 * reach the user's stderr as they arrive, behind the program's prefix.
 *
 * @example
 * ```ts
 * const result = await ageDecrypt("/home/me/.codex/auth.json.age", ["/home/me/key.txt"], { PATH: "/usr/bin" });
 * if (result.ok) console.log(result.output.length);
 * ```
 */
export function ageDecrypt(
  input: Uint8Array | string,
  identities: readonly string[],
  env: Record<string, string>,
): Promise<AgeResult> {
  const args = ["--decrypt"];
  for (const identity of identities) args.push("--identity", identity);
  if (typeof input === "string") {
    // "--" keeps a path that starts with "-" from being read as an option.
    args.push("--", input);
    return runAge(args, null, env, "relay");
  }
  return runAge(args, input, env, "relay");
}

/**
 * Encrypts plaintext with `age -e` to recipients (`-r`, one per recipient),
 * or with a passphrase (`-p`), which age reads twice from the terminal. The
 * output is binary, not armored.
 *
 * @example
 * ```ts
 * const result = await ageEncrypt(plaintext, { recipients: ["age1..."] }, { PATH: "/usr/bin" });
 * ```
 */
export function ageEncrypt(
  plaintext: Uint8Array,
  target: EncryptionTarget,
  env: Record<string, string>,
): Promise<AgeResult> {
  const args = ["--encrypt"];
  if ("passphrase" in target) {
    args.push("--passphrase");
  } else {
    for (const recipient of target.recipients) {
      args.push("--recipient", recipient);
    }
  }
  return runAge(args, plaintext, env, "capture");
}

/** Whom a store is encrypted to: recipients, or a passphrase typed on the terminal. */
export type EncryptionTarget =
  | { recipients: readonly string[] }
  | { passphrase: true };

/**
 * Extracts the recipients written as comments into identity files: the
 * `# public key: age1...` line of age-keygen and the `Recipient: age1...`
 * lines of age plugins. Returns them in order, without duplicates.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const text = "# created: 2026-01-01\n# public key: age1abc\nAGE-SECRET-KEY-1XYZ\n";
 * assert.deepEqual(recipientsFromIdentity(text), ["age1abc"]);
 * ```
 */
export function recipientsFromIdentity(text: string): string[] {
  const found: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const match = /^#\s*(?:public key|recipient):\s*(age1[0-9a-z]+)\s*$/i.exec(
      line,
    );
    if (match && !found.includes(match[1])) found.push(match[1]);
  }
  return found;
}
