"""seqsent: recurrent sentiment classifiers (RNN, LSTM, GRU) on IMDB with Lightning and Hydra."""

__version__ = "0.1.0"
