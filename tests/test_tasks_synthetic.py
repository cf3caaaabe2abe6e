"""Synthetic tasks, the task contract over every registered kind, and batching."""
import json

import pytest
import torch
from torch import nn

from nasgraph.errors import ConfigError
from nasgraph.tasks import CLS_ID, PAD_ID, Split, get, kinds, load_task, num_classes, parse_task, vocab_size
from nasgraph.tasks.base import IGNORE
from nasgraph.tasks.batching import batches
from nasgraph.tasks.tokenize import Tokenizer

SMALL = {
    "tiny": {"n_train": 64, "n_val": 8, "n_test": 8},
    "assoc_recall": {"max_len": 40, "n_pairs": 3, "n_keys": 6, "min_distance": 8, "n_train": 64,
                     "n_val": 8, "n_test": 8},
    "listops": {"max_len": 40, "min_len": 5, "max_depth": 3, "n_train": 64, "n_val": 8, "n_test": 8},
    "text": {"path": "reviews.jsonl", "max_len": 24},
    "lm": {"path": "reviews.jsonl", "max_len": 24},
    "mqar": {"max_len": 24, "n_pairs": 3, "n_keys": 6, "n_values": 6, "n_train": 64, "n_val": 8, "n_test": 8},
    "local_motif": {"max_len": 48, "n_train": 64, "n_val": 8, "n_test": 8},
}


@pytest.fixture(params=kinds())
def small_config(request, tmp_path):
    if request.param not in SMALL:
        pytest.fail(f"task kind '{request.param}' has no small config in SMALL")
    (tmp_path / "reviews.jsonl").write_text("".join(
        json.dumps({"text": f"review {i} " * (i % 4), "label": "good" if i % 3 else "bad"}) + "\n"
        for i in range(40)))
    return parse_task({"kind": request.param, **SMALL[request.param]}, base_dir=tmp_path)


def test_every_kind_keeps_the_contract(small_config):
    data = load_task(small_config)
    assert set(data.splits) == {"train", "val", "test"}
    assert vocab_size(small_config) == len(data.vocab) and data.vocab[:2] == ["<pad>", "<cls>"]
    assert num_classes(small_config) == len(data.class_names)
    tok = Tokenizer.from_dict(json.loads(json.dumps(data.tokenizer)))
    per_position = get(small_config.kind).output == "token"
    for split in data.splits.values():
        assert len(split) > 0
        for ids, label in zip(split.ids, split.labels):
            assert ids[0] == CLS_ID and len(ids) <= small_config.max_len
            assert all(1 <= i < len(data.vocab) for i in ids)
            labels = label if per_position else [label]
            assert len(labels) == (len(ids) if per_position else 1)
            assert all(0 <= y < len(data.class_names) for y in labels if y != IGNORE)
            assert tok.encode(tok.decode(ids)) == ids
    again = load_task(small_config)
    assert all(again.splits[s].ids == data.splits[s].ids for s in data.splits)


def test_synthetic_splits_are_disjoint_and_seeded():
    config = parse_task({"kind": "tiny", "seed": 5})
    data = load_task(config)
    seen = [tuple(ids) for s in data.splits.values() for ids in s.ids]
    assert len(seen) == len(set(seen)) == 2400
    assert load_task(parse_task({"kind": "tiny", "seed": 6})).splits["train"].ids != data.splits["train"].ids
    labels = data.splits["train"].labels
    assert 0.4 < sum(labels) / len(labels) < 0.6
    assert all(y == int(2 in ids) for ids, y in zip(data.splits["train"].ids, labels))  # 'a' is id 2


def test_assoc_recall_layout():
    config = parse_task({"kind": "assoc_recall", "max_len": 64, "n_pairs": 4, "n_keys": 8, "n_values": 5,
                         "n_train": 200, "n_val": 10, "n_test": 10})
    data = load_task(config)
    tok = Tokenizer.from_dict(data.tokenizer)
    for ids, label in zip(data.splits["train"].ids, data.splits["train"].labels):
        symbols = ["<cls>"] + tok.decode(ids).split()        # symbols[p] is the token at position p
        assert len(symbols) == len(ids) == 64 and symbols[-1].startswith("q")
        where = {p: s for p, s in enumerate(symbols) if s.startswith("k")}
        pairs = dict(where[p].split(":") for p in where)
        assert len(pairs) == 4 and set(symbols) - set(where.values()) == {"<cls>", ".", symbols[-1]}
        assert pairs["k" + symbols[-1][1:]] == f"v{label}"
        assert min(where) >= 16 and 63 - max(where) >= 16            # min_distance = max_len // 4
    assert set(data.splits["train"].labels) == set(range(5))


def motif_counts(ids: list[int], motifs: list[tuple[int, ...]]) -> list[int]:
    windows = [tuple(ids[i:i + 3]) for i in range(1, len(ids) - 2)]
    return [windows.count(m) for m in motifs]


def test_local_motif_plants_exactly_one_motif():
    from nasgraph.tasks.local_motif import LocalMotifTask

    config = parse_task({"kind": "local_motif", "max_len": 96, "n_symbols": 4, "n_train": 300, "n_val": 10,
                         "n_test": 10})
    motifs = LocalMotifTask(config).motifs
    data = load_task(config)
    for ids, label in zip(data.splits["train"].ids, data.splits["train"].labels):
        expected = [1 if m == label else 0 for m in range(4)]
        assert len(ids) == 96 and motif_counts(ids, motifs) == expected
    assert set(data.splits["train"].labels) == set(range(4))


def test_local_motif_label_is_the_motif_planted_most_often():
    from nasgraph.tasks.local_motif import LocalMotifTask

    config = parse_task({"kind": "local_motif", "max_len": 128, "n_symbols": 4, "n_planted": 6,
                         "n_distractor": 3, "n_train": 300, "n_val": 10, "n_test": 10})
    motifs = LocalMotifTask(config).motifs
    data = load_task(config)
    seen_distractors = 0
    for ids, label in zip(data.splits["train"].ids, data.splits["train"].labels):
        counts = motif_counts(ids, motifs)    # exactly as planted: no accidental occurrence anywhere
        assert len(ids) == 128 and counts[label] == 6
        assert all(0 <= n <= 3 for m, n in enumerate(counts) if m != label)
        seen_distractors += sum(counts) - 6
    assert seen_distractors > 0 and set(data.splits["train"].labels) == set(range(4))


@pytest.mark.parametrize("raw, key", [
    ({"kind": "assoc_recall", "n_pairs": 20, "n_keys": 10}, "n_pairs"),
    ({"kind": "assoc_recall", "max_len": 20, "n_pairs": 12}, "max_len"),
    ({"kind": "tiny", "max_len": 8, "min_len": 9}, "min_len"),
    ({"kind": "tiny", "n_symbols": 30}, "n_symbols"),
    ({"kind": "local_motif", "n_planted": 2, "n_distractor": 2}, "n_distractor"),
    ({"kind": "local_motif", "max_len": 32, "n_planted": 8}, "max_len"),
])
def test_synthetic_config_errors(raw, key):
    with pytest.raises(ConfigError) as err:
        parse_task(raw)
    assert err.value.key == key


def test_batches_pad_to_the_longest_and_are_deterministic():
    split = Split([[CLS_ID] + [5] * n for n in [3, 9, 1, 7, 2, 8, 4, 6, 5, 10]], list(range(10)))
    out = list(batches(split, 3, shuffle=True, seed=1, epoch=0))
    assert sorted(y for _, labels in out for y in labels.tolist()) == list(range(10))
    for tokens, labels in out:
        lengths = [len(split.ids[y]) for y in labels.tolist()]   # label i belongs to example i
        assert tokens.dtype == torch.long and tokens.shape == (len(labels), max(lengths))
        assert (tokens != PAD_ID).sum(1).tolist() == lengths
    again = list(batches(split, 3, shuffle=True, seed=1, epoch=0))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(out, again))
    other = [labels.tolist() for _, labels in batches(split, 3, shuffle=True, seed=1, epoch=1)]
    assert other != [labels.tolist() for _, labels in out]
    ordered = [labels.tolist() for _, labels in batches(split, 4, shuffle=False)]
    assert ordered == [[2, 4, 0, 6], [8, 7, 3, 5], [1, 9]]                  # sorted by length
    plain = [labels.tolist() for _, labels in batches(split, 4, shuffle=False, sort_by_length=False)]
    assert plain == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_length_bucketing_cuts_padding():
    data = load_task(parse_task({"kind": "listops", **SMALL["listops"], "n_train": 600}))
    def pad_fraction(sort):
        tokens = [t for t, _ in batches(data.splits["train"], 16, shuffle=True, seed=0, sort_by_length=sort)]
        return sum((t == PAD_ID).sum().item() for t in tokens) / sum(t.numel() for t in tokens)
    assert pad_fraction(True) < 0.5 * pad_fraction(False)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)            # tiny ops: extra threads only add contention
    yield
    torch.set_num_threads(threads)


def test_a_one_layer_model_learns_tiny(one_thread):
    torch.manual_seed(0)
    config = parse_task({"kind": "tiny"})
    data = load_task(config)
    d = 32
    embed, pos = nn.Embedding(vocab_size(config), d), nn.Embedding(config.max_len, d)
    layer = nn.TransformerEncoderLayer(d, nhead=2, dim_feedforward=64, dropout=0.0, batch_first=True)
    head = nn.Linear(d, 2)
    params = [p for m in (embed, pos, layer, head) for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)

    def logits(tokens):
        x = embed(tokens) + pos(torch.arange(tokens.shape[1]))              # (B, T, d)
        return head(layer(x, src_key_padding_mask=tokens == PAD_ID)[:, 0])  # (B, 2)

    step = 0
    for epoch in range(3):
        for tokens, labels in batches(data.splits["train"], 32, shuffle=True, seed=0, epoch=epoch):
            loss = nn.functional.cross_entropy(logits(tokens), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
    with torch.no_grad():
        hits = sum((logits(t).argmax(-1) == y).sum().item() for t, y in batches(data.splits["test"], 100, shuffle=False))
    assert step < 200 and hits / len(data.splits["test"]) > 0.9


def test_local_motif_errors_name_the_valid_values():
    with pytest.raises(ConfigError, match=r"valid: 0\.\.1"):
        parse_task({"kind": "local_motif", "n_planted": 2, "n_distractor": 5})
    with pytest.raises(ConfigError, match=r"valid: max_len >= 81"):
        parse_task({"kind": "local_motif", "max_len": 64, "n_planted": 8, "n_distractor": 4})
