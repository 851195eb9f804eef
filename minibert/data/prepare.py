"""Tokenise a corpus once, in parallel, into memory-mapped shards that pretraining reads directly.

    minibert prepare corpus.txt more/ --vocab vocab-folder --out-dir data/ --workers 8

What lands in ``--out-dir``:

    manifest.json             what was prepared and how: vocabulary hash, tokenizer settings,
                              max_seq_length, counts, and for each shard its source, byte range,
                              content hash and the SHA-256 of each of its files
    vocab.txt, tokenizer_config.json     the tokenizer, so training takes its vocabulary from here
    shards/<name>/tokens.npy      token ids of every sentence, end to end     (n_tokens,)  uint8/16/32
                  sentences.npy   where each sentence starts in tokens.npy    (n_sentences + 1,) int64
                  documents.npy   where each document starts, in sentences    (n_documents + 1,) int64
                  chunks.npy      where each chunk starts, in sentences       (n_chunks + 1,) int64

A *chunk* is a run of consecutive sentences of one document, gathered until they hold
``max_seq_length - 3`` tokens (or the document ends): the raw material of one pretraining example
(BERT's ``create_instances_from_document`` gathers the same runs). Computing them here is what ties a
prepared folder to one ``max_seq_length``.

How it works:

* Each input file is cut into pieces of about ``shard_mb`` at blank lines (document boundaries), so
  one big file still keeps every worker busy; each piece becomes one shard. The documents, sentences
  and chunks are those ``read_documents`` and ``tokenize_document`` give, in file order.
* ``workers`` processes tokenise pieces in parallel (``multiprocessing``); each builds its tokenizer
  once. Token ids take the smallest unsigned type that holds the vocabulary (uint16 up to 65,536 ids).
* Incremental: a shard's name is a hash of its piece's bytes and of the settings (vocabulary,
  tokenizer, ``max_seq_length``), so a re-run finds the shards of unchanged pieces already there and
  skips them; shards no longer listed are deleted once the new manifest is in place.
* Atomic: a shard is written into a temporary folder and renamed into place, the manifest is written
  to a temporary file and renamed last. A reader only follows the manifest, so it never sees half a
  shard, and a crash leaves the previous manifest with its shards intact.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from minibert.checks import check_int, check_number, check_positive_int, read_json
from minibert.data.corpus import documents_of_lines, text_files
from minibert.data.pretraining import tokenize_document
from minibert.errors import InputError

FORMAT = "minibert-prepared/1"
MANIFEST = "manifest.json"
SHARD_FILES = ("tokens.npy", "sentences.npy", "documents.npy", "chunks.npy")


# ---------------------------------------------------------------------------------- small helpers

def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds ids 0 .. vocab_size - 1."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise InputError(f"a vocabulary of {vocab_size} tokens does not fit 32-bit token ids")


def vocab_sha256(tokenizer: Any) -> str:
    """The hash that names a vocabulary: its tokens in id order, one per line."""
    return hashlib.sha256("\n".join(tokenizer.ids_to_tokens).encode("utf-8")).hexdigest()


def tokenizer_settings(tokenizer: Any) -> dict[str, Any]:
    """What, besides the vocabulary, decides the ids a text gets."""
    return {"do_lower_case": tokenizer.do_lower_case, "strip_accents": tokenizer.strip_accents,
            "tokenize_chinese_chars": tokenizer.tokenize_chinese_chars,
            "never_split": sorted(tokenizer.basic_tokenizer.never_split)}


def file_sha256(path: Union[str, os.PathLike]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------ pieces

@dataclass(frozen=True)
class Piece:
    """Bytes ``start:end`` of ``path``: whole documents (cut at blank lines), one future shard."""
    path: str
    start: int
    end: int


def split_into_pieces(path: Union[str, os.PathLike], target_bytes: int) -> list[Piece]:
    """Cut a file into pieces of about ``target_bytes``, each ending after a blank line (or at the
    end of the file), so no document is split between two pieces."""
    size = os.path.getsize(path)
    pieces, start = [], 0
    with open(path, "rb") as handle:
        while start < size:
            handle.seek(min(start + target_bytes, size))
            if handle.tell() < size:
                handle.readline()                       # finish the line the seek landed in
                while True:
                    line = handle.readline()
                    if not line or not line.strip():    # a blank line ends a document
                        break
            end = handle.tell()
            pieces.append(Piece(str(path), start, end))
            start = end
    return pieces


def chunk_starts(sentence_lengths: np.ndarray, document_starts: np.ndarray, target: int) -> np.ndarray:
    """Sentence indices where chunks start (plus the end): within each document, sentences are
    gathered until they hold ``target`` tokens; the document's end closes its last chunk."""
    starts = []
    for first, last in zip(document_starts[:-1].tolist(), document_starts[1:].tolist()):
        gathered = target  # forces a new chunk at the document's first sentence
        for sentence in range(first, last):
            if gathered >= target:
                starts.append(sentence)
                gathered = 0
            gathered += int(sentence_lengths[sentence])
    starts.append(int(document_starts[-1]))
    return np.asarray(starts, dtype=np.int64)


# ----------------------------------------------------------------------------------------- workers

_worker_tokenizer: Any = None


def _init_worker(vocab: str) -> None:
    global _worker_tokenizer
    from minibert.tokenizer import BertTokenizer

    _worker_tokenizer = BertTokenizer.from_pretrained(vocab)


def tokenize_piece(piece: Piece, tokenizer: Any, max_seq_length: int) -> dict[str, np.ndarray]:
    """A piece of text -> the four arrays of a shard (see the module docstring)."""
    with open(piece.path, "rb") as handle:
        handle.seek(piece.start)
        raw = handle.read(piece.end - piece.start)
    # Strict, as the corpus reader is: replacement characters would make shards out of binary files.
    # Pieces end at line ends, so a valid file never has a character cut in two here.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"corpus file {piece.path!r} is not UTF-8 text (byte {raw[exc.start]:#04x} at offset "
                         f"{piece.start + exc.start}); prepare reads UTF-8 text files only") from None
    if "\x00" in text:
        raise InputError(f"corpus file {piece.path!r} holds NUL bytes: it is not a text file")
    ids: list[int] = []
    sentence_lengths: list[int] = []
    document_starts = [0]
    for document in documents_of_lines(text.splitlines()):
        tokenized = tokenize_document(document, tokenizer)
        if not tokenized:
            continue  # a document without a single token is no document
        for sentence in tokenized:
            ids.extend(sentence)
            sentence_lengths.append(len(sentence))
        document_starts.append(len(sentence_lengths))
    lengths = np.asarray(sentence_lengths, dtype=np.int64)
    documents = np.asarray(document_starts, dtype=np.int64)
    return {"tokens": np.asarray(ids, dtype=token_dtype(len(tokenizer.ids_to_tokens))),
            "sentences": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            "documents": documents,
            "chunks": chunk_starts(lengths, documents, max_seq_length - 3)}


def _piece_sha256(piece: Piece) -> str:
    with open(piece.path, "rb") as handle:
        handle.seek(piece.start)
        return hashlib.sha256(handle.read(piece.end - piece.start)).hexdigest()


def write_shard(arrays: dict[str, np.ndarray], folder: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Write the arrays and ``shard.json`` (``entry`` with each file's size and SHA-256 added) into
    ``folder`` atomically: a temporary folder, complete and on disk, is renamed into place."""
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files = {}
    for name in SHARD_FILES:
        path = tmp / name
        with open(path, "wb") as handle:
            np.save(handle, arrays[name.removesuffix(".npy")], allow_pickle=False)
            handle.flush()
            os.fsync(handle.fileno())
        files[name] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
    entry = {**entry, "files": files}
    (tmp / "shard.json").write_text(json.dumps(entry), encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)  # an incomplete shard of a crashed run, in no manifest
    os.rename(tmp, folder)
    return entry


def _prepare_piece(job: tuple[Piece, str, str, int]) -> dict[str, Any]:
    """Worker: one piece -> one shard entry of the manifest (reusing the shard when it exists)."""
    piece, settings_hash, out_dir, max_seq_length = job
    content = _piece_sha256(piece)
    name = hashlib.sha256(f"{content}/{settings_hash}".encode()).hexdigest()[:20]
    folder = Path(out_dir) / "shards" / name
    entry = {"name": name, "source": piece.path, "byte_start": piece.start, "byte_end": piece.end,
             "content_sha256": content}
    record = folder / "shard.json"  # written last into the shard: present means complete
    if record.is_file():
        return {**read_json(record, error=InputError), **entry, "reused": True}
    arrays = tokenize_piece(piece, _worker_tokenizer, max_seq_length)
    entry.update(documents=len(arrays["documents"]) - 1, sentences=len(arrays["sentences"]) - 1,
                 tokens=len(arrays["tokens"]), chunks=len(arrays["chunks"]) - 1)
    return {**write_shard(arrays, folder, entry), "reused": False}


# ----------------------------------------------------------------------------------------- prepare

def prepare(corpus: Sequence[Union[str, os.PathLike]], vocab: Union[str, os.PathLike],
            out_dir: Union[str, os.PathLike], *, workers: int = 1, max_seq_length: int = 128,
            shard_mb: float = 32.0, progress: Optional[bool] = None) -> dict[str, Any]:
    """Prepare ``corpus`` (text files and folders of ``.txt`` files, BERT's format) into ``out_dir``.
    Returns the manifest, plus a ``"run"`` entry with this run's timings and throughput."""
    from minibert.progress import progress_bar
    from minibert.tokenizer import BertTokenizer

    workers = check_positive_int("workers", workers)
    max_seq_length = check_int("max_seq_length", max_seq_length, minimum=5)
    shard_mb = check_number("shard_mb", shard_mb, minimum=0, exclusive_minimum=True)
    if isinstance(corpus, (str, os.PathLike)):
        corpus = [corpus]
    if not corpus:
        raise InputError("prepare needs at least one corpus file or folder")
    files = [file for path in corpus for file in text_files(Path(path))]   # fails on a missing path
    pieces = [piece for file in files for piece in split_into_pieces(file, int(shard_mb * 2**20))]
    total_bytes = sum(p.end - p.start for p in pieces)
    if total_bytes == 0:
        raise InputError(f"the corpus {[str(p) for p in corpus]} is empty")

    tokenizer = BertTokenizer.from_pretrained(vocab)
    out = Path(out_dir)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    settings = {"format": FORMAT, "vocab_sha256": vocab_sha256(tokenizer),
                "vocab_size": len(tokenizer.ids_to_tokens),
                "token_dtype": token_dtype(len(tokenizer.ids_to_tokens)).name,
                "tokenizer": tokenizer_settings(tokenizer), "max_seq_length": max_seq_length}
    settings_hash = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()

    started = time.perf_counter()
    jobs = [(piece, settings_hash, str(out), max_seq_length) for piece in pieces]
    shards: list[dict[str, Any]] = []
    done_bytes = done_tokens = 0
    show = progress if progress is not None else False
    bar = progress_bar(total=total_bytes, disable=not show, desc="prepare", unit="B", unit_scale=True)
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with context.Pool(workers, initializer=_init_worker, initargs=(str(vocab),)) as pool:
        for entry in pool.imap(_prepare_piece, jobs):   # imap keeps the corpus order
            shards.append(entry)
            done_bytes += entry["byte_end"] - entry["byte_start"]
            done_tokens += entry["tokens"]
            seconds = max(time.perf_counter() - started, 1e-9)
            bar.update(entry["byte_end"] - entry["byte_start"])
            bar.set_postfix(tok_s=f"{done_tokens / seconds:,.0f}", MB_s=f"{done_bytes / 1e6 / seconds:.2f}",
                            refresh=False)
    bar.close()
    seconds = time.perf_counter() - started

    totals = {key: sum(s[key] for s in shards) for key in ("documents", "sentences", "tokens", "chunks")}
    if totals["documents"] == 0:
        raise InputError(f"the corpus {[str(p) for p in corpus]} holds no text that tokenises to anything")
    totals["bytes"] = total_bytes
    manifest = {**settings, "sources": [str(f) for f in files], "totals": totals,
                "shards": [{k: v for k, v in s.items() if k != "reused"} for s in shards]}
    # The vocabulary goes in just before the manifest that names it (a reader compares the two hashes).
    tokenizer.save_pretrained(out)
    manifest_tmp = out / f".{MANIFEST}.tmp"
    manifest_tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    os.replace(manifest_tmp, out / MANIFEST)
    _fsync_folder(out)
    listed = {s["name"] for s in shards}
    for stale in (out / "shards").iterdir():   # shards of an earlier version of the corpus
        if stale.name not in listed:
            shutil.rmtree(stale, ignore_errors=True)

    tokenised = [s for s in shards if not s["reused"]]
    new_bytes = sum(s["byte_end"] - s["byte_start"] for s in tokenised)
    new_tokens = sum(s["tokens"] for s in tokenised)
    manifest["run"] = {"seconds": seconds, "workers": workers, "shards_written": len(tokenised),
                       "shards_reused": len(shards) - len(tokenised), "bytes_tokenised": new_bytes,
                       "tokens_tokenised": new_tokens, "mb_per_s": new_bytes / 1e6 / max(seconds, 1e-9),
                       "tokens_per_s": new_tokens / max(seconds, 1e-9)}
    return manifest


# ---------------------------------------------------------------------------------- command line

def build_parser(parser: Optional[argparse.ArgumentParser] = None) -> argparse.ArgumentParser:
    """The ``minibert prepare`` options (fills ``parser`` when given, e.g. a sub-command's)."""
    if parser is None:
        parser = argparse.ArgumentParser(prog="python -m minibert.data.prepare",
                                         description="Tokenise a corpus into shards for pretraining.")
    parser.add_argument("corpus", nargs="+", help="text files or folders of .txt files (one sentence per "
                                                  "line, a blank line between documents)")
    parser.add_argument("--vocab", required=True, help="a vocab.txt or a tokenizer folder")
    parser.add_argument("--out-dir", required=True, help="the prepared folder (created; re-runs update it)")
    parser.add_argument("--workers", type=int, default=1, help="tokenising processes")
    parser.add_argument("--max-seq-length", type=int, default=128,
                        help="tokens per training example, specials included (fixed by the folder)")
    parser.add_argument("--shard-mb", type=float, default=32.0, help="input megabytes per shard, about")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar (default: when stderr is a terminal)")
    return parser


def main(argv: Union[Sequence[str], argparse.Namespace, None] = None) -> int:
    import sys

    args = argv if isinstance(argv, argparse.Namespace) else build_parser().parse_args(argv)
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    manifest = prepare(args.corpus, args.vocab, args.out_dir, workers=args.workers,
                       max_seq_length=args.max_seq_length, shard_mb=args.shard_mb, progress=progress)
    run, totals = manifest["run"], manifest["totals"]
    print(f"prepared {totals['bytes'] / 1e6:.1f} MB into {len(manifest['shards'])} shard(s) in {args.out_dir} "
          f"({run['shards_reused']} reused): {totals['documents']:,} documents, {totals['sentences']:,} "
          f"sentences, {totals['tokens']:,} tokens ({manifest['token_dtype']}), {totals['chunks']:,} chunks "
          f"of up to {manifest['max_seq_length'] - 3} tokens")
    print(f"tokenised {run['bytes_tokenised'] / 1e6:.1f} MB in {run['seconds']:.1f} s with {run['workers']} "
          f"worker(s): {run['mb_per_s']:.2f} MB/s, {run['tokens_per_s']:,.0f} tokens/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
