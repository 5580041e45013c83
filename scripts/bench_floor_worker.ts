/**
 * A lower bound for a cold start, for `scripts/bench`. In secure-codex only a
 * Worker with narrowed permissions may touch the plaintext. So a cold start
 * does at least what this script does on top of `scripts/bench_floor.ts`. It
 * starts a Worker at once, which runs `age -d` on the store with the identity
 * in `SECURE_CODEX_IDENTITY` and writes the result into the RAM directory.
 * Then it runs `codex` with the given arguments.
 *
 * @module
 */

/** The request the bench floor sends its Worker. */
export interface FloorRequest {
  /** The age-encrypted store. */
  store: string;
  /** An age identity file that decrypts the store. */
  identity: string;
  /** The plaintext's destination file, inside the RAM directory. */
  output: string;
  /** The environment age runs with. */
  env: Record<string, string>;
}

const env = Deno.env.toObject();
const request: FloorRequest = {
  store: `${env.CODEX_HOME}/auth.json.age`,
  identity: env.SECURE_CODEX_IDENTITY,
  output: `${env.XDG_RUNTIME_DIR}/bench-floor-auth.json`,
  env,
};
const worker = new Worker(
  new URL("./bench_floor_worker_entry.ts", import.meta.url),
  {
    type: "module",
    deno: {
      permissions: {
        read: [request.store, request.identity],
        write: [request.output],
        run: ["age"],
        env: false,
        net: false,
        ffi: false,
        sys: false,
        import: false,
      },
    },
  },
);
const reply = await new Promise<string>((resolve) => {
  worker.onmessage = (event: MessageEvent<string>) => resolve(event.data);
  worker.onerror = (event) => {
    event.preventDefault();
    resolve(`worker failed: ${event.message}`);
  };
  worker.postMessage(request);
});
if (reply !== "ok") {
  console.error(`bench_floor_worker: ${reply}`);
  Deno.exit(70);
}
const status = await new Deno.Command("codex", {
  args: Deno.args,
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
  clearEnv: true,
  env,
}).spawn().status;
Deno.exit(status.code);
