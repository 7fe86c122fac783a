"""Data: loading any text-classification dataset (IMDB by default), tokenization, caching and batching."""

from seqsent.data.batching import BucketBatchSampler, Collator, EncodedReviews, pad, truncate
from seqsent.data.datamodule import IMDBDataModule, TextClassificationDataModule
from seqsent.data.lm import LanguageModelDataModule
from seqsent.data.long_range import LongRangeDataModule
from seqsent.data.synthetic import SyntheticDataModule

__all__ = [
    "BucketBatchSampler",
    "Collator",
    "EncodedReviews",
    "IMDBDataModule",
    "LanguageModelDataModule",
    "LongRangeDataModule",
    "SyntheticDataModule",
    "TextClassificationDataModule",
    "pad",
    "truncate",
]
