"""The teaching functions of notebooks 01-03 agree with PyTorch and with the thesis."""

from __future__ import annotations

from pruninglab import basics, models

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------------------
# Section 2.1: neurons and layers
# --------------------------------------------------------------------------------------


def test_relu_matches_torch_relu():
    x = torch.linspace(-3, 3, 61)
    assert torch.equal(basics.relu(x), torch.relu(x))


def test_neuron_is_the_weighted_sum_plus_bias_of_figure_2_1():
    y = torch.tensor([2.0, -3.0])
    w = torch.tensor([0.5, 1.5])
    assert basics.neuron(y, w, 1.0).item() == pytest.approx(0.5 * 2 - 1.5 * 3 + 1)
    assert basics.neuron(y, w, 1.0, activation="relu").item() == 0.0
    assert basics.neuron(y, w, 10.0, activation="relu").item() == pytest.approx(6.5)


def test_neuron_works_on_a_batch_of_inputs():
    y = torch.randn(5, 3)
    w = torch.randn(3)
    torch.testing.assert_close(basics.neuron(y, w, 0.3), y @ w + 0.3)


def test_neuron_rejects_mismatched_shapes_and_unknown_activations():
    with pytest.raises(ValueError, match="w must have shape"):
        basics.neuron(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="activation"):
        basics.neuron(torch.zeros(2), torch.zeros(2), activation="tanh")


def test_linear_layer_matches_nn_linear():
    torch.manual_seed(0)
    layer = nn.Linear(6, 4)
    x = torch.randn(8, 6)
    torch.testing.assert_close(basics.linear_layer(x, layer.weight, layer.bias), layer(x))
    torch.testing.assert_close(basics.linear_layer(x, layer.weight), x @ layer.weight.T)


@pytest.mark.parametrize("n, m", [(1, 1), (2, 1), (784, 400), (400, 10)])
def test_linear_layer_parameters_is_n_plus_one_times_m_like_nn_linear(n, m):
    assert basics.linear_layer_parameters(n, m) == (n + 1) * m
    assert basics.linear_layer_parameters(n, m) == models.count_parameters(nn.Linear(n, m))
    assert basics.linear_layer_parameters(n, m, bias=False) == models.count_parameters(
        nn.Linear(n, m, bias=False))


def test_linear_layer_parameters_rejects_non_positive_sizes():
    with pytest.raises(ValueError, match="n_out"):
        basics.linear_layer_parameters(3, 0)


def test_mlp_parameters_match_the_thesis_mlp_and_lenet_300_100():
    mlp = models.create("mlp", in_channels=1, num_classes=10, input_size=28)
    lenet = models.create("lenet300", in_channels=1, num_classes=10, input_size=28)
    assert basics.mlp_parameters([784, 400, 400, 400, 10]) == models.count_parameters(mlp)
    assert basics.mlp_parameters([784, 300, 100, 10]) == models.count_parameters(lenet) == 266_610


def test_hand_made_xor_computes_xor_exactly():
    x, y = basics.xor_data()
    with torch.no_grad():
        logits = basics.hand_made_xor()(x).squeeze(1)
    assert torch.equal(logits, 10 * y - 5)


@pytest.mark.parametrize("hidden, activation", [(0, "relu"), (8, None)])
def test_linear_networks_cannot_fit_xor(hidden, activation):
    result = basics.train_xor(hidden, activation, steps=300, seed=0)
    assert min(result.losses) >= math.log(2) - 1e-5
    assert result.accuracy < 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_hidden_relu_layer_fits_xor(seed):
    result = basics.train_xor(hidden=8, activation="relu", steps=300, seed=seed)
    assert result.accuracy == 1.0
    assert result.losses[-1] < 0.05
    assert len(result.losses) == 300


def test_train_xor_is_reproducible_for_a_seed():
    a = basics.train_xor(hidden=8, steps=50, seed=3)
    b = basics.train_xor(hidden=8, steps=50, seed=3)
    assert a.losses == b.losses


def test_predict_grid_gives_probabilities_on_a_square_grid():
    xx, yy, p = basics.predict_grid(basics.hand_made_xor(), lim=(0.0, 1.0), n=11)
    assert xx.shape == yy.shape == p.shape == (11, 11)
    assert ((p >= 0) & (p <= 1)).all()
    assert p[0, 0] < 0.5 and p[0, -1] > 0.5 and p[-1, 0] > 0.5 and p[-1, -1] < 0.5


# --------------------------------------------------------------------------------------
# Section 2.2: convolutions
# --------------------------------------------------------------------------------------

CONV_CASES = [
    # (N, C, H, W), (O, kh, kw), stride, padding, bias
    ((1, 1, 4, 4), (1, 2, 2), 1, 0, False),  # Figures 2.4 and 2.5
    ((2, 3, 7, 7), (4, 3, 3), 1, 1, True),  # "same" padding
    ((2, 3, 8, 6), (5, 3, 3), 2, 1, True),  # stride 2
    ((1, 2, 9, 7), (3, 5, 3), (2, 1), (2, 0), False),  # different per axis
    ((3, 4, 5, 5), (2, 1, 1), 1, 0, True),  # 1x1 convolution
    ((1, 1, 6, 6), (2, 3, 3), 3, 2, True),  # stride 3, padding 2
]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, bias", CONV_CASES)
def test_conv2d_by_hand_equals_f_conv2d(x_shape, w_shape, stride, padding, bias):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(x_shape, generator=generator)
    o, kh, kw = w_shape
    weight = torch.randn((o, x_shape[1], kh, kw), generator=generator)
    b = torch.randn(o, generator=generator) if bias else None
    ours = basics.conv2d_by_hand(x, weight, b, stride=stride, padding=padding)
    torch.testing.assert_close(ours, F.conv2d(x, weight, b, stride=stride, padding=padding))


@pytest.mark.parametrize("size, kernel, stride, padding",
                         [(32, 3, 1, 1), (32, 3, 2, 1), (28, 5, 1, 0), (7, 3, 3, 2), (8, 8, 1, 0),
                          (5, 2, 2, 0)])
def test_conv_output_size_matches_f_conv2d(size, kernel, stride, padding):
    x = torch.zeros(1, 1, size, size)
    w = torch.zeros(1, 1, kernel, kernel)
    expected = F.conv2d(x, w, stride=stride, padding=padding).shape[-1]
    assert basics.conv_output_size(size, kernel, stride, padding) == expected


def test_conv_output_size_rejects_a_kernel_larger_than_the_input():
    with pytest.raises(ValueError, match="larger than the padded input"):
        basics.conv_output_size(2, 3)
    with pytest.raises(ValueError, match="stride"):
        basics.conv_output_size(8, 3, stride=0)


def test_window_positions_visit_every_output_pixel_row_by_row():
    positions = basics.window_positions(4, 4, 2)
    assert positions == [(r, c) for r in range(3) for c in range(3)]
    positions = basics.window_positions(5, 5, 3, stride=2, padding=1)
    assert positions == [(0, 0), (0, 2), (0, 4), (2, 0), (2, 2), (2, 4), (4, 0), (4, 2), (4, 4)]


def test_zero_pad_matches_f_pad():
    x = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(basics.zero_pad(x, (1, 2)), F.pad(x, (2, 2, 1, 1)))


def test_conv2d_by_hand_rejects_a_channel_mismatch():
    with pytest.raises(ValueError, match="same C"):
        basics.conv2d_by_hand(torch.zeros(1, 3, 4, 4), torch.zeros(2, 1, 3, 3))


@pytest.mark.parametrize("c_in, c_out, kernel, bias", [(3, 16, 3, False), (16, 32, 1, True),
                                                        (1, 6, (5, 3), True)])
def test_conv2d_parameters_match_nn_conv2d(c_in, c_out, kernel, bias):
    layer = nn.Conv2d(c_in, c_out, kernel, bias=bias)
    assert basics.conv2d_parameters(c_in, c_out, kernel, bias) == models.count_parameters(layer)


def test_parameters_by_layer_type_add_up_to_the_model_count():
    model = models.create("resnet20")
    counts = basics.parameters_by_layer_type(model)
    assert sum(counts.values()) == models.count_parameters(model)
    assert list(counts) == ["Conv2d", "BatchNorm2d", "Linear"]
    assert counts["Linear"] == 64 * 10 + 10


# --------------------------------------------------------------------------------------
# Section 2.3: batch normalization
# --------------------------------------------------------------------------------------


def test_ema_update_in_both_conventions_agrees_after_converting_the_momentum():
    for tf_momentum in (0.9, 0.99, 0.997):
        torch_momentum = models.tf_to_torch_momentum(tf_momentum)
        tf = basics.ema_update(1.0, 5.0, tf_momentum, convention="tf")
        pt = basics.ema_update(1.0, 5.0, torch_momentum, convention="torch")
        assert tf == pytest.approx(pt)
    assert basics.ema_update(1.0, 5.0, 0.99, "tf") == pytest.approx(0.99 * 1 + 0.01 * 5)
    assert basics.ema_update(1.0, 5.0, 0.99, "torch") == pytest.approx(0.01 * 1 + 0.99 * 5)


def test_ema_update_rejects_an_unknown_convention_and_bad_momentum():
    with pytest.raises(ValueError, match="convention"):
        basics.ema_update(0.0, 1.0, 0.5, convention="keras")
    with pytest.raises(ValueError, match="momentum"):
        basics.ema_update(0.0, 1.0, 1.5)


def test_running_average_of_a_constant_follows_the_closed_form():
    mu, c, init = 0.9, 2.0, 0.5
    run = basics.running_average([c] * 50, mu, convention="tf", initial=init)
    k = torch.arange(1, 51, dtype=torch.float64)
    torch.testing.assert_close(run, c + (init - c) * mu**k)
    same = basics.running_average([c] * 50, models.tf_to_torch_momentum(mu), "torch", init)
    torch.testing.assert_close(run, same)


def test_forgetting_steps_is_the_first_step_below_the_fraction():
    for mu in (0.5, 0.9, 0.99, 0.997):
        k = basics.forgetting_steps(mu, 0.01)
        assert mu**k <= 0.01 < mu ** (k - 1)
    assert basics.forgetting_steps(0.99) == 459
    assert basics.forgetting_steps(0.01, convention="torch") == 459


def test_drifting_batches_are_seeded_and_drift_linearly():
    batches, means = basics.drifting_batches(100, 2000, 1.0, 3.0, std=0.5, seed=1)
    assert batches.shape == (100, 2000) and means.shape == (100,)
    assert means[0] == 1.0 and means[-1] == 3.0
    assert (batches.mean(1) - means).abs().max() < 0.1
    assert torch.equal(batches, basics.drifting_batches(100, 2000, 1.0, 3.0, 0.5, 1)[0])


@pytest.mark.parametrize("tf_momentum, eps", [(0.99, 1e-3), (0.9, 1e-5), (0.5, 1e-1)])
def test_batch_norm_by_hand_matches_batchnorm2d_over_several_steps(tf_momentum, eps):
    torch.manual_seed(0)
    momentum = models.tf_to_torch_momentum(tf_momentum)
    layer = nn.BatchNorm2d(3, eps=eps, momentum=momentum)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        layer.bias.copy_(torch.tensor([0.0, -1.0, 3.0]))
    mean, var = torch.zeros(3), torch.ones(3)
    for step in range(5):
        x = 3.0 + 2.0 * torch.randn(4, 3, 5, 5) + step
        ours, mean, var = basics.batch_norm_by_hand(x, mean, var, layer.weight, layer.bias,
                                                    training=True, momentum=momentum, eps=eps)
        torch.testing.assert_close(ours, layer(x))
        torch.testing.assert_close(mean, layer.running_mean)
        torch.testing.assert_close(var, layer.running_var)
    layer.eval()
    x = torch.randn(2, 3, 5, 5)
    ours, mean_after, var_after = basics.batch_norm_by_hand(x, mean, var, layer.weight,
                                                            layer.bias, training=False, eps=eps)
    torch.testing.assert_close(ours, layer(x))
    assert torch.equal(mean_after, mean) and torch.equal(var_after, var)


def test_batch_norm_by_hand_matches_batchnorm1d_without_affine_parameters():
    layer = nn.BatchNorm1d(4, affine=False, momentum=0.3)
    x = torch.randn(16, 4) * 5 - 2
    ours, mean, var = basics.batch_norm_by_hand(x, torch.zeros(4), torch.ones(4), momentum=0.3)
    torch.testing.assert_close(ours, layer(x))
    torch.testing.assert_close(mean, layer.running_mean)
    torch.testing.assert_close(var, layer.running_var)


def test_batch_norm_in_training_mode_standardizes_the_batch():
    x = torch.randn(64, 2, 3, 3) * 4 + 7
    y, _, _ = basics.batch_norm_by_hand(x, torch.zeros(2), torch.ones(2), eps=0.0)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(dim=(0, 2, 3), unbiased=False), torch.ones(2))


def test_batch_norm_by_hand_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="running_mean"):
        basics.batch_norm_by_hand(torch.zeros(4, 3), torch.zeros(2), torch.ones(3))
    with pytest.raises(ValueError, match="more than one value"):
        basics.batch_norm_by_hand(torch.zeros(1, 3), torch.zeros(3), torch.ones(3))
