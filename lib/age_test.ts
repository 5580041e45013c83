import assert from "node:assert/strict";
import {
  ageDecrypt,
  ageEncrypt,
  DAMAGED_FILE_REASON,
  recipientsFromIdentity,
} from "./age.ts";
import { hasTerminal } from "./output.ts";

const env = { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" };

Deno.test("recipientsFromIdentity reads native and plugin comments", () => {
  const text = [
    "# created: 2026-01-01T00:00:00Z",
    "# public key: age1native",
    "AGE-SECRET-KEY-1SECRET",
    "#       Recipient: age1yubikey1plugin",
    "# Recipient: age1native",
    "AGE-PLUGIN-YUBIKEY-1SECRET",
  ].join("\n");
  assert.deepEqual(recipientsFromIdentity(text), [
    "age1native",
    "age1yubikey1plugin",
  ]);
});

Deno.test("recipientsFromIdentity ignores other lines", () => {
  assert.deepEqual(
    recipientsFromIdentity("AGE-SECRET-KEY-1X\n# public key: not-a-key\n"),
    [],
  );
});

Deno.test("age round trip through pipes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const identity = `${dir}/key.txt`;
    const keygen = await new Deno.Command("age-keygen", {
      args: ["-o", identity],
      stderr: "piped",
    }).output();
    assert.equal(keygen.code, 0);
    const recipients = recipientsFromIdentity(
      await Deno.readTextFile(identity),
    );
    assert.equal(recipients.length, 1);
    const plaintext = new TextEncoder().encode('{"OPENAI_API_KEY":"sk-test"}');
    const encrypted = await ageEncrypt(plaintext, { recipients }, env);
    assert.ok(encrypted.ok);
    if (!encrypted.ok) return;
    const decrypted = await ageDecrypt(encrypted.output, [identity], env);
    assert.ok(decrypted.ok);
    if (decrypted.ok) assert.deepEqual(decrypted.output, plaintext);
    // The same from a file that age opens itself.
    const store = `${dir}/auth.json.age`;
    await Deno.writeFile(store, encrypted.output);
    const fromFile = await ageDecrypt(store, [identity], env);
    assert.ok(fromFile.ok);
    if (fromFile.ok) assert.deepEqual(fromFile.output, plaintext);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ageDecrypt names a damaged file, not a wrong identity", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const keygen = async (path: string) => {
      const result = await new Deno.Command("age-keygen", {
        args: ["-o", path],
        stderr: "piped",
      }).output();
      assert.equal(result.code, 0);
      return recipientsFromIdentity(await Deno.readTextFile(path));
    };
    const identity = `${dir}/key.txt`;
    const other = `${dir}/other.txt`;
    const recipients = await keygen(identity);
    await keygen(other);
    const encrypted = await ageEncrypt(
      new TextEncoder().encode("x".repeat(1000)),
      { recipients },
      env,
    );
    assert.ok(encrypted.ok);
    if (!encrypted.ok) return;
    const bytes = encrypted.output;
    const closing = new TextDecoder().decode(bytes).indexOf("\n--- ");
    const alteredMac = bytes.slice();
    alteredMac[closing + 6] ^= 1;
    const damaged = [
      bytes.slice(0, bytes.length - 20),
      bytes.slice(0, closing + 60),
      alteredMac,
    ];
    for (const [index, input] of damaged.entries()) {
      const result = await ageDecrypt(input, [identity], env);
      assert.equal(result.ok, false, `case ${index}`);
      if (!result.ok) {
        assert.ok(
          result.reason.endsWith(DAMAGED_FILE_REASON),
          `case ${index}: ${result.reason}`,
        );
      }
    }
    // An ASCII-armored store cut short.
    const armored = await new Deno.Command("age", {
      args: ["-e", "-a", "-r", recipients[0]],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const writer = armored.stdin.getWriter();
    await writer.write(new TextEncoder().encode("x".repeat(1000)));
    await writer.close();
    const armor = (await armored.output()).stdout;
    const cutArmor = await ageDecrypt(armor.slice(0, 300), [identity], env);
    assert.equal(cutArmor.ok, false);
    if (!cutArmor.ok) {
      assert.ok(cutArmor.reason.endsWith(DAMAGED_FILE_REASON), cutArmor.reason);
    }

    const wrongKey = await ageDecrypt(bytes, [other], env);
    assert.equal(wrongKey.ok, false);
    if (!wrongKey.ok) {
      assert.equal(wrongKey.reason, "age failed (exit code 1)");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ageEncrypt reports an invalid recipient", async () => {
  const result = await ageEncrypt(
    new Uint8Array([1]),
    { recipients: ["age1invalid"] },
    env,
  );
  assert.equal(result.ok, false);
  if (!result.ok) assert.match(result.reason, /age failed \(exit code 1\)/);
});

Deno.test({
  name: "ageEncrypt with a passphrase fails without a terminal",
  // Runs where the test process has no controlling terminal, as in CI.
  ignore: hasTerminal(),
  fn: async () => {
    const result = await ageEncrypt(
      new TextEncoder().encode("x"),
      { passphrase: true },
      env,
    );
    assert.equal(result.ok, false);
    if (!result.ok) assert.match(result.reason, /passphrase/);
  },
});
