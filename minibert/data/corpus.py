"""Where pretraining and vocabulary text comes from, read one way.

A corpus is a text file, a folder of ``.txt`` files (read in path order), the name ``"pydoc"`` (the
Python reference topics every CPython ships, a small English corpus available offline), or a list of
documents already in memory. ``open_corpus`` turns any of them into a ``Corpus``: a name for
messages, a factory that gives a fresh pass over the documents (one per epoch), and a size.

A document is a list of sentences. The file format is BERT's: one sentence or paragraph per line, a
blank line between documents; files are UTF-8 text, and anything else is refused naming the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, Union

from minibert.errors import InputError, InputTypeError

Document = list[str]  # sentences
DocumentFactory = Callable[[], Iterable[Document]]
PYDOC = "pydoc"

# --------------------------------------------------------------------------------------- sentences

# Words that end with a period without ending a sentence (compared lower-cased, without the final ".").
ABBREVIATIONS = frozenset({
    "e.g", "i.e", "etc", "cf", "vs", "viz", "al", "approx", "incl", "resp", "fig", "eq", "no", "vol",
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr",
})

# A candidate boundary: end punctuation, optional closing quotes/brackets, whitespace, then something
# that can start a sentence (an optional opening quote/bracket and an upper-case letter or a digit).
_BOUNDARY = re.compile(r"[.!?]+[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences with one rule and two exceptions.

    Rule: a sentence ends at ``.``, ``!`` or ``?`` (plus closing quotes or brackets) followed by
    whitespace and an upper-case letter or a digit. Exceptions, for a period only: the word before it
    is a known abbreviation (``e.g.``, ``Dr.``; see ``ABBREVIATIONS``) or a single letter (an initial).
    Runs of whitespace, line breaks included, become one space. It is wrong now and then, which
    costs BERT little: segments are made of several sentences anyway.
    """
    if not isinstance(text, str):
        raise InputTypeError(f"text must be a str, got {type(text).__name__}")
    text = " ".join(text.split())
    sentences: list[str] = []
    start = 0
    for boundary in _BOUNDARY.finditer(text):
        if boundary.group().startswith(".") and not boundary.group().startswith(".."):
            last_word = text[start:boundary.start()].rsplit(" ", 1)[-1].lower()
            if last_word in ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()):
                continue
        sentences.append(text[start:boundary.end()].strip())
        start = boundary.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


# --------------------------------------------------------------------------------------- documents

def text_files(path: Path) -> list[Path]:
    """The file ``path``, or the ``.txt`` files under the folder ``path`` sorted by path."""
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise InputError(f"corpus folder {str(path)!r} holds no .txt files")
        return files
    raise InputError(f"corpus {str(path)!r} is neither a file nor a folder")


def read_lines(file: Path) -> Iterator[str]:
    """The lines of a UTF-8 text file, streamed. A file that is not text (bytes that are not UTF-8, or
    NUL bytes) is an InputError naming the file: decoding with replacement characters would train on
    garbage without a word."""
    number = 0
    with open(file, encoding="utf-8") as handle:
        try:
            for number, line in enumerate(handle, 1):
                if "\x00" in line:
                    raise InputError(f"corpus file {str(file)!r} line {number} holds NUL bytes: it is not a text file")
                yield line
        except UnicodeDecodeError as exc:
            raise InputError(f"corpus file {str(file)!r} is not UTF-8 text (byte {exc.object[exc.start]:#04x} "
                             f"after line {number}): is it a binary file?") from None


def read_documents(path: Union[str, os.PathLike]) -> Iterator[Document]:
    """Stream the documents of a text file, or of every ``.txt`` file under a folder (sorted by path).

    The format is BERT's: one sentence (or one paragraph) per line, a blank line between documents;
    the end of a file also ends a document. Each line is passed through ``split_sentences``, so a
    paragraph per line works too. Only one document is held in memory at a time.
    """
    for file in text_files(Path(path)):
        yield from documents_of_lines(read_lines(file))


def documents_of_lines(lines: Iterable[str]) -> Iterator[Document]:
    """The documents of lines in BERT's format (see ``read_documents``); the last line ends the last one."""
    document: Document = []
    for line in lines:
        if not line.strip():
            if document:
                yield document
            document = []
        else:
            document.extend(split_sentences(line))
    if document:
        yield document


def text_to_document(text: str) -> Document:
    """Free text with blank lines between paragraphs -> a list of sentences (one document)."""
    sentences: Document = []
    for paragraph in re.split(r"\n\s*\n", text):
        sentences.extend(split_sentences(paragraph))
    return sentences


def pydoc_documents() -> list[Document]:
    """The Python reference topics shipped with CPython (``pydoc_data.topics``), one document per topic,
    in sorted topic order: a small English corpus (~465k characters) available on every machine."""
    from pydoc_data.topics import topics

    return [text_to_document(topics[name]) for name in sorted(topics)]


@dataclass(frozen=True)
class Corpus:
    """A corpus ready to read: ``documents()`` starts a new pass; ``size_bytes`` is its text's size."""
    name: str
    documents: DocumentFactory
    size_bytes: int


def open_corpus(corpus: Union[str, os.PathLike, Sequence[Document]]) -> Corpus:
    """A path (file or folder), ``"pydoc"``, or an in-memory list of documents, as a ``Corpus``.
    A missing path or an empty folder fails here, not at the first batch."""
    if isinstance(corpus, str) and corpus == PYDOC:
        documents = pydoc_documents()
        return Corpus("pydoc_data.topics", lambda: documents, sum(len(s) for d in documents for s in d))
    if isinstance(corpus, (str, os.PathLike)):
        files = text_files(Path(corpus))
        return Corpus(str(corpus), lambda: read_documents(corpus), sum(f.stat().st_size for f in files))
    if isinstance(corpus, Sequence):
        for i, document in enumerate(corpus):
            if not isinstance(document, (list, tuple)) or not all(isinstance(s, str) for s in document):
                raise InputTypeError(f"corpus[{i}] must be a list of sentences (str), got {document!r:.80}")
        return Corpus(f"a list of {len(corpus)} documents", lambda: corpus, sum(len(s) for d in corpus for s in d))
    raise InputTypeError(f"corpus must be a path, {PYDOC!r} or a list of documents, got {type(corpus).__name__}")


def document_factory(corpus: Union[str, os.PathLike, Sequence[Document]]) -> DocumentFactory:
    """A callable that returns a fresh iterable of documents each time (once per epoch)."""
    return open_corpus(corpus).documents
