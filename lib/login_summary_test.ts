import assert from "node:assert/strict";
import { type LoginSummary, summarizeLogin } from "./login_summary.ts";

const encode = (text: string) => new TextEncoder().encode(text);

function base64url(text: string): string {
  const bytes = new TextEncoder().encode(text);
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-")
    .replaceAll("/", "_").replace(/=+$/, "");
}

/** Builds an unsigned JWT whose signature part is `signature`. */
function jwt(claims: unknown, signature: string): string {
  return `${base64url('{"alg":"none","typ":"JWT"}')}.${
    base64url(JSON.stringify(claims))
  }.${signature}`;
}

const canary = `CANARY${crypto.randomUUID().replaceAll("-", "")}`;
const EXP = 1_800_000_000;
const LAST_REFRESH = "2026-01-02T03:04:05.678Z";

/** Builds a ChatGPT-form auth.json in codex 0.171's layout. */
function chatGptAuth(
  tokens: { id_token?: string; access_token?: string } = {},
): Record<string, unknown> {
  return {
    auth_mode: "chatgpt",
    OPENAI_API_KEY: null,
    tokens: {
      id_token: tokens.id_token ?? jwt({
        email: "dev@example.com",
        exp: EXP,
        "https://api.openai.com/auth": {
          chatgpt_plan_type: "plus",
          chatgpt_account_id: "acct-test",
        },
      }, `id-${canary}`),
      access_token: tokens.access_token ??
        jwt({ exp: EXP, "https://api.openai.com/auth": {} }, `at-${canary}`),
      refresh_token: `rt-${canary}`,
      account_id: "acct-test",
    },
    last_refresh: LAST_REFRESH,
  };
}

function summarize(auth: unknown): LoginSummary | null {
  return summarizeLogin(encode(JSON.stringify(auth)));
}

/** Asserts that no 8-character substring of any secret appears in the text. */
function assertNoSecretIn(text: string, secrets: readonly string[]): void {
  for (const secret of secrets) {
    for (let start = 0; start + 8 <= secret.length; start++) {
      const window = secret.slice(start, start + 8);
      assert.ok(!text.includes(window), `found "${window}" in ${text}`);
    }
  }
}

Deno.test("summarizeLogin reads the API-key form", () => {
  const result = summarize({
    auth_mode: "apikey",
    OPENAI_API_KEY: `sk-${canary}`,
    last_refresh: LAST_REFRESH,
  });
  assert.deepEqual(result, {
    kind: "api-key",
    email: null,
    plan: null,
    accessTokenExpiresAt: null,
    lastRefresh: LAST_REFRESH,
  });
});

Deno.test("summarizeLogin reads the ChatGPT form", () => {
  assert.deepEqual(summarize(chatGptAuth()), {
    kind: "chatgpt",
    email: "dev@example.com",
    plan: "plus",
    accessTokenExpiresAt: new Date(EXP * 1000).toISOString(),
    lastRefresh: LAST_REFRESH,
  });
});

Deno.test("summarizeLogin falls back to the profile email", () => {
  const profileOnly = jwt({
    "https://api.openai.com/profile": { email: "profile@example.com" },
  }, "sig");
  assert.equal(
    summarize(chatGptAuth({ id_token: profileOnly }))?.email,
    "profile@example.com",
  );

  const both = jwt({
    email: "top@example.com",
    "https://api.openai.com/profile": { email: "profile@example.com" },
  }, "sig");
  assert.equal(
    summarize(chatGptAuth({ id_token: both }))?.email,
    "top@example.com",
  );
});

Deno.test("summarizeLogin rejects invalid auth.json", () => {
  assert.equal(summarizeLogin(encode("not json")), null);
  assert.equal(summarizeLogin(encode("{}")), null);
  assert.equal(summarizeLogin(new Uint8Array([0xff, 0xfe])), null);
});

Deno.test("summarizeLogin gives null fields for malformed JWTs", () => {
  const header = base64url('{"alg":"none"}');
  const payload = base64url('{"email":"dev@example.com","exp":1800000000}');
  // Base64 text whose length is 1 modulo 4 decodes to no byte string.
  const oneOver = payload + "A".repeat((5 - payload.length % 4) % 4);
  const wellFormed = summarize(
    chatGptAuth({ id_token: `${header}.${payload}.sig` }),
  );
  assert.equal(wellFormed?.email, "dev@example.com");

  const cases: [string, string][] = [
    ["two parts", `${header}.${payload}`],
    ["four parts", `${header}.${payload}.sig.extra`],
    ["empty header", `.${payload}.sig`],
    ["empty signature", `${header}.${payload}.`],
    ["characters outside base64url", `${header}.${payload}!.sig`],
    ["standard base64 alphabet", `${header}.${payload}+/.sig`],
    ["base64 padding", `${header}.${payload}==.sig`],
    ["impossible length", `${header}.${oneOver}.sig`],
    ["one character payload", `${header}.A.sig`],
    ["non-JSON payload", `${header}.${base64url("not json")}.sig`],
    ["array payload", `${header}.${base64url("[1,2]")}.sig`],
    ["string payload", `${header}.${base64url('"dev@example.com"')}.sig`],
    ["invalid UTF-8", `${header}.__4.sig`],
  ];
  for (const [name, token] of cases) {
    const result = summarize(
      chatGptAuth({ id_token: token, access_token: token }),
    );
    assert.deepEqual(result, {
      kind: "chatgpt",
      email: null,
      plan: null,
      accessTokenExpiresAt: null,
      lastRefresh: LAST_REFRESH,
    }, name);
  }
});

Deno.test("summarizeLogin rejects exp that is not a number", () => {
  const values: unknown[] = [
    "1800000000",
    null,
    true,
    [1800000000],
    { seconds: 1800000000 },
    1e20,
    -1e20,
  ];
  for (const exp of values) {
    const access = jwt({ exp }, "sig");
    const result = summarize(chatGptAuth({ access_token: access }));
    assert.equal(result?.accessTokenExpiresAt, null, JSON.stringify(exp));
  }
  const noExp = summarize(
    chatGptAuth({ access_token: jwt({ sub: "x" }, "sig") }),
  );
  assert.equal(noExp?.accessTokenExpiresAt, null);
});

Deno.test("summarizeLogin rejects claims of the wrong shape", () => {
  const cases: [string, unknown, Partial<LoginSummary>][] = [
    ["email not a string", { email: 42 }, { email: null }],
    ["email without @", { email: "dev.example.com" }, { email: null }],
    ["email with spaces", { email: "dev @example.com" }, { email: null }],
    ["email with escape", { email: "dev@example.com\u001b[2J" }, {
      email: null,
    }],
    ["email too long", { email: `${"a".repeat(250)}@example.com` }, {
      email: null,
    }],
    ["auth claim not an object", {
      "https://api.openai.com/auth": "plus",
    }, { plan: null }],
    ["plan not a string", {
      "https://api.openai.com/auth": { chatgpt_plan_type: 3 },
    }, { plan: null }],
    ["plan with spaces", {
      "https://api.openai.com/auth": { chatgpt_plan_type: "plus plan" },
    }, { plan: null }],
    ["plan in a free form", {
      "https://api.openai.com/auth": { chatgpt_plan_type: "self_serve-2" },
    }, { plan: "self_serve-2" }],
  ];
  for (const [name, claims, expected] of cases) {
    const result = summarize(chatGptAuth({ id_token: jwt(claims, "sig") }));
    assert.ok(result !== null, name);
    for (const [field, value] of Object.entries(expected)) {
      assert.equal(result[field as keyof LoginSummary], value, name);
    }
  }
});

Deno.test("summarizeLogin drops a last_refresh that is not a time", () => {
  for (const value of ["yesterday", "2026-01-01T00:00:00Z\u001b[2J", ""]) {
    const auth = { ...chatGptAuth(), last_refresh: value };
    assert.equal(summarize(auth)?.lastRefresh, null, JSON.stringify(value));
  }
  const missing = { ...chatGptAuth(), last_refresh: undefined };
  assert.equal(summarize(missing)?.lastRefresh, null);
});

Deno.test("summarizeLogin drops claims that repeat a token", () => {
  const refreshToken = `rt_${canary}`;
  const idToken = jwt({
    email: `${canary}@example.com`,
    "https://api.openai.com/auth": { chatgpt_plan_type: refreshToken },
  }, "sig");
  const auth = chatGptAuth({ id_token: idToken });
  (auth.tokens as Record<string, string>).refresh_token = refreshToken;
  const result = summarize(auth);
  assert.equal(result?.email, null);
  assert.equal(result?.plan, null);
});

Deno.test("summarizeLogin output contains no token material", () => {
  const auth = chatGptAuth();
  const tokens = auth.tokens as Record<string, string>;
  const secrets = [tokens.id_token, tokens.access_token, tokens.refresh_token];
  const result = summarize(auth);
  assert.equal(result?.email, "dev@example.com");
  assertNoSecretIn(JSON.stringify(result), secrets);

  const apiKey = `sk-${canary}`;
  const apiResult = summarize({ OPENAI_API_KEY: apiKey });
  assertNoSecretIn(JSON.stringify(apiResult), [apiKey]);
});
