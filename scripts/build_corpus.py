"""Build an English pretraining corpus (about 100 MB) from documentation that Debian packages ship.

    sudo apt-get update
    sudo apt-get install --no-install-recommends python3.11-doc postgresql-doc-15 linux-doc-6.1 \\
        git-doc debian-reference-en manpages manpages-dev perl-doc dict-gcide man-db groff-base
    python scripts/build_corpus.py --out /work/corpus/corpus.txt          # add --install to run apt-get

The output is BERT's pretraining format: one sentence per line, a blank line between documents.
Sources, in this order (a document is one page, one manual page or one dictionary entry):

    python    Python 3.11 documentation, HTML pages    /usr/share/doc/python3.11/html
    postgres  PostgreSQL 15 manual, HTML pages         /usr/share/doc/postgresql-doc-15/html
    linux     Linux kernel documentation, HTML pages   /usr/share/doc/linux-doc-6.1/html
    git       Git manual, HTML pages                   /usr/share/doc/git-doc
    debian    Debian Reference, HTML pages             /usr/share/debian-reference
    man       manual pages (sections 1-8, perl's pod pages included), rendered by man(1) to text
    gcide     GNU Collaborative International Dictionary of English, one entry per document

Cleaning keeps prose only: text of paragraphs, list items and definitions (never code blocks,
navigation or tables), cut into sentences by ``minibert.data.pretraining.split_sentences``, keeping
sentences of 3-120 words that end with . ! or ? and are mostly letters. A paragraph seen before
(anywhere in the corpus) is dropped, so boilerplate and the copies that documentation sets hold are
kept once; a document left with fewer than two sentences is dropped.

Deterministic: files are read in sorted order and nothing is random, so the same installed package
versions give the same bytes (their versions are written next to the corpus, in SOURCES.txt).
Pages are converted in ``--workers`` processes; the order of the output does not depend on it.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html
import multiprocessing
import os
import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, Iterator, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from minibert.data.pretraining import split_sentences  # noqa: E402

PACKAGES = ["python3.11-doc", "postgresql-doc-15", "linux-doc-6.1", "git-doc", "debian-reference-en",
            "manpages", "manpages-dev", "perl-doc", "dict-gcide", "man-db", "groff-base"]

HTML_SOURCES = {   # name -> folder of HTML pages
    "python": "/usr/share/doc/python3.11/html",
    "postgres": "/usr/share/doc/postgresql-doc-15/html",
    "linux": "/usr/share/doc/linux-doc-6.1/html",
    "git": "/usr/share/doc/git-doc",
    "debian": "/usr/share/debian-reference",
}
MAN_ROOT = "/usr/share/man"
GCIDE_DICT = "/usr/share/dictd/gcide.dict.dz"

Paragraphs = list[str]

# ------------------------------------------------------------------------------------------- HTML

# Elements whose text is prose; each one ends a paragraph where it opens and where it closes.
_BLOCKS = {"p", "li", "dd", "dt", "blockquote", "div", "section", "td", "th", "h1", "h2", "h3", "h4",
           "h5", "h6", "br", "tr", "table", "ul", "ol", "dl", "body"}
# Elements whose text is never prose (code, navigation, scripts, headings of tables of contents).
_SKIP = {"pre", "script", "style", "head", "nav", "table", "header", "footer", "title", "code-block"}
# Class or role names of navigation, code and index blocks (Sphinx, Read the Docs theme, DocBook).
_SKIP_CLASSES = {"navigation", "search", "sphinxsidebar", "sphinxsidebarwrapper", "related", "footer", "header",
                 "navheader", "navfooter", "wy-nav-side", "wy-nav-top", "wy-breadcrumbs", "rst-footer-buttons",
                 "headerlink", "toc", "toctree-wrapper", "highlight", "literal-block", "programlisting",
                 "screen", "synopsis", "cmdsynopsis", "funcsynopsis", "doctest", "index"}
_VOID = {"br", "img", "hr", "meta", "link", "input", "wbr", "col", "area", "base", "source"}


class _ProseParser(HTMLParser):
    """Collects the text of paragraphs, skipping everything inside the elements of ``_SKIP``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: Paragraphs = []
        self._text: list[str] = []
        self._stack: list[bool] = []   # for each open element: does it start a skipped region?
        self._skipping = 0

    def _flush(self) -> None:
        text = " ".join("".join(self._text).split())
        if text:
            self.paragraphs.append(text)
        self._text = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in _BLOCKS:
            self._flush()
        if tag in _VOID:
            return
        names = " ".join(v or "" for k, v in attrs if k in ("class", "role")).split()
        skip = tag in _SKIP or any(n in _SKIP_CLASSES or n.startswith("highlight-") for n in names)
        self._stack.append(skip)
        self._skipping += skip

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCKS:
            self._flush()
        if tag in _VOID or not self._stack:
            return
        self._skipping -= self._stack.pop()

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._text.append(data)


def html_paragraphs(path: str) -> Paragraphs:
    raw = gzip.open(path).read() if path.endswith(".gz") else Path(path).read_bytes()
    parser = _ProseParser()
    parser.feed(raw.decode("utf-8", errors="replace"))
    parser.close()
    parser._flush()
    return parser.paragraphs


def html_files(root: str) -> list[str]:
    return sorted(str(p) for p in Path(root).rglob("*") if p.is_file() and
                  (p.name.endswith(".html") or p.name.endswith(".html.gz")) and "genindex" not in p.name
                  and "/_sources/" not in str(p))


# -------------------------------------------------------------------------------------- man pages

def man_paragraphs(path: str) -> Paragraphs:
    """Render one manual page with man(1) on a very wide line, so a paragraph comes out on one line."""
    env = dict(os.environ, MANWIDTH="4000", MAN_KEEP_FORMATTING="", LANG="C.UTF-8", MANROFFSEQ="")
    try:
        out = subprocess.run(["man", "--no-hyphenation", "--no-justification", "-E", "UTF-8", "-l", path],
                             capture_output=True, env=env, timeout=60).stdout
    except subprocess.TimeoutExpired:
        return []
    text = re.sub(r".\x08", "", out.decode("utf-8", errors="replace"))  # overstrike bold/underline
    paragraphs = []
    for line in text.splitlines():
        if line.startswith(" "):   # section headings start at column 0; the body is indented
            paragraphs.append(" ".join(line.split()))
    return paragraphs


def man_files(root: str = MAN_ROOT) -> list[str]:
    """English pages of sections 1-8 (translations live in /usr/share/man/<lang>/ and are not read),
    less the ~16,600 generated pages of the Google Cloud CLI where it is installed (one template,
    repeated: they would crowd out everything else)."""
    files = []
    for section in sorted(Path(root).glob("man[1-8]")):
        files += [str(p) for p in section.iterdir()
                  if p.is_file() and not p.is_symlink() and not p.name.startswith("gcloud")]
    return sorted(files)


# ------------------------------------------------------------------------------------------ GCIDE

_GCIDE_NOISE = re.compile(r"\[(?:1913 Webster|Webster 1913 Suppl\.|PJC|WordNet 1\.5|Century Dict\.|"
                          r"Obs\.|R\.|Colloq\.|Archaic)[^\]]*\]|\{|\}|\\|--\s*[A-Z][\w.]*\.?$")


def gcide_documents(path: str = GCIDE_DICT) -> Iterator[Paragraphs]:
    """The dictionary entries, in file order; an entry's senses become its paragraphs.

    The file (dictzip, read as gzip) holds entries separated by lines of their own headword; within
    an entry a blank line separates senses, and long senses wrap over indented lines.
    """
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as lines:
        entry: Paragraphs = []
        sense: list[str] = []
        for line in lines:
            if not line.strip():
                if sense:
                    entry.append(" ".join(sense))
                sense = []
            elif not line.startswith(" "):   # a headword: a new entry
                if sense:
                    entry.append(" ".join(sense))
                if entry:
                    yield entry
                entry, sense = [], []
            else:
                cleaned = _GCIDE_NOISE.sub(" ", line).strip()
                cleaned = re.sub(r"^\d+\.\s*", "", cleaned)   # sense numbers
                if cleaned:
                    sense.append(cleaned)
        if sense:
            entry.append(" ".join(sense))
        if entry:
            yield entry


# --------------------------------------------------------------------------------------- cleaning

_ENDS_SENTENCE = re.compile(r"[.!?][\"')\]]*$")


def is_prose(sentence: str) -> bool:
    """A sentence worth keeping: 3-120 words, ends like a sentence, at least 70% letters."""
    words = sentence.split()
    if not 3 <= len(words) <= 120 or not _ENDS_SENTENCE.search(sentence):
        return False
    if not (sentence[0].isupper() or sentence[0].isdigit() or sentence[0] in "\"'("):
        return False
    visible = sentence.replace(" ", "")
    letters = sum(c.isalpha() for c in visible)
    return letters >= 0.7 * len(visible) and sum(c.isascii() for c in visible) >= 0.95 * len(visible)


_ETYMOLOGY = re.compile(r"[\[\]]|\?.|\bfr\. |\bCf\. |^See ")


def is_definition(sentence: str) -> bool:
    """GCIDE prose without its etymologies (brackets, "fr. Gr.", "?" for letters it cannot show)."""
    return is_prose(sentence) and not _ETYMOLOGY.search(sentence)


def clean_document(paragraphs: Paragraphs, keep: Callable[[str], bool] = is_prose) -> list[Paragraphs]:
    """Paragraphs -> per paragraph, its sentences that ``keep`` accepts (html entities decoded)."""
    out = []
    for paragraph in paragraphs:
        sentences = [s for s in split_sentences(html.unescape(paragraph)) if keep(s)]
        if sentences:
            out.append(sentences)
    return out


def _convert(job: tuple[str, str]) -> list[Paragraphs]:
    kind, path = job
    reader: Callable[[str], Paragraphs] = html_paragraphs if kind == "html" else man_paragraphs
    try:
        return clean_document(reader(path))
    except (OSError, UnicodeError, ValueError):
        return []


class Deduplicator:
    """Remembers a 16-byte digest of every paragraph kept so far; a repeated paragraph is dropped."""

    def __init__(self) -> None:
        self.seen: set[bytes] = set()

    def keep(self, document: list[Paragraphs]) -> list[str]:
        sentences = []
        for paragraph in document:
            digest = hashlib.blake2b("\n".join(paragraph).lower().encode(), digest_size=16).digest()
            if digest not in self.seen:
                self.seen.add(digest)
                sentences.extend(paragraph)
        return sentences


# ------------------------------------------------------------------------------------------- build

def source_jobs(name: str) -> list[tuple[str, str]]:
    if name == "man":
        return [("man", f) for f in man_files()]
    root = HTML_SOURCES[name]
    if not Path(root).is_dir():
        raise SystemExit(f"source {name!r}: {root} is missing; install its package (see --help)")
    return [("html", f) for f in html_files(root)]


def build(out_path: Path, sources: list[str], workers: int, max_mb: Optional[float]) -> dict[str, dict]:
    dedup = Deduplicator()
    stats: dict[str, dict] = {}
    tmp = out_path.with_name(out_path.name + ".tmp")
    written = 0
    with open(tmp, "w", encoding="utf-8") as out, multiprocessing.Pool(workers) as pool:
        for name in sources:
            start = time.perf_counter()
            if name == "gcide":
                documents: Iterator[list[Paragraphs]] = (clean_document(e, is_definition) for e in gcide_documents())
            else:
                documents = pool.imap(_convert, source_jobs(name), chunksize=8)  # keeps the input order
            n_docs = n_sentences = n_bytes = 0
            for document in documents:
                sentences = dedup.keep(document)
                if len(sentences) < 2:
                    continue
                block = "\n".join(sentences) + "\n\n"
                out.write(block)
                n_docs += 1
                n_sentences += len(sentences)
                n_bytes += len(block.encode())
                if max_mb and written + n_bytes > max_mb * 1e6:
                    break
            written += n_bytes
            stats[name] = {"documents": n_docs, "sentences": n_sentences, "bytes": n_bytes,
                           "seconds": round(time.perf_counter() - start, 1)}
            print(f"{name:9s} {n_docs:8d} documents {n_sentences:9d} sentences {n_bytes / 1e6:7.1f} MB "
                  f"{stats[name]['seconds']:7.1f} s", flush=True)
            if max_mb and written > max_mb * 1e6:
                break
    os.replace(tmp, out_path)   # the corpus appears whole or not at all
    return stats


def package_versions() -> str:
    out = subprocess.run(["dpkg-query", "-W", *PACKAGES], capture_output=True, text=True).stdout
    return out


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="/work/corpus/corpus.txt", help="corpus file to write")
    parser.add_argument("--sources", default="python,postgres,linux,git,debian,man,gcide",
                        help="comma-separated sources, in output order")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--max-mb", type=float, default=200.0, help="stop once the corpus reaches this size")
    parser.add_argument("--install", action="store_true", help="apt-get install the packages first (root)")
    args = parser.parse_args(argv)
    if args.install:
        subprocess.run(["apt-get", "update"], check=True)
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    stats = build(out_path, args.sources.split(","), args.workers, args.max_mb)
    seconds = time.perf_counter() - start
    total = sum(s["bytes"] for s in stats.values())
    summary = [f"corpus {out_path}: {total / 1e6:.1f} MB, {sum(s['documents'] for s in stats.values())} "
               f"documents, {sum(s['sentences'] for s in stats.values())} sentences, built in {seconds:.0f} s "
               f"with {args.workers} workers", ""]
    summary += [f"{name}: {s}" for name, s in stats.items()] + ["", "packages:", package_versions()]
    (out_path.parent / "SOURCES.txt").write_text("\n".join(summary))
    print(summary[0])


if __name__ == "__main__":
    main()
