"""Training both frameworks to the same budget on the built-in data: each beats persistence at the
first lead times and their RMSE curves agree within the stated bound (subprocess per framework)."""

from __future__ import annotations

import json

import numpy as np
from conftest import needs_both

from reports.records import read_records
from runners.skill import AGREEMENT, SkillOptions, run_skill

pytestmark = needs_both


def test_trained_models_beat_persistence_and_agree(tmp_path):
    summary = run_skill(SkillOptions(results_dir=tmp_path, n_init=8, n_lead=4), progress=lambda s: None)
    assert [r["status"] for r in summary["records"]] == ["ok", "ok"], summary["records"]
    scores = summary["scores"]
    persistence = np.asarray(scores["persistence"]["rmse"])
    for fw in ("torch", "mindspore"):
        rmse = np.asarray(scores[fw]["rmse"])
        assert rmse.shape == (4, 3)
        assert (rmse[:2] < persistence[:2]).all(), (fw, rmse[:2], persistence[:2])  # every channel, 6 h and 12 h
        assert (np.diff(rmse, axis=0) > 0).all()  # errors grow with lead time
        acc = np.asarray(scores[fw]["acc"])
        assert (acc[0] > np.asarray(scores["persistence"]["acc"])[0]).all()
    agreement = summary["agreement"]
    assert agreement["within_tolerance"] and agreement["rmse_max_rel_diff"] <= AGREEMENT
    assert all(v is None for v in np.ravel(scores["climatology"]["acc"]))  # undefined, never a number
    records = read_records(tmp_path / "records.jsonl")
    assert {r["workload_fingerprint"] for r in records} == {records[0]["workload_fingerprint"]}
    assert records[0]["rmse_u_6h"] == scores["torch"]["rmse"][0][0]
    assert records[0]["rmse_persistence_u_6h"] == scores["persistence"]["rmse"][0][0]
    assert records[0]["weights_convention"] == "uniform"
    saved = json.loads((tmp_path / records[0]["run_id"] / "skill.json").read_text())
    assert saved["agreement"] == agreement
