"""Loading encoders, pooling every layer, building from-scratch models, exporting for reuse."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .config_checks import check_vocabulary, meant_as_folder, model_folder_problem
from .devices import check_device, own_gpu
from .downloads import Entry, hub_error, hub_unreachable
from .embedding_model import EmbeddingOnlyModel  # noqa: F401  (registers its type with AutoModel)
from .errors import EmbaugError, first_line, unreadable

POOLING_PATTERN = re.compile(r"^(mean|cls|sep|token:\d+)$")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present (among the devices CUDA_VISIBLE_DEVICES exposes), else CPU;
    ``cuda`` / ``cuda:N`` that torch cannot use is one line naming the ``device`` key.

    ``auto`` and ``cuda`` with several GPUs visible take one that no other embaug job holds
    (:func:`embaug.devices.own_gpu`); ``cpu`` and ``cuda:N`` are used as given.
    """
    check_device(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and torch.cuda.is_available():
        return own_gpu()
    return torch.device(device)


def set_threads(threads: int | None) -> None:
    """Use the rule's thread count for torch's CPU kernels (``None`` keeps torch's default)."""
    if threads:
        torch.set_num_threads(int(threads))


def load_encoder(
    source: str, device: torch.device | str = "cpu", name: str = ""
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a transformer encoder (as float32, whatever the checkpoint's dtype) and its tokenizer.

    ``source`` is a local ``save_pretrained`` directory or a hub id (downloaded and cached). When
    the hub cannot be reached, a hub id loads from the cache, or fails within seconds naming the
    config line that points the model at a local directory. Attention is what transformers picks
    for the architecture: PyTorch SDPA where the model has it (BERT), eager attention where it
    does not (MPNet); nothing is forced.
    """
    local = Path(source).expanduser().exists()
    if local or meant_as_folder(source):
        problem = model_folder_problem(source)
        if problem:
            raise EmbaugError(f"model '{name or source}': {problem}")
    offline = None if local else hub_unreachable()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline is not None)
        model = AutoModel.from_pretrained(  # train in fp32
            source, dtype=torch.float32, local_files_only=offline is not None
        )
    except Exception as exc:  # noqa: BLE001 (a damaged folder raises anything: OSError, SafetensorError, ...)
        if local:
            problem = f"cannot load model '{name or source}' ({type(exc).__name__}: {first_line(exc)})"
            raise unreadable(source, problem, "model folder") from exc
        if not isinstance(exc, (OSError, ValueError)):
            raise
        entry = Entry("models", name or "<name>", "/path/to/model_dir  # a save_pretrained directory")
        what = f"hub model '{source}'"
        if "/" in source:  # org/name: perhaps meant as a folder
            what += f", and there is no folder '{source}' in the working directory {Path.cwd()} either"
        raise hub_error(entry, what, offline, exc) from exc
    check_vocabulary(len(tokenizer), model.get_input_embeddings().num_embeddings, name or source)
    return model.to(device), tokenizer


def position_limit(model: PreTrainedModel) -> int:
    """The longest input the model's position embeddings can take, in tokens.

    Models whose positions start after the padding index (RoBERTa, MPNet: ``padding_idx`` on
    their embeddings module) lose ``padding_idx + 1`` of ``max_position_embeddings``.
    """
    positions = getattr(model.config, "max_position_embeddings", None) or 10**9
    padding_idx = getattr(getattr(model, "embeddings", None), "padding_idx", None)
    return positions - (padding_idx + 1 if padding_idx is not None else 0)


# What an encoder needs from a hub model repository: configs, vocabularies and weights (not the
# TensorFlow, Flax, ONNX or Rust copies many repositories also carry). With safetensors present,
# PyTorch's *.bin copy is skipped too.
HUB_MODEL_FILES = ["*.json", "*.txt", "*.model", "*.safetensors"]


def download_hub_model(repo_id: str, revision: str, cache_dir: str | Path, name: str = "") -> Path:
    """Download a hub model at ``revision`` into ``cache_dir`` (huggingface_hub's layout); its folder.

    Uses the user's Hugging Face login token where one is set (gated or private models).
    """
    from huggingface_hub import list_repo_files, snapshot_download

    offline = hub_unreachable()
    entry = Entry("models", name or "<name>", "/path/to/model_dir  # a save_pretrained directory")
    try:
        patterns = list(HUB_MODEL_FILES)
        if offline is None and not any(
            f.endswith(".safetensors") for f in list_repo_files(repo_id, revision=revision)
        ):
            patterns.append("*.bin")
        folder = snapshot_download(
            repo_id,
            revision=revision,
            cache_dir=cache_dir,
            allow_patterns=patterns,
            local_files_only=offline is not None,
        )
    except Exception as exc:  # the hub client raises many types (HTTP, offline, not found)
        raise hub_error(entry, f"hub model '{repo_id}' at revision {revision}", offline, exc) from exc
    return Path(folder)


def check_pooling(pooling: str) -> str:
    """Validate a pooling name: ``mean``, ``cls``, ``sep`` (last non-padding token) or ``token:K``."""
    if not POOLING_PATTERN.match(pooling):
        raise EmbaugError(f"unknown pooling '{pooling}' (use mean, cls, sep or token:K)")
    return pooling


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """Pool token states ``[..., batch, tokens, dim]`` to ``[..., batch, dim]``.

    Leading dimensions (e.g. the stacked layers) are pooled in one operation; this is why the
    project pools by hand instead of calling sentence-transformers' one-layer ``Pooling``.
    ``token:K`` takes the K-th token counted from 0 (``token:0`` is CLS), clamped to the last
    non-padding token of short sequences.
    """
    mask = attention_mask.to(hidden.dtype)
    if pooling == "mean":
        summed = (mask.unsqueeze(-2) @ hidden).squeeze(-2)  # masked sum as a matmul: no temporary
        return summed / mask.sum(dim=-1, keepdim=True).clamp(min=1.0)
    last = attention_mask.sum(dim=-1).long() - 1
    if pooling == "cls":
        position = torch.zeros_like(last)
    elif pooling == "sep":
        position = last
    else:
        position = torch.minimum(torch.full_like(last, int(pooling.split(":")[1])), last)
    index = position.view(*([1] * (hidden.dim() - 3)), -1, 1, 1)
    index = index.expand(*hidden.shape[:-3], -1, 1, hidden.shape[-1])
    return hidden.gather(-2, index).squeeze(-2)


def build_scratch_model(
    texts: list[str], out_dir: str | Path, architecture: dict[str, Any], seed: int = 42
) -> None:
    """A randomly initialised BERT with a WordPiece tokenizer fitted on ``texts``, saved to a dir."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    from .wordpiece import count_words, train_vocabulary

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    vocab_size = int(architecture.get("vocab_size", 8000))
    # Not WordPieceTrainer: its ties depend on hash-map order (see embaug.wordpiece). Token ids:
    # specials first, then sorted, as before.
    learned = train_vocabulary(count_words(texts, normalizer, pre_tokenizer), vocab_size, specials)
    ordered = specials + sorted(set(learned) - set(specials))
    tok = Tokenizer(models.WordPiece({token: i for i, token in enumerate(ordered)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece()
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    max_length = int(architecture.get("max_position_embeddings", 512))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
    )
    config_keys = (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
    )
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        pad_token_id=tok.token_to_id("[PAD]"),
        **{key: architecture[key] for key in config_keys if key in architecture},
    )
    torch.manual_seed(seed)
    model = BertModel(config)  # with its (unused) pooler, so AutoModel loads it without warnings
    save_encoder(model, tokenizer, out_dir)


def _st_modules() -> Any:
    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer import modules
    except ImportError:  # older releases
        from sentence_transformers import models as modules
    return modules


def without_call_state(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """``tokenizer`` with the truncation and padding of its last call cleared, so that a saved
    tokenizer does not depend on what encoded last (a fast tokenizer keeps them, and
    ``save_pretrained`` writes them into tokenizer.json). Every call here sets its own."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.no_truncation()
        backend.no_padding()
    return tokenizer


def save_encoder(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: str | Path,
    pooling: str = "mean",
) -> None:
    """Save so that both ``AutoModel`` and ``SentenceTransformer`` load the directory.

    sentence-transformers gets ``Transformer -> Pooling -> Normalize`` (MTEB's wrapping).
    """
    from sentence_transformers import SentenceTransformer

    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    without_call_state(tokenizer).save_pretrained(out_dir)
    modules = _st_modules()
    st_pooling = {"mean": "mean", "cls": "cls", "sep": "lasttoken"}.get(pooling)
    if st_pooling is None:  # token:K has no sentence-transformers counterpart
        return
    max_length = min(tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", 512))
    transformer = modules.Transformer(str(out_dir), max_seq_length=min(max_length, 512))
    dim = model.config.hidden_size
    st = SentenceTransformer(
        modules=[transformer, modules.Pooling(dim, pooling_mode=st_pooling), modules.Normalize()],
        device="cpu",
    )
    st.save(str(out_dir))
