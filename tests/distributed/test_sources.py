"""SOURCE -> jobs: folders, globs and manifest files, with mirrored targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from veil.distributed import collect_jobs, read_manifest_paths
from veil.errors import InputError, OutputError


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for rel in ("a.jpg", "sub/b.png", "sub/deep/c.mp4", "notes.txt", ".hidden/d.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    return root


def _pairs(jobs: list, root: Path, dest: Path) -> set[tuple[str, str]]:
    return {(j.source.relative_to(root).as_posix(), j.target.relative_to(dest).as_posix())
            for j in jobs}  # fmt: skip


def test_folder_mirrors_media_files_and_skips_hidden(tree: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    jobs = collect_jobs(tree, dest)
    assert _pairs(jobs, tree, dest) == {
        ("a.jpg", "a.jpg"),
        ("sub/b.png", "sub/b.png"),
        ("sub/deep/c.mp4", "sub/deep/c.mp4"),
    }


def test_glob_root_is_the_part_before_the_wildcard(tree: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    jobs = collect_jobs(f"{tree}/sub/**/*", dest)
    assert {j.target.relative_to(dest).as_posix() for j in jobs} == {"b.png", "deep/c.mp4"}


def test_outputs_inside_the_source_are_not_inputs(tree: Path) -> None:
    dest = tree / "sub"
    jobs = collect_jobs(tree, dest)
    assert [j.source.name for j in jobs] == ["a.jpg"]


@pytest.mark.parametrize("kind", ["txt", "csv", "parquet"])
def test_manifest_files(tree: Path, tmp_path: Path, kind: str) -> None:
    entries = ["a.jpg", str(tree / "sub" / "b.png")]  # relative to the manifest, absolute
    manifest = tree / f"list.{kind}"
    if kind == "txt":
        manifest.write_text("# inputs\n" + "\n".join(entries) + "\n\n")
    elif kind == "csv":
        manifest.write_text("id,path\n" + "".join(f"{i},{e}\n" for i, e in enumerate(entries)))
    else:
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        pq.write_table(pa.table({"path": entries, "id": [0, 1]}), manifest)
    dest = tmp_path / "out"
    jobs = collect_jobs(manifest, dest)
    assert [j.target.relative_to(dest).as_posix() for j in jobs] == ["a.jpg", "sub/b.png"]
    assert [p.name for p in read_manifest_paths(manifest)] == ["a.jpg", "b.png"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("list.csv", "file\na.jpg\n", "no 'path' column"),
        ("list.txt", "a.jpg\nmissing.jpg\n", "1 listed files do not exist"),
        ("list.csv", "path\nnope.png\n", "nope.png"),
    ],
)
def test_bad_manifests(tree: Path, tmp_path: Path, name: str, content: str, message: str) -> None:
    (tree / name).write_text(content)
    with pytest.raises(InputError, match=message):
        collect_jobs(tree / name, tmp_path / "out")


def test_parquet_without_the_column(tree: Path, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"file": ["a.jpg"]}), tree / "list.parquet")
    with pytest.raises(InputError, match="no 'path' column"):
        collect_jobs(tree / "list.parquet", tmp_path / "out")


@pytest.mark.parametrize(
    ("source", "error"),
    [("nothing-here", InputError), ("empty-dir", InputError), ("data/*.gif", InputError)],
)
def test_nothing_to_do_is_an_error(tree: Path, tmp_path: Path, source: str, error: type) -> None:
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(error):
        collect_jobs(tmp_path / source, tmp_path / "out")


def test_output_onto_an_input_is_refused(tree: Path) -> None:
    (tree / "list.txt").write_text("a.jpg\n")
    with pytest.raises(OutputError, match="overwrite inputs"):
        collect_jobs(tree / "list.txt", tree)
