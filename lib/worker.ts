/**
 * The main thread's handle on the plaintext worker (`worker_entry.ts`).
 *
 * The worker starts with permissions narrowed to what it must touch, so a bug
 * in the main thread can never read the plaintext and a bug in the worker can
 * never write outside the RAM directory.
 *
 * @module
 */

import type { EncryptionTarget } from "./age.ts";
import type { Fingerprint } from "./fingerprint.ts";
import type { LoginKind } from "./auth_json.ts";
import type { LoginSummary } from "./login_summary.ts";

/** Requests the main thread sends, each with a unique id. */
export type WorkerRequest =
  | { id: number; op: "init"; env: Record<string, string> }
  | { id: number; op: "decrypt"; store: string; identities: string[] }
  | { id: number; op: "install"; ramDir: string }
  | { id: number; op: "snapshot"; ramDir: string }
  | {
    id: number;
    op: "encrypt";
    source: PlaintextSource;
    target: EncryptionTarget;
  }
  | {
    id: number;
    op: "verify";
    source: PlaintextSource;
    ciphertext: Uint8Array;
    identities: string[];
  }
  | { id: number; op: "summary"; ramDir: string }
  | { id: number; op: "recipients"; identities: string[] }
  | { id: number; op: "adopt"; path: string }
  | { id: number; op: "stop-age" };

/**
 * The plaintext an encryption reads: the last snapshot of the RAM copy, or
 * the plaintext that `decrypt` or `adopt` left pending for `install`.
 */
export type PlaintextSource = "snapshot" | "pending";

/** The non-secret facts of a successful decryption. */
export interface DecryptResult {
  sha256: string;
  kind: LoginKind;
  lastRefresh: string | null;
}

/** A plaintext auth.json found on disk, as the worker read it. */
export type AdoptResult =
  | { valid: false; reason: string; fingerprint: Fingerprint }
  | {
    valid: true;
    fingerprint: Fingerprint;
    sha256: string;
    kind: LoginKind;
    lastRefresh: string | null;
  };

/** The RAM copy as the worker read it. */
export type SnapshotResult =
  | { present: false }
  | { present: true; valid: false; reason: string; fingerprint: Fingerprint }
  | {
    present: true;
    valid: true;
    fingerprint: Fingerprint;
    sha256: string;
    kind: LoginKind;
    lastRefresh: string | null;
  };

/** Replies from the worker, matched to requests by id. */
export type WorkerReply =
  | { id: number; ok: false; reason: string }
  | (
    & { id: number; ok: true }
    & (
      | Record<never, never>
      | DecryptResult
      | { fingerprint: Fingerprint }
      | SnapshotResult
      | { ciphertext: Uint8Array }
      | { recipients: string[] }
      | { matches: boolean }
      | { summary: LoginSummary | null }
    )
  );

/** A request the worker could not carry out; the reason names no secret. */
export class WorkerError extends Error {
  /** Creates the error from the worker's reason. */
  constructor(reason: string) {
    super(reason);
    this.name = "WorkerError";
  }
}

/** The files the worker may read besides the RAM directory. */
export interface WorkerScope {
  store: string;
  identities: readonly string[];
  ramDir: string;
  /** A plaintext auth.json on disk the worker may adopt: the link's path. */
  adoptable?: string;
  /** The environment age runs with. */
  env: Record<string, string>;
}

/** Every worker this process started, for {@linkcode stopAgeInWorkers}. */
const started = new Set<PlaintextWorker>();

/**
 * Ends the age processes of every worker this process started, before the
 * process ends on a signal.
 *
 * @example
 * ```ts
 * await stopAgeInWorkers();
 * ```
 */
export async function stopAgeInWorkers(): Promise<void> {
  await Promise.all([...started].map((worker) => worker.stopAge()));
}

type Distribute<T> = T extends { op: infer O } ? Omit<T, "id"> & { op: O }
  : never;

/**
 * A running plaintext worker.
 *
 * @example
 * ```ts
 * const worker = PlaintextWorker.start({
 *   store: "/home/me/.codex/auth.json.age",
 *   identities: ["/home/me/key.txt"],
 *   ramDir: "/run/user/1000/secure-codex/0123456789abcdef",
 *   env: { PATH: "/usr/bin" },
 * });
 * const result = await worker.decrypt("/home/me/.codex/auth.json.age", ["/home/me/key.txt"]);
 * worker.terminate();
 * ```
 */
export class PlaintextWorker {
  #worker: Worker;
  #nextId = 1;
  #pending = new Map<number, (reply: WorkerReply) => void>();
  #failure: Error | null = null;

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.onmessage = (event: MessageEvent<WorkerReply>) => {
      const resolve = this.#pending.get(event.data.id);
      this.#pending.delete(event.data.id);
      resolve?.(event.data);
    };
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault();
      this.#failure = new WorkerError(`worker failed: ${event.message}`);
      for (const [id, resolve] of this.#pending) {
        resolve({ id, ok: false, reason: this.#failure.message });
      }
      this.#pending.clear();
    };
  }

  /** Starts a worker whose permissions are narrowed to `scope`. */
  static start(scope: WorkerScope): PlaintextWorker {
    const read = [scope.store, ...scope.identities, scope.ramDir];
    if (scope.adoptable !== undefined) read.push(scope.adoptable);
    const worker = new Worker(new URL("./worker_entry.ts", import.meta.url), {
      type: "module",
      name: "plaintext",
      deno: {
        permissions: {
          read,
          write: [scope.ramDir],
          run: ["age"],
          env: false,
          net: false,
          ffi: false,
          sys: false,
          import: false,
        },
      },
    });
    const handle = new PlaintextWorker(worker);
    void handle.#call({ op: "init", env: scope.env });
    started.add(handle);
    return handle;
  }

  #call(request: Distribute<WorkerRequest>): Promise<WorkerReply> {
    if (this.#failure) {
      return Promise.resolve({
        id: 0,
        ok: false,
        reason: this.#failure.message,
      });
    }
    const id = this.#nextId++;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      this.#worker.postMessage({ ...request, id });
    });
  }

  async #expect<T>(request: Distribute<WorkerRequest>): Promise<T> {
    const reply = await this.#call(request);
    if (!reply.ok) throw new WorkerError(reply.reason);
    return reply as unknown as T;
  }

  /**
   * Ends the age process the worker runs, if any, such as one waiting at a
   * passphrase prompt. Waits at most `timeoutMs` for the worker to confirm.
   */
  async stopAge(timeoutMs = 500): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#call({ op: "stop-age" }),
      new Promise((resolve) => timer = setTimeout(resolve, timeoutMs)),
    ]);
    clearTimeout(timer);
  }

  /** Decrypts the store and keeps the plaintext inside the worker for {@linkcode install}. */
  decrypt(
    store: string,
    identities: readonly string[],
  ): Promise<DecryptResult> {
    return this.#expect({ op: "decrypt", store, identities: [...identities] });
  }

  /** Installs the decrypted plaintext as `<ramDir>/auth.json` by temp file and rename. */
  async install(ramDir: string): Promise<Fingerprint> {
    const reply = await this.#expect<{ fingerprint: Fingerprint }>({
      op: "install",
      ramDir,
    });
    return reply.fingerprint;
  }

  /** Reads and checks `<ramDir>/auth.json`, keeping it in the worker for {@linkcode encrypt}. */
  snapshot(ramDir: string): Promise<SnapshotResult> {
    return this.#expect({ op: "snapshot", ramDir });
  }

  /**
   * Encrypts the last snapshot or the pending plaintext to recipients or a
   * passphrase, and returns the ciphertext.
   */
  async encrypt(
    source: PlaintextSource,
    target: EncryptionTarget,
  ): Promise<Uint8Array> {
    const reply = await this.#expect<{ ciphertext: Uint8Array }>({
      op: "encrypt",
      source,
      target: "passphrase" in target
        ? { passphrase: true }
        : { recipients: [...target.recipients] },
    });
    return reply.ciphertext;
  }

  /**
   * Decrypts ciphertext with the identities and returns whether it yields the
   * snapshot or the pending plaintext byte for byte: proof that a new store
   * can be opened before the plaintext it came from is removed.
   */
  async verify(
    source: PlaintextSource,
    ciphertext: Uint8Array,
    identities: readonly string[],
  ): Promise<boolean> {
    const reply = await this.#expect<{ matches: boolean }>({
      op: "verify",
      source,
      ciphertext,
      identities: [...identities],
    });
    return reply.matches;
  }

  /**
   * Reads the RAM copy and returns its non-secret facts (login kind, email,
   * plan, token expiry), or null when there is no valid RAM copy.
   */
  async summary(ramDir: string): Promise<LoginSummary | null> {
    const reply = await this.#expect<{ summary: LoginSummary | null }>({
      op: "summary",
      ramDir,
    });
    return reply.summary;
  }

  /** Reads the public recipients written as comments into identity files. */
  async recipients(identities: readonly string[]): Promise<string[]> {
    const reply = await this.#expect<{ recipients: string[] }>({
      op: "recipients",
      identities: [...identities],
    });
    return reply.recipients;
  }

  /**
   * Reads a plaintext auth.json that replaced the link and keeps it in the
   * worker, like {@linkcode decrypt}, for {@linkcode install}.
   */
  adopt(path: string): Promise<AdoptResult> {
    return this.#expect({ op: "adopt", path });
  }

  /** Stops the worker; its memory, plaintext included, is released. */
  terminate(): void {
    this.#worker.terminate();
  }
}
