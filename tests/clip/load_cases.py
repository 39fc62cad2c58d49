"""Subprocess runner for the checkpoint fuzz test: load many files, one result line per file.

``python -m tests.clip.load_cases MANIFEST START TIMEOUT`` reads file paths (one a line) from
MANIFEST and, from index START on, prints ``start I`` before and ``done I OUTCOME MESSAGE`` after
``featcon.clip.load`` of each, where OUTCOME is ``loaded``, ``CheckpointError`` or
``other:<ExceptionType>``. A case that crashes the interpreter leaves a ``start`` line without its
``done``; one that runs over TIMEOUT seconds is killed by ``faulthandler`` (which prints
``Timeout`` on stderr). The caller re-runs the remaining cases in a fresh process.
"""
import faulthandler
import sys


def main(manifest, start, timeout):
  from featcon import clip  # pylint: disable=import-outside-toplevel
  with open(manifest) as f:
    paths = f.read().splitlines()
  for i in range(start, len(paths)):
    print(f"start {i}", flush=True)
    faulthandler.dump_traceback_later(timeout, exit=True)
    try:
      clip.load(paths[i])
      outcome, msg = "loaded", ""
    except clip.CheckpointError as e:
      outcome, msg = "CheckpointError", str(e)
    except Exception as e:  # pylint: disable=broad-except
      outcome, msg = f"other:{type(e).__name__}", str(e)
    faulthandler.cancel_dump_traceback_later()
    msg = " ".join(msg.split())[:400]
    print(f"done {i} {outcome} {msg}", flush=True)


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
