"""Table S6's bare embedding model: the word-embedding matrix alone, as the authors trained it.

The authors (text_embeddings_src/models.py, ``EmbeddingOnlyModel``; scripts 14 and 15) take the
``word_embeddings`` of a randomly initialised ``BertModel`` and train it with crops: no position
or token-type embeddings, no LayerNorm, no dropout; the text embedding is the token vectors
mean-pooled over the attention mask. Registered with ``AutoModel`` (model type
``embedding_only``), so it loads, trains, embeds and runs MTEB like any other encoder here.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput


class EmbeddingOnlyConfig(PretrainedConfig):
    """Vocabulary size, width and padding id of a bare word-embedding model (no blocks)."""

    model_type = "embedding_only"

    def __init__(
        self,
        vocab_size: int = 30522,
        hidden_size: int = 768,
        pad_token_id: int = 0,
        initializer_range: float = 0.02,
        **kwargs,
    ) -> None:
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size, self.hidden_size, self.initializer_range = vocab_size, hidden_size, initializer_range
        self.num_hidden_layers = 0  # one "layer": the embeddings (layer 0 of every table and figure)


class EmbeddingOnlyModel(PreTrainedModel):
    """Token ids -> their word vectors; every other input (attention mask, ...) is ignored."""

    config_class = EmbeddingOnlyConfig
    base_model_prefix = "embedding_only"

    def __init__(self, config: EmbeddingOnlyConfig) -> None:
        super().__init__(config)
        self.word_embeddings = torch.nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:
        """BERT's initialisation of its word embeddings: N(0, 0.02), the padding row zero."""
        if isinstance(module, torch.nn.Embedding):
            module.weight.data.normal_(0.0, self.config.initializer_range)
            module.weight.data[module.padding_idx].zero_()

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.word_embeddings

    def set_input_embeddings(self, value: torch.nn.Embedding) -> None:
        self.word_embeddings = value

    def forward(
        self, input_ids: torch.Tensor, output_hidden_states: bool = False, return_dict: bool = True, **_
    ) -> BaseModelOutput:
        """``last_hidden_state`` = the word vectors; ``hidden_states`` = that one layer."""
        states = self.word_embeddings(input_ids)
        hidden_states = (states,) if output_hidden_states else None
        return BaseModelOutput(last_hidden_state=states, hidden_states=hidden_states)


AutoConfig.register(EmbeddingOnlyConfig.model_type, EmbeddingOnlyConfig)
AutoModel.register(EmbeddingOnlyConfig, EmbeddingOnlyModel)


def bert_word_embeddings_only(bert_dir: str | Path) -> EmbeddingOnlyModel:
    """The word embeddings of a saved (randomly initialised) BERT as an :class:`EmbeddingOnlyModel`."""
    bert = AutoModel.from_pretrained(bert_dir)
    words = bert.get_input_embeddings()
    config = EmbeddingOnlyConfig(
        vocab_size=words.num_embeddings,
        hidden_size=words.embedding_dim,
        pad_token_id=bert.config.pad_token_id,
        initializer_range=bert.config.initializer_range,
    )
    model = EmbeddingOnlyModel(config)
    model.word_embeddings.weight.data.copy_(words.weight.data)
    return model
