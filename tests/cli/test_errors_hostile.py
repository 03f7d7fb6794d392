"""Hostile input (issue 17): whatever the values, one ``error:`` line of bounded length, exit 2, nothing written."""

from __future__ import annotations

import pytest

from wattless.cli._app import MAX_MESSAGE


def alias_bomb(levels: int = 9) -> str:
    """Anchors of nine aliases of the one before: 9**(levels + 1) strings once expanded, from 500 bytes."""
    lines = ['  x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"  x{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines)


@pytest.mark.parametrize("where", ["name", "seeds"])
def test_a_study_with_an_alias_bomb_is_one_short_error(user_error, work, where):
    (work / "s.yaml").write_text(f"{where}:\n{alias_bomb()}\nmodels: [mlp]\ndatasets: [digits]\nrecipes: [kd-int8]\n")
    result = user_error(["sweep", "s.yaml", "--db", "r.db"], "s.yaml", "aliases")
    assert len(result.err) < 300


@pytest.mark.parametrize("levels", [9, 10])
def test_a_recipe_with_an_alias_bomb_in_its_description_is_one_short_error(user_error, work, model_path, levels):
    (work / "r.yaml").write_text(f"description:\n{alias_bomb(levels)}\nsteps: [quantize.int8]\n")
    user_error(["compress", model_path, "--recipe", "r.yaml", "-o", "x.onnx"], "r.yaml", "aliases")


def test_an_alias_bomb_in_a_model_arg_is_one_short_error(user_error):
    bomb = "[&a0 [1,1,1,1,1,1,1,1,1]" + "".join(f", &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10))
    user_error(["train", "--model", "mlp", "--dataset", "digits", "--model-arg", f"hidden={bomb}]", "-o", "a.wlz"],
               "--model-arg hidden", "aliases")


def test_an_error_message_is_cut_to_one_bounded_line(user_error, monkeypatch):
    import wattless.api
    from wattless.errors import ConfigError

    def measure(*args, **kwargs):
        raise ConfigError("value " + "x" * 10**7 + "\nsecond line")

    monkeypatch.setattr(wattless.api, "measure", measure)
    result = user_error(["measure", "m.wlz"], "value xxx", "...")
    assert len(result.err) <= len("error: \n") + MAX_MESSAGE


@pytest.mark.parametrize("args, fragment", [
    (["--step", "quantize.ptq:bits=4,bits=8"], "'bits' twice"),
    (["--step", "prune.magnitude:sparsity=0.5, sparsity=0.9"], "'sparsity' twice"),
])
def test_duplicate_step_fields_are_refused(user_error, model_path, args, fragment):
    user_error(["compress", model_path, *args, "-o", "x.wlz"], fragment)


def test_duplicate_model_args_are_refused(user_error):
    user_error(["train", "--model", "mlp", "--dataset", "digits", "--model-arg", "hidden=[8]", "--model-arg",
                "hidden=[16]", "-o", "a.wlz"], "'hidden' is given twice")


def test_a_duplicate_key_in_a_recipe_file_is_refused(user_error, work, model_path):
    (work / "r.yaml").write_text("steps:\n  - prune.magnitude: {sparsity: 0.5, sparsity: 0.9}\n")
    user_error(["compress", model_path, "--recipe", "r.yaml", "-o", "x.wlz"], "r.yaml", "'sparsity' is given twice")
