import assert from "node:assert/strict";
import { join } from "node:path";
import { PlaintextWorker, WorkerError } from "./worker.ts";

const env = { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" };

async function keypair(
  dir: string,
): Promise<{ identity: string; recipient: string }> {
  const identity = join(dir, "key.txt");
  await new Deno.Command("age-keygen", {
    args: ["-o", identity],
    stderr: "null",
  }).output();
  const output = await new Deno.Command("age-keygen", {
    args: ["-y", identity],
  }).output();
  return {
    identity,
    recipient: new TextDecoder().decode(output.stdout).trim(),
  };
}

async function encrypt(
  recipient: string,
  text: string,
  path: string,
): Promise<void> {
  const child = new Deno.Command("age", {
    args: ["-e", "-r", recipient, "-o", path],
    stdin: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  assert.equal((await child.status).code, 0);
}

/**
 * Creates a temp directory with a RAM directory, a key pair and a store of
 * `plaintext`, and starts a worker scoped to them.
 */
async function startWorker(plaintext: string) {
  const dir = await Deno.makeTempDir();
  const ramDir = join(dir, "ram");
  await Deno.mkdir(ramDir, { mode: 0o700 });
  const { identity, recipient } = await keypair(dir);
  const store = join(dir, "auth.json.age");
  await encrypt(recipient, plaintext, store);
  const worker = PlaintextWorker.start({
    store,
    identities: [identity],
    ramDir,
    env,
  });
  return { dir, ramDir, identity, recipient, store, worker };
}

Deno.test("worker decrypts installs snapshots and encrypts", async () => {
  const { dir, ramDir, identity, recipient, store, worker } = await startWorker(
    '{"OPENAI_API_KEY":"sk-worker"}',
  );
  try {
    const decrypted = await worker.decrypt(store, [identity]);
    assert.equal(decrypted.kind, "api-key");
    await worker.install(ramDir);
    assert.equal(
      Deno.lstatSync(join(ramDir, "auth.json")).mode! & 0o777,
      0o600,
    );
    const snapshot = await worker.snapshot(ramDir);
    assert.ok(snapshot.present, "RAM copy present");
    assert.ok(snapshot.present && snapshot.valid, "RAM copy valid");
    if (snapshot.present && snapshot.valid) {
      assert.equal(snapshot.sha256, decrypted.sha256);
    }
    assert.deepEqual(await worker.recipients([identity]), [recipient]);
    const ciphertext = await worker.encrypt("snapshot", {
      recipients: [recipient],
    });
    assert.ok(!new TextDecoder().decode(ciphertext).includes("sk-worker"));
    // The snapshot and the new ciphertext hold the same bytes.
    assert.equal(await worker.verify("snapshot", ciphertext, [identity]), true);
    const summary = await worker.summary(ramDir);
    assert.equal(summary?.kind, "api-key");
    assert.ok(!JSON.stringify(summary).includes("sk-worker"));
  } finally {
    worker.terminate();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("worker cannot read outside its scope", async () => {
  const dir = await Deno.makeTempDir();
  const ramDir = join(dir, "ram");
  await Deno.mkdir(ramDir, { mode: 0o700 });
  const { identity, recipient } = await keypair(dir);
  const inScope = join(dir, "auth.json.age");
  const outOfScope = join(dir, "other.age");
  await encrypt(recipient, '{"OPENAI_API_KEY":"sk-worker"}', outOfScope);
  const worker = PlaintextWorker.start({
    store: inScope,
    identities: [identity],
    ramDir,
    env,
  });
  try {
    await assert.rejects(
      () => worker.decrypt(outOfScope, [identity]),
      WorkerError,
    );
    await assert.rejects(() => worker.snapshot(dir), /NotCapable|read access/);
  } finally {
    worker.terminate();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("worker rejects paths age would resolve elsewhere", async () => {
  const dir = await Deno.makeTempDir();
  const scope = join(dir, "scope");
  const elsewhere = join(dir, "elsewhere");
  const ramDir = join(dir, "ram");
  await Deno.mkdir(join(elsewhere, "deep"), { recursive: true });
  await Deno.mkdir(scope);
  await Deno.mkdir(ramDir, { mode: 0o700 });
  const { identity, recipient } = await keypair(dir);
  const outsideIdentity = join(elsewhere, "key.txt");
  await Deno.copyFile(identity, outsideIdentity);
  await encrypt(recipient, '{"OPENAI_API_KEY":"sk-in"}', join(scope, "s.age"));
  await encrypt(
    recipient,
    '{"OPENAI_API_KEY":"sk-out"}',
    join(elsewhere, "s.age"),
  );
  // The kernel resolves "link/.." to "elsewhere"; Deno's check to "scope".
  await Deno.symlink(join(elsewhere, "deep"), join(scope, "link"));
  const worker = PlaintextWorker.start({
    store: join(scope, "s.age"),
    identities: [identity],
    ramDir,
    env,
  });
  try {
    await assert.rejects(
      () => worker.decrypt(`${scope}/link/../s.age`, [identity]),
      /not an absolute, normalized path/,
    );
    await assert.rejects(
      () => worker.decrypt("s.age", [identity]),
      /not an absolute, normalized path/,
    );
    await assert.rejects(
      () => worker.decrypt(join(scope, "s.age"), [outsideIdentity]),
      /not in the worker's read scope/,
    );
    const decrypted = await worker.decrypt(join(scope, "s.age"), [identity]);
    assert.equal(decrypted.kind, "api-key");
    const ciphertext = await Deno.readFile(join(scope, "s.age"));
    await assert.rejects(
      () => worker.verify("pending", ciphertext, [outsideIdentity]),
      /not in the worker's read scope/,
    );
  } finally {
    worker.terminate();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("worker verify detects different plaintext", async () => {
  const { dir, identity, recipient, store, worker } = await startWorker(
    '{"OPENAI_API_KEY":"sk-one"}',
  );
  const other = join(dir, "other.age");
  try {
    await encrypt(recipient, '{"OPENAI_API_KEY":"sk-two"}', other);
    await worker.decrypt(store, [identity]);
    const same = await worker.encrypt("pending", { recipients: [recipient] });
    assert.equal(await worker.verify("pending", same, [identity]), true);
    const different = await Deno.readFile(other);
    assert.equal(await worker.verify("pending", different, [identity]), false);
  } finally {
    worker.terminate();
    await Deno.remove(dir, { recursive: true });
  }
});
