"""Hostile sentence-transformers side files (modules.json, sentence_bert_config.json, the pooling
config): a wrong JSON shape, a module path that leaves the folder, strings where booleans belong.
Each gives a CheckpointError/ConfigError naming the file, or is read as what it says."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minibert.errors import CheckpointError, ConfigError, MinibertError
from minibert.sentence import read_sentence_config

TRANSFORMER = {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
POOLING = {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}


def write(folder, relative, value):
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value if isinstance(value, str) else json.dumps(value))


@pytest.mark.parametrize("relative, value, match", [
    ("modules.json", {"0": TRANSFORMER}, "modules.json must hold a JSON list of module objects"),
    ("modules.json", ["Transformer"], "modules.json must hold a JSON list of module objects"),
    ("modules.json", [{**TRANSFORMER, "type": 3}], "module type must be a string"),
    ("modules.json", [{**TRANSFORMER, "path": ["x"]}], "module path must be a string"),
    ("modules.json", "[" * 100_000, "too deeply"),
    ("sentence_bert_config.json", [256], "sentence_bert_config.json must hold a JSON object"),
    ("sentence_bert_config.json", {"max_seq_length": "256"}, "max_seq_length must be an integer"),
    ("sentence_bert_config.json", {"max_seq_length": 16.5}, "max_seq_length must be an integer"),
    ("sentence_bert_config.json", {"max_seq_length": True}, "max_seq_length must be an integer"),
    ("sentence_bert_config.json", {"do_lower_case": "no"}, "do_lower_case must be true or false"),
    ("sentence_bert_config.json", {"do_lower_case": 1}, "do_lower_case must be true or false"),
    ("1_Pooling/config.json", ["mean"], r"1_Pooling/config.json must hold a JSON object"),
    ("1_Pooling/config.json", {"pooling_mode_mean_tokens": "yes"}, "pooling_mode_mean_tokens must be true or false"),
    ("1_Pooling/config.json", {"pooling_mode": ["mean"]}, "switches on no supported pooling mode"),
])
def test_wrong_json_shapes_are_named(tmp_path, relative, value, match):
    write(tmp_path, "modules.json", [TRANSFORMER, POOLING])
    write(tmp_path, "1_Pooling/config.json", {"pooling_mode_mean_tokens": True})
    write(tmp_path, relative, value)
    with pytest.raises((CheckpointError, ConfigError), match=match):
        read_sentence_config(tmp_path)


@pytest.mark.parametrize("path", ["../outside", "../../x", "/etc", "1_Pooling/../../outside", "link"])
@pytest.mark.parametrize("module", [TRANSFORMER, POOLING])
def test_module_paths_that_leave_the_folder_are_refused(tmp_path, path, module):
    model = tmp_path / "model"
    (tmp_path / "outside").mkdir()
    write(tmp_path, "outside/config.json", {"pooling_mode_cls_token": True})
    model.mkdir()
    os.symlink(tmp_path / "outside", model / "link")  # a symlink out of the folder is refused too
    write(model, "modules.json", [TRANSFORMER, POOLING, {**module, "path": path}])
    with pytest.raises(CheckpointError, match=f"module path '{path}' leads outside the model folder"):
        read_sentence_config(model)


def test_paths_inside_the_folder_and_strings_for_booleans_are_read_as_they_say(tmp_path):
    write(tmp_path, "modules.json", [{**TRANSFORMER, "path": "0_Transformer"}, {**POOLING, "path": "./1_Pooling"}])
    write(tmp_path, "0_Transformer/sentence_bert_config.json", {"max_seq_length": 16.0, "do_lower_case": "false"})
    write(tmp_path, "1_Pooling/config.json", {"pooling_mode_cls_token": "True", "pooling_mode_mean_tokens": "false"})
    settings_ = read_sentence_config(tmp_path)
    assert settings_.max_seq_length == 16 and isinstance(settings_.max_seq_length, int)
    assert settings_.do_lower_case is False  # "false" is not a true value
    assert settings_.pooling_modes == ("cls",)
    assert settings_.transformer_folder == "0_Transformer"


JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 600) | st.floats(allow_nan=False) | st.text(max_size=6)
                    | st.sampled_from(["", "1_Pooling", "../x", "/", "true", "false", "mean"]),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(["type", "path", "max_seq_length", "do_lower_case",
                                                       "pooling_mode", "pooling_mode_mean_tokens",
                                                       "pooling_mode_cls_token", "pooling_mode_lasttoken"]),
                                      inner, max_size=4),
                    max_leaves=8)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(modules=JSON, st_config=JSON, pooling=JSON)
def test_fuzzed_side_files_give_only_minibert_errors(tmp_path_factory, modules, st_config, pooling):
    folder = tmp_path_factory.mktemp("st")
    if isinstance(modules, list):  # often a real module list, so that the other files are read too
        modules = [TRANSFORMER, POOLING, *modules]
    write(folder, "modules.json", modules)
    write(folder, "sentence_bert_config.json", st_config)
    write(folder, "1_Pooling/config.json", pooling)
    try:
        settings_ = read_sentence_config(folder)
    except MinibertError as exc:
        assert isinstance(exc, (ValueError, TypeError)) and str(exc)
        return
    assert settings_.max_seq_length is None or isinstance(settings_.max_seq_length, int)
    assert isinstance(settings_.do_lower_case, bool) and isinstance(settings_.normalize, bool)
    assert (folder / settings_.transformer_folder).resolve().is_relative_to(folder.resolve())
