"""Every repository path, module and section that the docs, docstrings and comments name exists.

Scanned: ``docs/*.md``, ``README.md``, ``BUILD_NOTES.md`` (the whole text, and relative Markdown
links), and the docstrings and comments of the Python files under ``featcon/``,
``experiments/``, ``configs/`` and ``benchmarks/``. Checked:

* paths under ``featcon/``, ``docs/``, ``configs/``, ``tests/``, ``benchmarks/`` and
  ``experiments/`` (``a/{b,c}.py`` names ``a/b.py`` and ``a/c.py``; ``*`` is a glob). A module
  path ``x/y.py`` is also found as the package ``x/y/__init__.py``, so a module that becomes a
  package keeps its references valid;
* dotted names ``featcon.x.y`` (and ``experiments.x``, ``configs.x``, ``benchmarks.x``): a
  module file or package, optionally followed by a name it defines at top level (and, for a
  class, a name in its body). Resolved from the source with ``ast``, without importing;
* section citations ``docs/x.md, "Title"`` and ``docs/x.md ("Title")``: a heading of that file.
"""
import ast
import glob
import io
import itertools
import os
import re
import tokenize

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOP = ("featcon", "docs", "configs", "tests", "benchmarks", "experiments")
CODE_DIRS = ("featcon", "experiments", "configs", "benchmarks")
MARKDOWN = ("docs/*.md", "README.md", "BUILD_NOTES.md")

_PATH = re.compile(r"(?<![\w/.\-])((?:%s)/[\w./{},*\-]*)" % "|".join(TOP))
_DOTTED = re.compile(
    r"(?<![\w./\-])((?:featcon|experiments|configs|benchmarks)(?:\.[A-Za-z_]\w*)+)")
_SECTION = re.compile(r"(docs/[\w/\-]+\.md)`?,?\s*\(?\s*\"([^\"]+)\"")
_MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _expand_braces(path):
  """``a/{b,c}.py`` -> [``a/b.py``, ``a/c.py``] (any number of brace groups)."""
  parts = re.split(r"(\{[^{}]*\})", path)
  options = [p[1:-1].split(",") if p.startswith("{") else [p] for p in parts]
  return ["".join(c) for c in itertools.product(*options)]


def _clean(path):
  return path.rstrip(".,;:")


def path_exists(path, root=ROOT):
  """Whether a repository path (possibly a glob, a folder or a module now a package) exists."""
  full = os.path.join(root, path)
  if any(ch in path for ch in "*?["):
    return bool(glob.glob(full))
  if os.path.exists(full):
    return True
  if path.endswith(".py"):
    return os.path.exists(os.path.join(root, path[:-3], "__init__.py"))
  return False


def _module_file(parts, root=ROOT):
  base = os.path.join(root, *parts)
  for f in (base + ".py", os.path.join(base, "__init__.py")):
    if os.path.isfile(f):
      return f
  return None


def _defined_names(body):
  names = set()
  for node in body:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
      names.add(node.name)
    elif isinstance(node, ast.Assign):
      for t in node.targets:
        for n in ast.walk(t):
          if isinstance(n, ast.Name):
            names.add(n.id)
    elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
      names.add(node.target.id)
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
      for a in node.names:
        names.add((a.asname or a.name).split(".")[0])
    elif isinstance(node, (ast.If, ast.Try)):
      names |= _defined_names(node.body)
      for h in getattr(node, "handlers", []):
        names |= _defined_names(h.body)
      names |= _defined_names(node.orelse)
  return names


# setup.py's package_dir: the installed names of the repository's top-level folders.
INSTALLED_AS = {"featcon.experiments": "experiments", "featcon.configs": "configs"}


def dotted_exists(name, root=ROOT):
  """Whether ``pkg.mod[.attr[.member]]`` names a module (file or package) and what it defines."""
  for installed, folder in INSTALLED_AS.items():
    if name == installed or name.startswith(installed + "."):
      name = folder + name[len(installed):]
  parts = name.split(".")
  for n in range(len(parts), 0, -1):
    f = _module_file(parts[:n], root)
    if f is None:
      continue
    rest = parts[n:]
    if not rest:
      return True
    with open(f, encoding="utf-8") as fh:
      tree = ast.parse(fh.read())
    if rest[0] not in _defined_names(tree.body):
      return False
    if len(rest) == 1:
      return True
    cls = [c for c in tree.body if isinstance(c, ast.ClassDef) and c.name == rest[0]]
    if not cls:
      return True  # an attribute of a function or imported object: not checked further
    members = _defined_names(cls[0].body)
    for node in cls[0].body:  # dataclass / NamedTuple fields: ``x: int``
      if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        members.add(node.target.id)
    return rest[1] in members
  return False


def _headings(md_path):
  with open(md_path, encoding="utf-8") as f:
    return {_norm(line.lstrip("#")) for line in f if line.startswith("#")}


def _norm(text):
  return " ".join(text.split()).strip().lower()


def references(text):
  """(kind, name) pairs a text names: ("path", p), ("module", m), ("section", (file, title))."""
  out = []
  for m in _PATH.finditer(text):
    for p in _expand_braces(_clean(m.group(1))):
      p = _clean(p)
      if p.rstrip("/") in TOP or p.endswith("..."):
        continue
      out.append(("path", p))
  for m in _DOTTED.finditer(text):
    out.append(("module", m.group(1)))
  for m in _SECTION.finditer(" ".join(text.split())):
    out.append(("section", (m.group(1), m.group(2))))
  return out


def broken(refs, root=ROOT):
  """The references among ``refs`` that do not resolve, as readable strings."""
  bad = []
  for kind, name in refs:
    if kind == "path" and not path_exists(name, root):
      bad.append(f"missing path {name}")
    elif kind == "module" and not dotted_exists(name, root):
      bad.append(f"unresolvable module or attribute {name}")
    elif kind == "section":
      doc, title = name
      full = os.path.join(root, doc)
      if not os.path.exists(full):
        bad.append(f"missing path {doc}")
      elif _norm(title) not in _headings(full):
        bad.append(f"{doc} has no section {title!r}")
  return sorted(set(bad))


def python_prose(source):
  """The docstrings and comments of a Python source, joined."""
  chunks = []
  tree = ast.parse(source)
  for node in ast.walk(tree):
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
      doc = ast.get_docstring(node, clean=False)
      if doc:
        chunks.append(doc)
  for tok in tokenize.generate_tokens(io.StringIO(source).readline):
    if tok.type == tokenize.COMMENT:
      chunks.append(tok.string)
  return "\n".join(chunks)


def _markdown_files():
  files = []
  for pattern in MARKDOWN:
    files += sorted(glob.glob(os.path.join(ROOT, pattern)))
  return [os.path.relpath(f, ROOT) for f in files]


def _python_files():
  files = []
  for d in CODE_DIRS:
    files += sorted(glob.glob(os.path.join(ROOT, d, "**", "*.py"), recursive=True))
  return [os.path.relpath(f, ROOT) for f in files]


def _markdown_links(rel, text):
  bad = []
  folder = os.path.dirname(os.path.join(ROOT, rel))
  for m in _MD_LINK.finditer(text):
    target = m.group(1).split("#")[0]
    if not target or re.match(r"^[a-z]+:", target) or target.startswith("/"):
      continue
    if not os.path.exists(os.path.join(folder, target)):
      bad.append(f"broken link {m.group(1)}")
  return bad


@pytest.mark.parametrize("rel", _markdown_files())
def test_markdown_names_existing_paths(rel):
  with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
    text = f.read()
  bad = broken(references(text)) + _markdown_links(rel, text)
  assert not bad, f"{rel}:\n  " + "\n  ".join(bad)


def test_python_docstrings_and_comments_name_existing_paths():
  problems = []
  for rel in _python_files():
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
      bad = broken(references(python_prose(f.read())))
    problems += [f"{rel}: {b}" for b in bad]
  assert not problems, "\n".join(problems)


def test_checker_flags_what_is_missing(tmp_path):
  """The checker itself: found and missing paths, modules, attributes and sections."""
  (tmp_path / "pkg" / "sub").mkdir(parents=True)
  (tmp_path / "pkg" / "__init__.py").write_text("from pkg.mod import f\n")
  (tmp_path / "pkg" / "mod.py").write_text(
      "X = 1\n\nclass C:\n  field: int = 0\n  def meth(self):\n    pass\n\ndef f():\n  pass\n")
  (tmp_path / "pkg" / "sub" / "__init__.py").write_text("")
  (tmp_path / "docs").mkdir()
  (tmp_path / "docs" / "a.md").write_text("# A\n\n## Exact things\n")
  root = str(tmp_path)
  assert path_exists("pkg/mod.py", root) and path_exists("pkg/sub.py", root)  # module -> package
  assert path_exists("pkg/*.py", root) and not path_exists("pkg/nope.py", root)
  assert path_exists("docs/", root) and not path_exists("docs/b.md", root)
  for ok in ("pkg", "pkg.mod", "pkg.mod.X", "pkg.mod.C.meth", "pkg.mod.C.field", "pkg.f",
             "pkg.sub"):
    assert dotted_exists(ok, root), ok
  for bad in ("pkg.nope", "pkg.mod.Y", "pkg.mod.C.other", "nopkg.mod"):
    assert not dotted_exists(bad, root), bad
  text = ('see featcon/x/{a,b}.py, docs/a.md, "Exact\n things" and docs/a.md ("Missing"); '
          "featcon.theory.sweeps.run.")
  refs = references(text)
  assert ("path", "featcon/x/a.py") in refs and ("path", "featcon/x/b.py") in refs
  assert ("section", ("docs/a.md", "Exact things")) in refs
  assert ("module", "featcon.theory.sweeps.run") in refs
  assert broken([("section", ("docs/a.md", "Exact things"))], root) == []
  assert broken([("section", ("docs/a.md", "Missing"))], root) == [
      "docs/a.md has no section 'Missing'"]
  prose = python_prose('"""Doc featcon/a.py."""\nx = "featcon/b.py"  # featcon/c.py\n')
  assert "featcon/a.py" in prose and "featcon/c.py" in prose and "featcon/b.py" not in prose
