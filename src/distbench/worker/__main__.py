import os
import sys

from distbench.worker.runtime import main

code = main()
# Everything is written by now (status files, logs); skip the interpreter's teardown, as the warm
# launcher's workers do: with torch loaded it is seconds of garbage collection (1.7 s measured,
# more on a busy machine), time in which the stop's SIGKILL may arrive.
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)
