"""The benchmarks' kernel floor (`benchmarks/es_iteration.py`): every matrix product a profiled
run makes is found with its shape and its count, whichever kernel PyTorch chose for it."""

import importlib.util
import sys
from collections import Counter

import torch

from tests.shared import REPO


def es_iteration():
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("es_iteration", REPO / "benchmarks" / "es_iteration.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def recorded(run) -> Counter:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as ops:
        run()
    return es_iteration().matrix_products(ops.key_averages(group_by_input_shape=True))


def test_a_linear_layer_with_a_bias_is_one_product_of_its_rows_by_its_weight():
    layer = torch.nn.Linear(24, 40)
    x = torch.randn(16, 24)
    assert recorded(lambda: [layer(x) for _ in range(3)]) == Counter({(1, 16, 24, 40): 3})


def test_a_layer_without_bias_on_a_batch_of_sequences_multiplies_all_their_positions_at_once():
    layer = torch.nn.Linear(24, 40, bias=False)
    x = torch.randn(4, 5, 24)
    assert recorded(lambda: layer(x)) == Counter({(1, 20, 24, 40): 1})


def test_a_batched_product_keeps_its_batch_and_the_backward_adds_its_two_products():
    a = torch.randn(3, 6, 8, requires_grad=True)
    b = torch.randn(3, 8, 10, requires_grad=True)
    products = recorded(lambda: torch.bmm(a, b).sum().backward())
    # forward (6×8)·(8×10); backward: grad_a = grad·bᵀ (6×10)·(10×8), grad_b = aᵀ·grad (8×6)·(6×10)
    assert products == Counter({(3, 6, 8, 10): 1, (3, 6, 10, 8): 1, (3, 8, 6, 10): 1})


def test_element_wise_work_is_no_product():
    x = torch.randn(64, 64)
    assert recorded(lambda: (x * x + 1).exp()) == Counter()


def test_the_kernel_floor_of_no_product_is_zero_and_of_a_product_is_the_sum_over_its_calls():
    module = es_iteration()
    assert module.kernel_seconds(Counter()) == 0.0
    assert module.kernel_seconds(Counter({(1, 16, 24, 40): 5})) > 0.0
