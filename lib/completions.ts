/**
 * Shell completion scripts for `secure-codex`, printed by `--completions`.
 *
 * Each script completes secure-codex's own options from
 * {@linkcode COMPLETION_OPTIONS} and follows the parser's rule for where
 * codex's arguments begin: after `--`, or at the first word that is not one of
 * our options. From there it hands completion to codex's own completion when
 * the shell has one loaded (bash: the function that `complete -p codex` names;
 * zsh: the function `compdef` registered for `codex`, usually `_codex`; fish:
 * `complete -C "codex ..."`), and otherwise completes file names. A word that
 * starts with `-` but matches none of our options is completed as codex's
 * first argument too, because the parser passes it to codex.
 *
 * `--profile` completes the names that `secure-codex --list-profiles` prints,
 * passing on a `--config` given earlier on the line. Errors of that command are
 * ignored, so the list is just empty.
 *
 * @module
 */

/** The shells that {@linkcode completionScript} writes scripts for. */
export type CompletionShell = "bash" | "zsh" | "fish";

/**
 * The kind of an option's value, which decides how it is completed: `path` as
 * a file name, `profile` from `secure-codex --list-profiles`, `shell` from
 * {@linkcode COMPLETION_SHELLS}, `duration` not at all (zsh shows the expected
 * form), and `none` for a flag without a value.
 */
export type CompletionValueKind =
  | "path"
  | "profile"
  | "duration"
  | "shell"
  | "none";

/** One of secure-codex's options, as the completion scripts offer it. */
export interface CompletionOption {
  /** The option as typed, such as `--identity`, `-h` or `--`. */
  readonly name: string;
  /** The kind of value the option takes. */
  readonly valueKind: CompletionValueKind;
  /** A one-line description, shown by zsh and fish next to the option. */
  readonly description: string;
}

/**
 * The shells `--completions` accepts, in the order they are offered.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.ok(COMPLETION_SHELLS.includes("fish"));
 * ```
 */
export const COMPLETION_SHELLS: readonly CompletionShell[] = [
  "bash",
  "zsh",
  "fish",
];

/**
 * secure-codex's options in the order of the help text, including `--`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const identity = COMPLETION_OPTIONS.find((option) => option.name === "--identity");
 * assert.equal(identity?.valueKind, "path");
 * ```
 */
export const COMPLETION_OPTIONS: readonly CompletionOption[] = [
  {
    name: "--auth-enc",
    valueKind: "path",
    description: "encrypted store",
  },
  {
    name: "--real-codex-home",
    valueKind: "path",
    description: "codex home that gets the auth.json link",
  },
  {
    name: "--identity",
    valueKind: "path",
    description: "age identity file for decryption, repeat for more",
  },
  {
    name: "--recipients-file",
    valueKind: "path",
    description: "age recipients for write-back",
  },
  {
    name: "--ram-dir",
    valueKind: "path",
    description: "RAM directory for the plaintext copy, on tmpfs or ramfs",
  },
  { name: "--config", valueKind: "path", description: "config file" },
  {
    name: "--profile",
    valueKind: "profile",
    description: "profile from the config file",
  },
  {
    name: "--ttl",
    valueKind: "duration",
    description: "lock a session this long after its unlock, such as 8h",
  },
  {
    name: "--unlock",
    valueKind: "none",
    description: "decrypt and link, then exit",
  },
  {
    name: "--lock",
    valueKind: "none",
    description: "save a changed RAM copy, remove it and exit",
  },
  {
    name: "--cleanup",
    valueKind: "none",
    description: "save a changed RAM copy, remove it and exit",
  },
  {
    name: "--watch",
    valueKind: "none",
    description: "save every change of the RAM copy until SIGTERM",
  },
  {
    name: "--all-profiles",
    valueKind: "none",
    description: "with --watch, watch every profile",
  },
  {
    name: "--import",
    valueKind: "none",
    description: "encrypt the plaintext auth.json into the store",
  },
  {
    name: "--rekey",
    valueKind: "none",
    description: "re-encrypt the store to --recipients-file",
  },
  {
    name: "--status",
    valueKind: "none",
    description: "print the session's state, login and warnings",
  },
  {
    name: "--json",
    valueKind: "none",
    description: "with --status, print JSON",
  },
  {
    name: "--force",
    valueKind: "none",
    description: "with --cleanup or --import, discard unsaved tokens or " +
      "replace the store",
  },
  {
    name: "--completions",
    valueKind: "shell",
    description: "print a completion script for bash, zsh or fish",
  },
  {
    name: "--list-profiles",
    valueKind: "none",
    description: "print the profile names, one per line",
  },
  { name: "-h", valueKind: "none", description: "print the help and exit" },
  { name: "--help", valueKind: "none", description: "print the help and exit" },
  {
    name: "--version",
    valueKind: "none",
    description: "print the version and exit",
  },
  {
    name: "--",
    valueKind: "none",
    description: "pass the rest of the line to codex",
  },
];

/**
 * Returns a completion script for the `secure-codex` command in the given
 * shell. bash loads it with `source <(secure-codex --completions bash)`, and
 * zsh the same way after `compinit` or from a file `_secure-codex` on
 * `$fpath`. fish loads it with `secure-codex --completions fish | source`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.match(completionScript("bash"), /complete -F _secure_codex secure-codex/);
 * ```
 */
export function completionScript(shell: CompletionShell): string {
  switch (shell) {
    case "bash":
      return bashScript();
    case "zsh":
      return zshScript();
    case "fish":
      return fishScript();
    default:
      throw new RangeError(
        `unsupported shell: ${JSON.stringify(shell)} ` +
          `(expected one of ${COMPLETION_SHELLS.join(", ")})`,
      );
  }
}

/** Returns the names of the options whose value is of the given kind. */
function namesOf(kind: CompletionValueKind): string[] {
  return COMPLETION_OPTIONS.filter((option) => option.valueKind === kind)
    .map((option) => option.name);
}

/** Returns the names of the options that take a value. */
function valueOptionNames(): string[] {
  return COMPLETION_OPTIONS.filter((option) => option.valueKind !== "none")
    .map((option) => option.name);
}

/** Returns the names of the flags, without `--`. */
function flagNames(): string[] {
  return namesOf("none").filter((name) => name !== "--");
}

// Option names are lowercase letters and dashes (completions_test.ts checks
// this), so they need no quoting in any shell. Descriptions are quoted by each
// shell's helper below.

// NOTE: tested with bash 5.2 only. The script uses nothing newer than bash 4.0
// (mapfile, compopt).
function bashScript(): string {
  const shells = COMPLETION_SHELLS.join(" ");
  return `# bash completion for secure-codex, for bash 4 or later. It does not need
# bash-completion. Load it with: source <(secure-codex --completions bash)

# Completes codex's arguments, which start at COMP_WORDS[$1], with the function
# that \`complete -p codex\` names. bash-completion, where installed, is asked to
# load codex's completion first. File names are offered when there is no such
# function or it offers nothing.
_secure_codex_codex() {
  local cur=\${COMP_WORDS[COMP_CWORD]} spec function=
  if ! complete -p codex &>/dev/null && declare -F _completion_loader &>/dev/null; then
    _completion_loader codex
  fi
  spec=$(complete -p codex 2>/dev/null)
  [[ $spec =~ -F\\ ([^ ]+) ]] && function=\${BASH_REMATCH[1]}
  if [[ -n $function ]] && declare -F "$function" &>/dev/null; then
    # codex's completion sees the line as if it started with "codex".
    local COMP_WORDS=(codex "\${COMP_WORDS[@]:$1}")
    local COMP_CWORD=$((COMP_CWORD - $1 + 1))
    local COMP_LINE="\${COMP_WORDS[*]}" before="\${COMP_WORDS[*]:0:COMP_CWORD+1}"
    local COMP_POINT=\${#before}
    "$function" codex "$cur" "\${COMP_WORDS[COMP_CWORD-1]}"
  fi
  if ((\${#COMPREPLY[@]} == 0)); then
    compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
  fi
}

# Completes the value of option $1 from the prefix $2. Further arguments
# (--config=PATH) are passed to \`secure-codex --list-profiles\`. Returns 1 for
# an option that takes no value.
_secure_codex_value() {
  local name
  case $1 in
    ${namesOf("path").join("|")})
      compopt -o filenames 2>/dev/null
      mapfile -t COMPREPLY < <(compgen -f -- "$2")
      ;;
    ${namesOf("profile").join("|")})
      # A loop, not compgen -W, which would expand $(...) in a profile name.
      while IFS= read -r name; do
        [[ $name == "$2"* ]] && COMPREPLY+=("$name")
      done < <(secure-codex "\${@:3}" --list-profiles 2>/dev/null </dev/null)
      ;;
    ${namesOf("shell").join("|")})
      mapfile -t COMPREPLY < <(compgen -W "${shells}" -- "$2")
      ;;
    ${namesOf("duration").join("|")})
      # A duration such as 30m, 8h or 1d: there is nothing to list.
      ;;
    *) return 1 ;;
  esac
}

_secure_codex() {
  local IFS=$' \\t\\n' cur=\${COMP_WORDS[COMP_CWORD]} i=1 option= config=()
  COMPREPLY=()
  # Skip the options before the cursor the way secure-codex's parser reads them.
  while ((i < COMP_CWORD)); do
    case \${COMP_WORDS[i]} in
      --)
        _secure_codex_codex $((i + 1))
        return
        ;;
      ${valueOptionNames().join("|")})
        option=\${COMP_WORDS[i]}
        # With "=" in COMP_WORDBREAKS, as by default, bash splits
        # --option=value into the three words --option, = and value.
        [[ \${COMP_WORDS[i + 1]} == = ]] && ((i++))
        [[ $option == --config ]] && config=("--config=\${COMP_WORDS[i + 1]}")
        ((i += 2))
        ;;
      --config=*)
        config=("\${COMP_WORDS[i]}")
        ((i++))
        ;;
      --*=* | ${flagNames().join(" | ")})
        ((i++))
        ;;
      *)
        _secure_codex_codex "$i"
        return
        ;;
    esac
  done

  if ((i > COMP_CWORD)); then
    # The cursor is on the value of $option.
    [[ $cur == = ]] && cur=
    _secure_codex_value "$option" "$cur" "\${config[@]}"
  elif [[ $cur == --*=* ]] && _secure_codex_value "\${cur%%=*}" "\${cur#*=}" "\${config[@]}"; then
    # COMP_WORDBREAKS without "=": the reply must repeat the option.
    COMPREPLY=("\${COMPREPLY[@]/#/\${cur%%=*}=}")
  elif [[ $cur == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "${
    COMPLETION_OPTIONS.map((option) => option.name).join(" ")
  }" -- "$cur")
    # The parser passes a word that is none of our options to codex.
    ((\${#COMPREPLY[@]} > 0)) || _secure_codex_codex "$i"
  else
    _secure_codex_codex "$i"
  fi
}

complete -F _secure_codex secure-codex
`;
}

/** Quotes text for a single-quoted `_arguments` spec or `_describe` item. */
function zshDescription(text: string): string {
  return text.replace(
    /[\\'[\]:$`]/g,
    (character) => character === "'" ? "'\\''" : `\\${character}`,
  );
}

/** Returns the `_arguments` spec of one option. */
function zshSpec(option: CompletionOption): string {
  const description = `[${zshDescription(option.description)}]`;
  switch (option.valueKind) {
    case "none":
      return `'${option.name}${description}'`;
    case "path":
      // --identity may be repeated; _arguments hides other options once given.
      return `'${
        option.name === "--identity" ? "*" : ""
      }${option.name}=${description}:path:_files'`;
    case "profile":
      return `'${option.name}=${description}:profile:_secure_codex_profiles'`;
    case "shell":
      return `'${option.name}=${description}:shell:(${
        COMPLETION_SHELLS.join(" ")
      })'`;
    case "duration":
      return `'${option.name}=${description}:duration (such as 30m, 8h, 1d): '`;
  }
}

function zshScript(): string {
  const specs = COMPLETION_OPTIONS.filter((option) => option.name !== "--")
    .map((option) => `    ${zshSpec(option)}`).join(" \\\n");
  const end = COMPLETION_OPTIONS.find((option) => option.name === "--")!;
  return `#compdef secure-codex
# zsh completion for secure-codex. Load it with
# source <(secure-codex --completions zsh) after compinit, or save it as
# _secure-codex in a directory on $fpath.

# Completes codex's arguments, which start at words[$1], with the function that
# compdef registered for codex, else file names.
_secure_codex_codex() {
  words=(codex "\${(@)words[$1,-1]}")
  ((CURRENT -= $1 - 2))
  local completer=\${_comps[codex]}
  if [[ -n $completer ]]; then
    local service=codex curcontext=\${curcontext%:*:*}:codex:
    "$completer"
  else
    _files
  fi
}

# Adds the names that \`secure-codex --list-profiles\` prints, for the last
# --config on the line.
_secure_codex_profiles() {
  local -a config profiles
  local i=\${words[(I)--config(|=*)]}
  case $words[i] in
    --config) config=("--config=\${(Q)words[i + 1]}") ;;
    --config=*) config=("\${(Q)words[i]}") ;;
  esac
  profiles=(\${(f)"$(secure-codex $config --list-profiles 2>/dev/null </dev/null)"})
  compadd "$@" -a profiles
}

_secure_codex() {
  local i=2
  # Skip the options before the cursor the way secure-codex's parser reads them.
  while ((i < CURRENT)); do
    case $words[i] in
      --)
        _secure_codex_codex $((i + 1))
        return
        ;;
      ${valueOptionNames().join("|")})
        ((i += 2))
        ;;
      --*=* | ${flagNames().join(" | ")})
        ((i++))
        ;;
      *)
        _secure_codex_codex $i
        return
        ;;
    esac
  done
  # A word at the cursor that is not an option starts codex's arguments.
  if ((i == CURRENT)) && [[ $PREFIX != -* ]]; then
    _secure_codex_codex $i
    return
  fi

  local ret=1
  _arguments : \\
${specs} && ret=0
  if ((i == CURRENT)); then
    local -a end=('--:${zshDescription(end.description)}')
    _describe -t end-of-options 'end of options' end && ret=0
    # The parser passes a word that is none of our options to codex.
    ((ret == 0)) || { _secure_codex_codex $i && ret=0; }
  fi
  return ret
}

if [[ $funcstack[1] == _secure-codex ]]; then
  # Autoloaded from $fpath: this file is the completion function.
  _secure_codex "$@"
else
  compdef _secure_codex secure-codex
fi
`;
}

/** Quotes text as a fish single-quoted string. */
function fishQuote(text: string): string {
  return `'${text.replace(/[\\']/g, (character) => `\\${character}`)}'`;
}

/** Returns the fish `complete` line of one option. */
function fishLine(option: CompletionOption): string {
  const parts = [
    "complete -c secure-codex -n 'not __secure_codex_in_codex'",
  ];
  if (option.name === "--") parts.push("-f -a '--'");
  else if (option.name.startsWith("--")) {
    parts.push(`-l ${option.name.slice(2)}`);
  } else parts.push(`-s ${option.name.slice(1)}`);
  switch (option.valueKind) {
    case "path":
      parts.push("-r -F");
      break;
    case "profile":
      parts.push("-x -a '(__secure_codex_profiles)'");
      break;
    case "shell":
      parts.push(`-x -a '${COMPLETION_SHELLS.join(" ")}'`);
      break;
    case "duration":
      parts.push("-x");
      break;
    case "none":
      break;
  }
  parts.push(`-d ${fishQuote(option.description)}`);
  return parts.join(" ");
}

// NOTE: tested with fish 3.6 only. fish 4.0 adds `commandline -x` and calls
// `-o`, used here, obsolete; fish 3.6 has only `-o`.
function fishScript(): string {
  const names = COMPLETION_OPTIONS.map((option) => option.name).join(" ");
  return `# fish completion for secure-codex. Load it with
# secure-codex --completions fish | source
# or save it as ~/.config/fish/completions/secure-codex.fish.

# Prints codex's arguments before the cursor, one per line, and returns 0 when
# the cursor is in them. Returns 1 while it is in secure-codex's options, the
# way secure-codex's parser reads them.
function __secure_codex_codex_args
    set -l tokens (commandline -opc)
    set -e tokens[1]
    while set -q tokens[1]
        switch $tokens[1]
            case '--'
                set -e tokens[1]
                string join \\n -- $tokens
                return 0
            case ${valueOptionNames().join(" ")}
                # The cursor is on this option's value.
                set -q tokens[2]; or return 1
                set -e tokens[1..2]
            case '--*=*' ${flagNames().join(" ")}
                set -e tokens[1]
            case '*'
                string join \\n -- $tokens
                return 0
        end
    end
    # At the cursor, a word that starts none of our options starts codex's
    # arguments, because the parser passes it to codex.
    set -l current (commandline -ct)
    string match -q -- '-*' "$current"; or return 0
    set -l prefix (string replace -r -- '=.*' '' "$current" | string escape --style=regex)
    not string match -qr -- "^$prefix" ${names}
end

function __secure_codex_in_codex
    __secure_codex_codex_args >/dev/null
end

# Completes codex's arguments with codex's own completion, which fish loads
# when there is one; without it, fish completes file names.
function __secure_codex_complete_codex
    set -l words codex (string escape -- (__secure_codex_codex_args))
    set -l current (commandline -ct)
    complete -C "$words $current"
end

# Prints the names that \`secure-codex --list-profiles\` prints, for the last
# --config on the line.
function __secure_codex_profiles
    set -l tokens (commandline -opc)
    set -l config
    for i in (seq (count $tokens))
        switch $tokens[$i]
            case --config
                set -q tokens[(math $i + 1)]; and set config --config=$tokens[(math $i + 1)]
            case '--config=*'
                set config $tokens[$i]
        end
    end
    command -q secure-codex; and secure-codex $config --list-profiles 2>/dev/null </dev/null
end

${COMPLETION_OPTIONS.map(fishLine).join("\n")}
complete -c secure-codex -n __secure_codex_in_codex -f -a '(__secure_codex_complete_codex)'
`;
}
