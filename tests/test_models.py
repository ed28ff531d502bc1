"""Model shapes, parameter counts and PyTorch-default initialisation bounds."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxlabs.models import CNN, MLP, ResNet8, ResNet20


def n_params(tree):
    return sum(x.size for x in jax.tree.leaves(tree))


def test_resnet20_has_exactly_269722_parameters_and_cifar_shapes():
    model = ResNet20()
    x = jnp.zeros((2, 32, 32, 3))
    variables = jax.eval_shape(model.init, jax.random.key(0), x)
    assert n_params(variables["params"]) == 269_722
    out = jax.eval_shape(lambda v: model.apply(v, x), variables)
    assert out.shape == (2, 10)
    assert n_params(jax.eval_shape(ResNet8().init, jax.random.key(0), x)["params"]) < 269_722


def test_cnn_shapes_with_and_without_batchnorm():
    x = jnp.zeros((3, 28, 28, 1))
    for depth, bn in ((1, False), (2, True), (4, False)):
        model = CNN(depth=depth, kernel=3, batch_norm=bn)
        v = model.init(jax.random.key(0), x)
        assert ("batch_stats" in v) == bn
        assert model.apply(v, x).shape == (3, 10)


@pytest.mark.parametrize("fan_in", [1, 64, 300])
def test_pytorch_default_init_bounds_for_linear(fan_in):
    v = MLP(width=512, depth=1, out=1).init(jax.random.key(1), jnp.zeros((1, fan_in)))["params"]
    k, b = np.asarray(v["hidden_0"]["kernel"]), np.asarray(v["hidden_0"]["bias"])
    bound = 1 / np.sqrt(fan_in)
    assert np.abs(k).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(k).max() > 0.95 * bound  # uniform: the draws reach close to the bound
    # next layer's fan-in is the width
    assert np.abs(np.asarray(v["out"]["kernel"])).max() <= 1 / np.sqrt(512)


def test_pytorch_default_init_bounds_for_conv():
    v = CNN(depth=2, kernel=5).init(jax.random.key(2), jnp.zeros((1, 28, 28, 1)))["params"]
    k = np.asarray(v["conv_1"]["kernel"])  # (5, 5, 32, 64): fan_in 800
    bound = 1 / np.sqrt(5 * 5 * 32)
    assert np.abs(k).max() <= bound and np.abs(k).max() > 0.95 * bound
    assert np.abs(np.asarray(v["conv_1"]["bias"])).max() <= bound
    np.testing.assert_allclose(k.var(), bound**2 / 3, rtol=0.05)


@pytest.mark.parametrize("stride,kernel", [(1, 3), (2, 3), (1, 5), (1, 1)])
def test_im2col_conv_equals_lax_conv(stride, kernel):
    from jaxlabs.models.layers import conv_im2col

    x = jax.random.normal(jax.random.key(0), (2, 9, 8, 3))
    w = jax.random.normal(jax.random.key(1), (kernel, kernel, 3, 4))
    pad = kernel // 2
    ref = jax.lax.conv_general_dilated(x, w, (stride, stride), ((pad, pad), (pad, pad)),
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(conv_im2col(x, w, stride, pad), ref, rtol=1e-5, atol=1e-5)
    g = jax.grad(lambda w: jnp.sum(jnp.sin(conv_im2col(x, w, stride, pad))))(w)
    g_ref = jax.grad(lambda w: jnp.sum(jnp.sin(jax.lax.conv_general_dilated(
        x, w, (stride, stride), ((pad, pad), (pad, pad)), dimension_numbers=("NHWC", "HWIO", "NHWC")))))(w)
    np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-5)
