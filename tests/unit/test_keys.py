import pytest

from darkroom import keys


def test_raw_and_processed_keys_follow_the_layout() -> None:
    assert keys.raw_key("j1", "IMG_1.CR3") == "raw/j1/IMG_1.CR3"
    assert keys.raw_manifest_key("j1") == "raw/j1/manifest.json"
    run = "j1.rp-20260101T000000000"
    assert (
        keys.rendition_key("j1", run, "web", "IMG_1.CR3", "jpg")
        == f"processed/j1/{run}/web/IMG_1.jpg"
    )
    assert keys.run_manifest_key("j1", run) == f"processed/j1/{run}/manifest.json"
    assert keys.thumbnail_key("a/b c.jpg", 256, "jpg") == "thumbnails/a/b c.jpg/256.jpg"


def test_only_the_manifest_key_names_a_job() -> None:
    assert keys.job_id_from_manifest_key("raw/j1/manifest.json") == "j1"
    assert keys.job_id_from_manifest_key("raw/j1/IMG_1.dng") is None
    assert keys.job_id_from_manifest_key("raw/j1/sub/manifest.json") is None
    assert keys.job_id_from_manifest_key("processed/j1/manifest.json") is None
    assert keys.job_id_from_manifest_key("raw/../manifest.json") is None


def test_file_names_of_a_job_exclude_the_manifest_and_nested_keys() -> None:
    assert keys.file_name_from_raw_key("j1", "raw/j1/A.NEF") == "A.NEF"
    assert keys.file_name_from_raw_key("j1", "raw/j1/manifest.json") is None
    assert keys.file_name_from_raw_key("j1", "raw/j1/x/A.NEF") is None
    assert keys.file_name_from_raw_key("j1", "raw/j2/A.NEF") is None


@pytest.mark.parametrize(
    "bad", ["", "../x", "a/b", "-lead", "x" * 41, "sp ace", "a.b", "j1\n", "j1\r\n", "\nj1"]
)
def test_unsafe_job_ids_are_rejected_with_the_id_in_the_message(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid job id"):
        keys.validate_job_id(bad)


def test_a_job_id_is_matched_in_full_so_a_trailing_newline_is_refused() -> None:
    assert keys.validate_job_id("j1") == "j1"
    assert keys.validate_job_id("x" * 40) == "x" * 40
    for bad in ("j1\n", "x" * 40 + "\n"):
        with pytest.raises(ValueError, match="invalid job id"):
            keys.validate_job_id(bad)
    assert keys.job_id_from_manifest_key("raw/j1\n/manifest.json") is None


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a\\b", ".hidden", "x\n"])
def test_unsafe_file_names_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid file name"):
        keys.validate_file_name(bad)


def test_a_run_id_is_its_executions_name() -> None:
    arn = "arn:aws:states:us-east-1:123456789012:execution:darkroom-raw-pipeline:j1.rp-1"
    assert keys.run_id(arn) == "j1.rp-1"
    assert keys.run_id("arn:aws:states:us-east-1:1:execution:m:j1") == "j1"
    for bad in ("", "..", "a/b", "x" * 81):
        with pytest.raises(ValueError):
            keys.validate_run_id(bad)
