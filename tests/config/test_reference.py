"""Every setting is documented where it is declared, and the settings guide is made from there:
each schema property has a description, each typed setting a docstring, and config/README.md's
reference is what they generate today."""

import dataclasses

import pytest
import yaml

from esforget.base.tiny_config import PretrainConfig, TinyArchitecture
from esforget.config.reference import BEGIN, TYPED, current, reference
from esforget.core.typed_settings import field_docs, typed
from esforget.train.es_config import ESConfig
from esforget.train.grpo_config import GRPOMethodConfig
from tests.shared import REPO

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def undescribed(node, path: str = "") -> list[str]:
    """The paths of every property (and named entry) of `node` without a description."""
    if isinstance(node, list):
        return [p for k, item in enumerate(node) for p in undescribed(item, f"{path}[{k}]")]
    if not isinstance(node, dict):
        return []
    missing = []
    for key, sub in node.get("properties", {}).items():
        referenced = SCHEMA["definitions"][sub["$ref"].rsplit("/", 1)[1]] if "$ref" in sub else {}
        if "description" not in sub and "description" not in referenced:
            missing.append(f"{path}.{key}")
    entries = node.get("additionalProperties")
    if isinstance(entries, dict) and entries.get("type") == "object" and "description" not in entries:
        missing.append(f"{path}.<name>")
    for key, sub in node.items():
        if key not in ("description", "if"):  # an `if` is a condition on a property, not its declaration
            missing += undescribed(sub, f"{path}.{key}" if key not in ("properties", "then") else path)
    return missing


def test_every_property_of_the_schema_has_a_description():
    assert undescribed(SCHEMA) == []


def test_a_property_without_a_description_is_found():
    assert undescribed({"properties": {"a": {"type": "object", "properties": {"b": {"type": "integer"}}}}}) == [
        ".a",
        ".a.b",
    ]


@pytest.mark.parametrize("cls", [ESConfig, GRPOMethodConfig, TinyArchitecture, PretrainConfig])
def test_every_typed_setting_has_a_docstring(cls):
    fields = {f.name for f in dataclasses.fields(cls)} - {"algorithm"}
    assert fields <= set(field_docs(cls)), sorted(fields - set(field_docs(cls)))


def test_the_settings_guide_holds_the_reference_of_todays_schema_and_settings():
    readme = (REPO / "config" / "README.md").read_text()
    assert current(readme, SCHEMA) == readme, "config/README.md is not current: run python -m esforget.config.reference"


def test_the_reference_lists_every_key_of_the_schema_and_of_the_typed_settings():
    text = reference(SCHEMA)
    assert text.startswith(BEGIN)
    for cls in (ESConfig, GRPOMethodConfig, TinyArchitecture, PretrainConfig):
        for field in dataclasses.fields(cls):
            if field.name != "algorithm":
                assert f"| `{field.name}` |" in text, (cls.__name__, field.name)
    for key in ("data_seed", "number_range", "shuffle_seed", "data_files", "sparsity_thresholds", "train_es"):
        assert f"| `{key}` |" in text
    assert set(TYPED) <= {line[5:-1] for line in text.splitlines() if line.startswith("### `")}


@dataclasses.dataclass
class Example:
    count: int
    share: float = 0.5
    name: str | None = None
    bounds: list[float] = dataclasses.field(default_factory=list)


@pytest.mark.parametrize(
    "mapping, message",
    [
        (
            {"count": 1, "extra": 2},
            r"where: unknown key\(s\) \['extra'\]; known: \['bounds', 'count', 'name', 'share'\]",
        ),
        ({"share": 0.1}, r"where: missing key\(s\) \['count'\]"),
        ({"count": True}, r"where\.count=True: expected int, got bool"),
        ({"count": 2.0}, r"where\.count=2\.0: expected int, got float"),
        ({"count": 1, "share": "0.3"}, r"where\.share='0\.3': expected float, got str"),
        ({"count": 1, "name": 3}, r"where\.name=3: expected str or null, got int"),
        ({"count": 1, "bounds": [0.1, "x"]}, r"where\.bounds=\[0\.1, 'x'\]: expected a list of float, got list"),
        ([1, 2], r"where: expected a mapping of settings, got \[1, 2\]"),
    ],
)
def test_typed_settings_refuse_what_their_types_do_not_allow_naming_the_key(mapping, message):
    with pytest.raises(ValueError, match=message):
        typed(Example, mapping, "where")


def test_typed_settings_take_an_int_for_a_float_and_null_for_an_optional():
    assert typed(Example, {"count": 3, "share": 1, "name": None, "bounds": [0, 0.5]}, "where") == Example(
        3, 1, None, [0, 0.5]
    )
