"""The method registry: complete entries, unknown names refused, and no method name
compared anywhere outside ``core/methods`` (the registry and each method's own module)."""

import ast
from pathlib import Path

import pytest

from napari_selfdenoise.core.config import TrainConfig, default_config
from napari_selfdenoise.core.methods import METHODS, UnknownMethodError, get_method

PACKAGE = Path(__file__).resolve().parents[3] / "src" / "napari_selfdenoise"


def test_every_method_is_complete():
    for name, method in METHODS.items():
        assert method.name == name and method.title and method.help and method.citation
        assert method.Params().method == name
        for field, info in method.Params.model_fields.items():
            assert field == "method" or info.description, (name, field)
        for path in method.settings:
            group, _, leaf = path.rpartition(".")
            model = getattr(TrainConfig(), group) if group else TrainConfig()
            assert leaf in type(model).model_fields, (name, path)
        assert default_config(name).params.method == name


def test_unknown_method_raises():
    with pytest.raises(UnknownMethodError, match="unknown method 'n3v'"):
        get_method("n3v")
    with pytest.raises(ValueError, match="method"):
        TrainConfig(method="n3v")


def test_params_are_a_discriminated_union():
    cfg = TrainConfig(method="ams", params={"method": "ams", "n_masks": 3})
    assert cfg.params.n_masks == 3
    assert TrainConfig(method="ne2ne").params.gamma == 2.0  # filled from the method
    with pytest.raises(ValueError, match="params are for method 'ams'"):
        TrainConfig(method="n2v", params={"method": "ams"})
    with pytest.raises(ValueError, match="gamma"):
        TrainConfig(method="ams", params={"method": "ams", "gamma": 1.0})
    assert TrainConfig(method="n2s").with_method("n2n").params.method == "n2n"
    again = TrainConfig.model_validate(cfg.model_dump())
    assert again == cfg


def _name_comparisons(tree: ast.AST) -> list[int]:
    """Lines comparing with, or keying a dict by, a registered method name."""
    names = set(METHODS)

    def literals(node: ast.AST) -> set:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            return set().union(*(literals(e) for e in node.elts)) if node.elts else set()
        return set()

    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            found = set().union(literals(node.left), *(literals(c) for c in node.comparators))
            if found & names:
                lines.append(node.lineno)
        elif isinstance(node, ast.Dict):
            if any(k is not None and literals(k) & names for k in node.keys):
                lines.append(node.lineno)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "get":
            if node.args and literals(node.args[0]) & names:
                lines.append(node.lineno)
    return lines


def test_no_method_name_is_compared_outside_the_registry():
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        if "methods" in path.relative_to(PACKAGE).parts[:-1]:
            continue
        hits = _name_comparisons(ast.parse(path.read_text(encoding="utf-8")))
        if hits:
            offenders[str(path.relative_to(PACKAGE))] = hits
    assert not offenders, offenders


def test_the_scan_finds_comparisons():
    src = ("if cfg.method == 'n2s': pass\nx = m in ('n2v', 'n2v2')\n"
           "HELP = {'n2same': 'x'}\ny = d.get('ams')\nz = cfg.method\n")
    assert _name_comparisons(ast.parse(src)) == [1, 2, 3, 4]


def test_presets_carry_the_method_params(tmp_path):
    from napari_selfdenoise.core.presets import TrainSettings, load_preset, save_preset

    for params in ({"method": "ne2ne", "gamma": 1.0}, {"method": "n2n", "pairs_along": "Z"},
                   {"method": "ams", "n_masks": 4}):
        settings = TrainSettings(train=default_config(params["method"], params=params))
        path = save_preset(tmp_path / f"{params['method']}.json", settings)
        loaded = load_preset(path)
        assert loaded.train.params == settings.train.params
    path.write_text(path.read_text().replace('"n_masks": 4', '"n_mask": 4'))
    with pytest.raises(ValueError, match="n_mask"):
        load_preset(path)
