"""Every cross-reference in the repository points at something it holds: each "docs/design.md §N"
at a section of the design document, and nothing at a document the repository does not have."""
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / 'docs' / 'design.md'


def tracked_text_files() -> list[Path]:
    out = subprocess.run(['git', 'ls-files'], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / name for name in out.splitlines()
            if name.endswith(('.py', '.md', '.yaml', '.sh', '.txt', '.ini')) and (ROOT / name).is_file()]


def design_sections() -> set[str]:
    """'1', '2', '2.1', ... from the headings '## 1. Conventions', '### 2.1 LIIF'."""
    return set(re.findall(r'^#{2,3} (\d+(?:\.\d+)?)\.? ', DESIGN.read_text(), re.M))


def test_design_sections_exist():
    assert {'1', '2', '2.1', '2.2', '2.3', '2.4', '3', '4', '5', '6', '7', '8', '9'} <= design_sections()


def test_every_section_reference_resolves():
    sections, bad = design_sections(), []
    for path in tracked_text_files():
        text = path.read_text(errors='replace')
        for m in re.finditer(r'design(?:\.md)?\s+§(\d+(?:\.\d+)?)', text):
            if m.group(1) not in sections:
                bad.append(f'{path.relative_to(ROOT)}: §{m.group(1)}')
        # A bare "§N" in the design document itself refers to its own sections.
        if path == DESIGN:
            bad += [f'design.md: §{n}' for n in re.findall(r'§(\d+(?:\.\d+)?)', text) if n not in sections]
    assert not bad, bad


def test_no_reference_to_documents_outside_the_repository():
    # (Character classes, so that this file does not itself contain the names it looks for.)
    pattern = re.compile(r'S[P]EC §|S[P]EC\.md|\.\./s[h]ared|S[T]YLE\.md')
    bad = [str(p.relative_to(ROOT)) for p in tracked_text_files()
           if pattern.search(p.read_text(errors='replace'))]
    assert not bad, bad


def test_local_links_of_the_markdown_files_resolve():
    """Every [text](path) of a tracked .md file that is not a URL or an anchor names a file the
    repository holds (the README's long material lives in docs/)."""
    bad = []
    for path in tracked_text_files():
        if path.suffix != '.md':
            continue
        for target in re.findall(r'\]\(([^)\s]+)\)', path.read_text()):
            if target.startswith(('http://', 'https://', '#', 'mailto:')):
                continue
            if not (path.parent / target.split('#')[0]).exists():
                bad.append(f'{path.relative_to(ROOT)}: {target}')
    assert not bad, bad
