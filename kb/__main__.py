import os
import sys

from kb.cli import main

try:
    status = main()
    sys.stdout.flush()
except BrokenPipeError:  # the reader stopped reading (``| head``): what it wanted was written; nothing to say
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (Python's flush at exit would fail again)
    status = 0
sys.exit(status)
