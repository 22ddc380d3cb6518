"""The example extension: echoes its arguments and parameters, as the original's did.

Call it with:

    curl -L 'http://127.0.0.1:31414/extension/example/arg_1/arg_2?param_1=1&param_2=2'
    {"data": {"my_arg": ["arg_1", "arg_2"], "my_params": {"param_1": ["1"], "param_2": ["2"]}},
     "status": "ok", "msg": "ok"}
"""

from __future__ import annotations

import logging
from typing import Any

from pulzar.extensions.base import Extension

log = logging.getLogger(__name__)


class Example(Extension):
    def __init__(
        self, arguments: list[str], params: dict[str, list[str]], file_path: str | None = None
    ) -> None:
        """URL: /extension/example/arg_1/arg_2/arg_n?param_1=1&param_2=2&param_n=n

        arguments = ['arg_1', 'arg_2', 'arg_n']
        params = {'param_1': ['1'], 'param_2': ['2'], 'param_n': ['n']}
        """
        self.args = arguments
        self.params = params

    def hello(self) -> None:
        if len(self.args) > 0:
            log.info("Hello example with arg %s", self.args)

    def method_return(self) -> dict[str, Any]:
        return {"my_arg": self.args, "my_params": self.params}

    def execute(self) -> dict[str, Any]:
        """Mandatory method: returns JSON-able data."""
        self.hello()
        return self.method_return()
