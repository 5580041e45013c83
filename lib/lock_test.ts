import assert from "node:assert/strict";
import { lockFile, tryLockFile } from "./lock.ts";

Deno.test("tryLockFile sees an exclusive lock held elsewhere", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/session.lock`;
    const exclusive = await lockFile(path, true);
    assert.equal(tryLockFile(path, false), null);
    exclusive.close();
    const free = tryLockFile(path, true);
    assert.ok(free !== null);
    free.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("shared locks coexist and block exclusive", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/users.lock`;
    const first = await lockFile(path, false);
    const second = await lockFile(path, false);
    assert.equal(tryLockFile(path, true), null);
    first.close();
    assert.equal(tryLockFile(path, true), null);
    second.close();
    const last = tryLockFile(path, true);
    assert.ok(last !== null);
    last.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lockFile follows a replaced lock file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/session.lock`;
    const held = await lockFile(path, true);
    const waiting = lockFile(path, true);
    // While the second caller waits, the file is removed; it must lock the new file.
    await Deno.remove(path);
    held.close();
    const acquired = await waiting;
    const opened = await acquired.stat();
    assert.equal(opened.ino, (await Deno.lstat(path)).ino);
    acquired.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("contended lockFile keeps event loop running", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/session.lock`;
    const held = await lockFile(path, true);
    let ticked = false;
    const waiting = lockFile(path, true).then((lock) => {
      // The timer below must have fired while this caller waited.
      assert.ok(ticked);
      return lock;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    ticked = true;
    held.close();
    (await waiting).close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("lockFile locks a symlinked lock file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const target = `${dir}/real.lock`;
    const path = `${dir}/auth.lock`;
    await Deno.writeTextFile(target, "");
    await Deno.symlink(target, path);
    const lock = await lockFile(path, true);
    // The lock is on the target, so another lock attempt on it fails.
    assert.equal(tryLockFile(target, false), null);
    lock.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
