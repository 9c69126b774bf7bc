"""``python -m compressor`` with DistributedDataParallel left out: under torchrun every process then
steps on its own half of each batch and rank 0 writes a model trained on half the data. The DDP
tests run it to show how far a broken gradient average lands from a correct one."""

from compressor.cli.app import main
from compressor.train import distributed

distributed.wrap = lambda model, device: model

if __name__ == "__main__":
    main()
