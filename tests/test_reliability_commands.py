"""Valid-looking settings that used to fail after training, or in a confusing way, are refused up front in one
line; folders of other experiments and other people's files are never overwritten; a damaged recommend index
is repaired by recommend itself. Found by trying each command by hand; each test fails without its fix."""

from __future__ import annotations

import pytest
from tests.test_reliability_inputs import refused

import ensplit
from ensplit.cli import main
from ensplit.commands.budget import render as render_budget

TINY_RECOMMEND = ["--methods", "", "--members-max", "2", "--pool", "4", "--bootstrap", "10", "--epochs", "1",
                  "--train-subset", "200", "--test-subset", "100", "--no-verify", "--no-report", "--quiet"]


@pytest.mark.parametrize("option", ["mimo.batch_repetitions=0", "mimo.input_repetition=2", "grouped.aggregation=sum",
                                    "multihead.split_at=nope"])
def test_a_method_option_out_of_range_is_refused_before_any_method_trains(capsys, monkeypatch, tmp_path, option):
    import ensplit.experiments.compare as compare

    def never(*args, **kwargs):
        raise AssertionError("a method trained before the options were checked")

    monkeypatch.setattr(compare, "run_method", never)
    method = option.split(".")[0]
    refused(capsys, ["compare", "--methods", f"single,deep,{method}", "--members", "2", "--width", "8", "--epochs",
                     "1", "--train-subset", "50", "--test-subset", "20", "--method-option", option, "--quiet",
                     "--out", str(tmp_path / "new" / "out")], f"method {method!r}: ")
    assert not (tmp_path / "new").exists()  # the folder the refused run made for its lock is gone again


def test_recommend_refuses_a_budget_too_small_for_its_cheap_runs(capsys, tmp_path):
    out = tmp_path / "r"
    refused(capsys, ["recommend", "--budget", "200", *TINY_RECOMMEND, "--out", str(out)],
            "budget = 200: too small for the cheap runs: the deep pools at P/16 … P/2 hold 1 network size(s) of "
            "mlp, and the prediction needs 3; raise --budget to at least 613")
    assert not out.exists()


def test_recommend_repairs_its_own_damaged_index(capsys, tmp_path):
    out = tmp_path / "r"
    assert main(["recommend", "--budget", "700", *TINY_RECOMMEND, "--out", str(out)]) == 0
    capsys.readouterr()
    index = out / "results.sqlite"
    index.write_bytes(index.read_bytes()[:1000])
    err = refused(capsys, ["recommend", "--budget", "700", *TINY_RECOMMEND, "--out", str(out)], "is damaged")
    assert "`ensplit study` or `ensplit recommend`" in err and "--repair" in err
    assert main(["recommend", "--budget", "700", *TINY_RECOMMEND, "--out", str(out), "--repair", "--json"]) == 0
    captured = capsys.readouterr()
    assert "rebuilt the index" in captured.err and '"trained_jobs": 0' in captured.out  # nothing retrained


def test_a_folder_of_another_experiment_or_of_someone_else_is_not_overwritten(capsys, tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    for text in ('name = "my project"\n', "[core]\n  name = my project\nkey: value\n"):  # TOML, and not TOML
        (theirs / "config.toml").write_text(text)
        refused(capsys, ["recommend", "--budget", "700", *TINY_RECOMMEND, "--out", str(theirs)],
                "holds files that `ensplit recommend` did not write (config.toml)")
        refused(capsys, ["study", "--widths", "4,8", "--out", str(theirs), "--quiet"], "did not write (config.toml)")
        assert (theirs / "config.toml").read_text() == text
    study = tmp_path / "study"
    study.mkdir()
    (study / "config.toml").write_text("[study]\nwidths = [4, 8]\n")
    refused(capsys, ["recommend", "--budget", "700", *TINY_RECOMMEND, "--out", str(study)],
            "is an `ensplit study` folder, not an `ensplit recommend` one")


COMPARE = ["compare", "--methods", "single", "--width", "8", "--epochs", "1", "--train-subset", "50",
           "--test-subset", "20", "--quiet"]
DESIGN = ["designspace", "--widths", "8", "--depths", "2", "--members", "2", "--epochs", "1", "--train-subset", "128",
          "--test-subset", "64", "--timing-repeats", "1", "--timing-steps", "1", "--large-batch", "16",
          "--measure-memory", "false", "--quiet"]


def test_no_command_writes_over_another_commands_folder_or_a_persons_files(capsys, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "results.json").write_text('{"my": "precious"}')
    (mine / "report.html").write_text("<h1>mine</h1>")
    refused(capsys, [*COMPARE, "--out", str(mine)], "holds files that `ensplit compare` did not write (report.html, "
                                                      "results.json)")
    assert (mine / "results.json").read_text() == '{"my": "precious"}'
    compared = tmp_path / "compared"
    assert main([*COMPARE, "--out", str(compared)]) == 0
    capsys.readouterr()
    first = (compared / "results.json").read_text()
    refused(capsys, [*DESIGN, "--out", str(compared)], "is an `ensplit compare` folder, not an `ensplit designspace`")
    refused(capsys, ["study", "--widths", "4,8", "--out", str(compared), "--quiet"], "is an `ensplit compare` folder")
    assert (compared / "results.json").read_text() == first
    assert main([*COMPARE, "--out", str(compared)]) == 0  # its own command may write it again


def test_a_folder_written_before_the_marker_is_still_its_commands(capsys, tmp_path):
    compared = tmp_path / "compared"
    assert main([*COMPARE, "--out", str(compared)]) == 0
    capsys.readouterr()
    (compared / ".ensplit-command").unlink()  # as an older ensplit left it
    refused(capsys, [*DESIGN, "--out", str(compared)], "did not write")  # not designspace's results
    assert main([*COMPARE, "--out", str(compared)]) == 0
    assert (compared / ".ensplit-command").read_text() == "compare\n"


def test_a_refused_run_never_removes_a_folder_it_did_not_make(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    refused(capsys, ["compare", "--methods", "single,mimo", "--method-option", "mimo.batch_repetitions=0", "--out",
                     "made/../mine/new", "--quiet"], "batch repetitions must be >= 1")
    assert (tmp_path / "mine").is_dir() and not (tmp_path / "mine" / "new").exists()


def test_a_folder_where_the_lock_file_belongs_is_one_line(capsys, tmp_path):
    (tmp_path / "d" / ".ensplit.lock").mkdir(parents=True)
    refused(capsys, [*COMPARE, "--out", str(tmp_path / "d")], "cannot lock")


def test_the_planner_refuses_an_input_shape_the_family_cannot_take(capsys):
    refused(capsys, ["budget", "count", "--family", "cnn1d", "--width", "8", "--in-shape", "3", "32", "32"],
            "family 'cnn1d' at width 8 cannot run on inputs of shape [3, 32, 32]")
    with pytest.raises(ensplit.EnsplitError, match="cannot run on inputs of shape"):
        ensplit.flops_per_example("cnn1d", 8, in_shape=(3, 32, 32))


def test_equivalents_that_do_not_fit_read_as_a_sentence():
    text = render_budget({"single": {"params": 118}, "width_equivalent": {"depth": None, "params": None},
                          "depth_equivalent": {"width": 24, "params": 7336}})
    assert "none fits: no member depth keeps the ensemble within the single network's params" in text
    assert "7,336 params in total, member width 24" in text


def test_an_empty_list_setting_is_described_in_words():
    with pytest.raises(ensplit.EnsplitError) as error:
        ensplit.CompareConfig(methods=())
    assert str(error.value) == "methods = []: must name at least 1"


def test_a_study_without_a_report_or_predictions_says_so(capsys, tmp_path):
    out = tmp_path / "s"
    assert main(["study", "--widths", "4,8", "--epochs", "1", "--pool-min", "2", "--pool-max", "2",
                 "--train-subset", "100", "--test-subset", "50", "--bootstrap", "0", "--cnll-splits", "1",
                 "--no-report", "--quiet", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    text = captured.out
    assert f"Study folder: {out} (results.sqlite, config.toml)" in text  # no report.html was written
    assert "every pool has fewer than 6 networks, too few to average 3 disjoint ensembles of n = 2" in captured.err
    assert "Prediction from small ensembles: none (every pool has fewer than 3 networks" in text


def test_a_misspelt_config_key_gets_the_closest_name(capsys, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('famly = "mlp"\n')
    refused(capsys, ["study", "--config", str(config), "--quiet"], "unknown field 'famly' (did you mean 'family'?)")
    config.write_text("[comapre]\nmembers = 2\n")
    refused(capsys, ["compare", "--config", str(config), "--quiet"], "unknown field 'comapre' (did you mean "
                                                                       "'compare'?)")


def test_a_training_setting_given_twice_in_a_file_is_refused_and_the_command_line_wins(capsys, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("epochs = 1\n[train]\nepochs = 2\n")
    refused(capsys, ["compare", "--config", str(config), "--quiet"], "epochs is given twice, epochs = 1 and "
                                                                       "[train] epochs = 2; keep one")
    config.write_text("epochs = 1\n")
    from ensplit.cli import build_parser
    from ensplit.commands.compare import settings

    parser, _ = build_parser()
    args = parser.parse_args(["compare", "--config", str(config), "--epochs", "3"])
    assert settings(args).recipe.train.epochs == 3


def test_the_help_states_each_bound_before_an_error_does(capsys):
    assert main(["recommend", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "runs per ladder budget of each sharing method (trained together, stacked); default 1; 1 to 100" in text
    assert "largest memory split n (members of a deep ensemble); default 8; 2 to 64" in text
    assert main(["study", "--help"]) == 0
    assert "SGD momentum; default 0.9; >= 0, < 1" in " ".join(capsys.readouterr().out.split())


def test_a_data_path_that_is_neither_file_nor_folder_is_one_line(capsys, tmp_path):
    refused(capsys, ["study", "--dataset", "/dev/null", "--widths", "4", "--quiet", "--out", str(tmp_path / "s")],
            "data path /dev/null is neither a file nor a folder")


def test_a_ray_address_that_is_not_one_is_one_line(capsys, tmp_path):
    pytest.importorskip("ray")
    refused(capsys, ["study", "--widths", "4,8", "--epochs", "1", "--pool-min", "2", "--pool-max", "2",
                     "--train-subset", "100", "--test-subset", "50", "--executor", "ray", "--address", "bogus:::",
                     "--quiet", "--out", str(tmp_path / "s")],
            "address = 'bogus:::': cannot join a Ray cluster there (Invalid address format")


@pytest.mark.parametrize("command", ["study", "recommend"])
def test_a_ray_address_without_the_ray_executor_is_refused(capsys, tmp_path, command):
    refused(capsys, [command, "--address", "auto", "--quiet", "--out", str(tmp_path / "o")],
            "address = 'auto': applies to executor ray only, not local (add --executor ray)")
