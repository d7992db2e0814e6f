"""Data for the homework experiments: real MNIST / CIFAR-10 files, or the embedded real digits."""
from .datasets import RECIPES, DataBundle, Split, batches, load
from .embedded import load_embedded_mnist
from .mnist import read_idx, load_mnist
from .cifar import read_cifar_batch, load_cifar10

__all__ = ["RECIPES", "DataBundle", "Split", "batches", "load", "load_embedded_mnist", "read_idx",
           "load_mnist", "read_cifar_batch", "load_cifar10"]
