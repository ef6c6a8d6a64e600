"""The package's layers import downward only, and no stage imports another stage.

    __main__  >  cli  >  stages  >  runner  >  core (card, checkpoint, inference, attribution, anomaly,
    metrics, losses, plots, runtime, distributed, progress)  >  models  >  data  >  base (choices, errors,
    interrupt, the package itself)
"""

from __future__ import annotations

import ast
import os

import galcnn

ROOT = os.path.dirname(galcnn.__file__)
CORE = {"card", "checkpoint", "inference", "attribution", "anomaly", "metrics", "losses", "plots",
        "runtime", "progress", "device_recipe", "distributed"}
BASE = {"choices", "errors", "interrupt", ""}
RANK = {"base": 0, "data": 1, "models": 2, "core": 3, "runner": 4, "stages": 5, "cli": 6,
        "__main__": 7}


def _layer(module: str) -> str:
    top = module.split(".")[1] if "." in module else ""
    if top in BASE:
        return "base"
    if top in CORE:
        return "core"
    return top


def _imports() -> dict[str, set[str]]:
    """galcnn modules imported by each galcnn module (module level and inside functions)."""
    found = {}
    for directory, _, files in os.walk(ROOT):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            module = "galcnn" + path[len(ROOT):-3].replace(os.sep, ".").replace(".__init__", "")
            tree = ast.parse(open(path, encoding="utf-8").read())
            targets = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module:
                    targets.add(node.module)
                elif isinstance(node, ast.Import):
                    targets.update(alias.name for alias in node.names)
            found[module] = {t for t in targets if t == "galcnn" or t.startswith("galcnn.")}
    return found


def test_layers_import_downward_only():
    wrong = []
    for module, targets in _imports().items():
        if module == "galcnn":  # the public API re-exports from every layer, lazily
            continue
        for target in targets:
            if target in ("galcnn", "galcnn.__version__"):
                continue
            if RANK[_layer(target)] > RANK[_layer(module)]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_stage_imports_another_stage():
    wrong = []
    for module, targets in _imports().items():
        if not module.startswith("galcnn.stages."):
            continue
        own = module.split(".")[2]
        for target in targets:
            if target.startswith("galcnn.stages.") and target.split(".")[2] != own:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_public_api_is_one_import_away():
    for name in ("prepare", "train", "evaluate", "predict", "segment", "load_model",
                 "ModelCard", "Preprocess"):
        assert callable(getattr(galcnn, name)), name
    assert set(galcnn.__all__) >= {"prepare", "train", "evaluate", "predict", "segment",
                                   "load_model", "ModelCard"}


def test_stage_and_runner_functions_stay_small():
    """No function over 60 lines or with more than 8 parameters (self and **changes
    counted as one) in the stages and the runner layer: a longer one does two jobs."""
    too_big = []
    for layer in ("stages", "runner"):
        for directory, _, files in os.walk(os.path.join(ROOT, layer)):
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(directory, name)
                for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
                    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        continue
                    args = node.args
                    named = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
                    n_params = (len([a for a in named if a not in ("self", "cls")])
                                + (args.vararg is not None) + (args.kwarg is not None))
                    n_lines = node.end_lineno - node.lineno + 1
                    if n_lines > 60 or n_params > 8:
                        too_big.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} "
                                       f"{node.name}: {n_lines} lines, {n_params} parameters")
    assert not too_big, "\n".join(too_big)
