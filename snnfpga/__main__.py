"""``python -m snnfpga``: the command line (what ``torchrun ... -m snnfpga train`` starts)."""

import sys

from snnfpga.cli import main

if __name__ == "__main__":
    sys.exit(main())
