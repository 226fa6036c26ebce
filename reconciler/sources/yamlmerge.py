"""YAML merge keys (``<<``) read as the merge-key spec says, whatever PyYAML is installed.

The spec (yaml.org/type/merge.html): a mapping's own keys win over the keys it merges, and of
the mappings merged by a list, the first that has a key wins. PyYAML 6.0.4 breaks the second
rule: it drops a repeated key only when the two key strings are the same object, which CPython
makes true of one-character keys alone, so ``<<: [*daily, *hourly]`` took ``@hourly`` for
``schedule`` under 6.0.4 and ``@daily`` under 6.0.3 and before (yaml/pyyaml#953). A task's
schedule must not depend on the PyYAML a machine happens to have: this is 6.0.3's rule, kept
here.
"""

from __future__ import annotations

from typing import Any

import yaml

MERGE = "tag:yaml.org,2002:merge"
_VALUE = "tag:yaml.org,2002:value"
_STR = "tag:yaml.org,2002:str"


class MergingConstructor(yaml.constructor.SafeConstructor):
    """PyYAML's safe constructor with the merge-key spec's precedence (above)."""

    def flatten_mapping(self, node: Any) -> None:
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        index = 0
        while index < len(node.value):
            key_node, value_node = node.value[index]
            if key_node.tag == MERGE:
                del node.value[index]
                merged.extend(self._merged(node, value_node))
            else:
                if key_node.tag == _VALUE:  # `=` as a key, as PyYAML reads it
                    key_node.tag = _STR
                index += 1
        if merged:
            # The mapping's own pairs last: a mapping keeps the last of two equal keys.
            node.value = merged + node.value

    def _merged(self, node: yaml.Node, value: Any) -> list[tuple[yaml.Node, yaml.Node]]:
        """The pairs ``<<: value`` brings, the ones that must win last."""
        if isinstance(value, yaml.MappingNode):
            self.flatten_mapping(value)
            return list(value.value)
        if not isinstance(value, yaml.SequenceNode):
            raise _refused(node, "a mapping or list of mappings", value)
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        for item in reversed(value.value):  # the first mapping listed wins: its pairs last
            if not isinstance(item, yaml.MappingNode):
                raise _refused(node, "a mapping", item)
            self.flatten_mapping(item)
            pairs.extend(item.value)
        return pairs


def _refused(node: yaml.Node, expected: str, found: Any) -> yaml.constructor.ConstructorError:
    """PyYAML's own error for a merge of something else, at what was merged."""
    return yaml.constructor.ConstructorError(
        "while constructing a mapping",
        node.start_mark,
        f"expected {expected} for merging, but found {found.id}",
        found.start_mark,
    )
