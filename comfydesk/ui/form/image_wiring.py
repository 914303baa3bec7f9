"""Connects the form's image fields to the app: previews of server images, and a fresh server image list on
focus and after a run uploaded a local or pasted image."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtGui import QImage

from comfydesk.app.context import AppContext
from comfydesk.app.input_images import InputImages
from comfydesk.app.run_state import PastedImage
from comfydesk.ui.form.view import FormView

__all__ = ["bind_input_images"]


def bind_input_images(form: FormView, ctx: AppContext, parent: QObject | None = None) -> InputImages:
    """Wire `form` to a new InputImages (returned; it lives as long as `parent`)."""
    images = InputImages(ctx.tasks, lambda: ctx.connection.backend, ctx.catalog, parent)
    form.image_preview_wanted.connect(images.preview)
    form.image_list_wanted.connect(lambda _key: images.refresh_list())

    def show(key: str, name: str, image: object) -> None:
        form.set_image_thumbnail(key, image if isinstance(image, QImage) else None, name)

    images.preview_ready.connect(show)

    def after_submit(_execution: object) -> None:
        if any(isinstance(v, Path | PastedImage) for v in form.values().values()):
            images.refresh_list(force=True)  # the upload added a file to the server's list

    ctx.controller.submitted.connect(after_submit)
    return images
