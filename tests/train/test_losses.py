import math

import pytest
import torch

from xmr_core.train.losses import XMRLoss, anchor_drift_loss, inv_loss, itc_loss, one_to_k_loss

E = math.e


def test_itc_hand_computed():
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    loss = itc_loss(img, img.clone(), torch.tensor([0, 1]), 1.0)
    assert loss.item() == pytest.approx(math.log(1 + 1 / E), abs=1e-6)
    # same concept twice: both texts are positives, spread evenly
    loss2 = itc_loss(img, img.clone(), torch.tensor([0, 0]), 1.0)
    assert loss2.item() == pytest.approx(-0.5 * (math.log(E / (E + 1)) + math.log(1 / (E + 1))), abs=1e-6)


def test_one_to_k_hand_computed():
    img = torch.tensor([[1.0, 0.0]])
    texts = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    loss = one_to_k_loss(img, texts, torch.tensor([0]), torch.tensor([0, 1, 0]), 1.0)
    assert loss.item() == pytest.approx(math.log((2 * E + 1) / (2 * E)), abs=1e-6)
    with pytest.raises(ValueError):
        one_to_k_loss(img, texts, torch.tensor([5]), torch.tensor([0, 1, 0]), 1.0)
    # an additive margin of 0.5 at scale 2 leaves the positives' logits at 2 * (1 - 0.5) = 1, the
    # negative's at 0: the same value as above, where scale 2 alone would give a smaller loss
    with_margin = one_to_k_loss(img, texts, torch.tensor([0]), torch.tensor([0, 1, 0]), 2.0, margin=0.5)
    assert with_margin.item() == pytest.approx(math.log((2 * E + 1) / (2 * E)), abs=1e-6)
    assert one_to_k_loss(img, texts, torch.tensor([0]), torch.tensor([0, 1, 0]), 2.0).item() < with_margin.item()


def test_inv_hand_computed():
    f = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # anchors 0 and 1 each have one positive (sim 1) against one negative (sim 0); anchor 2 has none
    assert inv_loss(f, torch.tensor([0, 0, 1]), 1.0).item() == pytest.approx(math.log(1 + 1 / E), abs=1e-6)
    assert inv_loss(f, torch.tensor([0, 1, 2]), 1.0).item() == 0.0
    # collapsing everything onto one point does not minimise it
    collapsed = torch.tensor([[1.0, 0.0]] * 4)
    spread = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    assert inv_loss(spread, labels, 10.0) < inv_loss(collapsed, labels, 10.0)


def test_anchor_drift_hand_computed():
    ref = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    out = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # row 1: |(0, -1)|^2 / |(1, 1)|^2 = 1/2; row 2: |(0, 1)|^2 / 1 = 1
    assert anchor_drift_loss(out, ref).item() == pytest.approx(0.75)
    assert anchor_drift_loss(ref, ref).item() == 0.0
    assert anchor_drift_loss(2 * ref, ref).item() == pytest.approx(1.0)  # scale counts, not only direction


def test_combined_loss_takes_model_output():
    torch.manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    txt = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    out = XMRLoss(itc=1.0, inv=0.5, one_to_k=2.0)(image_features=img, text_features=txt, logit_scale=torch.tensor(10.0),
                                                    labels=labels, candidate_features=txt, candidate_labels=labels)
    expect = out["itc"] + 0.5 * out["inv"] + 2.0 * out["one_to_k"]
    assert out["total"].item() == pytest.approx(expect.item())
