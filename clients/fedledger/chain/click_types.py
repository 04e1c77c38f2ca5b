"""Click parameter types shared by the `fedledger` CLI and the ape scripts."""

from __future__ import annotations

from typing import Any

import click

from fedledger.chain.proposals import ParameterChange, ProposalError, parse_change


class ProposalId(click.ParamType):
    """A proposal id, decimal or 0x-hex."""

    name = "PROPOSAL_ID"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return int(str(value), 0)
        except ValueError:
            self.fail(f"{value!r} is not a proposal id (decimal or 0x-hex)", param, ctx)


class ChangeParam(click.ParamType):
    """TARGET.PARAMETER=VALUE, parsed into a ParameterChange."""

    name = "TARGET.PARAM=VALUE"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> ParameterChange:
        if isinstance(value, ParameterChange):
            return value
        try:
            return parse_change(str(value))
        except ProposalError as exc:
            self.fail(str(exc), param, ctx)
