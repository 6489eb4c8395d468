"""A footer that rebuilds its keys only when the keys it shows changed.

Textual's `Footer` re-creates one widget per key every time the screen's bindings are
reported updated: on every focus change and every `refresh_bindings`, several times per
keypress. Opening the detail or deciding would pay that (a few milliseconds each time) for a
footer that looks the same; this one compares what it would show with what it shows.
"""

from __future__ import annotations

from collections.abc import Hashable

from textual.widgets import Footer


class QuietFooter(Footer):
    """`Footer`, minus the rebuilds that would not change it."""

    _shown: Hashable = None

    def _signature(self) -> Hashable:
        if not self._bindings_ready or not self.is_attached:
            return None
        keys = tuple(
            (key, binding.action, binding.description, binding.key_display, enabled, tooltip)
            for key, (_, binding, enabled, tooltip) in self.screen.active_bindings.items()
            if binding.show
        )
        return (keys, self.compact, self.show_command_palette, self.app.ENABLE_COMMAND_PALETTE)

    async def recompose(self) -> None:
        signature = self._signature()
        if signature is not None and signature == self._shown:
            return
        self._shown = signature
        await super().recompose()
