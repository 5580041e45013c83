import assert from "node:assert/strict";
import { CliError } from "./output.ts";
import {
  checkReadableFile,
  inspectDirectoriesAbove,
  MAX_STORE_BYTES,
  parseStoreHeader,
  readStore,
  replaceStore,
  sharedAccess,
} from "./store.ts";

const encode = (text: string) => new TextEncoder().encode(text);
const uid = Deno.uid()!;

Deno.test("parseStoreHeader detects scrypt and X25519 stanzas", () => {
  const scrypt = parseStoreHeader(
    encode("age-encryption.org/v1\n-> scrypt c2FsdA 18\nYm9keQ\n--- mac\nbody"),
  );
  assert.deepEqual(scrypt, { passphrase: true, armored: false });
  const x25519 = parseStoreHeader(
    encode("age-encryption.org/v1\n-> X25519 abc\ndef\n--- mac\nbody"),
  );
  assert.deepEqual(x25519, { passphrase: false, armored: false });
});

Deno.test("parseStoreHeader reads armored files", () => {
  const inner = "age-encryption.org/v1\n-> scrypt c2FsdA 18\nYm9keQ\n--- mac\n";
  const armored = `-----BEGIN AGE ENCRYPTED FILE-----\n${
    btoa(inner)
  }\n-----END AGE ENCRYPTED FILE-----\n`;
  assert.deepEqual(parseStoreHeader(encode(armored)), {
    passphrase: true,
    armored: true,
  });
});

Deno.test("parseStoreHeader rejects non-age bytes", () => {
  assert.equal(parseStoreHeader(encode("{}")), null);
  assert.equal(
    parseStoreHeader(encode("age-encryption.org/v1\n--- mac\n")),
    null,
  );
  assert.equal(parseStoreHeader(new Uint8Array(0)), null);
  assert.equal(
    parseStoreHeader(encode("-----BEGIN AGE ENCRYPTED FILE-----\n%%%\n")),
    null,
  );
});

Deno.test("replaceStore writes atomically and leaves no temp file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = `${dir}/nested/auth.json.age`;
    await replaceStore(store, encode("first"));
    await replaceStore(store, encode("second"));
    assert.equal(await Deno.readTextFile(store), "second");
    assert.deepEqual(
      [...Deno.readDirSync(`${dir}/nested`)].map((entry) => entry.name),
      ["auth.json.age"],
    );
    assert.equal((await Deno.stat(store)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(`${dir}/nested`)).mode! & 0o777, 0o700);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("replaceStore keeps a symlinked store linked", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const dotfiles = `${dir}/dotfiles`;
    const home = `${dir}/home`;
    await Deno.mkdir(dotfiles);
    await Deno.mkdir(home);
    await Deno.writeTextFile(`${dotfiles}/auth.json.age`, "old");
    const store = `${home}/auth.json.age`;
    await Deno.symlink("../dotfiles/auth.json.age", store);

    await replaceStore(store, encode("new"));
    assert.equal(Deno.readLinkSync(store), "../dotfiles/auth.json.age");
    assert.equal(await Deno.readTextFile(`${dotfiles}/auth.json.age`), "new");
    // The temp file went next to the target, which the rename requires.
    assert.deepEqual([...Deno.readDirSync(dotfiles)].map((e) => e.name), [
      "auth.json.age",
    ]);
    assert.deepEqual([...Deno.readDirSync(home)].map((e) => e.name), [
      "auth.json.age",
    ]);

    // A dangling link gets its target created.
    await Deno.remove(`${dotfiles}/auth.json.age`);
    await replaceStore(store, encode("again"));
    assert.equal(Deno.readLinkSync(store), "../dotfiles/auth.json.age");
    assert.equal(await Deno.readTextFile(`${dotfiles}/auth.json.age`), "again");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("replaceStore failure keeps the old store", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = `${dir}/auth.json.age`;
    await Deno.writeTextFile(store, "old");
    // A directory at the destination makes the rename fail after the temp file is written.
    await Deno.remove(store);
    await Deno.mkdir(store);
    await Deno.writeTextFile(`${store}/keep`, "x");
    await assert.rejects(() => replaceStore(store, encode("new")), CliError);
    assert.deepEqual([...Deno.readDirSync(dir)].map((entry) => entry.name), [
      "auth.json.age",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkReadableFile rejects directories FIFOs and large files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.throws(
      () => checkReadableFile(dir, "store", uid, MAX_STORE_BYTES),
      /store is a directory/,
    );
    const fifo = `${dir}/fifo`;
    const mkfifo = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.equal(mkfifo.code, 0);
    assert.throws(
      () => checkReadableFile(fifo, "identity file", uid, 10),
      /identity file is not a regular file/,
    );
    const large = `${dir}/large`;
    await Deno.writeFile(large, new Uint8Array(11));
    assert.throws(
      () => checkReadableFile(large, "recipients file", uid, 10),
      /too large \(11 bytes, limit 10\)/,
    );
    assert.throws(
      () => checkReadableFile(`${dir}/missing`, "store", uid, 10),
      /store not found/,
    );
    assert.equal(readStore(`${dir}/missing`, uid), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sharedAccess names group and other permission bits", () => {
  assert.equal(sharedAccess(0o600), null);
  assert.equal(sharedAccess(0o700), null);
  assert.equal(sharedAccess(0o640), "read");
  assert.equal(sharedAccess(0o604), "read");
  assert.equal(sharedAccess(0o620), "changed");
  assert.equal(sharedAccess(0o602), "changed");
  assert.equal(sharedAccess(0o666), "read and changed");
  assert.equal(sharedAccess(0o100644), "read");
});

Deno.test("inspectDirectoriesAbove finds reach and replace", async () => {
  const dir = await Deno.makeTempDir();
  const reachable = (file: string) =>
    inspectDirectoriesAbove(file, uid).reachableBits;
  try {
    const file = `${dir}/key.txt`;
    await Deno.writeTextFile(file, "");
    await Deno.chmod(dir, 0o700);
    assert.equal(reachable(file), 0o700);
    await Deno.chmod(dir, 0o710);
    assert.equal(reachable(file) & 0o070, 0o070);
    assert.equal(reachable(file) & 0o007, 0);
    assert.equal(inspectDirectoriesAbove(file, uid).replaceableFrom, null);
    await Deno.chmod(dir, 0o777);
    assert.equal(inspectDirectoriesAbove(file, uid).replaceableFrom, dir);
    await Deno.chmod(dir, 0o1777);
    assert.equal(inspectDirectoriesAbove(file, uid).replaceableFrom, null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
