import pytest

from pulzar.core.errors import BadRequest, NotFound
from pulzar.jobs.catalog import Catalog, check_name


@pytest.fixture
def catalog(tmp_path):
    (tmp_path / "etl").mkdir()
    (tmp_path / "etl" / "load.py").write_text(
        '"""Load files.\n\nDescription: loads the files\nArguments: path, limit\n'
        'Category: etl\nAuthor: Ada\n"""\n\ndef run(params, ctx):\n    return 1\n'
    )
    (tmp_path / "etl" / "legacy.py").write_text(
        "class Legacy:\n    def execute(self):\n"
        '        """Description: the old form\n        Author: Bob"""\n        return 2\n'
    )
    return Catalog(tmp_path)


@pytest.mark.parametrize("name", ["../x", "a/../b", "a", "a/b/c", "a/b-c", "a/b.py", "/a/ b"])
def test_job_paths_outside_a_module_path_are_refused(name):
    with pytest.raises(BadRequest):
        check_name(name)


def test_unknown_job_is_not_found(catalog):
    with pytest.raises(NotFound):
        catalog.code("etl/missing")


def test_catalog_entries_come_from_the_docstrings(catalog):
    entries = {e["path"]: e for e in catalog.entries()}
    assert entries["etl/load"] == {
        "path": "etl/load", "description": "loads the files", "arguments": "path, limit",
        "category": "ETL", "author": "Ada",
    }
    assert entries["etl/legacy"]["description"] == "the old form"
    assert entries["etl/legacy"]["author"] == "Bob"


def test_code_digest_changes_with_the_source(catalog, tmp_path):
    first = catalog.code("etl/load")
    catalog.deploy({"etl/load.py": "def run(params, ctx):\n    return 3\n"})
    second = catalog.code("etl/load")
    assert first.digest != second.digest and "return 3" in second.source


def test_deploy_refuses_bad_paths_and_syntax_errors_without_writing(catalog, tmp_path):
    with pytest.raises(BadRequest):
        catalog.deploy({"../evil.py": "x = 1\n"})
    with pytest.raises(BadRequest, match="syntax error"):
        catalog.deploy({"etl/broken.py": "def run(:\n"})
    assert not (tmp_path / "etl" / "broken.py").exists()
    assert not (tmp_path.parent / "evil.py").exists()
