"""Greedy decoding that exploits the shape of groundtune's prompts. Output is plain greedy decoding.

Every prompt a grounded model sees starts with the same system prompt and passage (~250 tokens), and
its answers copy phrases from that passage. Two exact speed-ups follow:

* `PrefixCache`: the shared prefix is run through the model once; each batch starts from a copy of
  its key/value cache, so only the question tokens are prefilled. Shorter suffixes are padded on the
  left of the suffix (between prefix and question) and masked, with explicit positions, so every row
  computes what it would alone.
* `lookup_greedy`: single-stream decoding with n-gram lookup drafting ("prompt lookup decoding"):
  when the last tokens also occur in the passage (or in known answers), the tokens that followed them
  there are proposed and checked in one forward pass; the longest prefix that greedy decoding would
  have produced is kept, plus the model's own next token. Decoding is memory-bound at batch 1, so
  checking 16 tokens costs far less than 16 steps (about two single-token passes on 2 CPU cores).

`batch_greedy` drafts the same way for the rows still running once the batch has thinned out (a batch
runs as long as its longest answer, and its last steps would otherwise feed one token to a nearly empty
batch); rows that finish idle, masked, until a quarter of the batch has finished, and then leave it
in one copy of the cache. Both functions append to the key/value cache through `GrowingLayer` (spare
capacity instead of a full copy per step). `groundtune bench` measures the whole against plain
`model.generate`; the tests check every path token for token against it.
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from groundtune.train import common_prefix_length

MAX_DRAFT = 16  # most draft tokens checked per row and pass, streaming or batched (same answers for any value)

class GrowingLayer(DynamicLayer):
    """A DynamicLayer that appends new keys/values into spare capacity instead of concatenating: one copy
    per doubling rather than a copy of the whole cache at every decoding step. The keys/values it returns
    are views of the buffer, with the same values as DynamicLayer's."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n, new = (self.keys.shape[-2] if self.keys.dim() == 4 else 0), key_states.shape[-2]
        buf = getattr(self, "_buffers", None)
        if (buf is None or buf[0].shape[-2] < n + new or buf[0].shape[0] != key_states.shape[0]
                or (n and self.keys.data_ptr() != buf[0].data_ptr())):  # first use, full, or keys replaced (select, repeat)
            cap = max(2 * (n + new), 64)
            buf = tuple(t.new_empty((*t.shape[:-2], cap, t.shape[-1])) for t in (key_states, value_states))
            if n:
                buf[0][..., :n, :], buf[1][..., :n, :] = self.keys, self.values
            self._buffers = buf
        buf[0][..., n:n + new, :], buf[1][..., n:n + new, :] = key_states, value_states
        self.keys, self.values = buf[0][..., :n + new, :], buf[1][..., :n + new, :]
        return self.keys, self.values


def growing(cache: DynamicCache) -> DynamicCache:
    """The same cache, its full-attention layers switched to GrowingLayer (sliding-window layers are left)."""
    for layer in cache.layers:
        if type(layer) is DynamicLayer:
            layer.__class__ = GrowingLayer
    return cache


def start_cache(model, prefix: "PrefixCache | None", batch_size: int) -> DynamicCache:
    """A growing cache for `batch_size` rows: copies of the prefix's cache, or empty (no prefix, or an empty one)."""
    cached = prefix.expanded(batch_size) if prefix is not None else None
    return growing(cached if cached is not None else DynamicCache(config=model.config))


class PrefixCache:
    """The key/value cache of a token prefix, computed once and copied per batch."""

    def __init__(self, model, prefix_ids: Sequence[int]):
        self.ids = list(prefix_ids)
        self.cache = None
        if self.ids:
            with torch.inference_mode():
                ids = torch.tensor([self.ids], device=model.device)
                self.cache = model(input_ids=ids, use_cache=True, logits_to_keep=1).cache

    def expanded(self, batch_size: int) -> DynamicCache | None:
        if self.cache is None:
            return None
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(batch_size)
        return cache


def shared_prefix(prompts: list[list[int]]) -> list[int]:
    """The longest token prefix of all prompts, leaving at least one token of each to prefill."""
    n = common_prefix_length(prompts)
    n = min(n, min(len(p) for p in prompts) - 1)
    return prompts[0][:n]


def left_padded(suffixes: list[list[int]], p: int, pad_token_id: int, device) -> tuple[torch.Tensor, ...]:
    """Rows that follow a cached prefix of length `p`, right-aligned so every row's last token is in the
    last column: input ids [B, W], attention mask [B, p + W] (prefix and real tokens 1) and positions [B, W]."""
    n_rows, width = len(suffixes), max(len(s) for s in suffixes)
    ids = torch.full((n_rows, width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((n_rows, p + width), dtype=torch.long)
    mask[:, :p] = 1
    positions = torch.full((n_rows, width), p, dtype=torch.long)
    for row, s in enumerate(suffixes):
        ids[row, width - len(s):] = torch.tensor(s)
        mask[row, p + width - len(s):] = 1
        positions[row, width - len(s):] = torch.arange(p, p + len(s))
    return ids.to(device), mask.to(device), positions.to(device)


class SequenceBias:
    """`generation_config.sequence_bias` as transformers' SequenceBiasLogitsProcessor applies it under greedy
    decoding, so groundtune's decoding gives the answers `pipeline` gives: each entry [token ids, bias] adds
    its bias to the logit of its last token wherever the context (prompt and answer so far) ends with the
    other tokens; an entry of one token applies everywhere."""

    def __init__(self, entries):
        items = entries.items() if isinstance(entries, dict) else entries
        self.rules = [(list(ids[:-1]), int(ids[-1]), float(bias)) for ids, bias in items]

    @classmethod
    def of(cls, generation_config) -> "SequenceBias | None":
        entries = getattr(generation_config, "sequence_bias", None)
        return cls(entries) if entries else None

    def pick(self, logits: torch.Tensor, context: list[int], draft: Sequence[int] = ()) -> list[int]:
        """Greedy tokens at each position of `logits` [P, V]: position j follows context + draft[:j]."""
        logits = logits.float().clone()
        for j in range(logits.shape[0]):
            seen = context + list(draft[:j])
            for prefix, token, bias in self.rules:
                if len(prefix) <= len(seen) and seen[len(seen) - len(prefix):] == prefix:
                    logits[j, token] += bias
        return logits.argmax(-1).tolist()


@torch.inference_mode()
def batch_greedy(model, prompts: list[list[int]], max_new_tokens: int, eos_token_id: int | list[int],
                 pad_token_id: int, prefix: PrefixCache | None = None, corpus: Sequence[list[int]] = (),
                 draft_budget: int = 0, on_done: Callable[[int], None] | None = None,
                 bias: SequenceBias | None = None) -> list[list[int]]:
    """Greedy continuations of `prompts` (token id lists), decoded together; stops each row at eos.

    With `draft_budget` > 0, rows also get n-gram lookup drafts (as in `lookup_greedy`) when the batch is
    small: each of the B running rows drafts up to draft_budget // B - 1 tokens, so a step feeds about
    draft_budget tokens. A full batch decodes as usual; its tail (a few long answers) advances several
    tokens per step. Rejected draft tokens stay in the cache, masked out, so rows need no realignment.
    `on_done(i)` is called as prompt i finishes (for progress bars); `bias` is the model's sequence_bias."""
    device = model.device
    p = len(prefix.ids) if prefix is not None else 0
    if prefix is not None and any(pr[:p] != prefix.ids or len(pr) <= p for pr in prompts):
        raise ValueError("every prompt must start with the cached prefix and extend past it")
    suffixes = [pr[p:] for pr in prompts]
    n_rows = len(suffixes)
    ids, mask, positions = left_padded(suffixes, p, pad_token_id, device)
    cache = start_cache(model, prefix, n_rows)
    if any(type(layer) is not GrowingLayer for layer in cache.layers):
        draft_budget = 0  # sliding-window layers keep the last N slots: masked draft slots would shrink the window
    next_pos = positions[:, -1] + 1
    eos = {eos_token_id} if isinstance(eos_token_id, int) else set(eos_token_id)
    corpus = list(corpus)
    out: list[list[int]] = [[] for _ in range(n_rows)]
    slots = list(range(n_rows))  # the prompt each batch row decodes
    while True:
        k = min(draft_budget // len(slots) - 1, MAX_DRAFT)
        drafts = [find_draft(prompts[r] + out[r], corpus, k=min(k, max_new_tokens - len(out[r]) - 1))
                  if k > 0 and r >= 0 and out[r] else [] for r in slots]
        n_draft = max(len(d) for d in drafts)
        if n_draft:
            block = torch.full((len(slots), n_draft), pad_token_id, dtype=torch.long)
            block_mask = torch.zeros((len(slots), n_draft), dtype=torch.long)
            for i, d in enumerate(drafts):
                block[i, :len(d)], block_mask[i, :len(d)] = torch.tensor(d, dtype=torch.long), 1
            ids = torch.cat([ids, block.to(device)], dim=1)
            mask = torch.cat([mask, block_mask.to(device)], dim=1)
            positions = torch.cat([positions, next_pos[:, None] + torch.arange(n_draft, device=device)], dim=1)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                       use_cache=True, logits_to_keep=n_draft + 1).logits
        predicted = (logits.argmax(-1).tolist() if bias is None else  # idle rows (r < 0) are never read
                     [bias.pick(row, prompts[r] + out[r], d) if r >= 0 else []
                      for row, r, d in zip(logits, slots, drafts)])
        bonus, advanced = [pad_token_id] * len(slots), [1] * len(slots)
        for i, r in enumerate(slots):
            if r < 0:
                continue
            new = accepted_tokens(drafts[i], predicted[i], eos, max_new_tokens - len(out[r]))
            out[r] += new
            if n_draft:  # mask the rejected part of this row's draft
                mask[i, mask.shape[1] - n_draft + len(new) - 1:] = 0
            if new[-1] in eos or len(out[r]) == max_new_tokens:
                slots[i] = -1  # finished: the row idles, masked, until the batch is compacted
                if on_done is not None:
                    on_done(r)
            else:
                bonus[i], advanced[i] = new[-1], len(new)
        running = [i for i, r in enumerate(slots) if r >= 0]
        if not running:
            return out
        if 4 * (len(slots) - len(running)) >= len(slots):  # a quarter idle: drop them (one copy of the cache)
            index = torch.tensor(running, device=device)
            cache.batch_select_indices(index)
            mask, next_pos = mask[index], next_pos[index]
            slots, bonus, advanced = ([x[i] for i in running] for x in (slots, bonus, advanced))
        advanced_t = torch.tensor(advanced, device=device)
        positions = (next_pos + advanced_t - 1)[:, None]  # the bonus token's position
        next_pos = next_pos + advanced_t
        ids = torch.tensor(bonus, device=device)[:, None]
        mask = torch.cat([mask, torch.tensor([[int(r >= 0)] for r in slots], device=device)], dim=1)


def accepted_tokens(draft: list[int], predicted: list[int], eos: set[int], room: int) -> list[int]:
    """What greedy decoding emits after a verified draft: the draft's longest prefix that matches the model's
    own predictions, then the model's next token; cut after an end-of-turn token and to `room` tokens."""
    accepted = 0
    while accepted < len(draft) and predicted[accepted] == draft[accepted]:
        accepted += 1
    new = draft[:accepted] + [predicted[accepted]]
    stop = next((i for i, t in enumerate(new) if t in eos), None)
    if stop is not None:
        new = new[:stop + 1]
    return new[:room]


def find_draft(context: list[int], corpus: list[list[int]], max_ngram: int = 3, k: int = 8) -> list[int]:
    """Tokens that followed the most recent earlier occurrence of the context's last n-gram (n = max_ngram..1).

    The context itself is searched first (answers repeat their own phrases), then `corpus`.
    """
    for n in range(min(max_ngram, len(context)), 0, -1):
        tail = context[-n:]
        searches = [(context, len(context) - n - 1)] + [(seq, len(seq) - n - 1) for seq in corpus]
        for seq, last_start in searches:
            for start in range(last_start, -1, -1):
                if seq[start:start + n] == tail:
                    return seq[start + n:start + n + k]
    return []


@torch.inference_mode()
def lookup_greedy(model, prompt: list[int], max_new_tokens: int, eos_token_id: int | list[int],
                  corpus: list[list[int]] = (), prefix: PrefixCache | None = None, k: int = MAX_DRAFT,
                  on_tokens: Callable[[list[int]], None] | None = None,
                  bias: SequenceBias | None = None) -> list[int]:
    """Greedy decoding of one prompt with n-gram drafting from the prompt, the output and `corpus`.

    Drafts are at most k tokens; after a draft that was cut short, the next is at most one token more
    than was accepted, and the limit doubles again after each fully accepted draft (a verifying pass over 17
    tokens costs about twice one over 1 token on 2 CPU cores, so long drafts only pay where copying goes on).
    The answers are the same for any limit; only the number of passes changes."""
    device = model.device
    eos = {eos_token_id} if isinstance(eos_token_id, int) else set(eos_token_id)
    p = len(prefix.ids) if prefix is not None and prompt[:len(prefix.ids)] == prefix.ids and len(prompt) > len(prefix.ids) else 0
    cache = start_cache(model, prefix if p else None, 1)
    pending = prompt[p:]  # tokens not yet in the cache
    out: list[int] = []
    limit = k
    while len(out) < max_new_tokens:
        draft = find_draft(prompt + out, corpus, k=min(limit, max_new_tokens - len(out) - 1)) if out else []
        feed = pending + draft
        start = cache.get_seq_length()
        logits = model(input_ids=torch.tensor([feed], device=device), use_cache=True, cache=cache,
                       position_ids=torch.arange(start, start + len(feed), device=device)[None],
                       logits_to_keep=len(draft) + 1).logits[0]
        predicted = logits.argmax(-1).tolist() if bias is None else bias.pick(logits, prompt + out, draft)
        new = accepted_tokens(draft, predicted, eos, max_new_tokens - len(out))
        out += new
        if on_tokens is not None:
            on_tokens(new)
        if new[-1] in eos:
            break
        rejected = len(draft) - (len(new) - 1)
        if draft:
            limit = max(1, len(new)) if rejected else min(k, 2 * limit)
        if rejected:
            cache.crop(-rejected)  # drop the rejected draft tokens; the bonus token is fed next
        pending = [new[-1]]
    return out
