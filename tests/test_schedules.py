"""Every schedule's values at chosen epochs, and the config object."""

import pytest

from lab4.config import PROFILES, Config, make_config, parse_overrides
from lab4.schedules import kl_beta, teacher_forcing_draw, teacher_forcing_ratio, warmup_factor


def test_cyclical_matches_fu_et_al():
    # 70 epochs, 10 cycles, ratio 1 (template defaults): period 7, beta = (epoch mod 7) / 7
    values = [kl_beta("Cyclical", e, 70, n_cycle=10, ratio=1.0) for e in range(15)]
    assert values[:8] == pytest.approx([0, 1 / 7, 2 / 7, 3 / 7, 4 / 7, 5 / 7, 6 / 7, 0])
    assert values[14] == 0
    # ratio 0.5: rises over the first half of each cycle, then holds 1
    assert [kl_beta("Cyclical", e, 40, 4, 0.5) for e in (0, 1, 4, 5, 9, 10)] == pytest.approx([0, 0.2, 0.8, 1, 1, 0])


def test_monotonic_rises_once_then_holds():
    values = [kl_beta("Monotonic", e, 70, n_cycle=10, ratio=1.0) for e in (0, 3, 7, 30, 69)]
    assert values == pytest.approx([0, 3 / 7, 1, 1, 1])
    # Same first cycle as Cyclical
    assert kl_beta("Monotonic", 3, 70, 10) == kl_beta("Cyclical", 3, 70, 10)


def test_none_and_beta_max():
    assert kl_beta("None", 0, 70) == 1.0 and kl_beta("None", 50, 70) == 1.0
    assert kl_beta("None", 5, 70, beta_max=0.1) == pytest.approx(0.1)
    assert kl_beta("Cyclical", 3.5, 70, 10, beta_max=0.5) == pytest.approx(0.25)


def test_sigmoid_rise_is_s_shaped():
    vals = [kl_beta("Sigmoid", e, 100, n_cycle=1, ratio=1.0) for e in (0, 25, 50, 75, 99)]
    assert vals[0] == pytest.approx(0, abs=1e-9)
    assert vals[2] == pytest.approx(0.5)
    assert vals[1] < 0.25 and vals[3] > 0.75  # slower than linear early, faster in the middle
    assert vals == sorted(vals)


def test_per_iteration_stepping_is_the_same_curve_finer():
    # 10 epochs x 100 iterations, 2 cycles: iteration 250 is half-way into the first cycle
    assert kl_beta("Cyclical", 250, 1000, 2) == pytest.approx(0.5)
    assert kl_beta("Cyclical", 500, 1000, 2) == 0.0


def test_unknown_annealing_type():
    with pytest.raises(ValueError, match="kl_anneal_type"):
        kl_beta("Linear", 0, 10)


def test_teacher_forcing_ratio_template_decay():
    # The template lowers tfr at the end of each epoch numbered >= tfr_sde (1-based), so with
    # tfr_sde=10 the first ten epochs (0-based 0..9) train at 1.0 and the 11th at 0.9.
    ratios = [teacher_forcing_ratio(e, 1.0, 10, 0.1) for e in range(25)]
    assert ratios[:10] == [1.0] * 10
    assert ratios[10] == pytest.approx(0.9) and ratios[11] == pytest.approx(0.8)
    assert ratios[19] == pytest.approx(0.0, abs=1e-9) and ratios[24] == 0.0
    assert teacher_forcing_ratio(0, 0.5, 0, 0.0) == 0.5


def test_teacher_forcing_draw_is_reproducible_and_follows_the_ratio():
    assert all(teacher_forcing_draw(1.0, 0, e) for e in range(50))
    assert not any(teacher_forcing_draw(0.0, 0, e) for e in range(50))
    draws = [teacher_forcing_draw(0.3, 1, e, b) for e in range(20) for b in range(50)]
    assert 0.25 < sum(draws) / len(draws) < 0.35
    assert draws == [teacher_forcing_draw(0.3, 1, e, b) for e in range(20) for b in range(50)]


def test_quick_chain_teacher_forcing_is_the_templates_schedule_in_proportion():
    """The report's "TF 1.0 decaying" at the CPU budget keeps the shape of the template's over its
    70 epochs: forced at first, 0 after about the first quarter of the run, a similar mean ratio."""
    def shape(cfg):
        ratios = [teacher_forcing_ratio(e, 1.0, cfg.tfr_sde, cfg.tfr_d_step) for e in range(cfg.num_epoch)]
        first_zero = next((e for e, r in enumerate(ratios) if r == 0.0), cfg.num_epoch) / cfg.num_epoch
        return ratios[0], first_zero, sum(ratios) / len(ratios)

    lab, chain = shape(make_config("lab")), shape(make_config("quick-chain"))
    assert lab[0] == chain[0] == 1.0
    assert lab[1] == pytest.approx(19 / 70) and chain[1] == pytest.approx(lab[1], abs=0.1)
    assert chain[2] == pytest.approx(lab[2], abs=0.05)


def test_lab_profile_is_the_template_defaults():
    cfg = make_config("lab")
    assert (cfg.batch_size, cfg.lr, cfg.optimizer, cfg.milestones, cfg.gamma, cfg.grad_clip) == (
        2, 1e-3, "adam", [2, 5], 0.1, 1.0)
    assert (cfg.num_epoch, cfg.per_save, cfg.train_vi_len, cfg.val_vi_len) == (70, 3, 16, 630)
    assert (cfg.tfr, cfg.tfr_sde, cfg.tfr_d_step, cfg.tf_granularity) == (1.0, 10, 0.1, "epoch")
    assert (cfg.kl_anneal_type, cfg.kl_anneal_cycle, cfg.kl_anneal_ratio, cfg.kl_anneal_step) == (
        "Cyclical", 10, 1.0, "epoch")
    assert (cfg.F_dim, cfg.L_dim, cfg.N_dim, cfg.D_out_dim) == (128, 32, 12, 192)
    assert (cfg.fast_partial, cfg.fast_train_epoch, cfg.partial) == (0.4, 5, 1.0)


@pytest.mark.parametrize("name", list(PROFILES))
def test_every_profile_is_valid(name):
    """Each profile makes a config that Config.validate accepts, with every field the profile names at
    the profile's value and every other at the template's default (nothing it sets is lost or
    misspelled), and the model it describes builds."""
    from lab4.train import build_model

    profile, defaults = PROFILES[name], Config().to_dict()
    assert set(profile) <= set(defaults), f"{name} names fields Config lacks: {sorted(set(profile) - set(defaults))}"
    cfg = make_config(name)
    assert cfg.to_dict() == {field: profile.get(field, default) for field, default in defaults.items()}
    assert cfg.validate() is cfg
    model = build_model(cfg)
    # The sizes the profile names are the model's: the encoder's last conv gives F channels, the
    # fusion's D, the posterior 2 N (mu and logvar), the label encoder L.
    assert model.frame_transformation[-1].out_channels == cfg.F_dim
    assert model.Decoder_Fusion[-1].out_channels == cfg.D_out_dim
    assert model.Gaussian_Predictor[-1].out_channels == 2 * cfg.N_dim
    assert model.label_transformation[-1].conv2.out_channels == cfg.L_dim
    assert model.output == cfg.output


def test_overrides_are_typed_and_checked():
    values = parse_overrides(["kl_anneal_type=Monotonic", "tfr=0.5", "num_epoch=3", "shuffle=false",
                              "milestones=4,8"])
    assert values == {"kl_anneal_type": "Monotonic", "tfr": 0.5, "num_epoch": 3, "shuffle": False,
                      "milestones": [4, 8]}
    assert make_config("quick", values).kl_anneal_type == "Monotonic"
    with pytest.raises(ValueError, match="no such config field"):
        parse_overrides(["kl_type=Monotonic"])
    with pytest.raises(ValueError, match="num_epoch"):
        parse_overrides(["num_epoch=many"])
    with pytest.raises(ValueError, match="kl_anneal_type"):
        make_config("lab", {"kl_anneal_type": "cyclic"})
    with pytest.raises(ValueError, match="tfr"):
        make_config("lab", {"tfr": 1.5})
    with pytest.raises(ValueError, match="profile"):
        make_config("fast")


def test_config_round_trips_through_json(tmp_path):
    cfg = make_config("quick", {"seed": 3})
    cfg.save(tmp_path / "config.json")
    assert Config.load(tmp_path / "config.json") == cfg


def test_warmup_factor_is_a_linear_ramp():
    assert [warmup_factor(i, 4) for i in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0
