/**
 * The Worker of `scripts/bench_floor_worker.ts`. It decrypts the store with
 * `age -d` and writes the plaintext into the RAM directory, as a cold start
 * must. It replies "ok", or the reason it failed.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import type { FloorRequest } from "./bench_floor_worker.ts";

self.onmessage = async (event: MessageEvent<FloorRequest>) => {
  const { store, identity, output, env } = event.data;
  const result = await new Deno.Command("age", {
    args: ["-d", "-i", identity, store],
    clearEnv: true,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!result.success) {
    self.postMessage(`age exited with ${result.code}`);
    return;
  }
  Deno.writeFileSync(output, result.stdout, { mode: 0o600 });
  result.stdout.fill(0);
  self.postMessage("ok");
};
