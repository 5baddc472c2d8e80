"""The regimes row/table commands assemble one row per (dataset, n, model) from the stage outputs."""

import json
import math

import pandas as pd

from diffusion_regimes.cli import main

SUMMARY_KEYS = (
    "t_s_fit", "t_s_fit_low", "t_s_fit_high", "lambda_eff", "lambda_eff_low", "lambda_eff_high",
    "t_s_logistic", "t_s_logistic_low", "t_s_logistic_high", "t_s_crossing", "t_s_crossing_low",
    "t_s_crossing_high", "t_c_phi_c_fit", "t_c_phi_c_fit_low", "t_c_phi_c_fit_high", "t_c_phi_c",
    "t_c_phi_c_low", "t_c_phi_c_high",
    "t_c_hat_mean", "t_c_hat_se", "t_c_hat_std", "t_c_hat_median", "t_c_hat_median_se", "memorised_fraction",
    "memorisation_ratio_median", "class_one_fraction", "t_min", "phi_t_min_se", "classifier_accuracy",
    "pairs", "branch_times", "steps", "seconds",
)


def test_row_and_table_commands(tmp_path):
    pd.DataFrame({"t": [0.1, 1.0], "f": [0.0, 0.006], "f_stderr": [0, 0], "alpha": math.log(100) / 1024,
                  "f_over_alpha": [0, 1], "t_c_entropy": 0.3, "t_c_entropy_low": 0.2, "t_c_entropy_high": 0.4,
                  "n": 100, "d": 1024, "n_prime": 10}).to_csv(tmp_path / "entropy.csv", index=False)
    pd.DataFrame({"dataset": ["mnist"], "lambda_first_channel": [math.e**2]}).to_csv(tmp_path / "s.csv",
                                                                                    index=False)
    rows = []
    # the exact score passes the quality gate, the UNet's clones disagree at the smallest branch time
    for model, phi_t_min in (("exact", 1.0), ("unet", 0.9)):
        summary = {key: 0.5 for key in SUMMARY_KEYS} | {"phi_t_min": phi_t_min, "confident_fraction": 0.97,
                                                         "real_confident_fraction": 0.98}
        (tmp_path / f"{model}.json").write_text(json.dumps(summary))
        out = tmp_path / f"{model}.csv"
        assert main(["regimes-row", "--spec", "{}", "--summary", str(tmp_path / f"{model}.json"), "--entropy",
                     str(tmp_path / "entropy.csv"), "--spectra", str(tmp_path / "s.csv"), "--dataset",
                     "mnist", "--model", model, "--out", str(out)]) == 0
        rows.append(str(out))
    assert main(["regimes-table", "--rows", *rows, "--out", str(tmp_path / "regimes.csv")]) == 0
    table = pd.read_csv(tmp_path / "regimes.csv")
    assert table["model"].tolist() == ["exact", "unet"]
    # no t_S column in the spectra table: theory t_S = 1/2 log Lambda = 1
    assert table["t_s_theory"].iloc[0] == 1.0 and table["n"].iloc[0] == 100
    assert table["quality_ok"].tolist() == [True, False]
    assert table["quality"].iloc[0] == "ok" and "phi(t_min) = 0.900" in table["quality"].iloc[1]
