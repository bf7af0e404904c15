import sys

from nasbox.startup import run

sys.exit(run())
