"""``python -m training.finetune``: see training/finetune/cli.py."""

import sys

from training.finetune.cli import main

sys.exit(main())
