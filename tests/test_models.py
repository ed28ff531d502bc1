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


# jaxlabs.models.conv: every implementation equals lax.conv_general_dilated up to float32 sums in
# another order. Tolerances: relative, plus an absolute part scaled by the largest value (entries
# near zero are differences of large sums).
CONV_RTOL, GRAD_RTOL = 1e-5, 1e-4


def assert_conv_close(got, ref, rtol):
    ref = np.asarray(ref)
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol * np.abs(ref).max())
GEOMETRIES = [((1, 3), (2, 9, 8, 3)), ((2, 3), (2, 9, 8, 3)), ((2, 3), (2, 8, 8, 3)), ((1, 5), (2, 9, 8, 3)),
              ((1, 1), (2, 9, 8, 3)), ((2, 1), (2, 8, 8, 3))]  # (stride, kernel), input (n, h, w, c)


def _loss(conv, stride, pad):
    return lambda x, w: jnp.sum(jnp.sin(conv(x, w, stride, pad)))  # non-linear: cotangents vary


@pytest.mark.parametrize("impl", ["conv_cpu", "conv_im2col"])
@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_conv_equals_lax_conv_forward_and_gradients(impl, geometry):
    from jaxlabs.models import conv as convs

    (stride, kernel), shape = geometry
    conv, pad = getattr(convs, impl), kernel // 2
    x = jax.random.normal(jax.random.key(0), shape)
    w = jax.random.normal(jax.random.key(1), (kernel, kernel, shape[-1], 4))
    assert_conv_close(conv(x, w, stride, pad), convs.conv_lax(x, w, stride, pad), CONV_RTOL)
    got = jax.jit(jax.grad(_loss(conv, stride, pad), (0, 1)))(x, w)
    ref = jax.grad(_loss(convs.conv_lax, stride, pad), (0, 1))(x, w)
    for g, r in zip(got, ref):  # input gradient, weight gradient
        assert_conv_close(g, r, GRAD_RTOL)


@pytest.mark.parametrize("kernels", ["xla-default", "engine"])
@pytest.mark.parametrize("in_axes", [(0, 0), (None, 0), (0, None)])
def test_conv_cpu_vmapped_members_inside_scan_equals_lax_conv(in_axes, kernels):
    """Members as the sweep runs them: vmap (own kernels, shared data, or both batched) over a
    lax.scan of gradient steps, the case conv_cpu exists for; compiled with XLA's default
    library kernels and with the engine's compile options (on the CPU: Eigen's convolutions)."""
    from jaxlabs.engine.programs import compiler_options
    from jaxlabs.models.conv import conv_cpu, conv_lax

    options = compiler_options() if kernels == "engine" else None

    x = jax.random.normal(jax.random.key(0), (3, 2, 8, 8, 3))
    w = jax.random.normal(jax.random.key(1), (3, 3, 3, 3, 4))
    args = tuple(a if ax == 0 else a[0] for a, ax in zip((x, w), in_axes))

    def train(conv):
        def run(x, w):
            def step(w, _):
                return w - 0.01 * jax.grad(_loss(conv, 2, 1), 1)(x, w), jnp.sum(conv(x, w, 2, 1))
            return jax.lax.scan(step, w, None, length=3)
        return jax.jit(jax.vmap(run, in_axes=in_axes), compiler_options=options if conv is conv_cpu else None)(*args)

    for g, r in zip(jax.tree.leaves(train(conv_cpu)), jax.tree.leaves(train(conv_lax))):
        assert_conv_close(g, r, GRAD_RTOL)


def test_compile_options_send_cpu_convolutions_to_eigen_unless_the_user_chose(monkeypatch):
    from jaxlabs.engine.programs import YNN_FUSION_TYPE, compiler_options

    monkeypatch.delenv("XLA_FLAGS", raising=False)
    options = compiler_options("cpu")
    # dots and reductions stay in YNNPACK; convolutions are left out of its list
    assert options == {YNN_FUSION_TYPE: "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}
    options.clear()  # the caller's copy
    assert compiler_options("cpu")
    assert compiler_options("gpu") is None and compiler_options("tpu") is None
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=individual_convolution")
    assert compiler_options("cpu") is None  # the user's own setting stands


def test_a_jaxlib_without_the_option_compiles_with_its_defaults(monkeypatch):
    from jaxlabs.engine.programs import CPU_OPTIONS, compiler_options

    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert compiler_options("cpu", wanted={"xla_cpu_no_such_option": "1"}) is None
    assert compiler_options("cpu", wanted=CPU_OPTIONS) == CPU_OPTIONS


def test_the_engine_compiles_its_programs_with_the_compile_options():
    """An option XLA rejects reaches XLA: the engine's programs are compiled with them."""
    from jaxlabs import sweep
    from jaxlabs.engine.options import EngineOptions
    from jaxlabs.engine.plans import Plan
    from jaxlabs.engine.programs import YNN_FUSION_TYPE
    from jaxlabs.tasks import get_task

    task = get_task("fit-log2cos")
    trainer, data = task.build(task.resolve_static(n=40, width=4, depth=1, epochs=2))
    bad = EngineOptions(plan=Plan("vmap"), compile_options={YNN_FUSION_TYPE: "LIBRARY_FUSION_TYPE_NO_SUCH_TYPE"})
    with pytest.raises(RuntimeError, match="NO_SUCH_TYPE"):  # jax.errors.JaxRuntimeError
        sweep.run_group(trainer, data, [0], {"lr": [0.01], "tolerance": [0.0]}, progress=False, options=bad)


def test_conv_is_chosen_per_backend_and_injected_into_the_models():
    from jaxlabs.models.conv import conv_cpu, conv_for_backend, conv_lax

    assert conv_for_backend("cpu") is conv_cpu
    assert conv_for_backend("gpu") is conv_lax and conv_for_backend("tpu") is conv_lax
    calls = []

    def spy(x, w, stride, pad):
        calls.append(w.shape)
        return conv_lax(x, w, stride, pad)

    x = jax.random.normal(jax.random.key(0), (2, 28, 28, 1))
    model = CNN(depth=2, kernel=3, channels=4, conv=spy)
    v = model.init(jax.random.key(1), x)
    assert calls == [(3, 3, 1, 4), (3, 3, 4, 8)]
    assert_conv_close(CNN(depth=2, kernel=3, channels=4, conv=conv_cpu).apply(v, x), model.apply(v, x), CONV_RTOL)
    calls.clear()
    ResNet8(conv=spy).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    assert len(calls) == 7  # ResNet8: the stem and 3 blocks x 2 convs
