"""Train a LoRA adapter: `python train/train.py --config configs/smollm2-135m-cpu.yaml [--train.epochs 2]`.

The same code path as `groundtune train`; see `groundtune train --help` for every config key.
"""

import sys

from groundtune.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
