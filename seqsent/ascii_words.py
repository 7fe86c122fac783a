"""seqsent's word split for ASCII reviews, in a module light enough to start as a helper process.

For ASCII text, Python's `re` with Oniguruma's ASCII `\\w` and `\\s` classes finds exactly the words
`seqsent.data.vocab.new_tokenizer` finds (tags removed, lowercased, punctuation kept or dropped), 2-3x
faster than `tokenizers` on one core. `seqsent.data.vocab.encode` uses these functions itself and, for
large batches, also starts this module as a helper so the second core splits half the reviews:

    python -m seqsent.ascii_words   # stdin: pickled (texts, vocabulary, punctuation, unk id)
                                    # stdout: pickled (int32 ids, int64 lengths) as bytes

It imports nothing but the standard library, so the helper starts in well under a second.
"""

from __future__ import annotations

import pickle
import re
import sys
from array import array

TAG_PATTERN = r"<[^<>]{0,20}>"
# Oniguruma's \w and \s restricted to ASCII (Python's \s would also take \x1c-\x1f, which it does not)
_WORD, _SPACE = "A-Za-z0-9_", " \t\n\x0b\x0c\r"
ASCII_WORDS = {
    "keep": re.compile(f"[{_WORD}]+|[^{_WORD}{_SPACE}]+"),
    "drop": re.compile(f"[{_WORD}]+"),  # punctuation became spaces: words only
}
TAG = re.compile(TAG_PATTERN)


def ascii_ids(texts: list[str], vocab: dict[str, int], punctuation: str, unk_id: int) -> list[list[int]]:
    """Each ASCII review's word ids (`unk_id` for words not in `vocab`); [] for a review with no words."""
    get, findall = vocab.get, ASCII_WORDS[punctuation].findall
    return [[get(w, unk_id) for w in findall(TAG.sub(" ", text.lower()))] for text in texts]


def main() -> int:
    """The helper: ids of the pickled texts on stdin, as bytes of a flat int32 array and int64 lengths."""
    texts, vocab, punctuation, unk_id = pickle.load(sys.stdin.buffer)
    flat, lengths = array("i"), array("q")
    for ids in ascii_ids(texts, vocab, punctuation, unk_id):
        flat.extend(ids)
        lengths.append(len(ids))
    pickle.dump((flat.tobytes(), lengths.tobytes()), sys.stdout.buffer, protocol=pickle.HIGHEST_PROTOCOL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
