import sys

from distbench.worker.runtime import main

sys.exit(main())
