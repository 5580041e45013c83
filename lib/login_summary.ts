/**
 * The public facts of a login for `secure-codex --status`: its kind, the
 * account's email and ChatGPT plan, when the access token expires and when the
 * tokens were last refreshed. Runs only inside the worker, because its input
 * is plaintext.
 *
 * JWT payloads are decoded here without checking signatures, as codex does to
 * show the same facts. A summary contains no token material: each field is
 * null or a value of a fixed shape (an email address, a plan name, a time)
 * read from a claim or from `last_refresh`. A value of another shape, or one
 * that shares 8 or more characters with a token or the API key, gives null.
 *
 * @module
 */

import { checkAuthJson, type LoginKind } from "./auth_json.ts";

/** The public facts of an auth.json, without token material. */
export interface LoginSummary {
  /** The login form, as {@linkcode checkAuthJson} reports it. */
  kind: LoginKind;
  /** The account's email from the ID token, or null when absent or malformed. */
  email: string | null;
  /** The ChatGPT plan type from the ID token, as the claim spells it (`plus`, `pro`, ...). */
  plan: string | null;
  /** When the access token expires (its `exp` claim), as ISO 8601 UTC. */
  accessTokenExpiresAt: string | null;
  /** The auth.json `last_refresh` time, as the file spells it. */
  lastRefresh: string | null;
}

/** The claim under which OpenAI puts ChatGPT account data, the plan included. */
const AUTH_CLAIM = "https://api.openai.com/auth";
/**
 * The claim under which OpenAI puts profile data. codex reads its `email`
 * when the top-level `email` claim is missing.
 */
const PROFILE_CLAIM = "https://api.openai.com/profile";

/** The maximum length of an email address, in characters. Longer claims are dropped. */
const MAX_EMAIL_LENGTH = 254;
const EMAIL_SHAPE = /^[^\s@]+@[^\s@]+$/;
const PLAN_SHAPE = /^[A-Za-z0-9._-]{1,64}$/;
const MAX_TIME_LENGTH = 64;
const BASE64URL_SHAPE = /^[A-Za-z0-9_-]+$/;
/** The largest time in milliseconds a JavaScript Date can hold. */
const MAX_DATE_MS = 8.64e15;

type Claims = Record<string, unknown>;

/**
 * Summarizes an auth.json for `--status`. Returns null when
 * {@linkcode checkAuthJson} rejects the bytes. A malformed token or claim
 * gives null in its field, never an exception. The caller keeps the bytes and
 * zeroes them as before.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const bytes = new TextEncoder().encode(
 *   '{"OPENAI_API_KEY":"sk-x","last_refresh":"2026-01-01T00:00:00Z"}',
 * );
 * assert.deepEqual(summarizeLogin(bytes), {
 *   kind: "api-key",
 *   email: null,
 *   plan: null,
 *   accessTokenExpiresAt: null,
 *   lastRefresh: "2026-01-01T00:00:00Z",
 * });
 * ```
 */
export function summarizeLogin(bytes: Uint8Array): LoginSummary | null {
  const check = checkAuthJson(bytes);
  if (!check.valid) return null;

  // checkAuthJson returned valid above, which it does only for UTF-8 JSON of
  // an object, so this decode and parse cannot fail.
  const auth = JSON.parse(new TextDecoder().decode(bytes)) as Claims;
  const tokens = isObject(auth.tokens) ? auth.tokens : {};
  const secrets = [auth.OPENAI_API_KEY, ...Object.values(tokens)].filter(
    (value): value is string => typeof value === "string",
  );

  let email: string | null = null;
  let plan: string | null = null;
  let accessTokenExpiresAt: string | null = null;
  if (check.kind === "chatgpt") {
    // checkAuthJson checked that both tokens are non-empty strings.
    const idClaims = decodeJwtPayload(tokens.id_token as string);
    if (idClaims !== null) {
      email = emailOf(idClaims);
      plan = planOf(idClaims);
    }
    const accessClaims = decodeJwtPayload(tokens.access_token as string);
    if (accessClaims !== null) accessTokenExpiresAt = expiryOf(accessClaims);
  }

  // The shape checks already keep tokens out. This check also drops a claim
  // or last_refresh that repeats part of a token, whatever its shape.
  const withoutSecrets = (value: string | null) =>
    value !== null && sharesSubstring(value, secrets) ? null : value;
  return {
    kind: check.kind,
    email: withoutSecrets(email),
    plan: withoutSecrets(plan),
    accessTokenExpiresAt,
    lastRefresh: withoutSecrets(timeOrNull(check.lastRefresh)),
  };
}

/** The length of the shortest common substring that counts as token material. */
const SECRET_OVERLAP = 8;

/** Detects whether a value and any of the secrets share a substring of {@linkcode SECRET_OVERLAP} characters. */
function sharesSubstring(value: string, secrets: readonly string[]): boolean {
  for (let start = 0; start + SECRET_OVERLAP <= value.length; start++) {
    const window = value.slice(start, start + SECRET_OVERLAP);
    if (secrets.some((secret) => secret.includes(window))) return true;
  }
  return false;
}

/**
 * Decodes the payload of a compact JWS (`header.payload.signature`) without
 * checking the signature. It requires exactly three non-empty parts (codex's
 * `parse_id_token` reads the first three) and base64url without padding, as
 * codex does. Returns null when the token or its payload is malformed, or the
 * payload is not a JSON object.
 */
function decodeJwtPayload(token: string): Claims | null {
  const parts = token.split(".");
  if (parts.length !== 3 || parts.some((part) => part === "")) return null;
  const payload = parts[1];
  // A length of 1 modulo 4 cannot come from any byte string.
  if (!BASE64URL_SHAPE.test(payload) || payload.length % 4 === 1) return null;

  const base64 = payload.replaceAll("-", "+").replaceAll("_", "/") +
    "=".repeat((4 - payload.length % 4) % 4);
  let text: string;
  try {
    const binary = atob(base64);
    const raw = Uint8Array.from(binary, (char) => char.charCodeAt(0));
    text = new TextDecoder("utf-8", { fatal: true }).decode(raw);
  } catch {
    return null;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // JSON.parse messages quote the input, so they are never passed on.
    return null;
  }
  return isObject(value) ? value : null;
}

function isObject(value: unknown): value is Claims {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Reads the email as codex does: the `email` claim, else the profile claim's `email`. */
function emailOf(claims: Claims): string | null {
  const profile = claims[PROFILE_CLAIM];
  const email = typeof claims.email === "string"
    ? claims.email
    : isObject(profile) && typeof profile.email === "string"
    ? profile.email
    : null;
  if (email === null || email.length > MAX_EMAIL_LENGTH) return null;
  if (hasControlCharacter(email)) return null;
  return EMAIL_SHAPE.test(email) ? email : null;
}

/** Reads `chatgpt_plan_type` from the auth claim, as codex does. */
function planOf(claims: Claims): string | null {
  const auth = claims[AUTH_CLAIM];
  if (!isObject(auth)) return null;
  const plan = auth.chatgpt_plan_type;
  return typeof plan === "string" && PLAN_SHAPE.test(plan) ? plan : null;
}

/** Converts the `exp` claim (seconds since the Unix epoch) to ISO 8601. */
function expiryOf(claims: Claims): string | null {
  const exp = claims.exp;
  if (typeof exp !== "number" || !Number.isFinite(exp)) return null;
  const milliseconds = exp * 1000;
  // toISOString throws a RangeError outside the Date range.
  if (Math.abs(milliseconds) > MAX_DATE_MS) return null;
  return new Date(milliseconds).toISOString();
}

/** Passes on a time string that parses as a date and has no control characters. */
function timeOrNull(value: string | null): string | null {
  if (value === null || value.length > MAX_TIME_LENGTH) return null;
  if (hasControlCharacter(value)) return null;
  return Number.isNaN(Date.parse(value)) ? null : value;
}

/** Detects C0 and C1 control characters, which could drive a terminal when printed. */
function hasControlCharacter(text: string): boolean {
  // deno-lint-ignore no-control-regex
  return /[\u0000-\u001f\u007f-\u009f]/.test(text);
}
