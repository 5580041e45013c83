/**
 * Validation of codex's `auth.json`. Runs only inside the worker, because its
 * input is plaintext. Results carry no token material: only the login kind,
 * the `last_refresh` time and a reason written from the JSON's shape.
 *
 * @module
 */

/** The login form of an auth.json: an API key or ChatGPT tokens. */
export type LoginKind = "api-key" | "chatgpt";

/**
 * Reasons for a file that is not JSON text at all. Any JSON, even an array,
 * a string or text behind a byte order mark, may contain tokens.
 */
const UNPARSEABLE = {
  notUtf8: "not UTF-8 text",
  notJson: "not JSON",
} as const;

/**
 * Tells whether a reason from {@linkcode checkAuthJson} means the file is not
 * JSON text, so no login, old or new, can be read from it.
 *
 * @example
 * ```ts
 * const check = checkAuthJson(new TextEncoder().encode("garbage"));
 * if (!check.valid) console.log(isUnparseable(check.reason)); // true
 * ```
 */
export function isUnparseable(reason: string): boolean {
  return (Object.values(UNPARSEABLE) as string[]).includes(reason);
}

/** The outcome of {@linkcode checkAuthJson}. */
export type AuthCheck =
  | { valid: true; kind: LoginKind; lastRefresh: string | null }
  | { valid: false; reason: string };

const TOKEN_FIELDS = ["id_token", "access_token", "refresh_token"] as const;

function describe(value: unknown): string {
  if (value === undefined) return "missing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/**
 * Checks that bytes are an auth.json codex can use: a JSON object with a
 * non-empty `OPENAI_API_KEY` string (API-key form) or a `tokens` object whose
 * `id_token`, `access_token` and `refresh_token` are non-empty strings
 * (ChatGPT form). Unknown fields are allowed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const bytes = new TextEncoder().encode('{"OPENAI_API_KEY":"sk-x"}');
 * assert.deepEqual(checkAuthJson(bytes), { valid: true, kind: "api-key", lastRefresh: null });
 * ```
 */
export function checkAuthJson(bytes: Uint8Array): AuthCheck {
  let text: string;
  try {
    // ignoreBOM keeps a BOM in the text, so JSON.parse rejects it as codex
    // 0.171 does; a stripped BOM would unlock a file codex cannot read.
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(
      bytes,
    );
  } catch {
    return { valid: false, reason: UNPARSEABLE.notUtf8 };
  }
  if (text.startsWith("\ufeff")) {
    return {
      valid: false,
      reason: "starts with a byte order mark, which codex cannot read",
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // JSON.parse messages quote the input, so they are never passed on.
    return { valid: false, reason: UNPARSEABLE.notJson };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return {
      valid: false,
      reason: `JSON is ${describe(value)}, expected an object`,
    };
  }
  const auth = value as Record<string, unknown>;
  const lastRefresh = typeof auth.last_refresh === "string"
    ? auth.last_refresh
    : null;

  const tokens = auth.tokens;
  if (tokens !== undefined && tokens !== null) {
    if (typeof tokens !== "object" || Array.isArray(tokens)) {
      return {
        valid: false,
        reason: `"tokens" is ${describe(tokens)}, expected an object`,
      };
    }
    const record = tokens as Record<string, unknown>;
    for (const field of TOKEN_FIELDS) {
      const token = record[field];
      if (typeof token !== "string" || token === "") {
        return {
          valid: false,
          reason: `"tokens.${field}" is ${
            typeof token === "string" ? "empty" : describe(token)
          }, expected a non-empty string`,
        };
      }
    }
    return { valid: true, kind: "chatgpt", lastRefresh };
  }

  const apiKey = auth.OPENAI_API_KEY;
  if (typeof apiKey === "string" && apiKey !== "") {
    return { valid: true, kind: "api-key", lastRefresh };
  }
  return {
    valid: false,
    reason:
      'no credentials: neither a non-empty "OPENAI_API_KEY" nor a "tokens" object',
  };
}

/**
 * Compares two `last_refresh` times. Returns true when `candidate` is older
 * than `reference`. Missing or unparsable times never count as older.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.deepEqual(isOlder("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"), true);
 * assert.deepEqual(isOlder(null, "2026-02-01T00:00:00Z"), false);
 * ```
 */
export function isOlder(
  candidate: string | null,
  reference: string | null,
): boolean {
  if (candidate === null || reference === null) return false;
  const a = Date.parse(candidate);
  const b = Date.parse(reference);
  if (Number.isNaN(a) || Number.isNaN(b)) return false;
  return a < b;
}

/**
 * Like {@linkcode isOlder} for a candidate against the store's tokens, but a
 * store time still ahead of `now` never counts: it comes from a clock that
 * runs fast, or from before this clock was set back, and would make every
 * refresh made here look older until then.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const now = new Date("2026-01-01T00:00:00Z");
 * assert.deepEqual(isOlderThanStore("2025-12-31T23:00:00Z", "2025-12-31T23:30:00Z", now), true);
 * assert.deepEqual(isOlderThanStore("2025-12-31T23:00:00Z", "2026-01-01T00:05:00Z", now), false);
 * ```
 */
export function isOlderThanStore(
  candidate: string | null,
  store: string | null,
  now: Date = new Date(),
): boolean {
  return isOlder(candidate, store) && !isOlder(now.toISOString(), store);
}
