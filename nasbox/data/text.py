"""Text corpora for language modelling: `--data text:FILE`, characters or words, BPTT batches.

The corpus is one UTF-8 text file, split by position into train / valid / test (the first 90%,
the next 5%, the last 5% of its tokens). Tokens are characters (`--tokens char`, the default;
every character counts, newlines included, a Windows CRLF read as one newline) or words
(`--tokens word`: whitespace-separated, with `<eos>` ending each line, as in the Penn Treebank
files). The vocabulary is what the training split holds, plus `<unk>`, to which valid and test
tokens the training split never shows map.

Batches are those of truncated backpropagation through time (DARTS, AWD-LSTM): a split is cut
into `streams` equal contiguous streams (the tail that does not fill the last one is dropped),
laid side by side as a (length, streams) tensor, and read in chunks of `bptt` steps; the target
of each token is the next one in its stream.
"""

import codecs
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from nasbox.checks import check_path, check_text
from nasbox.errors import NasboxError

TOKEN_MODES = ("char", "word")
UNKNOWN, END_OF_LINE = "<unk>", "<eos>"
# Percentages, so that split sizes are exact integers however large the count (a --bptt of 10**18
# asks for a corpus of about 10**20 tokens, beyond what a float holds exactly).
TRAIN_PERCENT, VALID_PERCENT = 90, 5
PREFIX = "text:"
# Byte-order marks of the encodings other than UTF-8 that editors write, read by the mark,
# UTF-32 first: its little-endian mark begins with UTF-16's.
WIDE_MARKS = (
    ("UTF-32", codecs.BOM_UTF32_LE),
    ("UTF-32", codecs.BOM_UTF32_BE),
    ("UTF-16", codecs.BOM_UTF16_LE),
    ("UTF-16", codecs.BOM_UTF16_BE),
)


@dataclass
class TextData:
    """Token ids of the three splits and the vocabulary they index."""

    name: str
    tokens: str
    vocabulary: tuple[str, ...]
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    @property
    def num_classes(self) -> int:
        """The vocabulary size: what a language model predicts among."""
        return len(self.vocabulary)

    @property
    def unit(self) -> str:
        return "character" if self.tokens == "char" else "word"

    def check_batch(
        self, batch_size: int, bptt: int, remedy: str = "--batch-size / --bptt"
    ) -> None:
        """One training batch must fit the training split, and valid and test must each hold
        at least two tokens (one input and its target). `remedy`: the options that shrink it."""
        train_needed = batch_size * bptt + 1
        total = len(self.train) + len(self.valid) + len(self.test)
        if len(self.train) >= train_needed and min(len(self.valid), len(self.test)) >= 2:
            return
        corpus_needed = -(-train_needed * 100 // TRAIN_PERCENT)
        while min(split_sizes(corpus_needed)) < 2 or split_sizes(corpus_needed)[0] < train_needed:
            corpus_needed += 1
        raise NasboxError(
            f"{self.name}: {total:,} {self.unit}s are too few for one batch of {batch_size} "
            f"streams x {bptt} steps: the training split ({TRAIN_PERCENT}%) needs "
            f"{train_needed:,} {self.unit}s, so the corpus needs at least {corpus_needed:,} "
            f"(or lower {remedy})"
        )


def split_sizes(count: int) -> tuple[int, int, int]:
    """Tokens in train, valid and test of a corpus of `count` tokens (90/5/5 by position)."""
    train_end = count * TRAIN_PERCENT // 100
    valid_end = count * (TRAIN_PERCENT + VALID_PERCENT) // 100
    return train_end, valid_end - train_end, count - valid_end


def read_corpus(path: Path) -> str:
    """The text of `path`, UTF-8 or, by their byte-order marks, UTF-16 or UTF-32; a missing,
    empty, binary or undecodable file is one clear error."""
    if not path.is_file():
        what = "a folder" if path.is_dir() else "not found"
        raise NasboxError(f"{path}: {what} (expected a UTF-8 text file)")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise NasboxError(f"{path}: cannot read it ({err.strerror})") from None
    wide = next((name for name, mark in WIDE_MARKS if raw.startswith(mark)), None)
    if wide:  # Windows' Notepad saves "Unicode" so; the mark says how to read it
        text = _decode(raw, wide.lower(), path)
    elif b"\x00" in raw:
        raise NasboxError(f"{path}: a binary file (it holds NUL bytes); give a UTF-8 text file")
    else:
        # utf-8-sig: a byte-order mark (Windows editors write one) is no character of the text.
        text = _decode(raw, "utf-8-sig", path)
    # Universal newlines, as Python's text files read them: a corpus saved on Windows would
    # otherwise hold a '\r' character before every newline, which changes its perplexity.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        what = "holds only whitespace" if text else "is empty"
        raise NasboxError(f"{path}: the file {what}; give a text corpus")
    return text


def _decode(raw: bytes, encoding: str, path: Path) -> str:
    """`raw` as `encoding`; bytes it cannot decode are one error saying how to convert them."""
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        where = f"byte {err.start} cannot be decoded"
        if encoding != "utf-8-sig":
            raise NasboxError(
                f"{path}: begins with a {encoding.upper()} byte-order mark, but {where}; save it "
                "again as UTF-8 text"
            ) from None
        converted = path.with_name(f"{path.stem}-utf8{path.suffix}")
        raise NasboxError(  # the fix: one command, for the common Latin-1 case
            f"{path}: not a UTF-8 text file ({where}); convert it, e.g. from Latin-1: "
            f"iconv -f latin1 -t utf-8 {path} > {converted}"
        ) from None


def check_tokens(tokens: str) -> str:
    if tokens not in TOKEN_MODES:
        raise NasboxError(f"unknown --tokens {tokens!r}; choose one of: {', '.join(TOKEN_MODES)}")
    return tokens


def tokenize(text: str, tokens: str) -> list[str]:
    """Characters, or whitespace-separated words with `<eos>` after each non-blank line."""
    if check_tokens(tokens) == "char":
        return list(text)
    return [
        word for line in text.splitlines() if line.split() for word in [*line.split(), END_OF_LINE]
    ]


def load_text(file: str | Path, tokens: str = "char") -> TextData:
    """Read, tokenize and split a corpus; the vocabulary comes from the training split."""
    check_tokens(tokens)
    path = check_path(file, "load_text", "file")
    words = tokenize(read_corpus(path), tokens)
    train_size, valid_size, _ = split_sizes(len(words))
    vocabulary = tuple(sorted(set(words[:train_size]) - {UNKNOWN})) + (UNKNOWN,)
    index = {token: number for number, token in enumerate(vocabulary)}
    unknown = index[UNKNOWN]
    ids = np.fromiter((index.get(token, unknown) for token in words), np.int64, len(words))
    return TextData(
        path.name,
        tokens,
        vocabulary,
        ids[:train_size],
        ids[train_size : train_size + valid_size],
        ids[train_size + valid_size :],
    )


def load_text_source(spec: str, tokens: str = "char") -> TextData:
    """`--data text:FILE`; other data sources hold images, which language models cannot read."""
    check_text(spec, "load_text_source", "spec", "pass 'text:FILE'")
    if not spec.startswith(PREFIX):
        raise NasboxError(
            f"--data {spec} holds images; language models train on a text corpus: --data text:FILE"
        )
    if spec == PREFIX:
        raise NasboxError("--data text: needs a file, e.g. --data text:corpus.txt")
    return load_text(spec.removeprefix(PREFIX), tokens)


def batchify(ids: np.ndarray, streams: int) -> torch.Tensor:
    """`streams` contiguous streams side by side: a (length, streams) tensor of token ids."""
    length = len(ids) // streams
    if length < 2:
        raise NasboxError(f"{len(ids)} tokens are too few for {streams} streams of two")
    return torch.from_numpy(ids[: length * streams].reshape(streams, length).T.copy())


def bptt_chunks(
    source: torch.Tensor, bptt: int, start: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(input, target) chunks of up to `bptt` steps from row `start`; target is input + 1."""
    for row in range(start, len(source) - 1, bptt):
        steps = min(bptt, len(source) - 1 - row)
        yield source[row : row + steps], source[row + 1 : row + 1 + steps]
