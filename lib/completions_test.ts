import assert from "node:assert/strict";
import { join } from "./path.ts";
import {
  COMPLETION_OPTIONS,
  COMPLETION_SHELLS,
  completionScript,
  type CompletionShell,
} from "./completions.ts";

const OPTION_NAMES = COMPLETION_OPTIONS.map((option) => option.name);

/** Checks whether a program is on PATH, for skipping shells not installed. */
function onPath(program: string): boolean {
  try {
    return new Deno.Command("which", {
      args: [program],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

const HAS_ZSH = onPath("zsh");
const HAS_FISH = onPath("fish");

interface Run {
  success: boolean;
  stdout: string;
  stderr: string;
}

async function run(
  program: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<Run> {
  const output = await new Deno.Command(program, {
    args,
    cwd: options.cwd,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).output();
  const decoder = new TextDecoder();
  return {
    success: output.success,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** The temp directory every helper below works in, removed when the tests end. */
const TEMP_ROOT = Deno.makeTempDirSync({ prefix: "secure-codex-completions-" });
globalThis.addEventListener("unload", () => {
  Deno.removeSync(TEMP_ROOT, { recursive: true });
});

/** Makes a new directory under {@linkcode TEMP_ROOT}. */
function tempDir(): Promise<string> {
  return Deno.makeTempDir({ dir: TEMP_ROOT });
}

/** Writes the script for a shell into a new temp directory. */
async function writeScript(shell: CompletionShell): Promise<string> {
  const dir = await tempDir();
  const path = join(dir, `secure-codex.${shell}`);
  await Deno.writeTextFile(path, completionScript(shell));
  return path;
}

/** Makes a temp directory holding `key.txt`, to complete file names in. */
async function workDir(): Promise<string> {
  const dir = await tempDir();
  await Deno.writeTextFile(join(dir, "key.txt"), "");
  return dir;
}

/**
 * Installs a fake `secure-codex` whose `--list-profiles` prints `work`,
 * `personal` and one `arg:` line per argument it got. Returns its directory.
 */
async function fakeSecureCodex(body?: string): Promise<string> {
  const dir = await tempDir();
  const path = join(dir, "secure-codex");
  await Deno.writeTextFile(
    path,
    `#!/bin/sh\n${
      body ?? 'echo work\necho personal\nfor a; do echo "arg:$a"; done\n'
    }`,
  );
  await Deno.chmod(path, 0o755);
  return dir;
}

/**
 * The bash program for {@linkcode bashComplete}: it loads the script, runs
 * `prelude`, sets COMP_* for the words in "$@" with the cursor at the end of
 * the last one, calls the function registered for secure-codex and prints
 * COMPREPLY one element a line.
 */
const BASH_DRIVER = `
source "$1"
shift
eval "$PRELUDE"
COMP_WORDS=("$@")
COMP_CWORD=$(($# - 1))
COMP_LINE="$*"
COMP_POINT=\${#COMP_LINE}
spec=$(complete -p secure-codex) || exit 1
function=\${spec#*-F }
function=\${function%% *}
"$function" secure-codex "\${COMP_WORDS[COMP_CWORD]}" "\${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\\n' "\${COMPREPLY[@]}"
`;

interface BashCompletion {
  replies: string[];
  stderr: string;
}

/**
 * Runs the bash script's completion for `words` (as bash would split the
 * line, so a trailing "" completes a new word) in `cwd`.
 */
async function bashComplete(
  words: string[],
  options: { cwd?: string; prelude?: string; path?: string } = {},
): Promise<BashCompletion> {
  const script = await writeScript("bash");
  const result = await run(
    "bash",
    ["--norc", "--noprofile", "-c", BASH_DRIVER, "bash", script, ...words],
    {
      cwd: options.cwd ?? await workDir(),
      env: {
        PRELUDE: options.prelude ?? "",
        PATH: options.path ?? Deno.env.get("PATH") ?? "/usr/bin:/bin",
      },
    },
  );
  assert.ok(result.success, result.stderr);
  return {
    replies: result.stdout.split("\n").filter((line) => line !== ""),
    stderr: result.stderr,
  };
}

/**
 * Builds a regular expression that matches where a script offers the option:
 * bash lists every name in one `compgen -W` word list, zsh has an
 * `_arguments` spec (or a `_describe` item for `--`), fish a `complete` line.
 */
function offerPattern(shell: CompletionShell, name: string): RegExp {
  const escaped = name.replace(/[-]/g, "\\-");
  switch (shell) {
    case "bash":
      return new RegExp(`compgen -W "(?:[^"]* )?${escaped}(?: [^"]*)?"`);
    case "zsh":
      return name === "--"
        ? /'--:pass the rest/
        : new RegExp(`'\\*?${escaped}=?\\[`);
    case "fish": {
      const flag = name === "--"
        ? "-f -a '--'"
        : name.startsWith("--")
        ? `-l ${name.slice(2)}`
        : `-s ${name.slice(1)}`;
      return new RegExp(
        `^complete -c secure-codex -n 'not __secure_codex_in_codex' ${
          flag.replace(/[-]/g, "\\-")
        } `,
        "m",
      );
    }
  }
}

Deno.test("COMPLETION_OPTIONS names are unique and described", () => {
  assert.equal(new Set(OPTION_NAMES).size, OPTION_NAMES.length);
  for (const option of COMPLETION_OPTIONS) {
    assert.match(option.name, /^(-[a-z]|--[a-z-]*)$/, option.name);
    assert.ok(option.description.length > 0, option.name);
    assert.doesNotMatch(option.description, /\n/, option.name);
  }
});

Deno.test("completionScript offers every option in each shell", () => {
  for (const shell of COMPLETION_SHELLS) {
    const script = completionScript(shell);
    for (const name of OPTION_NAMES) {
      assert.match(script, offerPattern(shell, name), `${shell}: ${name}`);
    }
  }
});

Deno.test("completionScript rejects an unknown shell", () => {
  assert.throws(
    () => completionScript("tcsh" as CompletionShell),
    /unsupported shell: "tcsh"/,
  );
});

Deno.test("bash -n accepts the bash script", async () => {
  const result = await run("bash", ["-n", await writeScript("bash")]);
  assert.ok(result.success, result.stderr);
  assert.equal(result.stderr, "");
});

Deno.test({
  name: "zsh -n accepts the zsh script",
  ignore: !HAS_ZSH,
  fn: async () => {
    const result = await run("zsh", ["-n", await writeScript("zsh")]);
    assert.ok(result.success, result.stderr);
    assert.equal(result.stderr, "");
  },
});

Deno.test({
  name: "fish --no-execute accepts the fish script",
  ignore: !HAS_FISH,
  fn: async () => {
    const result = await run("fish", [
      "--no-execute",
      await writeScript("fish"),
    ]);
    assert.ok(result.success, result.stderr);
    assert.equal(result.stderr, "");
  },
});

Deno.test("bash completes an option prefix", async () => {
  const { replies, stderr } = await bashComplete(["secure-codex", "--st"]);
  assert.deepEqual(replies, ["--status"]);
  assert.equal(stderr, "");
});

Deno.test("bash offers every option after a dash", async () => {
  const { replies } = await bashComplete(["secure-codex", "-"]);
  assert.deepEqual(replies.toSorted(), OPTION_NAMES.toSorted());
});

Deno.test("bash completes the shells for --completions", async () => {
  const { replies } = await bashComplete(["secure-codex", "--completions", ""]);
  assert.deepEqual(replies, ["bash", "zsh", "fish"]);
});

Deno.test("bash completes --completions=z", async () => {
  // bash splits "--completions=z" at "=" by default (COMP_WORDBREAKS).
  const split = await bashComplete(["secure-codex", "--completions", "=", "z"]);
  assert.deepEqual(split.replies, ["zsh"]);
  const empty = await bashComplete(["secure-codex", "--completions", "="]);
  assert.deepEqual(empty.replies, ["bash", "zsh", "fish"]);
  // Without "=" in COMP_WORDBREAKS the reply has to repeat the option.
  const whole = await bashComplete(["secure-codex", "--completions=z"]);
  assert.deepEqual(whole.replies, ["--completions=zsh"]);
});

Deno.test("bash completes file names for --identity", async () => {
  const { replies, stderr } = await bashComplete([
    "secure-codex",
    "--identity",
    "",
  ]);
  assert.deepEqual(replies, ["key.txt"]);
  assert.equal(stderr, "");
  const prefixed = await bashComplete(["secure-codex", "--identity", "k"]);
  assert.deepEqual(prefixed.replies, ["key.txt"]);
});

Deno.test("bash offers nothing for --ttl", async () => {
  const { replies } = await bashComplete(["secure-codex", "--ttl", ""]);
  assert.deepEqual(replies, []);
});

Deno.test("bash skips option values before the cursor", async () => {
  const { replies } = await bashComplete([
    "secure-codex",
    "--identity",
    "key.txt",
    "--ttl",
    "=",
    "8h",
    "--jso",
  ]);
  assert.deepEqual(replies, ["--json"]);
});

Deno.test("bash offers no option of ours after --", async () => {
  for (const words of [["--", ""], ["--", "--st"], ["--", "-"]]) {
    const { replies } = await bashComplete(["secure-codex", ...words]);
    for (const name of OPTION_NAMES) {
      assert.ok(!replies.includes(name), `${words.join(" ")}: ${name}`);
    }
  }
  const files = await bashComplete(["secure-codex", "--", ""]);
  assert.deepEqual(files.replies, ["key.txt"]);
});

Deno.test("bash offers no option of ours after codex's first word", async () => {
  for (const words of [["exec", "--st"], ["--ttl", "8h", "exec", "-"]]) {
    const { replies } = await bashComplete(["secure-codex", ...words]);
    for (const name of OPTION_NAMES) {
      assert.ok(!replies.includes(name), `${words.join(" ")}: ${name}`);
    }
  }
});

Deno.test("bash hands codex's arguments to codex's completion", async () => {
  // A stand-in for codex's completion that reports what it was called with.
  const prelude = `_codex() {
    COMPREPLY=("words=\${COMP_WORDS[*]}" "cword=$COMP_CWORD" "args=$*")
  }
  complete -F _codex codex`;
  const afterSeparator = await bashComplete(
    ["secure-codex", "--ttl", "8h", "--", "exec", "--mo"],
    { prelude },
  );
  assert.deepEqual(afterSeparator.replies, [
    "words=codex exec --mo",
    "cword=2",
    "args=codex --mo exec",
  ]);
  const firstWord = await bashComplete(["secure-codex", "exec", ""], {
    prelude,
  });
  assert.deepEqual(firstWord.replies, [
    "words=codex exec ",
    "cword=2",
    "args=codex  exec",
  ]);
  // "--mod" starts none of our options, so the parser would pass it to codex.
  const codexOption = await bashComplete(["secure-codex", "--mod"], {
    prelude,
  });
  assert.deepEqual(codexOption.replies, [
    "words=codex --mod",
    "cword=1",
    "args=codex --mod codex",
  ]);
});

Deno.test("bash asks bash-completion to load codex's completion", async () => {
  // A stand-in for bash-completion's loader, which defines codex's completion
  // on its first use.
  const prelude = `_completion_loader() {
    _codex() { COMPREPLY=("loaded for $1"); }
    complete -F _codex "$1"
  }`;
  const { replies } = await bashComplete(["secure-codex", "exec", ""], {
    prelude,
  });
  assert.deepEqual(replies, ["loaded for codex"]);
});

Deno.test("bash falls back to file names when codex's offers none", async () => {
  const prelude = "_codex() { COMPREPLY=(); }; complete -F _codex codex";
  const { replies } = await bashComplete(["secure-codex", "exec", ""], {
    prelude,
  });
  assert.deepEqual(replies, ["key.txt"]);
});

Deno.test("bash completes profiles from --list-profiles", async () => {
  const path = `${await fakeSecureCodex()}:${Deno.env.get("PATH")}`;
  const all = await bashComplete(["secure-codex", "--profile", ""], { path });
  assert.deepEqual(all.replies, ["work", "personal", "arg:--list-profiles"]);
  const prefixed = await bashComplete(["secure-codex", "--profile", "w"], {
    path,
  });
  assert.deepEqual(prefixed.replies, ["work"]);
  // The last --config on the line is passed on, in both spellings.
  const config = await bashComplete([
    "secure-codex",
    "--config=/a.jsonc",
    "--config",
    "/b.jsonc",
    "--profile",
    "arg",
  ], { path });
  assert.deepEqual(config.replies, [
    "arg:--config=/b.jsonc",
    "arg:--list-profiles",
  ]);
});

Deno.test("bash ignores a failing --list-profiles", async () => {
  const path = `${await fakeSecureCodex(
    "echo 'secure-codex: config file not found' >&2\nexit 1\n",
  )}:${Deno.env.get("PATH")}`;
  const { replies, stderr } = await bashComplete(
    ["secure-codex", "--profile", ""],
    { path },
  );
  assert.deepEqual(replies, []);
  assert.equal(stderr, "");
});

/**
 * Runs fish's completion of `line` with the script loaded and `prelude` run,
 * and returns the candidates without their descriptions.
 */
async function fishComplete(
  line: string,
  options: { prelude?: string; path?: string } = {},
): Promise<string[]> {
  const script = await writeScript("fish");
  const result = await run("fish", [
    "--no-config",
    "-c",
    'source $argv[1]; eval $argv[3]; complete -C"$argv[2]"',
    script,
    line,
    options.prelude ?? "",
  ], {
    cwd: await workDir(),
    env: { PATH: options.path ?? Deno.env.get("PATH") ?? "/usr/bin:/bin" },
  });
  assert.ok(result.success, result.stderr);
  assert.equal(result.stderr, "");
  return result.stdout.split("\n").filter((line) => line !== "")
    .map((line) => line.split("\t")[0]);
}

Deno.test({
  name: "fish completes options and their values",
  ignore: !HAS_FISH,
  fn: async () => {
    assert.deepEqual(await fishComplete("secure-codex --st"), ["--status"]);
    assert.deepEqual(
      (await fishComplete("secure-codex -")).toSorted(),
      OPTION_NAMES.toSorted(),
    );
    assert.deepEqual(
      (await fishComplete("secure-codex --completions ")).toSorted(),
      ["bash", "fish", "zsh"],
    );
    assert.deepEqual(await fishComplete("secure-codex --completions=z"), [
      "--completions=zsh",
    ]);
    assert.deepEqual(await fishComplete("secure-codex --identity "), [
      "key.txt",
    ]);
    assert.deepEqual(await fishComplete("secure-codex --ttl "), []);
    const path = `${await fakeSecureCodex()}:${Deno.env.get("PATH")}`;
    assert.deepEqual(
      await fishComplete("secure-codex --config /b.jsonc --profile arg", {
        path,
      }),
      ["arg:--config=/b.jsonc", "arg:--list-profiles"],
    );
  },
});

Deno.test({
  name: "fish hands codex's arguments to codex",
  ignore: !HAS_FISH,
  fn: async () => {
    assert.deepEqual(await fishComplete("secure-codex -- "), ["key.txt"]);
    assert.deepEqual(await fishComplete("secure-codex -- --st"), []);
    assert.deepEqual(await fishComplete("secure-codex exec --st"), []);
    assert.deepEqual(await fishComplete("secure-codex "), ["key.txt"]);
    // A stand-in for codex's completion that offers the word at the cursor
    // followed by the words before it, which fish keeps as they match.
    const prelude = "function codex_words; " +
      'echo "$(commandline -ct)#"(string join , -- (commandline -opc)); end; ' +
      "complete -c codex -f -a '(codex_words)'";
    assert.deepEqual(
      await fishComplete("secure-codex --ttl 8h -- exec --mo", { prelude }),
      ["--mo#codex,exec"],
    );
    assert.deepEqual(
      await fishComplete("secure-codex 'exec' ", { prelude }),
      ["#codex,exec"],
    );
    assert.deepEqual(await fishComplete("secure-codex --mod", { prelude }), [
      "--mod#codex",
    ]);
  },
});

/**
 * The zsh program for {@linkcode zshComplete}. zsh completes only inside its
 * line editor, so it starts an interactive zsh on a pseudo-terminal (zpty),
 * types the line and a Tab, and prints each match that a wrapped `compadd`
 * adds as `<match>`. Its arguments: the script, the line, a prelude to run.
 */
const ZSH_DRIVER = `
zmodload zsh/zpty
zpty shell zsh -f -i
zpty -w shell 'PS1= PROMPT= RPROMPT=; autoload -Uz compinit && compinit -u -D'
zpty -w shell "source \${(q)1}"
zpty -w shell "$3"
zpty -w shell 'compadd() {
  if [[ \${@[1,(i)(-|--)]} == *-(O|A|D)\\ * ]]; then
    builtin compadd "$@"
    return
  fi
  local -a hits
  local hit
  builtin compadd -O hits "$@"
  for hit in $hits; do print -r -- "<$hit>"; done
  builtin compadd "$@"
}'
zpty -w shell 'finish() { print -r -- $((6 * 7))-end; exit; }; comppostfuncs=(finish)'
zpty -w shell 'bindkey "^I" complete-word; print -r -- $((6 * 7))-ready'
# The terminal echoes what is typed, so the markers are computed: 42-ready
# and 42-end appear only as output.
zpty -r shell output '*42-ready*'
zpty -w -n shell "$2"$'\\t'
zpty -r shell output '*42-end*'
print -r -- "$output"
zpty -d shell
`;

async function zshComplete(
  line: string,
  options: { prelude?: string; path?: string } = {},
): Promise<string[]> {
  const script = await writeScript("zsh");
  const result = await run(
    "zsh",
    ["-f", "-c", ZSH_DRIVER, "zsh", script, line, options.prelude ?? ""],
    {
      cwd: await workDir(),
      env: {
        PATH: options.path ?? Deno.env.get("PATH") ?? "/usr/bin:/bin",
        TERM: "xterm",
      },
    },
  );
  assert.ok(result.success, result.stderr);
  return [...result.stdout.matchAll(/<([^<>\r\n]*)>/g)].map((match) =>
    match[1]
  );
}

Deno.test({
  name: "zsh completes options and their values",
  ignore: !HAS_ZSH,
  fn: async () => {
    assert.deepEqual(await zshComplete("secure-codex --st"), ["--status"]);
    assert.deepEqual(
      (await zshComplete("secure-codex -")).toSorted(),
      OPTION_NAMES.toSorted(),
    );
    assert.deepEqual(await zshComplete("secure-codex --completions "), [
      "bash",
      "zsh",
      "fish",
    ]);
    assert.deepEqual(await zshComplete("secure-codex --completions=z"), [
      "zsh",
    ]);
    assert.deepEqual(await zshComplete("secure-codex --identity "), [
      "key.txt",
    ]);
    assert.deepEqual(await zshComplete("secure-codex --ttl "), []);
    const path = `${await fakeSecureCodex()}:${Deno.env.get("PATH")}`;
    assert.deepEqual(
      await zshComplete("secure-codex --config=/b.jsonc --profile arg", {
        path,
      }),
      ["arg:--config=/b.jsonc", "arg:--list-profiles"],
    );
  },
});

Deno.test({
  name: "zsh hands codex's arguments to codex",
  ignore: !HAS_ZSH,
  fn: async () => {
    assert.deepEqual(await zshComplete("secure-codex -- "), ["key.txt"]);
    assert.deepEqual(await zshComplete("secure-codex -- --st"), []);
    assert.deepEqual(await zshComplete("secure-codex exec --st"), []);
    assert.deepEqual(await zshComplete("secure-codex "), ["key.txt"]);
    // A stand-in for codex's completion that prints the line it is given.
    const prelude = "_codex() { " +
      'print -r -- "<words=${(j:,:)words}>" "<current=$CURRENT>"; }; ' +
      "compdef _codex codex";
    assert.deepEqual(
      await zshComplete("secure-codex --ttl 8h -- exec --mo", { prelude }),
      ["words=codex,exec,--mo", "current=3"],
    );
    assert.deepEqual(await zshComplete("secure-codex exec ", { prelude }), [
      "words=codex,exec,",
      "current=3",
    ]);
    assert.deepEqual(await zshComplete("secure-codex --mod", { prelude }), [
      "words=codex,--mod",
      "current=2",
    ]);
  },
});
