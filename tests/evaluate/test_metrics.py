import numpy as np
import pytest

from xmr_core.evaluate.metrics import map_at_k, rank_metrics, rd_ratio


def brute_rank_metrics(sim, gold, ks=(1, 3, 5)):
    ranks = []
    for row, g in zip(sim, gold):
        # pessimistic ties: count every other candidate scoring >= gold's score
        ranks.append(sum(1 for j in range(len(row)) if j != g and row[j] >= row[g]))
    ranks = np.array(ranks)
    return {**{f"acc@{k}": np.mean(ranks < k) for k in ks}, "mrr": np.mean(1 / (ranks + 1))}


def brute_map(sim, rel, k):
    aps, top1 = [], []
    for row, r in zip(sim, rel):
        if not r.any():
            continue
        order = sorted(range(len(row)), key=lambda j: -row[j])[:k]
        hits, ap = 0, 0.0
        for i, j in enumerate(order, start=1):
            if r[j]:
                hits += 1
                ap += hits / i
        aps.append(ap / min(k, r.sum()))
        top1.append(float(r[order[0]]))
    return np.mean(aps), np.mean(top1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_metrics_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    sim = rng.normal(size=(40, 30)).round(1)  # rounding creates ties
    gold = rng.integers(0, 30, 40)
    ours, ref = rank_metrics(sim, gold), brute_rank_metrics(sim, gold)
    for key in ("acc@1", "acc@3", "acc@5", "mrr"):
        assert ours[key] == pytest.approx(ref[key])
    assert ours["n"] == 40


@pytest.mark.parametrize("seed", [0, 1])
def test_map_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    sim = rng.normal(size=(25, 60))
    rel = rng.random((25, 60)) < 0.08
    rel[3] = False  # a query with nothing relevant is skipped
    ours = map_at_k(sim, rel, 10)
    ref_map, ref_top1 = brute_map(sim, rel, 10)
    assert ours["map@10"] == pytest.approx(ref_map) and ours["acc@1"] == pytest.approx(ref_top1)
    assert ours["n"] == int(rel.any(1).sum())


def test_rd_ratio_hand_computed():
    # two concepts, members at distance 1 from centroids (0,0) and (4,0): R = 1, D = 4
    emb = np.array([[0, 1], [0, -1], [4, 1], [4, -1]], float)
    assert rd_ratio(emb, np.array([0, 0, 1, 1])) == pytest.approx(0.25)
    tight = np.array([[0, 0.1], [0, -0.1], [4, 0.1], [4, -0.1]], float)
    assert rd_ratio(tight, np.array([0, 0, 1, 1])) < 0.25
    assert np.isnan(rd_ratio(emb, np.zeros(4)))


def test_group_accuracy_by_hand():
    from xmr_core.evaluate.metrics import group_accuracy

    got = group_accuracy(np.array([1, 0, 1, 1, 0]), ["a", "b", "a", "b", "b"])
    assert got == {"a": {"acc@1": 1.0, "n": 2}, "b": {"acc@1": pytest.approx(1 / 3), "n": 3}}


def test_length_buckets():
    from xmr_core.evaluate.metrics import length_bucket

    assert [length_bucket(w, "zh") for w in ("猫", "冬天", "巧克力", "一二三四", "一二三四五")] == \
        ["zh:1", "zh:2", "zh:3", "zh:4+", "zh:4+"]
    assert [length_bucket(w, "en") for w in ("ox", "cat", "milk", "water", "winter", "chocolate", "refrigerator")] == \
        ["en:1-3", "en:1-3", "en:4-5", "en:4-5", "en:6-7", "en:8-9", "en:10+"]


def test_length_buckets_sort_by_language_then_length():
    from xmr_core.evaluate.metrics import bucket_order

    names = ["en:10+", "zh:4+", "es:1-3", "en:4-5", "zh:1", "en:1-3"]
    assert sorted(names, key=bucket_order) == ["zh:1", "zh:4+", "en:1-3", "en:4-5", "en:10+", "es:1-3"]


def test_rd_ratio_of_one_part_uses_every_member_for_the_centres():
    """One script's images, one per concept: alone each is its own centre (R = 0, what Explore showed
    for zh, en and es); measured against the concepts' centres over all scripts they have a spread."""
    emb = np.array([[0, 1], [0, -1], [4, 3], [4, -3]], float)
    labels, first = np.array([0, 0, 1, 1]), np.array([True, False, True, False])
    assert rd_ratio(emb[first], labels[first]) == 0
    assert rd_ratio(emb, labels, members=first) == pytest.approx(((1 + 3) / 2) / 4)
    assert np.isnan(rd_ratio(emb, labels, members=np.zeros(4, bool)))
