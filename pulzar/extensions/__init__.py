"""Extensions: your own code, run by the master on `GET|PUT /extension/{app_id}/{args...}`.

    # extensions/hello.py   (the `[extensions] dir`)
    from pulzar.extensions import Extension, ExtensionError

    class Hello(Extension):
        def execute(self):
            if not self.arguments:
                raise ExtensionError("say who to greet: /extension/hello/<name>")  # -> 400
            return {"hello": self.arguments[0], "params": self.params}

Shipped: `example`, `search`, `ocr` (pulzar[ocr]) and `imagematching` (pulzar[vision]).
See docs/extensions.md. Modules: `base` (the API), `loader` (app_id -> file -> class),
`worker` and `runner` (the process pool), `service` (what the HTTP routes call).
"""

from pulzar.extensions.base import (
    Extension,
    ExtensionContext,
    ExtensionError,
    current_context,
)

__all__ = ["Extension", "ExtensionContext", "ExtensionError", "current_context"]
