"""Chinese labels of the rules, for county clerks (notifications, the weekly letter).

The label of each rule lives next to its definition (``Rule.label_zh`` in ``schemas/rules.py``,
a required field), and merge-made rejects in ``MERGE_REJECTS`` there: this module only keeps the
import path the notification code uses.
"""

from __future__ import annotations

from schemas.rules import label_zh

__all__ = ["label_zh"]
