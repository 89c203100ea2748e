"""The fused ELU + local response normalisation equals PyTorch's composition."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from raympl.models import elu_lrn


def test_fused_elu_lrn_forward_is_pytorchs_and_backward_is_its_gradient():
    torch.manual_seed(0)
    x = (torch.randn(4, 9, 6, 6) * 20).requires_grad_(True)  # large values: LRN's denominator matters
    reference = F.local_response_norm(F.elu(x), 4, alpha=1e-3, beta=0.75, k=1.0)
    fused = elu_lrn(x, 4, 1e-3, 0.75, 1.0)
    torch.testing.assert_close(fused, reference, rtol=1e-6, atol=1e-6)
    g = torch.randn_like(reference)
    expected, = torch.autograd.grad(reference, x, g)
    got, = torch.autograd.grad(fused, x, g)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    double = torch.randn(2, 7, 4, 4, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: elu_lrn(t, 4, 0.1, 0.75, 1.0), (double,))
    assert torch.autograd.gradcheck(lambda t: elu_lrn(t, 5, 0.1, 0.75, 2.0), (double,))  # odd window
