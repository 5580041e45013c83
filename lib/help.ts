/**
 * The text of `--help` and `--version`. Loaded only for those two flags, so
 * a codex start does not parse it.
 *
 * @module
 */

/**
 * The version `--version` prints. A test keeps it equal to the "version"
 * field of deno.json, which the release script reads.
 *
 * @example
 * ```ts
 * console.log(`secure-codex ${VERSION}`);
 * ```
 */
export const VERSION = "0.1.0";

/**
 * The help text printed by `-h` and `--help`.
 *
 * @example
 * ```ts
 * console.log(HELP_TEXT.split("\n")[0]);
 * ```
 */
export const HELP_TEXT = `Usage: secure-codex [options] [--] [codex arguments]

Runs codex with its auth.json decrypted into a RAM directory. The encrypted
store stays on disk; refreshed tokens are encrypted back to it at once.
Options are read up to "--" or the first argument that is not listed here;
everything after that is passed to codex unchanged.

Options:
  --auth-enc PATH          encrypted store (default: <codex home>/auth.json.age)
                           [SECURE_CODEX_AUTH_ENC]
  --real-codex-home PATH   codex home that gets the auth.json link
                           (default: $CODEX_HOME, else ~/.codex; for a
                           profile NAME: ~/.codex-NAME)
                           [SECURE_CODEX_REAL_CODEX_HOME]
  --identity PATH          age identity file for decryption; repeat for more
                           [SECURE_CODEX_IDENTITY, several separated by ":"]
  --recipients-file PATH   age recipients for write-back (default: the
                           store's <store>.recipients file, else the
                           "# public key:" and "Recipient:" lines of the
                           identity files) [SECURE_CODEX_RECIPIENTS_FILE]
  --ram-dir PATH           RAM directory for the plaintext copy, on tmpfs or
                           ramfs (default: $XDG_RUNTIME_DIR/secure-codex/<id>)
                           [SECURE_CODEX_RAM_DIR]
  --config PATH            config file (default:
                           $XDG_CONFIG_HOME/secure-codex/config.jsonc)
                           [SECURE_CODEX_CONFIG]
  --profile NAME           profile from the config file, with its own codex
                           home, store and RAM directory (default: default)
                           [SECURE_CODEX_PROFILE]
  --ttl DURATION           lock a session this long after its unlock, such as
                           30m, 8h, 1d; 0 never locks (default: 0)
                           [SECURE_CODEX_TTL]
  --unlock                 decrypt and link, then exit, so plain codex, IDE
                           extensions and codex's daemon can use the login
  --lock, --cleanup        save a changed RAM copy, remove it and exit
                           [SECURE_CODEX_CLEANUP=true]
  --watch                  stay in the foreground and save every change of
                           the RAM copy until SIGTERM (for a systemd service)
  --all-profiles           with --watch: watch every profile
  --import                 encrypt the plaintext <codex home>/auth.json into
                           the store, prove it decrypts, move the plaintext
                           into RAM and put the link in its place
  --rekey                  re-encrypt the store to --recipients-file (or
                           recipientsFile in the config file) after proving
                           the current store decrypts
  --status                 print whether the session is unlocked, its files,
                           recipients, login and warnings; no secret is shown
  --json                   with --status: print JSON
  --force                  with --cleanup: remove the RAM copy even when it
                           cannot be saved (its unsaved tokens are lost);
                           with --import: replace an existing store
  --completions SHELL      print a completion script for bash, zsh or fish
  --list-profiles          print the profile names, one per line
  -h, --help               print this help and exit
  --version                print the version and exit

Variables:
  SECURE_CODEX_KEEP        keep the RAM copy after codex exits (default: true);
                           false removes it when the last secure-codex exits
  Booleans accept true, false, 1, 0, yes, no, on, off, in any case.

Examples:
  secure-codex --identity ~/.config/age/key.txt -- login
  secure-codex --identity ~/.config/age/key.txt --import
  secure-codex -- exec "explain this repository"
  secure-codex --profile work -- login status
  secure-codex --status
  secure-codex --lock
`;
