import assert from "node:assert/strict";
import { join } from "node:path";
import { createFixture, fakeChatGptAuth, startTokenMock } from "./helpers.ts";

Deno.test("login status through the wrapper", async () => {
  const fixture = await createFixture();
  try {
    await fixture.writeStore(fakeChatGptAuth({ canary: fixture.canary }));
    const result = await fixture.run(["--", "login", "status"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout + result.stderr, /Logged in using ChatGPT/);
    const link = join(fixture.codexHome, "auth.json");
    assert.ok(Deno.lstatSync(link).isSymlink);
    assert.equal(Deno.readLinkSync(link), join(fixture.ramDir(), "auth.json"));
  } finally {
    await fixture.dispose();
  }
});

Deno.test("refresh rotates the stored token", async () => {
  const fixture = await createFixture();
  const mock = startTokenMock({ canary: fixture.canary, first: "rt-1" });
  try {
    await fixture.writeStore(
      fakeChatGptAuth({ canary: fixture.canary, refreshToken: "rt-1", expiresIn: -600 }),
    );
    const env = { CODEX_REFRESH_TOKEN_URL_OVERRIDE: mock.url };
    const result = await fixture.run(["--", "mcp", "list"], { env });
    console.log(result.code, result.stderr.slice(0, 2000), mock.requests);
    const stored = await fixture.readStore() as { tokens: { refresh_token: string } };
    assert.equal(stored.tokens.refresh_token, `rt-2-${fixture.canary}`);
  } finally {
    await mock.close();
    await fixture.dispose();
  }
});
