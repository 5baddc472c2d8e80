"""The regimes row/table commands assemble one row per (dataset, n, model) from the stage outputs."""

import json
import math

import pandas as pd

from diffusion_regimes.cli import main


def test_row_and_table_commands(tmp_path):
    summary = {"t_s_measured": 1.1, "t_s_low": 1.0, "t_s_high": 1.2, "t_c_hat_mean": 0.4, "t_c_hat_std": 0.1,
               "t_c_hat_se": 0.02, "t_c_clones": 0.5, "t_c_clones_low": 0.4, "t_c_clones_high": 0.6,
               "memorised_fraction": 1.0, "memorisation_ratio_median": 0.0, "classifier_accuracy": 0.99,
               "pairs": 16, "branch_times": 12, "steps": 1000, "seconds": 3.0}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    pd.DataFrame({"t": [0.1, 1.0], "f": [0.0, 0.006], "f_stderr": [0, 0], "alpha": math.log(100) / 1024,
                  "f_over_alpha": [0, 1], "t_c_entropy": 0.3, "t_c_entropy_low": 0.2, "t_c_entropy_high": 0.4,
                  "n": 100, "d": 1024, "n_prime": 10}).to_csv(tmp_path / "entropy.csv", index=False)
    pd.DataFrame({"dataset": ["mnist"], "lambda_first_channel": [math.e**2]}).to_csv(tmp_path / "s.csv", index=False)
    rows = []
    for model in ("exact", "unet"):
        out = tmp_path / f"{model}.csv"
        assert main(["regimes-row", "--summary", str(tmp_path / "summary.json"), "--entropy",
                     str(tmp_path / "entropy.csv"), "--spectra", str(tmp_path / "s.csv"), "--dataset", "mnist",
                     "--model", model, "--out", str(out)]) == 0
        rows.append(str(out))
    assert main(["regimes-table", "--rows", *rows, "--out", str(tmp_path / "regimes.csv")]) == 0
    table = pd.read_csv(tmp_path / "regimes.csv")
    assert table["model"].tolist() == ["exact", "unet"]
    # no t_S column in the spectra table: theory t_S = 1/2 log Lambda = 1
    assert table["t_s_theory"].iloc[0] == 1.0 and table["n"].iloc[0] == 100
