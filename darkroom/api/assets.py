"""The studio's assets: a watermark PNG uploaded once and named by recipes.

Stored in the RAW bucket under `assets/<name>.png`, versioned like the originals: a
replaced logo is a new version, and each run's manifest names the version it laid on the
renditions. The API hands out a presigned PUT (the PNG goes straight to S3) and checks,
whenever a recipe names an asset, that it exists; its pixels are checked by the CLI
before the upload and by the worker before use, since nothing sits between the client
and S3."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from darkroom import keys
from darkroom.api.context import current_service
from darkroom.api.errors import BadRequest, NotFound, TooLarge, answers
from darkroom.api.models import Asset, AssetDeleted, AssetList, AssetUpload, PutAssetIn, iso
from darkroom.aws.objects import Objects
from darkroom.aws.presign import Presigner
from darkroom.names import ASSETS_PREFIX
from darkroom.observability import logger
from darkroom.recipes import Recipe
from darkroom.settings import ApiSettings


class AssetOperations:
    settings: ApiSettings
    objects: Objects
    presigner: Presigner
    clock: Callable[[], float]

    def put_asset(self, name: str, body: PutAssetIn) -> AssetUpload:
        name = _asset_name(name)
        if not 0 < body.size <= keys.MAX_ASSET_BYTES:
            raise TooLarge(
                f"a watermark PNG is 1 to {keys.MAX_ASSET_BYTES} bytes; {body.size} declared",
                max_asset_bytes=keys.MAX_ASSET_BYTES,
            )
        key = keys.asset_key(name)
        expires_in = self.settings.upload_url_expiry_seconds
        put = self.presigner.put(
            self.settings.raw_bucket,
            key,
            body.size,
            expires_in,
            content_type="image/png",
            once=False,
        )
        logger.info("asset upload", extra={"asset": name, "size": body.size})
        return AssetUpload(
            name=name,
            key=key,
            size=body.size,
            url=put.url,
            headers=put.headers,
            expires_in=expires_in,
            expires_at=iso(self.clock() + expires_in),
        )

    def list_assets(self) -> AssetList:
        found = []
        for version in self.objects.latest_versions(self.settings.raw_bucket, ASSETS_PREFIX):
            name = keys.asset_name_from_key(version["Key"])
            if name is not None:
                found.append(
                    Asset(
                        name=name,
                        size=int(version.get("Size", 0)),
                        modified=iso(version["LastModified"].timestamp()),
                        version_id=version.get("VersionId"),
                    )
                )
        return AssetList(assets=sorted(found, key=lambda a: a.name))

    def delete_asset(self, name: str) -> AssetDeleted:
        name = _asset_name(name)
        if name not in self.asset_names():
            raise NotFound(f"no studio asset named {name!r}")
        # A delete marker: earlier versions stay, so past runs' manifests still resolve.
        self.objects.delete(self.settings.raw_bucket, keys.asset_key(name))
        logger.info("asset deleted", extra={"asset": name})
        return AssetDeleted(name=name, deleted=True)

    def asset_names(self) -> set[str]:
        return {a.name for a in self.list_assets().assets}

    def require_assets(self, recipe: Recipe | Mapping[str, Any] | None) -> None:
        """A recipe that names an asset the studio has not uploaded is refused now, not
        when a worker reaches its first file."""
        asset = _named_asset(recipe)
        if asset is not None and asset not in self.asset_names():
            raise BadRequest(
                f"recipe.watermark.asset: no studio asset named {asset!r}; upload the PNG "
                f"first (darkroom asset put {asset} FILE.png, or PUT /studio/assets/{asset})"
            )


def _named_asset(recipe: Recipe | Mapping[str, Any] | None) -> str | None:
    if isinstance(recipe, Recipe):
        return recipe.watermark.asset if recipe.watermark else None
    watermark = (recipe or {}).get("watermark")
    return watermark.get("asset") if isinstance(watermark, Mapping) else None


def _asset_name(value: str) -> str:
    try:
        return keys.validate_asset_name(value)
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc


# -- routes ---------------------------------------------------------------------------
router = APIGatewayHttpRouter()
Assets = Annotated[AssetOperations, Depends(current_service)]
TAGS = ["photographer"]


@router.put(
    "/studio/assets/<name>",
    operation_id="put_asset",
    tags=TAGS,
    summary="An upload URL for a studio asset (a watermark PNG); replaces one of that name.",
    description=(
        "Names are 1-32 lowercase letters, digits, '-' or '_'; a recipe's "
        "`watermark.asset` names one. PUT the PNG to `url` with exactly `headers`. "
        "Replacing an asset keeps its earlier versions (a run's manifest names the "
        f"version it used). At most {keys.MAX_ASSET_BYTES} bytes and "
        f"{keys.MAX_ASSET_EDGE} px a side; a file that is no PNG fails the files of the "
        "jobs that use it, each with a message that says why."
    ),
    responses=answers(200, "Upload the PNG with this URL.", 400, 413),
)
def put_asset(name: str, body: PutAssetIn, assets: Assets) -> AssetUpload:
    return assets.put_asset(name, body)


@router.get(
    "/studio/assets",
    operation_id="list_assets",
    tags=TAGS,
    summary="The studio's assets, by name, each in its current version.",
    responses=answers(200, "The assets."),
)
def list_assets(assets: Assets) -> AssetList:
    return assets.list_assets()


@router.delete(
    "/studio/assets/<name>",
    operation_id="delete_asset",
    tags=TAGS,
    summary="Delete a studio asset; recipes that name it are refused from then on.",
    description=(
        "Its earlier versions are kept, so the manifests of past runs still name what "
        "was laid on their renditions."
    ),
    responses=answers(200, "Deleted.", 400, 404),
)
def delete_asset(name: str, assets: Assets) -> AssetDeleted:
    return assets.delete_asset(name)
