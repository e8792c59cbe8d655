"""The web service (``knucaptcha serve``): FastAPI on top of the solver; needs the ``serve`` extra.

    from knucaptcha.web import ServeSettings, create_app
    app = create_app(ServeSettings(models=(("default", "path/to/model.onnx"),)))

Never imports torch.
"""

from __future__ import annotations

from .app import create_app
from .settings import ServeSettings, parse_model_option

__all__ = ["ServeSettings", "create_app", "parse_model_option"]
