"""The reproduction report turns stored runs into verdicts, and says when it cannot."""

from __future__ import annotations

from pruninglab import gimp, profiles, reproduction, runs

import pytest

QUICK = profiles.get("quick")
T, TARGET = QUICK.train_steps, QUICK.target_density


def store_gimp_run(root, config: gimp.GIMPConfig, final_accuracy: float, seed: int = 0,
                   model: str | None = None, dense: float = 0.94) -> None:
    """A stored GIMP run whose levels end at ``final_accuracy`` (fabricated records: the
    report only reads records, so this pins its logic without training)."""
    setup = QUICK.setup(model=model, seed=seed)
    run = runs.RunDir.open("gimp", {"kind": "gimp", "setup": setup.to_dict(),
                                    "method": config.to_dict()}, root)
    densities = config.densities()
    for level, density in enumerate(densities):
        share = level / (len(densities) - 1)
        run.write_record(level, {"level": level, "density": density, "kept": int(density * 1000),
                                 "test_accuracy": dense + share * (final_accuracy - dense)})


def verdicts(root) -> dict[str, str]:
    report = reproduction.claims(reproduction.evidence(QUICK, [root]))
    return dict(zip(report["claim"], report["verdict"]))


def test_an_empty_store_runs_nothing_and_says_so(tmp_path):
    result = verdicts(tmp_path)
    assert set(result.values()) <= set(reproduction.VERDICTS)
    assert result["Parameter counts of the CIFAR-10 networks"] == "reproduced"
    assert result["Fine-tuning is the least accurate way to retrain"] == "not run yet"
    assert result["Dense CIFAR-10 accuracies of the reproduced networks"] == \
        "not testable at this scale"


def test_algorithm_claims_follow_the_stored_accuracies(tmp_path):
    configs = gimp.algorithms(T, TARGET)
    finals = dict(zip(gimp.ALGORITHMS, (0.90, 0.93, 0.925, 0.94)))
    for seed in (0, 1, 2):
        for name, config in configs.items():
            store_gimp_run(tmp_path, config, finals[name] + 0.001 * seed, seed)
    result = verdicts(tmp_path)
    assert result["Fine-tuning is the least accurate way to retrain"] == "reproduced"
    assert result["LR rewinding matches or beats stable weight rewinding (small networks)"] == \
        "reproduced"


def test_a_clear_reversal_is_reported_as_contradicted(tmp_path):
    configs = gimp.algorithms(T, TARGET)
    finals = dict(zip(gimp.ALGORITHMS, (0.95, 0.93, 0.94, 0.90)))  # fine-tuning best, LRR worst
    for name, config in configs.items():
        store_gimp_run(tmp_path, config, finals[name])
    result = verdicts(tmp_path)
    assert result["Fine-tuning is the least accurate way to retrain"] == "contradicted"
    assert result["LR rewinding matches or beats stable weight rewinding (small networks)"] == \
        "contradicted"


def test_width_claim_on_mlps_is_not_testable_but_shows_our_numbers(tmp_path):
    for model in ("mlp", "lenet300"):
        for x, acc in ((0, 0.92), (75, 0.93)):
            store_gimp_run(tmp_path, gimp.sgimp(T, TARGET, rewind_fraction=x / 100), acc,
                           model=model)
    report = reproduction.claims(reproduction.evidence(QUICK, [tmp_path])).set_index("claim")
    row = report.loc["LR rewinding degrades on wide networks; sGIMP(50-98%) does not"]
    assert row["verdict"] == "not testable at this scale"
    assert "+1.00" in row["ours"]


def test_gpu_hours_scale_with_iterations_and_flag_estimates():
    hours = reproduction.gpu_hours({"resnet20": 3.6, "wrn-16-8": 3.6, "vgg19": 3.6})
    # Figures 3.1-3.2 on ResNet-20: 4 algorithms x 21 trainings x 72,000 steps x 3 seeds =
    # 18,144,000 steps; at 3.6 s per 1,000 that is 65,318 s = 18.144 hours
    assert hours.iloc[0]["model"] == "resnet20"
    assert hours.iloc[0]["GPU hours"] == pytest.approx(18.144)
    assert hours.set_index("model").loc["resnet56", "s per 1k it"].iloc[0].startswith("~")
    with pytest.raises(ValueError, match="tolerance"):
        reproduction.claims(reproduction.evidence(QUICK, []), tolerance=-1)


def test_every_smoke_verdict_says_it_is_smoke_not_a_finding(tmp_path):
    smoke = profiles.get("smoke")
    setup = smoke.setup()
    for config in gimp.algorithms(smoke.train_steps, smoke.target_density).values():
        run = runs.RunDir.open("gimp", {"kind": "gimp", "setup": setup.to_dict(),
                                        "method": config.to_dict()}, tmp_path)
        for level, density in enumerate(config.densities()):
            run.write_record(level, {"level": level, "density": density,
                                     "kept": int(density * 1000), "test_accuracy": 0.5})
    report = reproduction.claims(reproduction.evidence(smoke, [tmp_path]))
    assert report["verdict"].str.endswith(f"({reproduction.SMOKE_NOTE})").all()
    assert "not a finding" in reproduction.SMOKE_NOTE
    assert set(report["verdict"].map(reproduction.plain_verdict)) <= set(reproduction.VERDICTS)
    counts = reproduction.verdict_counts(report)
    assert list(counts.index) == list(reproduction.VERDICTS) and counts.sum() == len(report)
    assert counts["not run yet"] < len(report)  # the stored smoke runs were judged


def test_quick_verdicts_carry_no_smoke_note_and_are_counted(tmp_path):
    report = reproduction.claims(reproduction.evidence(QUICK, [tmp_path]))
    assert not report["verdict"].str.contains("smoke").any()
    assert reproduction.verdict_counts(report).sum() == len(report)
    with pytest.raises(ValueError, match="not in VERDICTS: \\['maybe'\\]"):
        reproduction.verdict_counts(report.assign(verdict="maybe"))
