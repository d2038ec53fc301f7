#!/usr/bin/env python3
"""Plain text of the Python documentation as Debian packages it (python3.11-doc), for the
distribution-shift study of docs/results.md: calibrate on this text, evaluate on WikiText-2.

Usage: shift_corpus.py HTML_ROOT OUT.txt
  HTML_ROOT  the package's usr/share/doc/python3.11/html (extracted by scripts/fetch_shift_corpus.sh)

Takes the pages of the tutorial, the language reference, the HOWTOs and the FAQ (prose, with their
code examples), in sorted path order, keeps the visible text of each page's main body
(<div role="main">, without the navigation, the header links and the "Table of Contents" boxes),
one paragraph per block element, paragraphs separated by a blank line. Python's standard library
only, so that the result is the same wherever the package is the same.
"""
import html.parser
import os
import sys

SECTIONS = ("tutorial", "reference", "howto", "faq")
BLOCKS = {"p", "pre", "li", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "div", "section", "blockquote"}
SKIP_CLASSES = {"headerlink", "sphinxsidebar", "related", "footer", "contents", "topic"}


class BodyText(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth_main = 0      # > 0 inside the main body
        self.skip = 0            # > 0 inside an element we drop
        self.stack = []          # (tag, entered_main, skipped)
        self.paragraphs = []
        self.buf = []
        self.in_pre = 0

    def flush(self):
        text = "".join(self.buf)
        self.buf = []
        if self.in_pre:
            text = text.strip("\n")
        else:
            text = " ".join(text.split())
        if text.strip():
            self.paragraphs.append(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = set((a.get("class") or "").split())
        main = a.get("role") == "main"
        skipped = bool(classes & SKIP_CLASSES) or tag in ("script", "style")
        if tag in ("br",):
            return
        if self.depth_main and tag in BLOCKS and not self.skip:
            self.flush()
        self.stack.append((tag, main, skipped))
        if main:
            self.depth_main += 1
        if skipped:
            self.skip += 1
        if tag == "pre":
            self.in_pre += 1

    def handle_endtag(self, tag):
        while self.stack:
            t, main, skipped = self.stack.pop()
            if self.depth_main and t in BLOCKS and not self.skip:
                self.flush()
            if t == "pre":
                self.in_pre -= 1
            if main:
                self.depth_main -= 1
            if skipped:
                self.skip -= 1
            if t == tag:
                break

    def handle_data(self, data):
        if self.depth_main and not self.skip:
            self.buf.append(data)


def page_text(path):
    p = BodyText()
    with open(path, encoding="utf-8") as f:
        p.feed(f.read())
    p.close()
    p.flush()
    return "\n\n".join(p.paragraphs)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    root, out = sys.argv[1], sys.argv[2]
    pages = []
    for section in SECTIONS:
        d = os.path.join(root, section)
        for dirpath, _, files in os.walk(d):
            pages += [os.path.join(dirpath, f) for f in files if f.endswith(".html")]
    pages.sort()
    if not pages:
        sys.exit("shift_corpus: no HTML pages under " + root)
    texts = [page_text(p) for p in pages]
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n\n".join(t for t in texts if t) + "\n")
    print("shift_corpus: %d pages, %d bytes -> %s" % (len(pages), os.path.getsize(out), out), file=sys.stderr)


if __name__ == "__main__":
    main()
