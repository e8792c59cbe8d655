"""The labelling page (``/label``) and its small JSON API, over one :class:`~knucaptcha.labelling.LabellingSession`.

All the folder rules (which images, in what order, how labels are written,
undo) live in :mod:`knucaptcha.labelling`; this module only turns them into
HTTP: the page and its script, the current image, and three actions that each
answer with the new state. A bad label is a 400, an image that is not waiting
for a label a 404, both in the service's one error shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel

from ..errors import LabelError, MissingFileError
from ..labelling import LabellingSession, Step
from .errors import ApiError

STATIC = Path(__file__).parent / "static"

T = TypeVar("T")


class ImageRequest(BaseModel):
    """Names the image an action is for, so a stale page cannot label the wrong one."""

    file: str


class LabelRequest(ImageRequest):
    label: str


def labelling_router(session: LabellingSession) -> APIRouter:
    """Routes for labelling ``session``'s folder: ``/label`` (the page) and ``/label/api/...``."""
    router = APIRouter(prefix="/label", tags=["labelling"])

    @router.get("", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse((STATIC / "label.html").read_text(encoding="utf-8"))

    @router.get("/label.js", include_in_schema=False)
    def script() -> Response:
        return Response((STATIC / "label.js").read_text(encoding="utf-8"), media_type="text/javascript")

    @router.get("/api/state")
    def state() -> dict[str, Any]:
        """The image to label next (or ``null`` when done), its guess, and the counts."""
        return _state(session, None)

    @router.get("/image/{file}", include_in_schema=False)
    def image(file: str) -> FileResponse:
        path = _translated(lambda: session.image_path(file))
        return FileResponse(path, headers={"Cache-Control": "no-store"})

    @router.post("/api/label")
    def label(request: LabelRequest) -> dict[str, Any]:
        """Give the image its label (written as the server was told: csv, rename or both)."""
        return _state(session, _translated(lambda: session.label(request.file, request.label)))

    @router.post("/api/skip")
    def skip(request: ImageRequest) -> dict[str, Any]:
        """Put the image at the back of the queue; nothing is written."""
        return _state(session, _translated(lambda: session.skip(request.file)))

    @router.post("/api/undo")
    def undo() -> dict[str, Any]:
        """Take back the last label or skip: the old file name and manifest come back."""
        return _state(session, _translated(session.undo), undone=True)

    return router


def _translated(action: Callable[[], T]) -> T:
    """Run ``action``, answering library errors about labels and files as 400 and 404."""
    try:
        return action()
    except LabelError as error:
        raise ApiError(400, "invalid_label", str(error)) from None
    except MissingFileError as error:
        raise ApiError(404, "not_queued", str(error)) from None


def _state(session: LabellingSession, step: Step | None, *, undone: bool = False) -> dict[str, Any]:
    current = session.current()
    shown = None
    if current is not None:
        shown = {
            "file": current.file,
            "image": f"/label/image/{quote(current.file)}",
            "guess": None if current.guess is None else current.guess.text,
            "confidence": None if current.guess is None else current.guess.confidence,
        }
    last = None
    if step is not None:
        action = "undo" if undone else ("label" if step.label is not None else "skip")
        last = {"action": action, "file": step.item.file, "label": step.label, "renamed": step.renamed}
    return {
        "folder": session.folder.name,
        "write": session.write,
        "current": shown,
        "progress": asdict(session.progress()),
        "can_undo": session.can_undo(),
        "last": last,
    }
