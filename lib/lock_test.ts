import assert from "node:assert/strict";
import { lockFile, tryLockFile } from "./lock.ts";

Deno.test("tryLockFile sees an exclusive lock held elsewhere", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/session.lock`;
    const exclusive = await lockFile(path, true);
    assert.equal(await tryLockFile(path, false), null);
    exclusive.close();
    const free = await tryLockFile(path, true);
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
    assert.equal(await tryLockFile(path, true), null);
    first.close();
    assert.equal(await tryLockFile(path, true), null);
    second.close();
    const last = await tryLockFile(path, true);
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
