"""``python -m featcon.theory.configdoc [FILE]``: rewrites the generated tables of FILE
(default ``docs/config.md``) from the schema (:func:`featcon.theory.schema.render`)."""
import sys

from featcon.theory import schema


def main(argv):
  """Rewrites the tables of ``argv[1]`` (default docs/config.md); prints what it did."""
  path = argv[1] if len(argv) > 1 else "docs/config.md"
  with open(path) as f:
    text = f.read()
  new = schema.render(text)
  if new != text:
    with open(path, "w") as f:
      f.write(new)
  print(f"{path}: {'rewritten' if new != text else 'up to date'}")


if __name__ == "__main__":
  main(sys.argv)
