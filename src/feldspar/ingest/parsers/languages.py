"""Which tree-sitter language (as tree-sitter-language-pack names it) a source file is in.

Only names that tree-sitter-language-pack 0.13 ships a grammar for appear here; "cobol" is
left out on purpose, since its grammar hangs on some inputs.
"""

from __future__ import annotations

import re
from pathlib import PurePath

# File extensions (lowercase, with the dot) and their language.
EXTENSIONS: dict[str, str] = {
    # Python, JavaScript and their relatives
    ".py": "python", ".pyw": "python", ".pyi": "python", ".pyx": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".vue": "vue", ".svelte": "svelte", ".astro": "astro", ".as": "actionscript",
    # C family and systems languages
    ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".c++": "cpp", ".hh": "cpp", ".hpp": "cpp",
    ".hxx": "cpp", ".h++": "cpp", ".ipp": "cpp", ".tpp": "cpp", ".inl": "cpp",
    ".cu": "cuda", ".cuh": "cuda", ".ino": "arduino", ".mm": "objc",
    ".rs": "rust", ".go": "go", ".zig": "zig", ".d": "d", ".odin": "odin", ".ha": "hare",
    ".nim": "nim", ".nims": "nim", ".v": "verilog", ".sv": "verilog", ".svh": "verilog",
    ".vhd": "vhdl", ".vhdl": "vhdl", ".ispc": "ispc", ".asm": "asm", ".s": "asm",
    ".ll": "llvm", ".wat": "wat", ".wast": "wast", ".td": "tablegen", ".fir": "firrtl",
    ".ld": "linkerscript", ".lds": "linkerscript", ".re": "re2c", ".nqc": "nqc",
    ".ada": "ada", ".adb": "ada", ".ads": "ada", ".f": "fortran", ".for": "fortran",
    ".f77": "fortran", ".f90": "fortran", ".f95": "fortran", ".f03": "fortran",
    ".f08": "fortran", ".pas": "pascal", ".dpr": "pascal", ".lpr": "pascal", ".vsh": "v",
    ".glsl": "glsl", ".vert": "glsl", ".frag": "glsl", ".geom": "glsl", ".tesc": "glsl",
    ".tese": "glsl", ".comp": "glsl", ".hlsl": "hlsl", ".wgsl": "wgsl",
    # JVM and .NET
    ".java": "java", ".kt": "kotlin", ".kts": "kotlin", ".scala": "scala", ".sc": "scala",
    ".groovy": "groovy", ".gradle": "groovy", ".cs": "csharp",
    ".fs": "fsharp", ".fsx": "fsharp", ".fsi": "fsharp_signature",
    ".apex": "apex", ".trigger": "apex", ".smali": "smali",
    # Scripting languages
    ".rb": "ruby", ".rake": "ruby", ".gemspec": "ruby", ".ru": "ruby", ".php": "php",
    ".pl": "perl", ".pm": "perl", ".lua": "lua", ".luau": "luau", ".tcl": "tcl",
    ".r": "r", ".jl": "julia", ".dart": "dart", ".swift": "swift", ".gd": "gdscript",
    ".hx": "haxe", ".hack": "hack", ".nut": "squirrel", ".magik": "magik",
    ".sh": "bash", ".bash": "bash", ".zsh": "bash", ".ksh": "bash", ".fish": "fish",
    ".ps1": "powershell", ".psm1": "powershell", ".psd1": "powershell", ".vim": "vim",
    # Functional languages
    ".hs": "haskell", ".lhs": "haskell", ".ml": "ocaml", ".mli": "ocaml_interface",
    ".ex": "elixir", ".exs": "elixir", ".heex": "heex", ".erl": "erlang", ".hrl": "erlang",
    ".elm": "elm", ".clj": "clojure", ".cljs": "clojure", ".cljc": "clojure",
    ".edn": "clojure", ".lisp": "commonlisp", ".lsp": "commonlisp", ".cl": "commonlisp",
    ".el": "elisp", ".scm": "scheme", ".ss": "scheme", ".rkt": "racket", ".fnl": "fennel",
    ".janet": "janet", ".purs": "purescript", ".agda": "agda", ".gleam": "gleam",
    ".pony": "pony", ".rego": "rego",
    # Smart contracts
    ".sol": "solidity", ".cairo": "cairo", ".clar": "clarity", ".fc": "func",
    # Data, configuration and build files
    ".sql": "sql", ".graphql": "graphql", ".gql": "graphql", ".proto": "proto",
    ".thrift": "thrift", ".capnp": "capnp", ".smithy": "smithy", ".prisma": "prisma",
    ".tf": "terraform", ".tfvars": "terraform", ".hcl": "hcl", ".nix": "nix",
    ".bicep": "bicep", ".pp": "puppet", ".toml": "toml", ".yaml": "yaml", ".yml": "yaml",
    ".xml": "xml", ".xsd": "xml", ".xsl": "xml", ".xslt": "xml", ".plist": "xml",
    ".csproj": "xml", ".vbproj": "xml", ".props": "xml", ".targets": "xml", ".dtd": "dtd",
    ".ini": "ini", ".cfg": "ini", ".properties": "properties", ".kdl": "kdl", ".ron": "ron",
    ".jsonnet": "jsonnet", ".libsonnet": "jsonnet", ".cmake": "cmake", ".mk": "make",
    ".mak": "make", ".ninja": "ninja", ".gn": "gn", ".gni": "gn", ".bzl": "starlark",
    ".star": "starlark", ".bb": "bitbake", ".bbappend": "bitbake", ".bbclass": "bitbake",
    ".dockerfile": "dockerfile", ".po": "po", ".pot": "po",
    # Markup and styles (HTML and Markdown have parsers of their own)
    ".css": "css", ".scss": "scss", ".twig": "twig", ".erb": "embeddedtemplate",
    ".ejs": "embeddedtemplate", ".tex": "latex", ".sty": "latex", ".cls": "latex",
    ".bib": "bibtex", ".typ": "typst", ".mmd": "mermaid", ".mermaid": "mermaid",
    ".qml": "qmljs", ".beancount": "beancount", ".ungram": "ungrammar", ".yuck": "yuck",
    ".tal": "uxntal", ".sparql": "sparql", ".rq": "sparql", ".bsl": "bsl", ".cpon": "cpon",
    ".axs": "netlinx", ".chatito": "chatito", ".pgn": "pgn", ".pem": "pem",
}

# Whole file names (lowercase) whose language their extension does not tell.
FILENAMES: dict[str, str] = {
    "makefile": "make", "gnumakefile": "make", "dockerfile": "dockerfile",
    "containerfile": "dockerfile", "cmakelists.txt": "cmake", "meson.build": "meson",
    "meson_options.txt": "meson", "build.ninja": "ninja", "rakefile": "ruby",
    "gemfile": "ruby", "podfile": "ruby", "vagrantfile": "ruby", "brewfile": "ruby",
    "jenkinsfile": "groovy", "build": "starlark", "build.bazel": "starlark",
    "workspace": "starlark", "workspace.bazel": "starlark", "module.bazel": "starlark",
    "tiltfile": "starlark", "sconstruct": "python", "sconscript": "python",
    "snakefile": "python", "go.mod": "gomod", "go.sum": "gosum",
    "requirements.txt": "requirements", "manifest.in": "pymanifest", "kconfig": "kconfig",
    ".gitignore": "gitignore", ".dockerignore": "gitignore", ".gitattributes": "gitattributes",
    "commit_editmsg": "gitcommit", ".inputrc": "readline", "qmldir": "qmldir",
    ".bashrc": "bash", ".bash_profile": "bash", ".zshrc": "bash", ".profile": "bash",
    "pkgbuild": "bash", ".vimrc": "vim", "cargo.lock": "toml", "pipfile": "toml",
}

# Interpreters named on a "#!" line.
INTERPRETERS: dict[str, str] = {
    "python": "python", "pypy": "python", "sh": "bash", "bash": "bash", "dash": "bash",
    "zsh": "bash", "ksh": "bash", "ash": "bash", "fish": "fish", "node": "javascript",
    "nodejs": "javascript", "deno": "typescript", "bun": "typescript", "ts-node": "typescript",
    "ruby": "ruby", "perl": "perl", "php": "php", "lua": "lua", "luajit": "lua",
    "rscript": "r", "julia": "julia", "tclsh": "tcl", "wish": "tcl", "pwsh": "powershell",
    "elixir": "elixir", "escript": "erlang", "runghc": "haskell", "runhaskell": "haskell",
    "groovy": "groovy", "scala": "scala", "kotlin": "kotlin", "swift": "swift",
    "make": "make", "guile": "scheme", "racket": "racket", "janet": "janet",
}

_SHEBANG = re.compile(rb"\A#![ \t]*(\S+)[ \t]*([^\r\n]*)")
_VERSION = re.compile(r"[\d.]+$")
# Objective-C and MATLAB share ".m"; these only occur in Objective-C.
_OBJC = re.compile(rb"^\s*(?:#import|@interface|@implementation|@protocol)\b", re.MULTILINE)


def language_for(path: PurePath, data: bytes) -> str | None:
    """The language of a source file by name, extension, or (without either) its "#!" line.

    Args:
        path: The file's path; only its name matters.
        data: The file's bytes, for the "#!" line and for telling ".m" files apart.

    Returns:
        A tree-sitter-language-pack language name, or None if the file is not known code.
    """
    name = path.name.lower()
    if name in FILENAMES:
        return FILENAMES[name]
    if name.startswith(("dockerfile.", "containerfile.")):
        return "dockerfile"
    suffix = path.suffix.lower()
    if suffix == ".m":
        return "objc" if _OBJC.search(data[:65536]) else "matlab"
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    return None


def shebang_language(data: bytes) -> str | None:
    """The language named by a "#!" first line, e.g. `#!/usr/bin/env python3` gives "python".

    Args:
        data: The file's bytes.

    Returns:
        A tree-sitter-language-pack language name, or None.
    """
    match = _SHEBANG.match(data)
    if not match:
        return None
    program = match.group(1).decode("utf-8", "replace").rsplit("/", 1)[-1]
    if program == "env":
        # `#!/usr/bin/env -S python3 -u`: the first word that is not an option or a VAR=value.
        words = match.group(2).decode("utf-8", "replace").split()
        program = next((w for w in words if not w.startswith("-") and "=" not in w), "")
    program = _VERSION.sub("", program.lower())
    return INTERPRETERS.get(program)
