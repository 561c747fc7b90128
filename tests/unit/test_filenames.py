"""The recipe's filename template: what deliveries are called, refused when it would give
two files one name, numbered by original name the same way in every shard and run."""

from __future__ import annotations

import pytest

from darkroom.filenames import Naming, delivery_stem
from darkroom.recipes import RecipeError, parse_recipe


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{job}-{date}", "must name {stem} or {seq}: otherwise every file gets the same name"),
        ("wedding", "must name {stem} or {seq}"),
        ("{stem}-{camera}", "unknown field {camera}"),
        ("{stem}/{rendition}", "must not contain /"),
        ("{seq:x}", "{seq} takes no format (only {seq:N}, N digits 1-9)"),
        ("{stem!r}", "{stem} takes no format"),
        ("{stem", "is not a valid template"),
        ("", "must be 1-128 characters"),
    ],
)
def test_a_template_that_cannot_name_every_file_apart_is_refused_at_parse(
    template: str, problem: str
) -> None:
    with pytest.raises(RecipeError) as caught:
        parse_recipe({"filename": template})
    assert str(caught.value).startswith("recipe.filename: ")
    assert problem in str(caught.value)


def test_every_field_fills_in() -> None:
    name = delivery_stem(
        "{date}_{job}_{seq}_{stem}_{rendition}",
        file_name="IMG_0001.CR3",
        seq=7,
        job='Smith / Jones: "wedding"',
        rendition="web",
        created_at="2025-03-01T10:15:00+00:00",
    )
    # The job's name made safe for a file name; {seq} four digits unless told.
    assert name == "20250301_Smith _ Jones_ _wedding__0007_IMG_0001_web"
    assert (
        delivery_stem(
            "{seq:6}", file_name="A.NEF", seq=12, job="j", rendition="web", created_at=None
        )
        == "000012"
    )


def test_a_single_download_names_its_rendition_unless_the_template_does() -> None:
    default = Naming(None, "job", None)
    assert default.download("IMG_0001.CR3", 1, "web", ".jpg") == "IMG_0001-web.jpg"
    studio = Naming("Smith-{seq}", "job", None)
    assert studio.download("IMG_0001.CR3", 3, "full", ".jpg") == "Smith-0003-full.jpg"
    named = Naming("{stem}_{rendition}", "job", None)
    assert named.download("IMG_0001.CR3", 3, "thumb", ".jpg") == "IMG_0001_thumb.jpg"
    # A ZIP holds one rendition: its entries take the template alone.
    assert studio.stem("IMG_0001.CR3", 3, "web") == "Smith-0003"
