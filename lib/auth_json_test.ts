import assert from "node:assert/strict";
import {
  checkAuthJson,
  isOlder,
  isOlderThanStore,
  isUnparseable,
} from "./auth_json.ts";

const encode = (text: string) => new TextEncoder().encode(text);
const tokens = {
  id_token: "a.b.c",
  access_token: "d.e.f",
  refresh_token: "rt",
};

Deno.test("checkAuthJson accepts the ChatGPT form", () => {
  const result = checkAuthJson(
    encode(JSON.stringify({ tokens, last_refresh: "2026-01-01T00:00:00Z" })),
  );
  assert.deepEqual(result, {
    valid: true,
    kind: "chatgpt",
    lastRefresh: "2026-01-01T00:00:00Z",
  });
});

Deno.test("checkAuthJson accepts the API-key form", () => {
  const result = checkAuthJson(
    encode('{"auth_mode":"apikey","OPENAI_API_KEY":"sk-1"}'),
  );
  assert.deepEqual(result, { valid: true, kind: "api-key", lastRefresh: null });
});

Deno.test("checkAuthJson rejects invalid shapes without echoing input", () => {
  const secret = "sk-SECRET-VALUE";
  const cases: [string, RegExp][] = [
    [`not json ${secret}`, /^not JSON$/],
    ["null", /JSON is null, expected an object/],
    [`["${secret}"]`, /JSON is an array/],
    ["42", /JSON is a number/],
    ["{}", /no credentials/],
    [`{"OPENAI_API_KEY":""}`, /no credentials/],
    [`{"tokens":"${secret}"}`, /"tokens" is a string/],
    [
      `{"tokens":{"id_token":"x","access_token":"y"}}`,
      /^"tokens.refresh_token" is missing, expected a non-empty string$/,
    ],
    [
      `{"tokens":{"id_token":{},"access_token":"y","refresh_token":"z"}}`,
      /^"tokens.id_token" is an object, expected a non-empty string$/,
    ],
    [
      `{"tokens":{"id_token":"","access_token":"y","refresh_token":"z"}}`,
      /tokens.id_token" is empty/,
    ],
  ];
  for (const [input, reason] of cases) {
    const result = checkAuthJson(encode(input));
    assert.equal(result.valid, false, input);
    if (!result.valid) {
      assert.match(result.reason, reason, input);
      assert.ok(!result.reason.includes(secret), input);
    }
  }
});

Deno.test("checkAuthJson rejects invalid UTF-8", () => {
  const result = checkAuthJson(new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]));
  assert.deepEqual(result, { valid: false, reason: "not UTF-8 text" });
});

Deno.test("isOlder compares times and ignores missing ones", () => {
  assert.equal(isOlder("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"), true);
  assert.equal(isOlder("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"), false);
  assert.equal(isOlder("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"), false);
  assert.equal(isOlder(null, "2026-01-01T00:00:00Z"), false);
  assert.equal(isOlder("garbage", "2026-01-01T00:00:00Z"), false);
});

Deno.test("checkAuthJson rejects a byte order mark", () => {
  const bytes = new TextEncoder().encode('\ufeff{"OPENAI_API_KEY":"sk-1"}');
  assert.deepEqual(checkAuthJson(bytes), {
    valid: false,
    reason: "starts with a byte order mark, which codex cannot read",
  });
});

Deno.test("isUnparseable accepts only non-JSON text", () => {
  const reasonOf = (text: string | Uint8Array) => {
    const bytes = typeof text === "string"
      ? new TextEncoder().encode(text)
      : text;
    const check = checkAuthJson(bytes);
    assert.equal(check.valid, false);
    return (check as { reason: string }).reason;
  };
  for (
    const text of ["garbage", '{"tokens":', new Uint8Array([0xff, 0xfe])]
  ) {
    assert.equal(isUnparseable(reasonOf(text)), true, String(text));
  }
  // JSON of any shape, or behind a byte order mark, may contain tokens.
  for (
    const text of ["{}", '{"tokens":5}', "[]", "null", '"rt"', "\ufeff{}"]
  ) {
    assert.equal(isUnparseable(reasonOf(text)), false, text);
  }
});

Deno.test("isOlderThanStore ignores a store time ahead of now", () => {
  const now = new Date("2026-06-01T12:00:00Z");
  const older = "2026-06-01T11:00:00Z";
  assert.equal(isOlderThanStore(older, "2026-06-01T11:30:00Z", now), true);
  assert.equal(isOlderThanStore(older, "2026-06-01T12:05:00Z", now), false);
  assert.equal(isOlderThanStore("2026-06-01T11:45:00Z", older, now), false);
  assert.equal(isOlderThanStore(older, null, now), false);
});
