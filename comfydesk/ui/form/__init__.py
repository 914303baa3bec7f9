"""The generated workflow form: `FormView` and its field editors."""

from comfydesk.app.run_state import PastedImage
from comfydesk.ui.form.view import FormView

__all__ = ["FormView", "PastedImage"]
