/**
 * The worker: the only code that reads plaintext tokens or identity files.
 *
 * It runs with permissions narrowed at start to reading the store, the
 * identity files, the RAM directory and the auth.json link's path, writing only the RAM
 * directory and running only `age`. Replies to the main thread carry hashes,
 * times, login kinds, public recipients and ciphertext, never plaintext.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import {
  ageDecrypt,
  ageEncrypt,
  recipientsFromIdentity,
  stopRunningAge,
} from "./age.ts";
import { type AuthCheck, checkAuthJson } from "./auth_json.ts";
import { type Fingerprint, fingerprintOf, sha256Hex } from "./fingerprint.ts";
import type { AdoptResult, WorkerReply, WorkerRequest } from "./worker.ts";

const MAX_FILE_BYTES = 1024 * 1024;

/** Plaintext decrypted from the store and not yet installed. */
let decrypted: Uint8Array | null = null;
/** Plaintext read from the RAM directory by the last snapshot. */
let snapshot: Uint8Array | null = null;
let ageEnv: Record<string, string> = {};

/** Compares two byte arrays in full, without an early exit on the first difference. */
function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}

function forget(buffer: Uint8Array | null): null {
  buffer?.fill(0);
  return null;
}

// File access here is synchronous: it blocks only this thread, and the
// files are small and mostly on tmpfs. Each kind of asynchronous call costs
// this new isolate a compile and a thread-pool round trip on every unlock.

function readBounded(
  file: Deno.FsFile,
  size: number,
): Uint8Array | null {
  if (size > MAX_FILE_BYTES) return null;
  const buffer = new Uint8Array(size + 1);
  let total = 0;
  while (total < buffer.length) {
    const count = file.readSync(buffer.subarray(total));
    if (count === null) break;
    total += count;
  }
  if (total > size) {
    buffer.fill(0);
    return null;
  }
  return buffer.subarray(0, total);
}

/**
 * Checks paths that age will open itself, outside this worker's sandbox:
 * each must be absolute and normalized, so that age opens exactly the string
 * checked, and inside the worker's read scope. Returns the reason for the
 * first one that is not, or null. The kernel resolves `..` after following
 * a symlink, while Deno's check removes it from the text first, which is
 * why such paths are rejected outright.
 */
function outsideReadScope(paths: readonly string[]): string | null {
  for (const path of paths) {
    const normalized = path.startsWith("/") &&
      !path.split("/").slice(1).some((part) =>
        part === "" || part === "." || part === ".."
      );
    if (!normalized) return `not an absolute, normalized path: ${path}`;
    if (
      Deno.permissions.querySync({ name: "read", path }).state !== "granted"
    ) {
      return `not in the worker's read scope: ${path}`;
    }
  }
  return null;
}

/** An auth.json file as read from disk, with the fingerprint of that version. */
type AuthFile =
  | { status: "missing" }
  | { status: "not-file" }
  | { status: "too-large"; fingerprint: Fingerprint }
  | {
    status: "read";
    bytes: Uint8Array;
    check: AuthCheck;
    fingerprint: Fingerprint;
  };

/**
 * Reads and checks an auth.json without following a symlink at its path. The
 * bytes are kept only when they are a valid auth.json; otherwise they are zeroed.
 */
function readAuthFile(path: string): AuthFile {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { status: "missing" };
    throw error;
  }
  if (!info.isFile) return { status: "not-file" };
  const file = Deno.openSync(path, { read: true });
  let bytes: Uint8Array | null;
  let openInfo: Deno.FileInfo;
  try {
    openInfo = file.statSync();
    bytes = readBounded(file, openInfo.size);
  } finally {
    file.close();
  }
  const fingerprint = fingerprintOf(openInfo);
  if (bytes === null) return { status: "too-large", fingerprint };
  const check = checkAuthJson(bytes);
  if (!check.valid) bytes.fill(0);
  return { status: "read", bytes, check, fingerprint };
}

/** Describes a read auth.json for the main thread: hashes and times, never bytes. */
async function describe(
  found: Extract<AuthFile, { status: "read" }>,
): Promise<AdoptResult> {
  const { bytes, check, fingerprint } = found;
  if (!check.valid) return { valid: false, reason: check.reason, fingerprint };
  return {
    valid: true,
    fingerprint,
    sha256: await sha256Hex(bytes),
    kind: check.kind,
    lastRefresh: check.lastRefresh,
  };
}

async function handle(request: WorkerRequest): Promise<WorkerReply> {
  switch (request.op) {
    case "init": {
      ageEnv = request.env;
      return { id: request.id, ok: true };
    }

    case "stop-age": {
      stopRunningAge();
      return { id: request.id, ok: true };
    }

    case "decrypt": {
      decrypted = forget(decrypted);
      const outside = outsideReadScope([request.store, ...request.identities]);
      if (outside !== null) {
        return { id: request.id, ok: false, reason: outside };
      }
      const result = await ageDecrypt(
        request.store,
        request.identities,
        ageEnv,
      );
      if (!result.ok) {
        return { id: request.id, ok: false, reason: result.reason };
      }
      const check = checkAuthJson(result.output);
      if (!check.valid) {
        result.output.fill(0);
        return {
          id: request.id,
          ok: false,
          reason: `decrypted store is not a codex auth.json: ${check.reason}`,
        };
      }
      decrypted = result.output;
      return {
        id: request.id,
        ok: true,
        sha256: await sha256Hex(decrypted),
        kind: check.kind,
        lastRefresh: check.lastRefresh,
      };
    }

    case "install": {
      if (decrypted === null) {
        return { id: request.id, ok: false, reason: "nothing decrypted" };
      }
      const suffix = crypto.randomUUID().slice(0, 8);
      const tempPath = `${request.ramDir}/.auth-unlock-${suffix}`;
      const target = `${request.ramDir}/auth.json`;
      const file = Deno.openSync(tempPath, {
        write: true,
        createNew: true,
        mode: 0o600,
      });
      try {
        let written = 0;
        while (written < decrypted.length) {
          written += file.writeSync(decrypted.subarray(written));
        }
        file.close();
        Deno.renameSync(tempPath, target);
        decrypted = forget(decrypted);
        // Stat after the rename, which changes ctime. The caller holds codex's
        // auth.lock, so nothing else replaces the file in between.
        const info = Deno.lstatSync(target);
        return { id: request.id, ok: true, fingerprint: fingerprintOf(info) };
      } catch (error) {
        try {
          file.close();
        } catch { /* already closed */ }
        try {
          Deno.removeSync(tempPath);
        } catch { /* never created */ }
        return {
          id: request.id,
          ok: false,
          reason: `cannot write the RAM copy: ${(error as Error).message}`,
        };
      }
    }

    case "snapshot": {
      snapshot = forget(snapshot);
      const path = `${request.ramDir}/auth.json`;
      const found = readAuthFile(path);
      if (found.status === "missing") {
        return { id: request.id, ok: true, present: false };
      }
      if (found.status === "not-file") {
        return {
          id: request.id,
          ok: false,
          reason: `RAM copy is not a regular file: ${path}`,
        };
      }
      if (found.status === "too-large") {
        return {
          id: request.id,
          ok: false,
          reason: `RAM copy is larger than ${MAX_FILE_BYTES} bytes`,
        };
      }
      if (found.check.valid) snapshot = found.bytes;
      return {
        id: request.id,
        ok: true,
        present: true,
        ...await describe(found),
      };
    }

    case "encrypt": {
      const plaintext = request.source === "snapshot" ? snapshot : decrypted;
      if (plaintext === null) {
        return {
          id: request.id,
          ok: false,
          reason: `no ${request.source} plaintext to encrypt`,
        };
      }
      const result = await ageEncrypt(plaintext, request.target, ageEnv);
      if (!result.ok) {
        return { id: request.id, ok: false, reason: result.reason };
      }
      return { id: request.id, ok: true, ciphertext: result.output };
    }

    case "verify": {
      const plaintext = request.source === "snapshot" ? snapshot : decrypted;
      if (plaintext === null) {
        return { id: request.id, ok: false, reason: "nothing to compare" };
      }
      const outside = outsideReadScope(request.identities);
      if (outside !== null) {
        return { id: request.id, ok: false, reason: outside };
      }
      const result = await ageDecrypt(
        request.ciphertext,
        request.identities,
        ageEnv,
      );
      if (!result.ok) {
        return { id: request.id, ok: false, reason: result.reason };
      }
      const matches = equalBytes(result.output, plaintext);
      result.output.fill(0);
      return { id: request.id, ok: true, matches };
    }

    case "summary": {
      const found = readAuthFile(`${request.ramDir}/auth.json`);
      if (found.status !== "read") {
        return { id: request.id, ok: true, summary: null };
      }
      // Loaded here, so that unlocks and write-backs do not parse it.
      const { summarizeLogin } = await import("./login_summary.ts");
      const summary = summarizeLogin(found.bytes);
      found.bytes.fill(0);
      return { id: request.id, ok: true, summary };
    }

    case "adopt": {
      decrypted = forget(decrypted);
      const found = readAuthFile(request.path);
      if (found.status === "missing" || found.status === "not-file") {
        return {
          id: request.id,
          ok: false,
          reason: `not a regular file: ${request.path}`,
        };
      }
      if (found.status === "too-large") {
        return {
          id: request.id,
          ok: true,
          valid: false,
          reason: `larger than ${MAX_FILE_BYTES} bytes`,
          fingerprint: found.fingerprint,
        };
      }
      if (found.check.valid) decrypted = found.bytes;
      return { id: request.id, ok: true, ...await describe(found) };
    }

    case "recipients": {
      const recipients: string[] = [];
      for (const identity of request.identities) {
        const file = Deno.openSync(identity, { read: true });
        let bytes: Uint8Array | null;
        try {
          bytes = readBounded(file, file.statSync().size);
        } finally {
          file.close();
        }
        if (bytes === null) continue;
        for (
          const recipient of recipientsFromIdentity(
            new TextDecoder().decode(bytes),
          )
        ) {
          if (!recipients.includes(recipient)) recipients.push(recipient);
        }
        bytes.fill(0);
      }
      return { id: request.id, ok: true, recipients };
    }
  }
}

self.onmessage = async (event: MessageEvent<WorkerRequest>) => {
  const request = event.data;
  let reply: WorkerReply;
  try {
    reply = await handle(request);
  } catch (error) {
    // Deno's error messages name paths and system errors, not file contents.
    reply = { id: request.id, ok: false, reason: (error as Error).message };
  }
  self.postMessage(reply);
};
