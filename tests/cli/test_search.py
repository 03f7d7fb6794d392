"""``wattless search``: the best trial within the budget is written, the table shows every trial."""


def test_search_writes_a_model_within_the_budget(cli_run, work, model_path):
    # the first trial is the shipped deep-compression-auto (120x smaller), far too much for this small digits
    # model after one epoch: the budget is wide so that the test is about writing the chosen trial
    result = cli_run("search", model_path, "--max-drop", "99", "--trials", "1", "--epochs", "1", "--db", "r.db",
                     "-o", "best.wlz", "--json")
    found = result.json()
    assert found["chosen"] == 0 and (work / "best.wlz").exists() and (work / "r.db").exists()
    (trial,) = found["trials"]
    assert trial["status"] == "chosen" and trial["val_drop"] <= 99 and trial["test_drop"] <= 99
    assert trial["size"] == (work / "best.wlz").stat().st_size
    table = cli_run("search", model_path, "--max-drop", "99", "--trials", "1", "--epochs", "1", "--db", "r.db",
                    "-o", "again.wlz")
    assert table.code == 0 and "Search trials" in table.out  # resumed: no new trial


def test_search_with_no_trial_within_the_budget_is_a_user_error(cli_run, work, model_path):
    result = cli_run("search", model_path, "--max-drop", "0.1", "--trials", "1", "--epochs", "1", "--db", "r.db",
                     "-o", "best.wlz")
    assert result.code == 2 and "no trial stays within --max-drop 0.1" in result.err
    assert not (work / "best.wlz").exists()


def test_search_refuses_bad_options_before_any_work(cli_run, work, model_path):
    result = cli_run("search", model_path, "--max-drop", "1", "--objective", "speed", "-o", "x.wlz")
    assert result.code == 2 and "--objective 'speed' unknown" in result.err
    assert not (work / "runs.db").exists()
