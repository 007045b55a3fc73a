"""CausalSelfAttention (explicit vs SDPA, GQA/MQA semantics, causality) and KVCache."""

import pytest
import torch

from minillm_lib.attention import CausalSelfAttention, KVCache, causal_mask
from minillm_lib.config import GPTConfig
from minillm_lib.positions import rope_cos_sin


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def make_attention(n_head=4, n_kv_head=None, n_embd=32, bias=True, block_size=16, dropout=0.0):
    cfg = GPTConfig(vocab_size=10, n_embd=n_embd, n_head=n_head, n_kv_head=n_kv_head,
                    bias=bias, block_size=block_size, dropout=dropout)
    attn = CausalSelfAttention(cfg).eval()
    with torch.no_grad():  # non-zero biases so a mix-up of q/k/v biases would show
        for p in attn.parameters():
            p.normal_(0, 0.3)
    return attn


def run(attn, x, explicit, **kwargs):
    attn.explicit = explicit
    with torch.no_grad():
        return attn(x, **kwargs)


@pytest.mark.parametrize("n_kv_head", [4, 2, 1], ids=["MHA", "GQA", "MQA"])
@pytest.mark.parametrize("use_rope", [False, True])
def test_explicit_path_equals_sdpa(n_kv_head, use_rope):
    attn = make_attention(n_head=4, n_kv_head=n_kv_head)
    x = torch.randn(2, 11, 32)
    rope = tuple(t[:11] for t in rope_cos_sin(16, 8)) if use_rope else None
    torch.testing.assert_close(run(attn, x, True, rope=rope), run(attn, x, False, rope=rope), atol=1e-5, rtol=1e-5)


def test_fused_projection_width():
    attn = make_attention(n_head=8, n_kv_head=2, n_embd=64)
    # 8 query heads + 2 key heads + 2 value heads, 8 channels each.
    assert attn.c_attn.weight.shape == ((8 + 2 * 2) * 8, 64)


def test_explicit_n_kv_head_equal_n_head_is_plain_mha():
    attn = make_attention(n_head=4, n_kv_head=None)
    same = make_attention(n_head=4, n_kv_head=4)
    same.load_state_dict(attn.state_dict())
    x = torch.randn(2, 9, 32)
    torch.testing.assert_close(run(attn, x, False), run(same, x, False))


@pytest.mark.parametrize("n_kv_head", [2, 1])
def test_gqa_equals_mha_with_shared_key_value_heads(n_kv_head):
    """GQA is MHA where query head h reads key/value head h // (n_head // n_kv_head)."""
    H, D = 4, 8
    gqa = make_attention(n_head=H, n_kv_head=n_kv_head)
    mha = make_attention(n_head=H, n_kv_head=H)
    group = H // n_kv_head
    w, b = gqa.c_attn.weight, gqa.c_attn.bias
    q_w, k_w, v_w = w.split([H * D, n_kv_head * D, n_kv_head * D])
    q_b, k_b, v_b = b.split([H * D, n_kv_head * D, n_kv_head * D])

    def expand(t):  # (Hkv*D, ...) -> (H*D, ...): each kv head copied for its query heads
        return t.view(n_kv_head, D, *t.shape[1:]).repeat_interleave(group, dim=0).reshape(H * D, *t.shape[1:])

    with torch.no_grad():
        mha.c_attn.weight.copy_(torch.cat([q_w, expand(k_w), expand(v_w)]))
        mha.c_attn.bias.copy_(torch.cat([q_b, expand(k_b), expand(v_b)]))
        mha.c_proj.load_state_dict(gqa.c_proj.state_dict())
    x = torch.randn(2, 10, 32)
    for explicit in (True, False):
        torch.testing.assert_close(run(gqa, x, explicit), run(mha, x, explicit), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("explicit", [True, False])
def test_future_tokens_do_not_change_the_past(explicit):
    attn = make_attention(n_kv_head=2)
    x = torch.randn(1, 12, 32)
    x2 = x.clone()
    x2[:, 7:] = torch.randn(1, 5, 32)
    y, y2 = run(attn, x, explicit), run(attn, x2, explicit)
    torch.testing.assert_close(y[:, :7], y2[:, :7])
    assert not torch.allclose(y[:, 7:], y2[:, 7:])


def test_explicit_path_keeps_causal_attention_weights():
    attn = make_attention(n_kv_head=2)
    run(attn, torch.randn(3, 6, 32), True)
    att = attn.att
    assert att.shape == (3, 4, 6, 6)
    torch.testing.assert_close(att.sum(-1), torch.ones(3, 4, 6))
    assert torch.all(att.triu(diagonal=1) == 0)
    assert torch.all(att[..., 0, 0] == 1)  # the first token can only look at itself


def test_causal_mask_is_offset_by_cached_tokens():
    assert torch.equal(causal_mask(3, 3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))
    # 2 cached + 3 new: the first new token (position 2) sees positions 0..2.
    assert torch.equal(causal_mask(3, 5), torch.tensor(
        [[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool))


@pytest.mark.parametrize("explicit", [True, False])
@pytest.mark.parametrize("n_kv_head", [4, 1])
def test_attention_with_cache_matches_full_sequence(explicit, n_kv_head):
    attn = make_attention(n_kv_head=n_kv_head)
    x = torch.randn(2, 16, 32)
    cos, sin = rope_cos_sin(16, 8)
    full = run(attn, x, explicit, rope=(cos, sin))
    cache = KVCache(1, 2, n_kv_head, 16, 8)
    pieces = []
    for start, end in [(0, 5), (5, 6), (6, 10), (10, 11), (11, 16)]:  # prefill, step, chunk, ...
        pieces.append(run(attn, x[:, start:end], explicit, rope=(cos[start:end], sin[start:end]), kv_cache=cache))
        cache.advance(end - start)
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)


def test_kv_cache_writes_in_place_and_resets():
    cache = KVCache(n_layer=2, batch_size=3, n_kv_head=2, capacity=8, head_dim=4)
    assert cache.capacity == 8 and cache.batch_size == 3 and cache.seq_len == 0
    buffer_ptr = cache.k[1].data_ptr()
    k, v = torch.randn(3, 2, 5, 4), torch.randn(3, 2, 5, 4)
    k_all, v_all = cache.update(1, k, v)
    assert k_all.shape == (3, 2, 5, 4) and torch.equal(k_all, k) and torch.equal(v_all, v)
    assert k_all.data_ptr() == buffer_ptr  # a view of the preallocated buffer, not a copy
    cache.advance(5)
    k2 = torch.randn(3, 2, 1, 4)
    k_all, _ = cache.update(1, k2, k2)
    assert k_all.shape == (3, 2, 6, 4) and torch.equal(k_all[:, :, :5], k) and torch.equal(k_all[:, :, 5:], k2)
    assert cache.k[1].data_ptr() == buffer_ptr
    cache.advance(1)
    cache.reset()
    assert cache.seq_len == 0


def test_kv_cache_refuses_to_overflow():
    cache = KVCache(n_layer=1, batch_size=1, n_kv_head=1, capacity=8, head_dim=4)
    cache.advance(6)
    cache.check_room(2)
    with pytest.raises(ValueError, match=r"6 cached \+ 3 new tokens = 9 > capacity 8"):
        cache.check_room(3)


def test_sdpa_dropout_only_in_training():
    attn = make_attention(dropout=0.5)
    x = torch.randn(2, 8, 32)
    torch.testing.assert_close(run(attn, x, False), run(attn, x, False))
    attn.train()
    assert not torch.allclose(attn(x), attn(x))
