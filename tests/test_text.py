"""Text data (`--data text:FILE`) and language-model training through `nasbox train`."""

import codecs
import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nasbox.cli import main
from nasbox.data.text import batchify, bptt_chunks, load_text, split_sizes
from nasbox.errors import NasboxError
from nasbox.spaces import get_space
from nasbox.train import language
from nasbox.train.language import LanguageConfig, train_language_model
from tests.conftest import TEXT_CORPUS as CORPUS


def test_characters_split_90_5_5_by_position(corpus):
    data = load_text(corpus)
    assert data.tokens == "char" and data.unit == "character"
    assert (len(data.train), len(data.valid), len(data.test)) == split_sizes(len(CORPUS))
    assert "".join(data.vocabulary[i] for i in data.train) == CORPUS[: len(data.train)]
    # The last lines' digit 9 never occurs in the training split: it becomes <unk>.
    assert "9" not in data.vocabulary and data.vocabulary[-1] == "<unk>"
    assert data.vocabulary[data.test[-2]] == "<unk>"


def test_tokens_only_valid_or_test_hold_become_unk(tmp_path):
    path = tmp_path / "shift.txt"
    path.write_text("ab" * 90 + "z" * 20)  # 'z' appears only after the training split
    data = load_text(path)
    assert data.vocabulary == ("a", "b", "<unk>")
    assert set(data.test.tolist()) == {2}


def test_words_end_lines_with_eos(corpus):
    data = load_text(corpus, "word")
    assert data.unit == "word"
    assert len(data.train) + len(data.valid) + len(data.test) == 20 * 7
    words = [data.vocabulary[i] for i in data.train[:7]]
    assert words == ["the", "cat", "saw", "the", "dog", "0", "<eos>"]


def test_a_byte_order_mark_is_no_token(tmp_path, corpus):
    """A UTF-8 file saved with a byte-order mark got U+FEFF as a character of the vocabulary
    and glued to its first word."""
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + CORPUS.encode())
    assert load_text(path).vocabulary == load_text(corpus).vocabulary
    words = load_text(path, "word")
    assert words.vocabulary[words.train[0]] == "the"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-16-be"])
def test_utf16_and_utf32_files_read_by_their_byte_order_mark(tmp_path, corpus, encoding):
    """Windows' Notepad saves "Unicode" as UTF-16 with a byte-order mark: it was refused as a
    binary file (its NUL bytes)."""
    path = tmp_path / "wide.txt"
    path.write_bytes(codecs.BOM_UTF16_BE * (encoding == "utf-16-be") + CORPUS.encode(encoding))
    data, plain = load_text(path), load_text(corpus)
    assert data.vocabulary == plain.vocabulary
    assert np.array_equal(data.train, plain.train)


def test_windows_line_endings_read_as_newlines(tmp_path, corpus):
    """A corpus saved with CRLF line endings held a '\\r' character before every newline."""
    path = tmp_path / "crlf.txt"
    path.write_bytes(CORPUS.replace("\n", "\r\n").encode())
    data, plain = load_text(path), load_text(corpus)
    assert data.vocabulary == plain.vocabulary
    assert np.array_equal(data.train, plain.train)


def test_bptt_batches_are_streams_read_in_chunks():
    source = batchify(np.arange(23), 4)
    assert source.shape == (5, 4)
    assert source[:, 1].tolist() == [5, 6, 7, 8, 9]  # stream 1 is the second fifth
    chunks = list(bptt_chunks(source, 3))
    assert [tuple(x.shape) for x, _ in chunks] == [(3, 4), (1, 4)]
    assert torch.equal(chunks[0][1], source[1:4])  # the target is the next token


def test_a_short_corpus_names_what_it_has_and_needs(corpus):
    message = (
        r"440 characters are too few .* needs 641 characters, so the corpus needs at least 713"
    )
    with pytest.raises(NasboxError, match=message):
        load_text(corpus).check_batch(64, 10)
    load_text(corpus).check_batch(8, 10)
    # the largest --bptt: the corpus size was computed in floats, off by 29,197 at 6.6e20
    with pytest.raises(NasboxError, match="needs 590,295,810,358,705,651,649 characters, so the "):
        load_text(corpus).check_batch(64, 2**63 - 1)
    with pytest.raises(NasboxError, match="corpus needs at least 655,884,233,731,895,168,499 "):
        load_text(corpus).check_batch(64, 2**63 - 1)


def test_train_language_model_is_a_library_call_that_learns(corpus):
    data = load_text(corpus)
    torch.manual_seed(0)
    network = get_space("rnn").build(
        get_space("rnn").parse("darts-v2"), num_classes=data.num_classes, hidden=16
    )
    config = LanguageConfig(epochs=2, batch_size=4, bptt=10, steps=0, learning_rate=0.02)
    history = train_language_model(network, data, config, progress=False, test=False)
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[-1]["valid_ppl"] < data.num_classes  # better than a uniform guess
    assert "test_ppl" not in history[-1]
    assert history[-1]["valid_bpc"] == pytest.approx(history[-1]["valid_loss"] / math.log(2), 1e-3)


TRAIN = ["train", "--quiet", "--space", "rnn", "--out", "run", "--filters", "16"]
TRAIN += ["--batch-size", "8", "--bptt", "10"]


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch, corpus) -> Path:
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text(" \n\t\r\n")
    (tmp_path / "nul.txt").write_bytes(b"text\x00with a NUL")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "short.txt").write_text("to be or not to be")
    (tmp_path / "bad-utf16.txt").write_bytes("text".encode("utf-16") + b"\x00")  # odd length
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "text:missing.txt"], "missing.txt: not found"),
        (["--data", "text:empty.txt"], "empty.txt: the file is empty"),
        (["--data", "text:blank.txt"], "blank.txt: the file holds only whitespace"),
        (["--data", "text:nul.txt"], "nul.txt: a binary file"),
        (  # said so, but not how to fix it
            ["--data", "text:latin1.txt"],
            "latin1.txt: not a UTF-8 text file (byte 3 cannot be decoded); convert it, e.g. from "
            "Latin-1: iconv -f latin1 -t utf-8 latin1.txt > latin1-utf8.txt",
        ),
        (["--data", "text:bad-utf16.txt"], "bad-utf16.txt: begins with a UTF-16 byte-order"),
        (  # an empty --arch file was a "malformed rnn cell ''"
            ["--data", "text:corpus.txt", "--arch", "empty.txt"],
            "empty.txt: the file is empty; write the architecture in it, e.g. darts-v2",
        ),
        (["--data", "text:corpus.txt", "--arch", "blank.txt"], "blank.txt: the file holds only"),
        (["--data", "text:short.txt"], "18 characters are too few for one batch"),
        (["--data", "text:short.txt"], "the corpus needs at least 90 "),
        (["--data", "text:corpus.txt", "--tokens", "bytes"], "unknown --tokens 'bytes'"),
        (["--data", "text:corpus.txt", "--arch", "tanh~0|swish~1"], "unknown activation"),
        (["--data", "text:corpus.txt", "--arch", "tanh~0,relu~1"], "malformed rnn cell"),
        (["--data", "digits"], "--data digits holds images"),
        (["--data", "text:"], "needs a file"),
        (["--data", "text:corpus.txt", "--cutout", "4"], "--cutout applies to image networks"),
        (["--data", "text:corpus.txt", "--bptt", "0"], "--bptt must be at least 1"),
        (["--data", "text:corpus.txt", "--steps", str(2**64)], "--steps must be at most"),
        (["--data", "text:corpus.txt", "--dropout-hidden", "1"], "--dropout-hidden must be"),
    ],
)
def test_bad_text_input_is_one_line_exit_2(inputs, capsys, argv, message):
    assert main([*TRAIN, *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nasbox: error: "), err
    assert message in err and "Traceback" not in err
    assert not (inputs / "run").exists()


def test_search_on_a_short_corpus_names_only_its_own_options(inputs, capsys):
    argv = ["search", "--space", "rnn", "--estimator", "lm:5", "--data", "text:short.txt"]
    assert main([*argv, "--samples", "2", "--out", "run", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "too few for one batch" in err and err.endswith("(or lower --batch-size)\n")
    assert not (inputs / "run").exists()


def test_image_spaces_refuse_text_data_and_text_options(inputs, capsys):
    argv = ["train", "--quiet", "--out", "run"]
    assert main([*argv, "--data", "text:corpus.txt"]) == 2
    assert "text corpus for language models" in capsys.readouterr().err
    assert main([*argv, "--tokens", "word"]) == 2
    assert "--tokens applies to language models" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["search"], ["score"], ["bench", "run"], ["list"]])
def test_only_train_is_offered_tokens(command, capsys):
    """The --data help of search, score and bench (and `nasbox list`) told to pass --tokens,
    which only train has; their lm:STEPS reads characters."""
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    if command == ["list"]:
        assert main(command) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "read as characters (nasbox train --tokens word reads words)" in text
    assert text.count("--tokens") == text.count("nasbox train --tokens")


def _history(folder: Path) -> list[dict]:
    with (folder / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_train_writes_a_run_that_resumes_and_is_not_overwritten(inputs, capsys, monkeypatch):
    argv = [*TRAIN, "--data", "text:corpus.txt", "--steps", "3", "--epochs", "2"]
    argv += ["--dropout-hidden", "0.3"]  # the random state must resume too
    assert main([*argv, "--out", "straight"]) == 0
    out = capsys.readouterr().out
    assert "valid perplexity" in out and "bits per character" in out
    straight = _history(inputs / "straight")
    assert list(straight[0])[:6] == [
        "epoch",
        "lr",
        "train_loss",
        "train_ppl",
        "valid_loss",
        "valid_ppl",
    ]
    assert float(straight[1]["test_bpc"]) == pytest.approx(
        float(straight[1]["test_loss"]) / math.log(2), 1e-3
    )
    saved = language.save_epoch

    def save_then_stop(out, history, *rest):  # Ctrl-C right after epoch 1 is saved
        saved(out, history, *rest)
        raise KeyboardInterrupt

    monkeypatch.setattr(language, "save_epoch", save_then_stop)
    assert main(argv) == 130
    monkeypatch.setattr(language, "save_epoch", saved)
    run = inputs / "run"
    assert {"checkpoint.pt", "history.csv", "history.png", "settings.json"} <= {
        p.name for p in run.iterdir()
    }
    assert [row["epoch"] for row in _history(run)] == ["1"]
    assert main(argv) == 2
    assert "already holds results" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    # The interrupted and resumed run gives the numbers of the uninterrupted one.
    resumed = _history(run)
    assert [_without_seconds(row) for row in resumed] == [_without_seconds(row) for row in straight]


def test_a_refused_resume_leaves_the_run_as_it_was(inputs, capsys):
    """Resumed with other settings, train refused only after it had printed "training ..." and
    rewritten settings.json with the refused options."""
    argv = [*TRAIN, "--data", "text:corpus.txt", "--steps", "2", "--epochs", "1"]
    assert main(argv) == 0
    capsys.readouterr()
    settings = (inputs / "run" / "settings.json").read_text()
    assert main([*argv, "--resume", "--lr", "0.05"]) == 2
    captured = capsys.readouterr()
    assert "other settings (learning_rate 0.01 -> 0.05)" in captured.err
    assert captured.out == ""
    assert (inputs / "run" / "settings.json").read_text() == settings


def _stop_after_epoch_one(monkeypatch, argv: list[str]) -> None:
    """Train `argv` (2 epochs) and stop with Ctrl-C right after epoch 1 is saved."""
    saved = language.save_epoch

    def save_then_stop(out, history, *rest):
        saved(out, history, *rest)
        raise KeyboardInterrupt

    monkeypatch.setattr(language, "save_epoch", save_then_stop)
    assert main(argv) == 130
    monkeypatch.setattr(language, "save_epoch", saved)


def test_resume_on_another_corpus_of_the_same_name_is_refused(inputs, capsys, monkeypatch):
    """The corpus was not part of what --resume compared: a run resumed on another file of the
    same name and vocabulary size went on training on that text."""
    argv = [*TRAIN, "--data", "text:corpus.txt", "--steps", "2", "--epochs", "2"]
    _stop_after_epoch_one(monkeypatch, argv)
    capsys.readouterr()
    (inputs / "corpus.txt").write_text(CORPUS + CORPUS)
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "other settings" in err
    assert f"corpus.txt ({len(CORPUS):,} characters, vocabulary" in err
    assert [row["epoch"] for row in _history(inputs / "run")] == ["1"]


def test_resume_on_another_corpus_of_the_same_length_and_vocabulary_is_refused(
    inputs, capsys, monkeypatch
):
    """The description names the corpus, its length and vocabulary size, not its text: the same
    file with its lines reordered went on training on that text."""
    argv = [*TRAIN, "--data", "text:corpus.txt", "--steps", "2", "--epochs", "2"]
    _stop_after_epoch_one(monkeypatch, argv)
    capsys.readouterr()
    run = inputs / "run"
    kept = {name: (run / name).read_bytes() for name in ("checkpoint.pt", "history.csv")}
    (inputs / "corpus.txt").write_text("".join(reversed(CORPUS.splitlines(keepends=True))))
    assert main([*argv, "--resume"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "trained on other data than --data text:corpus.txt (same shape" in captured.err
    assert {name: (run / name).read_bytes() for name in kept} == kept


def test_a_text_checkpoint_written_before_data_digests_still_resumes(inputs, monkeypatch):
    argv = [*TRAIN, "--data", "text:corpus.txt", "--steps", "2", "--epochs", "2"]
    _stop_after_epoch_one(monkeypatch, argv)
    path = inputs / "run" / "checkpoint.pt"
    state = torch.load(path, weights_only=False)
    del state["data_digest"]
    torch.save(state, path)
    assert main([*argv, "--resume"]) == 0
    assert [row["epoch"] for row in _history(inputs / "run")] == ["1", "2"]


def test_a_language_model_too_large_for_memory_is_refused_before_it_is_built(inputs, capsys):
    """Text training skipped the memory check of image training: --cells 64 --filters 10000
    ended in an allocation traceback."""
    argv = [*TRAIN, "--data", "text:corpus.txt", "--cells", "64", "--filters", "10000"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nasbox: error: training the network (")
    assert "of memory is available; use fewer --cells or --filters" in err
    assert not (inputs / "run").exists()


def test_logits_too_large_for_memory_are_refused_before_training(inputs, monkeypatch, capsys):
    """The memory check counted parameters only: a word vocabulary of 10**5 words or more needs
    gigabytes of logits per batch, and training ran out of memory."""
    import nasbox.cpu

    (inputs / "words.txt").write_text(" ".join(f"w{i}" for i in range(3000)) * 2)
    monkeypatch.setattr(nasbox.cpu, "available_memory", lambda: 2 * 2**20)
    argv = [*TRAIN, "--data", "text:words.txt", "--tokens", "word", "--steps", "1"]
    assert main([*argv, "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "nasbox: error: training on 8 streams x 10 steps over the vocabulary of 3,001 words ("
    )
    assert err.endswith(
        "read characters (--tokens char) or pass a smaller --batch-size or --bptt\n"
    )
    assert not (inputs / "run").exists()


def _without_seconds(row: dict) -> dict:
    return {key: value for key, value in row.items() if key != "seconds"}


def test_word_level_training_reports_perplexity_without_bpc(inputs, capsys):
    argv = [*TRAIN, "--data", "text:corpus.txt", "--tokens", "word", "--batch-size", "2"]
    assert main([*argv, "--bptt", "5", "--steps", "2", "--epochs", "1"]) == 0
    assert "bits per character" not in capsys.readouterr().out
    assert "valid_bpc" not in _history(inputs / "run")[0]
